"""Rollout throughput: agentrl's rollout on single-turn ``math`` against a bare
``model.generate`` loop on the same model, prompts and lengths, in one run.

Both sides sample every prompt to exactly ``--new-tokens`` tokens (end-of-sequence ignored)
with temperature 1 and no top-k / top-p, in batches of ``--batch``. agentrl's side is the
whole rollout: environment resets, prompt rendering, sampling with per-token logprobs,
environment steps and answer grading. Prints tokens/s for both and the ratio (median of
``--repeats`` alternating runs, after one warm-up each).

    python scripts/bench_rollout.py                     # a random 4-layer model it builds
    python scripts/bench_rollout.py --model DIR         # any local model directory
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time

import torch

from agentrl.engines.base import SamplingParams
from agentrl.engines.hf import TransformersEngine
from agentrl.engines.loading import load_model, load_tokenizer
from agentrl.envs import make
from agentrl.models.tiny import make_tiny_model
from agentrl.rollout import RolloutConfig, rollout


def bare_generate(model, tokenizer, prompts: list[list[int]], new_tokens: int, batch: int) -> int:
    produced = 0
    for start in range(0, len(prompts), batch):
        chunk = prompts[start : start + batch]
        length = max(map(len, chunk))
        ids = torch.full((len(chunk), length), tokenizer.pad_token_id)
        mask = torch.zeros_like(ids)
        for row, p in enumerate(chunk):
            ids[row, length - len(p) :] = torch.tensor(p)
            mask[row, length - len(p) :] = 1
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            do_sample=True,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            pad_token_id=tokenizer.pad_token_id,
        )
        produced += (out.shape[1] - length) * len(chunk)
    return produced


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model directory (default: build a random Qwen2 with hidden 256, 4 layers)")
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    model_dir = args.model or make_tiny_model(tempfile.mkdtemp(), hidden=256, layers=4)
    tokenizer, model = load_tokenizer(str(model_dir)), load_model(str(model_dir))
    engine = TransformersEngine(model, tokenizer, max_batch_size=args.batch)
    factory = functools.partial(make, "math")
    tasks = list(factory().tasks("test")[: args.prompts])
    prompts = []
    for task in tasks:
        messages, _ = factory().reset(seed=0, options={"task": task})
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        prompts.append(tokenizer.encode(text, add_special_tokens=False))
    params = SamplingParams(max_new_tokens=args.new_tokens, ignore_eos=True)
    config = RolloutConfig(max_concurrent=args.batch, max_total_tokens=4096)

    def ours() -> int:
        trajectories = rollout(factory, tasks, engine, tokenizer, params, config)
        return sum(t.num_sampled_tokens for t in trajectories)

    def bare() -> int:
        return bare_generate(model, tokenizer, prompts, args.new_tokens, args.batch)

    rates: dict[str, list[float]] = {"agentrl rollout": [], "bare generate": []}
    for fn in (ours, bare):
        fn()  # warm-up
    for _ in range(args.repeats):
        for name, fn in (("agentrl rollout", ours), ("bare generate", bare)):
            start = time.perf_counter()
            tokens = fn()
            rates[name].append(tokens / (time.perf_counter() - start))
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"model: {n_params / 1e6:.2f}M parameters, {len(prompts)} prompts x {args.new_tokens} tokens, "
        f"batch {args.batch}, "
        f"torch threads {torch.get_num_threads()}"
    )
    for name, values in rates.items():
        print(f"{name:>16}: {statistics.median(values):9.1f} tokens/s  (runs: {', '.join(f'{v:.0f}' for v in values)})")
    ratio = statistics.median(rates["agentrl rollout"]) / statistics.median(rates["bare generate"])
    print(f"{'ratio':>16}: {ratio:.3f}  (target >= 0.95)")


if __name__ == "__main__":
    main()

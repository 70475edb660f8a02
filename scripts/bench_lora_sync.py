"""How a LoRA learner's weights should reach the engines: merged weights, or the adapter hot-loaded.

For each model, a LoRA learner (rank 16 on every linear layer but the output projection) hands
its weights to an engine after a step, two ways:

- ``merged``: ``learner.policy_state()`` (every adapted weight merged, ``W + s B A``) loaded by the
  engine's ``update_weights``, what agentrl does, on the transformers engine and on vLLM;
- ``adapter``: the adapter written in peft's format and hot-loaded by vLLM as a new LoRA request
  (``enable_lora=True``; vLLM then samples with the adapter unmerged), timed to the end of a
  one-token generation that uses it, minus that generation's time without an update.

And what the adapter costs afterwards: vLLM samples with it unmerged, so a rollout (16 rows of
64 tokens) is timed on the LoRA engine with the adapter and on a plain engine (merged weights).

Times are the median of ``--repeats`` syncs after one warm-up. Models: the shipped default model
and a random Qwen2-0.5B-shaped one (hidden 896, 24 layers; its vocabulary is the default
tokenizer's, so the embedding is small). vLLM rows need vLLM (its CPU build here).

    python scripts/bench_lora_sync.py [--repeats 5] [--no-vllm]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engines import random_model

from agentrl.algos import make as make_algo
from agentrl.engines.config import EngineConfig
from agentrl.engines.factory import make_engine
from agentrl.engines.loading import load_model, load_tokenizer
from agentrl.learner import LearnerConfig, TorchLearner, lora
from agentrl.trainer.setup import DEFAULT_MODEL

RANK = 16
ROLLOUT_ROWS, ROLLOUT_TOKENS = 16, 64  # a small rollout: what sampling with the adapter unmerged costs


def learner_for(path: Path) -> TorchLearner:
    model = lora.apply(load_model(str(path), "cpu", "float32").train(), lora.LoraConfig(rank=RANK), str(path))
    return TorchLearner(model, make_algo("grpo"), LearnerConfig())


def median_time(fn: Any, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def merged_rows(path: Path, learner: TorchLearner, repeats: int, vllm: bool) -> dict[str, float]:
    tokenizer = load_tokenizer(str(path))
    rows = {"merge_only_s": median_time(learner.policy_state, repeats)}
    for backend in ("transformers", "vllm") if vllm else ("transformers",):
        engine = make_engine(EngineConfig(backend=backend), str(path), tokenizer, device="cpu")
        try:
            sync = lambda e=engine: e.update_weights(learner.policy_state(), 1)  # noqa: E731
            rows[f"merged_{backend}_s"] = median_time(sync, repeats)
        finally:
            del engine
    return rows


def adapter_row(path: Path, learner: TorchLearner, repeats: int) -> dict[str, float]:
    from vllm import LLM
    from vllm import SamplingParams as VParams
    from vllm.lora.request import LoRARequest

    llm = LLM(model=str(path), dtype="float32", enable_lora=True, max_lora_rank=RANK, max_loras=1, seed=0,
              max_model_len=512, enforce_eager=True, disable_log_stats=True)  # fmt: skip
    prompt, params = [{"prompt_token_ids": [1, 2, 3]}], VParams(max_tokens=1)
    folder = Path(tempfile.mkdtemp(prefix="lora-sync-"))
    counter = [0]

    def sync_and_sample() -> None:
        counter[0] += 1
        out = folder / f"v{counter[0]}"
        out.mkdir()
        assert learner.lora is not None
        lora.save_adapter(learner.lora, learner.full_state(), out)
        llm.generate(prompt, params, lora_request=LoRARequest(f"v{counter[0]}", counter[0], str(out)), use_tqdm=False)

    with_sync = median_time(sync_and_sample, repeats)
    request = LoRARequest("v1", 1, str(folder / "v1"))
    plain = median_time(lambda: llm.generate(prompt, params, lora_request=request, use_tqdm=False), repeats)
    rollout = [{"prompt_token_ids": [1 + i, 2, 3]} for i in range(ROLLOUT_ROWS)]
    long = VParams(max_tokens=ROLLOUT_TOKENS, ignore_eos=True)
    sampling = median_time(lambda: llm.generate(rollout, long, lora_request=request, use_tqdm=False), 1)
    return {"adapter_vllm_s": with_sync - plain, "rollout_with_adapter_s": sampling}


def merged_rollout_row(path: Path) -> dict[str, float]:
    """The same rollout on a vLLM engine without LoRA (the merged weights' engine)."""
    from vllm import LLM
    from vllm import SamplingParams as VParams

    llm = LLM(model=str(path), dtype="float32", seed=0, max_model_len=512, enforce_eager=True, disable_log_stats=True)
    rollout = [{"prompt_token_ids": [1 + i, 2, 3]} for i in range(ROLLOUT_ROWS)]
    long = VParams(max_tokens=ROLLOUT_TOKENS, ignore_eos=True)
    return {"rollout_merged_s": median_time(lambda: llm.generate(rollout, long, use_tqdm=False), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-vllm", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    tokenizer = load_tokenizer(str(DEFAULT_MODEL))
    with tempfile.TemporaryDirectory() as tmp:
        models = {
            "default (0.87M)": DEFAULT_MODEL,
            "0.5B-shaped": random_model(tokenizer, 896, 24, Path(tmp) / "half", intermediate=4864, kv_heads=2),
        }
        for name, path in models.items():
            learner = learner_for(path)
            adapted = sum(p.numel() for p in learner.model.parameters() if p.requires_grad)
            rows = merged_rows(path, learner, args.repeats, not args.no_vllm)
            if not args.no_vllm:
                rows |= adapter_row(path, learner, args.repeats) | merged_rollout_row(path)
            cells = "  ".join(f"{k}={v * 1000:.1f}ms" for k, v in rows.items())
            print(f"{name}: adapter parameters {adapted:,}  {cells}", flush=True)


if __name__ == "__main__":
    main()

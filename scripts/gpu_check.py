"""The GPU check: one table of what agentrl does on one GPU, in one short run (under 8 minutes).

Rows (each measured in this process unless said otherwise):

- ``learner``: ``TorchLearner.train_step`` (grpo, bf16 autocast) tokens/s on a Qwen2-shaped model
  with random weights (Qwen2-0.5B's shape: hidden 896, 24 layers, MLP 4864, 14 heads, 2 KV
  heads, vocabulary 151,936, tied embeddings; 494M parameters; nothing downloaded), 16 rows of
  1024 tokens, 768 of them sampled; best of 3 steps after a warm-up. MFU = 6 x parameters x
  tokens/s / the GPU's peak dense bf16 FLOP/s (``--peak-tflops``; 989 for an H100 or H200 by
  name). Attention's own FLOPs are not counted (a lower bound).
- ``engine vllm`` / ``engine transformers``: tokens/s sampling the same 64 rendered ``math_tool``
  prompts for 128 new tokens each (end-of-sequence ignored) with the same random model.
- ``agreement``: the default model sampled by vLLM (64 prompts x 64 tokens, temperature 1), then
  teacher-forced by the learner's forward in float32: the share of sampled tokens whose
  pi_old / mu lies in [0.9, 1.1], and the largest |log(pi_old / mu)|.
- ``colocate``: ``engine.vllm.colocate``: the time to put the vLLM engine (random model) to sleep
  and wake it, and the GPU memory sleeping frees.
- ``async``: ``agentrl train --async`` for 5 steps (vcpo on math_tool, the default model), vLLM
  in a rollout worker process on ``cuda`` (``asynchronous.worker_device``), run as a subprocess:
  its wall time and held-out accuracy before and after.

- ``train: ...``: ``agentrl train`` for 3 steps on math_tool (the default model) the ways users
  run beyond the defaults (``TRAIN_ROWS``): SPEAR with its replay buffer, ST-PPO with the turn-level
  critic (two epochs), pure bf16 with gradient checkpointing, and LoRA under VCPO with KL (the
  reference is the base with the adapters off; vLLM receives the merged weights); and a 2-rank
  DeepSpeed ZeRO-3 run when two GPUs are visible. Each row says whether every step trained (none
  skipped, every loss finite).

Expected on one H100, not measured yet: learner 30 s, engines 90 s (vLLM's start), agreement
40 s, colocate 40 s, async 90 s, each transformers-engine training row 20 to 30 s and the LoRA row
(vLLM) 60 s: about 7 minutes in all, inside ``gpu_check.sh``'s 8-minute timeout.

``--dry-run`` runs the same code on the CPU with a tiny random model (hidden 64, 2 layers,
vocabulary 4096) and small sizes so that the script is tested and does not rot
(tests/test_gpu_check.py): the vLLM rows run on vLLM's CPU build when it is installed, colocate
is reported as needing a GPU, and the async run uses the transformers engine in a worker process
on ``cpu`` for 2 steps. Its numbers mean nothing.

    bash scripts/gpu_check.sh              # on a GPU machine
    bash scripts/gpu_check.sh --dry-run    # anywhere
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engines import random_model, rendered_prompts, throughput

from agentrl.algos import make as make_algo
from agentrl.batch import TokenBatch
from agentrl.engines.base import SamplingParams
from agentrl.engines.config import EngineConfig
from agentrl.engines.factory import make_engine
from agentrl.engines.loading import load_model, load_tokenizer
from agentrl.learner import LearnerConfig, TorchLearner
from agentrl.learner.forward import forward_tokens
from agentrl.trainer.setup import DEFAULT_MODEL

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}  # dense, from vendor sheets


@dataclass(frozen=True)
class Sizes:
    hidden: int
    layers: int
    intermediate: int
    kv_heads: int
    vocab: int
    rows: int
    length: int
    sampled: int
    prompts: int
    new_tokens: int
    async_steps: int


FULL = Sizes(896, 24, 4864, 2, 151_936, rows=16, length=1024, sampled=768, prompts=64, new_tokens=128, async_steps=5)
DRY = Sizes(64, 2, 128, 1, 4096, rows=4, length=64, sampled=48, prompts=4, new_tokens=8, async_steps=2)


def learner_row(model_dir: Path, sizes: Sizes, device: str, peak_tflops: float | None) -> dict[str, Any]:
    model = load_model(str(model_dir), device, "float32").train()
    params = sum(p.numel() for p in model.parameters())
    precision = "bf16" if device == "cuda" else "fp32"
    learner = TorchLearner(model, make_algo("grpo"), LearnerConfig(lr=1e-6, micro_batch_size=4, precision=precision))
    batch = random_batch(sizes, device)
    tokens = float(batch.attention_mask.sum())
    times = []
    for _ in range(4):  # a warm-up, then the best of 3
        sync(device)
        start = time.perf_counter()
        learner.train_step(batch)
        sync(device)
        times.append(time.perf_counter() - start)
    rate = tokens / min(times[1:])
    mfu = 6 * params * rate / (peak_tflops * 1e12) if peak_tflops else None
    return {"params": params, "precision": precision, "tokens_per_s": rate, "mfu": mfu}


def random_batch(sizes: Sizes, device: str) -> TokenBatch:
    """``rows`` rows of ``length`` random tokens, the last ``sampled`` of each sampled; behaviour
    logprobs 0 (the measured quantity is speed: the ratios are clipped, the work is the same)."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, sizes.vocab, (sizes.rows, sizes.length), generator=g)
    mask = torch.zeros(sizes.rows, sizes.length)
    mask[:, sizes.length - sizes.sampled :] = 1
    batch = TokenBatch(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        loss_mask=mask,
        behavior_logprobs=torch.zeros(sizes.rows, sizes.length),
        turn_index=torch.where(mask > 0, 0, -1),
        policy_version=torch.where(mask > 0, 0, -1),
        rewards=torch.rand(sizes.rows, generator=g),
        group_index=torch.arange(sizes.rows) // 4,
        truncated=torch.zeros(sizes.rows, dtype=torch.bool),
        num_tool_calls=torch.zeros(sizes.rows),
    )
    return batch.to(device, torch.float32)


def engine_rows(model_dir: Path, sizes: Sizes, device: str, vllm: bool) -> dict[str, Any]:
    tokenizer = load_tokenizer(str(model_dir))
    prompts = rendered_prompts(tokenizer, sizes.prompts)
    out: dict[str, Any] = {}
    for backend in ("vllm", "transformers") if vllm else ("transformers",):
        engine = make_engine(engine_config(backend), str(model_dir), tokenizer, device=device)
        try:
            out[backend] = throughput(engine, prompts, sizes.new_tokens, repeats=1)
        finally:
            shut_down(engine)
    return out


def agreement_row(sizes: Sizes, device: str) -> dict[str, Any]:
    """vLLM's sampling logprobs against the learner's teacher-forced ones, on the default model."""
    tokenizer = load_tokenizer(str(DEFAULT_MODEL))
    prompts = rendered_prompts(tokenizer, sizes.prompts)
    engine = make_engine(engine_config("vllm"), str(DEFAULT_MODEL), tokenizer, device=device)
    try:
        params = SamplingParams(temperature=1.0, max_new_tokens=min(64, sizes.new_tokens * 8), seed=0)
        completions = engine.generate(prompts, params)
    finally:
        shut_down(engine)
    model = load_model(str(DEFAULT_MODEL), device, "float32").eval()
    log_ratios = []
    with torch.no_grad():
        for prompt, completion in zip(prompts, completions, strict=True):
            ids = torch.tensor([prompt + completion.token_ids], device=device)
            logprobs = forward_tokens(model, ids, torch.ones_like(ids), 1.0)[0][0, len(prompt) :]
            log_ratios.append(logprobs.cpu() - torch.tensor(completion.logprobs))
    r = torch.cat(log_ratios)
    inside = ((r.exp() >= 0.9) & (r.exp() <= 1.1)).float().mean()
    return {"tokens": int(r.numel()), "share_in_0.9_1.1": float(inside), "max_abs_log_ratio": float(r.abs().max())}


def colocate_row(model_dir: Path, device: str) -> dict[str, Any]:
    if device != "cuda":
        return {"skipped": "needs a GPU"}
    tokenizer = load_tokenizer(str(model_dir))
    engine = make_engine(engine_config("vllm", colocate=True), str(model_dir), tokenizer, device=device)
    try:
        free_awake = torch.cuda.mem_get_info()[0]
        start = time.perf_counter()
        engine.sleep()  # type: ignore[attr-defined]
        slept = time.perf_counter() - start
        free_asleep = torch.cuda.mem_get_info()[0]
        start = time.perf_counter()
        engine.wake()  # type: ignore[attr-defined]
        woke = time.perf_counter() - start
    finally:
        shut_down(engine)
    return {"sleep_s": slept, "wake_s": woke, "freed_gib": (free_asleep - free_awake) / 2**30}


def async_row(sizes: Sizes, device: str, vllm: bool, runs: Path) -> dict[str, Any]:
    gpu = device == "cuda"
    engine = "vllm" if gpu and vllm else "transformers"
    small = (
        ["--set", "eval_tasks=64"]
        if gpu
        else ["--set", "tasks_per_step=2", "--set", "group_size=2", "--set", "eval_tasks=4"]
    )
    cmd = [
        sys.executable, "-m", "agentrl.cli.main", "train", "--env", "math_tool", "--algo", "vcpo",
        "--steps", str(sizes.async_steps), "--async", "--engine", engine, "--device", device,
        "--set", "asynchronous.worker=process", "--set", f"asynchronous.worker_device={device}",
        "--runs-dir", str(runs), "--name", "async", "--no-progress", *small,
    ]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=200)  # inside gpu_check.sh's 480 s
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"the async run failed: {proc.stderr.strip().splitlines()[-1:]}")
    summary = next(line for line in proc.stdout.splitlines() if "held-out accuracy" in line)
    return {"engine": engine, "wall_s": wall, "summary": summary}


# What users run beyond the default: (name, agentrl train options, whether vLLM samples on a GPU).
# Each trains the default model on math_tool for TRAIN_STEPS steps in a subprocess; expected time on
# one H100 (not measured yet): 20 to 30 s each with the transformers engine, 60 s with vLLM's start.
TRAIN_ROWS = [
    ("spear replay", ["--algo", "spear", "--set", "algo_args.buffer_size=4", "--set", "algo_args.replay_T=1"], False),
    ("st_ppo critic", ["--algo", "st_ppo", "--set", "algo_args.advantage=gae", "--set", "learner.epochs=2"], False),
    ("bf16", ["--algo", "grpo", "--set", "learner.weights_dtype=bfloat16", "--set", "learner.precision=bf16",
              "--set", "learner.gradient_checkpointing=true"], False),
    ("lora", ["--algo", "vcpo", "--set", "algo_args.kl_coef=0.01", "--set", "lora.rank=16", "--set", "learner.lr=2e-3"],
     True),
]  # fmt: skip
TRAIN_STEPS = 3


def train_row(options: list[str], device: str, vllm: bool, runs: Path, nproc: int = 1) -> dict[str, Any]:
    """``agentrl train`` with ``options`` as a subprocess: its wall time, its summary line, and
    that every step trained (no skipped step, every loss finite). The dry run: 2 small steps."""
    engine = "vllm" if vllm else "transformers"
    name = f"row{len(list(runs.glob('row*'))) if runs.exists() else 0}"
    steps, work = (TRAIN_STEPS, ["8", "4", "16"]) if device == "cuda" else (2, ["4", "2", "4"])
    cmd = [
        sys.executable, "-m", "agentrl.cli.main", "train", "--env", "math_tool", "--steps", str(steps),
        "--engine", engine, "--device", device, "--runs-dir", str(runs), "--name", name, "--no-progress",
        "--set", f"tasks_per_step={work[0]}", "--set", f"group_size={work[1]}", "--set", f"eval_tasks={work[2]}",
        *options,
    ]  # fmt: skip
    if nproc > 1:
        cmd[4:4] = ["--nproc", str(nproc)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=150)  # inside gpu_check.sh's 480 s
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"agentrl train failed: {proc.stderr.strip().splitlines()[-1:]}")
    rows = [json.loads(line) for line in (runs / name / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in rows if "loss/total" in r]
    skipped_steps = max((r.get("learner/skipped_steps", 0.0) for r in trained), default=0.0)
    finite = all(isinstance(r["loss/total"], float) and r["loss/total"] == r["loss/total"] for r in trained)
    summary = next(line for line in proc.stdout.splitlines() if "held-out accuracy" in line)
    return {"engine": engine, "wall_s": wall, "steps": len(trained), "skipped_steps": skipped_steps,
            "finite": finite, "summary": summary, "expected_steps": steps}  # fmt: skip


def shut_down(engine: Any) -> None:
    """Free an engine's memory before the next row builds another (vLLM holds GPU memory until
    its engine core stops; agentrl's engines have no close of their own yet)."""
    core = getattr(getattr(getattr(engine, "llm", None), "llm_engine", None), "engine_core", None)
    if core is not None and hasattr(core, "shutdown"):
        core.shutdown()
    del engine
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def engine_config(backend: str, colocate: bool = False) -> EngineConfig:
    sections = {"vllm": {"gpu_memory_utilization": 0.3, "max_model_len": 2048, "colocate": colocate}}
    return EngineConfig(backend=backend, sections=sections if backend == "vllm" else {})


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(name: str, fn: Callable[[], dict[str, Any]], results: dict[str, Any]) -> None:
    start = time.perf_counter()
    try:
        results[name] = fn()
    except Exception as exc:  # one failed row is reported in the table; the others still run
        results[name] = {"error": f"{type(exc).__name__}: {exc}"}
    results[name]["seconds"] = time.perf_counter() - start
    print(f"{name}: {json.dumps(results[name])}", flush=True)


def table(results: dict[str, Any], device_name: str) -> str:
    """The markdown table: one row per check; a failed or skipped check says so in its row."""

    def cell(name: str, text: Callable[[dict[str, Any]], str]) -> str:
        row = results[name]
        if "error" in row:
            return f"failed: {row['error']}"
        return str(row["skipped"]) if "skipped" in row else text(row)

    def learner(r: dict[str, Any]) -> str:
        mfu = f"MFU {r['mfu']:.1%}" if r["mfu"] is not None else "MFU n/a (no --peak-tflops)"
        return f"{r['tokens_per_s']:,.0f} tokens/s, {mfu} ({r['params'] / 1e6:.1f}M params, {r['precision']})"

    def engine(backend: str) -> Callable[[dict[str, Any]], str]:
        return lambda r: f"{r[backend]:,.0f} tokens/s" if backend in r else "skipped: vllm not installed"

    def agreement(r: dict[str, Any]) -> str:
        share, worst = r["share_in_0.9_1.1"], r["max_abs_log_ratio"]
        return f"{share:.4f} of {r['tokens']} tokens in [0.9, 1.1], max abs log ratio {worst:.3g}"

    def colocate(r: dict[str, Any]) -> str:
        return f"sleep {r['sleep_s']:.2f} s, wake {r['wake_s']:.2f} s, {r['freed_gib']:.1f} GiB freed"

    def run(r: dict[str, Any]) -> str:
        return f"{r['engine']}, {r['wall_s']:.0f} s: {r['summary']}"

    def trained(r: dict[str, Any]) -> str:
        whole = r["steps"] == r["expected_steps"] and not r["skipped_steps"] and r["finite"]
        broken = f"{r['steps']} of {r['expected_steps']} steps, {r['skipped_steps']:.0f} skipped, finite: {r['finite']}"
        health = "every step trained" if whole else broken
        return f"{r['engine']}, {r['wall_s']:.0f} s, {health}: {r['summary']}"

    rows = [
        ("learner (bf16 on a GPU)", cell("learner", learner)),
        ("engine vllm", cell("engines", engine("vllm"))),
        ("engine transformers", cell("engines", engine("transformers"))),
        ("vLLM vs teacher forcing", cell("agreement", agreement)),
        ("colocate", cell("colocate", colocate)),
        ("async run (vcpo)", cell("async", run)),
        *((f"train: {name}", cell(name, trained)) for name, _, _ in TRAIN_ROWS),
        ("train: ZeRO-3, 2 ranks", cell("zero3", trained)),
    ]
    return "\n".join([f"| check ({device_name}) | result |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="on the CPU, tiny sizes: checks the script runs")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak (default: by its name)")
    parser.add_argument("--out", type=Path, help="also write the table and the raw results here")
    args = parser.parse_args()
    gpu = torch.cuda.is_available() and not args.dry_run
    if not gpu and not args.dry_run:
        print("gpu_check: no GPU is visible; run with --dry-run to check the script on a CPU", file=sys.stderr)
        return 2
    device, sizes = ("cuda", FULL) if gpu else ("cpu", DRY)
    device_name = torch.cuda.get_device_name() if gpu else "CPU dry run"
    peak = args.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if gpu and k in device_name), None)
    vllm = importlib.util.find_spec("vllm") is not None
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="agentrl-gpu-check-") as tmp:
        tokenizer = load_tokenizer(str(DEFAULT_MODEL))
        model_dir = random_model(
            tokenizer, sizes.hidden, sizes.layers, Path(tmp) / "model",
            intermediate=sizes.intermediate, kv_heads=sizes.kv_heads, vocab=sizes.vocab,
        )  # fmt: skip
        timed("learner", lambda: learner_row(model_dir, sizes, device, peak), results)
        if gpu:
            torch.cuda.empty_cache()
        timed("engines", lambda: engine_rows(model_dir, sizes, device, vllm), results)
        skip_vllm = {"skipped": "vllm not installed"}
        timed("agreement", lambda: agreement_row(sizes, device) if vllm else skip_vllm, results)
        timed("colocate", lambda: colocate_row(model_dir, device) if vllm else skip_vllm, results)
        timed("async", lambda: async_row(sizes, device, vllm, Path(tmp) / "runs"), results)
        runs = Path(tmp) / "train"
        for name, options, on_vllm in TRAIN_ROWS:
            use_vllm = on_vllm and gpu and vllm
            timed(name, lambda o=options, v=use_vllm: train_row(o, device, v, runs), results)  # type: ignore[misc]
        two = not gpu or torch.cuda.device_count() >= 2  # the dry run: two gloo ranks on the CPU
        zero3 = ["--algo", "grpo", "--set", "learner.backend=deepspeed", "--set", "learner.zero_stage=3"]
        timed(
            "zero3", lambda: train_row(zero3, device, False, runs, 2) if two else {"skipped": "needs 2 GPUs"}, results
        )
    text = table(results, device_name)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_check.md").write_text(text + "\n")
        (args.out / "gpu_check.json").write_text(json.dumps(results, indent=1))
    failed = [name for name, row in results.items() if "error" in row]
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())

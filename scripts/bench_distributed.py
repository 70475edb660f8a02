"""The learner on one process and on several: torch against DeepSpeed ZeRO-2 and ZeRO-3 at 1 and
2 ranks (gloo on CPU, NCCL on GPU), and the time to hand ZeRO-3's weights to an engine.

Learner rows: a randomly initialised Qwen2 (``--hidden``, ``--layers``; the default model's
tokenizer) trains ``grpo`` on ``--rows`` uniform rows of ``--length`` tokens, ``--response`` of
them sampled, micro-batches of ``--micro`` rows; the median of ``--steps`` steps after a warm-up.
tokens/s counts the whole batch's real tokens (every rank gets the whole batch and computes its
share of the loss). Per rank: peak RSS (CPU) or peak allocated memory (GPU), and the bytes of
parameters and optimizer state the rank holds (ZeRO-3's partitions: ``ds_tensor``).

Sync rows: under ZeRO-3 at 2 ranks, for growing widths, the time of ``policy_state()`` (the
parameters gathered ``learner.gather_bucket_mb`` at a time) and of loading the result into a
transformers engine on rank 0 (median of ``--repeats``).

Rollout rows: ``agentrl train --async`` on the default model and ``math_tool`` for ``--rollout-steps``
steps, with the one-machine process worker (``asynchronous.worker=process``) and with 1 and 2
rollout worker ranks (``asynchronous.workers``): sampled tokens the learner consumed per second of
step time (rollout to published weights, evaluation excluded), each rollout engine's own generation
tokens/s (tokens over its generating seconds), and the median time to hand the weights over
(``time/publish_s``: shared memory for the process worker, a broadcast for worker ranks). Every
process runs one torch thread, as the launcher gives ranks on a machine they share.

Broadcast rows: the same with 2 worker ranks on random models of growing width (``--model``), for
the broadcast time against model size.

Each configuration runs in its own processes (``torchrun`` for DeepSpeed), one after another.

    python scripts/bench_distributed.py                        # CPU, 2 ranks at most
    python scripts/bench_distributed.py --hidden 512 --layers 8 --out runs/bench_distributed
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engines import random_model
from bench_learner import synthetic_batch

CONFIGS = [("torch", 1), ("zero2", 1), ("zero2", 2), ("zero3", 1), ("zero3", 2)]
SYNC_WIDTHS = {"h128x4": (128, 4), "h256x4": (256, 4), "h512x6": (512, 6)}


def held_bytes(learner: Any) -> tuple[int, int]:
    """Bytes of parameters and of optimizer state this rank holds."""
    shards = [getattr(p, "ds_tensor", p) for p in learner.model.parameters()]
    param_bytes = sum(t.numel() * t.element_size() for t in shards)
    state = getattr(learner.optimizer, "optimizer", learner.optimizer).state
    opt_bytes = sum(v.numel() * v.element_size() for s in state.values() for v in s.values() if torch.is_tensor(v))
    return param_bytes, opt_bytes


def run_side(args: argparse.Namespace) -> None:
    """One configuration in this process (a torchrun rank for DeepSpeed); rank 0 prints JSON."""
    from agentrl.algos import make
    from agentrl.engines.loading import load_model
    from agentrl.learner import LearnerConfig, TorchLearner

    torch.manual_seed(0)
    model = load_model(args.model).float().train()
    batch = synthetic_batch(model, args.rows, args.length, args.response, "uniform")
    deepspeed = args.side.startswith("zero")
    config = LearnerConfig(
        lr=1e-5, micro_batch_size=args.micro, precision="fp32", backend="deepspeed" if deepspeed else "torch",
        zero_stage=int(args.side[-1]) if deepspeed else 2,
    )  # fmt: skip
    if deepspeed:
        from agentrl.learner.deepspeed_learner import DeepSpeedLearner

        learner: TorchLearner = DeepSpeedLearner(model, make("grpo"), config)
    else:
        learner = TorchLearner(model, make("grpo"), config)
    learner.train_step(batch)  # warm-up
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        learner.train_step(batch)
        times.append(time.perf_counter() - start)
    param_bytes, opt_bytes = held_bytes(learner)
    row: dict[str, Any] = {
        "tokens_per_s": float(batch.attention_mask.sum()) / statistics.median(times),
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "param_mib": param_bytes / 2**20,
        "optimizer_mib": opt_bytes / 2**20,
    }
    if args.sync:
        row |= sync_times(learner, args)
    rank = int(os.environ.get("RANK", "0"))
    rows = gather_rows(row) if deepspeed else [row]
    if rank == 0:
        print("RESULT " + json.dumps(rows), flush=True)


def sync_times(learner: Any, args: argparse.Namespace) -> dict[str, float]:
    from agentrl.engines.hf import TransformersEngine
    from agentrl.engines.loading import load_model, load_tokenizer

    gathers, loads = [], []
    engine = (
        TransformersEngine(load_model(args.model), load_tokenizer(args.model)) if os.environ["RANK"] == "0" else None
    )
    for version in range(1, args.repeats + 1):
        start = time.perf_counter()
        state = learner.policy_state()
        gathers.append(time.perf_counter() - start)
        if engine is not None:
            start = time.perf_counter()
            engine.update_weights(state, version)
            loads.append(time.perf_counter() - start)
    return {"gather_s": statistics.median(gathers), "load_s": statistics.median(loads) if loads else 0.0}


def gather_rows(row: dict[str, Any]) -> list[dict[str, Any]]:
    import torch.distributed as dist

    rows: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(rows, row)
    return rows


def launch(side: str, ranks: int, model: Path, args: argparse.Namespace, sync: bool = False) -> list[dict[str, Any]]:
    child = [
        str(Path(__file__).resolve()), "--side", side, "--model", str(model), "--rows", str(args.rows),
        "--length", str(args.length), "--response", str(args.response), "--micro", str(args.micro),
        "--steps", str(args.steps), "--repeats", str(args.repeats), *(["--sync"] if sync else []),
    ]  # fmt: skip
    if side == "torch":
        cmd = [sys.executable, *child]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks), *child]
    env = os.environ | {
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 2) // ranks)))
    }
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise SystemExit(f"{side} x {ranks} failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[len("RESULT ") :])


def learner_rows(args: argparse.Namespace, tmp: str, tokenizer: Any, results: dict[str, Any]) -> list[str]:
    from agentrl.engines.loading import load_model

    lines = [
        "| learner | ranks | tokens/s | peak MiB per rank | params MiB per rank | optimizer MiB per rank |",
        "|---|---|---|---|---|---|",
    ]
    model = random_model(tokenizer, args.hidden, args.layers, Path(tmp) / "model")
    for side, ranks in CONFIGS:
        rows = launch(side, ranks, model, args)
        results["learner"][f"{side}x{ranks}"] = rows
        lines.append(
            f"| {side} | {ranks} | {rows[0]['tokens_per_s']:,.0f} | {max(r['peak_mib'] for r in rows):,.0f} "
            f"| {rows[0]['param_mib']:.1f} | {rows[0]['optimizer_mib']:.1f} |"
        )
        print(lines[-1], flush=True)
    lines += ["", "| model (ZeRO-3, 2 ranks) | parameters | gather s | engine load s |", "|---|---|---|---|"]
    for name, (hidden, layers) in SYNC_WIDTHS.items():
        path = random_model(tokenizer, hidden, layers, Path(tmp) / name)
        params = sum(p.numel() for p in load_model(str(path)).parameters())
        row = launch("zero3", 2, path, argparse.Namespace(**(vars(args) | {"steps": 1})), sync=True)[0]
        results["sync"][name] = row | {"parameters": params}
        lines.append(f"| {name} | {params / 1e6:.2f}M | {row['gather_s']:.3f} | {row['load_s']:.3f} |")
        print(lines[-1], flush=True)
    return lines


ROLLOUT_CONFIGS = {"process worker": ["--set", "asynchronous.worker=process"]} | {
    f"{n} worker rank{'s' if n > 1 else ''}": ["--set", f"asynchronous.workers={n}"] for n in (1, 2)
}


def train_run(runs: Path, name: str, steps: int, extra: list[str]) -> list[dict[str, Any]]:
    """An ``agentrl train --async`` run's metrics rows (one per step, evaluation rows dropped)."""
    cmd = [
        sys.executable, "-m", "agentrl", "train", "--env", "math_tool", "--algo", "grpo", "--async", "--no-progress",
        "--steps", str(steps), "--runs-dir", str(runs), "--name", name, "--set", "eval_every=0",
        "--set", "eval_tasks=8", "--set", "episodes_every=0", *extra,
    ]  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": "1"}  # one thread per process in every row, as the launcher gives ranks
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    rows = [json.loads(line) for line in (runs / name / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "time/step_s" in r]


def rollout_rows(args: argparse.Namespace, tmp: str, tokenizer: Any, results: dict[str, Any]) -> list[str]:
    from agentrl.engines.loading import load_model

    lines = [
        "| rollouts | consumed tokens/s | generation tokens/s per engine | weights hand-over ms (median) |",
        "|---|---|---|---|",
    ]
    runs = Path(tmp) / "runs"
    for name, extra in ROLLOUT_CONFIGS.items():
        rows = train_run(runs, name.replace(" ", "-"), args.rollout_steps, extra)[1:]  # the first waits for start-up
        tokens = sum(r["rollout/sampled_tokens"] for r in rows)
        consumed = tokens / sum(r["time/step_s"] for r in rows)
        generated = tokens / max(sum(r["time/generate_s"] for r in rows), 1e-9)
        publish = statistics.median(r["time/publish_s"] for r in rows)
        results.setdefault("rollout", {})[name] = {"consumed": consumed, "generated": generated, "publish_s": publish}
        lines.append(f"| {name} | {consumed:,.0f} | {generated:,.0f} | {1000 * publish:.1f} |")
        print(lines[-1], flush=True)
    lines += ["", "| model (2 worker ranks) | parameters | broadcast ms (median) |", "|---|---|---|"]
    for name, (hidden, layers) in SYNC_WIDTHS.items():
        path = random_model(tokenizer, hidden, layers, Path(tmp) / f"bcast-{name}")
        params = sum(p.numel() for p in load_model(str(path)).parameters())
        extra = ["--model", str(path), "--set", "asynchronous.workers=2", "--set", "sampling.max_new_tokens=8"]
        rows = train_run(runs, f"bcast-{name}", 4, extra)
        publish = statistics.median(r["time/publish_s"] for r in rows)
        results.setdefault("broadcast", {})[name] = {"parameters": params, "publish_s": publish}
        lines.append(f"| {name} | {params / 1e6:.2f}M | {1000 * publish:.1f} |")
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--response", type=int, default=192)
    parser.add_argument("--micro", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rollout-steps", type=int, default=12, help="steps of each rollout row's run")
    parser.add_argument("--only", choices=["learner", "rollout"], help="run one part of the table")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_distributed"))
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--sync", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        run_side(args)
        return
    from agentrl.engines.loading import load_tokenizer
    from agentrl.trainer.setup import DEFAULT_MODEL

    tokenizer = load_tokenizer(str(DEFAULT_MODEL))
    lines: list[str] = []
    results: dict[str, Any] = {"learner": {}, "sync": {}}
    with tempfile.TemporaryDirectory() as tmp:
        if args.only != "rollout":
            lines += learner_rows(args, tmp, tokenizer, results)
        if args.only != "learner":
            lines += ["", *rollout_rows(args, tmp, tokenizer, results)]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

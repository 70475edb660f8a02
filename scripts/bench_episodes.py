"""What keeping every episode costs: bytes per episode and seconds per step of the episode store.

Trains the shipped model with the defaults (16 tasks x 8 samples a step) for a few steps on each
environment given, then prints the store's bytes per training episode (with the learner's
per-token numbers) and per held-out episode, the bytes the same episodes take as plain
``trajectories.jsonl`` lines, and the time the store took a step (``time/episodes_s``) beside the
step's time.

    python scripts/bench_episodes.py [--steps 3] [--envs math_tool math]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from agentrl.cli.main import main as agentrl
from agentrl.episodes import EpisodeStore


def measure(env: str, steps: int, runs: Path) -> dict[str, float]:
    argv = ["train", "--env", env, "--algo", "grpo", "--steps", str(steps), "--runs-dir", str(runs), "--name", env]
    assert agentrl([*argv, "--set", "eval_every=0", "--set", "eval_tasks=64", "--no-progress"]) == 0
    run = runs / env
    store = EpisodeStore(run)
    rows = store.rows()
    by_split: dict[str, list[dict]] = {"train": [], "eval": []}
    for row in rows:
        by_split[row["split"]].append(row)
    sizes = {p.name: p.stat().st_size for p in (run / "episodes").iterdir()}
    index = sizes.pop("index.jsonl.gz")
    out: dict[str, float] = {"episodes": len(rows), "index_bytes_per_episode": index / len(rows)}
    for split, mine in by_split.items():
        files = {r["file"] for r in mine}
        out[f"{split}_bytes_per_episode"] = sum(sizes[f] for f in files) / max(len(mine), 1)
        plain = [len(json.dumps(store.episode(r["id"]))) for r in mine[:64]]
        out[f"{split}_uncompressed_record_bytes"] = statistics.fmean(plain)
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    trained = [m for m in metrics if m["step"] > 0]
    out["store_s_per_step"] = statistics.fmean(m["time/episodes_s"] for m in trained)
    out["step_s"] = statistics.fmean(m["time/step_s"] for m in trained)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--envs", nargs="+", default=["math_tool", "math"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for env in args.envs:
            r = measure(env, args.steps, Path(tmp))
            print(
                f"{env}: {r['episodes']:.0f} episodes; train {r['train_bytes_per_episode']:.0f} B/episode "
                f"(+ index {r['index_bytes_per_episode']:.0f} B; the record uncompressed "
                f"{r['train_uncompressed_record_bytes']:.0f} B), held-out {r['eval_bytes_per_episode']:.0f} B/episode; "
                f"the store took {r['store_s_per_step']:.3f} s of a {r['step_s']:.2f} s step"
            )


if __name__ == "__main__":
    main()

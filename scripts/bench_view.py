"""How fast ``agentrl view`` answers on 100,000 episodes.

Builds a synthetic run whose episode store holds ``--episodes`` episodes: the records of a short
real run (its train steps, and every tenth step its eval episodes) written again and again with
``EpisodeWriter`` under new step numbers. Then times, through the app itself (fastapi's
TestClient: routing, the query, the JSON), loading the index (``make_app``: every index row read
and the table's columns built), the first page of the table, a filtered and sorted page, and one
episode (from a step file not yet read, and again once it is). Prints one table; the median of
``--repeats`` runs, and the first (cold) where it differs.

    python scripts/bench_view.py                                   # trains the short run first
    python scripts/bench_view.py --run runs/a --out /tmp/view100k --episodes 100000
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from agentrl.episodes import EpisodeStore, EpisodeWriter
from agentrl.view import make_app

FILTERED = {
    "split": "train",
    "correct": "true",
    "turns_min": 2,
    "sort": "sampled_tokens",
    "order": "asc",
    "offset": 200,
}
"""The filtered, sorted page timed: about half the episodes match; the page is the fifth."""


def short_run(folder: Path) -> Path:
    """A 3-step GRPO run on math_tool with the shipped model (about a minute on a CPU)."""
    command = [sys.executable, "-m", "agentrl.cli.main", "train", "--env", "math_tool", "--algo", "grpo"]
    command += ["--steps", "3", "--set", "eval_every=1", "--set", "eval_tasks=16", "--no-progress"]
    subprocess.run([*command, "--runs-dir", str(folder), "--name", "short"], check=True, capture_output=True)
    return folder / "short"


def synthetic(run: Path, out: Path, episodes: int) -> int:
    """``out`` as a run whose store holds at least ``episodes`` episodes made from ``run``'s;
    kept when it already does. Returns how many it holds."""
    if EpisodeStore(out).exists and len(EpisodeStore(out).rows()) >= episodes:
        return len(EpisodeStore(out).rows())
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for name in ("config.yaml", "metrics.jsonl"):
        if (run / name).is_file():
            shutil.copy(run / name, out / name)
    real = EpisodeStore(run)
    by_step: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in real.rows():
        by_step.setdefault((row["split"], row["step"]), []).append(row)
    train = [[real.episode(r["id"]) for r in rows] for (split, _), rows in sorted(by_step.items()) if split == "train"]
    evals = [[real.episode(r["id"]) for r in rows] for (split, _), rows in sorted(by_step.items()) if split == "eval"]
    writer, written, step = EpisodeWriter(out / "episodes"), 0, 0
    started = time.perf_counter()
    while written < episodes:
        step += 1
        for split, records in [("train", train[step % len(train)]), *([("eval", evals[0])] if step % 10 == 0 else [])]:
            for index, record in enumerate(records):
                record.update(step=step, id=f"{split}-{step}-{index}", split=split)
            writer.write(step, split, records)
            written += len(records)
    print(f"wrote {written:,} episodes in {step} steps to {out} in {time.perf_counter() - started:.0f} s")
    return written


def timed(call: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """The first run's seconds and the median of ``repeats`` runs (the first included)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times[0], statistics.median(times)


def ok(client: TestClient, path: str, **params: Any) -> dict[str, Any]:
    response = client.get(path, params=params)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a run folder to take the records from (default: train a short one)")
    parser.add_argument("--out", type=Path, help="the synthetic run's folder, kept for next time (default: a temp one)")
    parser.add_argument("--episodes", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-view-"))
    try:
        run = args.run or short_run(scratch)
        out = args.out or scratch / "synthetic"
        held = synthetic(run, out, args.episodes)
        source = out.name
        rows: list[tuple[str, float, float]] = []
        load = timed(lambda: make_app([out]), args.repeats)
        rows.append(("load the index (make_app: read it, build the table)", *load))
        client = TestClient(make_app([out]))
        rows.append(("first table page (50 rows)", *timed(lambda: ok(client, "/api/episodes"), args.repeats)))
        page = ok(client, "/api/episodes", **FILTERED)
        filtered = timed(lambda: ok(client, "/api/episodes", **FILTERED), args.repeats)
        rows.append(("filtered + sorted page (below)", *filtered))
        last = ok(client, "/api/facets")["steps"][1]
        ids = iter(f"train-{step}-5" for step in range(1, last + 1, max(1, last // 10)))  # each in its own file
        rows.append(("one episode, its step file not yet read", *timed(
            lambda: ok(client, "/api/episode", source=source, id=next(ids)), min(args.repeats, 10))))  # fmt: skip
        one = page["rows"][0]["id"]
        rows.append(("one episode, its step file read", *timed(
            lambda: ok(client, "/api/episode", source=source, id=one), args.repeats)))  # fmt: skip
        print(f"agentrl view on {held:,} episodes ({out}), {args.repeats} repeats:")
        print(f"  {'':<56} {'first':>9} {'median':>9}")
        for name, first, median in rows:
            print(f"  {name:<56} {first * 1000:7.1f}ms {median * 1000:7.1f}ms")
        filtered = "&".join(f"{k}={v}" for k, v in FILTERED.items())
        print(f"  filtered + sorted: /api/episodes?{filtered} ({page['total']:,} of {held:,} match)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

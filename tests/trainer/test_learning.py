"""Reward rises for real: the default model, trained briefly with the default recipe, gets
better at held-out math_tool tasks (a few minutes on 2 cores; the full-scale figures come
from scripts/bench_algos.py)."""

import json

import pytest

from agentrl.cli.main import main


@pytest.mark.slow
def test_vcpo_raises_held_out_accuracy(tmp_path):
    args = [
        "train",
        "--env",
        "math_tool",
        "--algo",
        "vcpo",
        "--steps",
        "50",
        "--runs-dir",
        str(tmp_path),
        "--name",
        "learn",
        "--set",
        "checkpoint_every=50",
        "--set",
        "samples_every=0",
        "--no-progress",
    ]
    assert main(args) == 0
    rows = [json.loads(line) for line in (tmp_path / "learn" / "metrics.jsonl").read_text().splitlines()]
    evals = {r["step"]: r["eval/accuracy"] for r in rows if "eval/accuracy" in r}
    initial, late = evals[0], max(acc for step, acc in evals.items() if step >= 30)
    assert late >= initial + 0.08, evals
    assert sum(r["rollout/reward_mean"] for r in rows[-10:]) > sum(r["rollout/reward_mean"] for r in rows[1:11]), evals

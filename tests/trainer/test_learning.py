"""Reward rises for real: the default model, trained briefly with the default recipe, gets
better at held-out math_tool tasks (about a minute on 2 cores; the full-scale figures come
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
        "20",
        "--runs-dir",
        str(tmp_path),
        "--name",
        "learn",
        "--set",
        "checkpoint_every=20",
        "--set",
        "eval_every=5",
        "--set",
        "samples_every=0",
        "--no-progress",
    ]
    assert main(args) == 0
    rows = [json.loads(line) for line in (tmp_path / "learn" / "metrics.jsonl").read_text().splitlines()]
    evals = {r["step"]: r["eval/accuracy"] for r in rows if "eval/accuracy" in r}
    assert sorted(evals) == [0, 5, 10, 15, 20]
    assert evals[20] >= evals[0] + 0.25, evals  # the acceptance gain, at a fifth of the steps
    assert sum(r["rollout/reward_mean"] for r in rows[-5:]) > sum(r["rollout/reward_mean"] for r in rows[1:6]), evals

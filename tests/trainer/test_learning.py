"""Reward rises for real: the default model, trained briefly with the default recipes, gets
better at held-out math_tool, search_qa and tool_use tasks (a few minutes on 2 cores; the full-scale
figures come from scripts/bench_algos.py)."""

import json
from pathlib import Path

import pytest

from agentrl.cli.main import main
from helpers import open_or_skip


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
        "episodes_every=0",
        "--no-progress",
    ]
    assert main(args) == 0
    rows = [json.loads(line) for line in (tmp_path / "learn" / "metrics.jsonl").read_text().splitlines()]
    evals = {r["step"]: r["eval/accuracy"] for r in rows if "eval/accuracy" in r}
    assert sorted(evals) == [0, 5, 10, 15, 20]
    assert evals[20] >= evals[0] + 0.25, evals  # the acceptance gain, at a fifth of the steps
    assert sum(r["rollout/reward_mean"] for r in rows[-5:]) > sum(r["rollout/reward_mean"] for r in rows[1:6]), evals


@pytest.mark.slow
def test_grpo_teaches_the_default_model_to_search(tmp_path):
    rows, evals = train_with_recipe(tmp_path, "search_qa_grpo.yaml", steps=15)
    assert sorted(evals) == [0, 5, 10, 15]
    assert evals[15] >= evals[0] + 0.1, evals  # half the acceptance gain, at a fifth of the steps
    searches = [r["rollout/mean_searches"] for r in rows if "rollout/mean_searches" in r]
    assert sum(searches[-3:]) > sum(searches[:3]), searches  # it learned to search


@pytest.mark.slow
def test_grpo_teaches_the_default_model_to_run_python(tmp_path):
    open_or_skip("auto").close()  # the real sandbox (docker or bubblewrap), or why not
    rows, evals = train_with_recipe(tmp_path, "tool_use_grpo.yaml", steps=10)
    assert sorted(evals) == [0, 5, 10]
    assert evals[10] >= evals[0] + 0.1, evals  # half the acceptance gain, at a sixth of the steps
    calls = [r["rollout/tool_calls_per_episode"] for r in rows if "rollout/tool_calls_per_episode" in r]
    assert sum(calls[-3:]) > sum(calls[:3]), calls  # it learned to run code


def train_with_recipe(tmp_path: Path, recipe: str, steps: int) -> tuple[list[dict], dict[int, float]]:
    """Train the default model with ``configs/<recipe>`` for ``steps`` steps, evaluating 100
    held-out tasks every 5; the run's metric rows and its held-out accuracy by step."""
    config = Path(__file__).resolve().parents[2] / "configs" / recipe
    args = ["train", "--config", str(config), "--steps", str(steps), "--runs-dir", str(tmp_path), "--name", "learn"]
    args += ["--set", f"checkpoint_every={steps}", "--set", "eval_every=5", "--set", "eval_tasks=100"]
    assert main([*args, "--set", "episodes_every=0", "--no-progress"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "learn" / "metrics.jsonl").read_text().splitlines()]
    return rows, {r["step"]: r["eval/accuracy"] for r in rows if "eval/accuracy" in r}

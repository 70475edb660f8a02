"""Whole training runs on a virtual GPU (agentrl.testing.devices): rollouts on the engine, the
batch, the learner's update, the weights synced to the engine, evaluation, checkpoints and
resume, synchronous and asynchronous, without a tensor on the wrong device."""

from __future__ import annotations

import json

import pytest

from agentrl.cli.main import main
from agentrl.testing.devices import DeviceAudit

SMALL = [
    "--device", "cuda", "--engine", "transformers", "--no-progress",
    "--set", "tasks_per_step=4", "--set", "group_size=4", "--set", "eval_tasks=4", "--set", "eval_every=2",
    "--set", "checkpoint_every=1", "--set", "sampling.max_new_tokens=16", "--set", "episodes_every=1",
]  # fmt: skip


def steps(run) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("algo", "extra"),
    [
        ("spear", ["--set", "algo_args.buffer_size=1", "--set", "algo_args.replay_T=1"]),  # filters and replay
        ("st_ppo", ["--set", "algo_args.advantage=gae", "--set", "learner.minibatches=2"]),  # the turn critic
        ("vcpo", ["--set", "algo_args.kl_coef=0.01"]),  # KL to the reference
    ],
)
def test_a_synchronous_run_and_its_resume(algo, extra, tiny_chatml, tmp_path):
    run = tmp_path / algo
    with DeviceAudit() as audit:
        common = ["--model", str(tiny_chatml), "--env", "math_tool", "--algo", algo, *SMALL, *extra]
        assert main(["train", *common, "--steps", "2", "--runs-dir", str(tmp_path), "--name", algo]) == 0
        assert main(["train", "--resume", str(run), "--steps", "3", "--no-progress"]) == 0
    assert steps(run) == [0, 1, 2, 3] and audit.operations > 10_000
    assert (run / "checkpoints" / "step-000003").is_dir()


@pytest.mark.slow
def test_an_asynchronous_run(tiny_chatml, tmp_path):
    """The rollout stream on its own thread (audited too), the weights published to its engine."""
    with DeviceAudit() as audit:
        args = ["--model", str(tiny_chatml), "--env", "math_tool", "--algo", "grpo", *SMALL, "--async"]
        args += ["--set", "asynchronous.worker=thread", "--max-staleness", "1", "--steps", "3"]
        assert main(["train", *args, "--runs-dir", str(tmp_path), "--name", "async"]) == 0
    assert steps(tmp_path / "async") == [0, 1, 2, 3] and audit.operations > 10_000
    assert len(audit.threads) >= 2  # the stream's thread was audited as well as the learner's

"""``agentrl train --async`` on the default model, with the rollout stream on a thread and in
its own process: bounded staleness, its metrics, and the run stopping with one line (then
resuming from its last checkpoint) when the engine, an environment, the worker process, the
learner or a weight sync fails."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from agentrl.cli.main import main
from agentrl.engines.hf import TransformersEngine
from agentrl.learner import TorchLearner
from agentrl.trainer.async_loop import StreamSource
from agentrl.trainer.setup import DEFAULT_MODEL
from helpers import DyingEnv

SETTINGS = ["--set", "tasks_per_step=4", "--set", "group_size=4", "--set", "eval_tasks=8", "--set", "eval_every=2"]
SETTINGS += ["--set", "checkpoint_every=1", "--set", "sampling.max_new_tokens=24", "--no-progress"]


def async_args(runs, name, steps, staleness, *extra):
    return [
        "train",
        "--async",
        "--max-staleness",
        str(staleness),
        "--model",
        str(DEFAULT_MODEL),
        "--algo",
        "vcpo",
        "--steps",
        str(steps),
        "--runs-dir",
        str(runs),
        "--name",
        name,
        *SETTINGS,
        *extra,
    ]


def metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def on_rollout_thread():
    return threading.current_thread().name == "agentrl-rollout"


@pytest.mark.slow
@pytest.mark.parametrize("worker", ["thread", "process"])
@pytest.mark.parametrize("staleness", [0, 2])
def test_async_training_bounds_staleness_and_logs_both_sides(tmp_path, staleness, worker):
    assert main(async_args(tmp_path, "run", 4, staleness, "--set", f"asynchronous.worker={worker}")) == 0
    rows = metrics(tmp_path / "run")
    steps = [r for r in rows if r["step"] > 0]
    assert [r["step"] for r in steps] == [1, 2, 3, 4] and "eval/accuracy" in rows[-1]
    for r in steps:
        assert r["async/staleness_max"] <= staleness and r["async/staleness/over"] == 0, r
        assert sum(r[f"async/staleness/{k}"] for k in range(staleness + 1)) == r["batch/rows"]
        for key in ("time/generate_s", "time/sync_s", "time/learner_idle_s", "time/rollout_idle_s", "time/learner_s"):
            assert r[key] >= 0, key
        assert 0 < r["offpolicy/ess_frac"] <= 1 + 1e-6 and r["time/publish_s"] >= 0
    if staleness == 0:  # exactly on-policy: the sampler held the learner's weights, to the bit
        assert all(r["offpolicy/ess_frac"] > 0.99 for r in steps)
    assert sum(r["async/syncs"] for r in steps) >= 2  # the engine loaded new weights while running
    last = torch.load(tmp_path / "run" / "checkpoints" / "last" / "learner.pt", weights_only=False)
    assert last["step"] == 4


def fail_and_resume(tmp_path, capsys, monkeypatch, name, extra=()):
    """Run to failure, check the one-line error, undo the fault, resume to the end."""
    assert main(async_args(tmp_path, name, 5, 1, *extra)) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("agentrl:")]
    assert len(errors) == 1 and f"agentrl train --resume {tmp_path / name} continues from" in errors[0], errors
    monkeypatch.undo()
    assert main(["train", "--resume", str(tmp_path / name), "--no-progress"]) == 0
    assert metrics(tmp_path / name)[-1]["step"] == 5
    return errors[0]


@pytest.mark.slow
def test_the_engine_failing_mid_run_stops_it_and_it_resumes(tmp_path, capsys, monkeypatch):
    generate = TransformersEngine.generate

    def failing(self, *args, **kwargs):
        if on_rollout_thread() and self.policy_version >= 2:
            raise RuntimeError("engine died")
        return generate(self, *args, **kwargs)

    monkeypatch.setattr(TransformersEngine, "generate", failing)
    error = fail_and_resume(tmp_path, capsys, monkeypatch, "engine")
    assert "the rollout worker failed: RuntimeError: engine died" in error


@pytest.mark.slow
def test_the_learner_failing_mid_run_stops_it_and_it_resumes(tmp_path, capsys, monkeypatch):
    train_step = TorchLearner.train_step

    def failing(self, batch, trace=False):
        if self.step == 2:
            raise RuntimeError("out of memory")
        return train_step(self, batch, trace)

    monkeypatch.setattr(TorchLearner, "train_step", failing)
    error = fail_and_resume(tmp_path, capsys, monkeypatch, "learner")
    assert "the learner failed at step 3 (RuntimeError: out of memory)" in error
    assert "its last checkpoint, step-000002" in error


@pytest.mark.slow
def test_a_weight_sync_that_times_out_stops_the_run_and_it_resumes(tmp_path, capsys, monkeypatch):
    update = TransformersEngine.update_weights

    def slow(self, state, version):
        if on_rollout_thread() and version >= 2:
            time.sleep(3.0)
        return update(self, state, version)

    monkeypatch.setattr(TransformersEngine, "update_weights", slow)
    error = fail_and_resume(tmp_path, capsys, monkeypatch, "sync", ("--set", "asynchronous.sync_timeout_s=0.5"))
    assert "a weight sync to the engine took longer than sync_timeout_s=0.5 s" in error


@pytest.mark.slow
@pytest.mark.parametrize("worker", ["thread", "process"])
def test_an_environment_failing_in_the_rollout_worker_stops_the_run_and_it_resumes(
    tmp_path, capsys, monkeypatch, worker
):
    monkeypatch.setattr(DyingEnv, "built", 0)
    monkeypatch.setenv("AGENTRL_TEST_DIE_AFTER", "40")  # 16 episodes a batch: dies in the third
    extra = ("--env", "helpers:DyingEnv", "--set", f"asynchronous.worker={worker}")
    error = fail_and_resume(tmp_path, capsys, monkeypatch, worker, extra)
    assert "the rollout worker failed: RuntimeError: environment died" in error


@pytest.mark.slow
def test_a_killed_rollout_worker_process_stops_the_run_and_it_resumes(tmp_path, capsys, monkeypatch):
    collect = StreamSource.collect

    def killing(self, step):
        if step == 2:
            os.kill(self.stream.pid, signal.SIGKILL)
        return collect(self, step)

    monkeypatch.setattr(StreamSource, "collect", killing)
    error = fail_and_resume(tmp_path, capsys, monkeypatch, "killed", ("--set", "asynchronous.worker=process"))
    assert f"the rollout worker exited (exit code -{signal.SIGKILL})" in error


def children(pid):
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def exited(pid):
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status  # a zombie has exited; only its reaping is left


@pytest.mark.slow
def test_a_killed_asynchronous_run_takes_its_worker_down_and_resumes(tmp_path):
    """SIGKILL the learner's process: its rollout worker exits by itself, and --resume finishes."""
    cmd = [sys.executable, "-m", "agentrl.cli.main", *async_args(tmp_path, "killed", 5, 1)]
    proc = subprocess.Popen([*cmd, "--set", "asynchronous.worker=process"], stderr=subprocess.DEVNULL)
    target = tmp_path / "killed" / "checkpoints" / "step-000001"
    deadline = time.time() + 300
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    workers = children(proc.pid)
    assert workers, "no rollout worker process"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 30
    while not all(map(exited, workers)) and time.time() < deadline:
        time.sleep(0.1)
    assert all(map(exited, workers)), "the rollout worker outlived its learner"
    assert main(["train", "--resume", str(tmp_path / "killed"), "--no-progress"]) == 0
    assert metrics(tmp_path / "killed")[-1]["step"] == 5

"""Ctrl-C during ``agentrl train``: the step in progress finishes and is checkpointed, the run
stops with the line that resumes it, and ``--resume`` continues with every step once; a second
Ctrl-C aborts at once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

FAST = ["--set", "tasks_per_step=2", "--set", "group_size=2", "--set", "eval_tasks=2", "--set", "eval_every=0"]
FAST += ["--set", "checkpoint_every=1000", "--set", "episodes_every=0", "--no-progress"]


def train(*args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "agentrl.cli.main", "train", "--env", "math", *args]
    # Ctrl-C as a terminal sends it, even when this test runs where SIGINT is ignored (a shell's
    # background job): the child starts with SIGINT's default
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def steps(run: Path) -> list[int]:
    path = run / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line)["step"] for line in lines if line.strip()]


def wait_for_step(run: Path, process: subprocess.Popen, step: int) -> None:
    deadline = time.monotonic() + 180
    while step not in steps(run):
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "too slow"
        time.sleep(0.05)


def stop_after_a_step(run: Path, signum: int) -> str:
    """Start a long run in ``run``, send ``signum`` once its first step is logged, and return its
    stderr once it has exited with 130."""
    training = train("--steps", "200", *FAST, "--runs-dir", str(run.parent), "--name", run.name)
    try:
        wait_for_step(run, training, 1)
        training.send_signal(signum)
        _, err = training.communicate(timeout=120)
    finally:
        training.kill()
    assert training.returncode == 130, err
    return err


@pytest.mark.slow
def test_ctrl_c_saves_the_step_and_resume_continues(tmp_path):
    run = tmp_path / "r"
    err = stop_after_a_step(run, signal.SIGINT)
    assert "agentrl: Ctrl-C: stopping once this step is trained and saved" in err
    last = err.strip().splitlines()[-1]
    stopped = max(steps(run))
    assert last == (
        f"agentrl: interrupted: stopped after step {stopped}; agentrl train --resume {run} "
        f"continues from its last checkpoint, step-{stopped:06d}"
    ), err
    assert (run / "checkpoints" / f"step-{stopped:06d}").is_dir()  # though checkpoint_every is 1000

    resumed = train("--resume", str(run), "--steps", str(stopped + 2))
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert [s for s in steps(run) if s] == list(range(1, stopped + 3))  # every step once


@pytest.mark.slow
def test_a_second_ctrl_c_aborts_at_once(tmp_path):
    run = tmp_path / "r"
    slow = ["--set", "tasks_per_step=128"]  # steps of several seconds: the second Ctrl-C lands inside one
    training = train("--steps", "200", *FAST, *slow, "--runs-dir", str(tmp_path), "--name", "r")
    try:
        wait_for_step(run, training, 1)
        training.send_signal(signal.SIGINT)
        time.sleep(0.3)
        training.send_signal(signal.SIGINT)
        aborted = time.monotonic()
        _, err = training.communicate(timeout=60)
    finally:
        training.kill()
    assert training.returncode == 130, err
    assert err.strip().splitlines()[-1] == (
        "agentrl: interrupted: aborted on a second Ctrl-C; the step in progress was not saved; "
        f"agentrl train --resume {run} continues from the start (no checkpoint yet)"
    ), err
    assert time.monotonic() - aborted < 10
    assert max(steps(run)) == 1  # the step in progress was not finished


@pytest.mark.slow
def test_sigterm_stops_like_ctrl_c(tmp_path):
    """A scheduler's SIGTERM: the step is finished and saved, and the line says how to resume."""
    run = tmp_path / "r"
    err = stop_after_a_step(run, signal.SIGTERM)
    assert "agentrl: SIGTERM: stopping once this step is trained and saved" in err
    stopped = max(steps(run))
    assert err.strip().splitlines()[-1].startswith(f"agentrl: interrupted: stopped after step {stopped}; ")
    assert (run / "checkpoints" / f"step-{stopped:06d}").is_dir()

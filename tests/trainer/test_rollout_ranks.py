"""``asynchronous.workers=N``: rollout workers as torch.distributed ranks, for real (gloo on CPU).

Rank 0 trains and broadcasts each update's weights; worker i rolls out feed batches i, i + N, ...
on its own engine and sends finished groups back. Two workers on one machine train a run; two
launchers on localhost (node ranks 0 and 1) form one run whose second worker is on "node 1"; a
worker killed mid-run stops the run with one line naming its rank.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from agentrl.episodes import EpisodeStore
from tests.helpers import free_port
from tests.trainer.test_ranks import rank_pid

pytestmark = pytest.mark.slow

TRAIN = [
    "--env", "math_tool", "--algo", "grpo", "--seed", "0", "--no-progress", "--async",
    "--set", "asynchronous.workers=2", "--set", "tasks_per_step=4", "--set", "group_size=4",
    "--set", "eval_tasks=8", "--set", "eval_every=0", "--set", "episodes_every=1",
]  # fmt: skip
ENV = os.environ | {"OMP_NUM_THREADS": "1"}


def command(runs: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "agentrl", "train", "--runs-dir", str(runs), *TRAIN, *args]


def sampled_batches(run: Path) -> set[int]:
    """The feed batches the sampled groups came from (``<task>@<batch>.<position>``)."""
    rows = EpisodeStore(run).rows()
    return {int(r["group_id"].rsplit("@", 1)[1].split(".")[0]) for r in rows if r["split"] == "train"}


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_two_worker_ranks_roll_out_for_one_learner(tmp_path):
    proc = subprocess.run(
        command(tmp_path, "--steps", "6", "--name", "two"), capture_output=True, text=True, env=ENV, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "two"
    batches = sampled_batches(run)
    assert {b % 2 for b in batches} == {0, 1}  # worker 0 runs the even batches, worker 1 the odd ones
    rows = metrics(run)
    assert [r["step"] for r in rows] == list(range(7))
    trained = rows[1:]
    # the bound holds across workers: groups may arrive out of batch order (one worker ahead of the
    # other), and a row older than K when its step comes is dropped, never trained on
    assert all(r["async/staleness/over"] == r["async/dropped_stale"] for r in trained)
    assert sum(r["async/syncs"] for r in trained) > 0  # the workers loaded broadcast weights
    assert all(r["time/publish_s"] > 0 for r in trained)  # the broadcast's time is logged


def test_two_launchers_on_localhost_put_a_worker_on_the_second_node(tmp_path):
    port = str(free_port())
    nodes = {
        rank: subprocess.Popen(
            command(tmp_path, "--steps", "4", "--name", "nodes", "--nnodes", "2", "--node-rank", str(rank),
                    "--nproc", str(nproc), "--master-port", port),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
        )
        for rank, nproc in ((1, 1), (0, 2))  # node 0: the learner and worker 0; node 1: worker 1
    }  # fmt: skip
    for node in nodes.values():
        _, err = node.communicate(timeout=300)
        assert node.returncode == 0, err[-3000:]
    assert {b % 2 for b in sampled_batches(tmp_path / "nodes")} == {0, 1}


def test_a_killed_worker_rank_stops_the_run_in_one_line(tmp_path):
    marker = uuid.uuid4().hex
    proc = subprocess.Popen(
        command(tmp_path, "--steps", "200", "--name", "killed"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV | {"AGENTRL_TEST_MARK": marker},
        start_new_session=True,
    )
    run = tmp_path / "killed"
    try:
        pid = rank_pid(marker, 2)
        deadline = time.monotonic() + 180
        while not (run / "metrics.jsonl").exists() or len(metrics(run)) < 3:
            assert proc.poll() is None and time.monotonic() < deadline, "the run did not get to step 2"
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 2
    assert err.strip().splitlines()[-1].startswith(f"agentrl: error: rank 2 (pid {pid}) was killed by SIGKILL;")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--nproc", "2"],
            "2 ranks cannot hold a learner rank and asynchronous.workers=2 rollout ranks; use --nproc 3",
        ),
        (["--nproc", "4"], "2 learner ranks (--nproc / --nnodes) train data-parallel"),
        (["--set", "asynchronous.enabled=false"], "asynchronous.workers needs asynchronous training (--async)"),
        (
            ["--set", "learner.backend=deepspeed"],
            "asynchronous.workers runs beside a one-rank learner for now; with learner.backend=deepspeed rank 0",
        ),
    ],
)
def test_bad_worker_rank_values_are_one_line(tmp_path, args, message):
    proc = subprocess.run(
        command(tmp_path, "--steps", "2", *args), capture_output=True, text=True, env=ENV, timeout=120
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr


def test_a_worker_ranks_error_stops_the_run_with_rank_0s_line(tmp_path):
    """An environment that fails inside a worker: rank 0 names the worker and the error in one line,
    stops the workers, and the launcher then reports rank 0's exit; nothing hangs."""
    env = ENV | {"AGENTRL_TEST_DIE_AFTER": "40", "PYTHONPATH": str(Path(__file__).parents[1])}
    args = ["--steps", "200", "--name", "dying", "--env", "helpers:DyingEnv"]
    proc = subprocess.run(command(tmp_path, *args), capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("agentrl:")]
    assert len(errors) == 2, proc.stderr[-3000:]
    assert errors[0].startswith("agentrl: error: rollout worker rank ")
    assert "the rollout worker failed: RuntimeError: environment died; agentrl train --resume" in errors[0]
    assert errors[1].startswith("agentrl: error: rank 0 (pid ") and "exited with code 2" in errors[1]

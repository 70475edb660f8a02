"""``agentrl train --nproc 2`` with the DeepSpeed learner, for real: two gloo ranks on CPU.

Rank 0 rolls out, so two ranks train on the one-process run's batches; their final weights equal
the one-process run's. A rank killed mid-run stops the run with one line naming it; ``--resume``
continues from the last checkpoint (each rank's ZeRO shards) to the uninterrupted run's weights,
and the ``last`` checkpoint is a Hugging Face directory ``agentrl eval`` loads. A node that never
joins ends in one line; two launchers on localhost (node ranks 0 and 1) form one run.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from agentrl.episodes import EpisodeStore
from agentrl.trainer.setup import DEFAULT_MODEL
from tests.helpers import free_port

pytest.importorskip("deepspeed")
pytestmark = pytest.mark.slow

STEPS = 4
TRAIN = [
    "--env", "math_tool", "--algo", "grpo", "--steps", str(STEPS), "--seed", "0", "--no-progress",
    "--set", "tasks_per_step=4", "--set", "group_size=4", "--set", "eval_tasks=8", "--set", "eval_every=0",
    "--set", "checkpoint_every=1", "--set", "keep_checkpoints=8", "--set", "episodes_every=1",
    "--set", "learner.micro_batch_size=4",
]  # fmt: skip
# at the recipe's lr (2e-4). Adam turns float-order noise in a near-zero gradient into an lr-sized
# step, so four steps of two ranks (another summation order) end within ~1e-5 of one process, not 1e-7


def train(
    runs: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agentrl", "train", "--runs-dir", str(runs), *TRAIN, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ | {"OMP_NUM_THREADS": "1"},
    )


def deepspeed(stage: int) -> list[str]:
    return ["--set", "learner.backend=deepspeed", "--set", f"learner.zero_stage={stage}"]


def weights(run: Path, step: int | None = None) -> dict[str, torch.Tensor]:
    folder = run / "checkpoints" / (f"step-{step:06d}" if step else "last")
    return load_file(folder / "model.safetensors")


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def sampled_tokens(run: Path, step: int) -> list[list[int]]:
    store = EpisodeStore(run)
    kept = [r["id"] for r in store.rows() if r["split"] == "train" and r["step"] == step]
    return [store.episode(i)["tokens"]["ids"] for i in kept]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tmp_path_factory.mktemp("ranks")


@pytest.fixture(scope="module")
def one_process(runs):
    proc = train(runs, "--name", "one")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return runs / "one"


@pytest.fixture(scope="module", params=[2, 3], ids=["zero2", "zero3"])
def two_ranks(request, runs):
    name = f"two-zero{request.param}"
    proc = train(runs, "--nproc", "2", *deepspeed(request.param), "--name", name)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return request.param, runs / name


def test_two_ranks_train_the_one_process_batches_to_its_weights(one_process, two_ranks):
    _, run = two_ranks
    for step in range(1, STEPS + 1):  # rank 0 rolls out: the same episodes at every step
        assert sampled_tokens(run, step) == sampled_tokens(one_process, step), step
    moved = max_diff(weights(one_process), load_file(DEFAULT_MODEL / "model.safetensors"))
    assert moved > 1e-4  # the runs did train
    assert max_diff(weights(run), weights(one_process)) < 1e-5
    shards = sorted(p.name for p in (run / "checkpoints" / "last" / "deepspeed" / "zero").iterdir())
    assert sum("optim_states" in name for name in shards) == 2  # one optimizer shard per rank


def rank_pid(marker: str, rank: int, timeout: float = 120) -> int:
    """The pid of the process launched with ``AGENTRL_TEST_MARK=marker`` and ``RANK=rank``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            try:
                env = (entry / "environ").read_bytes().split(b"\0")
            except (OSError, ValueError):
                continue
            if f"AGENTRL_TEST_MARK={marker}".encode() in env and f"RANK={rank}".encode() in env:
                return int(entry.name)
        time.sleep(0.2)
    raise AssertionError(f"no rank {rank} process appeared")


def test_a_killed_rank_stops_the_run_in_one_line_and_resume_reaches_the_same_weights(runs, two_ranks):
    stage, uninterrupted = two_ranks
    name, marker = f"killed-zero{stage}", uuid.uuid4().hex
    cmd = [sys.executable, "-m", "agentrl", "train", "--runs-dir", str(runs), *TRAIN, "--nproc", "2"]
    proc = subprocess.Popen(
        [*cmd, *deepspeed(stage), "--name", name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"OMP_NUM_THREADS": "1", "AGENTRL_TEST_MARK": marker},
        start_new_session=True,
    )
    run = runs / name
    try:
        pid = rank_pid(marker, 1)
        deadline = time.monotonic() + 180
        while not (run / "checkpoints" / "step-000002").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended before its second checkpoint"
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=120)  # no hang: the launcher stops rank 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 2
    assert err.strip().splitlines()[-1] == (
        f"agentrl: error: rank 1 (pid {pid}) was killed by SIGKILL; the other ranks were stopped "
        "(agentrl train --resume RUN_DIR continues from the last checkpoint)"
    )
    done = sorted(p.name for p in (run / "checkpoints").glob("step-*") if not p.name.endswith(".tmp"))
    assert "step-000002" in done and f"step-{STEPS:06d}" not in done

    wrong = subprocess.run(
        [sys.executable, "-m", "agentrl", "train", "--resume", str(run), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"OMP_NUM_THREADS": "1"},
    )
    assert wrong.returncode == 2
    assert "shards of 2 ranks; resume it with as many ranks" in wrong.stderr

    resumed = subprocess.run(
        [sys.executable, "-m", "agentrl", "train", "--resume", str(run), "--nproc", "2", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"OMP_NUM_THREADS": "1"},
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert max_diff(weights(run), weights(uninterrupted)) < 1e-6
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(STEPS + 1))  # each step logged once, the killed step's partial record gone

    evaluated = subprocess.run(
        [sys.executable, "-m", "agentrl", "eval", "--env", "math_tool", "-n", "4", "--no-progress",
         "--output", str(runs / f"eval-{name}"), "--model", str(run / "checkpoints" / "last")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]


def test_a_node_that_never_joins_ends_the_run_in_one_line(runs):
    started = time.monotonic()
    args = ["--nproc", "1", "--nnodes", "2", "--node-rank", "0", "--master-port", str(free_port())]
    proc = train(runs, *deepspeed(2), *args, "--join-timeout", "3", "--name", "alone", timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"agentrl: error: node 0 of 2: not every node joined the rendezvous at 127.0.0.1:{args[-1]} within 3 s "
        "(--join-timeout); start agentrl train with the same --nnodes, --master-addr and --master-port on every "
        "node (DistStoreError)"
    ]
    assert time.monotonic() - started < 60
    assert not (runs / "alone").exists()


def test_two_launchers_on_localhost_form_one_run_of_two_nodes(runs):
    port = str(free_port())
    nodes = [
        subprocess.Popen(
            [sys.executable, "-m", "agentrl", "train", "--runs-dir", str(runs), *TRAIN, *deepspeed(2),
             "--nproc", "1", "--nnodes", "2", "--node-rank", str(rank), "--master-port", port, "--name", "nodes"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"},
        )
        for rank in (1, 0)  # node 1 first: it waits for node 0
    ]  # fmt: skip
    for node in nodes:
        _, err = node.communicate(timeout=300)
        assert node.returncode == 0, err[-3000:]
    shards = list((runs / "nodes" / "checkpoints" / "last" / "deepspeed" / "zero").glob("*optim_states.pt"))
    assert len(shards) == 2  # one per node's rank


def test_a_port_in_use_on_node_0_is_one_line(runs):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = train(runs, *deepspeed(2), "--nproc", "2", "--master-port", str(port), "--name", "busy", timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"agentrl: error: node 0 of 1: the rendezvous at 127.0.0.1:{port} failed: ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nproc", "2"], "2 learner ranks (--nproc / --nnodes) train data-parallel: set learner.backend=deepspeed"),
        (["--nproc", "0"], "--nproc must be at least 1, got 0"),
        (["--nnodes", "2", "--node-rank", "2"], "--node-rank must be in 0..1 (--nnodes 2), got 2"),
        (["--join-timeout", "0"], "--join-timeout must be positive, got 0"),
        (["--set", "learner.zero_stage=1"], "learner: zero_stage=1 is not allowed"),
    ],
)
def test_bad_launch_values_are_one_line(runs, args, message):
    proc = train(runs, *args, "--name", "bad", timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr

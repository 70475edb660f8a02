"""search_qa trains for real through the HTTP retriever: a server killed mid-run stops the run
with one line naming the checkpoint, and ``--resume`` continues once the server is back; a
server that is not there stops the run before it starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentrl_envs.search_world import write_corpus
from helpers import ServerProcess

TESTS = Path(__file__).resolve().parents[1]


def _train(*args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "agentrl.cli.main", "train", *args, "--no-progress"]
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _steps(run: Path) -> list[int]:
    path = run / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.is_file() else []
    return [json.loads(line)["step"] for line in lines if line.strip()]


@pytest.mark.slow
def test_a_dead_retriever_stops_the_run_and_resume_continues(tmp_path):
    corpus = write_corpus(tmp_path / "world.jsonl")
    server = ServerProcess(corpus).start()
    url = server.url
    run = tmp_path / "runs" / "search"
    options = ["--set", "tasks_per_step=16", "--set", "group_size=2", "--set", "eval_tasks=8"]
    options += ["--set", "checkpoint_every=2", "--set", "eval_every=0", "--set", "episodes_every=0"]
    env_args = ["--env-arg", f"retriever={url}", "--env-arg", "timeout_s=1", "--env-arg", "retries=1"]
    # every turn searches (helpers.SearchEveryTurn), so the run's tool calls do not depend on the model
    training = _train("--env", "helpers:SearchEveryTurn", "--algo", "grpo", "--steps", "8", *env_args, *options,
                      "--runs-dir", str(run.parent), "--name", run.name)  # fmt: skip
    try:
        deadline = time.time() + 240
        while 2 not in _steps(run) and training.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert 2 in _steps(run), training.communicate()[1] if training.poll() is not None else "too slow"
        server.kill()  # SIGKILL, mid-run, while step 3 or later rolls out
        _, stderr = training.communicate(timeout=240)
    finally:
        training.kill()
        server.kill()
    assert training.returncode == 2, stderr
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("agentrl: error: step "), stderr
    assert f"failed on the service's side (search at {url}: " in line, stderr
    assert f"agentrl train --resume {run} continues from its last checkpoint, step-" in line
    stopped = max(_steps(run))
    assert stopped < 8 and (run / "checkpoints" / f"step-{stopped:06d}").is_dir()  # nothing lost

    server = ServerProcess(corpus, server.port).start()
    try:
        resumed = _train("--resume", str(run))
        _, stderr = resumed.communicate(timeout=300)
    finally:
        resumed.kill()
        server.kill()
    assert resumed.returncode == 0, stderr
    steps = _steps(run)
    assert sorted(s for s in steps if s) == list(range(1, 9)), steps  # each step once, none twice
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # the resumed steps found the retriever up (a step before the stop may have lost a few calls
    # to the kill and still trained, below max_service_failure_rate)
    resumed_rows = [r for r in rows if r["step"] > stopped and "rollout/tool_service_failure_rate" in r]
    assert resumed_rows and all(r["rollout/tool_service_failure_rate"] == 0.0 for r in resumed_rows)


def test_an_unreachable_retriever_is_one_line_before_any_training(tmp_path, capsys):
    from agentrl.cli.main import main

    args = ["train", "--env", "search_qa", "--env-arg", "retriever=http://127.0.0.1:9", "--runs-dir", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("agentrl: error: retriever at http://127.0.0.1:9 is not reachable") and "\n" not in err
    assert "agentrl serve retriever --corpus FILE" in err
    assert not any(tmp_path.rglob("metrics.jsonl"))  # nothing trained, nothing logged

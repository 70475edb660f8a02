"""A run's history stays true across a kill: after ``--resume``, ``metrics.jsonl`` holds exactly
one line per step, elapsed time continues, the episode store holds each step's episodes once, and
wandb continues the same run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentrl import curves
from agentrl.cli.main import main
from agentrl.episodes import EpisodeStore, EpisodeWriter
from agentrl.trainer import history
from agentrl.trainer.logging import MetricsLogger
from agentrl.trainer.setup import DEFAULT_MODEL

SMALL = [
    "--model", str(DEFAULT_MODEL), "--algo", "grpo", "--no-progress",
    "--set", "tasks_per_step=2", "--set", "group_size=2", "--set", "eval_tasks=2", "--set", "eval_every=0",
    "--set", "sampling.max_new_tokens=16", "--set", "episodes_every=1",
]  # fmt: skip


def steps_logged(run_dir: Path) -> list[int]:
    rows, skipped = curves.read(run_dir / "metrics.jsonl")
    assert skipped == 0
    return [row["step"] for row in rows]


def write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines))


# -- rewind -------------------------------------------------------------------------------------


def store_of(run_dir: Path, train_steps, eval_steps, per_step: int = 2) -> EpisodeStore:
    writer = EpisodeWriter(run_dir / "episodes")
    for split, steps in (("train", train_steps), ("eval", eval_steps)):
        for s in steps:
            writer.write(s, split, [{"id": f"{split}-{s}-{i}", "step": s, "split": split} for i in range(per_step)])
    return EpisodeStore(run_dir)


def test_rewind_keeps_the_steps_up_to_the_checkpoint_and_their_episodes(tmp_path):
    rows = [json.dumps({"step": s, "x": s}) for s in (0, 1, 2, 3, 4, 3)]
    write_lines(tmp_path / "metrics.jsonl", [*rows, '{"step": 5, "x"'])  # the last line cut by a kill
    store = store_of(tmp_path, train_steps=(1, 2, 3, 4), eval_steps=(0, 2, 4))
    assert history.rewind(tmp_path, 2) == 4
    assert steps_logged(tmp_path) == [0, 1, 2]
    assert store.steps("train") == [1, 2] and store.steps("eval") == [0, 2] and len(store.rows()) == 8
    files = sorted(p.name for p in (tmp_path / "episodes").iterdir())
    assert files == [
        "index.jsonl.gz",
        *(f"step-{s:06d}.{k}.jsonl.gz" for s, k in ((0, "eval"), (1, "train"), (2, "eval"), (2, "train"))),
    ]
    assert not (tmp_path / "metrics.jsonl.tmp").exists()


def test_rewind_keeps_the_first_of_a_step_logged_twice(tmp_path):
    write_lines(tmp_path / "metrics.jsonl", [json.dumps({"step": s, "run": r}) for s, r in ((0, 0), (1, 0), (1, 1))])
    history.rewind(tmp_path, 1)
    assert curves.read(tmp_path / "metrics.jsonl")[0] == [{"step": 0, "run": 0}, {"step": 1, "run": 0}]


def test_rewind_without_a_checkpoint_starts_the_history_afresh(tmp_path):
    write_lines(tmp_path / "metrics.jsonl", [json.dumps({"step": s}) for s in (0, 1)])
    store = store_of(tmp_path, train_steps=(1,), eval_steps=(0,))
    assert history.rewind(tmp_path, None) == 2
    assert (tmp_path / "metrics.jsonl").read_text() == ""
    assert store.rows() == [] and [p.name for p in (tmp_path / "episodes").iterdir()] == ["index.jsonl.gz"]


def test_rewind_of_a_run_with_nothing_logged_is_a_no_op(tmp_path):
    assert history.rewind(tmp_path, 3) == 0
    assert not (tmp_path / "metrics.jsonl").exists()


def test_read_skips_and_counts_lines_that_are_not_rows(tmp_path):
    write_lines(tmp_path / "m.jsonl", ['{"step": 1}', "[1, 2]", '{"step": "two"}', "", '{"step": 3, "a"'])
    assert curves.read(tmp_path / "m.jsonl") == ([{"step": 1}], 3)


# -- a real SIGKILL ----------------------------------------------------------------------------


def kill_when_logged(run_dir: Path, argv: list[str], step: int) -> None:
    """Start ``agentrl train`` in a process and SIGKILL it as soon as it has logged ``step``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentrl.cli.main", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        if (run_dir / "metrics.jsonl").exists() and step in steps_logged(run_dir):
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def killed_run(tmp_path, *, steps, checkpoint_every, after_step):
    """The directory of a small run of ``steps`` steps, SIGKILLed once ``after_step`` is logged."""
    run_dir = tmp_path / "run"
    argv = ["train", "--steps", str(steps), "--runs-dir", str(tmp_path), "--name", "run"]
    argv += ["--set", f"checkpoint_every={checkpoint_every}", *SMALL]
    kill_when_logged(run_dir, argv, after_step)
    return run_dir


@pytest.mark.slow
def test_a_run_killed_past_its_checkpoint_resumes_with_one_line_per_step(tmp_path):
    run_dir = killed_run(tmp_path, steps=5, checkpoint_every=2, after_step=3)
    assert (run_dir / "checkpoints" / "step-000002").is_dir()
    assert not (run_dir / "checkpoints" / "step-000004").exists(), "killed too late to test anything"
    killed_elapsed = {r["step"]: r["time/elapsed_s"] for r in curves.read(run_dir / "metrics.jsonl")[0] if r["step"]}
    with (run_dir / "metrics.jsonl").open("a") as handle:
        handle.write('{"step": 4, "rollout/rew')  # a line cut by the kill

    assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 0
    assert steps_logged(run_dir) == [0, 1, 2, 3, 4, 5]
    rows = {r["step"]: r for r in curves.read(run_dir / "metrics.jsonl")[0]}
    elapsed = [rows[s]["time/elapsed_s"] for s in range(1, 6)]
    assert elapsed == sorted(elapsed) and len(set(elapsed)) == 5  # continues; does not restart from 0
    assert elapsed[:2] == [killed_elapsed[1], killed_elapsed[2]]  # the lines up to the checkpoint, as they were
    assert elapsed[2] > killed_elapsed[2]
    store = EpisodeStore(run_dir)
    assert store.steps("train") == [1, 2, 3, 4, 5] and store.steps("eval") == [0, 5]
    ids = [r["id"] for r in store.rows()]
    assert len(ids) == len(set(ids)) == 5 * 4 + 2 * 2  # each step's 2 tasks x 2 samples once; 2 held-out twice
    assert all(store.episode(i) is not None for i in ids)
    trainer_state = json.loads((run_dir / "checkpoints" / "last" / "trainer.json").read_text())
    assert trainer_state["step"] == 5 and trainer_state["elapsed_s"] == pytest.approx(elapsed[-1])


@pytest.mark.slow
def test_resuming_a_run_killed_before_its_first_checkpoint_starts_afresh(tmp_path):
    run_dir = killed_run(tmp_path, steps=3, checkpoint_every=10, after_step=1)
    assert not (run_dir / "checkpoints").exists() or not any((run_dir / "checkpoints").glob("step-*"))
    assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 0
    assert steps_logged(run_dir) == [0, 1, 2, 3]


# -- wandb -------------------------------------------------------------------------------------


def test_a_resumed_logger_continues_the_same_wandb_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    first = MetricsLogger(tmp_path, use_wandb=True, name="run")
    for step in (1, 2, 3):
        first.log(step, {"x": float(step)})
    first.close()
    assert first.wandb_id
    again = MetricsLogger(tmp_path, use_wandb=True, name="run", wandb_id=first.wandb_id, resume_step=2)
    again.log(3, {"x": 30.0})
    again.close()
    assert again.wandb_id == first.wandb_id
    runs = sorted((tmp_path / "wandb").glob("offline-run-*"))
    # offline-run-<time>-<id>; wandb adds "-1" to the second when both start within one second
    assert len(runs) == 2 and all(r.name.removesuffix("-1").endswith(first.wandb_id) for r in runs)


@pytest.mark.slow
def test_the_checkpoint_remembers_the_wandb_run_which_gets_episode_tables(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    argv = ["train", "--steps", "1", "--runs-dir", str(tmp_path), "--name", "run", "--logger", "wandb", *SMALL]
    assert main(argv) == 0
    state = json.loads((tmp_path / "run" / "checkpoints" / "last" / "trainer.json").read_text())
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and runs[0].name.endswith(state["wandb_id"])
    tables = sorted(runs[0].glob("files/media/table/eval/episodes_*.table.json"))
    assert len(tables) == 2  # the held-out episodes of both evaluations, at steps 0 and 1
    table = json.loads(tables[0].read_text())
    assert table["columns"][:4] == ["step", "task_id", "prompt", "response"] and len(table["data"]) == 2
    assert all(row[2] and row[3] for row in table["data"])  # prompt and response text

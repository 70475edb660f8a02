"""``agentrl train`` on the tiny model: the run directory, resume after SIGKILL, a full disk
while checkpointing, and one-line errors for bad input."""

import errno
import json
import math
import os
import signal
import subprocess
import sys
import time
import warnings

import pytest
import torch
from transformers import AutoModelForCausalLM

from agentrl.algos import names
from agentrl.cli.main import main
from agentrl.trainer.setup import DEFAULT_MODEL

SMALL = [
    "--set",
    "tasks_per_step=4",
    "--set",
    "group_size=4",
    "--set",
    "eval_tasks=8",
    "--set",
    "eval_every=2",
    "--set",
    "checkpoint_every=1",
    "--set",
    "sampling.max_new_tokens=24",
    "--set",
    "learner.lr=1e-3",
    "--no-progress",
]


def train_args(model, runs, name, steps, algo="grpo"):
    return [
        "train",
        "--model",
        str(model),
        "--algo",
        algo,
        "--steps",
        str(steps),
        "--runs-dir",
        str(runs),
        "--name",
        name,
        *SMALL,
    ]


def final_weights(run_dir):
    return torch.load(run_dir / "checkpoints" / "last" / "learner.pt", weights_only=False)["model"]


@pytest.mark.slow
def test_train_writes_a_run_directory_that_eval_can_read(tiny_chatml, tmp_path, capsys):
    assert main(train_args(tiny_chatml, tmp_path, "run", 2)) == 0
    out = capsys.readouterr().out
    assert "grpo on math_tool: 2 steps, held-out accuracy" in out
    run = tmp_path / "run"
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [0, 1, 2]
    for key in (
        "rollout/reward_mean",
        "rollout/tokens_per_s",
        "loss/total",
        "grad/norm",
        "time/sync_s",
        "time/eval_s",
        "time/elapsed_s",
        "eval/accuracy",
    ):
        assert key in lines[2], key
    assert (run / "config.yaml").is_file() and (run / "checkpoints" / "last" / "config.json").is_file()
    assert (
        main(
            [
                "eval",
                "--env",
                "math_tool",
                "--model",
                str(run),  # the run folder: its last checkpoint
                "-n",
                "2",
                "--output",
                str(tmp_path / "ev"),
                "--no-progress",
            ]
        )
        == 0
    )
    made_by = json.loads((tmp_path / "ev" / "metrics.json").read_text())["made_by"]
    assert made_by["model"] == str(run / "checkpoints" / "last")
    capsys.readouterr()
    kept = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert main(["train", "--resume", str(run)]) == 0  # a finished run: said, and nothing touched
    assert capsys.readouterr().out == (
        f"{run} has already trained its 2 steps (its last checkpoint is step 2); nothing to do. "
        f"To train further: agentrl train --resume {run} --steps 4\n"
    )
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == kept
    for flags in (["--env", "search_qa"], ["--algo", "vcpo"], ["--set", "algo_args.clip_high=0.3"], ["--seed", "7"]):
        assert main(["train", "--resume", str(run), "--steps", "4", *flags]) == 2  # another run: refused
        err = capsys.readouterr().err
        assert err.startswith(f"agentrl: error: {run} was trained with ") and "a resumed run keeps its" in err, err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == kept


@pytest.mark.slow
@pytest.mark.parametrize("algo", names())
def test_every_algorithm_trains_through_the_loop(algo, tmp_path):
    """Every registered objective runs two steps of the real loop on the default model (which
    earns some reward, so group-relative advantages are not all zero) and moves its weights."""
    args = [*train_args(DEFAULT_MODEL, tmp_path, algo, 2, algo=algo), "--set", "eval_every=0", "--set", "eval_tasks=2"]
    assert main([*args, "--set", "tasks_per_step=8"]) == 0
    rows = [json.loads(line) for line in (tmp_path / algo / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert all(math.isfinite(rows[-1][k]) for k in ("loss/total", "grad/norm", "rollout/reward_mean"))
    assert rows[-1]["learner/step"] >= 2 and rows[-1]["learner/skipped_steps"] == 0
    initial = AutoModelForCausalLM.from_pretrained(DEFAULT_MODEL).state_dict()
    assert any(not torch.equal(initial[k], v) for k, v in final_weights(tmp_path / algo).items() if k in initial)


# SPEAR with a replay buffer that holds entries at the step-1 checkpoint (27 with the default
# model; buffer_size 24 fires above 36) and fires after it (step 2), so an exact resume needs the buffer, its
# generator and the step counter restored.
RESUMED = {
    "grpo": ["--algo", "grpo"],
    "spear": ["--algo", "spear", "--set", "algo_args.buffer_size=24", "--set", "tasks_per_step=16"],
}


@pytest.mark.slow
@pytest.mark.parametrize("algo", sorted(RESUMED))
def test_a_killed_run_resumes_exactly(algo, tmp_path):
    """SIGKILL mid-training, resume: the final weights equal an uninterrupted run's."""

    def args(name):
        return [*train_args(DEFAULT_MODEL, tmp_path, name, 4), *RESUMED[algo]]

    assert main(args("straight")) == 0
    cmd = [sys.executable, "-m", "agentrl.cli.main", *args("killed")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = tmp_path / "killed" / "checkpoints" / "step-000001"
    deadline = time.time() + 300
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "checkpoints" / "step-000004").exists()
    assert main(["train", "--resume", str(tmp_path / "killed"), "--no-progress"]) == 0
    straight, resumed = final_weights(tmp_path / "straight"), final_weights(tmp_path / "killed")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    rows = [json.loads(line) for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 4 and 4 in [r["step"] for r in rows]
    if algo == "spear":
        by_step = {r["step"]: r for r in rows if "replay/buffer_size" in r}
        assert by_step[1]["replay/buffer_size"] > 0, by_step[1]  # the checkpoint held replay entries
        assert any(by_step[s].get("replay/rows", 0) > 0 for s in (2, 3, 4)), rows  # and replay fired after it


@pytest.mark.slow
def test_a_full_disk_while_checkpointing_loses_nothing(tiny_chatml, tmp_path, monkeypatch, capsys):
    from agentrl.trainer import checkpoint

    real_save, calls = torch.save, []

    def save(obj, path, *args, **kwargs):
        calls.append(path)
        if len(calls) > 2:  # the second checkpoint (each writes learner.pt and rng.pt) hits a full disk
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(checkpoint.torch, "save", save)
    assert main(train_args(tiny_chatml, tmp_path, "full", 3)) == 2
    error = [line for line in capsys.readouterr().err.splitlines() if line.startswith("agentrl:")]
    assert error == [
        "agentrl: error: writing the step-2 checkpoint failed (No space left on device); "
        "the last complete checkpoint is step-000001"
    ]
    ckpt = tmp_path / "full" / "checkpoints"
    assert sorted(p.name for p in ckpt.iterdir()) == ["last", "step-000001"]
    assert checkpoint.latest(ckpt).name == "step-000001"
    checkpoint.load(ckpt / "step-000001")  # intact and readable


def test_a_step_where_every_episode_failed_stops_with_the_first_error(tiny_chatml, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AGENTRL_TEST_BROKEN_RESET", "1")
    args = [*train_args(tiny_chatml, tmp_path, "broken", 2), "--env", "helpers:BrokenResetEnv"]
    assert main(args) == 2
    error = [line for line in capsys.readouterr().err.splitlines() if line.startswith("agentrl:")]
    assert error == [
        "agentrl: error: step 1: no episode sampled a token (16 of 16 ended with an error; "
        f"the first: RuntimeError: reset failed); agentrl train --resume {tmp_path / 'broken'} continues from "
        "the start (no checkpoint yet)"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--env", "nope"], "unknown environment 'nope'"),
        (["--algo", "nope"], "unknown algorithm 'nope'"),
        (["--set", "stepz=3"], "unknown option 'stepz'"),
        (["--steps", "-4"], "steps=-4 is out of range"),
        (["--set", "learner.lr=-1"], "lr=-1 is out of range"),
        (["--set", "algo_args.clip_low=5"], "clip_low=5 is out of range"),
        (["--model", "{tmp}"], "is not a Hugging Face model directory"),
        (["--config", "{tmp}/none.yaml"], "does not exist"),
        (["--resume", "{tmp}"], "is not a run directory"),
    ],
)
def test_bad_input_is_one_line(tmp_path, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    cmd = [
        sys.executable,
        "-m",
        "agentrl.cli.main",
        "train",
        "--runs-dir",
        str(tmp_path / "runs"),
        "--algo",
        "grpo",
        *args,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_an_existing_run_directory_is_refused(tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    assert main(["train", "--runs-dir", str(tmp_path), "--name", "taken", "--model", str(tmp_path)]) == 2
    assert "exists; use --resume" in capsys.readouterr().err


def test_plot_writes_pngs(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    run = tmp_path / "run"
    run.mkdir()
    rows = (
        [{"step": 0, "eval/accuracy": 0.2}]
        + [
            {
                "step": s,
                "rollout/reward_mean": s / 10,
                "policy/entropy": 1 - s / 20,
                "loss/approx_kl": 0.01 * s,
                "loss/clipfrac_low": 0.0,
                "loss/clipfrac_high": 0.1,
                "rollout/tokens_per_s": 900.0,
                "async/staleness/0": 10.0 - s,
                "async/staleness/1": float(s),
            }
            for s in range(1, 6)
        ]
        + [{"step": 5, "eval/accuracy": 0.4}]
    )
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert main(["plot", str(run)]) == 0
    names = sorted(p.name for p in (run / "plots").iterdir())
    assert names == [
        "accuracy.png",
        "clip_fraction.png",
        "entropy.png",
        "kl.png",
        "reward.png",
        "staleness.png",
        "tokens_per_s.png",
    ]
    assert all((run / "plots" / n).read_bytes()[:4] == b"\x89PNG" for n in names)
    assert main(["plot", str(tmp_path)]) == 2


@pytest.mark.slow
def test_time_limit_stops_evaluates_and_checkpoints(tiny_chatml, tmp_path, capsys):
    limits = ["--set", "time_limit_min=0.01", "--set", "checkpoint_every=50"]
    args = [*train_args(tiny_chatml, tmp_path, "timed", 1000), *limits]
    assert main(args) == 0
    assert "held-out accuracy" in capsys.readouterr().out
    rows = [json.loads(line) for line in (tmp_path / "timed" / "metrics.jsonl").read_text().splitlines()]
    last = rows[-1]["step"]
    assert 1 <= last < 1000 and "eval/accuracy" in rows[-1]  # stopped on time, evaluated at the stop
    assert (tmp_path / "timed" / "checkpoints" / f"step-{last:06d}").is_dir()  # and checkpointed there


@pytest.mark.slow
def test_wandb_logger_works_offline(tiny_chatml, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    assert main([*train_args(tiny_chatml, tmp_path, "wb", 2), "--logger", "wandb"]) == 0
    (run_file,) = (tmp_path / "wb" / "wandb").glob("offline-run-*/run-*.wandb")
    deadline = time.time() + 30  # wandb's own service process writes the file; once (of many
    while time.time() < deadline:  # full-suite runs) it held only its header right after finish()
        data = run_file.read_bytes()
        if b"rollout/reward_mean" in data and b"eval/accuracy" in data:
            break
        time.sleep(0.2)
    assert b"rollout/reward_mean" in data and b"eval/accuracy" in data
    assert len((tmp_path / "wb" / "metrics.jsonl").read_text().splitlines()) == 3  # the JSONL is written too


def test_turns_cut_by_the_token_limit_are_warned_about_once(tmp_path):
    from agentrl.cli.main import main

    args = ["train", "--env", "math", "--algo", "grpo", "--steps", "3", "--no-progress", "--runs-dir", str(tmp_path)]
    args += ["--set", "tasks_per_step=4", "--set", "group_size=2", "--set", "eval_tasks=2"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main([*args, "--set", "sampling.max_new_tokens=2", "--name", "cut"]) == 0
    warned = [str(w.message) for w in caught if "hit the per-turn token limit" in str(w.message)]
    assert len(warned) == 1 and warned[0].startswith("step 1: 100% of turns"), warned  # once, not every step
    assert "sampling.max_new_tokens=2" in warned[0] and "recipe" not in warned[0]  # none ships for math
    from agentrl import recipes

    assert recipes.for_env("math") == [] and "tool_use_grpo" in recipes.for_env("tool_use")
    rows = [json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["rollout/turn_length_rate"] for r in rows if r["step"]] == [1.0, 1.0, 1.0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main([*args, "--set", "sampling.max_new_tokens=256", "--name", "uncut"]) == 0  # room: no warning
    assert not [w for w in caught if "per-turn token limit" in str(w.message)]


@pytest.mark.slow
def test_a_damaged_last_checkpoint_names_the_one_to_resume_from(tiny_chatml, tmp_path, capsys):
    """A truncated learner.pt (a disk that filled after the rename, a copy cut short): the resume
    refuses in one line that names the earlier checkpoint and how to resume from it, which works."""
    assert main([*train_args(tiny_chatml, tmp_path, "run", 2), "--set", "checkpoint_every=1"]) == 0
    checkpoints = tmp_path / "run" / "checkpoints"
    learner = checkpoints / "step-000002" / "learner.pt"
    learner.write_bytes(learner.read_bytes()[:100])
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "run"), "--steps", "3", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "step-000002 is damaged; to resume from step-000001" in err and len(err.splitlines()) == 1
    (checkpoints / "step-000002").rename(tmp_path / "damaged")
    assert main(["train", "--resume", str(tmp_path / "run"), "--steps", "3", "--no-progress"]) == 0
    assert "resuming" in capsys.readouterr().out

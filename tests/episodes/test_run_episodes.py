"""A real run and a real evaluation keep their episodes, and ``agentrl show`` prints them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from agentrl.cli.main import main
from agentrl.engines.loading import load_tokenizer
from agentrl.episodes import EpisodeStore, keep
from agentrl.trainer.setup import DEFAULT_MODEL
from agentrl.types import Trajectory

SMALL = [
    "--model", str(DEFAULT_MODEL), "--env", "math_tool", "--algo", "grpo", "--no-progress",
    "--set", "tasks_per_step=2", "--set", "group_size=4", "--set", "eval_tasks=3", "--set", "eval_every=2",
    "--set", "sampling.max_new_tokens=24",
]  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    argv = ["train", "--steps", "5", "--runs-dir", str(runs), "--name", "r", "--set", "episodes_every=2", *SMALL]
    assert main(argv) == 0
    return runs / "r"


def test_a_run_keeps_every_episode_of_every_nth_step_with_the_learners_numbers(run_dir):
    store = EpisodeStore(run_dir)
    assert store.steps("train") == [2, 4, 5] and store.steps("eval") == [0, 2, 4, 5]  # every 2nd, and the last
    train = [r for r in store.rows() if r["split"] == "train"]
    assert len(train) == 3 * 2 * 4 and all(r["has_learner"] for r in train)  # 3 steps x 2 tasks x 4 samples
    record = store.episode(train[0]["id"])
    tokens, learner = record["tokens"], record["learner"]
    assert len(tokens["pieces"]) == len(tokens["ids"]) == len(learner["weight"]) == len(tokens["mask"])
    assert "".join(tokens["pieces"]).startswith("<|im_start|>system")
    sampled = [i for i, m in enumerate(tokens["mask"]) if m]
    assert sampled and all(learner["in_loss"][i] == 1 for i in sampled)
    assert all(learner["weight"][i] == 0 for i, m in enumerate(tokens["mask"]) if not m)
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    kept = {m["step"]: m.get("episodes/bytes") for m in metrics if m["step"]}
    assert kept[1] is None and kept[2] > 0 and kept[3] is None and kept[4] > 0 and kept[5] > 0


def test_show_lists_a_step_and_prints_a_transcript(run_dir, capsys):
    assert main(["show", str(run_dir)]) == 0  # the last step kept
    out = capsys.readouterr().out
    assert out.startswith("r: step 5, train, 8 episodes") and "--worst" in out and "mean reward" in out
    assert main(["show", str(run_dir), "--step", "2", "--best", "--tokens"]) == 0
    out = capsys.readouterr().out
    assert "step 2 · train" in out and "--- user" in out and "--- assistant, turn 0:" in out
    assert "mean logprob" in out and "advantage" in out and "--- sampled tokens" in out
    assert main(["show", str(run_dir), "--split", "eval", "--step", "0", "--episode", "2"]) == 0
    assert "step 0 · eval · episode 2 of 3" in capsys.readouterr().out


def test_an_evaluation_into_a_run_folder_is_refused_and_the_run_keeps_its_episodes(run_dir, capsys):
    before = len(EpisodeStore(run_dir).rows())
    argv = ["eval", "--model", str(run_dir), "--env", "math_tool", "-n", "2", "--output", str(run_dir)]
    assert main([*argv, "--no-progress"]) == 2
    assert "is a training run's folder" in capsys.readouterr().err
    assert len(EpisodeStore(run_dir).rows()) == before


def test_a_file_where_the_store_goes_stops_the_run_before_it_trains(run_dir, tmp_path, capsys):
    copy = tmp_path / "r"
    shutil.copytree(run_dir, copy)
    shutil.rmtree(copy / "episodes")
    (copy / "episodes").write_text("not a store")
    lines = (copy / "metrics.jsonl").read_text()
    assert main(["train", "--resume", str(copy), "--steps", "6", "--no-progress"]) == 2
    assert "episodes is a file, not the run's episode store" in capsys.readouterr().err
    assert (copy / "metrics.jsonl").read_text() == lines


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--step", "3"], "keeps no train episodes of step 3; it keeps steps 2, 4-5"),
        (["--episode", "99"], "--episode 99: the step has episodes 0 to 7"),
        (["--step", "0"], "it keeps steps 2, 4-5 (--split eval has step 0)"),
        (["--tokens"], "--tokens prints one episode's tokens: add --episode K, --worst or --best"),
    ],
)
def test_show_refuses_what_the_store_does_not_hold_in_one_line(run_dir, capsys, args, message):
    assert main(["show", str(run_dir), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_show_of_a_folder_without_a_store_says_so(tmp_path, capsys):
    assert main(["show", str(tmp_path)]) == 2
    assert "holds no episode store" in capsys.readouterr().err
    assert main(["show", str(tmp_path / "missing")]) == 2
    assert "missing does not exist" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["show", str(tmp_path / "file")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_an_evaluation_keeps_its_episodes(tmp_path, capsys):
    out = tmp_path / "ev"
    argv = ["eval", "--model", str(DEFAULT_MODEL), "--env", "math_tool", "--output", str(out), "--no-progress"]
    assert main([*argv, "-n", "3"]) == 0
    assert main([*argv, "-n", "2"]) == 0  # into the same folder: the earlier episodes go
    store = EpisodeStore(out)
    assert store.steps("eval") == [0] and len(store.rows()) == 2
    assert not any(r["has_learner"] for r in store.rows())
    assert main(["show", str(out), "--worst"]) == 0
    assert "step 0 · eval" in capsys.readouterr().out


def test_what_a_model_wrote_reaches_the_terminal_escaped(tmp_path, capsys):
    """A terminal escape, a NUL or a carriage return sampled by a model, or in a task id, prints
    as a visible escape; a character the terminal's encoding lacks is escaped, not an error."""
    trajectory = Trajectory(
        token_ids=[1, 2, 3],
        loss_mask=[0, 1, 1],
        behavior_logprobs=[0.0, -0.5, -0.5],
        turn_index=[-1, 0, 0],
        policy_version=[-1, 0, 0],
        reward=0.0,
        reward_components={},
        group_id="g",
        task_id="t\x1b]0;title\x07",
        env_id="e",
        episode_id="e0",
        terminated=True,
        truncated=False,
        num_turns=1,
        messages=[
            {"role": "user", "content": "q \u00e9"},
            {"role": "assistant", "content": "\x1b[2Jcleared\r\x00\ufffd"},
        ],
        temperature=1.0,
    )
    keep(tmp_path, [trajectory], load_tokenizer(str(DEFAULT_MODEL)), step=0, split="eval")
    assert main(["show", str(tmp_path), "--episode", "0", "--tokens"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x00" not in out and "\r" not in out and "\x07" not in out
    assert "\\x1b[2Jcleared\\x0d\\x00" in out and "task t\\x1b]0;title\\x07" in out
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    done = subprocess.run(
        [sys.executable, "-m", "agentrl.cli.main", "show", str(tmp_path), "--episode", "0"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and "Traceback" not in done.stderr and "\\xe9" in done.stdout, done.stderr

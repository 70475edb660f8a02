import json
import subprocess
import sys
from pathlib import Path

import pytest

from agentrl.cli.main import main
from agentrl.envs import Env, EnvSpec
from agentrl.errors import AgentRLWarning


def test_envs_list(capsys):
    assert main(["envs", "list"]) == 0
    out = capsys.readouterr().out
    assert "math_tool" in out and "agentrl" in out and "calculator" in out


def test_envs_check(capsys):
    assert main(["envs", "check", "math_tool", "--env-arg", "tool_format=hermes"]) == 0
    assert "passed check_env" in capsys.readouterr().out


@pytest.mark.slow
def test_eval_end_to_end(tiny_chatml, tmp_path, capsys):
    out = tmp_path / "eval"
    code = main(
        [
            "eval",
            "--env",
            "math_tool",
            "--model",
            str(tiny_chatml),
            "-n",
            "8",
            "--group-size",
            "2",
            "--max-new-tokens",
            "40",
            "--output",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    for key in ["accuracy", "pass@1", "pass@2", "mean_reward", "mean_turns", "tool_error_rate"]:
        assert key in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["episodes"] == 16 and 0.0 <= metrics["accuracy"] <= 1.0
    rows = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    assert len({r["episode_id"] for r in rows}) == 16 and all(r["env_id"] == "math_tool" for r in rows)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--env", "nope", "--model", "x"], "unknown environment 'nope'; known: math, math_tool"),
        (["--env", "math", "--model", "{tmp}"], "is not a Hugging Face model directory"),
        (["--env", "math", "--model", "{tmp}/missing"], "does not exist"),
        (["--env", "math", "--model", "x", "-n", "0"], "-n must be >= 1"),
        (["--env", "math", "--model", "x", "--temperature", "-2"], "temperature=-2.0 is out of range"),
        (["--env", "math_tool", "--model", "x", "--env-arg", "max_turns=0"], "max_turns=0 is out of range"),
        (["--env", "math_tool", "--model", "x", "--env-arg", "colour=red"], "unknown option 'colour'"),
        (["--env", "math_tool", "--model", "x", "--env-arg", "oops"], "expects KEY=VALUE"),
        (["--env", "math", "--model", "x", "--env-arg", "source={tmp}/none.jsonl"], "does not exist"),
        (["--env", "math", "--model", "{tmp}/weights.bin"], "weights.bin is a file, not a model directory"),
        (["--env", "math_tool", "--model", "x", "--env-arg", "max_turns=2.5"], "max_turns='2.5' is not a valid int"),
        (["--env", "math_tool", "--model", "x", "--env-arg", "word_problems=nan"], "word_problems=nan is not a finite"),
        (
            ["--env", "math_tool", "--model", "x", "--split", "tset"],
            "unknown split 'tset' of the task generator; valid splits: train, test, validation",
        ),
        (
            ["--env", "math", "--model", "x", "--env-arg", "source={tmp}/{split}.jsonl", "--split", "tset"],
            "no file for split 'tset' ({tmp}/tset.jsonl); valid splits: test, train",
        ),
        (
            ["--env", "math_tool", "-n", "x"],
            "argument -n/--num-tasks: invalid int value: 'x'; see `agentrl eval --help`",
        ),
        (["--model", "x"], "the following arguments are required: --env; see `agentrl eval --help`"),
        (["--env", "math", "--engine", "sglang"], "argument --engine: invalid choice: 'sglang'"),
        (["--env", "math", "--output", "{tmp}/weights.bin"], "--output {tmp}/weights.bin is a file; give a folder"),
        (["--env", "math", "--output", "{tmp}/weights.bin/out"], "is under {tmp}/weights.bin, which is a file"),
    ],
)
def test_eval_bad_input_is_one_line(tmp_path, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    message = message.replace("{tmp}", str(tmp_path))
    (tmp_path / "weights.bin").write_bytes(b"\0")
    for split in ("train", "test"):
        (tmp_path / f"{split}.jsonl").write_text('{"question": "1+1?", "answer": "2"}\n')
    result = subprocess.run([sys.executable, "-m", "agentrl.cli.main", "eval", *args], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("agentrl: error: ") and message in lines[0], result.stderr


def test_algos_list(capsys):
    from agentrl.algos import names

    assert main(["algos", "list"]) == 0
    out = capsys.readouterr().out.strip()
    lines, footer = out.split("\n\n")[0].splitlines(), out.split("\n\n")[1]
    assert [line.split()[0] for line in lines] == names()
    assert all(len(line.split(None, 1)) == 2 for line in lines)
    assert [line.split()[0] for line in lines if line.split()[1] == "*"] == ["vcpo"]  # the default, marked
    assert footer.startswith("* the default")


def test_algos_show_lists_options_with_defaults(capsys):
    assert main(["algos", "show", "spear"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("spear: SPEAR")
    assert "  entropy_coef" in out and "(default 0.001)" in out
    assert main(["algos", "show", "vcpo"]) == 0
    assert capsys.readouterr().out.startswith("vcpo (the default): ")
    assert main(["algos", "show", "nope"]) == 2
    assert "unknown algorithm 'nope'; known: " in capsys.readouterr().err


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "default vcpo" in out and "(default 0)" in out and "default: runs" in out
    assert "  learner.lr: " in out and "(default 0.0002)" in out  # the run's default, not LearnerConfig's
    assert "  sampling.max_new_tokens: most tokens sampled in one turn (default 48)" in out
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    assert "(default: 256)" in capsys.readouterr().out


def test_eval_defaults_to_the_shipped_model(tmp_path, capsys):
    assert main(["eval", "--env", "math_tool", "-n", "2", "--output", str(tmp_path), "--no-progress"]) == 0
    assert "accuracy" in capsys.readouterr().out


def test_eval_search_qa_reports_f1_searches_and_failures(tmp_path, capsys):
    args = ["eval", "--env", "search_qa", "-n", "8", "--output", str(tmp_path), "--no-progress"]
    assert main([*args, "--env-arg", "topk=2"]) == 0
    printed = dict(line.split(None, 1) for line in capsys.readouterr().out.strip().splitlines())
    assert {"accuracy", "mean_f1", "mean_searches", "tool_error_rate", "tool_service_failure_rate"} <= set(printed)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["episodes"] == 8 and set(metrics["components"]) == {"f1", "searches"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "steps=1.5"], "train: steps=1.5 is not a valid int"),
        (["--set", "group_size=true"], "train: group_size=True is not a valid int"),
        (["--set", "env_args=5"], "train: env_args=5 is not a valid mapping"),
        (["--set", "learner.lr=nan"], "learner: lr=nan is not a finite number"),
        (["--set", "sampling.temperature=-1"], "sampling: temperature=-1 is out of range"),
        (["--set", "oops"], "--set expects KEY=VALUE, got 'oops'"),
        (["--env-arg", "oops"], "--env-arg expects KEY=VALUE, got 'oops'"),
        (["--env-arg", "nonsense=1"], "math_tool: unknown option 'nonsense'"),
        (["--set", "env_args.nonsense=1"], "math_tool: unknown option 'nonsense'"),
        (["--env", f"{__name__}:Picky", "--set", "env_args.size=5"], "rejected its options (size=5): ValueError"),
        (["--config", "{tmp}"], "is a directory; pass a YAML file"),
        (["--config", "{tmp}/list.yaml"], "expected a mapping of options at the top level"),
        (["--resume", "{tmp}/missing"], "run directory {tmp}/missing does not exist"),
        (["--runs-dir", "{tmp}/list.yaml"], "list.yaml is a file, not a directory"),
        (["--name", "../escaped"], "--name '../escaped' is not a run name"),  # it would land outside runs/
        (["--name", "{tmp}/elsewhere"], "is not a run name: one folder name"),
        (["--name", ".."], "is not a run name"),
    ],
)
def test_train_bad_input_is_one_line(tmp_path, capsys, args, message):
    (tmp_path / "list.yaml").write_text("- 1\n")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(["train", "--runs-dir", str(tmp_path / "runs"), "--model", str(tmp_path / "none"), *args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"agentrl: error: {lines[0].removeprefix('agentrl: error: ')}"]
    assert message.replace("{tmp}", str(tmp_path)) in lines[0]
    assert not (tmp_path / "runs").exists()  # refused before anything was written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["list.yaml"]


class Picky(Env):
    """An environment whose own constructor refuses a size over 3."""

    rollout_spec = EnvSpec(max_turns=1)

    def __init__(self, size=1):
        if size > 3:
            raise ValueError(f"size {size} is too big")

    def reset(self, *, seed=None, options=None):
        raise NotImplementedError

    def step(self, action):
        raise NotImplementedError


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--bogus"], "unrecognized arguments: --bogus; see `agentrl train --help`"),
        (["train", "--logger", "tensorboard"], "argument --logger: invalid choice: 'tensorboard'"),
        (["train", "--steps"], "argument --steps: expected one argument; see `agentrl train --help`"),
        (["eval"], "the following arguments are required: --env; see `agentrl eval --help`"),
        (["envs"], "the following arguments are required: ACTION; see `agentrl envs --help`"),
        ([], "the following arguments are required: COMMAND; see `agentrl --help`"),
        (["fly"], "argument COMMAND: invalid choice: 'fly'"),
    ],
)
def test_argparse_errors_are_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("agentrl: error: ") and message in captured.err


@pytest.mark.parametrize("argv", [[], ["train"], ["eval"], ["plot"], ["envs", "check"]])
def test_help_is_plain_text(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: agentrl") and "``" not in text
    if argv == ["train"]:
        assert "--config (a recipe's name or a YAML file)" in text and "learner.lr:" in text


def test_plot_skips_a_line_cut_by_a_kill(tmp_path):
    pytest.importorskip("matplotlib")
    rows = [{"step": s, "rollout/reward_mean": s / 10} for s in range(1, 4)]
    text = "".join(json.dumps(r) + "\n" for r in rows) + '{"step": 4, "rollout/rew'  # killed mid-write
    (tmp_path / "metrics.jsonl").write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "agentrl.cli.main", "plot", str(tmp_path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"agentrl: warning: skipped 1 unreadable line(s) of {tmp_path / 'metrics.jsonl'}"
    ]
    assert result.stdout.split() == [str(tmp_path / "plots" / "reward.png")]
    assert (tmp_path / "plots" / "reward.png").read_bytes()[:4] == b"\x89PNG"


def test_plot_of_an_empty_metrics_file_is_one_line(tmp_path, capsys):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "rollout/rew')
    with pytest.warns(AgentRLWarning, match="skipped 1 unreadable line"):
        assert main(["plot", str(tmp_path)]) == 2
    assert "has no readable rows yet" in capsys.readouterr().err


def test_output_cut_short_by_the_reader_is_not_a_traceback():
    """``agentrl algos list | head -1``: the reader closes the pipe after one line."""
    for command in (["algos", "list"], ["envs", "list"]):
        proc = subprocess.Popen(
            [sys.executable, "-m", "agentrl.cli.main", *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert proc.stdout is not None and proc.stdout.readline()
        proc.stdout.close()
        stderr = proc.stderr.read().decode() if proc.stderr else ""
        assert proc.wait(timeout=60) in (0, 141) and "Traceback" not in stderr, stderr


@pytest.mark.parametrize("command", [["--help"], ["envs", "list"], ["train", "--help"], ["eval", "--help"]])
def test_help_and_envs_list_start_without_torch(command):
    """They answer in a fraction of a second: torch (about 1 s to import) is not loaded for them."""
    probe = (
        "import sys, contextlib, io\n"
        "from agentrl.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        f"    main({command!r})\n"
        "print(sorted(m for m in ('torch', 'transformers', 'vllm', 'deepspeed') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


def test_an_algorithm_by_class_path_gets_a_run_folder_without_a_colon(tmp_path, capsys):
    args = ["train", "--env", "math", "--algo", "agentrl.algos.grpo:GRPO", "--steps", "1", "--no-progress"]
    args += ["--set", "tasks_per_step=2", "--set", "group_size=2", "--set", "eval_tasks=2"]
    assert main([*args, "--runs-dir", str(tmp_path)]) == 0, capsys.readouterr().err
    (run,) = tmp_path.iterdir()
    assert run.name.startswith("math-agentrl.algos.grpo_GRPO-") and ":" not in run.name


def test_recipes_ship_and_load_by_name_or_path(tmp_path, monkeypatch, capsys):
    from agentrl import recipes
    from agentrl.trainer.config import load

    monkeypatch.chdir(tmp_path)  # no configs/ here: the recipe comes from the package
    assert load("tool_use_grpo").env == "tool_use"
    assert load("tool_use_grpo").sampling.max_new_tokens == load(recipes.path("tool_use_grpo")).sampling.max_new_tokens
    assert main(["configs", "list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.split("\n\n")[0].splitlines()]
    assert listed == recipes.names() and "tool_use_grpo" in listed
    assert main(["train", "--config", "tool_use_grpx"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("agentrl: error: no recipe or file named 'tool_use_grpx' (did you mean 'tool_use_grpo'?); ")
    assert err.count("\n") == 1
    Path("mine.yaml").write_text("env: math\nsteps: 3\n")
    assert load("mine.yaml").steps == 3  # a path still works


def test_plot_panels_read_at_a_glance():
    """Units on the y axis, no offset notation, whole steps, and flat series named flat."""
    plt = pytest.importorskip("matplotlib.pyplot")
    from agentrl.cli.plot_cmd import figure
    from agentrl.curves import UNITS

    ess = {"offpolicy/ess_frac": [(s, 1.0 - (s % 2) * 1e-7) for s in range(1, 6)]}
    fig = figure(plt, "r: offpolicy_ess", ess, UNITS["offpolicy_ess"], False)
    fig.canvas.draw()
    ax = fig.axes[0]
    assert ax.get_ylabel() == "ESS / batch size"
    assert ax.yaxis.get_offset_text().get_text() == ""  # not "1e-7+1"
    assert all(float(t).is_integer() for t in ax.get_xticks())
    plt.close(fig)

    kl = {"loss/approx_kl": [(s, 0.0) for s in range(1, 6)], "loss/kl_ref": [(s, 0.01 * s) for s in range(1, 6)]}
    fig = figure(plt, "r: kl", kl, UNITS["kl"], False)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["loss/approx_kl (flat at 0)", "loss/kl_ref"]
    plt.close(fig)

    stale = {"async/staleness/1": [(1, 3.0), (2, 2.0)], "async/staleness/2": [(1, 1.0), (2, 2.0)]}
    fig = figure(plt, "r: staleness", stale, UNITS["staleness"], True)
    fig.canvas.draw()
    assert all(float(t).is_integer() for t in fig.axes[0].get_yticks())  # no ticks at 1.5
    plt.close(fig)


def test_envs_check_shows_a_negative_zero_reward_as_zero():
    from agentrl.envs import EpisodeOverError, new_info
    from agentrl.envs.checker import check_env
    from agentrl.types import Task

    class Penalised(Env):
        rollout_spec = EnvSpec(max_turns=1)

        def tasks(self, split="test"):
            return [Task(id="t", prompt="say x", answer="x")]

        def reset(self, *, seed=None, options=None):
            self.done = False
            return [{"role": "user", "content": "say x"}], new_info(0)

        def step(self, text):
            if self.done:
                raise EpisodeOverError("reset first")
            self.done = True
            return [], -0.5 * 0.0, True, False, new_info(1)  # a penalty that came to -0.0

    log = check_env(Penalised)
    assert any(line.endswith("reward 0") for line in log) and not any("-0" in line for line in log), log


def test_the_eval_table_stays_aligned_with_long_keys(tmp_path, capsys):
    from agentrl.cli.eval_cmd import _print

    _print({"accuracy": 0.5, "tool_service_failure_rate": 0.0, "tool_error_rate[bad_args]": 0.25}, tmp_path)
    lines = capsys.readouterr().out.splitlines()
    assert len({line.index("  ", len(line) - len(line.lstrip())) for line in lines}) == 1, lines


def test_a_recipe_path_that_is_not_here_points_at_the_recipe_by_name(tmp_path, monkeypatch, capsys):
    """After a wheel install there is no configs/ folder: the README's path names the recipe."""
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--config", "configs/math_tool_grpo.yaml"]) == 2
    assert capsys.readouterr().err == (
        "agentrl: error: config file configs/math_tool_grpo.yaml does not exist; "
        "the recipe of that name ships with agentrl: --config math_tool_grpo\n"
    )

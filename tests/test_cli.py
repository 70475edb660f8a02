import json
import subprocess
import sys

import pytest

from agentrl.cli.main import main


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
    ],
)
def test_eval_bad_input_is_one_line(tmp_path, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = subprocess.run([sys.executable, "-m", "agentrl.cli.main", "eval", *args], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("agentrl: error: ") and message in lines[0], result.stderr


def test_algos_list(capsys):
    from agentrl.algos import names

    assert main(["algos", "list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == names()
    assert all(len(line.split(None, 1)) == 2 for line in lines)


def test_eval_defaults_to_the_shipped_model(tmp_path, capsys):
    assert main(["eval", "--env", "math_tool", "-n", "2", "--output", str(tmp_path), "--no-progress"]) == 0
    assert "accuracy" in capsys.readouterr().out

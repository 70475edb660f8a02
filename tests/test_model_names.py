"""``--model`` typos: a path that does not exist is one line at once, naming what is close, and
the hub is never asked; a hub name is left alone."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from agentrl.cli.main import main
from agentrl.errors import ModelLoadError
from agentrl.models.names import check_model_name, looks_local, run_model


def test_what_looks_local(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    for name in ("./m", "../m", "/abs/m", "~/m", "a/b/c", "runs/nope", ".", "runs/x/checkpoints/step-1"):
        assert looks_local(name), name
    for name in ("gpt2", "Qwen/Qwen3-0.6B", "org/model"):
        assert not looks_local(name), name


def test_a_missing_path_names_what_is_close(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "math-grpo").mkdir(parents=True)
    with pytest.raises(ModelLoadError) as near:
        check_model_name("runs/math-grp")
    assert str(near.value) == (
        "--model runs/math-grp does not exist (a local path, so the hub was not asked); did you mean runs/math-grpo?"
    )
    with pytest.raises(ModelLoadError, match=r"runs holds math-grpo$"):
        check_model_name("runs/zzz")
    with pytest.raises(ModelLoadError, match=r"nowhere/at does not exist either$"):
        check_model_name("./nowhere/at/all")
    check_model_name("runs/math-grpo")  # exists: fine
    check_model_name("org/model")  # a hub name: the hub's to answer
    check_model_name(None)  # the default model


@pytest.mark.parametrize("command", ["eval", "train"])
def test_a_typo_in_model_is_one_line_at_once(tmp_path, monkeypatch, capsys, command):
    monkeypatch.chdir(tmp_path)
    Path("runs").mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    started = time.perf_counter()
    assert main([command, "--env", "math", "--model", "runs/nope"]) == 2
    took = time.perf_counter() - started
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("agentrl: error: --model runs/nope does not exist"), err
    assert took < 5, took  # no hub retries (those took 49 s)
    assert not any(Path("runs").iterdir())  # no run folder made for it


def test_a_run_folder_means_its_last_checkpoint(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("env: math\n")
    with pytest.raises(ModelLoadError, match=r"is a run folder with no checkpoint yet"):
        run_model(str(run))
    (run / "checkpoints" / "last").mkdir(parents=True)
    (run / "checkpoints" / "last" / "config.json").write_text("{}")
    assert run_model(str(run)) == str(run / "checkpoints" / "last")
    assert run_model(str(run / "checkpoints")) == str(run / "checkpoints" / "last")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "config.yaml").write_text("")  # a model folder that also holds a config.yaml stays itself
    assert run_model(str(model)) == str(model)
    assert run_model("org/model") == "org/model" and run_model(None) is None


def test_a_typo_names_the_close_name(capsys):
    for argv, hint in [
        (["train", "--algo", "grpoo"], "unknown algorithm 'grpoo' (did you mean 'grpo'?)"),
        (["train", "--algo", "GRPO"], "unknown algorithm 'GRPO' (did you mean 'grpo'?)"),
        (["train", "--env", "math_tol"], "unknown environment 'math_tol' (did you mean 'math_tool'?)"),
        (
            ["train", "--config", "math_tool_grop"],
            "no recipe or file named 'math_tool_grop' (did you mean 'math_tool_grpo'?)",
        ),
        (["train", "--set", "learner.lrr=1"], "learner: unknown option 'lrr' (did you mean 'lr'?)"),
        (["eval", "--env", "serch_qa"], "unknown environment 'serch_qa' (did you mean 'search_qa'?)"),
    ]:
        assert main(argv) == 2
        captured = capsys.readouterr()
        assert captured.err.startswith(f"agentrl: error: {hint}"), captured.err
        assert captured.out == ""  # reported before anything else: no engine line, no model loaded


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible here")
@pytest.mark.parametrize("command", ["train", "eval"])
def test_a_gpu_that_is_not_there_is_one_line(command, capsys):
    assert main([command, "--env", "math", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("agentrl: error: device cuda: no CUDA GPU is visible"), err

"""LoRA runs through ``agentrl train``: a run learns, resumes exactly from an adapter
checkpoint, and its checkpoint evaluates and exports as a merged model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from agentrl.cli.main import main
from agentrl.learner import lora

pytest.importorskip("peft")

SMALL = ["--set", "tasks_per_step=4", "--set", "group_size=4", "--set", "eval_tasks=8", "--no-progress"]
LORA = ["--set", "lora.rank=8", "--set", "lora.alpha=16"]


def adapter(checkpoint) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint / lora.WEIGHTS_FILE))


@pytest.mark.slow
def test_a_lora_run_on_math_tool_learns(tmp_path):
    """The shipped model, rank 16, a LoRA-sized learning rate: held-out accuracy at least doubles."""
    args = ["train", "--env", "math_tool", "--algo", "vcpo", "--steps", "12", "--set", "lora.rank=16"]
    args += ["--set", "learner.lr=2e-3", "--set", "eval_tasks=80", "--set", "eval_every=12", "--no-progress"]
    assert main([*args, "--runs-dir", str(tmp_path), "--name", "lora"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "lora" / "metrics.jsonl").read_text().splitlines()]
    accuracy = [row["eval/accuracy"] for row in rows if "eval/accuracy" in row]
    assert accuracy[-1] >= 2 * accuracy[0] and accuracy[-1] >= 0.6, accuracy


@pytest.mark.slow
def test_a_lora_run_resumes_exactly_and_its_checkpoint_evaluates_and_exports(tiny_chatml, tmp_path, capsys):
    common = ["--model", str(tiny_chatml), "--env", "math_tool", "--algo", "vcpo", "--set", "algo_args.kl_coef=0.05"]
    common += [*SMALL, *LORA, "--runs-dir", str(tmp_path)]
    assert main(["train", *common, "--steps", "3", "--name", "straight"]) == 0
    assert main(["train", *common, "--steps", "2", "--name", "resumed"]) == 0
    changed = ["train", "--resume", str(tmp_path / "resumed"), "--steps", "3", "--set", "lora.rank=4"]
    assert main(changed) == 2  # a resume that changes the adapters is refused
    assert "trained with lora.rank=8;" in capsys.readouterr().err  # the field that differs, not the section
    assert main(["train", "--resume", str(tmp_path / "resumed"), "--steps", "3", "--no-progress"]) == 0
    straight, resumed = (tmp_path / name / "checkpoints" / "last" for name in ("straight", "resumed"))
    assert lora.is_adapter_dir(straight) and not (straight / "config.json").exists()  # the adapter, no whole model
    a, b = adapter(straight), adapter(resumed)
    assert a and all(torch.equal(a[k], b[k]) for k in a)

    out = tmp_path / "merged"
    assert main(["export", str(tmp_path / "straight"), "--out", str(out)]) == 0
    assert (out / "config.json").is_file() and not (out / "learner.pt").exists()
    assert main(["export", str(tmp_path / "straight"), "--out", str(out)]) == 2  # not over a model
    assert "not an empty folder" in capsys.readouterr().err
    evals = {}
    for name, model in (("adapter", straight), ("merged", out)):
        args = ["eval", "--model", str(model), "--env", "math_tool", "-n", "8", "--no-progress"]
        assert main([*args, "--output", str(tmp_path / f"eval-{name}")]) == 0
        evals[name] = json.loads((tmp_path / f"eval-{name}" / "metrics.json").read_text())
    assert evals["adapter"]["made_by"]["model"] == str(straight)  # named as given, not the temporary merge
    same = ("accuracy", "mean_reward", "mean_sampled_tokens", "tool_calls")
    assert [evals["adapter"][k] for k in same] == [evals["merged"][k] for k in same]
    capsys.readouterr()
    assert main(["train", "--model", str(straight), "--steps", "1", "--runs-dir", str(tmp_path)]) == 2
    assert "is a LoRA adapter" in capsys.readouterr().err


@pytest.mark.slow
def test_a_stopped_evaluation_of_a_lora_checkpoint_leaves_no_merged_model(tiny_chatml, tmp_path):
    """SIGTERM (a scheduler's stop) during an evaluation of a LoRA checkpoint: the temporary
    merged model is removed, as on Ctrl-C (with a 7B base it is 15 GB); exported files are readable."""
    common = ["--model", str(tiny_chatml), "--env", "math_tool", "--algo", "grpo", *SMALL, *LORA]
    assert main(["train", *common, "--steps", "1", "--runs-dir", str(tmp_path), "--name", "run"]) == 0
    temp = tmp_path / "tmp"
    temp.mkdir()
    cmd = [sys.executable, "-m", "agentrl.cli.main", "eval", "--model", str(tmp_path / "run"), "--env", "math_tool"]
    cmd += ["-n", "2000", "--no-progress", "--output", str(tmp_path / "eval")]
    proc = subprocess.Popen(cmd, env=os.environ | {"TMPDIR": str(temp)}, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and "is a LoRA adapter" in proc.stdout.readline()
    deadline = time.time() + 120
    while not list(temp.glob("agentrl-merged-*/model/config.json")) and time.time() < deadline:
        time.sleep(0.05)
    assert list(temp.glob("agentrl-merged-*")), "the merged model was never written"
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 130
    assert not list(temp.glob("agentrl-merged-*"))
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "out")]) == 0
    assert all(f.stat().st_mode & 0o044 == 0o044 for f in (tmp_path / "out").iterdir())  # others may read

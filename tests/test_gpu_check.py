"""scripts/gpu_check.sh: its --dry-run runs every check's code on the CPU, so the GPU check
does not rot between the machines that have a GPU."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"


@pytest.mark.slow
def test_the_dry_run_fills_every_row(tmp_path):
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run", "--out", str(tmp_path)], capture_output=True, text=True, timeout=420
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = (tmp_path / "gpu_check.md").read_text()
    results = json.loads((tmp_path / "gpu_check.json").read_text())
    assert table in proc.stdout and "failed" not in table
    assert results["learner"]["tokens_per_s"] > 0 and results["engines"]["transformers"] > 0
    assert results["colocate"] == {"skipped": "needs a GPU", "seconds": results["colocate"]["seconds"]}
    assert "2 steps, held-out accuracy" in results["async"]["summary"]
    for row in ("spear replay", "st_ppo critic", "bf16", "lora", "zero3"):  # every step trained, losses finite
        assert (results[row]["steps"], results[row]["skipped_steps"], results[row]["finite"]) == (2, 0.0, True), row
    assert "every step trained" in table
    if importlib.util.find_spec("vllm") is not None:
        assert results["engines"]["vllm"] > 0
        # vLLM's CPU build and the learner's forward agree on the default model's tokens
        assert results["agreement"]["tokens"] > 0 and results["agreement"]["share_in_0.9_1.1"] >= 0.99


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_without_a_gpu_it_asks_for_the_dry_run():
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "gpu_check: no GPU is visible; run with --dry-run to check the script on a CPU"
    )

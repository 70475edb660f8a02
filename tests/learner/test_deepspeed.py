"""The DeepSpeed learner against the one-process learner: 2 gloo ranks, ZeRO-2 and ZeRO-3, the
same batches, the same losses and weights within 1e-5 (float32); and a NaN loss on one rank
skips the step on every rank without leaving anything behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agentrl.batch import TokenBatch
from tests.helpers import free_port

pytest.importorskip("deepspeed")
WORKER = Path(__file__).with_name("deepspeed_worker.py")


@pytest.mark.slow
@pytest.mark.parametrize("stage", [2, 3])
def test_zero_matches_the_one_process_learner(stage, tiny_chatml, trajectories, tmp_path):
    batch = TokenBatch.from_trajectories(trajectories).to("cpu", torch.float32)
    # rewards with variance inside every group; the second batch has them in another order
    spread = 0.25 * (torch.arange(batch.size) % 3)
    batches = [
        batch.with_fields(rewards=batch.rewards + spread),
        batch.with_fields(rewards=batch.rewards + spread.flip(0)),
    ]
    torch.save(batches, tmp_path / "batches.pt")
    out = tmp_path / "result.json"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(free_port()),
        str(WORKER),
        str(tiny_chatml),
        str(tmp_path / "batches.pt"),
        str(stage),
        str(out),
    ]
    env = os.environ | {"OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu", "PYTHONPATH": str(Path(__file__).parents[2])}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads(out.read_text())
    skip, adapters, trace = results.pop("skip"), results.pop("lora"), results.pop("trace")
    assert trace["rows"][0] == trace["rows"][1] and trace["missing"] == 0, trace  # every rank has every row
    assert trace["max_weight"] > 0.1 and trace["max_diff"] <= 1e-4, trace  # the one process's numbers
    assert adapters["keys_match"] and adapters["adapter_written"], adapters
    assert adapters["max_update"] > 1e-4 and adapters["max_weight_diff"] <= 1e-5, adapters  # LoRA, KL to the base
    assert adapters["resumed_diff"] == 0.0, adapters  # the adapter checkpoint resumes exactly
    assert skip["skipped"] == [1.0, 1.0], skip  # a NaN loss on one rank skips the step on every rank
    assert skip["max_weight_diff"] <= 1e-5, skip  # and leaves nothing behind for the next step
    assert sorted(results) == ["grpo", "ppo", "vcpo"]
    for name, r in results.items():
        assert r["max_update"] > 1e-4, (name, r)  # the step moved the weights: equality is not vacuous
        assert r["max_weight_diff"] <= 1e-5, (name, r)
        for one, many in zip(r["loss_one"], r["loss_many"], strict=True):
            assert abs(one - many) <= 1e-5 * max(1.0, abs(one)), (name, r)

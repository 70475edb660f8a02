"""The DeepSpeed learner under the device audit: ZeRO-2 and ZeRO-3, each with SPEAR's replay,
ST-PPO's turn-level critic, VCPO with KL to the reference and LoRA, a checkpoint saved and loaded,
and a whole ``agentrl train --device cuda`` run on DeepSpeed resumed; a device mistake planted in
the DeepSpeed learner is caught. One rank, in a child process (tests/learner/deepspeed_audit_worker.py)."""

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
WORKER = Path(__file__).with_name("deepspeed_audit_worker.py")


@pytest.mark.slow
def test_the_deepspeed_learner_makes_no_device_mistake(tiny_chatml, trajectories, tmp_path):
    batch = TokenBatch.from_trajectories(trajectories).to("cpu", torch.float32)
    torch.save(batch.with_fields(rewards=batch.rewards + 0.25 * (torch.arange(batch.size) % 3)), tmp_path / "b.pt")
    out = tmp_path / "result.json"
    env = os.environ | {
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
        "OMP_NUM_THREADS": "1",
        "DS_ACCELERATOR": "cpu",
        "PYTHONPATH": str(Path(__file__).parents[2]),
    }
    cmd = [sys.executable, str(WORKER), str(tiny_chatml), str(tmp_path / "b.pt"), str(tmp_path), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads(out.read_text())
    planted, run = results.pop("planted"), results.pop("run")
    assert planted.startswith("all_reduce (NCCL takes CUDA tensors only): tensors on cpu"), planted
    assert "_all_finite" in planted  # it names the code that made the mistake
    assert run["exit"] == [0, 0] and run["steps"][-1] == 3, run
    assert run["steps"] == sorted(set(run["steps"])), run  # the resumed run repeats no step
    assert len(results) == 8
    for case, r in results.items():
        assert r["parameters_on"] == ["cuda:0"] and r["weights_on"] == ["cuda:0"], (case, r)
        assert r["losses_finite"] and r["operations"] > 10_000, (case, r)
        if case.startswith("spear"):
            assert r["replay_rows"] > 0, (case, r)  # the replay's code path ran
        if case.startswith("st_ppo"):
            assert r["value_loss"] is not None and r["value_loss"] > 0, (case, r)  # so did the critic's

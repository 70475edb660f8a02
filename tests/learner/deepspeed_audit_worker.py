"""The DeepSpeed learner under the device audit, one rank in one process, for
tests/learner/test_devices_deepspeed.py; writes what it saw as JSON.

DeepSpeed runs on its CPU accelerator renamed ``cuda`` (``VirtualCuda``), so the engine places
the model, its ZeRO buffers and its shards on ``cuda:0``, which the audit makes virtual; its
gradient hooks and ZeRO-3's parameter fetches in the backward run inside the audit, and its
collectives must carry CUDA tensors, as NCCL's do. The process group is gloo, joined before the
audit (the data stays on the CPU).

Usage: RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=P \
    python deepspeed_audit_worker.py MODEL_DIR BATCH_PT WORK_DIR OUT_JSON
"""

from __future__ import annotations

import faulthandler
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch
from deepspeed.accelerator import set_accelerator
from deepspeed.accelerator.cpu_accelerator import CPU_Accelerator

from agentrl.algos import make
from agentrl.cli.main import main as agentrl
from agentrl.engines.loading import load_model
from agentrl.learner import LearnerConfig, lora
from agentrl.learner.deepspeed_learner import DeepSpeedLearner, init_distributed
from agentrl.testing.devices import DeviceAudit, DeviceMismatch, device_of

CUDA = torch.device("cuda", 0)
REPLAY = {"buffer_size": 1, "replay_T": 1, "bonus_T": 1}  # SPEAR: replay fires on the second step
CASES: list[tuple[str, dict[str, Any], int, bool]] = [  # objective, options, ZeRO stage, LoRA
    ("vcpo", {"kl_coef": 0.05}, 2, False),
    ("vcpo", {"kl_coef": 0.05}, 3, False),
    ("spear", REPLAY, 2, False),
    ("spear", REPLAY, 3, False),
    ("st_ppo", {"advantage": "gae"}, 2, False),  # the turn-level critic: a value head in the engine
    ("st_ppo", {"advantage": "gae"}, 3, False),
    ("vcpo", {"kl_coef": 0.05}, 2, True),  # LoRA: the reference is the policy with adapters off
    ("vcpo", {"kl_coef": 0.05}, 3, True),
]


class VirtualCuda(CPU_Accelerator):
    """DeepSpeed's CPU accelerator under the name ``cuda``: what it allocates goes to ``cuda:N``."""

    def device_name(self, device_index: int | None = None) -> str:
        return "cuda" if device_index is None else f"cuda:{device_index}"

    def current_device_name(self) -> str:
        return "cuda:0"

    def device(self, device_index: int | None = None) -> torch.device:
        return torch.device("cuda", device_index or 0)

    def on_accelerator(self, tensor: torch.Tensor) -> bool:
        return tensor.device.type == "cuda"


class FlagOnTheCpu(DeepSpeedLearner):
    """A planted defect: the finite flag all-reduced from the CPU, which NCCL refuses."""

    def _all_finite(self, finite: bool) -> bool:
        flag = torch.tensor([1.0 if finite else 0.0])
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
        return bool(flag.item() > 0)


def learner_case(model_dir: str, batch: Any, name: str, options: dict, stage: int, adapters: bool, folder: Path):
    """Two updates, a checkpoint saved and loaded, a third update and the weights for the engine."""
    config = LearnerConfig(backend="deepspeed", zero_stage=stage, precision="fp32", epochs=2, micro_batch_size=6)
    with DeviceAudit() as audit:
        model = load_model(model_dir, device="cuda", dtype="float32")
        if adapters:
            model = lora.apply(model, lora.LoraConfig(rank=4, alpha=8.0), model_dir)
        learner = DeepSpeedLearner(model, make(name, **options), config)
        on = {str(device_of(p)) for p in learner.model.parameters()}
        metrics = [learner.train_step(batch) for _ in range(2)]
        learner.save(folder)
        learner.load(folder)
        metrics.append(learner.train_step(batch))
        weights = {str(device_of(t)) for t in learner.policy_state().values()}
    return {
        "operations": audit.operations,
        "parameters_on": sorted(on),
        "weights_on": sorted(weights),
        "losses_finite": all(math.isfinite(m["loss/total"]) for m in metrics),
        "replay_rows": metrics[1].get("replay/rows", 0.0),
        "value_loss": metrics[-1].get("loss/value"),
    }


def planted_defect(model_dir: str, batch: Any) -> str:
    config = LearnerConfig(backend="deepspeed", zero_stage=2, precision="fp32")
    try:
        with DeviceAudit():
            FlagOnTheCpu(load_model(model_dir, device="cuda", dtype="float32"), make("grpo"), config).train_step(batch)
    except DeviceMismatch as caught:
        return str(caught)
    return ""


def whole_run(model_dir: str, runs: Path) -> dict:
    """``agentrl train`` on ``--device cuda`` with the DeepSpeed learner at ZeRO-3 (rollouts,
    update, weight sync, evaluation, checkpoints), then resumed."""
    small = ["--device", "cuda", "--engine", "transformers", "--no-progress", "--steps", "2"]
    small += [f"--set={s}" for s in ("tasks_per_step=4", "group_size=4", "eval_tasks=4", "eval_every=2")]
    small += [f"--set={s}" for s in ("checkpoint_every=1", "sampling.max_new_tokens=16", "algo_args.kl_coef=0.01")]
    small += ["--set=learner.backend=deepspeed", "--set=learner.zero_stage=3"]
    with DeviceAudit() as audit:
        new = ["train", "--model", model_dir, "--env", "math_tool", "--algo", "vcpo", "--runs-dir", str(runs)]
        first = agentrl([*new, *small, "--name", "ds"])
        resumed = agentrl(["train", "--resume", str(runs / "ds"), "--steps", "3", "--no-progress"])
    steps = [json.loads(line)["step"] for line in (runs / "ds" / "metrics.jsonl").read_text().splitlines()]
    return {"exit": [first, resumed], "steps": steps, "operations": audit.operations}


def main(model_dir: str, batch_file: str, work: str, out: str) -> None:
    faulthandler.dump_traceback_later(300, exit=True)  # a hang prints every frame and fails, not waits
    init_distributed()
    set_accelerator(VirtualCuda())
    batch = torch.load(batch_file, weights_only=False)
    results: dict[str, Any] = {}
    for i, (name, options, stage, adapters) in enumerate(CASES):
        key = f"{name}-zero{stage}" + ("-lora" if adapters else "")
        results[key] = learner_case(model_dir, batch, name, options, stage, adapters, Path(work) / f"ckpt{i}")
    results["planted"] = planted_defect(model_dir, batch)
    results["run"] = whole_run(model_dir, Path(work) / "runs")
    Path(out).write_text(json.dumps(results))


if __name__ == "__main__":
    main(*sys.argv[1:5])

"""One torchrun rank of tests/learner/test_deepspeed.py: the same batch through the one-process
learner and the DeepSpeed learner, for each objective; rank 0 writes what it measured as JSON.

Usage: torchrun --nproc_per_node 2 deepspeed_worker.py MODEL_DIR BATCH_PT ZERO_STAGE OUT_JSON
"""

from __future__ import annotations

import copy
import dataclasses
import faulthandler
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from agentrl.algos import make
from agentrl.engines.loading import load_model
from agentrl.learner import LearnerConfig, TorchLearner, lora
from agentrl.learner.deepspeed_learner import DeepSpeedLearner

ALGOS = {"grpo": {}, "vcpo": {}, "ppo": {}}
STEPS = 2  # the second step runs on Adam state the first one left, sharded under ZeRO


def run(learner, batches):
    losses = [learner.train_step(b)["loss/total"] for b in batches]
    return losses, learner.policy_state()


def poison_second_loss(algorithm):
    """``algorithm`` whose second loss (a micro-batch's) is NaN: the step it falls in must be
    skipped, after the first micro-batch's backward has run."""
    real, calls = algorithm.loss, []

    def loss(inputs, batch, counts):
        out = real(inputs, batch, counts)
        calls.append(1)
        return dataclasses.replace(out, loss=out.loss * float("nan")) if len(calls) == 2 else out

    algorithm.loss = loss
    return algorithm


def skipped_step(model_dir: str, batches, stage: int) -> dict:
    """A NaN loss on rank 0 only, in its second pass (both ranks ran a backward before it): every
    rank skips that step, and the next step equals the one process's, which skipped the same
    step: nothing of the skipped step's accumulated gradient reaches the weights."""
    config = LearnerConfig(lr=1e-3, micro_batch_size=6, precision="fp32", zero_stage=stage, backend="deepspeed")
    model = load_model(model_dir).float().train()
    one = TorchLearner(copy.deepcopy(model), poison_second_loss(make("grpo")), config)
    algorithm = poison_second_loss(make("grpo")) if dist.get_rank() == 0 else make("grpo")
    many = DeepSpeedLearner(model, algorithm, config)
    skipped = [learner.train_step(batches[0])["learner/skipped_steps"] for learner in (one, many)]
    one.train_step(batches[1])
    many.train_step(batches[1])
    a, b = one.policy_state(), many.policy_state()
    return {"skipped": skipped, "max_weight_diff": max(float((a[k] - b[k]).abs().max()) for k in a)}


def lora_case(model_dir: str, batches, stage: int, folder: Path) -> dict:
    """LoRA adapters (B random, so A trains too) under VCPO with KL to the reference, which is the
    base model with the adapters off: the merged weights equal the one process's; a checkpoint
    holds the adapter, and a fresh learner resumes from it to the same weights."""
    config = LearnerConfig(lr=1e-3, micro_batch_size=6, precision="fp32", zero_stage=stage, backend="deepspeed")

    def adapted() -> torch.nn.Module:
        torch.manual_seed(0)  # peft draws A at random: the same A for every learner and rank
        model = lora.apply(load_model(model_dir).float().train(), lora.LoraConfig(rank=4, alpha=8.0), model_dir)
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.copy_(0.05 * torch.randn(p.shape, generator=g))
        return model

    one = TorchLearner(adapted(), make("vcpo", kl_coef=0.05), config)
    many = DeepSpeedLearner(adapted(), make("vcpo", kl_coef=0.05), config)
    assert many.reference is many.model  # no second model
    one_losses, one_weights = run(one, batches)
    many_losses, many_weights = run(many, batches)
    folder.mkdir(exist_ok=True)
    many.save(folder)
    resumed = DeepSpeedLearner(adapted(), make("vcpo", kl_coef=0.05), config)
    resumed.load(folder)
    back = resumed.policy_state()
    base = load_model(model_dir).float().state_dict()
    return {
        "loss_one": one_losses,
        "loss_many": many_losses,
        "max_weight_diff": max(float((one_weights[k] - many_weights[k]).abs().max()) for k in one_weights),
        "max_update": max(float((one_weights[k] - base[k]).abs().max()) for k in one_weights),
        "resumed_diff": max(float((back[k] - many_weights[k]).abs().max()) for k in back),
        "keys_match": sorted(one_weights) == sorted(base),
        "adapter_written": lora.is_adapter_dir(folder),
    }


def trace_case(model_dir: str, batches, stage: int) -> dict:
    """What each update kept per token (``train_step(..., trace=True)``): every rank traced its own
    micro-batches, and every rank ends with every row's numbers, equal to the one process's."""
    config = LearnerConfig(lr=1e-3, micro_batch_size=6, precision="fp32", zero_stage=stage, backend="deepspeed")
    model = load_model(model_dir).float().train()
    one = TorchLearner(copy.deepcopy(model), make("grpo"), config)
    many = DeepSpeedLearner(model, make("grpo"), config)
    for learner in (one, many):
        learner.train_step(batches[0], trace=True)
    a, b = one.last_trace, many.last_trace
    assert a is not None and b is not None
    return {
        "rows": [len(a), len(b)],
        "missing": sum(row is None for row in b),
        "max_diff": max(
            abs(x - y) for ra, rb in zip(a, b, strict=True) for k in ra for x, y in zip(ra[k], rb[k], strict=True)
        ),
        "max_weight": max(abs(x) for row in a for x in row["weight"]),
    }


def main(model_dir: str, batch_file: str, stage: int, out: str) -> None:
    faulthandler.dump_traceback_later(300, exit=True)  # a hang prints every frame and fails, not waits
    batches = torch.load(batch_file, weights_only=False)[:STEPS]
    results = {}
    for name, options in ALGOS.items():
        # micro_batch_size 6 over 16 rows: 3 micro-batches, so one rank runs a zero pass
        config = LearnerConfig(lr=1e-3, micro_batch_size=6, precision="fp32", zero_stage=stage, backend="deepspeed")
        model = load_model(model_dir).float().train()
        one = TorchLearner(copy.deepcopy(model), make(name, **options), config)
        many = DeepSpeedLearner(model, make(name, **options), config)
        one_losses, one_weights = run(one, batches)
        many_losses, many_weights = run(many, batches)
        assert one_weights.keys() == many_weights.keys(), one_weights.keys() ^ many_weights.keys()
        results[name] = {
            "loss_one": one_losses,
            "loss_many": many_losses,
            "max_weight_diff": max(float((one_weights[k] - many_weights[k]).abs().max()) for k in one_weights),
            "max_update": max(
                float((one_weights[k] - model_weights).abs().max())
                for k, model_weights in load_model(model_dir).float().state_dict().items()
                if k in one_weights
            ),
        }
    results["skip"] = skipped_step(model_dir, batches, stage)
    results["trace"] = trace_case(model_dir, batches, stage)
    results["lora"] = lora_case(model_dir, batches, stage, Path(out).with_name(f"lora-checkpoint-{stage}"))
    if dist.get_rank() == 0:
        with open(out, "w") as f:
            json.dump(results, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])

"""The learner's memory options on a CPU: bf16 and fp16 mixed precision, bfloat16 weights and
gradient checkpointing, each against float32 on the same real batch (docs/learner.md#precision).

Tolerances, on the gradient of one GRPO update of the tiny model (relative L2 error against
float32; measured on this CPU, torch 2.13): bf16 autocast 1.2% (allowed 3%), fp16 autocast 0.15%
(allowed 0.5%), bf16 autocast over bfloat16 weights 2.5% (allowed 5%); gradient checkpointing
recomputes the same numbers (allowed 1e-6)."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from agentrl.algos import make
from agentrl.batch import TokenBatch
from agentrl.cli.main import main
from agentrl.engines.loading import load_model
from agentrl.errors import ConfigError
from agentrl.learner import LearnerConfig, TorchLearner


@pytest.fixture(scope="module")
def batch32(trajectories) -> TokenBatch:
    batch = TokenBatch.from_trajectories(trajectories)
    return batch.with_fields(rewards=batch.rewards + 0.25 * (torch.arange(batch.size) % 3))


def gradient(tiny_chatml, batch: TokenBatch, weights: str = "float32", **options) -> tuple[torch.Tensor, dict]:
    """The true (unscaled) gradient of one GRPO update, flattened, and the step's metrics."""
    model = load_model(str(tiny_chatml), "cpu", weights).train()
    learner = TorchLearner(model, make("grpo"), LearnerConfig(micro_batch_size=4, **options))
    prepared = learner.prepare_batch(batch.to("cpu", torch.float32))
    finite, metrics, _ = learner.compute_gradients(prepared)
    assert finite
    grad = torch.cat([p.grad.float().flatten() for p in model.parameters() if p.grad is not None])
    scale = learner.scaler.get_scale() if learner.scaler is not None else 1.0
    return grad / scale, metrics.values


@pytest.mark.parametrize(
    ("options", "weights", "tolerance"),
    [
        ({"precision": "bf16"}, "float32", 0.03),
        ({"precision": "fp16"}, "float32", 0.005),
        ({"precision": "bf16"}, "bfloat16", 0.05),
        ({"precision": "fp32", "gradient_checkpointing": True}, "float32", 1e-6),
    ],
    ids=["bf16", "fp16", "bf16-weights", "checkpointing"],
)
def test_the_gradient_matches_float32(options, weights, tolerance, tiny_chatml, batch32):
    exact, exact_metrics = gradient(tiny_chatml, batch32, precision="fp32")
    grad, metrics = gradient(tiny_chatml, batch32, weights, **options)
    error = float((grad - exact).norm() / exact.norm())
    assert error <= tolerance, error
    assert metrics["policy/entropy"] == pytest.approx(exact_metrics["policy/entropy"], abs=0.01)
    if weights == "float32" and options["precision"] != "fp32":
        assert error > 0  # the forward really ran in half precision


def test_gradient_checkpointing_recomputes_each_layer_in_the_backward_pass(tiny_chatml, batch32):
    calls = {}
    for on in (False, True):
        model = load_model(str(tiny_chatml), "cpu", "float32").train()
        count, mlp = [0], model.model.layers[0].mlp
        forward = mlp.forward

        def counted(*args, forward=forward, count=count):  # a hook would not see the recompute
            count[0] += 1
            return forward(*args)

        mlp.forward = counted
        learner = TorchLearner(model, make("grpo"), LearnerConfig(micro_batch_size=64, gradient_checkpointing=on))
        learner.train_step(batch32)
        calls[on] = count[0]
    assert calls[True] == 2 * calls[False]  # the forward, then the recompute in the backward


def test_fp16_skips_an_overflowing_step_and_halves_the_loss_scale(tiny_chatml, batch32):
    model = load_model(str(tiny_chatml), "cpu", "float32").train()
    learner = TorchLearner(model, make("grpo"), LearnerConfig(precision="fp16", lr=1e-2))
    learner.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**60)  # overflows float16's 65,504
    before = [p.detach().clone() for p in model.parameters()]
    metrics = learner.train_step(batch32)
    assert metrics["learner/skipped_steps"] == 1 and learner.scaler.get_scale() == 2.0**59
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))  # nothing applied
    assert all(p.grad is None for p in model.parameters())
    learner.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    metrics = learner.train_step(batch32)
    assert metrics["learner/skipped_steps"] == 1 and metrics["learner/loss_scale"] == 2.0**10
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))


def test_the_loss_scale_is_checkpointed(tiny_chatml, batch32, tmp_path):
    model = load_model(str(tiny_chatml), "cpu", "float32").train()
    learner = TorchLearner(model, make("grpo"), LearnerConfig(precision="fp16"))
    learner.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**7, growth_interval=1)
    learner.train_step(batch32)
    learner.save(tmp_path)
    other = TorchLearner(load_model(str(tiny_chatml), "cpu", "float32").train(), make("grpo"), learner.config)
    other.load(tmp_path)
    assert other.scaler is not None and other.scaler.get_scale() == learner.scaler.get_scale() == 2.0**8


def test_bad_memory_options_are_one_line_errors(tiny_chatml):
    with pytest.raises(ConfigError, match="precision='float16' is not allowed"):
        LearnerConfig(precision="float16")
    with pytest.raises(ConfigError, match="weights_dtype"):
        LearnerConfig(weights_dtype="float16")
    with pytest.raises(ConfigError, match="deepspeed trains float32"):
        LearnerConfig(backend="deepspeed", precision="bf16")
    with pytest.raises(ConfigError, match="does not support it"):
        TorchLearner(torch.nn.Linear(2, 2), make("grpo"), LearnerConfig(gradient_checkpointing=True))


@pytest.mark.slow
@pytest.mark.parametrize("options", [["learner.precision=bf16", "learner.gradient_checkpointing=true"],
                                     ["learner.precision=fp16", "learner.weights_dtype=float32"]])  # fmt: skip
def test_a_run_trains_with_the_memory_options(options, tiny_chatml, tmp_path):
    sets = [arg for option in options for arg in ("--set", option)]
    args = ["train", "--model", str(tiny_chatml), "--env", "math_tool", "--algo", "grpo", "--steps", "2"]
    args += ["--set", "tasks_per_step=4", "--set", "group_size=4", "--set", "eval_tasks=4", "--no-progress", *sets]
    assert main([*args, "--runs-dir", str(tmp_path), "--name", "run"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    trained = [row for row in rows if "grad/norm" in row]
    assert len(trained) == 2 and all(row["learner/skipped_steps"] == 0 for row in trained)
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert config["learner"]["precision"] == options[0].split("=")[1]

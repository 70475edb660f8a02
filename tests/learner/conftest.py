"""A real rollout batch from the tiny model, made once per module."""

from __future__ import annotations

import functools

import pytest
import torch

from agentrl.batch import TokenBatch
from agentrl.engines.base import SamplingParams
from agentrl.engines.hf import TransformersEngine
from agentrl.engines.loading import load_model, load_tokenizer
from agentrl.envs import make
from agentrl.rollout import RolloutConfig, rollout


@pytest.fixture(scope="module")
def trajectories(tiny_chatml):
    tokenizer, model = load_tokenizer(str(tiny_chatml)), load_model(str(tiny_chatml))
    factory = functools.partial(make, "math_tool", max_turns=3)
    tasks = list(factory().tasks("test")[:4])
    params = SamplingParams(max_new_tokens=24, seed=0)
    return rollout(factory, tasks, TransformersEngine(model, tokenizer), tokenizer, params, RolloutConfig(group_size=4))


@pytest.fixture
def model64(tiny_chatml):
    return load_model(str(tiny_chatml)).double().train()


@pytest.fixture
def batch(trajectories):
    batch = TokenBatch.from_trajectories(trajectories)
    # rewards with variance inside every group, so every estimator yields a non-zero gradient
    batch = batch.with_fields(rewards=batch.rewards + 0.25 * (torch.arange(batch.size) % 3))
    return batch.to("cpu", torch.float64)  # the fp64 tests call prepare_batch directly, which does not cast

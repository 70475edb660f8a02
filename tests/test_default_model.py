"""The model that ships with agentrl: small, and mediocre on held-out math_tool, search_qa and
tool_use tasks, as loaded by users (so its tokenizer must encode as it did in training)."""

import functools
import json

import pytest

from agentrl.engines.base import SamplingParams
from agentrl.engines.hf import TransformersEngine
from agentrl.engines.loading import load_model, load_tokenizer
from agentrl.envs import make
from agentrl.evaluation import summarize
from agentrl.rollout import RolloutConfig, rollout
from agentrl.trainer.setup import DEFAULT_MODEL
from helpers import open_or_skip


def test_it_is_small():
    size = sum(p.stat().st_size for p in DEFAULT_MODEL.iterdir())
    assert size < 8 * 2**20
    info = json.loads((DEFAULT_MODEL / "build_info.json").read_text())
    assert info["parameters"] < 2_000_000 and info["seed"] == 0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("env", "max_total_tokens", "max_new_tokens"),
    [("math_tool", 512, 48), ("search_qa", 1024, 48), ("tool_use", 1024, 128)],  # as the build measured
)
def test_held_out_accuracy_is_mediocre_as_recorded(env, max_total_tokens, max_new_tokens):
    if env == "tool_use":
        open_or_skip("auto").close()  # its python tool needs a real sandbox
    tokenizer, model = load_tokenizer(str(DEFAULT_MODEL)), load_model(str(DEFAULT_MODEL))
    factory = functools.partial(make, env)
    tasks = list(factory().tasks("test")[:200])
    params = SamplingParams(temperature=1.0, max_new_tokens=max_new_tokens, seed=0)
    engine = TransformersEngine(model, tokenizer, seed=0)
    config = RolloutConfig(max_total_tokens=max_total_tokens)
    accuracy = summarize(rollout(factory, tasks, engine, tokenizer, params, config))["accuracy"]
    assert 0.1 <= accuracy <= 0.5
    recorded = json.loads((DEFAULT_MODEL / "build_info.json").read_text())["held_out_accuracy_by_env"][env]
    assert abs(accuracy - recorded) <= 0.1, (accuracy, recorded)

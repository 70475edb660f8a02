from pathlib import Path

import pytest

from agentrl.algos import make as make_algorithm
from agentrl.envs import make as make_env
from agentrl.errors import AgentRLError, ConfigError
from agentrl.trainer import config as train_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_there_are_configs():
    names = {p.name for p in CONFIGS}
    assert {"math_tool_vcpo.yaml", "math_tool_opo.yaml", "math_tool_grpo.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_config_loads_and_builds(path):
    config = train_config.load(path)
    make_env(config.env, **config.env_args)
    make_algorithm(config.algo, **config.algo_args)


def test_overrides_take_precedence(tmp_path):
    config = train_config.load(CONFIGS[0], {"learner.lr": "1e-3", "steps": "7", "env_args.max_turns": "2"})
    assert config.learner.lr == 1e-3 and config.steps == 7 and config.env_args["max_turns"] == 2
    assert config.learner.micro_batch_size == 32  # untouched keys keep the file's values


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"stepz": "3"}, "train: unknown option 'stepz'"),
        ({"steps": "-1"}, "steps=-1 is out of range"),
        ({"learner.lr": "fast"}, "learner: lr='fast' is not a valid float"),
        ({"learner.colour": "1"}, "learner: unknown option 'colour'"),
        ({"sampling.temperature": "1e9"}, "temperature=1000000000.0 is out of range"),
        ({"logger": "tensorboard"}, "logger='tensorboard' is not allowed"),
        ({"group_size": "0"}, "group_size=0 is out of range"),
        ({"engine.backend": "sglang"}, "backend='sglang' is not allowed"),
        ({"engine.kv_cache_gib": "0"}, "kv_cache_gib=0 is out of range"),
        ({"engine.backend": "vllm", "asynchronous.enabled": "true", "asynchronous.worker": "thread"}, "worker=process"),
        ({"asynchronous.worker": "thread", "asynchronous.worker_device": "cuda:1"}, "worker_device needs the process"),
    ],
)
def test_bad_values_are_one_line_errors(overrides, message):
    with pytest.raises(ConfigError) as err:
        train_config.load(None, overrides)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        train_config.load(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("steps: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        train_config.load(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(AgentRLError, match="mapping"):
        train_config.load(tmp_path / "list.yaml")


def test_help_lists_every_option():
    text = train_config.options_help()
    for key in ("steps:", "learner.lr:", "sampling.temperature:", "algo_args:", "eval_every:"):
        assert key in text

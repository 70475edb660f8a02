import warnings
from pathlib import Path

import pytest

from agentrl.algos import make as make_algorithm
from agentrl.engines.backends import VLLMOptions
from agentrl.engines.base import SamplingParams
from agentrl.envs import make as make_env
from agentrl.errors import AgentRLError, AgentRLWarning, ConfigError
from agentrl.learner.config import LearnerConfig
from agentrl.trainer import config as train_config
from agentrl.trainer.config import AsyncConfig

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
        ({"engine.kv_cache_gib": "0"}, "engine.vllm: kv_cache_gib=0 is out of range"),
        ({"engine.vllm.gpu_memory_utilization": "1.5"}, "engine.vllm: gpu_memory_utilization=1.5 is out of range"),
        ({"engine.transformers.max_batch_size": "0"}, "engine.transformers: max_batch_size=0 is out of range"),
        ({"engine.vllm.max_batch_size": "8"}, "engine.vllm: unknown option 'max_batch_size'"),
        ({"engine.sglang.max_num_seqs": "8"}, "engine: unknown option 'sglang'"),
        ({"engine.vllm": "8"}, "engine: vllm must be a mapping of options"),
        ({"engine.max_num_seqs": "8", "engine.vllm.max_num_seqs": "9"}, "max_num_seqs is given twice"),
        ({"engine.backend": "vllm", "asynchronous.enabled": "true", "asynchronous.worker": "thread"}, "worker=process"),
        ({"asynchronous.worker": "thread", "asynchronous.worker_device": "cuda:1"}, "worker_device needs the process"),
        ({"learner.backend": "megatron"}, "learner: backend='megatron' is not allowed"),
        ({"learner.zero_stage": "1"}, "learner: zero_stage=1 is not allowed"),
        ({"learner.offload_params": "true"}, "offload_params=true needs zero_stage=3"),
    ],
)
def test_bad_values_are_one_line_errors(overrides, message):
    with pytest.raises(ConfigError) as err:
        train_config.load(None, overrides)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_help_lists_every_option():
    text = train_config.options_help()
    for key in ("steps:", "learner.lr:", "sampling.temperature:", "algo_args:", "eval_every:"):
        assert key in text


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"steps": "1.5"}, "train: steps=1.5 is not a valid int"),
        ({"steps": 2.0}, "train: steps=2.0 is not a valid int"),
        ({"group_size": "true"}, "train: group_size=True is not a valid int"),
        ({"env_args": "5"}, "train: env_args=5 is not a valid mapping"),
        ({"env_args": "{max_turns: [1}"}, "env_args='{max_turns: [1}' is not a valid mapping"),
        ({"algo_args": "[1, 2]"}, "train: algo_args=[1, 2] is not a valid mapping"),
        ({"asynchronous.enabled": "1"}, "asynchronous: enabled=1 is not a valid bool"),
        ({"device": "0"}, "train: device=0 is not a valid str"),
        ({"learner.betas": "0.9"}, "learner: betas=0.9 is not a valid tuple[float, float]"),
        ({"learner.betas": "[0.9, 0.95, 0.99]"}, "betas=[0.9, 0.95, 0.99] is not a valid tuple[float, float]"),
        ({"learner.lr": "true"}, "learner: lr=True is not a valid float"),
        ({"sampling.seed": "1.0"}, "sampling: seed=1.0 is not a valid int or None"),
        ({"learner": "5"}, "train: learner=5 is not a valid mapping"),
        ({"learner.lr": "nan"}, "learner: lr=nan is not a finite number"),
        ({"learner.lr": ".inf"}, "learner: lr=inf is not a finite number"),
        ({"learner.eps": "nan"}, "learner: eps=nan is not a finite number"),  # a field with no range check
        ({"time_limit_min": "inf"}, "train: time_limit_min=inf is not a finite number"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_not_coerced(overrides, message):
    with pytest.raises(ConfigError) as err:
        train_config.load(None, overrides)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_strings_are_parsed_and_ints_are_floats(tmp_path):
    config = train_config.load(
        None,
        {
            "learner.lr": "1",
            "learner.betas": "[0.8, 0.9]",
            "learner.max_grad_norm": "none",
            "learner.recompute_old_logprobs": "false",
            "sampling.stop": '["</a>"]',
            "env_args": "{max_turns: 2}",
            "time_limit_min": "5",
        },
    )
    assert config.learner.lr == 1 and config.learner.betas == (0.8, 0.9) and config.learner.max_grad_norm is None
    assert config.learner.recompute_old_logprobs is False and config.sampling.stop == ("</a>",)
    assert config.env_args == {"max_turns": 2} and config.time_limit_min == 5
    (tmp_path / "c.yaml").write_text("steps: 3\nlearner: {lr: 1, betas: [0.5, 0.6]}\n")
    config = train_config.load(tmp_path / "c.yaml")
    assert config.steps == 3 and config.learner.lr == 1 and config.learner.betas == (0.5, 0.6)


@pytest.mark.parametrize(
    ("cls", "values", "message"),
    [
        (LearnerConfig, {"lr": float("nan")}, "lr=nan is not a finite number"),  # nan < 0 is False
        (LearnerConfig, {"max_grad_norm": float("inf")}, "max_grad_norm=inf is not a finite number"),
        (SamplingParams, {"top_p": float("nan")}, "top_p=nan is not a finite number"),  # both bounds
        (SamplingParams, {"temperature": float("-inf")}, "temperature=-inf is not a finite number"),
        (AsyncConfig, {"stale_decay": float("nan")}, "stale_decay=nan is not a finite number"),
        (VLLMOptions, {"gpu_memory_utilization": float("nan")}, "gpu_memory_utilization=nan is not a finite"),
    ],
)
def test_range_checks_refuse_nan_and_infinity(cls, values, message):
    with pytest.raises(ConfigError, match=message):
        cls(**values)  # directly, not through build: the range check itself refuses


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        (None, ConfigError, "does not exist"),
        ("", ConfigError, "is a directory"),  # the folder itself is named
        ("steps: [1,\n", ConfigError, "not valid YAML"),
        ("- 1\n", AgentRLError, "mapping"),
        ("steps: 2.5\n", ConfigError, r"steps=2\.5 is not a valid int"),
        ("learner: 0\n", ConfigError, "learner=0 is not a valid mapping"),
        ("1: 2\nstepz: 3\n", ConfigError, "unknown option 1"),
        (b"\xff\xfe\x00steps", ConfigError, "cannot read config file"),
    ],
)
def test_bad_config_files_are_one_line(tmp_path, content, error, message):
    path = tmp_path / "c.yaml"
    if content == "":
        path = tmp_path
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(error, match=message) as err:
        train_config.load(path)
    assert "\n" not in str(err.value)


def test_each_backend_has_its_own_engine_section(tmp_path):
    (tmp_path / "run.yaml").write_text("engine:\n  backend: vllm\n  vllm: {max_num_seqs: 16}\n")
    config = train_config.load(tmp_path / "run.yaml", {"engine.vllm.enforce_eager": "false"})
    vllm = config.engine.section()
    assert (config.engine.backend, vllm.max_num_seqs, vllm.enforce_eager, vllm.max_model_len) == (
        "vllm",
        16,
        False,
        2048,
    )
    assert config.engine.to_dict()["vllm"]["max_num_seqs"] == 16 and "sections" not in config.to_dict()["engine"]
    assert train_config.from_dict(config.to_dict()) == config  # what a run directory's config.yaml resumes from


def test_a_section_of_a_backend_not_selected_is_validated_and_kept():
    config = train_config.load(None, {"engine.vllm.max_num_seqs": "8"})
    assert config.engine.backend == "transformers" and config.engine.section("vllm").max_num_seqs == 8
    assert config.engine.section() == config.engine.section("transformers")


def test_old_flat_engine_keys_are_aliases_of_their_backend_section():
    old = {"backend": "vllm", "dtype": "float32", "max_batch_size": 4, "max_num_seqs": 8, "colocate": False}
    config = train_config.from_dict({"engine": old})
    assert config.engine.dtype == "float32" and config.engine.section().max_num_seqs == 8
    assert config.engine.section("transformers").max_batch_size == 4


def test_help_lists_each_backend_section():
    text = train_config.options_help()
    assert "engine.vllm.max_num_seqs:" in text and "engine.transformers.max_batch_size:" in text
    assert "engine.max_num_seqs:" not in text and "engine.sections" not in text


def test_a_run_saved_under_the_old_stop_option_name_loads_under_the_new():
    from agentrl.trainer.config import from_dict

    assert from_dict({"max_tool_unavailable_rate": 0.25}).max_service_failure_rate == 0.25


def test_an_environment_brings_its_training_defaults_under_the_users_choices(tmp_path):
    """``train --env tool_use --algo grpo`` with no other flag trains with the recipe's budget
    (128 new tokens a turn, not train's 48, which cut programs off); a config file or a flag
    still decides."""
    from agentrl.trainer.config import load

    plain = load(None, {"env": "tool_use", "algo": "grpo"})
    recipe = load("tool_use_grpo")
    for read in (
        lambda c: c.sampling.max_new_tokens,
        lambda c: c.max_total_tokens,
        lambda c: c.tasks_per_step,
        lambda c: c.group_size,
        lambda c: c.learner.lr,
        lambda c: c.env_args,
    ):
        assert read(plain) == read(recipe)
    assert plain.sampling.max_new_tokens == 128 and load(None, {"env": "math"}).sampling.max_new_tokens == 48
    assert load(None, {"env": "tool_use", "sampling.max_new_tokens": 64}).sampling.max_new_tokens == 64
    mine = tmp_path / "mine.yaml"
    mine.write_text("env: tool_use\nsampling: {max_new_tokens: 96}\n")
    assert load(mine).sampling.max_new_tokens == 96 and load(mine).max_total_tokens == 768


def test_lora_options_without_a_rank_warn_that_they_are_ignored():
    with pytest.warns(AgentRLWarning, match=r"lora.alpha given but lora.rank is 0"):
        train_config.load(overrides={"lora.alpha": 8})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train_config.load(overrides={"lora.rank": 8, "lora.alpha": 8})  # with a rank: no warning

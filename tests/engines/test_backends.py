"""The backend registry and what its entries decide: the engine a config builds, each backend's
own config section, where asynchronous rollouts run, and which worker is pinned to one GPU.
A stand-in backend is registered for a test (and removed after it) to show that these follow
the registered capabilities, not a backend's name."""

import subprocess
import sys
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from agentrl.config import check_range, option
from agentrl.engines import registry
from agentrl.engines.backends import TransformersOptions, VLLMOptions
from agentrl.engines.base import SamplingParams
from agentrl.engines.config import EngineConfig, engine_config
from agentrl.engines.factory import make_engine, release
from agentrl.errors import ConfigError, UnknownNameError
from agentrl.rollout import RolloutConfig
from agentrl.rollout.worker import WorkerSpec, pinned
from agentrl.trainer import config as train_config


@dataclass
class StandInOptions:
    width: int = option(3, "how wide")

    def __post_init__(self) -> None:
        check_range("engine.stand_in", "width", self.width, 1)


def stand_in(monkeypatch, **capabilities):
    """Register a backend named ``stand_in`` for one test; its engines record how they were built."""
    built = []

    def build(config, path, tokenizer, *, device, seed):
        built.append((config.section(), path, tokenizer, device, seed))
        return SimpleNamespace(policy_version=0)

    backend = registry.EngineBackend("stand_in", "a test backend", StandInOptions, build, **capabilities)
    registry.names()  # the built-in backends first, so they are not registered inside the patch
    monkeypatch.setitem(registry._BACKENDS, "stand_in", backend)
    return built


def test_the_built_in_backends_are_registered_with_their_capabilities():
    assert registry.names() == ["transformers", "vllm"]
    hf, vllm = registry.get("transformers"), registry.get("vllm")
    assert (hf.options, hf.thread_safe, hf.wants_process, hf.pins_device) == (TransformersOptions, True, False, False)
    assert (vllm.options, vllm.thread_safe, vllm.wants_process, vllm.pins_device) == (VLLMOptions, False, True, True)


def test_an_unknown_backend_lists_the_known_ones():
    with pytest.raises(UnknownNameError) as err:
        registry.get("sglang")
    assert str(err.value) == "unknown engine backend 'sglang'; known: transformers, vllm"
    with pytest.raises(ConfigError, match="backend='sglang' is not allowed; choose one of auto, transformers, vllm"):
        EngineConfig(backend="sglang")


def test_a_name_registered_twice_raises():
    again = registry.EngineBackend("vllm", "another vllm", VLLMOptions, registry.get("vllm").build)
    with pytest.raises(ValueError, match="'vllm' is registered twice"):
        registry.register(again)
    assert registry.get("vllm").description != "another vllm"
    with pytest.raises(ValueError, match="cannot take that name"):
        registry.EngineBackend("dtype", "a clash with a shared option", VLLMOptions, registry.get("vllm").build)
    with pytest.raises(ValueError, match="must be a dataclass"):
        registry.EngineBackend("plain", "options that are not a dataclass", dict, registry.get("vllm").build)


def test_choosing_a_backend_imports_no_engine():
    code = (
        "import sys; from agentrl.trainer import config as c; "
        "t = c.load(None, {'engine.backend': 'vllm', 'asynchronous.enabled': 'true'}); "
        "assert t.rollout_worker == 'process'; "
        "print(sorted(m for m in sys.modules if m == 'vllm' or m in ('agentrl.engines.vllm', 'agentrl.engines.hf')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_make_engine_builds_through_the_registry(monkeypatch):
    built = stand_in(monkeypatch)
    config = engine_config({"backend": "stand_in", "stand_in": {"width": "5"}})
    engine = make_engine(config, "some/path", "tokenizer", device="cpu", seed=7)
    assert built == [(StandInOptions(width=5), "some/path", "tokenizer", "cpu", 7)]
    release(engine)  # an engine that cannot sleep is left alone


def test_the_vllm_backend_gets_its_section_without_importing_vllm(monkeypatch):
    import agentrl.engines.vllm as vllm_engine

    calls = []
    monkeypatch.setattr(vllm_engine, "VLLMEngine", lambda *args, **kwargs: calls.append((args, kwargs)) or "engine")
    config = engine_config({"backend": "vllm", "dtype": "float32", "vllm": {"max_num_seqs": 8}})
    assert make_engine(config, "model", None, device="cpu", seed=3) == "engine"
    assert calls == [(("model", VLLMOptions(max_num_seqs=8)), {"dtype": "float32", "device": "cpu", "seed": 3})]
    assert "vllm" not in sys.modules


def test_release_puts_a_sleeper_to_sleep():
    class Sleepy:
        asleep = False

        def sleep(self) -> None:
            self.asleep = True

        def wake(self) -> None:
            self.asleep = False

    engine = Sleepy()
    release(engine)  # type: ignore[arg-type]
    assert engine.asleep


def test_a_new_backend_has_its_own_config_section(monkeypatch):
    stand_in(monkeypatch)
    config = train_config.load(None, {"engine.backend": "stand_in", "engine.stand_in.width": "9"})
    assert config.engine.section() == StandInOptions(width=9)
    assert config.engine.section("vllm") == VLLMOptions()
    assert train_config.from_dict(config.to_dict()) == config
    assert "engine.stand_in.width: how wide" in train_config.options_help()
    with pytest.raises(ConfigError, match=r"engine.stand_in: width=0 is out of range"):
        train_config.load(None, {"engine.stand_in.width": "0"})


@pytest.mark.parametrize(
    ("capabilities", "auto", "thread_allowed"),
    [
        ({}, "thread", True),
        ({"wants_process": True}, "process", True),
        ({"thread_safe": False}, "process", False),
        ({"thread_safe": False, "wants_process": True}, "process", False),
    ],
)
def test_capabilities_decide_where_asynchronous_rollouts_run(monkeypatch, capabilities, auto, thread_allowed):
    stand_in(monkeypatch, **capabilities)
    on = {"engine.backend": "stand_in", "asynchronous.enabled": "true"}
    assert train_config.load(None, on).rollout_worker == auto
    if thread_allowed:
        assert train_config.load(None, on | {"asynchronous.worker": "thread"}).rollout_worker == "thread"
    else:
        with pytest.raises(ConfigError, match=r"engine\.backend=stand_in needs asynchronous\.worker=process"):
            train_config.load(None, on | {"asynchronous.worker": "thread"})


@pytest.mark.parametrize(("pins_device", "expected"), [(True, ("cuda", "3")), (False, ("cuda:1", None))])
def test_the_pins_device_capability_decides_the_workers_visible_gpu(monkeypatch, pins_device, expected):
    stand_in(monkeypatch, pins_device=pins_device)
    spec = WorkerSpec("math", list, "unused", SamplingParams(), RolloutConfig(), 1, engine=EngineConfig("stand_in"))
    spec.device = "cuda:1"
    pinned_spec, shown = pinned(spec, "2,3")
    assert (pinned_spec.device, shown) == expected


@pytest.mark.parametrize(
    ("gpu", "installed", "backend", "reason"),
    [
        (True, {"vllm"}, "vllm", "auto: a GPU is visible and vllm is installed"),
        (True, set(), "transformers", "auto: a GPU is visible but vllm is not installed"),
        (False, {"vllm"}, "transformers", "auto: no GPU is visible"),
        (False, set(), "transformers", "auto: no GPU is visible"),
    ],
)
def test_auto_picks_vllm_only_on_a_gpu_with_vllm_installed(gpu, installed, backend, reason):
    assert registry.auto(gpu=gpu, installed=lambda module: module in installed) == (backend, reason)


def test_the_config_resolves_auto_and_an_explicit_choice_wins(monkeypatch):
    monkeypatch.setattr(registry, "auto", lambda: ("vllm", "auto: a GPU is visible and vllm is installed"))
    chosen = EngineConfig()
    assert (chosen.backend, chosen.chosen_because) == ("vllm", "auto: a GPU is visible and vllm is installed")
    assert chosen.to_dict()["backend"] == "vllm"  # the run's config records the engine, not "auto"
    explicit = EngineConfig(backend="transformers")
    assert (explicit.backend, explicit.chosen_because) == ("transformers", "given")


def test_auto_on_this_machine_says_why():
    import torch

    config = EngineConfig()
    if torch.cuda.is_available():
        assert config.chosen_because.startswith("auto: a GPU is visible")
    else:
        assert (config.backend, config.chosen_because) == ("transformers", "auto: no GPU is visible")


def test_a_cpu_run_samples_with_the_cpu_engine_even_where_a_gpu_is_visible(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(registry.importlib.util, "find_spec", lambda name: object())  # vllm "installed"
    assert train_config.load(None, {}).engine.backend == "vllm"
    on_cpu = train_config.load(None, {"device": "cpu"}).engine
    assert (on_cpu.backend, on_cpu.chosen_because) == ("transformers", "auto: the run's device is cpu")
    explicit = train_config.load(None, {"device": "cpu", "engine.backend": "vllm"}).engine
    assert (explicit.backend, explicit.chosen_because) == ("vllm", "given")


def test_place_lets_a_cpu_device_decide_only_an_auto_choice(monkeypatch):
    monkeypatch.setattr(registry, "auto", lambda gpu=None: ("vllm" if gpu is not False else "transformers", "auto: x"))
    on_gpu = EngineConfig()
    on_gpu.place("cuda")
    assert on_gpu.backend == "vllm"  # eval and train share this: a GPU device keeps the GPU engine
    on_gpu.place("cpu")
    assert (on_gpu.backend, on_gpu.chosen_because) == ("transformers", "auto: the run's device is cpu")
    explicit = EngineConfig(backend="vllm")
    explicit.place("cpu")
    assert explicit.backend == "vllm"


@pytest.mark.parametrize(("stage", "gathered"), [(2, False), (3, True)])
def test_an_engine_that_cannot_load_weights_is_refused_before_training(monkeypatch, stage, gathered):
    stand_in(monkeypatch, loads_weights=False)
    overrides = {"engine.backend": "stand_in", "learner.backend": "deepspeed", "learner.zero_stage": str(stage)}
    with pytest.raises(ConfigError) as err:
        train_config.load(None, overrides)
    assert str(err.value).startswith("engine.backend=stand_in cannot load the learner's weights")
    assert ("gathered from every rank" in str(err.value)) is gathered
    stand_in(monkeypatch)  # the same backend, loading weights: accepted
    assert train_config.load(None, overrides).engine.backend == "stand_in"

"""``TrainConfig``: a training run's settings, from YAML and command-line overrides.

Owns the run-level sections and how they are merged: defaults, then a YAML file, then
``--set section.key=value`` overrides. Each section is a typed dataclass whose field help
doubles as ``agentrl train --help``; an objective's own options live in ``algo_args`` and
are validated by that objective's config, never read here.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agentrl import recipes
from agentrl.config import build, check_choice, check_range, field_defaults, field_help, option
from agentrl.engines.base import SamplingParams
from agentrl.engines.config import EngineConfig, engine_config, engine_defaults, engine_help
from agentrl.errors import AgentRLError, AgentRLWarning, ConfigError, first_line
from agentrl.learner import backend as learner_backend
from agentrl.learner.config import LearnerConfig, LoraConfig


@dataclass
class AsyncConfig:
    """Asynchronous training (``agentrl train --async``): rollouts keep running while the learner
    trains, on weights at most ``max_staleness`` versions old."""

    enabled: bool = option(False, "overlap rollout and training (--async); False = the synchronous loop")
    max_staleness: int = option(1, "K: rollouts run at most K versions ahead; older samples are handled by `stale`")
    stale: str = option("drop", "a sample more than K versions old: drop (removed, counted) or downweight")
    stale_decay: float = option(0.5, "downweight: a row's loss is scaled by decay ** (staleness - K)")
    in_flight: str = option(
        "continue",
        "episodes in flight when weights arrive: continue (later turns use the new weights; versions "
        "recorded per turn), drain (finish on the old weights, then load) or abort (restart them)",
    )
    sync_timeout_s: float = option(300.0, "a weight sync to the engine that takes longer than this stops the run")
    worker: str = option(
        "auto",
        "where rollouts run: thread (beside the learner, in its process), process (a spawned worker with "
        "its own engine; the learner and generation then share no interpreter lock; needed for engines that "
        "cannot run on a second thread, such as vllm) or auto (process for engines that want one, else thread)",
    )
    worker_threads: int = option(0, "process worker: torch threads of the worker (0 = torch's default)")
    workers: int = option(
        0,
        "rollout workers that are torch.distributed ranks (on this machine or on others, launched with the "
        "learner by agentrl train; weights are broadcast to them); 0 = the one worker `worker` says",
    )
    worker_device: str = option(
        "", "process worker: device of its engine, e.g. cuda:1 to generate on a second GPU (empty = the run's device)"
    )

    def __post_init__(self) -> None:
        check_range("asynchronous", "max_staleness", self.max_staleness, 0)
        check_choice("asynchronous", "stale", self.stale, ("drop", "downweight"))
        check_range("asynchronous", "stale_decay", self.stale_decay, 0.0, 1.0)
        check_choice("asynchronous", "in_flight", self.in_flight, ("continue", "drain", "abort"))
        check_range("asynchronous", "sync_timeout_s", self.sync_timeout_s, 0.001)
        check_choice("asynchronous", "worker", self.worker, ("auto", "thread", "process"))
        check_range("asynchronous", "worker_threads", self.worker_threads, 0)
        check_range("asynchronous", "workers", self.workers, 0)


SECTIONS = {
    "sampling": SamplingParams,
    "learner": LearnerConfig,
    "lora": LoraConfig,
    "engine": EngineConfig,
    "asynchronous": AsyncConfig,
}


@dataclass
class TrainConfig:
    env: str = option("math_tool", "environment name (agentrl envs list) or module:Class")
    env_args: dict[str, Any] = option({}, "environment options, e.g. {max_turns: 4}")  # noqa: RUF009
    algo: str = option("vcpo", "algorithm name (agentrl algos list)")
    algo_args: dict[str, Any] = option({}, "the algorithm's own options (algos show NAME), e.g. {kl_coef: 0.01}")  # noqa: RUF009
    model: str | None = option(None, "model directory or hub name; None = the default model shipped with agentrl")
    steps: int = option(60, "rollout batches (each followed by the learner's update)")
    tasks_per_step: int = option(16, "tasks sampled from the train split per step")
    group_size: int = option(8, "samples per task")
    max_total_tokens: int = option(512, "token budget of one episode")
    eval_every: int = option(10, "evaluate on the held-out split every N steps (0 = only at start and end)")
    eval_tasks: int = option(200, "held-out tasks per evaluation")
    checkpoint_every: int = option(10, "write a checkpoint every N steps (and at the end)")
    keep_checkpoints: int = option(2, "checkpoints kept on disk (oldest removed first)")
    episodes_every: int = option(
        1,
        "keep every episode of every Nth step (and of the last) in the run's episode store, with what the "
        "learner computed per token (0 = none; held-out episodes are kept at every evaluation unless 0)",
    )
    time_limit_min: float | None = option(
        None, "wall-time budget in minutes: stop when another step and the final evaluation would overrun it"
    )
    max_service_failure_rate: float = option(
        0.5,
        "stop (with a checkpoint) when more than this share of a step's tool calls failed on their service's side "
        "(unreachable, timed out, 5xx, 4xx or unreadable answers; not the model's bad calls)",
    )
    seed: int = option(0, "seeds tasks, sampling and initialisation")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    logger: str = option("jsonl", "jsonl (always written) or wandb (also logs to wandb; offline works)")
    wandb_table_rows: int = option(16, "held-out episodes logged as a wandb table at each evaluation (logger=wandb)")
    sampling: SamplingParams = field(
        default_factory=lambda: SamplingParams(max_new_tokens=48), metadata={"help": "how rollouts sample"}
    )
    learner: LearnerConfig = field(
        default_factory=lambda: LearnerConfig(lr=2e-4, micro_batch_size=32), metadata={"help": "optimizer and batching"}
    )
    lora: LoraConfig = field(
        default_factory=LoraConfig, metadata={"help": "LoRA adapters (lora.rank > 0) instead of training every weight"}
    )
    engine: EngineConfig = field(default_factory=EngineConfig, metadata={"help": "the inference engine"})
    asynchronous: AsyncConfig = field(default_factory=AsyncConfig, metadata={"help": "asynchronous training"})

    def __post_init__(self) -> None:
        for name in ("steps", "tasks_per_step", "group_size", "eval_tasks", "checkpoint_every", "keep_checkpoints"):
            check_range("train", name, getattr(self, name), 1)
        check_range("train", "max_total_tokens", self.max_total_tokens, 16)
        check_range("train", "eval_every", self.eval_every, 0)
        check_range("train", "episodes_every", self.episodes_every, 0)
        check_range("train", "wandb_table_rows", self.wandb_table_rows, 0)
        check_range("train", "max_service_failure_rate", self.max_service_failure_rate, 0.0, 1.0)
        check_choice("train", "logger", self.logger, ("jsonl", "wandb"))
        if self.time_limit_min is not None:
            check_range("train", "time_limit_min", self.time_limit_min, 0.01)
        self.engine.place(self.device)
        if not self.lora.enabled and self.lora != LoraConfig(rank=0):
            set_ = [
                f.name
                for f in dataclasses.fields(self.lora)
                if getattr(self.lora, f.name) != getattr(LoraConfig(), f.name)
            ]
            warnings.warn(
                f"lora.{', lora.'.join(set_)} given but lora.rank is 0: every weight trains and those options "
                "are ignored (set lora.rank=16 to train adapters)",
                AgentRLWarning,
                stacklevel=2,
            )
        if not self.engine.backend_info.loads_weights:
            gathered = (
                " (under ZeRO-3 they are gathered from every rank for it)" if self.learner.zero_stage == 3 else ""
            )
            raise ConfigError(
                f"engine.backend={self.engine.backend} cannot load the learner's weights{gathered}, so agentrl train "
                "cannot train through it; choose an engine that can (agentrl train --help, engine.backend)"
            )
        a = self.asynchronous
        if a.workers and not a.enabled:
            raise ConfigError("asynchronous.workers needs asynchronous training (--async)")
        if a.workers and learner_backend(self.learner.backend).data_parallel:
            raise ConfigError(
                f"asynchronous.workers runs beside a one-rank learner for now; with learner.backend="
                f"{self.learner.backend} rank 0 rolls out (asynchronous.workers=0)"
            )
        if a.worker_device and self.rollout_worker != "process":
            raise ConfigError("asynchronous.worker_device needs the process worker (asynchronous.worker=process)")
        if a.enabled and a.worker == "thread" and not self.engine.backend_info.thread_safe:
            raise ConfigError(
                f"asynchronous training with engine.backend={self.engine.backend} needs asynchronous.worker=process: "
                "a rollout thread would drive the engine from a second thread of the learner's process, which it "
                "does not support"
            )

    @property
    def rollout_worker(self) -> str:
        """Where asynchronous rollouts run: ``asynchronous.worker`` with ``auto`` resolved."""
        if self.asynchronous.worker != "auto":
            return self.asynchronous.worker
        backend = self.engine.backend_info
        return "process" if backend.wants_process or not backend.thread_safe else "thread"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"engine": self.engine.to_dict()}


def load(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Defaults, then the environment's own (``Env.train_defaults``), then the YAML file at
    ``path`` (or the recipe of that name), then ``overrides`` (dotted keys allowed)."""
    data: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        if not file.exists() and recipes.is_name(str(path)):
            file = recipes.path(str(path))  # a recipe that ships with agentrl, by name
        if file.is_dir():
            raise ConfigError(f"config file {file} is a directory; pass a YAML file or a recipe (agentrl configs list)")
        if not file.is_file():
            shipped = ""
            if file.stem in recipes.names():
                shipped = f"; the recipe of that name ships with agentrl: --config {file.stem}"
            raise ConfigError(f"config file {file} does not exist{shipped}")
        try:
            loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{file}: not valid YAML ({str(exc).splitlines()[0]})") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {file}: {first_line(exc)}") from None
        loaded = {} if loaded is None else loaded
        if not isinstance(loaded, dict):
            raise ConfigError(f"{file}: expected a mapping of options at the top level")
        data = loaded
    for key, value in (overrides or {}).items():
        _set_dotted(data, key, value)
    for key, value in _env_defaults(data).items():
        if not _has_dotted(data, key):
            _set_dotted(data, key, value)
    return from_dict(data)


def _env_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """The training defaults of the environment ``data`` names (``Env.train_defaults``)."""
    from agentrl.envs import load as load_env

    name = data.get("env", TrainConfig.__dataclass_fields__["env"].default)
    if not isinstance(name, str):
        return {}
    try:
        return dict(getattr(load_env(name), "train_defaults", {}) or {})
    except AgentRLError:  # an unknown environment: from_dict's check says so in its own words
        return {}


def _has_dotted(data: dict[str, Any], key: str) -> bool:
    target: Any = data
    for part in key.split("."):
        if not isinstance(target, dict) or part not in target:
            return False
        target = target[part]
    return True


RENAMED = {"max_tool_unavailable_rate": "max_service_failure_rate", "samples_every": "episodes_every"}
"""Options under an older name, read under the new one (a run saved before the rename resumes)."""


def from_dict(data: dict[str, Any]) -> TrainConfig:
    top = {RENAMED.get(k, k): v for k, v in data.items() if k not in SECTIONS}
    sections: dict[str, Any] = {}
    defaults = TrainConfig()
    for name, cls in SECTIONS.items():
        given = data.get(name)
        given = {} if given is None else given
        if not isinstance(given, dict):
            raise ConfigError(f"train: {name}={given!r} is not a valid mapping of options")
        if cls is EngineConfig:  # backend sections nested inside (engine.vllm.max_num_seqs)
            sections[name] = engine_config(given)
            continue
        base = dataclasses.asdict(getattr(defaults, name))
        sections[name] = build(cls, base | given, owner=name)
    config = build(TrainConfig, top, owner="train")
    return dataclasses.replace(config, **sections)


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    target = data
    for part in parts[:-1]:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise ConfigError(f"cannot set {key}: {part} is not a section")
    target[parts[-1]] = _parse_value(value) if isinstance(value, str) else value


def _parse_value(text: str) -> Any:
    """A ``--set`` value as YAML reads it (``4``, ``true``, ``[0.9, 0.95]``, ``{max_turns: 4}``);
    text that is not valid YAML stays a string, which the field's type then accepts or refuses."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def options_help() -> str:
    """Every option, dotted, with its help text and default (for ``agentrl train --help``)."""
    lines = []
    for name, text in field_help(TrainConfig).items():
        if name in SECTIONS:
            cls = SECTIONS[name]
            helps = engine_help() if cls is EngineConfig else field_help(cls)
            # the run's own defaults (sampling: 48 new tokens), not the section class's; the engine's
            # are its class's (building one looks for a GPU)
            made: Any = TrainConfig.__dataclass_fields__[name].default_factory
            defaults = engine_defaults() if cls is EngineConfig else dataclasses.asdict(made())
            lines += [f"  {name}.{k}: {h}{_default(defaults.get(k, MISSING), h)}" for k, h in helps.items()]
        else:
            lines.append(f"  {name}: {text}{_default(field_defaults(TrainConfig).get(name, MISSING), text)}")
    return "\n".join(lines)


MISSING = object()


def _default(value: Any, text: str) -> str:
    """`` (default X)``; ``none`` for an unset option unless its help already says what None means."""
    if value is MISSING or (value is None and "None" in text):
        return ""
    if value is None or (not isinstance(value, bool | int | float) and not value and value != ""):
        return " (default none)"
    return f" (default {value})" if value != "" else " (default empty)"

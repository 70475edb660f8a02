"""``EngineConfig``: which inference engine a run samples with, and its settings.

Owns the ``engine`` section of a run config (``--engine``, ``--set engine.key=value``) and its
checks: ``backend`` and ``dtype``, shared by every engine, and one section per registered
backend (``engine.vllm.max_num_seqs``), the dataclass that backend registered
(``agentrl.engines.registry``). Knows nothing of how an engine is built
(``agentrl.engines.factory``) or run.

Sections of a backend that is not selected are validated (a typo is still a one-line error)
and kept, but unused: one config file can carry settings for both engines, and ``--engine``
switches between them. The keys of the old flat layout (``engine.max_num_seqs``) are read as
aliases of the section that now owns them (``LEGACY_KEYS``), so run directories written before
the split still resume; giving a key both ways is an error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentrl.config import build, check_choice, field_defaults, field_help, option
from agentrl.engines import registry
from agentrl.errors import ConfigError, did_you_mean

DTYPES = ("auto", "float32", "bfloat16", "float16")
LEGACY_KEYS = {
    "max_batch_size": "transformers",
    "max_model_len": "vllm",
    "max_num_seqs": "vllm",
    "kv_cache_gib": "vllm",
    "gpu_memory_utilization": "vllm",
    "enforce_eager": "vllm",
    "colocate": "vllm",
}


@dataclass
class EngineConfig:
    backend: str = option(
        "auto",
        "inference engine: auto (vllm when a GPU is visible and vllm is installed, else transformers), "
        "transformers (everywhere; the fast one on CPU) or vllm",
    )
    dtype: str = option("auto", "weights dtype: auto (bfloat16 on GPU, float32 on CPU), float32, bfloat16 or float16")
    sections: dict[str, Any] = option(  # noqa: RUF009
        {}, "each backend's own options, by backend name (engine.<backend>.<key>); missing ones take their defaults"
    )

    def __post_init__(self) -> None:
        known = registry.names()
        check_choice("engine", "backend", self.backend, ["auto", *known])
        # why this backend: the run log says it; the run's config records the backend, not "auto"
        self.chosen_because = "given"
        if self.backend == "auto":
            self.backend, self.chosen_because = registry.auto()
        check_choice("engine", "dtype", self.dtype, DTYPES)
        unknown = sorted(set(self.sections) - set(known))
        if unknown:
            raise ConfigError(f"engine: no backend named {unknown[0]!r}; known: {', '.join(known)}")
        self.sections = {name: _section(name, self.sections.get(name, {})) for name in known}

    def place(self, device: str) -> None:
        """Let the run's ``device`` decide an ``auto`` choice: on ``cpu`` the fallback engine, even
        where a GPU is visible. An explicit backend is kept."""
        if device == "cpu" and self.chosen_because.startswith("auto"):
            self.backend = registry.auto(gpu=False)[0]
            self.chosen_because = "auto: the run's device is cpu"

    @property
    def backend_info(self) -> registry.EngineBackend:
        """The selected backend's registry entry: its options class and its capabilities."""
        return registry.get(self.backend)

    def section(self, name: str | None = None) -> Any:
        """Backend ``name``'s options (default: the selected backend's)."""
        return self.sections[name or self.backend]

    def to_dict(self) -> dict[str, Any]:
        """The layout ``engine_config`` reads back: ``backend``, ``dtype``, one mapping per backend."""
        sections = {name: dataclasses.asdict(options) for name, options in self.sections.items()}
        return {"backend": self.backend, "dtype": self.dtype} | sections


def _section(name: str, given: Any) -> Any:
    cls = registry.get(name).options
    if isinstance(given, cls):
        return given
    if not isinstance(given, Mapping):
        raise ConfigError(f"engine: {name} must be a mapping of options")
    return build(cls, given, owner=f"engine.{name}")


def engine_config(values: Mapping[str, Any]) -> EngineConfig:
    """The ``engine`` section from YAML or ``--set`` values: ``backend``, ``dtype``, a mapping per
    backend, and the old flat keys as aliases (``LEGACY_KEYS``)."""
    known = registry.names()
    common: dict[str, Any] = {}
    sections: dict[str, Any] = {}
    for key, value in values.items():
        if key in ("backend", "dtype"):
            common[key] = value
        elif key in known:
            sections[key] = dict(value) if isinstance(value, Mapping) else value
        elif key not in LEGACY_KEYS:
            valid = ", ".join(["backend", "dtype", *known])
            hint = did_you_mean(key, ["backend", "dtype", *known])
            raise ConfigError(f"engine: unknown option {key!r}{hint}; valid options: {valid} (engine.<backend>.<key>)")
    for key in sorted(set(values) & set(LEGACY_KEYS)):
        section = sections.setdefault(LEGACY_KEYS[key], {})
        if isinstance(section, dict):  # otherwise EngineConfig reports the section that is not a mapping
            if key in section:
                raise ConfigError(f"engine: {key} is given twice, as engine.{key} and engine.{LEGACY_KEYS[key]}.{key}")
            section[key] = values[key]
    return build(EngineConfig, common | {"sections": sections}, owner="engine")


def engine_defaults() -> dict[str, Any]:
    """Every engine option's default, dotted below ``engine.`` as ``engine_help`` names them."""
    shared = field_defaults(EngineConfig)
    for name in registry.names():
        shared |= {f"{name}.{k}": v for k, v in field_defaults(registry.get(name).options).items()}
    return shared


def engine_help() -> dict[str, str]:
    """Every engine option, dotted below ``engine.``, with its help (``agentrl train --help``)."""
    shared = {k: v for k, v in field_help(EngineConfig).items() if k != "sections"}
    for name in registry.names():
        shared |= {f"{name}.{k}": v for k, v in field_help(registry.get(name).options).items()}
    return shared

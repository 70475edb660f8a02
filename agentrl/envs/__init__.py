"""The environment API, registry and checker (see ``agentrl.envs.base`` for the contract)."""

from agentrl.envs.base import (
    INFO_KEYS,
    PARSE_ERROR_KINDS,
    Env,
    EnvSpec,
    EpisodeOverError,
    StepResult,
    TurnCounter,
    new_info,
)
from agentrl.envs.checker import EnvCheckError, check_env
from agentrl.envs.registry import GROUP, DuplicateEnvError, describe, entries, load, make, names

__all__ = [
    "GROUP",
    "INFO_KEYS",
    "PARSE_ERROR_KINDS",
    "DuplicateEnvError",
    "Env",
    "EnvCheckError",
    "EnvSpec",
    "EpisodeOverError",
    "StepResult",
    "TurnCounter",
    "check_env",
    "describe",
    "entries",
    "load",
    "make",
    "names",
    "new_info",
]

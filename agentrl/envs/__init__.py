"""The environment API, registry and checker (see ``agentrl.envs.base`` for the contract).

Importing this package registers every installed environment with Gymnasium as
``agentrl/<name>-v0`` (see ``agentrl.envs.gym``).
"""

from agentrl.envs.base import (
    INFO_KEYS,
    OPTIONAL_INFO_KEYS,
    PARSE_ERROR_KINDS,
    ChatMessages,
    Env,
    EnvSpec,
    EpisodeOverError,
    StepResult,
    TurnCounter,
    UnicodeText,
    new_info,
)
from agentrl.envs.checker import EnvCheckError, check_env
from agentrl.envs.gym import gym_id, register_envs
from agentrl.envs.registry import GROUP, DuplicateEnvError, describe, entries, load, make, names

__all__ = [
    "GROUP",
    "INFO_KEYS",
    "OPTIONAL_INFO_KEYS",
    "PARSE_ERROR_KINDS",
    "ChatMessages",
    "DuplicateEnvError",
    "Env",
    "EnvCheckError",
    "EnvSpec",
    "EpisodeOverError",
    "StepResult",
    "TurnCounter",
    "UnicodeText",
    "check_env",
    "describe",
    "entries",
    "gym_id",
    "load",
    "make",
    "names",
    "new_info",
    "register_envs",
]

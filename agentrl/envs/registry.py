"""The environment registry, read from the entry-point group ``agentrl.envs``.

Owns name -> environment class resolution and constructing one (``make``), on the shared
``agentrl.entry_points.EntryPointRegistry``: entry points are listed without importing them,
an environment's module is imported only when it is loaded, an unknown name is a one-line
error listing the known ones, and one name claimed by two packages disables that name only.
The built-in environments register through this same group (see ``pyproject.toml``), so a
third party's package is a peer of agentrl's own. ``"package.module:attr"`` works as a name too.
"""

from __future__ import annotations

from typing import Any

from agentrl.entry_points import Entry, EntryPointRegistry, describe
from agentrl.envs.base import Env
from agentrl.errors import AgentRLError, AgentRLWarning, first_line

GROUP = "agentrl.envs"
EnvEntry = Entry
__all__ = [
    "GROUP",
    "DuplicateEnvError",
    "DuplicateEnvWarning",
    "EnvEntry",
    "describe",
    "entries",
    "load",
    "make",
    "names",
    "refresh",
    "usable",
]


class DuplicateEnvError(AgentRLError):
    """Two installed packages register the same environment name."""


class DuplicateEnvWarning(AgentRLWarning):
    """Two installed packages register the same environment name; that name is disabled."""


_REGISTRY = EntryPointRegistry(GROUP, "environment", Env, DuplicateEnvError, DuplicateEnvWarning)
entries = _REGISTRY.entries
usable = _REGISTRY.usable
refresh = _REGISTRY.refresh
names = _REGISTRY.names


def load(name: str) -> type[Env]:
    """The environment class for a registered ``name`` or a ``"module:attr"`` path."""
    cls: type[Env] = _REGISTRY.load(name)
    return cls


def make(name: str, **kwargs: Any) -> Env:
    """Construct environment ``name`` with its config ``kwargs``; a constructor that rejects
    them is a one-line error naming the environment and the options."""
    cls = load(name)
    try:
        return cls(**kwargs)
    except AgentRLError:
        raise
    except Exception as exc:  # a third party's constructor may raise anything for a bad option
        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "no options"
        raise AgentRLError(f"environment {name!r} rejected its options ({given}): {first_line(exc)}") from None

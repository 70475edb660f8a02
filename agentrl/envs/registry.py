"""The environment registry, read from the entry-point group ``agentrl.envs``.

Owns name -> environment class resolution. Entry points are listed from package metadata
without importing them; an environment's module is imported only when it is loaded. The
built-in environments register through this same group (see ``pyproject.toml``), so a third
party's package is a peer of agentrl's own. ``"package.module:attr"`` works as a name too
(``agentrl.plugins`` imports both kinds).

Failing loudly: an unknown name is a one-line error listing the known ones. One name claimed
by two packages disables that name only, with a warning naming both (once per process);
loading it is an error naming both, and every other environment stays usable.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from agentrl.envs.base import Env
from agentrl.errors import AgentRLError, AgentRLWarning, UnknownNameError, first_line
from agentrl.plugins import is_path, load_class

GROUP = "agentrl.envs"


class DuplicateEnvError(AgentRLError):
    """Two installed packages register the same environment name."""


class DuplicateEnvWarning(AgentRLWarning):
    """Two installed packages register the same environment name; that name is disabled."""


@dataclass(frozen=True)
class EnvEntry:
    name: str
    target: str  # "module:attr"
    package: str  # the distribution that provides it


@dataclass(frozen=True)
class _Scan:
    usable: dict[str, EnvEntry]
    disabled: dict[str, str]  # name -> the message naming every package that claims it


@functools.cache
def _scan() -> _Scan:
    claims: dict[str, list[EnvEntry]] = {}
    for ep in entry_points(group=GROUP):
        package = ep.dist.name if ep.dist is not None else "<unknown package>"
        entry = EnvEntry(ep.name, ep.value, package)
        seen = claims.setdefault(ep.name, [])
        if all((e.package, e.target) != (package, ep.value) for e in seen):  # the same dist seen twice is one
            seen.append(entry)
    disabled = {}
    for name, found in claims.items():
        if len(found) > 1:
            by = " and ".join(f"by {e.package} ({e.target})" for e in sorted(found, key=lambda e: e.package))
            disabled[name] = f"environment {name!r} is registered twice: {by}; uninstall one of them"
    usable = {name: found[0] for name, found in sorted(claims.items()) if name not in disabled}
    return _Scan(usable, disabled)


def entries() -> dict[str, EnvEntry]:
    """Every usable registered environment by name, without importing any of them.

    Warns (``DuplicateEnvWarning``) about every name two packages claim. The warning is raised
    here, when the registry is asked for, not when it is scanned: ``agentrl.envs`` scans it on
    import (to register Gymnasium ids), before the CLI has set up its one-line warning format.
    """
    scan = _scan()
    for name, message in scan.disabled.items():
        warnings.warn(f"{message} (until then {name!r} is disabled)", DuplicateEnvWarning, stacklevel=2)
    return dict(scan.usable)


def usable() -> dict[str, EnvEntry]:
    """``entries()`` without the warnings: for registering ids on import."""
    return dict(_scan().usable)


def refresh() -> None:
    """Forget the cached entry points (after installing a package in this process)."""
    _scan.cache_clear()


def names() -> list[str]:
    return list(entries())


def load(name: str) -> type[Env]:
    """The environment class for a registered ``name`` or a ``"module:attr"`` path."""
    if is_path(name):
        return load_class(name, Env, f"environment {name!r}")
    scan = _scan()
    if name in scan.disabled:
        raise DuplicateEnvError(scan.disabled[name])
    if name not in scan.usable:
        known = ", ".join(scan.usable) or "(none installed)"
        raise UnknownNameError(f"unknown environment {name!r}; known: {known}")
    entry = scan.usable[name]
    return load_class(entry.target, Env, f"environment {name!r} ({entry.target} from {entry.package})")


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


def describe(cls: type[Env]) -> str:
    """One line: the class's ``description`` or the first line of its docstring."""
    text = cls.description or (inspect.getdoc(cls) or "").strip()
    return text.splitlines()[0] if text else ""

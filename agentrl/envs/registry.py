"""The environment registry, read from the entry-point group ``agentrl.envs``.

Owns name -> environment class resolution. Entry points are listed from package metadata
without importing them; an environment's module is imported only when it is loaded. The
built-in environments register through this same group (see ``pyproject.toml``), so a third
party's package is a peer of agentrl's own. ``"package.module:attr"`` works as a name too.

Failing loudly: an unknown name is a one-line error listing the known ones, and one name
claimed by two packages is an error naming both.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from agentrl.envs.base import Env
from agentrl.errors import AgentRLError, UnknownNameError

GROUP = "agentrl.envs"


class DuplicateEnvError(AgentRLError):
    """Two installed packages register the same environment name."""


@dataclass(frozen=True)
class EnvEntry:
    name: str
    target: str  # "module:attr"
    package: str  # the distribution that provides it
    entry_point: EntryPoint | None = None


@functools.cache
def entries() -> dict[str, EnvEntry]:
    """Every registered environment by name, without importing any of them."""
    found: dict[str, EnvEntry] = {}
    for ep in entry_points(group=GROUP):
        package = ep.dist.name if ep.dist is not None else "<unknown package>"
        entry = EnvEntry(ep.name, ep.value, package, ep)
        seen = found.get(ep.name)
        if seen is not None and (seen.package, seen.target) != (package, ep.value):
            raise DuplicateEnvError(
                f"environment {ep.name!r} is registered twice: by {seen.package} ({seen.target}) "
                f"and by {package} ({ep.value}); uninstall one of them"
            )
        found.setdefault(ep.name, entry)
    return dict(sorted(found.items()))


def refresh() -> None:
    """Forget the cached entry points (after installing a package in this process)."""
    entries.cache_clear()


def names() -> list[str]:
    return list(entries())


def load(name: str) -> type[Env]:
    """The environment class for a registered ``name`` or a ``"module:attr"`` path."""
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            obj = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise UnknownNameError(f"cannot import environment {name!r}: {exc}") from None
        return _as_env_class(obj, name)
    known = entries()
    if name not in known:
        raise UnknownNameError(f"unknown environment {name!r}; known: {', '.join(known) or '(none installed)'}")
    entry = known[name]
    try:
        obj = entry.entry_point.load() if entry.entry_point else None
    except Exception as exc:
        raise AgentRLError(
            f"environment {name!r} from {entry.package} failed to import ({entry.target}): {type(exc).__name__}: {exc}"
        ) from exc
    return _as_env_class(obj, name)


def _as_env_class(obj: Any, name: str) -> type[Env]:
    if not (inspect.isclass(obj) and issubclass(obj, Env)):
        raise AgentRLError(f"environment {name!r} is {obj!r}, not a subclass of agentrl.envs.Env")
    return obj


def make(name: str, **kwargs: Any) -> Env:
    """Construct environment ``name`` with its config ``kwargs``."""
    return load(name)(**kwargs)


def describe(cls: type[Env]) -> str:
    """One line: the class's ``description`` or the first line of its docstring."""
    text = cls.description or (inspect.getdoc(cls) or "").strip()
    return text.splitlines()[0] if text else ""

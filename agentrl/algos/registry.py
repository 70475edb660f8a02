"""The algorithm registry: one name, one class, one file.

Owns name -> ``Algorithm`` resolution. A duplicate name raises at registration; an unknown
name lists the valid ones; ``"package.module:Class"`` works as an escape hatch (imported by
``agentrl.plugins``, as environments are). Each algorithm module registers itself on import;
``agentrl.algos`` imports them all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from agentrl.algos.base import Algorithm
from agentrl.config import build
from agentrl.errors import UnknownNameError, did_you_mean
from agentrl.plugins import is_path, load_class

A = TypeVar("A", bound=type[Algorithm])
_ALGORITHMS: dict[str, type[Algorithm]] = {}


def register(cls: A) -> A:
    """Class decorator: add ``cls`` under ``cls.name``."""
    if not cls.name or not cls.description:
        raise ValueError(f"{cls.__name__} needs a name and a one-line description")
    if cls.name in _ALGORITHMS:
        raise ValueError(
            f"algorithm {cls.name!r} is registered twice ({_ALGORITHMS[cls.name].__name__} and {cls.__name__})"
        )
    _ALGORITHMS[cls.name] = cls
    return cls


def names() -> list[str]:
    return sorted(_ALGORITHMS)


def get(name: str) -> type[Algorithm]:
    if is_path(name):
        return load_class(name, Algorithm, f"algorithm {name!r}")
    if name not in _ALGORITHMS:
        raise UnknownNameError(f"unknown algorithm {name!r}{did_you_mean(name, names())}; known: {', '.join(names())}")
    return _ALGORITHMS[name]


def make(name: str, **options: Any) -> Algorithm:
    """Build algorithm ``name`` with its config ``options`` (one-line errors for bad ones)."""
    cls = get(name)
    return cls(build(cls.config_cls, options, owner=name))


def describe_all() -> list[tuple[str, str]]:
    return [(name, _ALGORITHMS[name].description) for name in names()]


Factory = Callable[..., Algorithm]

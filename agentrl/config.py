"""Typed configs: dataclasses whose fields carry their own help text.

Owns building a config from loose key/value pairs (YAML, ``--env-arg k=v``) with one-line
errors, and the validation helpers configs call from ``__post_init__``. Every field is
declared with ``option(default, "help")``; the help doubles as CLI help.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from agentrl.errors import ConfigError

T = TypeVar("T")


def option(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field with a default and its help text."""
    if isinstance(default, list | dict | set):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"help": help}, **kwargs)
    return dataclasses.field(default=default, metadata={"help": help}, **kwargs)


def field_help(cls: type) -> dict[str, str]:
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def build(cls: type[T], values: Mapping[str, Any], *, owner: str) -> T:
    """``cls(**values)`` with unknown keys and uncoercible values as one-line ``ConfigError``s.

    Strings are coerced to the field's declared type, so ``{"max_turns": "4"}`` from a
    command line works like ``{"max_turns": 4}`` from YAML.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{owner}: unknown option {unknown[0]!r}; valid options: {', '.join(fields)}")
    coerced = {k: _coerce(v, hints[k], owner, k) for k, v in values.items()}
    try:
        return cls(**coerced)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{owner}: {exc}") from None


def _coerce(value: Any, hint: Any, owner: str, name: str) -> Any:
    if not isinstance(value, str):
        return value
    options = (
        typing.get_args(hint)
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
        else (hint,)
    )
    if value.lower() in ("none", "null") and type(None) in options:
        return None
    for target in options:
        if target is str or typing.get_origin(target) is typing.Literal:
            return value
        try:
            if target is bool:
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                continue
            if target in (int, float):
                return target(value)
            if typing.get_origin(target) in (tuple, list, dict):
                return json.loads(value)
        except (ValueError, json.JSONDecodeError):
            continue
    raise ConfigError(f"{owner}: {name}={value!r} is not a valid {getattr(hint, '__name__', hint)}")


def check_range(owner: str, name: str, value: float, low: float | None = None, high: float | None = None) -> None:
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        raise ConfigError(f"{owner}: {name}={value!r} is out of range; allowed: {bounds}")


def check_choice(owner: str, name: str, value: Any, choices: Iterable[Any]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"{owner}: {name}={value!r} is not allowed; choose one of {', '.join(map(str, choices))}")

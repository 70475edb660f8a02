"""Typed configs: dataclasses whose fields carry their own help text.

Owns building a config from loose key/value pairs (YAML, ``--set``, ``--env-arg k=v``) with
one-line errors, and the validation helpers configs call from ``__post_init__``. Every field
is declared with ``option(default, "help")``; the help doubles as CLI help.

Values are checked against the field's declared type, never coerced across types: a float or
a bool where an int is expected, an int where a bool is expected, a number where a string is
expected or a scalar where a mapping is expected is an error naming the field and the type.
Two conversions are made: strings (from a command line) are parsed into the declared type, and
an int is accepted where a float is expected. NaN and infinity are never a valid setting.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import yaml

from agentrl.errors import ConfigError, did_you_mean

T = TypeVar("T")
_TRUE, _FALSE = ("true", "yes", "on"), ("false", "no", "off")


class _Refused(Exception):
    """``value`` does not fit the declared type (caught by ``_coerce``, never leaves this module)."""


def option(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field with a default and its help text."""
    if isinstance(default, list | dict | set):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"help": help}, **kwargs)
    return dataclasses.field(default=default, metadata={"help": help}, **kwargs)


def field_help(cls: type) -> dict[str, str]:
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def field_defaults(cls: type) -> dict[str, Any]:
    """Each field's plain default; fields without one, or made by a factory (a section, an
    empty mapping), are left out (a section's factory may import an engine)."""
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


def build(cls: type[T], values: Mapping[str, Any], *, owner: str) -> T:
    """``cls(**values)`` with unknown keys and ill-typed values as one-line ``ConfigError``s.

    Strings are parsed into the field's declared type, so ``{"max_turns": "4"}`` from a
    command line works like ``{"max_turns": 4}`` from YAML.
    """
    if not isinstance(values, Mapping):
        raise ConfigError(f"{owner}: expected a mapping of options, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    unknown = sorted((k for k in values if k not in fields), key=str)
    if unknown:
        hint = did_you_mean(unknown[0], fields)
        raise ConfigError(f"{owner}: unknown option {unknown[0]!r}{hint}; valid options: {', '.join(fields)}")
    coerced = {k: _coerce(v, hints[k], owner, k) for k, v in values.items()}
    try:
        return cls(**coerced)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{owner}: {exc}") from None


def _coerce(value: Any, hint: Any, owner: str, name: str) -> Any:
    """``value`` checked against ``hint`` (strings parsed into it), or a one-line ``ConfigError``."""
    try:
        return _convert(value, hint)
    except _Refused:
        if _is_float(hint) and not _finite(value):
            raise ConfigError(f"{owner}: {name}={value} is not a finite number") from None
        raise ConfigError(f"{owner}: {name}={value!r} is not a valid {type_name(hint)}") from None


def _is_float(hint: Any) -> bool:
    return hint is float or float in typing.get_args(hint)


def _finite(value: Any) -> bool:
    """False for NaN and infinity, as numbers or as strings; True for anything else."""
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return True


def _convert(value: Any, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin is typing.Union or isinstance(hint, types.UnionType):
        if type(None) in args and (value is None or (isinstance(value, str) and value.lower() in ("none", "null"))):
            return None
        for option_hint in (a for a in args if a is not type(None)):
            try:
                return _convert(value, option_hint)
            except _Refused:
                continue
        raise _Refused
    if origin is typing.Literal:
        if value in args:
            return value
        raise _Refused
    if isinstance(value, str) and hint is not str:
        return _convert(_parse(value, hint), hint)
    if origin in (tuple, list):
        return _sequence(value, origin, args)
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise _Refused
        key_hint, value_hint = args or (Any, Any)
        return {_convert(k, key_hint): _convert(v, value_hint) for k, v in value.items()}
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return value  # an int is a valid float; it is kept as written
        raise _Refused
    if hint is int and isinstance(value, bool):
        raise _Refused
    if isinstance(hint, type) and not isinstance(value, hint):
        raise _Refused
    return value


def _parse(text: str, hint: Any) -> Any:
    """A command-line string as a value of ``hint``'s kind; refused when it is not one."""
    lowered = text.strip().lower()
    try:
        if hint is bool:
            if lowered in _TRUE + _FALSE:
                return lowered in _TRUE
            raise _Refused
        if hint is int:
            return int(text)
        if hint is float:
            return float(text)
        parsed = yaml.safe_load(text)  # lists, tuples, mappings: {max_turns: 4}, [0.9, 0.95]
    except (ValueError, yaml.YAMLError):
        raise _Refused from None
    if isinstance(parsed, str):
        raise _Refused  # still a string: it cannot become a container
    return parsed


def _sequence(value: Any, origin: Any, args: tuple[Any, ...]) -> Any:
    if not isinstance(value, list | tuple):
        raise _Refused
    if origin is list:
        return [_convert(v, args[0] if args else Any) for v in value]
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_convert(v, args[0]) for v in value)
    if args and len(args) != len(value):
        raise _Refused
    return tuple(_convert(v, h) for v, h in zip(value, args or (Any,) * len(value), strict=True))


def type_name(hint: Any) -> str:
    """``hint`` as a user reads it: ``int``, ``float or None``, ``mapping``, ``tuple[float, float]``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or isinstance(hint, types.UnionType):
        return " or ".join(type_name(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, args))
    if hint is type(None):
        return "None"
    if origin is dict or hint is dict:
        return "mapping"
    if hint is Any:
        return "value"
    if origin is not None:
        inner = ", ".join("..." if a is Ellipsis else type_name(a) for a in args)
        return f"{origin.__name__}[{inner}]"
    return getattr(hint, "__name__", str(hint))


def check_range(owner: str, name: str, value: float, low: float | None = None, high: float | None = None) -> None:
    """``value`` is a finite number within ``[low, high]`` (NaN compares False to both bounds, so
    it is refused first)."""
    if not _finite(value):
        raise ConfigError(f"{owner}: {name}={value} is not a finite number")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        raise ConfigError(f"{owner}: {name}={value!r} is out of range; allowed: {bounds}")


def check_choice(owner: str, name: str, value: Any, choices: Iterable[Any]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"{owner}: {name}={value!r} is not allowed; choose one of {', '.join(map(str, choices))}")

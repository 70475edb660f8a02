"""The option sets that take an objective down each of its code paths, found from its config.

Owns ``objective_variants``: the defaults, then one change at a time: every other choice of a
choice option (read from the option's own refusal of a wrong value), the other value of a
flag, a value for an option that is unset (None) or zero, and zero for an option whose zero
turns a part off (``ZERO_TURNS_OFF``). A change the objective refuses is left out. Tests that
must cover every path of every objective (the device audit) iterate over these.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from agentrl.algos import get, make
from agentrl.errors import ConfigError

ZERO_TURNS_OFF = ("replay_coef", "bonus_per_call", "bonus_T", "replay_T", "history_size")
"""Options whose zero switches a part off (positive by default)."""
ONE_TURNS_OFF = ("group_filter_ratio", "rho_base")
"""Options whose 1 switches a part off (below 1 by default)."""


def choices(name: str, option: str) -> list[Any]:
    """The values a choice option of objective ``name`` accepts, from its refusal of another;
    [] when the option takes any value of its type."""
    try:
        make(name, **{option: "\x00not-a-choice"})
    except ConfigError as exc:
        found = re.search(r"choose one of (.+)$", str(exc))
        return [c.strip() for c in found.group(1).split(",")] if found else []
    return []


def objective_variants(name: str) -> list[dict[str, Any]]:
    """``[{}, {option: value}, ...]``: the defaults, then each single change that takes another
    code path and that the objective accepts."""
    variants: list[dict[str, Any]] = [{}]
    for field in dataclasses.fields(get(name).config_cls):
        default = field.default
        candidates: list[Any] = []
        if isinstance(default, bool):
            candidates = [not default]
        elif isinstance(default, str):
            candidates = [c for c in choices(name, field.name) if c != default]
        elif default is None:
            candidates = [3.0]
        elif isinstance(default, int | float) and default == 0:
            candidates = [0.1]
        elif field.name in ZERO_TURNS_OFF:
            candidates = [0]
        elif field.name in ONE_TURNS_OFF:
            candidates = [1.0]
        for value in candidates:
            try:
                make(name, **{field.name: value})
            except ConfigError:
                continue
            variants.append({field.name: value})
    return variants

"""What the listing commands print: the table of ``envs list`` and ``tools list`` (name, package,
description), and the options of ``algos show`` and ``envs show`` (name, help, default)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from agentrl.entry_points import Entry
from agentrl.errors import AgentRLError


def print_registry(entries: Mapping[str, Entry], describe: Callable[[str], str]) -> int:
    """One row per entry; an entry that fails to load says why in its description."""
    rows = []
    for name, entry in entries.items():
        try:
            description = describe(name)
        except AgentRLError as exc:
            description = f"(failed to load: {exc})"
        rows.append((name, description, entry.package))
    width = max((len(r[0]) for r in rows), default=4)
    pkg_width = max((len(r[2]) for r in rows), default=7)
    print(f"{'NAME':<{width}}  {'PACKAGE':<{pkg_width}}  DESCRIPTION")
    for name, description, package in rows:
        print(f"{name:<{width}}  {package:<{pkg_width}}  {description}")
    return 0


def print_options(options_cls: type | None, how: str) -> None:
    """Each option of a dataclass with its help and default, under the line ``how`` sets them."""
    from agentrl.config import field_defaults, field_help

    helps = field_help(options_cls) if options_cls is not None else {}
    if not helps:
        print("no options")
        return
    defaults: dict[str, Any] = field_defaults(options_cls)  # type: ignore[arg-type]
    print(f"options ({how}):")
    width = max(map(len, helps))
    for key, text in helps.items():
        shown = f" (default {defaults[key]!r})" if key in defaults else ""
        print(f"  {key:<{width}}  {text}{shown}")

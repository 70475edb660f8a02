"""The table that ``envs list`` and ``tools list`` print: name, package, description."""

from __future__ import annotations

from collections.abc import Callable, Mapping

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

"""A registry read from one entry-point group: the mechanism environments and tools share.

Owns listing a group's entry points from package metadata without importing them, the rule
for one name claimed by two packages (that name is disabled, with a warning naming both, and
loading it is an error naming both; every other name stays usable), and loading a name or a
``"package.module:attr"`` path through ``agentrl.plugins``. An unknown name is a one-line
error listing the known ones. Knows nothing of what the registered things are: the caller
names the group, the kind (``"environment"``, ``"tool"``) and the base class.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from agentrl.errors import AgentRLError, AgentRLWarning, UnknownNameError, did_you_mean
from agentrl.plugins import is_path, load_class


@dataclass(frozen=True)
class Entry:
    name: str
    target: str  # "module:attr"
    package: str  # the distribution that provides it


@dataclass(frozen=True)
class _Scan:
    usable: dict[str, Entry]
    disabled: dict[str, str]  # name -> the message naming every package that claims it


class EntryPointRegistry:
    """Names registered in entry-point group ``group``, each a subclass of ``base``."""

    def __init__(
        self,
        group: str,
        kind: str,
        base: type,
        duplicate_error: type[AgentRLError] = AgentRLError,
        duplicate_warning: type[Warning] = AgentRLWarning,
    ):
        self.group, self.kind, self.base = group, kind, base
        self.duplicate_error, self.duplicate_warning = duplicate_error, duplicate_warning
        self._scan = functools.cache(self._read)

    def _read(self) -> _Scan:
        claims: dict[str, list[Entry]] = {}
        for ep in entry_points(group=self.group):
            package = ep.dist.name if ep.dist is not None else "<unknown package>"
            entry = Entry(ep.name, ep.value, package)
            seen = claims.setdefault(ep.name, [])
            if all((e.package, e.target) != (package, ep.value) for e in seen):  # one dist seen twice is one
                seen.append(entry)
        disabled = {}
        for name, found in claims.items():
            if len(found) > 1:
                by = " and ".join(f"by {e.package} ({e.target})" for e in sorted(found, key=lambda e: e.package))
                disabled[name] = f"{self.kind} {name!r} is registered twice: {by}; uninstall one of them"
        usable = {name: found[0] for name, found in sorted(claims.items()) if name not in disabled}
        return _Scan(usable, disabled)

    def entries(self) -> dict[str, Entry]:
        """Every usable registered name, without importing any; warns about each name that
        two packages claim (when asked, not when scanned, so the CLI's warning format applies)."""
        scan = self._scan()
        for name, message in scan.disabled.items():
            warnings.warn(f"{message} (until then {name!r} is disabled)", self.duplicate_warning, stacklevel=3)
        return dict(scan.usable)

    def usable(self) -> dict[str, Entry]:
        """``entries()`` without the warnings."""
        return dict(self._scan().usable)

    def refresh(self) -> None:
        """Forget the cached entry points (after installing a package in this process)."""
        self._scan.cache_clear()

    def names(self) -> list[str]:
        return list(self.entries())

    def load(self, name: str) -> Any:
        """The class registered as ``name``, or at the ``"module:attr"`` path ``name``."""
        if is_path(name):
            return load_class(name, self.base, f"{self.kind} {name!r}")
        scan = self._scan()
        if name in scan.disabled:
            raise self.duplicate_error(scan.disabled[name])
        if name not in scan.usable:
            known = ", ".join(scan.usable) or "(none installed)"
            raise UnknownNameError(f"unknown {self.kind} {name!r}{did_you_mean(name, scan.usable)}; known: {known}")
        entry = scan.usable[name]
        return load_class(entry.target, self.base, f"{self.kind} {name!r} ({entry.target} from {entry.package})")


def describe(cls: type) -> str:
    """One line: the class's ``description`` or the first line of its docstring."""
    text = getattr(cls, "description", None) or (inspect.getdoc(cls) or "").strip()
    return text.splitlines()[0] if text else ""

"""Whole-sandbox limits and teardown from the host: one cgroup per sandbox, v1 or v2.

Owns finding where this process may make cgroups (``Tree.find``), making one sandbox's group
with its memory, task and CPU limits (``Tree.make``), moving a sandbox's first processes in
before they start anything (``Group.join``: everything the sandbox ever starts is then
inside), and ``Group.destroy``: every process in the group killed
(``cgroup.kill`` on v2; on v1 the group is frozen, so nothing in it can fork, killed, then
thawed) and the group removed. Nothing inside a sandbox can leave its group or undo the kill.

Groups are ``agentrl-sandbox.<run>.s<n>`` directly under this process's cgroup in each v1
hierarchy (memory, pids, cpu; freezer when mounted), or under the v2 root; ``<run>`` is
``Owner.dirname``, so ``remove_run`` (the run's reaper, at the run's end) and ``remove_orphans``
(a later run) find what a dead run left. They are not nested in a common parent on purpose:
the CPU scheduler gives a parent group one share, which its children would divide, so 64
sandboxes under one parent answered a call in 10 ms at the p50 where side by side they take
1.5 ms (64 sessions on 2 cores, ``scripts/bench_sandbox.py``). Writing cgroups needs root or a
delegated tree; ``Tree.find`` says in one line why it cannot. Knows nothing of backends.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from agentrl_tools.sandbox.owner import Owner

PREFIX = "agentrl-sandbox."
V1_NEEDED = ("memory", "pids", "cpu")
V2_NEEDED = ("memory", "pids", "cpu")
CFS_PERIOD_US = 100_000
_POLL_S = 0.0005  # a killed group empties in about a millisecond: a session's close waits that long
_MOUNTINFO = Path("/proc/self/mountinfo")
_OWN = Path("/proc/self/cgroup")


class CgroupUnavailable(Exception):
    """No cgroup tree this process may write to; the message says why in one line."""


@dataclass(frozen=True)
class Quota:
    """What one sandbox's group allows: bytes of memory (its tmpfs pages included), tasks
    (processes and threads) and CPUs (a share of one period)."""

    memory_bytes: int
    tasks: int
    cpus: float


@dataclass
class Group:
    """One sandbox's cgroup: a directory per v1 hierarchy (the first holds the processes that
    ``destroy`` kills), or one v2 directory."""

    dirs: list[Path]
    version: int
    freezer: Path | None = None

    @property
    def name(self) -> str:
        return self.dirs[0].name

    @property
    def procs_files(self) -> list[Path]:
        return [path / "cgroup.procs" for path in self.dirs + ([self.freezer] if self.freezer else [])]

    def join(self, pids: tuple[int, ...]) -> None:
        """Move ``pids`` (whole processes) into the group; ``OSError`` if one cannot be moved."""
        for path in self.procs_files:
            for pid in pids:
                _must_write(path, str(pid))

    def pids(self) -> list[int]:
        with contextlib.suppress(OSError):
            return [int(p) for p in (self.dirs[0] / "cgroup.procs").read_text().split()]
        return []

    def destroy(self, timeout_s: float = 10.0) -> bool:
        """Kill every process in the group and remove it; False if something is still there
        after ``timeout_s`` (a process in uninterruptible sleep)."""
        self.kill()
        deadline = time.monotonic() + timeout_s
        while (left := self.pids()) and time.monotonic() < deadline:
            _kill_all(left)  # v1 without a freezer: a fork that raced the first kill
            time.sleep(_POLL_S)
        removed = True
        for path in self.dirs + ([self.freezer] if self.freezer else []):
            removed &= _rmdir(path, deadline)
        return removed and not left

    def kill(self) -> None:
        if self.version == 2 and (self.dirs[0] / "cgroup.kill").exists():
            _write(self.dirs[0] / "cgroup.kill", "1")
            return
        frozen = self._freeze("FROZEN")
        _kill_all(self.pids())
        if frozen:
            self._freeze("THAWED")  # a killed task dies once thawed

    def _freeze(self, state: str) -> bool:
        if self.version == 2:
            path, value, done = self.dirs[0] / "cgroup.freeze", "1" if state == "FROZEN" else "0", None
        elif self.freezer is not None:
            path, value, done = self.freezer / "freezer.state", state, state
        else:
            return False
        if not _write(path, value):
            return False
        deadline = time.monotonic() + 1.0
        while done and _read(path) != done and time.monotonic() < deadline:
            time.sleep(_POLL_S)
        return True


@dataclass(frozen=True)
class Tree:
    """Where this process's sandbox groups go: its own cgroup in each needed v1 hierarchy (and
    the freezer's), or the v2 root."""

    version: int
    parents: tuple[Path, ...]
    freezer_parent: Path | None = None

    @classmethod
    def find(cls) -> Tree:
        """The tree; ``CgroupUnavailable`` (one line) if it has no writable place for groups."""
        mounts = _cgroup_mounts()
        own = _own_paths()
        v1 = {name: path for path, kind, names in mounts if kind == "cgroup" for name in names}
        v2 = next((path for path, kind, _ in mounts if kind == "cgroup2"), None)
        if all(name in v1 for name in V1_NEEDED):
            parents = tuple(_under(v1[name], own.get(name, "/")) for name in V1_NEEDED)
            freezer = _under(v1["freezer"], own.get("freezer", "/")) if "freezer" in v1 else None
            tree = cls(1, parents, freezer)
        elif v2 is not None and set(V2_NEEDED) <= set(_read(v2 / "cgroup.controllers").split()):
            tree = cls(2, (v2,))
        else:
            raise CgroupUnavailable("no cgroup hierarchy here has the memory, pids and cpu controllers")
        for parent in tree.all_parents:
            if not os.access(parent, os.W_OK):
                raise CgroupUnavailable(f"cannot make cgroups under {parent} (no write access)")
        if tree.version == 2:
            try:
                _enable_controllers(tree.parents[0])
            except OSError as exc:
                raise CgroupUnavailable(f"cannot enable controllers under {tree.parents[0]} ({exc.strerror})") from None
        return tree

    @property
    def all_parents(self) -> tuple[Path, ...]:
        return (*self.parents, *([self.freezer_parent] if self.freezer_parent else []))

    def make(self, owner: Owner, quota: Quota) -> Group:
        """A new, empty group for one sandbox of ``owner``'s run, with ``quota``."""
        group = self._group(f"{PREFIX}{owner.dirname}.s{next(_counter)}")
        for path in [*group.dirs, *([group.freezer] if group.freezer else [])]:
            path.mkdir()
        try:
            self._limit(group, quota)
        except OSError:
            group.destroy()
            raise
        return group

    def remove_run(self, owner: Owner) -> None:
        """Destroy every group of ``owner``'s run."""
        names = {path.name for parent in self.all_parents for path in parent.glob(f"{PREFIX}{owner.dirname}.s*")}
        for name in sorted(names):
            self._group(name).destroy()

    def remove_orphans(self) -> int:
        """Remove the groups of runs that are no longer running; how many groups."""
        removed = 0
        names = {path.name for parent in self.all_parents for path in parent.glob(f"{PREFIX}*")}
        for name in sorted(names):
            owner = Owner.from_dirname(name.removeprefix(PREFIX).rsplit(".", 1)[0])
            if owner is not None and not owner.alive():
                self._group(name).destroy()
                removed += 1
        return removed

    def _group(self, name: str) -> Group:
        freezer = self.freezer_parent / name if self.freezer_parent else None
        return Group([parent / name for parent in self.parents], self.version, freezer)

    def _limit(self, group: Group, quota: Quota) -> None:
        memory, pids, cpu = group.dirs if self.version == 1 else group.dirs * 3
        period = CFS_PERIOD_US
        quota_us = max(1000, int(quota.cpus * period))
        if self.version == 2:
            _must_write(memory / "memory.max", str(quota.memory_bytes))
            if (memory / "memory.swap.max").exists():
                _must_write(memory / "memory.swap.max", "0")
            _must_write(pids / "pids.max", str(quota.tasks))
            _must_write(cpu / "cpu.max", f"{quota_us} {period}")
            return
        _must_write(memory / "memory.limit_in_bytes", str(quota.memory_bytes))
        if (memory / "memory.memsw.limit_in_bytes").exists():  # swap accounting on: no swap either
            _must_write(memory / "memory.memsw.limit_in_bytes", str(quota.memory_bytes))
        _must_write(pids / "pids.max", str(quota.tasks))
        _must_write(cpu / "cpu.cfs_period_us", str(period))
        _must_write(cpu / "cpu.cfs_quota_us", str(quota_us))


_counter = itertools.count()


def _cgroup_mounts() -> list[tuple[Path, str, set[str]]]:
    """(mount point, cgroup or cgroup2, controllers) of each cgroup mount, from mountinfo."""
    found = []
    for line in _MOUNTINFO.read_text().splitlines():
        left, _, right = line.partition(" - ")
        kind, _source, options = [*right.split(), "", "", ""][:3]
        if kind in ("cgroup", "cgroup2"):
            found.append((Path(left.split()[4]), kind, set(options.split(","))))
    return found


def _own_paths() -> dict[str, str]:
    """This process's cgroup path in each v1 hierarchy, by controller name."""
    paths = {}
    for line in _OWN.read_text().splitlines():
        _, names, path = line.split(":", 2)
        for name in names.split(","):
            if name:
                paths[name] = path
    return paths


def _under(mount: Path, path: str) -> Path:
    return mount / path.lstrip("/")


def _enable_controllers(path: Path) -> None:
    wanted = " ".join(f"+{name}" for name in V2_NEEDED)
    if set(V2_NEEDED) - set(_read(path / "cgroup.subtree_control").split()):
        (path / "cgroup.subtree_control").write_text(wanted)


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _rmdir(path: Path, deadline: float) -> bool:
    while True:
        try:
            path.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:  # EBUSY until the last task has left
            if time.monotonic() > deadline:
                return False
            time.sleep(_POLL_S)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _write(path: Path, value: str) -> bool:
    try:
        path.write_text(value)
        return True
    except OSError:
        return False


def _must_write(path: Path, value: str) -> None:
    path.write_text(value)

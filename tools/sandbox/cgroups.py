"""Whole-sandbox limits and teardown from the host: one cgroup per sandbox, v1 or v2.

Owns finding where this process may make cgroups (``Tree.find``), making one sandbox's group
with its memory, task and CPU limits (``Tree.make``), the ``cgroup.procs`` files a launcher
writes its own pid into before it starts the sandbox (``Group.procs_files``: everything the
sandbox ever starts is then inside), and ``Group.destroy``: every process in the group killed
(``cgroup.kill`` on v2; on v1 the group is frozen, so nothing in it can fork, killed, then
thawed) and the group removed. Nothing inside a sandbox can leave its group or undo the kill.

Groups live at ``<this process's cgroup>/agentrl-sandbox/<run>/<n>`` in each v1 hierarchy
(memory, pids, cpu; freezer when mounted), or ``<v2 root>/agentrl-sandbox/<run>/<n>``;
``<run>`` is ``Owner.dirname``, so ``remove_run`` (the run's reaper, at the run's end) and
``remove_orphans`` (a later run) find what a dead run left. Writing cgroups needs root or a
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

TOP = "agentrl-sandbox"
V1_NEEDED = ("memory", "pids", "cpu")
V2_NEEDED = ("memory", "pids", "cpu")
CFS_PERIOD_US = 100_000
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
    def procs_files(self) -> list[Path]:
        return [path / "cgroup.procs" for path in self.dirs + ([self.freezer] if self.freezer else [])]

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
            time.sleep(0.005)
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
            time.sleep(0.001)
        return True


@dataclass(frozen=True)
class Tree:
    """Where this process's sandbox groups go: the ``agentrl-sandbox`` directory of each
    needed v1 hierarchy (and the freezer's), or of the v2 root."""

    version: int
    tops: tuple[Path, ...]
    freezer_top: Path | None = None

    @classmethod
    def find(cls) -> Tree:
        """The tree, its top directories made; ``CgroupUnavailable`` (one line) if none is writable."""
        mounts = _cgroup_mounts()
        own = _own_paths()
        v1 = {name: path for path, kind, names in mounts if kind == "cgroup" for name in names}
        v2 = next((path for path, kind, _ in mounts if kind == "cgroup2"), None)
        if all(name in v1 for name in V1_NEEDED):
            tops = tuple(_under(v1[name], own.get(name, "/")) / TOP for name in V1_NEEDED)
            freezer = _under(v1["freezer"], own.get("freezer", "/")) / TOP if "freezer" in v1 else None
            tree = cls(1, tops, freezer)
        elif v2 is not None and set(V2_NEEDED) <= set(_read(v2 / "cgroup.controllers").split()):
            tree = cls(2, (v2 / TOP,))
        else:
            raise CgroupUnavailable("no cgroup hierarchy here has the memory, pids and cpu controllers")
        try:
            for top in (*tree.tops, *([tree.freezer_top] if tree.freezer_top else [])):
                top.mkdir(exist_ok=True)
                if tree.version == 2:
                    _enable_controllers(top.parent)
                    _enable_controllers(top)
        except OSError as exc:
            raise CgroupUnavailable(f"cannot make cgroups under {tree.tops[0].parent} ({exc.strerror})") from None
        return tree

    def make(self, owner: Owner, quota: Quota) -> Group:
        """A new, empty group for one sandbox of ``owner``'s run, with ``quota``."""
        n = next(_counter)
        dirs = [top / owner.dirname / f"s{n}" for top in self.tops]
        freezer = self.freezer_top / owner.dirname / f"s{n}" if self.freezer_top else None
        for path in dirs + ([freezer] if freezer else []):
            path.mkdir(parents=True, exist_ok=True)
            if self.version == 2:
                _enable_controllers(path.parent)
        group = Group(dirs, self.version, freezer)
        try:
            self._limit(group, quota)
        except OSError:
            group.destroy()
            raise
        return group

    def remove_run(self, owner: Owner) -> None:
        """Destroy every group of ``owner``'s run, and the run's directories."""
        tops = (*self.tops, *([self.freezer_top] if self.freezer_top else []))
        names = sorted({group.name for top in tops for group in (top / owner.dirname).glob("s*")})
        for name in names:
            freezer = self.freezer_top / owner.dirname / name if self.freezer_top else None
            Group([top / owner.dirname / name for top in self.tops], self.version, freezer).destroy()
        deadline = time.monotonic() + 5.0
        for top in tops:
            _rmdir(top / owner.dirname, deadline)

    def remove_orphans(self) -> int:
        """Remove the groups of runs that are no longer running; how many runs had some."""
        removed = 0
        for run in sorted(path for path in self.tops[0].glob("*") if path.is_dir()):
            owner = Owner.from_dirname(run.name)
            if owner is not None and not owner.alive():
                self.remove_run(owner)
                removed += 1
        return removed

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
            time.sleep(0.005)


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

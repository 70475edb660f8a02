"""The bwrap sandbox's work dir: a tmpfs the host mounts, with a size and an inode limit.

Owns making one (``make``: a directory under ``ROOT`` named like the sandbox's cgroup that only
the sandbox's user may enter, and in it a tmpfs of ``disk_mb`` and ``inodes`` owned by that
user, for bwrap to bind as the sandbox's ``/tmp``), removing it (``WorkDir.remove``: unmounted,
detached, so the memory is freed when the last process that had it open is gone) and removing
those a dead run left (``remove_run`` for the run's reaper, ``remove_orphans`` for a later run),
with every process that still names one on its command line: a bwrap caught between its start
and its cgroup when the run was killed is found only so. The mount is one system call from the
host (no helper process to start), so a sandbox starts in about half the CPU a launcher in a
mount namespace of its own took. Knows nothing of bwrap beyond the path it binds.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from agentrl_tools.sandbox.owner import Owner

ROOT = Path("/run/agentrl-sandbox")
_MS_NOSUID, _MS_NODEV, _MNT_DETACH, _UMOUNT_NOFOLLOW = 0x2, 0x4, 0x2, 0x8
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


@dataclass(frozen=True)
class WorkDir:
    """``home`` (``ROOT/<name>``, mode 0700, the sandbox's user's) holds the mount point ``path``."""

    home: Path

    @property
    def path(self) -> Path:
        return self.home / "work"

    def remove(self) -> None:
        """Unmount (detached) and remove the directories; nothing if they are already gone."""
        _unmount(self.path)
        for path in (self.path, self.home):
            with contextlib.suppress(OSError):
                path.rmdir()


def make(name: str, uid: int, disk_mb: int, inodes: int) -> WorkDir:
    """A tmpfs of ``disk_mb`` MB and ``inodes`` inodes at ``ROOT/name/work``, owned by ``uid``,
    in a directory only ``uid`` (and root) may enter, so that code in the sandbox that opens its
    work dir to everyone (``chmod 777 /tmp``) opens it to no one else on the host; ``OSError``
    if it cannot be mounted."""
    ROOT.mkdir(mode=0o711, exist_ok=True)
    work = WorkDir(ROOT / name)
    work.home.mkdir(mode=0o700)
    try:
        work.path.mkdir(mode=0o700)
        os.chown(work.home, uid, uid)
        options = f"size={disk_mb}m,nr_inodes={inodes},mode=0700,uid={uid},gid={uid}"
        if _libc.mount(b"agentrl-sandbox", bytes(work.path), b"tmpfs", _MS_NOSUID | _MS_NODEV, options.encode()):
            errno = ctypes.get_errno()
            raise OSError(errno, f"mount tmpfs on {work.path}: {os.strerror(errno)}")
    except OSError:
        work.remove()
        raise
    return work


def remove_run(owner: Owner, prefix: str) -> None:
    """Remove every work dir of ``owner``'s run (named ``<prefix><owner.dirname>.s<n>``), after
    killing every process that names one on its command line: a bwrap that the run started and
    that was never moved into its cgroup (the run was killed in between) is found only so."""
    kill_naming(bytes(ROOT / f"{prefix}{owner.dirname}.s"))
    for home in _listed(f"{prefix}{owner.dirname}.s*"):
        WorkDir(home).remove()


def remove_orphans(prefix: str) -> int:
    """Remove the work dirs of runs that are no longer running; how many."""
    removed = 0
    for home in _listed(f"{prefix}*"):
        owner = Owner.from_dirname(home.name.removeprefix(prefix).rsplit(".", 1)[0])
        if owner is not None and not owner.alive():
            kill_naming(bytes(home) + b"/")
            WorkDir(home).remove()
            removed += 1
    return removed


def kill_naming(text: bytes) -> int:
    """SIGKILL every process whose command line contains ``text``; how many."""
    killed = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if text in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return killed


def _listed(pattern: str) -> list[Path]:
    try:
        return sorted(ROOT.glob(pattern))
    except OSError:
        return []


def _unmount(path: Path) -> None:
    while _libc.umount2(bytes(path), _MNT_DETACH | _UMOUNT_NOFOLLOW) == 0:  # mounted twice: both go
        pass

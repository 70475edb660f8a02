"""Who a sandbox runs as, which run it belongs to, and whether that run is still alive.

Owns ``sandbox_uid`` (a user id of its own for each sandbox, drawn at random from
``SANDBOX_UIDS``: the kernel's per-user limits, such as inotify instances and pipe buffer
pages, are then one sandbox's, not shared by every sandbox on the host, and no sandbox can
signal another's processes even past its namespaces) and ``Owner`` (host, pid and start time of
a process: a pid alone is reused), written on everything a run makes outside itself (Docker
containers' labels, cgroup directories' names) so that the run's reaper, or a later run, can
tell what a dead run left behind. Knows nothing of backends.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

SANDBOX_UIDS = range(1_000_000_000, 1_000_000_000 + (1 << 24))


def sandbox_uid() -> int:
    """A user (and group) id for one sandbox. Two sandboxes alive at once share one with
    probability about n^2 / 2^25 for n sandboxes (0.2% for 256): they would then share the
    per-user limits, as every sandbox did with a fixed user."""
    return SANDBOX_UIDS[secrets.randbelow(len(SANDBOX_UIDS))]


def start_ticks(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot), or None when it is not running here."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, after the command's parentheses


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    start: str

    @classmethod
    def this_process(cls) -> Owner:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, start_ticks(pid) or "0")

    @classmethod
    def parse(cls, text: str) -> Owner | None:
        """From ``str(owner)`` (``host:pid:start``); None for anything else."""
        host, _, rest = text.partition(":")
        pid, _, start = rest.partition(":")
        return cls(host, int(pid), start) if pid.isdigit() and start else None

    @classmethod
    def from_dirname(cls, name: str) -> Owner | None:
        """From ``owner.dirname`` (``pid-start``, on this host); None for anything else."""
        pid, _, start = name.partition("-")
        return cls(socket.gethostname(), int(pid), start) if pid.isdigit() and start else None

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.start}"

    @property
    def dirname(self) -> str:
        return f"{self.pid}-{self.start}"

    @property
    def local(self) -> bool:
        return self.host == socket.gethostname()

    def alive(self) -> bool:
        """Still running (only a local owner can be checked; another host's counts as alive)."""
        return not self.local or start_ticks(self.pid) == self.start

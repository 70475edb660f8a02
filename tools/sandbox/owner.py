"""Which run a sandbox belongs to, and whether that run is still alive.

Owns ``Owner`` (host, pid and start time of a process: a pid alone is reused), written on
everything a run makes outside itself (Docker containers' labels, cgroup directories' names)
so that the run's reaper, or a later run, can tell what a dead run left behind. Knows nothing
of backends.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path


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

"""The bubblewrap backend: a sandbox of Linux namespaces, for machines without a Docker daemon.

Owns the ``bwrap`` command line. Each sandbox gets new user, PID, network, IPC, UTS and cgroup
namespaces (``--unshare-all``: only a loopback interface, no route out), the host's ``/usr``
read-only (the interpreter is the host's ``/usr/bin/python3``, standard library only), a fresh
``/proc`` and minimal ``/dev``, a tmpfs work dir of ``Limits.disk_mb`` as the only writable
place, no environment variables but ``PATH`` and ``HOME``, and ``--die-with-parent`` (a
killed run leaves nothing behind). Started as root, bwrap runs as user ``nobody`` so that
no file the host protects is readable and the rlimits bind; the interpreter sets its rlimits
(memory, processes, file size) itself before any user code (``repl.py``). With Linux 5.14+
the process limit counts the sandbox's own user namespace only, so a fork bomb in one
sandbox does not starve another. Must not know about tools or environments.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from agentrl_tools.sandbox.channel import Channel, ProcessChannel
from agentrl_tools.sandbox.session import Limits, SandboxUnavailable

WORKDIR = "/tmp"
NOBODY = 65534


class BwrapBackend:
    name = "bwrap"
    workdir = WORKDIR
    rlimit_processes = True  # counted per sandbox: each has its own user namespace

    def __init__(self, limits: Limits, python: str = "/usr/bin/python3", bwrap: str | None = None):
        self.limits, self.python = limits, python
        found = bwrap or shutil.which("bwrap")
        if found is None:
            raise SandboxUnavailable("bubblewrap is not installed (apt install bubblewrap)")
        if not Path(python).exists():
            raise SandboxUnavailable(f"{python} does not exist; the bwrap sandbox runs the host's system Python")
        self.bwrap = found
        self.user: dict[str, Any] = {"user": NOBODY, "group": NOBODY, "extra_groups": []} if os.geteuid() == 0 else {}

    def command(self, args: list[str]) -> list[str]:
        argv = [self.bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--ro-bind", "/usr", "/usr"]
        for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            target = Path("/", name)
            if target.is_symlink():  # merged /usr: /lib -> usr/lib
                argv += ["--symlink", os.readlink(target), f"/{name}"]
            elif target.is_dir():
                argv += ["--ro-bind", str(target), f"/{name}"]
        argv += ["--proc", "/proc", "--dev", "/dev"]
        argv += ["--size", str(self.limits.disk_mb << 20), "--tmpfs", WORKDIR, "--chdir", WORKDIR]
        argv += ["--remount-ro", "/"]  # bwrap's root is a writable tmpfs until this
        argv += ["--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", WORKDIR]
        argv += ["--setenv", "MALLOC_ARENA_MAX", "2"]  # few malloc arenas: threads fit the memory rlimit
        return [*argv, self.python, *args]

    def start(self, args: list[str]) -> Channel:
        try:
            return ProcessChannel(self.command(args), **self.user)
        except OSError as exc:
            raise SandboxUnavailable(f"bwrap could not start: {exc}") from None

    def check(self) -> None:
        """Start one sandbox that runs ``true``; a one-line ``SandboxUnavailable`` if it cannot."""
        argv = [*self.command([])[:-1], "/usr/bin/true"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, **self.user)
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["no reason given"])[-1]
            raise SandboxUnavailable(f"bwrap cannot create a sandbox here: {reason}")

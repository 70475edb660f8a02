"""The Docker backend: one container per session, started through the Docker SDK.

Owns the container's settings and the clean-up of containers a killed run left behind. Each
container runs the image built by ``image.py`` with no network (``network_mode=none``), a
read-only root, a tmpfs work dir of ``Limits.disk_mb``, memory (no swap), CPU and pids limits,
every capability dropped, ``no-new-privileges``, user ``nobody``, an init process as pid 1, and
``auto_remove``. The interpreter's stdin/stdout are Docker's attach socket. Every container
carries the labels ``agentrl.sandbox`` and ``agentrl.owner`` (host, pid and start time of the
process that made it); at start-up the backend removes labelled containers whose owner is no
longer running, such as those of a run killed mid-call. Must not know about tools or environments.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from pathlib import Path
from typing import Any

from agentrl_tools.sandbox.channel import Channel, SocketChannel
from agentrl_tools.sandbox.session import Limits, SandboxUnavailable

LABEL = "agentrl.sandbox"
OWNER = "agentrl.owner"
WORKDIR = "/work"


def owner_id(pid: int) -> str | None:
    """``host:pid:start-time`` of a running process, or None when it is not running here."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    start_ticks = stat.rsplit(")", 1)[1].split()[19]  # field 22, after the command's parentheses
    return f"{socket.gethostname()}:{pid}:{start_ticks}"


class DockerBackend:
    name = "docker"
    workdir = WORKDIR
    rlimit_processes = False  # pids_limit caps each container; the rlimit would count all of them

    def __init__(self, limits: Limits, image: str, client: Any = None):
        try:
            import docker
        except ImportError:
            raise SandboxUnavailable("the docker package is missing (pip install 'agentrl[sandbox]')") from None
        try:
            self.client = client or docker.from_env(
                timeout=10, max_pool_size=1024
            )  # a pool too small closes attach sockets
            self.client.ping()
        except Exception as exc:
            raise SandboxUnavailable(f"no Docker daemon answers ({type(exc).__name__}); start dockerd") from None
        try:
            self.client.images.get(image)
        except docker.errors.ImageNotFound:
            raise SandboxUnavailable(f"the sandbox image {image} is missing; build it: agentrl sandbox build") from None
        self.limits, self.image = limits, image
        self.owner = owner_id(os.getpid())
        self._starting = threading.BoundedSemaphore(8)  # the daemon drops attaches when too many start at once
        self.removed_orphans = self.remove_orphans()

    def start(self, args: list[str]) -> Channel:
        limits = self.limits
        try:
            with self._starting:
                container = self.client.containers.create(
                    self.image,
                    ["python3", *args],
                    stdin_open=True,
                    network_mode="none",
                    read_only=True,
                    tmpfs={
                        WORKDIR: f"size={limits.disk_mb}m,mode=1777,exec"
                    },  # no working_dir: it makes /work root-owned
                    environment={"HOME": WORKDIR, "PATH": "/usr/bin:/bin", "MALLOC_ARENA_MAX": "2"},
                    mem_limit=f"{limits.memory_mb}m",
                    memswap_limit=f"{limits.memory_mb}m",
                    nano_cpus=int(limits.cpus * 1e9),
                    pids_limit=limits.processes,
                    cap_drop=["ALL"],
                    security_opt=["no-new-privileges"],
                    user="65534:65534",
                    init=True,
                    auto_remove=True,
                    labels={LABEL: "1", OWNER: self.owner or ""},
                )
                sock = container.attach_socket(params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
                container.start()
        except Exception as exc:
            raise SandboxUnavailable(f"docker could not start a sandbox: {exc}") from None
        raw = getattr(sock, "_sock", sock)  # the SDK wraps the unix socket in a SocketIO
        return SocketChannel(raw, lambda: _remove(container), keep=sock)

    def remove_orphans(self) -> int:
        """Remove sandbox containers whose owning process is gone; how many were removed."""
        removed = 0
        # ignore_removed: a container that auto-removes between the listing and its inspection is no error
        for container in self.client.containers.list(all=True, filters={"label": LABEL}, ignore_removed=True):
            owner = container.labels.get(OWNER, "")
            host, _, rest = owner.partition(":")
            pid = rest.split(":")[0]
            mine = host == socket.gethostname()
            if mine and pid.isdigit() and owner_id(int(pid)) == owner:
                continue  # its run is alive
            if not mine and owner:
                continue  # another machine's run sharing this daemon
            _remove(container)
            removed += 1
        return removed


def _remove(container: Any) -> None:
    with contextlib.suppress(Exception):  # already gone (auto_remove), or being removed
        container.remove(force=True)

"""The Docker backend: one container per session, started through the Docker SDK.

Owns the container's settings and the clean-up of containers a killed run left behind. Each
container runs the image built by ``image.py`` with no network (``network_mode=none``), a
read-only root, a tmpfs work dir of ``Limits.disk_mb`` and ``Limits.inodes`` (the only
writable place: no ``/dev/shm`` (``ipc_mode=none``) and a read-only ``/dev/mqueue``), memory
(no swap), CPU and task limits for the container as a whole, every capability dropped,
``no-new-privileges``, the seccomp profile of ``seccomp.py`` in place of Docker's default, a
user of its own (``owner.sandbox_uid``), an init process as pid 1, no log driver (what the
container writes reaches the host only through the attach socket, within the channel's
budget: no log file grows on the host's disk), and ``auto_remove``. Every container carries
the labels ``agentrl.sandbox`` and ``agentrl.owner`` (host, pid and start time of the process
that made it); the run's reaper (``reaper.py``) removes a killed run's containers, and at
start-up the backend removes any whose owner is no longer running. Must not know about tools
or environments.
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import threading
from typing import Any

from agentrl_tools.sandbox import reaper, seccomp
from agentrl_tools.sandbox.channel import Channel, SocketChannel
from agentrl_tools.sandbox.owner import Owner, sandbox_uid
from agentrl_tools.sandbox.session import Limits, SandboxUnavailable

LABEL = "agentrl.sandbox"
OWNER = "agentrl.owner"
WORKDIR = "/work"
OWN_TASKS = 1  # the init process shares the container's task limit


class DockerBackend:
    name = "docker"
    workdir = WORKDIR

    def __init__(self, limits: Limits, image: str, client: Any = None):
        try:
            import docker
        except ImportError:
            raise SandboxUnavailable("the docker package is missing (pip install 'agentrl[sandbox]')") from None
        self.client = client
        if client is None and not _daemon_listens():
            raise SandboxUnavailable("no Docker daemon answers (nothing listens on its socket); start dockerd")
        try:
            self.client = client or docker.from_env(
                timeout=10, max_pool_size=1024
            )  # a pool too small closes attach sockets
            self.client.ping()
        except Exception as exc:
            self._close_own_client(client)
            raise SandboxUnavailable(f"no Docker daemon answers ({type(exc).__name__}); start dockerd") from None
        try:
            self.client.images.get(image)
        except docker.errors.ImageNotFound:
            self._close_own_client(client)  # auto falls back to bwrap: nothing of Docker's left open
            raise SandboxUnavailable(f"the sandbox image {image} is missing; build it: agentrl sandbox build") from None
        if not seccomp.supported():
            self._close_own_client(client)
            raise SandboxUnavailable(f"the docker sandbox has no seccomp profile for {platform.machine()}")
        self.limits, self.image = limits, image
        self.owner = Owner.this_process()
        self.profile = seccomp.docker_profile()
        self._starting = threading.BoundedSemaphore(8)  # the daemon drops attaches when too many start at once
        self.removed_orphans = self.remove_orphans()
        reaper.ensure()

    def _close_own_client(self, given: Any) -> None:
        """Close the Docker client this backend opened (its socket), not one it was given."""
        if given is None and self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()

    def start(self, args: list[str]) -> Channel:
        limits, uid = self.limits, sandbox_uid()
        try:
            with self._starting:
                container = self.client.containers.create(
                    self.image,
                    ["python3", *args],
                    stdin_open=True,
                    network_mode="none",
                    ipc_mode="none",  # no /dev/shm
                    read_only=True,
                    tmpfs={
                        WORKDIR: f"size={limits.disk_mb}m,nr_inodes={limits.inodes},mode=1777,exec",
                        "/dev/mqueue": "ro,size=4k,nr_inodes=1",
                    },  # no working_dir: it makes /work root-owned
                    environment={"HOME": WORKDIR, "PATH": "/usr/bin:/bin", "MALLOC_ARENA_MAX": "2"},
                    mem_limit=f"{limits.memory_mb}m",
                    memswap_limit=f"{limits.memory_mb}m",
                    nano_cpus=int(limits.cpus * 1e9),
                    pids_limit=limits.processes + OWN_TASKS,
                    cap_drop=["ALL"],
                    security_opt=["no-new-privileges", f"seccomp={self.profile}"],
                    log_config={"type": "none"},
                    user=f"{uid}:{uid}",
                    init=True,
                    auto_remove=True,
                    labels={LABEL: "1", OWNER: str(self.owner)},
                )
                sock = container.attach_socket(params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
                container.start()
        except Exception as exc:
            raise SandboxUnavailable(f"docker could not start a sandbox: {exc}") from None
        raw = getattr(sock, "_sock", sock)  # the SDK wraps the unix socket in a SocketIO
        limits = self.limits
        return SocketChannel(raw, lambda: _remove(container), sock, limits.max_frame_bytes, limits.max_call_bytes)

    def remove_orphans(self) -> int:
        """Remove sandbox containers whose owning process is gone; how many were removed."""
        removed = 0
        # ignore_removed: a container that auto-removes between the listing and its inspection is no error
        for container in self.client.containers.list(all=True, filters={"label": LABEL}, ignore_removed=True):
            owner = Owner.parse(container.labels.get(OWNER, ""))
            if owner is not None and owner.alive():
                continue  # its run is alive, or it is another machine's run sharing this daemon
            _remove(container)
            removed += 1
        return removed


def _daemon_listens(path: str = "/var/run/docker.sock") -> bool:
    """Whether the local daemon's socket takes a connection (True when ``DOCKER_HOST`` names
    another: the client finds out). Asked before the SDK's client, which, when its first request
    fails inside its constructor, leaves that socket open."""
    if os.environ.get("DOCKER_HOST"):
        return True
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(2)
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def _remove(container: Any) -> None:
    with contextlib.suppress(Exception):  # already gone (auto_remove), or being removed
        container.remove(force=True)

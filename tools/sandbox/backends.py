"""Choosing a sandbox backend by name: ``docker``, ``bwrap`` or ``auto``.

Owns ``BACKENDS``, ``make_backend`` (a backend, or a one-line ``SandboxUnavailable`` saying
what to install or start), ``open_pool`` (a backend's warm pool, which sessions draw from)
and ``shared_pool`` (one pool per process and settings; ``close_shared_pools`` ends them).
``auto`` takes Docker when a daemon answers and the image is built, else bubblewrap, and says
which and why in the log; when neither can start, its one line gives both reasons. There is
no unsandboxed backend: model-written code never runs on the host directly. Must not know
about tools or environments.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable

from agentrl_tools.sandbox import bwrap, docker_backend
from agentrl_tools.sandbox.image import IMAGE
from agentrl_tools.sandbox.session import Backend, Limits, Pool, SandboxUnavailable, check_warm

BACKENDS = ("auto", "docker", "bwrap")
log = logging.getLogger("agentrl.sandbox")


def make_backend(name: str, limits: Limits, image: str = IMAGE) -> Backend:
    """The backend called ``name``; ``SandboxUnavailable`` (one line) when it cannot run here."""
    makers: dict[str, Callable[[], Backend]] = {
        "docker": lambda: docker_backend.DockerBackend(limits, image),
        "bwrap": lambda: _checked_bwrap(limits),
    }
    if name == "auto":
        try:
            backend = makers["docker"]()
        except SandboxUnavailable as docker_exc:
            try:
                backend = makers["bwrap"]()
            except SandboxUnavailable as bwrap_exc:
                why = f"docker: {docker_exc}; bwrap: {bwrap_exc}"
                raise SandboxUnavailable(f"no sandbox can start here: {why}") from None
            log.info("sandbox: bwrap (docker: %s)", docker_exc)
            return backend
        log.info("sandbox: docker (image %s)", image)
        return backend
    if name not in makers:
        raise ValueError(f"unknown sandbox backend {name!r}; expected one of {', '.join(BACKENDS)}")
    return makers[name]()


def open_pool(name: str, limits: Limits, warm: int = 0, image: str = IMAGE) -> Pool:
    """A warm pool of ``warm`` started sandboxes of backend ``name`` (0: start on demand)."""
    check_warm(warm)  # before the backend: a bad value starts nothing
    return Pool(make_backend(name, limits, image), limits, size=warm)


_SHARED: dict[tuple[str, Limits, int], Pool] = {}
_SHARED_LOCK = threading.Lock()


def shared_pool(name: str, limits: Limits, warm: int = 0) -> Pool:
    """The process's one pool per (backend, limits, warm), closed by ``close_shared_pools`` or
    when the process exits. Environments make a session per episode, so the pool outlives them."""
    with _SHARED_LOCK:
        key = (name, limits, warm)
        if key not in _SHARED:
            _SHARED[key] = open_pool(name, limits, warm)
        return _SHARED[key]


def close_shared_pools() -> None:
    """Close every shared pool, and the sandboxes waiting in them (after a run in a long-lived
    process; a session that still holds a sandbox keeps it until it closes)."""
    with _SHARED_LOCK:
        pools = list(_SHARED.values())
        _SHARED.clear()
    for pool in pools:
        pool.close()


atexit.register(close_shared_pools)


def _checked_bwrap(limits: Limits) -> Backend:
    backend = bwrap.BwrapBackend(limits)
    backend.check()
    return backend

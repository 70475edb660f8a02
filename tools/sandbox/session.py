"""A persistent Python session in a sandbox: state across calls, a hard timeout, restarts.

Owns ``Limits`` (what one sandbox may use), ``CallResult`` (stdout, stderr, status, seconds,
and whether the session's state was lost), the ``Backend`` contract (start the interpreter of
``repl.py`` in a fresh sandbox, return its ``Channel``), the warm ``Pool`` of started sandboxes
and ``PythonSession``. A session takes a fresh sandbox for its first call, never one another
episode used. A call past ``timeout_s`` kills the whole sandbox (every process in it); so does
an interpreter that dies (``os._exit``, a killed interpreter): the next call starts afresh and
the result says the state was lost. Knows nothing of tools' text, environments or tokens; which
sandbox is used is the backend's business.
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from agentrl.errors import AgentRLError
from agentrl_tools.base import ToolStatus
from agentrl_tools.sandbox.channel import Channel, ChannelClosed

REPL_SOURCE = (Path(__file__).with_name("repl.py")).read_text(encoding="utf-8")


@dataclass(frozen=True)
class Limits:
    """What one sandbox may use. Each backend enforces all of them (see README, Sandbox)."""

    timeout_s: float = 5.0
    """wall-clock seconds per call; past it the sandbox is killed and the session restarts"""
    memory_mb: int = 512
    """address space (rlimit) and, for docker, the container's memory"""
    processes: int = 32
    """processes and threads in the sandbox"""
    disk_mb: int = 16
    """size of the writable work dir (a tmpfs); files bigger than this cannot be written"""
    cpus: float = 1.0
    """CPU share (docker)"""
    max_output_bytes: int = 4096
    """stdout and stderr each keep this many bytes (head and tail) per call"""
    start_timeout_s: float = 30.0
    """seconds to wait for a new sandbox's interpreter to say it is ready"""

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not value > 0:
                raise ValueError(f"sandbox limit {name} must be > 0, got {value!r}")

    def interpreter_args(self, workdir: str, rlimit_processes: bool = True) -> list[str]:
        """``python3`` arguments that start the session's interpreter with its rlimits.
        ``rlimit_processes=False`` leaves the process count to the backend: the rlimit counts
        a user's processes across sandboxes unless each sandbox has its own user namespace."""
        rlimits = {
            "memory_bytes": self.memory_mb << 20,
            "processes": self.processes if rlimit_processes else 0,
            "file_bytes": self.disk_mb << 20,
            "open_files": 256,
            "workdir": workdir,
        }
        return ["-u", "-c", REPL_SOURCE, json.dumps(rlimits)]


@dataclass(frozen=True)
class CallResult:
    """One call's outcome. ``lost_state``: the sandbox was killed or died, so the next call
    starts a fresh interpreter without this session's variables, imports or files."""

    status: ToolStatus
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    lost_state: bool = False
    message: str = ""


class Backend(Protocol):
    """Starts sandboxes. ``name`` is what the run log shows; ``workdir`` the sandbox's writable
    dir; ``rlimit_processes`` whether the interpreter must cap its processes itself (False
    when the backend caps each sandbox's processes, as Docker's pids limit does); ``start``
    returns the channel of a fresh sandbox running ``python3 <args>`` and raises
    ``SandboxUnavailable`` when it cannot."""

    name: str
    workdir: str
    rlimit_processes: bool

    def start(self, args: list[str]) -> Channel: ...


class SandboxUnavailable(AgentRLError):
    """No sandbox could be started (no daemon, no image, no bubblewrap); one line, what to do."""


class Pool:
    """Keeps ``size`` started sandboxes ready so a session's first call does not wait for one.

    A background thread refills the pool; ``take`` hands out a ready sandbox, or starts one
    when the pool is empty (or holds only sandboxes that died while they waited). Sandboxes
    are never returned: each serves one session only.
    """

    def __init__(self, backend: Backend, limits: Limits, size: int = 0):
        self.backend, self.limits, self.size = backend, limits, size
        self.args = limits.interpreter_args(backend.workdir, backend.rlimit_processes)
        # Sandboxes are started from these long-lived threads only: a parent-death signal
        # (bwrap's --die-with-parent) fires when the *thread* that started the sandbox ends,
        # so one started from a short-lived thread (asyncio.to_thread's) would die with it.
        self._starter = concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="sandbox-start")
        self._ready: list[Channel] = []
        self._lock = threading.Condition()
        self._closed = False
        if size > 0:
            threading.Thread(target=self._refill, daemon=True, name="sandbox-pool").start()

    @property
    def ready(self) -> int:
        """How many started sandboxes wait in the pool now."""
        with self._lock:
            return len(self._ready)

    def take(self) -> Channel:
        """A started sandbox for one session: a waiting one that is still alive (one that died
        while it waited is discarded), else a fresh one."""
        dead: list[Channel] = []
        channel = None
        with self._lock:
            while self._ready and channel is None:
                channel = self._ready.pop()
                if channel.closed.is_set():
                    dead.append(channel)
                    channel = None
            self._lock.notify_all()
        for gone in dead:
            gone.kill()
        return channel if channel is not None else self.start()

    def start(self) -> Channel:
        """A fresh sandbox whose interpreter has said it is ready."""
        try:
            return self._starter.submit(self._start).result()
        except RuntimeError:  # the pool was closed
            raise SandboxUnavailable(f"the {self.backend.name} sandbox pool is closed") from None

    def _start(self) -> Channel:
        channel = self.backend.start(self.args)
        try:
            ready = json.loads(channel.readline(self.limits.start_timeout_s))
        except (TimeoutError, ChannelClosed, ValueError) as exc:
            channel.kill()
            raise SandboxUnavailable(f"the {self.backend.name} sandbox did not start: {exc}") from None
        if not ready.get("ready"):
            channel.kill()
            raise SandboxUnavailable(f"the {self.backend.name} sandbox did not start: {ready.get('error', ready)}")
        return channel

    def close(self) -> None:
        with self._lock:
            self._closed = True
            ready, self._ready = self._ready, []
            self._lock.notify_all()
        for channel in ready:
            channel.kill()
        self._starter.shutdown(wait=False)

    def _refill(self) -> None:
        while True:
            with self._lock:
                while not self._closed and len(self._ready) >= self.size:
                    self._lock.wait()
                if self._closed:
                    return
            try:
                channel = self.start()
            except SandboxUnavailable:
                time.sleep(1.0)  # the session that needs one will report why
                continue
            with self._lock:
                if self._closed:
                    channel.kill()
                    return
                self._ready.append(channel)


class PythonSession:
    """One episode's interpreter: ``run(code)`` keeps variables across calls."""

    def __init__(self, pool: Pool):
        self.pool, self.limits = pool, pool.limits
        self._channel: Channel | None = None
        self._lock = threading.Lock()

    def run(self, code: str) -> CallResult:
        with self._lock:
            start = time.perf_counter()
            try:
                if self._channel is None:
                    self._channel = self.pool.take()
            except SandboxUnavailable as exc:
                return CallResult("unavailable", message=str(exc), seconds=time.perf_counter() - start)
            return self._call(self._channel, code, start)

    def close(self) -> None:
        with self._lock:
            if self._channel is not None:
                self._channel.kill()
                self._channel = None

    def _call(self, channel: Channel, code: str, start: float) -> CallResult:
        request = json.dumps({"code": code, "max_output_bytes": self.limits.max_output_bytes})
        try:
            channel.send(request.encode("utf-8"))
            reply = json.loads(channel.readline(self.limits.timeout_s))
        except TimeoutError:
            return self._lost("timeout", f"the call ran past its {self.limits.timeout_s:g} s timeout", start)
        except (ChannelClosed, ValueError) as exc:
            detail = f" ({exc})" if str(exc) else ""
            return self._lost("error", f"the Python process exited{detail}", start)
        seconds = time.perf_counter() - start
        return CallResult(reply["status"], reply["stdout"], reply["stderr"], seconds)

    def _lost(self, status: ToolStatus, why: str, start: float) -> CallResult:
        assert self._channel is not None
        self._channel.kill()
        self._channel = None
        message = f"{why}; the session was restarted and its variables, imports and files are lost"
        return CallResult(status, message=message, seconds=time.perf_counter() - start, lost_state=True)

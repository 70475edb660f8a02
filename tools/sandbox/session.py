"""A persistent Python session in a sandbox: state across calls, a hard timeout, restarts.

Owns ``Limits`` (what one sandbox may use), ``CallResult`` (stdout, stderr, status, seconds,
and whether the session's state was lost), the ``Backend`` contract (start the interpreter of
``repl.py`` in a fresh sandbox, return its ``Channel``), the warm ``Pool`` of started sandboxes
and ``PythonSession``. A session takes a fresh sandbox for its first call, never one another
episode used. A call past ``timeout_s`` kills the whole sandbox (every process in it); so does
an interpreter that dies (``os._exit``, a killed interpreter) and a sandbox that writes past
its budget to the host: the next call starts afresh and the result says the state was lost.
Each call carries a random id; only a reply with that id answers it (a forged or late reply is
dropped), and its stdout and stderr are capped again here, whatever the interpreter claims.
Knows nothing of tools' text, environments or tokens; which sandbox is used is the backend's
business.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Protocol

from agentrl.config import check_range
from agentrl.errors import AgentRLError, ConfigError
from agentrl_tools.base import ToolStatus
from agentrl_tools.sandbox.channel import Channel, ChannelClosed

REPL_SOURCE = (Path(__file__).with_name("repl.py")).read_text(encoding="utf-8")


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one sandbox may use, as a whole (see docs/sandbox.md for how each backend enforces
    each limit). A value out of range is a one-line ``ConfigError``."""

    timeout_s: float = 5.0
    """wall-clock seconds per call; past it the sandbox is killed and the session restarts"""
    memory_mb: int = 512
    """memory of the whole sandbox, its work dir's files included; also each process's address space"""
    processes: int = 32
    """processes and threads in the whole sandbox (its interpreter uses 3)"""
    cpus: float = 1.0
    """CPUs the whole sandbox may use at once (a share of each scheduling period)"""
    disk_mb: int = 16
    """size of the work dir (a tmpfs, the only writable place); also the largest file"""
    inodes: int = 4096
    """files, directories and links the work dir may hold"""
    max_output_bytes: int = 2048
    """stdout and stderr each keep this many bytes (head and tail) per call"""
    start_timeout_s: float = 30.0
    """seconds to wait for a new sandbox's interpreter to say it is ready"""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value, whole = getattr(self, field.name), field.type == "int"
            check_number("sandbox", field.name, value, whole)
            low, high = _RANGES[field.name]
            check_range("sandbox", field.name, value, low, _host_cpus() if high is None else high)

    @property
    def max_frame_bytes(self) -> int:
        """The longest reply line the host accepts: two capped streams, JSON-escaped (at most 6
        bytes a character), and the rest of the reply."""
        return 12 * self.max_output_bytes + 4096

    @property
    def max_call_bytes(self) -> int:
        """The most the host reads from a sandbox for one call, what it writes between calls
        included; past it the sandbox is killed."""
        return 4 * self.max_frame_bytes

    def interpreter_args(self, workdir: str) -> list[str]:
        """``python3`` arguments that start the session's interpreter with its per-process rlimits."""
        rlimits = {
            "memory_bytes": self.memory_mb << 20,
            "file_bytes": self.disk_mb << 20,
            "open_files": 256,
            "workdir": workdir,
        }
        return ["-u", "-c", REPL_SOURCE, json.dumps(rlimits)]


def _host_cpus() -> float:
    return float(os.cpu_count() or 1)


def check_number(owner: str, name: str, value: object, whole: bool) -> None:
    """``value`` is an int (``whole``) or a number, never a bool or a string: a one-line
    ``ConfigError`` otherwise."""
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ConfigError(f"{owner}: {name}={value!r} must be {'a whole number' if whole else 'a number'}")


def check_warm(warm: object) -> None:
    """A pool's number of started sandboxes: a whole number from 0 to 256."""
    check_number("sandbox", "warm", warm, whole=True)
    check_range("sandbox", "warm", warm, 0, 256)  # type: ignore[arg-type]


_RANGES: dict[str, tuple[float, float | None]] = {  # None: the host's CPU count
    "timeout_s": (0.01, 3600.0),
    "memory_mb": (64, 1 << 20),
    "processes": (8, 4096),
    "cpus": (0.01, None),
    "disk_mb": (1, 1 << 20),
    "inodes": (16, 1 << 24),
    "max_output_bytes": (64, 1 << 20),
    "start_timeout_s": (1.0, 600.0),
}


@dataclasses.dataclass(frozen=True)
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
    dir; ``start`` returns the channel of a fresh sandbox running ``python3 <args>``, with the
    whole-sandbox limits of ``Limits`` in force and the channel's budget from them, and raises
    ``SandboxUnavailable`` when it cannot."""

    name: str
    workdir: str

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
        check_warm(size)
        self.backend, self.limits, self.size = backend, limits, size
        self.args = limits.interpreter_args(backend.workdir)
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
        self._ids = CallIds()
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
        """End the session's sandbox at once, even while a call waits on it (that call then
        returns as a lost session)."""
        channel = self._channel
        if channel is not None:
            channel.kill()
        with self._lock:
            self._channel = None

    def _call(self, channel: Channel, code: str, start: float) -> CallResult:
        limits = self.limits
        request_id = self._ids.next()  # a reply without it is not this call's answer
        request = json.dumps({"id": request_id, "code": code, "max_output_bytes": limits.max_output_bytes})
        deadline = time.monotonic() + limits.timeout_s
        try:
            channel.send(request.encode("utf-8"), limits.timeout_s)
            while (reply := _reply(channel.readline(max(0.0, deadline - time.monotonic())), request_id)) is None:
                pass  # forged, late or garbage: dropped
        except TimeoutError:
            return self._lost("timeout", f"the call ran past its {limits.timeout_s:g} s timeout", start)
        except ChannelClosed as exc:
            why = channel.overflow or f"the Python process exited{f' ({exc})' if str(exc) else ''}"
            return self._lost("error", why, start)
        status, stdout, stderr = reply.get("status"), reply.get("stdout"), reply.get("stderr")
        if status not in ("ok", "error") or not isinstance(stdout, str) or not isinstance(stderr, str):
            return self._lost("error", "the interpreter's reply was malformed", start)
        cap = limits.max_output_bytes
        return CallResult(status, cap_text(stdout, cap), cap_text(stderr, cap), time.perf_counter() - start)

    def _lost(self, status: ToolStatus, why: str, start: float) -> CallResult:
        if self._channel is not None:
            self._channel.kill()
            self._channel = None
        message = f"{why}; the session was restarted and its variables, imports and files are lost"
        return CallResult(status, message=message, seconds=time.perf_counter() - start, lost_state=True)


class CallIds:
    """Unguessable call ids: 128 random bits from the OS each, read 4 KB at a time. A forged
    reply can only answer the call whose id the code inside saw; the next id is unknown to it.
    Reading ahead keeps the host off a system call per call, which, with many sessions in
    threads, cost 18 us a call in contention for the interpreter lock."""

    _BATCH = 256

    def __init__(self) -> None:
        self._random, self._at = b"", 0

    def next(self) -> str:
        if self._at >= len(self._random):
            self._random, self._at = secrets.token_bytes(16 * self._BATCH), 0
        self._at += 16
        return self._random[self._at - 16 : self._at].hex()


def _reply(line: bytes, request_id: str) -> dict | None:
    """The reply in ``line`` if it is a JSON object carrying ``request_id``, else None."""
    try:
        reply = json.loads(line)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
        return None
    return reply if isinstance(reply, dict) and reply.get("id") == request_id else None


def cap_text(text: str, cap: int) -> str:
    """``text`` kept to its first and last ``cap / 2`` bytes with a ``...[N bytes cut]...``
    marker between, as the interpreter caps it; the host applies it again to every reply.
    Characters that have no UTF-8 form (lone surrogates a forged reply can carry) count as
    the ``?`` they become, so the result is at most ``cap`` bytes and the marker."""
    if len(text) <= cap and text.isascii():  # the common case, without encoding
        return text
    raw = text.encode("utf-8", "replace")
    if len(raw) <= cap + _MARKER_ROOM:
        return raw.decode("utf-8")  # the text itself, but for lone surrogates turned into "?"
    head, tail = raw[: cap // 2], raw[len(raw) - (cap - cap // 2) :]
    cut = len(raw) - len(head) - len(tail)
    return (head + b"\n...[%d bytes cut]...\n" % cut + tail).decode("utf-8", "replace")


_MARKER_ROOM = 64  # the interpreter's own marker: what it kept is cap bytes plus the marker

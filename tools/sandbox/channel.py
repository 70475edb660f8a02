"""A started sandbox as the host sees it: a line channel to its interpreter, read within a
byte budget the host sets, and a kill switch.

Owns ``Channel`` (send a line, wait for a line with a deadline, kill) and its two transports:
the pipes of a local process (``ProcessChannel``, used by bwrap) and Docker's attach socket
(``SocketChannel``, whose stream interleaves stdout and stderr in frames of
``[kind, 0, 0, 0, size (4 bytes, big-endian)]``, read a bounded chunk at a time whatever size
a frame claims). A reader thread per channel turns the interpreter's stdout into lines and
keeps the last few KB of its stderr for diagnostics.

The host trusts nothing the sandbox writes. Every byte read counts against ``budget``, which
each ``send`` renews: what arrives between two calls counts against the next, so it is
bounded too. A line longer than ``max_line`` bytes, or more than ``budget`` bytes since the
last ``send``, ends the sandbox at once; ``readline`` then raises ``ChannelClosed`` saying so.
Lines left unread when a request is sent are dropped. Nor does the host wait on the sandbox to
read: a request is written without blocking, within the call's deadline (code inside can keep
the request pipe and stop reading it). Must not know about the protocol's JSON, tools or
backends' options.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable

_STDERR_KEEP = 4096
_CHUNK = 65536
_EOF = None


class ChannelClosed(Exception):
    """The interpreter's output ended: it exited, was killed, or wrote past its budget."""


class Channel:
    """Lines from a sandboxed interpreter, read by a thread within ``budget`` bytes per
    request; ``kill`` ends the sandbox."""

    def __init__(self, kill: Callable[[], None], max_line: int = 1 << 20, budget: int = 4 << 20):
        self._lines: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()  # C: a fast hand-off
        self._partial = bytearray()
        self._kill = kill
        self.max_line, self.budget = max_line, budget
        # bytes read from stdout and from stderr since the start, each written by its own reader
        # thread only, and their sum when the last request went out: no lock on the hot path
        self._read = {"stdout": 0, "stderr": 0}
        self._base = 0
        self.overflow = ""  # why the host ended the sandbox, when it was the sandbox's output
        self.stderr_tail = bytearray()
        self.closed = threading.Event()

    def send(self, line: bytes, timeout: float | None = None) -> None:
        """Write one request line within ``timeout`` seconds (``TimeoutError`` past it); what the
        sandbox wrote before it is dropped unread."""
        self._base = self._read["stdout"] + self._read["stderr"]
        if not self._lines.empty():
            self._drop_unread()
        data, deadline = memoryview(line + b"\n"), None
        while data:
            try:
                data = data[self._write_some(data) :]  # a request fits the pipe at once, as a rule
            except BlockingIOError:
                if deadline is None and timeout is not None:
                    deadline = time.monotonic() + timeout
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"the sandbox read no request for {timeout:g} s") from None
                self._wait_writable(remaining)
            except (BrokenPipeError, ValueError, OSError) as exc:
                raise ChannelClosed(self.overflow or str(exc)) from None

    def readline(self, timeout: float | None) -> bytes:
        """The next line; ``TimeoutError`` past ``timeout`` seconds, ``ChannelClosed`` at EOF."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no answer within {timeout:g} s") from None
        if line is _EOF:
            self._lines.put(_EOF)  # every later read sees the end too
            why = self.overflow or self.stderr_tail.decode("utf-8", "replace").strip()[-500:]
            raise ChannelClosed(why)
        return line

    def kill(self) -> None:
        """End the sandbox (idempotent, never raises)."""
        with contextlib.suppress(Exception):
            self._kill()

    def _write_some(self, data: memoryview) -> int:
        """Write what fits now, without blocking (``BlockingIOError`` when nothing does)."""
        raise NotImplementedError

    def _wait_writable(self, timeout: float | None) -> None:
        raise NotImplementedError

    def _drop_unread(self) -> None:
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                return
            if line is _EOF:
                self._lines.put(_EOF)
                return

    def _count(self, stream: str, data: bytes) -> bool:
        """Charge ``data`` to the budget; False (and the sandbox ended) past it."""
        if self.overflow:
            return False
        self._read[stream] += len(data)  # one writer per stream
        if self._read["stdout"] + self._read["stderr"] - self._base <= self.budget:
            return True
        self._fail(f"the sandbox wrote more than {self.budget} bytes to the host for one call")
        return False

    def _stdout(self, data: bytes) -> None:
        if not self._count("stdout", data):
            return
        self._partial += data
        while (end := self._partial.find(b"\n")) >= 0 and end <= self.max_line:
            self._lines.put(bytes(self._partial[:end]))
            del self._partial[: end + 1]
        if (end if end >= 0 else len(self._partial)) > self.max_line:
            self._fail(f"the sandbox wrote a line of more than {self.max_line} bytes to the host")

    def _stderr(self, data: bytes) -> None:
        if not self._count("stderr", data):
            return
        self.stderr_tail += data
        del self.stderr_tail[: max(0, len(self.stderr_tail) - _STDERR_KEEP)]

    def _fail(self, why: str) -> None:
        if not self.overflow:
            self.overflow = why
            self._stop()

    def _stop(self) -> None:
        self._partial.clear()
        self._lines.put(_EOF)  # a reader waiting for an answer hears at once
        threading.Thread(target=self.kill, daemon=True).start()  # not on the reader thread: it may join it

    def _ended(self) -> None:
        self._lines.put(_EOF)
        self.closed.set()


class ProcessChannel(Channel):
    """A local process (its own process group) spoken to over its stdin and stdout.
    ``teardown`` ends whatever the process started (its cgroup); it runs before the process
    group is killed and reaped."""

    def __init__(
        self, argv: list[str], teardown: Callable[[], None] | None = None, max_line=1 << 20, budget=4 << 20, **popen
    ):
        self.teardown = teardown
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, **popen
        )
        super().__init__(self._kill_all, max_line, budget)
        assert self.process.stdin is not None
        self._stdin = self.process.stdin.fileno()
        os.set_blocking(self._stdin, False)
        threading.Thread(target=self._pump, args=(self.process.stdout, self._stdout, True), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.process.stderr, self._stderr, False), daemon=True).start()

    def _write_some(self, data: memoryview) -> int:
        return os.write(self._stdin, data)

    def _wait_writable(self, timeout: float | None) -> None:
        select.select([], [self._stdin], [], timeout)

    def _pump(self, stream, sink: Callable[[bytes], None], main: bool) -> None:
        try:
            fd = stream.fileno()
            while chunk := os.read(fd, _CHUNK):
                sink(chunk)
        except (OSError, ValueError):  # closed by kill() while reading: the end, as EOF is
            pass
        if main:
            self._ended()

    def _kill_all(self) -> None:
        if self.teardown is not None:
            self.teardown()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, 9)
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class SocketChannel(Channel):
    """Docker's attach socket (no TTY): stdin written raw, stdout/stderr read as frames."""

    def __init__(
        self, sock: socket.socket, kill: Callable[[], None], keep: object = None, max_line=1 << 20, budget=4 << 20
    ):
        super().__init__(kill, max_line, budget)
        self.sock = sock
        self._keep = keep  # the SDK's wrapper: when it is collected, the socket closes
        self._send_lock = threading.Lock()
        threading.Thread(target=self._pump, daemon=True).start()

    def _write_some(self, data: memoryview) -> int:
        with self._send_lock:
            return self.sock.send(data, socket.MSG_DONTWAIT)

    def _wait_writable(self, timeout: float | None) -> None:
        select.select([], [self.sock], [], timeout)

    def _pump(self) -> None:
        try:
            while (header := self._exactly(8)) is not None:
                sink = self._stderr if header[0] == 2 else self._stdout
                left = struct.unpack(">I", header[4:])[0]
                while left > 0:  # a frame may claim up to 4 GB: it is read, and charged, a chunk at a time
                    chunk = self.sock.recv(min(left, _CHUNK))
                    if not chunk:
                        raise OSError("the stream ended inside a frame")
                    left -= len(chunk)
                    sink(chunk)
        except OSError:
            pass
        self._ended()

    def _exactly(self, size: int) -> bytes | None:
        data = bytearray()
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
        return bytes(data)

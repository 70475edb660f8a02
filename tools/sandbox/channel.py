"""A started sandbox as the host sees it: a line channel to its interpreter, and a kill switch.

Owns ``Channel`` (send a line, wait for a line with a deadline, kill) and its two transports:
the pipes of a local process (``ProcessChannel``, used by bwrap) and Docker's attach socket
(``SocketChannel``, whose stream interleaves stdout and stderr in frames of
``[kind, 0, 0, 0, size (4 bytes, big-endian)]``). A reader thread per channel turns the
interpreter's stdout into lines and keeps the last few KB of its stderr for diagnostics.
Must not know about the protocol's JSON, tools or backends' options.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import struct
import subprocess
import threading
from collections.abc import Callable

_STDERR_KEEP = 4096
_EOF = None


class ChannelClosed(Exception):
    """The interpreter's output ended: it exited or was killed."""


class Channel:
    """Lines from a sandboxed interpreter, read by a thread; ``kill`` ends the sandbox."""

    def __init__(self, kill: Callable[[], None]):
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._partial = bytearray()
        self._kill = kill
        self.stderr_tail = bytearray()
        self.closed = threading.Event()

    def send(self, line: bytes) -> None:
        raise NotImplementedError

    def readline(self, timeout: float | None) -> bytes:
        """The next line; ``TimeoutError`` past ``timeout`` seconds, ``ChannelClosed`` at EOF."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no answer within {timeout:g} s") from None
        if line is _EOF:
            self._lines.put(_EOF)  # every later read sees the end too
            raise ChannelClosed(self.stderr_tail.decode("utf-8", "replace").strip()[-500:])
        return line

    def kill(self) -> None:
        """End the sandbox (idempotent, never raises)."""
        with contextlib.suppress(Exception):
            self._kill()

    def _stdout(self, data: bytes) -> None:
        self._partial += data
        while (end := self._partial.find(b"\n")) >= 0:
            self._lines.put(bytes(self._partial[:end]))
            del self._partial[: end + 1]

    def _stderr(self, data: bytes) -> None:
        self.stderr_tail += data
        del self.stderr_tail[: max(0, len(self.stderr_tail) - _STDERR_KEEP)]

    def _ended(self) -> None:
        self._lines.put(_EOF)
        self.closed.set()


class ProcessChannel(Channel):
    """A local process (its own process group) spoken to over its stdin and stdout."""

    def __init__(self, argv: list[str], **popen):
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, **popen
        )
        super().__init__(self._kill_group)
        threading.Thread(target=self._pump, args=(self.process.stdout, self._stdout, True), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.process.stderr, self._stderr, False), daemon=True).start()

    def send(self, line: bytes) -> None:
        try:
            assert self.process.stdin is not None
            self.process.stdin.write(line + b"\n")
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError, OSError) as exc:
            raise ChannelClosed(str(exc)) from None

    def _pump(self, stream, sink: Callable[[bytes], None], main: bool) -> None:
        try:
            fd = stream.fileno()
            while chunk := os.read(fd, 65536):
                sink(chunk)
        except (OSError, ValueError):  # closed by kill() while reading: the end, as EOF is
            pass
        if main:
            self._ended()

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class SocketChannel(Channel):
    """Docker's attach socket (no TTY): stdin written raw, stdout/stderr read as frames."""

    def __init__(self, sock: socket.socket, kill: Callable[[], None], keep: object = None):
        super().__init__(kill)
        self.sock = sock
        self._keep = keep  # the SDK's wrapper: when it is collected, the socket closes
        self._send_lock = threading.Lock()
        threading.Thread(target=self._pump, daemon=True).start()

    def send(self, line: bytes) -> None:
        try:
            with self._send_lock:
                self.sock.sendall(line + b"\n")
        except OSError as exc:
            raise ChannelClosed(str(exc)) from None

    def _pump(self) -> None:
        try:
            while header := self._exactly(8):
                kind, size = header[0], struct.unpack(">I", header[4:])[0]
                payload = self._exactly(size)
                if payload is None:
                    break
                (self._stderr if kind == 2 else self._stdout)(payload)
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

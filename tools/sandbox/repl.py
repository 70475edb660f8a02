"""The interpreter that runs *inside* a sandbox: one persistent namespace, one call at a time.

Started as ``python3 -u -c <this file's text> <limits JSON>`` by a backend; it uses the
standard library only and is never imported by agentrl itself. Protocol, one JSON object per
line: it first writes ``{"ready": true, "pid": ...}``, then for each request
``{"id": str, "code": str, "max_output_bytes": int}`` read from stdin it writes
``{"id", "status": "ok"|"error", "stdout", "stderr", "stdout_bytes", "stderr_bytes"}``, the
``id`` being the request's. Nothing here is trusted by the host: user code runs in this
process and could write anything on the protocol's descriptors. The host reads within a budget,
takes only the reply that carries the id it sent, and caps the output again
(``channel.py``, ``session.py``); the caps here only keep honest replies small.

Choices:

- The protocol runs on private duplicates of the original stdin/stdout; while user code runs,
  fds 1 and 2 are pipes read by two threads (so ``print``, ``os.write(1, ...)`` and child
  processes are all captured) and fd 0 is ``/dev/null``. Each reader keeps the first and last
  ``max_output_bytes / 2`` bytes and counts the rest, so 100 MB of output costs no memory.
- A last statement that is an expression has its ``repr`` printed, as in a notebook. The
  traceback of an error is written to the stderr capture, so it is capped with the rest.
- Per-process rlimits from the backend (address space, file size, open files) are set as hard
  limits before any user code runs, so user code cannot raise them: they turn one big
  allocation or file into a ``MemoryError`` or ``File too large`` the code can see. The limits
  on the sandbox as a whole (memory, tasks, CPU, disk, inodes) are the host's (cgroups,
  tmpfs sizes); nothing here enforces those.
- A process forked by user code that returns to this loop exits at once: only the session
  answers. After every call, in its own PID namespace (pid 1 is its parent), it kills every other
  process: nothing a call starts outlives the call.
- The timeout is not enforced here: the host kills the whole sandbox (see ``session.py``).
"""

import ast
import contextlib
import json
import linecache
import os
import resource
import signal
import sys
import threading
import time
import traceback

_RLIMITS = {
    "memory_bytes": resource.RLIMIT_AS,
    "file_bytes": resource.RLIMIT_FSIZE,
    "open_files": resource.RLIMIT_NOFILE,
}
_TRACEBACK_LINES = 12
_MAIN_PID = os.getpid()


class _Capture(threading.Thread):
    """Reads everything written to fd ``fd`` (a pipe for the session's lifetime), keeping the
    head and tail of the current call's output; a per-call random token marks its end."""

    def __init__(self, fd):
        super().__init__(daemon=True)
        self.fd = fd
        self.read_fd, self.write_fd = os.pipe()  # write_fd is kept to restore fd after a call
        os.dup2(self.write_fd, fd)
        self.lock, self.done = threading.Lock(), threading.Event()
        self.begin(64, b"")

    def begin(self, cap, token):
        with self.lock:
            self.head_cap, self.tail_cap = cap // 2, cap - cap // 2 + len(token)  # room for the token
            self.head, self.tail, self.total, self.token = bytearray(), bytearray(), 0, token
            self.done.clear()

    def end(self, timeout, extra=b""):
        os.dup2(self.write_fd, self.fd)  # whatever the code did to the fd
        data = memoryview(extra + self.token)
        while data:
            data = data[os.write(self.fd, data) :]
        self.done.wait(timeout)

    def run(self):
        while True:
            chunk = os.read(self.read_fd, 65536)
            if not chunk:
                return
            with self.lock:
                self.total += len(chunk)
                room = self.head_cap - len(self.head)
                self.head += chunk[:room]
                self.tail += chunk[max(room, 0) :]
                del self.tail[: max(0, len(self.tail) - self.tail_cap)]
                if self.token and (self.head + self.tail).endswith(self.token):
                    self._strip(len(self.token))
                    self.done.set()

    def _strip(self, n):
        self.total -= n
        cut = min(n, len(self.tail))
        del self.tail[len(self.tail) - cut :]
        del self.head[len(self.head) - (n - cut) :]

    def text(self):
        with self.lock:
            cut = self.total - len(self.head) - len(self.tail)
            marker = b"\n...[%d bytes cut]...\n" % cut if cut else b""
            return (bytes(self.head) + marker + bytes(self.tail)).decode("utf-8", "replace")


def _run(code, namespace):
    """Exec ``code`` in ``namespace``; the ``repr`` of a final expression is printed."""
    linecache.cache["<cell>"] = (len(code), None, code.splitlines(True), "<cell>")  # for tracebacks
    tree = ast.parse(code, "<cell>", "exec")
    last = tree.body[-1] if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    if last is not None:
        tree.body.pop()
    exec(compile(tree, "<cell>", "exec"), namespace)
    if last is not None:
        value = eval(compile(ast.Expression(last.value), "<cell>", "eval"), namespace)
        if value is not None:
            print(repr(value))


def _error_text(exc):
    frames = traceback.extract_tb(exc.__traceback__)
    first = next((i for i, f in enumerate(frames) if f.filename == "<cell>"), len(frames))
    user = frames[first:]  # from the user's code on; none for a syntax error
    lines = traceback.format_list(user[-3:]) + traceback.format_exception_only(type(exc), exc)
    text = "".join(lines).splitlines()
    return "\n".join(text[-_TRACEBACK_LINES:]) + "\n"


def _kill_strays():
    """In a PID namespace of its own, kill every process but pid 1 and this one, and wait
    (up to a second) until they are gone, reaping this process's own children."""
    if os.getppid() != 1:
        return
    me, killed = os.getpid(), []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) not in (1, me):
            try:
                os.kill(int(name), signal.SIGKILL)
                killed.append(int(name))
            except OSError:
                pass
    deadline = time.monotonic() + 1.0
    while killed and time.monotonic() < deadline:
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            pass
        killed = [pid for pid in killed if os.path.exists(f"/proc/{pid}")]
        time.sleep(0.005)


def _call(request, namespace, captures):
    cap = int(request.get("max_output_bytes", 4096))
    token = os.urandom(16).hex().encode()
    for capture in captures:
        capture.begin(cap, token)
    status, error = "ok", ""
    try:
        _run(request["code"], namespace)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt too: the session goes on
        status, error = "error", _error_text(exc)
    if os.getpid() != _MAIN_PID:  # a process the code forked, back here: only the session answers
        os._exit(0)
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    _kill_strays()
    out, err = captures
    out.end(2.0)
    err.end(2.0, error.encode("utf-8", "replace"))
    reply = {"id": request.get("id"), "status": status, "stdout": out.text(), "stderr": err.text()}
    reply.update(stdout_bytes=out.total, stderr_bytes=err.total)
    return reply


def _request_id(line):
    try:
        return json.loads(line).get("id")
    except Exception:
        return None


def main():
    limits = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the file-size limit a write fails; it does not kill
    for key, value in limits.items():
        if key in _RLIMITS and value:
            resource.setrlimit(_RLIMITS[key], (int(value), int(value)))
    if limits.get("workdir"):
        os.chdir(limits["workdir"])
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    try:
        threading.stack_size(256 * 1024)  # started before any user code, so a memory hog cannot stop them
        captures = (_Capture(1), _Capture(2))
        for capture in captures:
            capture.start()
    except Exception as exc:  # say why on the protocol: fd 2 may already be a capture pipe
        replies.write(json.dumps({"ready": False, "error": f"{type(exc).__name__}: {exc}"}) + "\n")
        replies.flush()
        raise SystemExit(1) from None
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    replies.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    replies.flush()
    for line in requests:
        try:
            reply = _call(json.loads(line), namespace, captures)
        except MemoryError:
            reply = {"status": "error", "stdout": "", "stderr": "MemoryError\n", "stdout_bytes": 0, "stderr_bytes": 0}
            reply["id"] = _request_id(line)
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


main()

"""Resource attacks, run against every real backend with the host checked afterwards: each is
contained, comes back as a result with a status, and the sandbox (or a fresh one) answers the
next call. Limits are attacked for the sandbox as a whole, not per process."""

from __future__ import annotations

import pytest
from conftest import LIMITS, answers_after
from hostcheck import MemorySampler
from snippets import memory_across_children

pytestmark = pytest.mark.sandbox
INODES = LIMITS.inodes
MB = 1 << 20


def test_fork_bomb(attack):
    session, result = attack.run("import os\nwhile True:\n    os.fork()")
    assert result.status == "error" and "BlockingIOError" in result.stderr
    answers_after(attack, session)


def test_thread_bomb(attack):
    session, result = attack.run(
        """
        import threading, time
        started = 0
        try:
            while True:
                threading.Thread(target=time.sleep, args=(2,), daemon=True).start()
                started += 1
        except RuntimeError as exc:
            print(started, exc)
        """
    )
    started = int(result.stdout.split()[0])
    assert result.status == "ok" and "can't start new thread" in result.stdout and started < LIMITS.processes
    answers_after(attack, session)


def test_memory_hog(attack):
    session, result = attack.run("hog = bytearray(2 << 30)")
    assert result.status == "error" and "MemoryError" in result.stderr
    growing = session.run("chunks = []\nwhile True:\n    chunks.append(bytearray(1 << 20))")
    assert growing.status in ("error", "timeout")
    answers_after(attack, session)


def test_memory_across_forked_children_is_bounded_as_a_whole(attack):
    """Four children each touching up to 300 MB: one sandbox may not hold more than its limit."""
    session = attack.session()
    session.run("pass")  # the sandbox is running before the host's reading starts
    with MemorySampler() as host:
        result = session.run(memory_across_children(children=4, blocks=30, block_mb=10))
    assert result.status in ("ok", "timeout") or result.lost_state, result
    assert host.peak_use < (LIMITS.memory_mb + 128) * MB, f"the host lost {host.peak_use >> 20} MB"
    answers_after(attack, session)


SOCKET_BUFFERS = """
import os, socket, time
def fill():
    held, queued = [], 0
    try:
        while True:
            a, b = socket.socketpair()
            a.setblocking(False)
            held.append((a, b))
            try:
                while True:
                    queued += a.send(b"x" * 65536)
            except BlockingIOError:
                pass
    except OSError:  # out of descriptors, or of memory
        return held, queued
pipes = []
for _ in range(12):
    read, write = os.pipe()
    if os.fork() == 0:
        held, queued = fill()
        os.write(write, b"%d\\n" % queued)
        time.sleep(2.0)
        os._exit(0)
    pipes.append(read)
print(sum(int(os.read(read, 64) or b"0") for read in pipes) >> 20)
"""


def test_socket_buffers_across_children_count_against_the_memory_limit(attack):
    """Kernel memory held in socket buffers: twelve children each queue what their descriptors
    allow (about 27 MB each); the sandbox as a whole may not hold more than its memory."""
    session, result = attack.run(SOCKET_BUFFERS)
    assert result.lost_state or int(result.stdout) <= LIMITS.memory_mb, result
    answers_after(attack, session)


def test_cpu_across_processes_is_bounded_as_a_whole(attack):
    session, result = attack.run(
        """
        import os, resource, time
        start, children = time.monotonic(), []
        for _ in range(4):
            pid = os.fork()
            if pid == 0:
                end = time.monotonic() + 1.5
                while time.monotonic() < end:
                    pass
                os._exit(0)
            children.append(pid)
        for pid in children:
            os.waitpid(pid, 0)
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        print(round((used.ru_utime + used.ru_stime) / (time.monotonic() - start), 2))
        """
    )
    assert result.status == "ok", result
    assert float(result.stdout) <= LIMITS.cpus * 1.25 + 0.1, f"{result.stdout.strip()} CPUs used"
    answers_after(attack, session)


@pytest.mark.parametrize("code", ["while True:\n    pass", "import time\ntime.sleep(60)"])
def test_spin_or_sleep_past_the_timeout(attack, code):
    session, result = attack.run(code)
    assert result.status == "timeout" and result.lost_state and result.seconds < LIMITS.timeout_s + 3
    answers_after(attack, session)


def test_a_child_process_does_not_outlive_the_call(attack):
    session, result = attack.run("import subprocess\nchild = subprocess.Popen(['sleep', '300'])\nchild.pid")
    pid = int(result.stdout)
    check = session.run(f"import os\nos.path.exists('/proc/{pid}')")
    assert check.stdout == "False\n"


def test_writing_outside_the_work_dir(attack):
    session, _ = attack.run("pass")
    for path in ("/usr/evil", "/etc/evil", "/evil", "/home/evil", "/dev/evil", "/dev/shm/evil", "/dev/mqueue/evil"):
        result = session.run(f"open({path!r}, 'w').write('x')")
        refused = ("Read-only file system", "Permission denied", "No such file", "Too many open files")
        assert result.status == "error" and any(r in result.stderr for r in refused), (path, result)
    assert session.run("open('inside.txt', 'w').write('ok'); open('inside.txt').read()").stdout == "'ok'\n"
    big = session.run(f"open('big', 'wb').write(b'x' * ({LIMITS.disk_mb} << 21))")
    assert big.status == "error" and ("File too large" in big.stderr or "No space" in big.stderr)


FIND_WRITABLE = """
import os
found = set()
for line in open("/proc/self/mountinfo"):
    fields = line.split()
    point, options, kind = fields[4], fields[5].split(","), fields[fields.index("-") + 1]
    if "rw" not in options or kind in ("proc", "sysfs"):
        continue
    device = os.stat(point).st_dev
    for root, dirs, _ in os.walk(point):
        dirs[:] = [d for d in dirs if os.lstat(os.path.join(root, d)).st_dev == device]
        try:
            probe = os.path.join(root, ".probe")
            open(probe, "w").close()
            os.unlink(probe)
            found.add(root)
        except OSError:
            pass
print(sorted(found))
"""


def test_the_work_dir_is_the_only_writable_place(attack):
    _session, result = attack.run(FIND_WRITABLE)
    assert result.status == "ok", result
    assert result.stdout == f"[{attack.pool.backend.workdir!r}]\n"


def test_dev_shm_and_dev_take_no_bytes(attack):
    session, result = attack.run(
        """
        written = {}
        for path in ("/dev/shm/fill", "/dev/fill"):
            try:
                with open(path, "wb") as out:
                    for _ in range(64):
                        out.write(b"x" * (1 << 20))
                written[path] = "64 MB"
            except OSError as exc:
                written[path] = exc.strerror
        print(written)
        """
    )
    assert "64 MB" not in result.stdout, result
    answers_after(attack, session)


@pytest.mark.parametrize(
    "make", ["open(f'f{made}', 'w').close()", "os.mkdir(f'd{made}')", "os.symlink('x', f's{made}')"]
)
def test_inode_bomb(attack, make):
    session, result = attack.run(
        f"""
        import os, time
        made, end = 0, time.monotonic() + 2.0
        try:
            while time.monotonic() < end:
                {make}
                made += 1
            print(made, "no limit")
        except OSError as exc:
            print(made, exc.errno)
        """
    )
    made, how = result.stdout.split()
    assert how == "28" and int(made) < INODES, result  # ENOSPC before the inode limit
    answers_after(attack, session)


def test_a_hundred_megabytes_of_output_on_each_stream(attack):
    for stream in ("stdout", "stderr"):
        session, result = attack.run(f"import sys\nfor _ in range(100):\n    sys.{stream}.write('z' * (1 << 20))")
        text = getattr(result, stream)
        assert result.status == "ok" and len(text) < 2 * LIMITS.max_output_bytes and "bytes cut" in text
        answers_after(attack, session)


def test_a_ten_megabyte_exception_message_is_capped(attack):
    session, result = attack.run("raise ValueError('m' * 10_000_000)")
    assert result.status == "error" and len(result.stderr) < 2 * LIMITS.max_output_bytes, len(result.stderr)
    assert "ValueError" in result.stderr and "bytes cut" in result.stderr
    answers_after(attack, session)


@pytest.mark.parametrize(
    "code", ["import os\nos.kill(os.getpid(), 9)", "import os\nos._exit(0)", "import os\nos.close(3)\nos.close(4)"]
)
def test_killing_the_own_interpreter(attack, code):
    session, result = attack.run(code)
    assert result.status in ("error", "ok")
    answers_after(attack, session)

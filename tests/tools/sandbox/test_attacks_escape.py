"""Escapes, run against every real backend with the host checked afterwards: the host's files,
``/proc``, symlinks, the Docker socket, signals to parents and to pid 1, tracing and the
kernel calls a sandbox must not make, the network (vsock included), the host's environment,
and other sessions."""

from __future__ import annotations

import os
import platform
import re
import secrets
import signal
import socket
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from conftest import answers_after

pytestmark = pytest.mark.sandbox
ROOT = Path(__file__).resolve().parents[3]
SECRET = f"agentrl-secret-{secrets.token_hex(8)}"
os.environ["AGENTRL_TEST_SECRET"] = SECRET  # in this process's environment before any sandbox starts


def test_reading_host_files(attack, tmp_path):
    secret = tmp_path / "run-dir-secret.txt"
    secret.write_text("secret")
    session, _ = attack.run("pass")
    for path in ("/etc/shadow", str(ROOT / "README.md"), str(secret), "/root/.bashrc", "/proc/1/root/etc/shadow"):
        result = session.run(f"print(open({path!r}).read()[:20])")
        assert result.status == "error" and "secret" not in result.stdout, (path, result)
        assert "FileNotFoundError" in result.stderr or "PermissionError" in result.stderr, (path, result)


def test_symlinks_lead_nowhere_outside(attack, tmp_path):
    target = tmp_path / "host-file"
    target.write_text("host")
    session, result = attack.run(
        f"""
        import os
        for name, path in (("a", {str(target)!r}), ("b", "/etc/shadow"), ("c", "/proc/1/root/root")):
            os.symlink(path, name)
            try:
                print(name, open(name).read()[:10])
            except OSError as exc:
                print(name, type(exc).__name__)
            try:
                open(name, "w").write("through the link")
                print(name, "written")
            except OSError as exc:
                print(name, type(exc).__name__)
        """
    )
    assert "host" not in result.stdout and "written" not in result.stdout, result
    assert target.read_text() == "host"
    answers_after(attack, session)


def test_proc_shows_only_the_sandbox_and_refuses_writes(attack):
    session, result = attack.run(
        f"""
        import os
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
        print(len(pids) < 8)
        seen = ""
        for pid in pids:
            for what in ("environ", "cmdline"):
                try:
                    seen += open(f"/proc/{{pid}}/{{what}}", "rb").read().decode(errors="replace")
                except OSError:
                    pass
        print({SECRET!r} in seen)
        for path in ("/proc/sysrq-trigger", "/proc/sys/vm/drop_caches", "/proc/sys/kernel/hostname"):
            try:
                open(path, "w").write("1")
                print(path, "written")
            except OSError as exc:
                print(path, type(exc).__name__)
        try:
            open("/proc/kcore", "rb").read(16)
            print("kcore read")
        except OSError as exc:
            print("kcore", type(exc).__name__)
        """
    )
    lines = result.stdout.splitlines()
    assert lines[:2] == ["True", "False"], result
    assert "written" not in result.stdout and "kcore read" not in result.stdout, result
    answers_after(attack, session)


def test_no_host_environment_inside(attack):
    session, result = attack.run("import os\nprint(sorted(os.environ))")
    assert SECRET not in result.stdout and "AGENTRL_TEST_SECRET" not in result.stdout, result
    answers_after(attack, session)


def test_no_docker_or_containerd_socket(attack):
    session, result = attack.run(
        """
        import socket
        for path in ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock"):
            client = socket.socket(socket.AF_UNIX)
            try:
                client.connect(path)
                print(path, "connected")
            except OSError as exc:
                print(path, type(exc).__name__)
        """
    )
    assert result.status == "ok" and "connected" not in result.stdout, result
    answers_after(attack, session)


@pytest.fixture
def canary():
    """A host process running as the sandbox's user, outside any sandbox."""
    process = subprocess.Popen(["sleep", "300"], user=65534, group=65534, extra_groups=[])
    yield process
    process.kill()
    process.wait()


@pytest.mark.parametrize("target", ["-1", "1", "os.getppid()"])
def test_signals_to_everything_pid_1_and_the_parent(attack, canary, target):
    session, _ = attack.run("pass")
    session.run(f"import os, signal\nfor sig in (signal.SIGTERM, signal.SIGKILL):\n    os.kill({target}, sig)")
    assert canary.poll() is None, "a host process of the same user was killed from inside"
    answers_after(attack, session)


def test_no_network_no_ip_sockets_not_even_vsock(attack):
    """No interface but loopback, and no socket but UNIX: no TCP or UDP (on loopback their
    buffers escaped the memory limit), no DNS, no vsock (it reaches the VM's host)."""
    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))
    listener.listen()
    port = listener.getsockname()[1]
    session, _ = attack.run("pass")
    try:
        for host in ("127.0.0.1", "172.17.0.1", "10.0.0.1"):  # the host's loopback, docker0, elsewhere
            result = session.run(f"import socket\nsocket.create_connection(({host!r}, {port}), timeout=0.5)")
            assert result.status == "error" and not result.lost_state, (host, result)
            assert "PermissionError" in result.stderr, (host, result)
        for family, kind in (("AF_INET", "SOCK_DGRAM"), ("AF_INET6", "SOCK_STREAM"), ("AF_NETLINK", "SOCK_RAW")):
            made = session.run(f"import socket\nsocket.socket(socket.{family}, socket.{kind})")
            assert made.status == "error" and "PermissionError" in made.stderr, (family, made)
        dns = session.run("import socket\nsocket.getaddrinfo('deb.debian.org', 80)")
        assert dns.status == "error" and "gaierror" in dns.stderr, dns
        vsock = session.run("import socket\ns = socket.socket(40, socket.SOCK_STREAM)\ns.connect((2, 1024))")
        assert vsock.status == "error" and "PermissionError" in vsock.stderr, vsock  # AF_VSOCK reaches the VM host
        pair = session.run("import socket\na, b = socket.socketpair()\na.send(b'unix works')\nb.recv(64)")
        assert pair.stdout == "b'unix works'\n", pair
    finally:
        listener.close()


def test_every_process_in_the_sandbox_runs_under_the_filter(attack):
    """A process may write another's memory through /proc/PID/mem (the same user): that gains
    nothing while every process, pid 1 included, has the same filter, user and cgroup."""
    session, result = attack.run(
        """
        import os
        status = {}
        for pid in (p for p in os.listdir("/proc") if p.isdigit()):
            lines = open(f"/proc/{pid}/status").read().splitlines()
            status[pid] = tuple(l.split()[1] for l in lines if l.startswith(("Uid:", "Seccomp:")))
        kinds = set(status.values())
        print(len(kinds), sorted(mode for _uid, mode in kinds), len(status))
        """
    )
    distinct, modes, count = result.stdout.split(" ", 2)[0], result.stdout.split()[1], result.stdout.split()[-1]
    assert (distinct, modes) == ("1", "['2']") and int(count) >= 2, result  # one user, all filtered
    answers_after(attack, session)


def test_per_user_kernel_limits_are_each_sandboxs_own(attack):
    """Sandboxes run as users of their own: one that takes every inotify instance its user may
    have leaves another's alone."""
    first, taken = attack.run(
        """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        held = []
        while (fd := libc.inotify_init1(0)) >= 0:
            held.append(fd)
        print(len(held), ctypes.get_errno())
        """
    )
    count, errno = taken.stdout.split()
    assert errno == "24" and int(count) > 0, taken  # EMFILE: this user's instances are all taken
    _second, other = attack.run("import ctypes\nprint(ctypes.CDLL(None).inotify_init1(0) >= 0)")
    assert other.stdout == "True\n", other
    answers_after(attack, first)


def syscall_numbers() -> dict[str, int]:
    """This machine's syscall numbers, read from the kernel headers the host has installed."""
    header = {
        "x86_64": "/usr/include/x86_64-linux-gnu/asm/unistd_64.h",
        "aarch64": "/usr/include/asm-generic/unistd.h",
    }.get(platform.machine())
    if header is None or not Path(header).exists():
        pytest.skip(f"no kernel syscall header for {platform.machine()} on this host")
    return {m[1]: int(m[2]) for m in re.finditer(r"#define __NR_(\w+)\s+(\d+)", Path(header).read_text())}


DENIED = (
    "ptrace",
    "process_vm_readv",
    "mount",
    "umount2",
    "pivot_root",
    "unshare",
    "setns",
    "keyctl",
    "add_key",
    "bpf",
    "init_module",
    "finit_module",
    "delete_module",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "fsopen",
    "open_tree",
    "mq_open",
    "msgget",
)


def test_the_calls_a_sandbox_must_not_make_are_refused(attack):
    numbers = syscall_numbers()
    calls = {name: numbers[name] for name in DENIED if name in numbers}
    session, result = attack.run(
        f"""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        answered = {{}}
        for name, number in {calls!r}.items():
            ctypes.set_errno(0)
            args = (0x10000000, 0, 0, 0, 0) if name == "unshare" else (1, 0, 0, 0, 0)
            value = libc.syscall(number, *args)
            answered[name] = "EPERM" if value == -1 and ctypes.get_errno() == 1 else (value, ctypes.get_errno())
        print({{k: v for k, v in answered.items() if v != "EPERM"}})
        """
    )
    assert result.stdout == "{}\n", result
    answers_after(attack, session)


def test_new_namespaces_cannot_be_made_inside(attack):
    session, result = attack.run(
        """
        import os
        for flags in (os.CLONE_NEWUSER, os.CLONE_NEWNS, os.CLONE_NEWPID | os.CLONE_NEWUSER):
            try:
                os.unshare(flags)
                print(hex(flags), "made")
            except OSError as exc:
                print(hex(flags), exc.errno)
        """
    )
    assert "made" not in result.stdout, result
    answers_after(attack, session)


# Takes the parent-death signal away from the sandbox's pid 1 by making it call
# prctl(PR_SET_PDEATHSIG, 0) under ptrace (x86-64): without the signal, a sandbox whose
# teardown relies on it outlives its session.
UNDO_PARENT_DEATH = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
class Regs(ctypes.Structure):
    _fields_ = [(n, ctypes.c_ulonglong) for n in (
        "r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags rsp ss "
        "fs_base gs_base ds es fs gs").split()]
def undo(pid):
    if libc.ptrace(16, pid, None, None) != 0:  # PTRACE_ATTACH
        return f"attach refused: errno {ctypes.get_errno()}"
    os.waitpid(pid, 0)
    regs, saved = Regs(), Regs()
    libc.ptrace(12, pid, None, ctypes.byref(regs))  # PTRACE_GETREGS
    ctypes.memmove(ctypes.byref(saved), ctypes.byref(regs), ctypes.sizeof(regs))
    for at in (regs.rip - 2, regs.rip):
        if libc.ptrace(1, pid, ctypes.c_void_p(at), None) & 0xFFFF == 0x050F:  # a syscall instruction
            break
    else:
        libc.ptrace(17, pid, None, None)
        return "no syscall instruction found"
    regs.rip, regs.rax, regs.rdi, regs.rsi, regs.orig_rax = at, 157, 1, 0, 2**64 - 1  # prctl(PR_SET_PDEATHSIG, 0)
    libc.ptrace(13, pid, None, ctypes.byref(regs))  # PTRACE_SETREGS
    libc.ptrace(9, pid, None, None)  # PTRACE_SINGLESTEP
    os.waitpid(pid, 0)
    libc.ptrace(13, pid, None, ctypes.byref(saved))
    libc.ptrace(17, pid, None, None)  # PTRACE_DETACH
    return "undone"
print(undo(1), undo(os.getppid()) if os.getppid() != 1 else "")
"""


STAY = """
import os, signal, sys, threading, time
threading.Thread(target=time.sleep, args=(10**6,)).start()
sys.modules["__main__"]._kill_strays = lambda: None
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            signal.pause()
    os._exit(0)
"""


def test_tracing_pid_1_is_refused_and_teardown_does_not_depend_on_it(attack):
    session, result = attack.run(UNDO_PARENT_DEATH if platform.machine() == "x86_64" else "print('attach refused')")
    assert result.stdout.startswith("attach refused: errno 1"), result
    tracing = session.run(
        textwrap.dedent(
            """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        print(libc.ptrace(0, 0, 0, 0), ctypes.get_errno())  # PTRACE_TRACEME
        """
        )
    )
    assert tracing.stdout == "-1 1\n", tracing
    # a thread that never ends keeps the interpreter alive after its input closes, and a
    # daemon in a session of its own would outlive a teardown that kills a process group
    daemon = session.run(STAY)
    assert daemon.status == "ok", daemon
    answers_after(attack, session)  # the fixture then closes the session and finds nothing left


def test_sessions_cannot_see_each_other(attack):
    first, made = attack.run(
        """
        import os, socket, subprocess
        open("mine.txt", "w").write("first")
        keep = socket.socket(socket.AF_UNIX)
        keep.bind("\\0agentrl-first")
        print(os.getpid())
        """
    )
    assert made.status == "ok", made
    second, seen = attack.run(
        """
        import os, socket
        print(os.path.exists("mine.txt"))
        probe = socket.socket(socket.AF_UNIX)
        try:
            probe.connect("\\0agentrl-first")
            print("reached")
        except OSError as exc:
            print(type(exc).__name__)
        print(sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
        """
    )
    lines = seen.stdout.splitlines()
    assert lines[0] == "False" and lines[1] != "reached", seen
    answers_after(attack, first)
    answers_after(attack, second)


def test_signals_from_inside_reach_no_host_process_of_another_user(attack):
    session, _ = attack.run("pass")
    victim = subprocess.Popen(["sleep", "300"])
    try:
        result = session.run(f"import os, signal\nos.kill({victim.pid}, signal.SIGKILL)")
        assert result.status == "error" and "ProcessLookupError" in result.stderr, result
        time.sleep(0.2)
        assert victim.poll() is None
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()

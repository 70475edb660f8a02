"""The attack suite, run against every real backend: each attack is contained, comes back as
a result with a status, and the sandbox (or a fresh one) answers the next call."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import LIMITS, open_or_skip

from agentrl_tools.sandbox.session import PythonSession

pytestmark = pytest.mark.sandbox
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def run(pool):
    """Run code in a new session of ``pool``; every session is closed after the test."""
    sessions: list[PythonSession] = []

    def run_in_new_session(code: str):
        sessions.append(PythonSession(pool))
        return sessions[-1], sessions[-1].run(textwrap.dedent(code))

    yield run_in_new_session
    for session in sessions:
        session.close()


def test_fork_bomb(run):
    session, result = run("import os\nwhile True:\n    os.fork()")
    assert result.status == "error" and "BlockingIOError" in result.stderr
    assert session.run("print('alive')").stdout == "alive\n"


def test_memory_hog(run):
    session, result = run("hog = bytearray(2 << 30)")
    assert result.status == "error" and "MemoryError" in result.stderr
    growing = session.run("chunks = []\nwhile True:\n    chunks.append(bytearray(1 << 20))")
    assert growing.status in ("error", "timeout")
    assert session.run("1 + 1").stdout == "2\n"


@pytest.mark.parametrize("code", ["while True:\n    pass", "import time\ntime.sleep(60)"])
def test_spin_or_sleep_past_the_timeout(run, code):
    session, result = run(code)
    assert result.status == "timeout" and result.lost_state and result.seconds < LIMITS.timeout_s + 3
    assert session.run("print(3)").stdout == "3\n"


def test_a_child_process_does_not_outlive_the_call(run):
    session, result = run("import subprocess\nchild = subprocess.Popen(['sleep', '300'])\nchild.pid")
    pid = int(result.stdout)
    check = session.run(f"import os\nos.path.exists('/proc/{pid}')")
    assert check.stdout == "False\n"


def test_writing_outside_the_work_dir(run):
    session, _ = run("pass")
    for path in ("/usr/evil", "/etc/evil", "/evil", "/home/evil"):
        result = session.run(f"open({path!r}, 'w').write('x')")
        refused = ("Read-only file system", "Permission denied", "No such file")
        assert result.status == "error" and any(r in result.stderr for r in refused), (path, result)
    assert session.run("open('inside.txt', 'w').write('ok'); open('inside.txt').read()").stdout == "'ok'\n"
    big = session.run(f"open('big', 'wb').write(b'x' * ({LIMITS.disk_mb} << 21))")
    assert big.status == "error" and ("File too large" in big.stderr or "No space" in big.stderr)


def test_reading_host_files(run, tmp_path):
    secret = tmp_path / "run-dir-secret.txt"
    secret.write_text("secret")
    session, _ = run("pass")
    for path in ("/etc/shadow", str(ROOT / "README.md"), str(secret), "/root/.bashrc"):
        result = session.run(f"print(open({path!r}).read()[:20])")
        assert result.status == "error" and "secret" not in result.stdout, (path, result)
        assert "FileNotFoundError" in result.stderr or "PermissionError" in result.stderr, (path, result)


def test_no_network(run):
    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))
    listener.listen()
    port = listener.getsockname()[1]
    session, _ = run("pass")
    try:
        for host in ("127.0.0.1", "172.17.0.1", "10.0.0.1"):  # the host's loopback, docker0, elsewhere
            result = session.run(f"import socket\nsocket.create_connection(({host!r}, {port}), timeout=0.5)")
            assert result.status == "error" and not result.lost_state, (host, result)
            refused = ("ConnectionRefusedError", "Network is unreachable", "timed out")
            assert any(r in result.stderr for r in refused), (host, result)
        dns = session.run("import socket\nsocket.getaddrinfo('deb.debian.org', 80)")
        assert dns.status == "error" and "gaierror" in dns.stderr, dns
    finally:
        listener.close()


def test_a_hundred_megabytes_of_output(run):
    _session, result = run("import sys\nfor _ in range(100):\n    sys.stdout.write('z' * (1 << 20))")
    assert result.status == "ok" and len(result.stdout) < 2 * LIMITS.max_output_bytes
    assert "bytes cut" in result.stdout


@pytest.mark.parametrize(
    "code", ["import os\nos.kill(os.getpid(), 9)", "import os\nos._exit(0)", "import os\nos.close(3)\nos.close(4)"]
)
def test_killing_the_own_interpreter(run, code):
    session, result = run(code)
    assert result.status in ("error", "ok")
    after = session.run("print('fresh')")
    assert after.stdout == "fresh\n"


VICTIM = """
import sys
sys.path.insert(0, {tests!r})
from helpers import open_or_skip
from agentrl_tools.sandbox.session import Limits, PythonSession
session = PythonSession(open_or_skip(sys.argv[1], Limits(timeout_s=600), warm=0))
session.run("pass")
import os
print(os.getpid(), getattr(session._channel, "process", None) and session._channel.process.pid, flush=True)
session.run("while True:\\n    pass")
"""


def kill_mid_call(backend: str, tmp_path: Path) -> str:
    """Start a run whose call never returns, SIGKILL it, and return what it printed."""
    script = tmp_path / "victim.py"
    script.write_text(VICTIM.format(tests=str(Path(__file__).parents[2])))
    victim = subprocess.Popen([sys.executable, str(script), backend], stdout=subprocess.PIPE, text=True)
    assert victim.stdout is not None
    printed = victim.stdout.readline().strip()
    time.sleep(1.0)  # the call is spinning now
    victim.kill()
    victim.wait()
    time.sleep(1.0)
    return printed


def test_bwrap_run_killed_mid_call_leaves_no_process(tmp_path):
    open_or_skip("bwrap", warm=0).close()
    bwrap_pid = int(kill_mid_call("bwrap", tmp_path).split()[1])
    alive = [p.name for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(p.name) == bwrap_pid]
    assert not Path(f"/proc/{bwrap_pid}").exists() or _state(bwrap_pid) == "Z", alive
    assert alive == []


def test_docker_run_killed_mid_call_leaves_a_container_the_next_start_removes(tmp_path):
    open_or_skip("docker", warm=0).close()
    victim_pid = kill_mid_call("docker", tmp_path).split()[0]

    def victims() -> list[str]:  # containers of the killed run (others may be this process's own)
        listed = ["docker", "ps", "-a", "--filter", "label=agentrl.sandbox", "--format", '{{.Label "agentrl.owner"}}']
        owners = subprocess.run(listed, capture_output=True, text=True).stdout.split()
        return [owner for owner in owners if owner.split(":")[1:2] == [victim_pid]]

    assert victims()  # the orphan spins on
    pool = open_or_skip("docker", warm=0)  # the next start
    assert pool.backend.removed_orphans >= 1
    assert victims() == []
    pool.close()


def _parent(pid: str) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"

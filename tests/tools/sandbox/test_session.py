"""A persistent Python session in each real sandbox: state, output, timeouts, restarts."""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys

import pytest
from conftest import open_or_skip

from agentrl.cli.main import main
from agentrl.errors import ConfigError
from agentrl_tools.python_tool import NO_OUTPUT, PythonTool
from agentrl_tools.registry import make_tool
from agentrl_tools.sandbox.session import Limits, PythonSession

pytestmark = pytest.mark.sandbox


def test_state_carries_across_calls(pool):
    session = PythonSession(pool)
    assert session.run("x = 40").status == "ok"
    session.run("def twice(v):\n    return 2 * v")
    result = session.run("print(twice(x) + 4)")
    assert (result.status, result.stdout, result.stderr, result.lost_state) == ("ok", "84\n", "", False)
    assert 0 < result.seconds < 3
    assert session.run("x + 1").stdout == "41\n"  # a last expression is shown, as in a notebook
    session.close()


def test_a_traceback_is_the_last_lines_and_the_session_goes_on(pool):
    session = PythonSession(pool)
    session.run("y = 7")
    result = session.run("def f():\n    return 1 / 0\nf()")
    assert result.status == "error" and not result.lost_state
    assert result.stderr.rstrip().endswith("ZeroDivisionError: division by zero")
    assert 'File "<cell>", line 2, in f' in result.stderr and "repl" not in result.stderr
    assert session.run("import sys; sys.exit(3)").stderr.rstrip().endswith("SystemExit: 3")
    assert session.run("y").stdout == "7\n"
    session.close()


def test_a_call_past_its_timeout_is_killed_and_the_state_is_lost(pool):
    tool = PythonTool(pool)
    tool("z = 1")
    result = tool("import time\ntime.sleep(30)")
    assert result.status == "timeout" and 2.9 < result.latency_s < 6
    assert result.output.startswith("Error: the call ran past its 3 s timeout") and "lost" in result.output
    assert tool.last is not None and tool.last.lost_state
    after = tool("z")
    assert after.status == "error" and "NameError" in after.output  # a fresh interpreter
    assert tool("1 + 1").output == "2"
    tool.close()


def test_output_is_capped_with_head_tail_and_a_marker(pool):
    result = PythonSession(pool).run("print('A' * 600 + 'B' * 5000 + 'C' * 600)")
    assert result.stdout.startswith("A" * 500) and result.stdout.endswith("C" * 499 + "\n")
    assert "...[5201 bytes cut]..." in result.stdout
    assert len(result.stdout) < 1100


def test_child_process_output_is_captured_and_no_output_is_said(pool):
    tool = PythonTool(pool)
    assert tool("import os; os.system('echo from-a-child')").output == "from-a-child\n0"
    assert tool("pass").output == NO_OUTPUT
    tool.close()


def test_sixty_four_sessions_at_once(pool):
    sessions = [PythonSession(pool) for _ in range(64)]

    def work(i: int) -> str:
        first = sessions[i].run(f"n = {i}")
        assert first.status == "ok", first
        return sessions[i].run("print(n * n)").stdout

    with concurrent.futures.ThreadPoolExecutor(64) as executor:
        outputs = list(executor.map(work, range(64)))
    assert outputs == [f"{i * i}\n" for i in range(64)]
    for session in sessions:
        session.close()


@pytest.mark.parametrize("backend", ["bwrap", "docker"])
def test_the_registry_makes_a_python_tool_on_the_shared_pool(backend):
    open_or_skip(backend).close()
    tool = make_tool("python", backend=backend, timeout_s=3.0)
    again = make_tool("python", backend=backend, timeout_s=3.0)
    assert tool.session.pool is again.session.pool  # one pool per process and settings
    tool("a = 6")
    assert tool("a * 7").output == "42"
    assert again("a").status == "error"  # each tool its own session
    tool.close()
    again.close()


@pytest.mark.parametrize("backend", ["bwrap", "docker"])
def test_sandbox_check_command(backend, capsys):
    open_or_skip(backend).close()
    assert main(["sandbox", "check", "--backend", backend]) == 0
    first, second = capsys.readouterr().out.splitlines()
    assert first.startswith(f"{backend} sandbox: Python 3.")
    defaults = Limits()
    assert f": {defaults.disk_mb} MB, {defaults.inodes} inodes; seccomp filter on;" in second
    assert main(["sandbox", "check", "--backend", "none"]) == 2
    assert "--backend must be one of auto, docker, bwrap" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"timeout_s": 0}, "sandbox: timeout_s=0 is out of range; allowed: [0.01, 3600.0]"),
        ({"memory_mb": 16}, "sandbox: memory_mb=16 is out of range; allowed: [64, 1048576]"),
        ({"processes": 2}, "sandbox: processes=2 is out of range; allowed: [8, 4096]"),
        ({"cpus": 0}, "sandbox: cpus=0 is out of range; allowed: [0.01, "),
        ({"cpus": 10_000.0}, "sandbox: cpus=10000.0 is out of range"),
        ({"disk_mb": 0}, "sandbox: disk_mb=0 is out of range; allowed: [1, 1048576]"),
        ({"inodes": 4}, "sandbox: inodes=4 is out of range; allowed: [16, 16777216]"),
        ({"max_output_bytes": 10}, "sandbox: max_output_bytes=10 is out of range; allowed: [64, 1048576]"),
        ({"memory_mb": float("nan")}, "sandbox: memory_mb=nan must be a whole number"),
        ({"timeout_s": float("nan")}, "sandbox: timeout_s=nan is not a finite number"),
        ({"memory_mb": 512.5}, "sandbox: memory_mb=512.5 must be a whole number"),
        ({"timeout_s": True}, "sandbox: timeout_s=True must be a number"),
        ({"cpus": "1"}, "sandbox: cpus='1' must be a number"),
        ({"inodes": None}, "sandbox: inodes=None must be a whole number"),
    ],
)
def test_bad_limits_are_one_line_errors(limits, message):
    with pytest.raises(ConfigError) as raised:
        Limits(**limits)
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("warm", "message"),
    [
        (10**30, "sandbox: warm=1000000000000000000000000000000 is out of range; allowed: [0, 256]"),
        (-1, "sandbox: warm=-1 is out of range; allowed: [0, 256]"),
        (float("nan"), "sandbox: warm=nan must be a whole number"),
        (1.5, "sandbox: warm=1.5 must be a whole number"),
        (True, "sandbox: warm=True must be a whole number"),
    ],
)
def test_a_bad_warm_pool_size_is_refused_before_any_sandbox_starts(warm, message):
    """``make_tool`` passes ``warm`` straight to the pool: a bad value once started sandboxes
    without end (283 in 13 s)."""
    with pytest.raises(ConfigError) as raised:
        make_tool("python", backend="bwrap", warm=warm)
    assert str(raised.value) == message


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a command as another user")
def test_bwrap_refuses_to_run_without_root_rather_than_without_its_limits():
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
    if subprocess.run([*as_nobody, sys.executable, "-c", "import agentrl_tools"], capture_output=True).returncode:
        pytest.skip("the sandbox user cannot read this checkout")
    agentrl = [sys.executable, "-m", "agentrl", "sandbox", "check", "--backend", "bwrap"]
    done = subprocess.run([*as_nobody, *agentrl], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == "", done
    assert done.stderr.strip() == (
        "agentrl: error: the bwrap sandbox needs root: the host sets its limits as a whole (cgroups) and mounts its "
        "work dir (size and inodes); run as root or use the docker backend"
    )

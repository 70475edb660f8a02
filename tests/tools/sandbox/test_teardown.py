"""Teardown that nothing inside can undo: after ``close``, after a timeout and after the run
itself is killed, every process of the sandbox is gone from the host, and so are its
containers, mounts and cgroups. Processes that hide (a new session, a double fork, ignored
signals) are what each case leaves behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import answers_after, open_or_skip
from hostcheck import HostState, sandbox_processes

pytestmark = pytest.mark.sandbox

HIDE = """
import os, signal, subprocess
for _ in range(3):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, signal.SIG_IGN)
            while True:
                signal.pause()
        os._exit(0)
"""


def test_close_leaves_nothing_even_of_hidden_processes(attack):
    session, result = attack.run(HIDE)
    assert result.status == "ok", result
    session.close()
    # the fixture checks the host


def test_a_timeout_ends_every_process_of_the_sandbox_at_once(attack):
    before = set(sandbox_processes())
    session, result = attack.run(HIDE + "\nimport time\nwhile True:\n    time.sleep(1)")
    assert result.status == "timeout" and result.lost_state, result
    deadline = time.monotonic() + 5
    while set(sandbox_processes()) - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert set(sandbox_processes()) - before == set()  # before the next call or close
    answers_after(attack, session)


VICTIM = """
import sys
sys.path.insert(0, {tests!r})
from helpers import open_or_skip
from agentrl_tools.sandbox.session import Limits, PythonSession
session = PythonSession(open_or_skip(sys.argv[1], Limits(timeout_s=600), warm=0))
session.run({hide!r})
print("ready", flush=True)
session.run("while True:\\n    pass")
"""


def start_victim(backend: str, tmp_path: Path) -> subprocess.Popen:
    """A run (its own process group) whose session hides processes, then spins in a call."""
    script = tmp_path / "victim.py"
    script.write_text(VICTIM.format(tests=str(Path(__file__).parents[2]), hide=HIDE))
    victim = subprocess.Popen(
        [sys.executable, str(script), backend],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # where SIGINT is ignored (a background job)
    )
    assert victim.stdout is not None
    assert victim.stdout.readline().strip() == "ready"
    time.sleep(0.5)  # the call is spinning now
    return victim


def reaper_of(victim: subprocess.Popen) -> int:
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"agentrl_tools.sandbox.reaper" in command and any(f":{victim.pid}:".encode() in part for part in command):
            return int(entry.name)
    raise AssertionError("the run has no reaper")


@pytest.mark.parametrize("backend", ["bwrap", "docker"])
@pytest.mark.parametrize(
    "how", ["kill-9", "term", "ctrl-c", "kill-9-group"], ids=["kill-9", "term", "ctrl-c", "kill-9-group"]
)
def test_a_run_killed_mid_call_leaves_nothing(backend, how, tmp_path):
    """No next run is needed: the run's reaper, outside the run's process group and outside
    the sandboxes, removes whatever the run left when it dies."""
    open_or_skip(backend, warm=0).close()
    before = HostState.now()
    victim = start_victim(backend, tmp_path)
    if how == "kill-9-group":
        os.killpg(victim.pid, signal.SIGKILL)  # everything in the run's process group
    else:
        victim.send_signal({"kill-9": signal.SIGKILL, "term": signal.SIGTERM, "ctrl-c": signal.SIGINT}[how])
    victim.wait(timeout=30)
    HostState.now().assert_back_to(before, wait_s=15.0)


@pytest.mark.parametrize("backend", ["bwrap", "docker"])
def test_what_a_run_and_its_reaper_left_is_removed_by_the_next_run(backend, tmp_path):
    open_or_skip(backend, warm=0).close()
    before = HostState.now()
    victim = start_victim(backend, tmp_path)
    os.kill(reaper_of(victim), signal.SIGKILL)
    victim.kill()
    victim.wait(timeout=30)
    time.sleep(1.0)
    assert HostState.now().left_over(before)  # the sandbox outlived its run: nobody removed it
    open_or_skip(backend, warm=0).close()  # the next run's backend
    HostState.now().assert_back_to(before, wait_s=15.0)

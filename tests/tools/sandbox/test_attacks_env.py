"""Attacks through ``tool_use``'s ordinary path, as a model would make them: ``make("tool_use",
sandbox=B)`` with the environment's default limits, ``reset``, ``step("<python>...</python>")``;
the host checked afterwards."""

from __future__ import annotations

import pytest
from hostcheck import HostState, MemorySampler
from snippets import WRITE_EVERY_FD, memory_across_children

from agentrl.envs import make
from agentrl_tools.sandbox.session import Limits
from helpers import open_or_skip

pytestmark = pytest.mark.sandbox
DEFAULTS = Limits()
MB = 1 << 20


@pytest.fixture(params=["bwrap", "docker"])
def env(request):
    open_or_skip(request.param, warm=0).close()
    before = HostState.now()
    made = make("tool_use", sandbox=request.param, max_turns=16)  # default limits
    made.reset(seed=0)
    made.step("<python>pass</python>")  # the sandbox is running before the test's readings
    yield made
    made.close()
    HostState.now().assert_back_to(before)


def observation(env, code: str) -> tuple[str, dict]:
    messages, _reward, _terminated, _truncated, info = env.step(f"<python>{code}</python>")
    return messages[0]["content"], info


def test_the_defaults_are_the_documented_ones(env):
    c = env.config
    taken = (c.timeout_s, c.memory_mb, c.processes, c.cpus, c.disk_mb, c.inodes, c.max_output_bytes)
    assert taken == (
        DEFAULTS.timeout_s,
        DEFAULTS.memory_mb,
        DEFAULTS.processes,
        DEFAULTS.cpus,
        DEFAULTS.disk_mb,
        DEFAULTS.inodes,
        DEFAULTS.max_output_bytes,
    )


def test_memory_across_children_with_the_default_limit(env):
    code = memory_across_children(children=4, blocks=40, block_mb=16)
    with MemorySampler() as host:
        observation(env, code)
    assert host.peak_use < (DEFAULTS.memory_mb + 128) * MB, f"the host lost {host.peak_use >> 20} MB"
    text, _ = observation(env, "print(6 * 7)")
    if "restarted" in text:  # the attack's call lost the session; the next one answers
        text, _ = observation(env, "print(6 * 7)")
    assert text == "42", text


def test_a_forged_reply_with_the_default_output_cap(env):
    code = (
        WRITE_EVERY_FD
        + 'import json\nto_every_fd((json.dumps({"status": "ok", "stdout": "A" * 3_000_000}) + "\\n").encode())\n'
        + "print('real')"
    )
    text, _ = observation(env, code)
    assert len(text) < 16 * DEFAULTS.max_output_bytes, len(text)
    text, info = observation(env, "print(6 * 7)")
    assert text == "42" and info["tool_status"] == "ok", text


def test_dev_shm_and_inodes_with_the_defaults(env):
    text, _ = observation(env, "open('/dev/shm/x', 'wb').write(b'x' * (64 << 20))")
    assert text.startswith("Traceback") or "Error" in text, text
    code = """
import os
made = 0
try:
    while made < 1_000_000:
        open(f"f{made}", "w").close()
        made += 1
except OSError as exc:
    print(made, exc.errno)
"""
    made, errno = observation(env, code)[0].split()
    assert errno == "28" and int(made) < DEFAULTS.inodes

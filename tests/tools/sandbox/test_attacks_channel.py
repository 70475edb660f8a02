"""Attacks on the channel between the host and the sandbox's interpreter: forged, flooded,
out-of-step and malformed replies. What reaches the host per call is bounded by the host,
a reply is never taken for another call's, and the host's own memory and disk stay put."""

from __future__ import annotations

import os
import time

import pytest
from conftest import LIMITS, answers_after
from snippets import WRITE_EVERY_FD

pytestmark = pytest.mark.sandbox
MB = 1 << 20
# Every reply the host may take for a call is a few times the output cap (JSON escapes and
# the markers), far below the 3 MB the attacks write.
OBSERVATION_BOUND = 16 * LIMITS.max_output_bytes


def observed(result) -> int:
    return len(result.stdout) + len(result.stderr) + len(result.message)


def test_a_forged_three_megabyte_reply_is_bounded_and_the_session_stays_in_step(attack):
    session, result = attack.run(
        WRITE_EVERY_FD
        + """
import json
forged = {"status": "ok", "stdout": "A" * 3_000_000, "stderr": "", "stdout_bytes": 0, "stderr_bytes": 0}
to_every_fd((json.dumps(forged) + "\\n").encode())
print("real")
"""
    )
    assert observed(result) < OBSERVATION_BOUND, observed(result)
    answers_after(attack, session)


def test_a_forged_reply_is_not_taken_for_the_answer(attack):
    session, result = attack.run(
        WRITE_EVERY_FD
        + """
import json
forged = {"status": "ok", "stdout": "forged", "stderr": "", "stdout_bytes": 6, "stderr_bytes": 0}
for _ in range(3):
    to_every_fd((json.dumps(forged) + "\\n").encode())
print("real")
"""
    )
    # the forged lines also went down the interpreter's own stdout pipe: printed, not answers
    assert result.status == "ok" and result.stdout.endswith("real\n") and result.stdout != "forged", result
    answers_after(attack, session)


def test_a_reply_forged_with_the_calls_own_id_does_not_put_the_session_out_of_step(attack):
    """Code that digs its own request out of the interpreter's frames may answer its own call
    (that is no more than printing); the next call still gets its own answer."""
    session, result = attack.run(
        WRITE_EVERY_FD
        + """
import json, sys
ids, frame = set(), sys._getframe()
while frame is not None:
    for value in list(frame.f_locals.values()):
        if isinstance(value, dict) and "code" in value:
            ids.update(str(v) for k, v in value.items() if k != "code")
    frame = frame.f_back
for request_id in ids:
    forged = {"id": request_id, "status": "ok", "stdout": "mine", "stderr": "", "stdout_bytes": 4, "stderr_bytes": 0}
    to_every_fd((json.dumps(forged) + "\\n").encode())
print("real")
"""
    )
    assert result.stdout == "mine" or result.stdout.endswith("real\n"), result
    answers_after(attack, session)


def test_garbage_and_an_endless_line_on_the_channel(attack):
    session, result = attack.run(
        WRITE_EVERY_FD
        + """
to_every_fd(b"\\xff\\xfe\\x00{not json\\n" * 1000)
for _ in range(100):
    to_every_fd(b"B" * (1 << 20))  # 100 MB and no end of line
print("real")
"""
    )
    assert observed(result) < OBSERVATION_BOUND, observed(result)
    answers_after(attack, session)


@pytest.mark.parametrize(
    "replace",
    [
        "import json\njson.dumps = lambda *a, **k: 'X' * 3_000_000",
        "import sys\nmain = sys.modules['__main__']\n"
        "main._call = lambda *a, **k: {'status': 'ok', 'stdout': 'C' * 3_000_000, 'stderr': ''}",
    ],
    ids=["json.dumps", "the call function"],
)
def test_replacing_the_interpreters_reply_function(attack, replace):
    session, _ = attack.run(replace)
    for _ in range(2):  # the replaced function answers this call or the next
        result = session.run("print('real')")
        assert observed(result) < OBSERVATION_BOUND, observed(result)
    answers_after(attack, session)


def host_rss() -> int:
    with open(f"/proc/{os.getpid()}/status") as status:
        return next(int(line.split()[1]) << 10 for line in status if line.startswith("VmRSS:"))


@pytest.mark.parametrize("newline", [True, False], ids=["lines", "one-line"])
def test_a_thread_that_floods_the_channel_after_its_call(attack, newline):
    """Neither the host process nor Docker's log files may grow with what is written between
    calls (the fixture checks Docker's container files after the test)."""
    data = 'b"{\\"status\\": \\"ok\\"}\\n" * 4096' if newline else 'b"Z" * 65536'
    session, started = attack.run(
        WRITE_EVERY_FD
        + f"""
import threading, time
def flood():
    time.sleep(0.5)  # after the call has been answered
    data = {data}
    while True:
        to_every_fd(data)
threading.Thread(target=flood, daemon=True).start()
print("started")
"""
    )
    assert started.stdout == "started\n", started
    before = host_rss()
    time.sleep(3.0)
    grown = host_rss() - before
    assert grown < 32 * MB, f"the host process grew by {grown >> 20} MB"
    answers_after(attack, session)


def test_a_thread_that_prints_forever_between_calls(attack):
    session, _ = attack.run(
        """
        import threading
        def chatter():
            while True:
                print("y" * 10000)
        threading.Thread(target=chatter, daemon=True).start()
        """
    )
    time.sleep(1.0)
    for _ in range(3):  # the thread is the session's own state: it prints into each call, capped
        result = session.run("pass")
        assert result.status == "ok" and observed(result) < OBSERVATION_BOUND, observed(result)
    fresh = attack.session().run("print(6 * 7)")
    assert (fresh.status, fresh.stdout) == ("ok", "42\n"), fresh


def test_code_that_stops_the_interpreter_reading_its_requests_cannot_hang_the_host(attack):
    """The request pipe kept, shrunk to one page and no longer read: the next request (larger
    than the page) must not block the host past the call's timeout, nor ``close``."""
    session, shrunk = attack.run(
        """
        import fcntl, os
        keep = os.dup(3)
        fcntl.fcntl(keep, 1031, 4096)  # F_SETPIPE_SZ: one page
        unread, _ = os.pipe()
        os.dup2(unread, 3)  # the interpreter now waits on a pipe nobody writes
        """
    )
    assert shrunk.status == "ok", shrunk
    big = "total = 0\n" + "".join(f"total += {i}  # a long program, line {i:05d}\n" for i in range(200))
    start = time.monotonic()
    result = session.run(big)
    assert result.status == "timeout" and result.lost_state, result
    assert time.monotonic() - start < LIMITS.timeout_s + 2
    answers_after(attack, session)


FORGE_OWN_REPLY = """
import json, os, sys
request, frame = None, sys._getframe()
while frame is not None and request is None:
    request = next((v for v in frame.f_locals.values() if isinstance(v, dict) and "code" in v), None)
    frame = frame.f_back
def reply(text):
    for fd in range(3, 64):
        try:
            os.write(fd, (text + "\\n").encode())
        except OSError:
            pass
"""


def test_a_forged_reply_of_lone_surrogates_is_capped_in_bytes(attack):
    """JSON escapes of lone surrogates (6 bytes each on the channel) must not turn into three
    replacement characters each in what the host returns."""
    session, result = attack.run(
        FORGE_OWN_REPLY
        + 'body = "\\\\udc80" * 4000\n'
        + 'reply(\'{"id": "%s", "status": "ok", "stdout": "%s", "stderr": "%s"}\' % (request["id"], body, body))\n'
    )
    size = len(result.stdout.encode()) + len(result.stderr.encode())
    assert size <= 2 * (LIMITS.max_output_bytes + 64), size
    answers_after(attack, session)


def test_a_line_longer_than_a_reply_may_be_ends_the_sandbox(attack):
    """One write of a line between the reply limit and a pipe's read size: refused as a line,
    not only when the host's buffer holds more than the limit."""
    session, result = attack.run(WRITE_EVERY_FD + f"to_every_fd(b'L' * {LIMITS.max_frame_bytes + 1000} + b'\\n')")
    assert result.lost_state and "a line of more than" in result.message, result
    answers_after(attack, session)


def test_a_stray_line_of_deeply_nested_json_is_dropped(attack):
    session, result = attack.run(WRITE_EVERY_FD + "to_every_fd(b'[' * 6000 + b']' * 6000 + b'\\n')\nprint('real')")
    assert result.status == "ok" and result.stdout.endswith("real\n"), result
    answers_after(attack, session)

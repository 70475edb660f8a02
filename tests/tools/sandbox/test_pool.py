"""The warm pool's bookkeeping, on a stand-in backend (the real backends' pools are exercised
by every test in test_session.py and test_attacks.py)."""

from __future__ import annotations

import time

from agentrl_tools.sandbox.channel import Channel
from agentrl_tools.sandbox.session import Limits, Pool


class StandInBackend:
    """Sandboxes that say they are ready at once; the test ends them when it likes."""

    name, workdir = "stand-in", "/tmp"

    def __init__(self) -> None:
        self.started: list[Channel] = []

    def start(self, args: list[str]) -> Channel:
        channel = Channel(kill=lambda: None)
        channel._stdout(b'{"ready": true}\n')
        self.started.append(channel)
        return channel


def wait_until(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_sandbox_that_died_while_waiting_is_never_handed_out():
    backend = StandInBackend()
    pool = Pool(backend, Limits(), size=1)
    try:
        wait_until(lambda: pool.ready == 1)
        waiting = backend.started[0]
        waiting._ended()  # its interpreter exits while it waits in the pool
        taken = pool.take()
        assert taken is not waiting and not taken.closed.is_set()
        wait_until(lambda: pool.ready == 1)  # and the pool refills
    finally:
        pool.close()

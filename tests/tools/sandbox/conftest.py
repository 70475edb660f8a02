"""Fixtures of the sandbox tests: pools of each real backend, and the host checked after each attack.

A backend that cannot run here is skipped with its one-line reason, unless
``AGENTRL_REQUIRE_SANDBOX=1`` (set by CI, which installs bubblewrap and Docker and starts
dockerd): then it fails, so the attack suite never passes by skipping.

``attack`` gives a test new sessions of a pool that keeps no sandbox waiting, and, after the
test has closed nothing, closes every session itself and then requires the host to be as it
was before the test (``hostcheck.HostState``): no process, container, mount, cgroup or file
left, memory and disk back.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator

import pytest
from hostcheck import HostState

from agentrl_tools.sandbox.session import CallResult, Pool, PythonSession
from helpers import SANDBOX_LIMITS, open_or_skip

__all__ = ["LIMITS", "open_or_skip"]
LIMITS = SANDBOX_LIMITS


@pytest.fixture(params=["bwrap", "docker"])
def pool(request) -> Iterator[Pool]:
    opened = open_or_skip(request.param)
    yield opened
    opened.close()


class Attack:
    """New sessions of ``pool``; ``run`` dedents the code and runs it in a new session."""

    def __init__(self, pool: Pool):
        self.pool, self.backend = pool, pool.backend.name
        self.sessions: list[PythonSession] = []

    def session(self) -> PythonSession:
        self.sessions.append(PythonSession(self.pool))
        return self.sessions[-1]

    def run(self, code: str) -> tuple[PythonSession, CallResult]:
        session = self.session()
        return session, session.run(textwrap.dedent(code))

    def close(self) -> None:
        for session in self.sessions:
            session.close()


@pytest.fixture(params=["bwrap", "docker"])
def attack(request) -> Iterator[Attack]:
    opened = open_or_skip(request.param, warm=0)  # no sandbox waits in the pool: the host must end empty
    before = HostState.now()
    made = Attack(opened)
    try:
        yield made
    finally:
        made.close()
        opened.close()
    HostState.now().assert_back_to(before)


def answers_after(attack: Attack, session: PythonSession) -> None:
    """The attacked session's next call answers, or says the session restarted and the call
    after it answers; and a fresh session answers."""
    after = session.run("print(6 * 7)")
    if after.lost_state:
        assert "restarted" in after.message, after
        after = session.run("print(6 * 7)")
    assert (after.status, after.stdout) == ("ok", "42\n"), after
    fresh = attack.session().run("print(6 * 7)")
    assert (fresh.status, fresh.stdout) == ("ok", "42\n"), fresh

"""Fixtures of the sandbox tests: a warm pool per real backend.

A backend that cannot run here is skipped with its one-line reason, unless
``AGENTRL_REQUIRE_SANDBOX=1`` (set by CI, which installs bubblewrap and Docker and starts
dockerd): then it fails, so the attack suite never passes by skipping.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentrl_tools.sandbox.session import Pool
from helpers import SANDBOX_LIMITS, open_or_skip

__all__ = ["LIMITS", "open_or_skip"]
LIMITS = SANDBOX_LIMITS


@pytest.fixture(params=["bwrap", "docker"])
def pool(request) -> Iterator[Pool]:
    opened = open_or_skip(request.param)
    yield opened
    opened.close()

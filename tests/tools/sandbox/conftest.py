"""Fixtures of the sandbox tests: a warm pool per real backend.

A backend that cannot run here is skipped with its one-line reason, unless
``AGENTRL_REQUIRE_SANDBOX=1`` (set by CI, which installs bubblewrap and Docker and starts
dockerd): then it fails, so the attack suite never passes by skipping.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from agentrl_tools.sandbox.backends import open_pool
from agentrl_tools.sandbox.image import build_image
from agentrl_tools.sandbox.session import Limits, Pool, SandboxUnavailable

LIMITS = Limits(timeout_s=3.0, memory_mb=256, processes=32, disk_mb=8, max_output_bytes=1000)


def open_or_skip(backend: str, limits: Limits = LIMITS, warm: int = 2) -> Pool:
    try:
        if backend == "docker":
            build_image(log=lambda _: None)
        return open_pool(backend, limits, warm=warm)
    except (SandboxUnavailable, RuntimeError) as exc:
        if os.environ.get("AGENTRL_REQUIRE_SANDBOX") == "1":
            pytest.fail(f"{backend} sandbox required but unavailable: {exc}")
        pytest.skip(f"{backend} sandbox unavailable: {exc}")


@pytest.fixture(params=["bwrap", "docker"])
def pool(request) -> Iterator[Pool]:
    opened = open_or_skip(request.param)
    yield opened
    opened.close()

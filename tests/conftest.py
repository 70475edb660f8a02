"""Shared fixtures: tiny models built once per test session, the GSM8K data when present."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from agentrl.models.tiny import make_tiny_model

GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k"

# search_qa writes its world's corpus and BM25 index to the cache dir: one per test session,
# never the user's ~/.cache (also inherited by the subprocesses tests start)
if "AGENTRL_CACHE_DIR" not in os.environ:
    os.environ["AGENTRL_CACHE_DIR"] = tempfile.mkdtemp(prefix="agentrl-test-cache-")
    atexit.register(shutil.rmtree, os.environ["AGENTRL_CACHE_DIR"], True)


@pytest.fixture(scope="session")
def tiny_random(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised tiny Qwen2 model with a ChatML template."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny_random"))


@pytest.fixture(scope="session")
def tiny_chatml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model warm-started on calculator traces, so it really calls the tool."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny_chatml"), warm_start_steps=150)


@pytest.fixture(scope="session")
def tiny_stamped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same recipe with a chat template that is not prefix-preserving."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny_stamped"), template="turn_stamped", warm_start_steps=150)


@pytest.fixture
def gsm8k_dir() -> Path:
    if not (GSM8K / "test.jsonl").is_file():
        pytest.skip("../shared/data/gsm8k is not present")
    return GSM8K


@pytest.fixture(autouse=True, scope="module")
def _no_warm_sandboxes_between_modules():
    """A module that trained or evaluated with the python tool leaves the process's shared
    sandbox pools (and their warm sandboxes) behind; they are closed before the next module,
    whose sandbox tests check that the host holds no sandbox they did not start."""
    yield
    from agentrl_tools.sandbox.backends import close_shared_pools

    close_shared_pools()

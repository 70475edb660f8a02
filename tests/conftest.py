"""Shared fixtures: tiny models built once per test session, the GSM8K data when present."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentrl.models.tiny import make_tiny_model

GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k"


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

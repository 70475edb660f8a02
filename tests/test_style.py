"""STYLE.md's mechanical rules: ruff lint and format, and type hints that mypy accepts.

The tools run from the interpreter running the tests (``python -m ruff``), so they are found in
a virtual environment that is not activated, as CI runs it."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def tool(name: str) -> list[str]:
    if importlib.util.find_spec(name) is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return [sys.executable, "-m", name]


def test_lint_and_format():
    lint = subprocess.run([*tool("ruff"), "check", str(ROOT)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout
    fmt = subprocess.run([*tool("ruff"), "format", "--check", str(ROOT)], capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout


def test_types():
    result = subprocess.run([*tool("mypy"), "agentrl", "envs", "tools"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout

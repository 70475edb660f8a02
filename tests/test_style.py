"""STYLE.md's mechanical rules: ruff lint and format, and type hints that mypy accepts."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed")
def test_lint_and_format():
    lint = subprocess.run(["ruff", "check", str(ROOT)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout
    fmt = subprocess.run(["ruff", "format", "--check", str(ROOT)], capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout


@pytest.mark.skipif(shutil.which("mypy") is None, reason="mypy is not installed")
def test_types():
    result = subprocess.run(["mypy", "agentrl", "envs", "tools"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout

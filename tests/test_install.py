"""agentrl installs as users install it: a wheel and an sdist built from the repository hold
every module and the default model, and the wheel, installed non-editable into a fresh venv,
runs the CLI from a neutral directory.

Slow (it resolves the dependencies into a new venv, with the newest transformers the
package allows); ``-m 'not install'`` leaves it out.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.install, pytest.mark.slow, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[1]
# source folder -> the package name it installs as
INSTALLED_AS = {"agentrl": "agentrl", "envs": "agentrl_envs", "tools": "agentrl_tools"}


def source_files() -> set[str]:
    """Every module, default-model file, model shape, recipe and viewer asset in the source tree, by its
    installed path."""
    files = set()
    for folder, package in INSTALLED_AS.items():
        for path in (ROOT / folder).rglob("*"):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            relative = path.relative_to(ROOT / folder).as_posix()
            shipped = relative.startswith(("models/default/", "models/shapes/", "recipes/", "view/static/"))
            if path.suffix == ".py" or shipped:
                files.add(f"{package}/{relative}")
    return files


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """An sdist, and a wheel built from that sdist (as ``python -m build`` does by default)."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], check=True, capture_output=True)
    return out


def only(folder: Path, pattern: str) -> Path:
    (found,) = folder.glob(pattern)
    return found


def test_every_subpackage_has_an_init():
    for folder in INSTALLED_AS:
        for directory in (ROOT / folder).rglob("*"):
            if directory.is_dir() and "__pycache__" not in directory.parts and any(directory.glob("*.py")):
                assert (directory / "__init__.py").exists(), f"{directory} has modules but no __init__.py"


def test_the_wheel_holds_every_module_and_the_default_model(dist):
    with zipfile.ZipFile(only(dist, "*.whl")) as wheel:
        held = {name for name in wheel.namelist() if not name.split("/")[0].endswith(".dist-info")}
    expected = source_files()
    assert "agentrl/models/default/model.safetensors" in expected
    assert "agentrl/recipes/tool_use_grpo.yaml" in expected
    assert "agentrl/models/shapes/qwen2.5-7b.json" in expected  # agentrl plan's shipped shapes
    assert {"agentrl/view/static/index.html", "agentrl/view/static/app.js"} <= expected  # agentrl view's page
    assert expected - held == set(), "left out of the wheel"
    assert held - expected == set(), "in the wheel but not in the source tree"


def test_the_sdist_holds_every_module_and_the_default_model(dist):
    with tarfile.open(only(dist, "*.tar.gz")) as sdist:
        names = sdist.getnames()
    top = names[0].split("/")[0]
    held = {name.removeprefix(f"{top}/") for name in names}
    expected = {f"{folder}/{path.split('/', 1)[1]}" for path in source_files() for folder in INSTALLED_AS
                if path.split("/")[0] == INSTALLED_AS[folder]}  # fmt: skip
    assert expected - held == set(), "left out of the sdist"


def test_the_installed_wheel_runs_from_a_neutral_directory(dist, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python, agentrl = env_dir / "bin" / "python", env_dir / "bin" / "agentrl"
    # the suite's own PYTHONPATH must not reach the new venv: pip would take a checkout's
    # egg-info on it for an installed agentrl and skip the wheel
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # torch is pinned to the build the suite runs on; everything else resolves as for a user.
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "torch==2.13.0", str(only(dist, "*.whl"))],
        check=True,
        capture_output=True,
        env=environ,
    )
    neutral = tmp_path / "elsewhere"
    neutral.mkdir()

    def run(*args: str) -> str:
        done = subprocess.run(args, cwd=neutral, env=environ, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "Traceback" not in done.stderr and "Warning" not in done.stderr, done.stderr[-3000:]
        return done.stdout

    where = run(str(python), "-c", "import agentrl, transformers; print(agentrl.__file__, transformers.__version__)")
    module, version = where.split()
    assert Path(module).is_relative_to(env_dir), module  # the installed copy, not the checkout
    print(f"installed agentrl at {module} with transformers {version}")

    assert "train" in run(str(agentrl), "--help")
    assert "grpo" in run(str(agentrl), "algos", "list")
    assert "math_tool" in run(str(agentrl), "envs", "list")
    assert "tool_use_grpo" in run(str(agentrl), "configs", "list")  # the recipes are installed, by name
    assert "env: tool_use" in run(str(agentrl), "configs", "show", "tool_use_grpo")
    shipped = run(str(agentrl), "plan", "--model", "qwen2.5-7b", "--lora", "--gradient-checkpointing")
    assert "7,615,616,512 parameters" in shipped and "\nfits:" in shipped  # the shapes ship
    run(
        str(agentrl), "train", "--env", "math", "--algo", "grpo", "--steps", "2", "--no-progress",
        "--set", "tasks_per_step=2", "--set", "group_size=2", "--set", "eval_tasks=2",
        "--set", "sampling.max_new_tokens=8", "--name", "smoke",
    )  # fmt: skip
    lines = (neutral / "runs" / "smoke" / "metrics.jsonl").read_text().splitlines()
    assert len([line for line in lines if '"step"' in line]) >= 2

"""A third party's package adds an environment through the entry-point group, for real:
built and installed by pip into a temporary folder, then seen by a fresh ``agentrl``."""

import os
import subprocess
import sys
import textwrap

import pytest

PYPROJECT = """
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "0.0.1"

[tool.setuptools]
py-modules = ["{module}"]

[project.entry-points."agentrl.envs"]
{env_name} = "{module}:EchoEnv"
"""

MODULE = '''
"""An environment from outside agentrl."""
from agentrl.envs import Env, EnvSpec, new_info
from agentrl.types import Task


class EchoEnv(Env):
    """Say the word you are given."""

    spec = EnvSpec(max_turns=1)
    check_actions = ("hello",)

    def tasks(self, split="test"):
        return [Task(id=f"echo-{i}", prompt=f"Say hello {i}", answer="hello") for i in range(5)]

    def reset(self, *, seed=None, options=None):
        self.task = (options or {}).get("task") or self.tasks()[0]
        self.done = False
        return [{"role": "user", "content": self.task.prompt}], new_info(0)

    def step(self, action):
        from agentrl.envs import EpisodeOverError
        if self.done:
            raise EpisodeOverError("over")
        self.done = True
        correct = float("hello" in action)
        return [], correct, True, False, new_info(1, reward_components={"correct": correct})
'''


def install(tmp_path, name, module, env_name):
    src = tmp_path / name
    src.mkdir()
    (src / "pyproject.toml").write_text(PYPROJECT.format(name=name, module=module, env_name=env_name))
    (src / f"{module}.py").write_text(textwrap.dedent(MODULE))
    site = tmp_path / f"site-{name}"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    return site


def agentrl(*args, sites=()):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*map(str, sites), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "agentrl.cli.main", *args], capture_output=True, text=True, env=env)


@pytest.mark.slow
def test_third_party_environment_is_listed_checked_and_evaluated(tmp_path, tiny_random):
    site = install(tmp_path, "agentrl-echo", "agentrl_echo", "echo")
    listed = agentrl("envs", "list", sites=[site])
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if line.startswith("echo "))
    assert "agentrl-echo" in line and "Say the word you are given." in line
    checked = agentrl("envs", "check", "echo", sites=[site])
    assert checked.returncode == 0 and "passed check_env" in checked.stdout, checked.stderr
    out = tmp_path / "eval"
    evaluated = agentrl(
        "eval",
        "--env",
        "echo",
        "--model",
        str(tiny_random),
        "-n",
        "3",
        "--max-new-tokens",
        "8",
        "--output",
        str(out),
        "--no-progress",
        sites=[site],
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert "accuracy" in evaluated.stdout
    assert len((out / "trajectories.jsonl").read_text().splitlines()) == 3


@pytest.mark.slow
def test_a_name_claimed_twice_names_both_packages(tmp_path):
    site = install(tmp_path, "agentrl-clash", "agentrl_clash", "math")
    listed = agentrl("envs", "list", sites=[site])
    assert listed.returncode == 2
    error = listed.stderr.strip()
    assert len(error.splitlines()) == 1
    assert "'math' is registered twice" in error and "agentrl-clash" in error and "by agentrl " in error

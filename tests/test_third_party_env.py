"""A third party's package adds an environment through the entry-point group, for real:
built and installed by pip into a temporary folder, then seen by a fresh ``agentrl``."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

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

    rollout_spec = EnvSpec(max_turns=1)
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
def test_a_name_claimed_twice_disables_that_name_only(tmp_path):
    site = install(tmp_path, "agentrl-clash", "agentrl_clash", "math")
    listed = agentrl("envs", "list", sites=[site])
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr.strip().splitlines() == [
        "agentrl: warning: environment 'math' is registered twice: by agentrl (agentrl_envs.math_env:MathEnv) "
        "and by agentrl-clash (agentrl_clash:EchoEnv); uninstall one of them (until then 'math' is disabled)"
    ]
    listed_names = [line.split()[0] for line in listed.stdout.splitlines()[1:]]
    assert "math_tool" in listed_names and "math" not in listed_names
    checked = agentrl("envs", "check", "math", sites=[site])
    assert checked.returncode == 2
    error = checked.stderr.strip().splitlines()[-1]
    assert error.startswith("agentrl: error: environment 'math' is registered twice")
    assert "by agentrl (" in error and "by agentrl-clash (" in error


MY_ENVS = """
from agentrl.envs import Env, EnvSpec, EpisodeOverError, new_info
from agentrl.types import Task


class Echo(Env):
    \"\"\"Say the word you are given.\"\"\"

    rollout_spec = EnvSpec(max_turns=1)

    def tasks(self, split="test"):
        return [Task(id=f"echo-{i}", prompt=f"Say hello {i}", answer="hello") for i in range(100)]

    def reset(self, *, seed=None, options=None):
        self.task, self.done = (options or {}).get("task") or self.tasks()[0], False
        return [{"role": "user", "content": self.task.prompt}], new_info(0)

    def step(self, text):
        if self.done:
            raise EpisodeOverError("reset first")
        self.done = True
        reward = float(self.task.answer in text)
        return [], reward, True, False, new_info(1, reward_components={"correct": reward})
"""


def test_module_attr_finds_a_file_in_the_current_directory_from_the_agentrl_script(tmp_path):
    script = Path(sys.executable).parent / "agentrl"
    assert script.is_file(), "the agentrl console script is installed beside the interpreter"
    (tmp_path / "my_envs.py").write_text(MY_ENVS)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # only the current directory can find it

    def run(*args):
        return subprocess.run([str(script), *args], capture_output=True, text=True, cwd=tmp_path, env=env)

    checked = run("envs", "check", "my_envs:Echo")
    assert checked.returncode == 0 and "my_envs:Echo: passed check_env" in checked.stdout, checked.stderr
    rejected = run("envs", "check", "my_envs:Echo", "--env-arg", "nonsense=1")
    assert rejected.returncode == 2
    assert rejected.stderr.strip().splitlines() == [
        "agentrl: error: environment 'my_envs:Echo' rejected its options (nonsense='1'): "
        "TypeError: Echo() takes no arguments"
    ]
    missing = run("envs", "check", "their_envs:Echo")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        "agentrl: error: cannot load environment 'their_envs:Echo': no module named 'their_envs' in the "
        "installed packages or the current directory"
    ]

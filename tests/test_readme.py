"""The README's commands and example are the ones CI and users run."""

import re
from pathlib import Path

from agentrl.envs import check_env

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def bash_blocks():
    return re.findall(r"```bash\n(.*?)```", README, re.DOTALL)


def test_quick_start_is_two_commands_and_ci_runs_the_second():
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", quick, re.DOTALL)
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    assert "agentrl train --env math_tool --algo vcpo" in commands[0]
    assert commands[1] in (ROOT / ".ci" / "run").read_text()


def test_environment_example_passes_check_env():
    code = re.search(r"```python\n(# my_envs.py.*?)```", README, re.DOTALL).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    check_env(namespace["Echo"])

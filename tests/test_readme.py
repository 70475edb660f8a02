"""The README is a front page, and its commands are the ones CI and users run."""

import re
from pathlib import Path

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


def test_the_readme_is_a_front_page():
    """At most about 250 lines, with the sections a newcomer looks for; reference material
    lives in docs/."""
    assert len(README.splitlines()) <= 250
    sections = re.findall(r"^## (.+)$", README, re.MULTILINE)
    for wanted in ("Why agentrl", "Status", "Quick start", "Core concepts", "Common tasks", "Documentation"):
        assert wanted in sections, f"the README has no '## {wanted}' section"
    assert "source .venv/bin/activate" in README
    assert "No GPU path has run on a GPU yet" in " ".join(README.split()), "the status must say what has not run"
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"(docs/{page.name}" in README, f"the README does not link docs/{page.name}"

"""The documentation matches the repository: every registered objective has its section in
docs/algorithms.md, and the README and docs point only at files that exist."""

import re
from pathlib import Path

import pytest

from agentrl.algos import names

ROOT = Path(__file__).resolve().parents[1]
ALGORITHMS = ROOT / "docs" / "algorithms.md"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP_LEVEL = ("agentrl", "envs", "tools", "configs", "tests", "scripts", "docs")


def headings(text: str, levels: str = "2") -> list[str]:
    """The headings of a Markdown page at ``levels`` (a regex quantifier for the number of
    ``#``: "2" for sections, "1,6" for all), outside fenced code."""
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    return [m.group(1).strip() for m in re.finditer(rf"^#{{{levels}}} (.+)$", text, flags=re.MULTILINE)]


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation other than - and _ dropped,
    spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {anchor(h) for h in headings(page.read_text(), "1,6")}


def links(text: str) -> list[str]:
    """Targets of inline Markdown links ``[text](target)``."""
    return re.findall(r"\[[^\]]*\]\(([^)\s]+)\)", text)


def repo_paths(text: str) -> list[str]:
    """Repository paths written as code spans (``agentrl/algos/vcpo.py``), without placeholders."""
    spans = re.findall(r"`([^`\s]+)`", text)
    return [s for s in spans if s.split("/")[0] in TOP_LEVEL and "/" in s and not re.search(r"[<>{}*]", s)]


def test_every_registered_objective_has_a_section():
    sections = set(headings(ALGORITHMS.read_text()))
    missing = [name for name in names() if name not in sections]
    assert not missing, f"docs/algorithms.md has no '## <name>' section for {missing}"


def test_sections_named_like_objectives_are_registered():
    """A section named like an objective (a lower-case identifier) belongs to a registered one,
    so a renamed or removed objective does not leave a stale section behind."""
    stale = [h for h in headings(ALGORITHMS.read_text()) if re.fullmatch(r"[a-z][a-z0-9_]*", h)]
    assert sorted(set(stale) - set(names())) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_point_at_existing_files_and_anchors(page):
    text = page.read_text()
    broken = []
    for target in links(text):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, fragment = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists() or (fragment and file.suffix == ".md" and fragment not in anchors(file)):
            broken.append(target)
    assert not broken, f"{page.name} links to what does not exist: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_named_repository_paths_exist(page):
    missing = [p for p in repo_paths(page.read_text()) if not (ROOT / p).exists()]
    assert not missing, f"{page.name} names paths that do not exist: {missing}"


def test_the_layout_lists_every_script():
    development = (ROOT / "docs" / "development.md").read_text()
    layout = development.split("## Layout", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"[\w]+\.py", layout.split("scripts/", 1)[1]))
    present = {p.name for p in (ROOT / "scripts").glob("*.py")}
    assert listed == present, f"Layout lists {sorted(listed)}, scripts/ holds {sorted(present)}"


def test_helpers_catch_what_they_look_for():
    """The parsers above find a link, an anchor, a path and a heading in a made-up page."""
    page = "## grpo\n\n```\n## not a heading\n```\nSee [it](docs/x.md#a-b) and `agentrl/nowhere.py`, `runs/<name>/`."
    assert headings(page) == ["grpo"]
    assert headings("# top\n## grpo\n### Micro-batches\n####### seven", "1,6") == ["top", "grpo", "Micro-batches"]
    assert links(page) == ["docs/x.md#a-b"]
    assert repo_paths(page) == ["agentrl/nowhere.py"]
    assert anchor("Where the code differs: from the brief") == "where-the-code-differs-from-the-brief"
    assert anchor("dr_grpo") == "dr_grpo"


def test_the_sandbox_limits_are_documented_with_their_real_defaults():
    """docs/sandbox.md's table of limits and docs/tools.md's list give the defaults the code has."""
    import dataclasses

    from agentrl_tools.python_tool import PythonToolOptions

    defaults = {f.name: f.default for f in dataclasses.fields(PythonToolOptions)}
    table = re.findall(r"^\| `(\w+)` \| `?([\w.]+)`? \|", (ROOT / "docs" / "sandbox.md").read_text(), re.MULTILINE)
    assert {name: value for name, value in table} == {name: str(value) for name, value in defaults.items()}
    tools = (ROOT / "docs" / "tools.md").read_text()
    for name, value in defaults.items():
        if name != "sandbox":
            shown = f"{value:g}" if name == "timeout_s" else str(value)
            assert f"`{name}` ({shown}" in tools, f"docs/tools.md does not give {name}'s default {shown}"

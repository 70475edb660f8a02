"""The tool registry: built-ins and third parties' tools through ``agentrl.tools``, one-line errors."""

import asyncio
import os
import subprocess
import sys
import textwrap
from typing import ClassVar

import pytest

from agentrl.cli.main import main
from agentrl.errors import AgentRLError, UnknownNameError
from agentrl_tools.base import ToolCall, arun_tool, run_tool
from agentrl_tools.calculator import Calculator
from agentrl_tools.registry import load, make_tool, names
from agentrl_tools.search.tool import SearchTool


class Shout:
    """A tool defined outside the registry, loaded by path."""

    name, description, primary_argument = "shout", "Upper-case the text.", "text"
    schema: ClassVar[dict] = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}

    def __init__(self, suffix: str = "!"):
        self.suffix = suffix

    def __call__(self, text: str) -> str:
        return text.upper() + self.suffix


class NoSchema:
    name, description, primary_argument = "broken", "lacks a schema", "x"

    def __call__(self, x):
        return x


def test_built_ins_are_registered():
    assert {"calculator", "python", "search"} <= set(names())
    assert load("calculator") is Calculator and load("search") is SearchTool
    assert run_tool(make_tool("calculator"), ToolCall("calculator", {"expression": "6*7"})).output == "42"


def test_a_tool_by_path_with_options():
    tool = make_tool(f"{__name__}:Shout", suffix="?")
    assert run_tool(tool, ToolCall("shout", {"text": "hi"})).output == "HI?"


def test_errors_are_one_line():
    with pytest.raises(UnknownNameError, match=r"^unknown tool 'nope'; known: .*calculator"):
        make_tool("nope")
    with pytest.raises(AgentRLError, match=r"^tool '.*:Shout' rejected its options \(loud=True\): ") as err:
        make_tool(f"{__name__}:Shout", loud=True)
    assert "\n" not in str(err.value)
    with pytest.raises(AgentRLError, match=r"is not a tool: it lacks schema$"):
        make_tool(f"{__name__}:NoSchema")


def test_search_from_options(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"id": "1", "contents": "Paris\\nParis is the capital of France."}\n')
    tool = make_tool("search", retriever="local", corpus=str(corpus), topk=1)
    result = run_tool(tool, ToolCall("search", {"query": "capital of France"}))
    assert result.status == "error" and "arun_tool" in result.output  # it waits: called through arun_tool
    found = asyncio.run(arun_tool(tool, ToolCall("search", {"query": "capital of France"})))
    assert found.status == "ok" and "Paris is the capital" in found.output


PYPROJECT = """
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "agentrl-reverse"
version = "0.0.1"

[tool.setuptools]
py-modules = ["agentrl_reverse"]

[project.entry-points."agentrl.tools"]
reverse = "agentrl_reverse:Reverse"
"""

MODULE = '''
class Reverse:
    """A tool from outside agentrl."""
    name, description, primary_argument = "reverse", "Reverse the text.", "text"
    schema = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}

    def __call__(self, text):
        return text[::-1]
'''


@pytest.mark.slow
def test_a_third_party_tool_through_the_entry_point_group(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "pyproject.toml").write_text(PYPROJECT)
    (src / "agentrl_reverse.py").write_text(textwrap.dedent(MODULE))
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*pip, "--target", str(site), str(src)], check=True, capture_output=True)
    code = (
        "from agentrl_tools.registry import entries, make_tool\n"
        "print(entries()['reverse'].package, make_tool('reverse')(text='abc'))"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["agentrl-reverse", "cba"]


def test_tools_list(capsys):
    assert main(["tools", "list"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split() == ["NAME", "PACKAGE", "DESCRIPTION"]
    assert [r.split()[0] for r in rows[1:4]] == ["calculator", "python", "search"]
    assert all(r.split()[1] == "agentrl" for r in rows[1:4])

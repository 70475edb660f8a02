"""BFCL function-calling tasks: the checker against hand-made answers, and the real package's
data through ``tool_use`` (``pip install --no-deps bfcl-eval``; the README's test command does)."""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, distribution

import pytest

from agentrl.envs import make
from agentrl.tasks import TaskSourceError
from agentrl_envs.bfcl import as_tool_schema, bfcl_tasks, check_calls
from agentrl_tools.base import ToolCall

TRIANGLE = [{"area": {"base": [10], "height": [5], "unit": ["units", ""]}}]
PARALLEL = [
    {"play": {"artist": ["Taylor Swift"], "minutes": [20]}},
    {"play": {"artist": ["Maroon 5"], "minutes": [15]}},
]


def test_the_checker():
    assert check_calls([ToolCall("area", {"base": 10, "height": 5})], TRIANGLE)  # an optional parameter left out
    assert check_calls([ToolCall("area", {"base": 10.0, "height": 5, "unit": "Units"})], TRIANGLE)
    assert not check_calls([ToolCall("area", {"base": 10, "height": 6})], TRIANGLE)  # a wrong value
    assert not check_calls([ToolCall("area", {"base": 10})], TRIANGLE)  # a required one missing
    assert not check_calls([ToolCall("area", {"base": 10, "height": 5, "color": "red"})], TRIANGLE)  # one too many
    assert not check_calls([ToolCall("volume", {"base": 10, "height": 5})], TRIANGLE)  # the wrong function
    assert not check_calls([ToolCall("area", {"base": "10", "height": 5})], TRIANGLE)  # a string is not a number
    swift, maroon = (
        ToolCall("play", {"artist": "taylor swift", "minutes": 20}),
        ToolCall("play", {"artist": "Maroon-5", "minutes": 15}),
    )
    assert check_calls([maroon, swift], PARALLEL) and check_calls([swift, maroon], PARALLEL)  # any order
    assert not check_calls([swift], PARALLEL) and not check_calls([swift, swift], PARALLEL)
    nested = [{"query": {"conditions": [[{"field": ["age"], "value": ["25"]}]], "limit": ["", 0]}}]
    assert check_calls([ToolCall("query", {"conditions": [{"field": "age", "value": "25"}]})], nested)
    assert not check_calls([ToolCall("query", {"conditions": [{"field": "age", "value": "26"}]})], nested)
    assert check_calls([ToolCall("flag", {"on": True})], [{"flag": {"on": [True]}}])
    assert not check_calls([ToolCall("flag", {"on": 1})], [{"flag": {"on": [True]}}])  # 1 is not True


def test_bfcl_types_become_json_schema_types():
    schema = as_tool_schema(
        {
            "name": "f",
            "description": "d",
            "parameters": {"type": "dict", "properties": {"x": {"type": "float"}, "y": {"type": "any"}}},
        }
    )
    assert schema["parameters"] == {"type": "object", "properties": {"x": {"type": "number"}, "y": {}}}


def _installed() -> bool:
    try:
        distribution("bfcl-eval")
    except PackageNotFoundError:
        return False
    return True


needs_bfcl = pytest.mark.skipif(not _installed(), reason="bfcl-eval is not installed (pip install --no-deps bfcl-eval)")


@needs_bfcl
def test_the_real_data_splits_and_errors():
    train, test = bfcl_tasks("simple_python", "train"), bfcl_tasks("simple_python", "test")
    assert len(train) == 4 * len(test) and not {t.id for t in train} & {t.id for t in test}
    assert all(t.meta["functions"] and t.meta["ground_truth"] for t in test)
    with pytest.raises(TaskSourceError, match="unknown BFCL category 'nope'"):
        bfcl_tasks("nope", "test")
    with pytest.raises(TaskSourceError, match="splits train and test"):
        bfcl_tasks("parallel", "validation")


@needs_bfcl
def test_tool_use_grades_a_turn_of_calls_against_bfcl():
    env = make("tool_use", source="bfcl:parallel", tool_format="hermes")
    messages, _ = env.reset(options={"task_index": 0, "split": "test"})
    gt = env.task.meta["ground_truth"]
    assert json.dumps(env.task.meta["functions"]) in messages[0]["content"]
    calls = [
        {"name": name, "arguments": {k: v[0] for k, v in params.items() if v[0] != ""}}
        for g in gt
        for name, params in g.items()
    ]
    right = "".join(f"<tool_call>{json.dumps(c)}</tool_call>" for c in reversed(calls))
    obs, reward, terminated, _, info = env.step(right)
    assert (obs, reward, terminated) == ([], 1.0, True) and len(info["tool_calls"]) == len(gt)
    env.reset(options={"task_index": 0, "split": "test"})
    assert env.step("I would play some songs.")[4]["parse_error"] == "no_action"
    _, reward, terminated, _, _ = env.step(f"<tool_call>{json.dumps(calls[0])}</tool_call>")  # one call of two
    assert (reward, terminated) == (0.0, True)
    env.reset(options={"task_index": 0, "split": "test"})
    assert env.step('<tool_call>{"name": "nope", "arguments": {}}</tool_call>')[4]["parse_error"] == "unknown_tool"

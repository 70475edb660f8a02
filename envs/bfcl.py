"""Function-calling tasks from the Berkeley Function Calling Leaderboard (the ``bfcl-eval`` package).

Owns reading BFCL's question and possible-answer files from the *installed* ``bfcl-eval``
package (located through its metadata, never imported and never copied into this repository),
turning them into tasks, and the checker that grades a turn's calls against the possible
answers. Categories: ``simple_python``, ``multiple``, ``parallel``, ``parallel_multiple`` and
their ``live_`` versions (one user turn, calls graded, nothing executed). Splits: BFCL is one
set; every fifth task (by position) is ``test``, the rest ``train``.

The checker follows BFCL's AST matching: the calls must match the ground truth's calls one to
one, in any order; each call names the right function, gives every required parameter (one
whose possible answers lack ``""``), no parameter the answer does not list, and values among
the possible answers: numbers compare as numbers (``1 == 1.0``), strings after lower-casing
and dropping spaces and ``,./-_*^`` (BFCL's ``standardize_string``), lists and dicts element by
element.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

from agentrl.tasks import TaskSourceError
from agentrl.types import Task
from agentrl_tools.base import ToolCall, ToolInputError

CATEGORIES = (
    "simple_python",
    "multiple",
    "parallel",
    "parallel_multiple",
    "live_simple",
    "live_multiple",
    "live_parallel",
    "live_parallel_multiple",
)
_TYPES = {"dict": "object", "float": "number", "tuple": "array", "any": None}
_STRIP = re.compile(r"[ ,./\-_*^]")


@functools.cache
def bfcl_tasks(category: str, split: str) -> tuple[Task, ...]:
    """The tasks of ``category`` in ``split`` (``train`` or ``test``)."""
    if category not in CATEGORIES:
        raise TaskSourceError(f"unknown BFCL category {category!r}; known: {', '.join(CATEGORIES)}")
    if split not in ("train", "test"):
        raise TaskSourceError(f"BFCL tasks have the splits train and test, not {split!r}")
    questions = _rows(f"bfcl_eval/data/BFCL_v4_{category}.json")
    answers = {
        row["id"]: row["ground_truth"] for row in _rows(f"bfcl_eval/data/possible_answer/BFCL_v4_{category}.json")
    }
    tasks = []
    for position, row in enumerate(questions):
        if (position % 5 == 0) != (split == "test") or row["id"] not in answers:
            continue
        user = [m["content"] for m in row["question"][0] if m["role"] == "user"]
        functions = [as_tool_schema(f) for f in row["function"]]
        meta = {"functions": functions, "ground_truth": answers[row["id"]], "category": category}
        tasks.append(Task(id=row["id"], prompt="\n".join(user), answer=json.dumps(answers[row["id"]]), meta=meta))
    return tuple(tasks)


def _rows(path: str) -> list[dict[str, Any]]:
    try:
        file = Path(str(distribution("bfcl-eval").locate_file(path)))
    except PackageNotFoundError:
        raise TaskSourceError("BFCL tasks need the bfcl-eval package: pip install --no-deps bfcl-eval") from None
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise TaskSourceError(f"bfcl-eval has no {path}: {exc}") from None
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def as_tool_schema(function: dict[str, Any]) -> dict[str, Any]:
    """A BFCL function description with JSON-schema types (BFCL writes ``dict``, ``float``...)."""
    return {
        "name": function["name"],
        "description": function.get("description", ""),
        "parameters": _json_types(function.get("parameters", {"type": "dict", "properties": {}})),
    }


def _json_types(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_json_types(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _json_types(v) for k, v in schema.items()}
    if isinstance(out.get("type"), str) and out["type"] in _TYPES:
        mapped = _TYPES[out["type"]]
        if mapped is None:
            del out["type"]
        else:
            out["type"] = mapped
    return out


@dataclass(frozen=True)
class FunctionSpec:
    """A BFCL function as a tool the call parser knows (name and JSON schema). It is never
    run: the episode's calls are graded against the possible answers."""

    name: str
    description: str
    schema: dict[str, Any]
    primary_argument: str = ""

    def __call__(self, **arguments: Any) -> str:
        raise ToolInputError("BFCL functions are graded, not run")

    @classmethod
    def of(cls, function: dict[str, Any]) -> FunctionSpec:
        schema = {"type": "object", "properties": {}, **function["parameters"]}
        return cls(function["name"], function["description"], schema)


def check_calls(calls: Sequence[ToolCall], ground_truth: Sequence[dict[str, dict[str, list[Any]]]]) -> bool:
    """Whether ``calls`` match the possible answers one to one, in any order."""
    if len(calls) != len(ground_truth):
        return False
    return _match(list(calls), list(ground_truth))


def _match(calls: list[ToolCall], answers: list[dict[str, dict[str, list[Any]]]]) -> bool:
    if not calls:
        return True
    first, rest = calls[0], calls[1:]
    for i, answer in enumerate(answers):
        if _call_ok(first, answer) and _match(rest, answers[:i] + answers[i + 1 :]):
            return True
    return False


def _call_ok(call: ToolCall, answer: dict[str, dict[str, list[Any]]]) -> bool:
    (name, params), *_ = answer.items()
    if call.name != name:
        return False
    if any(key not in params for key in call.arguments):
        return False
    for key, possible in params.items():
        if key not in call.arguments:
            if "" not in possible:
                return False
        elif not any(_same(call.arguments[key], p) for p in possible if p != ""):
            return False
    return True


def _same(value: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or isinstance(value, bool):
        return value is expected or (isinstance(value, bool) and value == expected and type(expected) is bool)
    if isinstance(expected, (int, float)) and isinstance(value, (int, float)):
        return float(value) == float(expected)
    if isinstance(expected, str) and isinstance(value, str):
        return _STRIP.sub("", value.lower()) == _STRIP.sub("", expected.lower())
    if isinstance(expected, list) and isinstance(value, (list, tuple)):
        return len(value) == len(expected) and all(_same(v, e) for v, e in zip(value, expected, strict=True))
    if isinstance(expected, dict) and isinstance(value, dict):
        if any(k not in expected for k in value):
            return False
        return all(
            (k not in value and "" in (e if isinstance(e, list) else [e]))
            or (k in value and any(_same(value[k], x) for x in (e if isinstance(e, list) else [e]) if x != ""))
            for k, e in expected.items()
        )
    return bool(value == expected)

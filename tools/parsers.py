"""Parse tool calls out of model text.

Two formats:

- ``xml``: the tag names the tool and its body is the tool's primary argument,
  ``<calculator>12*7</calculator>``. Tags listed in ``ignore_tags`` (``think``,
  ``answer``) are prose, not calls.
- ``hermes``: ``<tool_call>{"name": "calculator", "arguments": {"expression": "12*7"}}</tool_call>``.

A parser never raises: malformed input comes back as a ``ParsedCalls`` with ``error`` set to
one of ``PARSE_ERRORS`` and a one-line ``message`` the environment shows the model. When any
call in the text is malformed, no call is returned, so a half-valid action never runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentrl_tools.base import Tool, ToolCall

PARSE_ERRORS = ("malformed_call", "invalid_json", "unknown_tool", "bad_args")
FORMATS = ("xml", "hermes")

_XML_CALL = re.compile(r"<([A-Za-z_][\w\-]*)>(.*?)</\1\s*>", re.DOTALL)
_XML_OPEN = re.compile(r"<([A-Za-z_][\w\-]*)>")
_HERMES_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


@dataclass(frozen=True)
class ParsedCalls:
    """The calls found in one model turn, or the first reason they could not be parsed."""

    calls: list[ToolCall] = field(default_factory=list)
    error: str | None = None
    message: str | None = None

    @classmethod
    def failed(cls, error: str, message: str) -> ParsedCalls:
        assert error in PARSE_ERRORS, error
        return cls(calls=[], error=error, message=message)


def parse_tool_calls(text: str, tools: Mapping[str, Tool], fmt: str = "xml") -> ParsedCalls:
    """Parse ``text`` in format ``fmt`` (one of ``FORMATS``) against the ``tools`` by name."""
    if fmt == "xml":
        return parse_xml(text, tools)
    if fmt == "hermes":
        return parse_hermes(text, tools)
    raise ValueError(f"unknown tool-call format {fmt!r}; expected one of {FORMATS}")


def parse_xml(text: str, tools: Mapping[str, Tool], ignore_tags: Sequence[str] = ("think", "answer")) -> ParsedCalls:
    calls: list[ToolCall] = []
    for match in _XML_CALL.finditer(text):
        name, body = match.group(1), match.group(2).strip()
        if name in ignore_tags:
            continue
        if name not in tools:
            return ParsedCalls.failed("unknown_tool", _unknown(name, tools))
        if not body:
            return ParsedCalls.failed("bad_args", f"<{name}> needs a non-empty body")
        calls.append(ToolCall(name, {tools[name].primary_argument: body}))
    closed = {m.start() for m in _XML_CALL.finditer(text)}
    for match in _XML_OPEN.finditer(text):
        if match.group(1) in tools and match.start() not in closed:
            name = match.group(1)
            return ParsedCalls.failed("malformed_call", f"<{name}> is not closed by </{name}>")
    return ParsedCalls(calls=calls)


def parse_hermes(text: str, tools: Mapping[str, Tool]) -> ParsedCalls:
    calls: list[ToolCall] = []
    for match in _HERMES_CALL.finditer(text):
        try:
            payload = json.loads(match.group(1))
        except json.JSONDecodeError as exc:
            return ParsedCalls.failed("invalid_json", f"tool call is not valid JSON ({exc.msg})")
        call = _hermes_call(payload, tools)
        if isinstance(call, ParsedCalls):
            return call
        calls.append(call)
    if text.count("<tool_call>") != text.count("</tool_call>"):
        return ParsedCalls.failed("malformed_call", "<tool_call> is not closed by </tool_call>")
    return ParsedCalls(calls=calls)


def _hermes_call(payload: Any, tools: Mapping[str, Tool]) -> ToolCall | ParsedCalls:
    if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
        return ParsedCalls.failed("bad_args", 'a tool call is a JSON object with a string "name"')
    name, arguments = payload["name"], payload.get("arguments", {})
    if name not in tools:
        return ParsedCalls.failed("unknown_tool", _unknown(name, tools))
    if isinstance(arguments, str):  # some models emit the arguments JSON-encoded twice
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as exc:
            return ParsedCalls.failed("invalid_json", f"arguments are not valid JSON ({exc.msg})")
    problem = _schema_problem(arguments, tools[name].schema)
    if problem:
        return ParsedCalls.failed("bad_args", f"{name}: {problem}")
    return ToolCall(name, arguments)


def _schema_problem(arguments: Any, schema: Mapping[str, Any]) -> str | None:
    """The first way ``arguments`` breaks the (flat) object ``schema``, or None."""
    if not isinstance(arguments, dict):
        return '"arguments" must be a JSON object'
    properties = schema.get("properties", {})
    for key in schema.get("required", []):
        if key not in arguments:
            return f'missing argument "{key}"'
    for key, value in arguments.items():
        if key not in properties:
            return f'unexpected argument "{key}" (expected {sorted(properties)})'
        allowed = _JSON_TYPES.get(properties[key].get("type", ""), (object,))
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            return f'argument "{key}" must be of type {properties[key].get("type")}'
    return None


def _unknown(name: str, tools: Mapping[str, Tool]) -> str:
    return f"unknown tool {name!r}; available: {', '.join(sorted(tools))}"

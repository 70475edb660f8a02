"""One model turn of a tool-using environment, the same for every built-in one.

Owns the order a turn is read in and the observation of each outcome: empty text
(``empty_output``, a ``user`` hint); a call that cannot be parsed (``malformed_call``,
``invalid_json``, ``unknown_tool``, ``bad_args``: a ``tool`` message ``Error: ...``, and no
call runs); more calls than allowed (``too_many_calls``); calls, run and turned into ``tool``
messages with ``tool_calls``, ``tool_status``, ``tool_latency_s`` and ``service_failures`` in
the info; or no call
at all, which is the environment's to grade (``Turn.final``). Calls run concurrently (a
retriever merges them into one request) unless ``in_order``, which a stateful tool (a Python
session) needs. ``reopen_tools`` gives an episode a fresh set of tools and ``close_tools``
releases one. Must not know about answers, grading or rewards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentrl.types import Message
from agentrl_tools.base import Tool, ToolCall, ToolResult, arun_tool, worst_status
from agentrl_tools.parsers import parse_tool_calls
from agentrl_tools.registry import make_tool


@dataclass(frozen=True)
class Turn:
    """What one action came to. ``final`` is the action's text when it made no call and no
    parse error (the environment grades it); otherwise ``messages`` and ``info`` are the
    observation and its info fields, and the episode goes on."""

    messages: list[Message] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    final: str | None = None


async def take_turn(
    action: str,
    tools: Mapping[str, Tool],
    fmt: str,
    *,
    max_calls: int,
    too_many: str,
    empty_hint: str,
    in_order: bool = False,
) -> Turn:
    """Read ``action`` (tool-call format ``fmt``) against ``tools``; run at most ``max_calls``
    calls (more is ``too_many_calls`` with the message ``too_many``)."""
    if not action.strip():
        return Turn([{"role": "user", "content": empty_hint}], {"parse_error": "empty_output"})
    parsed = parse_tool_calls(action, tools, fmt)
    if parsed.error:
        return Turn([{"role": "tool", "content": f"Error: {parsed.message}"}], {"parse_error": parsed.error})
    if len(parsed.calls) > max_calls:
        return Turn([{"role": "tool", "content": f"Error: {too_many}"}], {"parse_error": "too_many_calls"})
    if not parsed.calls:
        return Turn(final=action)
    if in_order:
        results = [await arun_tool(tools[call.name], call) for call in parsed.calls]
    else:
        results = list(await asyncio.gather(*(arun_tool(tools[call.name], call) for call in parsed.calls)))
    messages, info = tool_turn(parsed.calls, results)
    return Turn(messages, info)


def tool_turn(calls: Sequence[ToolCall], results: Sequence[ToolResult]) -> tuple[list[Message], dict[str, Any]]:
    """A turn's tool results as ``tool`` messages, and the ``info`` fields they set: the calls,
    the worst status, the time spent and the failures that were a service's."""
    messages: list[Message] = [{"role": "tool", "content": r.output} for r in results]
    info = {
        "tool_calls": [{"name": c.name, "arguments": c.arguments} for c in calls],
        "tool_status": worst_status(r.status for r in results),
        "tool_latency_s": sum(r.latency_s for r in results),
        "service_failures": [
            {"tool": c.name, "service": r.service, "kind": r.status}
            for c, r in zip(calls, results, strict=True)
            if r.service is not None and r.status != "ok"
        ],
    }
    return messages, info


def close_tools(tools: Mapping[str, Tool]) -> None:
    """Close every tool that holds something (a sandbox session); the others have no ``close``."""
    for tool in tools.values():
        closer = getattr(tool, "close", None)
        if closer is not None:
            closer()


def reopen_tools(previous: Mapping[str, Tool], options: Mapping[str, Mapping[str, Any]]) -> dict[str, Tool]:
    """Close ``previous`` and make the tools named in ``options`` from the registry, each with
    its options: an episode's fresh set (a new Python session never sees the last episode's)."""
    close_tools(previous)
    return {name: make_tool(name, **opts) for name, opts in options.items()}

"""The tool contract: a name, a JSON schema and a call that returns text.

Owns ``Tool``, ``ToolCall`` and ``ToolResult`` and the one place that times a call and
turns an exception into an error result (``run_tool``, and ``arun_tool`` for tools that
wait on I/O and define ``acall``). Statuses: ``ok``; ``error`` (refused input, a tool bug, a
service that answered badly); ``timeout``; ``unavailable`` (a service that could not be
reached). Whose fault a failure is travels apart from its status: a tool that stands in front
of a service (a retriever, a sandbox) names it in ``ToolResult.service`` when the failure is
the service's (it timed out, could not be reached, answered 5xx, 4xx or unreadably), and leaves
it ``None`` when the model's call was at fault (a refused input, code that raised or ran too
long). The trainer's stop rule and ``agentrl eval`` count only the former. Must not know about
environments, tokens or chat templates.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

ToolStatus = Literal["ok", "error", "timeout", "unavailable"]
STATUS_RANK: dict[str, int] = {"ok": 0, "error": 1, "timeout": 2, "unavailable": 3}
"""How bad a status is: a turn with several calls reports the worst (``worst_status``)."""


@dataclass(frozen=True)
class ToolCall:
    """A parsed request to call ``name`` with ``arguments``."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolResult:
    """What a tool call produced. ``output`` is shown to the model as the observation;
    ``service`` names the service at fault (``search at http://host:8000``) on a failure that
    is the service's, not the model's call's."""

    status: ToolStatus
    output: str
    latency_s: float = 0.0
    service: str | None = None


class Tool(Protocol):
    """A callable tool. ``schema`` is the JSON schema of its arguments (an ``object``);
    ``primary_argument`` names the argument that the XML-tag call format fills with the
    tag's body (``<calculator>2+3</calculator>`` -> ``{"expression": "2+3"}``)."""

    name: str
    description: str
    schema: dict[str, Any]
    primary_argument: str

    def __call__(self, **arguments: Any) -> str: ...


class ToolInputError(ValueError):
    """Raised by a tool for arguments it refuses; the message becomes the observation."""


def run_tool(tool: Tool, call: ToolCall) -> ToolResult:
    """Call ``tool`` and time it. A refused input or any exception becomes an error result,
    so one bad call never takes down the episode or the batch."""
    start = time.perf_counter()
    try:
        return _timed(tool(**call.arguments), start)
    except Exception as exc:
        return _failed(exc, start)


async def arun_tool(tool: Tool, call: ToolCall) -> ToolResult:
    """``run_tool`` for a tool that may wait: awaits ``tool.acall`` when the tool has one
    (it returns a ``ToolResult`` or text), else calls it as ``run_tool`` does."""
    acall = getattr(tool, "acall", None)
    if acall is None:
        return run_tool(tool, call)
    start = time.perf_counter()
    try:
        return _timed(await acall(**call.arguments), start)
    except Exception as exc:
        return _failed(exc, start)


def _timed(output: str | ToolResult, start: float) -> ToolResult:
    latency = time.perf_counter() - start
    if isinstance(output, ToolResult):
        return dataclasses.replace(output, latency_s=latency)
    return ToolResult(status="ok", output=output, latency_s=latency)


def _failed(exc: Exception, start: float) -> ToolResult:
    status: ToolStatus
    if isinstance(exc, TimeoutError):
        output, status = f"Error: {exc or 'the tool timed out'}", "timeout"
    elif isinstance(exc, ToolInputError):
        output, status = f"Error: {exc}", "error"
    else:  # a tool bug must not crash the rollout
        output, status = f"Error: {type(exc).__name__}: {exc}", "error"
    return ToolResult(status=status, output=output, latency_s=time.perf_counter() - start)


def worst_status(statuses: Iterable[ToolStatus]) -> ToolStatus:
    """The worst of a turn's call statuses (``STATUS_RANK``); ``ok`` for none."""
    return max(statuses, key=STATUS_RANK.__getitem__, default="ok")


def tool_spec(tool: Tool) -> dict[str, Any]:
    """The OpenAI-style function description that chat templates render for ``tools=``."""
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": tool.schema},
    }

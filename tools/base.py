"""The tool contract: a name, a JSON schema and a call that returns text.

Owns ``Tool``, ``ToolCall`` and ``ToolResult`` and the one place that times a call and
turns an exception into an error result (``run_tool``). Must not know about environments,
tokens or chat templates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

ToolStatus = Literal["ok", "error", "timeout"]


@dataclass(frozen=True)
class ToolCall:
    """A parsed request to call ``name`` with ``arguments``."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolResult:
    """What a tool call produced. ``output`` is shown to the model as the observation."""

    status: ToolStatus
    output: str
    latency_s: float = 0.0


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
        output = tool(**call.arguments)
        status: ToolStatus = "ok"
    except TimeoutError as exc:
        output, status = f"Error: {exc or 'the tool timed out'}", "timeout"
    except ToolInputError as exc:
        output, status = f"Error: {exc}", "error"
    except Exception as exc:  # a tool bug must not crash the rollout
        output, status = f"Error: {type(exc).__name__}: {exc}", "error"
    return ToolResult(status=status, output=output, latency_s=time.perf_counter() - start)


def tool_spec(tool: Tool) -> dict[str, Any]:
    """The OpenAI-style function description that chat templates render for ``tools=``."""
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": tool.schema},
    }

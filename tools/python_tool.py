"""The ``python`` tool: run code in the episode's own sandboxed, persistent Python session.

Owns how a call's outcome is shown to the model: what the code printed (stdout, then stderr
and the last lines of a traceback), ``(no output)`` when it printed nothing, and for a call
that timed out or whose interpreter died, an ``Error: ...`` line saying the session restarted
and its state is lost. Output is already capped by the session (head and tail, with a
``...[N bytes cut]...`` marker). One tool object per episode: ``close`` ends its sandbox.
Knows nothing of environments or tokens; sandboxes come from a ``Pool``.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from agentrl_tools.base import ToolInputError, ToolResult
from agentrl_tools.sandbox.backends import shared_pool
from agentrl_tools.sandbox.session import CallResult, Limits, Pool, PythonSession

NO_OUTPUT = "(no output)"


class PythonTool:
    """A ``Tool`` (with ``acall``) over one ``PythonSession``."""

    name = "python"
    description = "Run Python code. Variables persist between calls; print what you want to see."
    schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"code": {"type": "string", "description": "Python source to run"}},
        "required": ["code"],
    }
    primary_argument = "code"

    def __init__(self, pool: Pool | None = None, *, backend: str = "auto", warm: int = 0, **limits: Any):
        """``pool``: where sandboxes come from; without one, the process's shared pool of
        ``backend`` (``auto``, ``docker``, ``bwrap``) with ``warm`` started sandboxes and
        ``limits`` (``agentrl_tools.sandbox.session.Limits`` fields), as the registry passes it."""
        self.session = PythonSession(pool if pool is not None else shared_pool(backend, Limits(**limits), warm))
        self.last: CallResult | None = None

    def __call__(self, code: str) -> ToolResult:
        if not code.strip():
            raise ToolInputError("the code is empty")
        self.last = self.session.run(code)
        return ToolResult(status=self.last.status, output=render(self.last), latency_s=self.last.seconds)

    async def acall(self, code: str) -> ToolResult:
        return await asyncio.to_thread(self, code)

    def close(self) -> None:
        self.session.close()


def render(result: CallResult) -> str:
    """The observation text for one call."""
    if result.lost_state or result.status in ("timeout", "unavailable"):
        return f"Error: {result.message}"
    text = result.stdout + result.stderr
    return text.rstrip("\n") if text.strip() else NO_OUTPUT

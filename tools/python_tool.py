"""The ``python`` tool: run code in the episode's own sandboxed, persistent Python session.

Owns how a call's outcome is shown to the model: what the code printed (stdout, then stderr
and the last lines of a traceback), ``(no output)`` when it printed nothing, and for a call
that timed out or whose interpreter died, an ``Error: ...`` line saying the session restarted
and its state is lost. A sandbox that cannot start is the service's failure (``ToolResult.service``);
code that raised or ran too long is the model's. Output is already capped by the session (head and tail, with a
``...[N bytes cut]...`` marker). One tool object per episode: ``close`` ends its sandbox.
``PythonToolOptions`` is the tool's typed option section as an environment takes it
(``--env-arg memory_mb=1024``): the backend, the warm pool and every ``Limits`` field, with
``Limits``' own defaults. Knows nothing of environments or tokens; sandboxes come from a ``Pool``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, ClassVar

from agentrl.config import check_choice, option
from agentrl_tools.base import ToolInputError, ToolResult
from agentrl_tools.sandbox.backends import BACKENDS, shared_pool
from agentrl_tools.sandbox.session import CallResult, Limits, Pool, PythonSession, check_warm

NO_OUTPUT = "(no output)"
_DEFAULT = Limits()


@dataclasses.dataclass
class PythonToolOptions:
    """The python tool's options in an environment's config: its sandbox and the sandbox's limits."""

    sandbox: str = option("auto", "python: the sandbox, auto (docker if it runs here, else bwrap), docker or bwrap")
    warm: int = option(0, "python: sandboxes kept started ahead of need")
    timeout_s: float = option(
        _DEFAULT.timeout_s, "python: seconds per call; past it the session is killed and restarted"
    )
    memory_mb: int = option(_DEFAULT.memory_mb, "python: memory of the whole sandbox in MB, its files included")
    processes: int = option(
        _DEFAULT.processes, "python: processes and threads in the whole sandbox (its interpreter uses 3)"
    )
    cpus: float = option(_DEFAULT.cpus, "python: CPUs the whole sandbox may use at once")
    disk_mb: int = option(_DEFAULT.disk_mb, "python: size of the work dir in MB, the only writable place")
    inodes: int = option(_DEFAULT.inodes, "python: files, directories and links the work dir may hold")
    max_output_bytes: int = option(
        _DEFAULT.max_output_bytes, "python: stdout and stderr each keep this many bytes per call"
    )

    def __post_init__(self) -> None:
        check_choice("python", "sandbox", self.sandbox, BACKENDS)
        check_warm(self.warm)
        self.limits()  # a limit out of range is a one-line ConfigError here, before any sandbox starts

    def limits(self) -> Limits:
        names = [f.name for f in dataclasses.fields(Limits) if hasattr(self, f.name)]
        return Limits(**{name: getattr(self, name) for name in names})

    def tool_options(self) -> dict[str, Any]:
        """What ``make_tool("python", ...)`` takes."""
        limits = dataclasses.asdict(self.limits())
        return {"backend": self.sandbox, "warm": self.warm, **limits}


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
        # a sandbox that cannot start is the service's fault; code that raised or ran too long, the model's
        backend = getattr(getattr(self.session.pool, "backend", None), "name", "?")
        service = f"the python sandbox ({backend})" if self.last.status == "unavailable" else None
        return ToolResult(self.last.status, render(self.last), self.last.seconds, service)

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

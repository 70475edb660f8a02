"""The tool registry, read from the entry-point group ``agentrl.tools``.

Owns name -> tool class resolution and constructing a tool from keyword options
(``make_tool``), on the same ``agentrl.entry_points.EntryPointRegistry`` as environments:
entry points are listed without importing them, an unknown name is a one-line error listing
the known ones, and one name claimed by two packages disables that name only. The built-in
tools (``calculator``, ``python``, ``search``) register through this group in agentrl's
``pyproject.toml``, so a third party's tool is a peer of agentrl's own;
``"package.module:attr"`` works as a name too. A tool is a class whose instances have
``name``, ``description``, ``schema`` (JSON schema of an object), ``primary_argument`` and a
call (``__call__``, and ``acall`` for one that waits); see ``agentrl_tools.base.Tool``.
Knows nothing of environments.
"""

from __future__ import annotations

from typing import Any

from agentrl.entry_points import EntryPointRegistry
from agentrl.errors import AgentRLError, first_line
from agentrl_tools.base import Tool

GROUP = "agentrl.tools"
_REGISTRY = EntryPointRegistry(GROUP, "tool", object)
entries = _REGISTRY.entries
names = _REGISTRY.names
refresh = _REGISTRY.refresh
load = _REGISTRY.load
_REQUIRED = ("name", "description", "schema", "primary_argument")


def make_tool(name: str, **options: Any) -> Tool:
    """Construct tool ``name`` with ``options``; a constructor that rejects them, or an object
    that is not a tool, is a one-line ``AgentRLError``."""
    cls = load(name)
    try:
        tool = cls(**options)
    except AgentRLError:
        raise
    except Exception as exc:  # a third party's constructor may raise anything for a bad option
        given = ", ".join(f"{k}={v!r}" for k, v in options.items()) or "no options"
        raise AgentRLError(f"tool {name!r} rejected its options ({given}): {first_line(exc)}") from None
    missing = [attr for attr in _REQUIRED if not hasattr(tool, attr)]
    if missing or not callable(tool):
        lacks = ", ".join(missing) if missing else "__call__"
        raise AgentRLError(f"tool {name!r} ({cls.__module__}.{cls.__qualname__}) is not a tool: it lacks {lacks}")
    schema = tool.schema
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise AgentRLError(f"tool {name!r}: its schema must be a JSON schema of an object, got {schema!r}")
    return tool

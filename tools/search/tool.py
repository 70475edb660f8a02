"""The ``search`` tool: a query in, an ``<information>`` block of the top-k passages out.

Owns how retrieved passages are shown to a model (Search-R1's ``Doc i (Title: ...) text``
lines inside ``<information>...</information>``) and the length caps on that text. Reaches a
corpus only through a ``Retriever``; knows nothing of environments, rewards or tokens.

Caps: each passage's text is cut to ``max_passage_chars`` and the whole block to
``max_observation_chars``; a cut ends in ``TRUNCATED`` so the model can see that it happened.
A failed search (``timeout`` / ``unavailable`` / ``error``) is a one-line ``Error: ...``
observation with that status, the retriever named as the service at fault; it never raises.
An empty query is the model's fault (``ToolInputError``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from agentrl_tools.base import ToolInputError, ToolResult
from agentrl_tools.search.base import Passage, Retriever

TRUNCATED = " ...[truncated]"
NO_RESULTS = "<information>No results.</information>"


class SearchTool:
    """A ``Tool`` (with ``acall``) over a ``Retriever``."""

    name = "search"
    description = "Search the corpus; returns the top passages for the query."
    schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"query": {"type": "string", "description": "what to search for"}},
        "required": ["query"],
    }
    primary_argument = "query"

    def __init__(
        self,
        retriever: Retriever | str = "local",
        *,
        corpus: str | None = None,
        topk: int = 3,
        max_passage_chars: int = 400,
        max_observation_chars: int = 2000,
    ):
        """``retriever``: a ``Retriever``, or a target for ``open_retriever`` (``local`` with a
        ``corpus`` JSONL, or the URL of ``agentrl serve retriever``), as the registry passes it."""
        if isinstance(retriever, str):
            from agentrl_tools.search.factory import open_retriever

            retriever = open_retriever(retriever, corpus=corpus)
        self.retriever, self.topk = retriever, topk
        self.max_passage_chars, self.max_observation_chars = max_passage_chars, max_observation_chars

    async def acall(self, query: str) -> ToolResult:
        if not query.strip():
            raise ToolInputError("the search query is empty")
        result = await self.retriever.search(query, self.topk)
        if result.status != "ok":
            return ToolResult(
                status=result.status,
                output=f"Error: search {result.status}: {result.message}",
                service=f"search at {getattr(self.retriever, 'where', type(self.retriever).__name__)}",
            )
        return ToolResult(status="ok", output=self.format(result.passages))

    def __call__(self, query: str) -> str:
        raise TypeError("search waits on a retriever; call it through agentrl_tools.base.arun_tool")

    def format(self, passages: Sequence[Passage]) -> str:
        """The observation text for ``passages``, capped."""
        if not passages:
            return NO_RESULTS
        lines = [f"Doc {i} (Title: {p.title}) {cap(p.text, self.max_passage_chars)}" for i, p in enumerate(passages, 1)]
        body = cap("\n".join(lines), self.max_observation_chars - len("<information></information>"))
        return f"<information>{body}</information>"


def cap(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in ``TRUNCATED`` when cut."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(TRUNCATED))].rstrip() + TRUNCATED

"""The retriever contract: a query in, the top-k passages out, and a status that never raises.

Owns ``Passage``, ``SearchResult``, the ``Retriever`` protocol and the one rule that turns a
corpus row into Search-R1's ``contents`` text. Two implementations follow it:
``agentrl_tools.search.local.LocalRetriever`` (BM25 in this process, the default) and
``agentrl_tools.search.client.HttpRetriever`` (a server speaking Search-R1's ``/retrieve``
API). Must not know about environments, tokens or the trainer.

Statuses (``SearchResult.status``), the same words ``info["tool_status"]`` uses:

- ``ok``: the search ran (possibly with no passages);
- ``timeout``: the retriever did not answer in time, after the retries allowed;
- ``unavailable``: it could not be reached (connection refused, 5xx after the retries);
- ``error``: it answered, but not with a usable result (a 4xx, malformed JSON).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from agentrl.errors import AgentRLError

SearchStatus = Literal["ok", "timeout", "unavailable", "error"]

MAX_QUERY_CHARS = 4096
"""The longest query ``agentrl serve retriever`` accepts by default; ``HttpRetriever`` cuts
queries to this before sending, so a long model output is a shorter query, never a 422."""


class RetrieverUnavailable(AgentRLError):
    """The retriever cannot serve at all (raised by ``Retriever.check``, before any training)."""


@dataclass(frozen=True)
class Passage:
    """One retrieved document. ``contents`` is Search-R1's form: the title on the first line
    (possibly in double quotes), the text after it."""

    id: str
    contents: str
    score: float = 0.0

    @property
    def title(self) -> str:
        return self.contents.split("\n", 1)[0].strip().strip('"')

    @property
    def text(self) -> str:
        parts = self.contents.split("\n", 1)
        return parts[1].strip() if len(parts) > 1 else ""


@dataclass(frozen=True)
class SearchResult:
    """What one query produced: passages best first, or a failure status and a one-line reason."""

    status: SearchStatus
    passages: tuple[Passage, ...] = ()
    message: str = ""
    latency_s: float = 0.0


class Retriever(Protocol):
    """Search a corpus. ``search`` never raises: a failure comes back as a ``SearchResult``
    with a status other than ``ok``. Safe to call from any thread and any event loop.
    ``where`` says what it searches, for messages (a URL, a corpus file)."""

    where: str

    async def search(self, query: str, topk: int) -> SearchResult: ...

    def check(self) -> None:
        """Raise ``RetrieverUnavailable`` (one line, saying what to do) if the retriever cannot
        serve; called once before a run starts."""

    def close(self) -> None:
        """Release connections and threads; safe to call twice."""


def row_contents(row: Any) -> tuple[str, str] | None:
    """``(id, contents)`` of a corpus row, or None for a row that is not a usable document.

    Accepted: ``{"id", "contents"}`` (Search-R1) and ``{"id", "title", "text"}`` (joined as
    ``title + "\\n" + text``). ``id`` may be a string or an int; ``contents`` must not be blank.
    """
    if not isinstance(row, dict) or not isinstance(row.get("id"), str | int) or isinstance(row.get("id"), bool):
        return None
    contents = row.get("contents")
    if contents is None and isinstance(row.get("title"), str) and isinstance(row.get("text"), str):
        contents = f"{row['title']}\n{row['text']}"
    if not isinstance(contents, str) or not contents.strip():
        return None
    return str(row["id"]), contents


def default_cache_dir() -> Path:
    """``$AGENTRL_CACHE_DIR``, else ``$XDG_CACHE_HOME/agentrl``, else ``~/.cache/agentrl``."""
    if os.environ.get("AGENTRL_CACHE_DIR"):
        return Path(os.environ["AGENTRL_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "agentrl"

"""``LocalRetriever``: BM25 over a corpus file, in this process.

Owns the per-process cache of loaded indexes (one ``BM25Index`` per corpus and cache dir,
however many retrievers, threads or event loops ask for it) and the ``Retriever`` contract
for them: a search runs in a worker thread so the caller's event loop keeps turning, and
never raises. Must not know about HTTP, environments or the trainer.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

from agentrl.errors import AgentRLError, first_line
from agentrl_tools.search.base import Passage, RetrieverUnavailable, SearchResult
from agentrl_tools.search.index import BM25Index

_INDEXES: dict[tuple[Path, Path | None], BM25Index] = {}
_LOCKS: dict[tuple[Path, Path | None], threading.Lock] = {}
_GUARD = threading.Lock()


def shared_index(corpus_path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> BM25Index:
    """This process's index of ``corpus_path``, built or loaded on first use. Two threads
    asking at once load it once; different corpora load in parallel."""
    key = (Path(corpus_path).resolve(), Path(cache_dir).resolve() if cache_dir is not None else None)
    with _GUARD:
        if key in _INDEXES:
            return _INDEXES[key]
        lock = _LOCKS.setdefault(key, threading.Lock())
    with lock:
        if key not in _INDEXES:
            _INDEXES[key] = BM25Index.open(*key)
        return _INDEXES[key]


class LocalRetriever:
    """A ``Retriever`` over a JSONL corpus (see ``agentrl_tools.search.index`` for the rules).
    Constructing one is free; the index is built or loaded by ``check`` or the first search."""

    def __init__(self, corpus_path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None):
        self.corpus_path, self.cache_dir = corpus_path, cache_dir
        self.where = f"the local index of {corpus_path}"

    def index(self) -> BM25Index:
        return shared_index(self.corpus_path, self.cache_dir)

    def check(self) -> None:
        try:
            self.index()
        except AgentRLError as exc:
            raise RetrieverUnavailable(str(exc)) from None

    async def search(self, query: str, topk: int) -> SearchResult:
        start = time.perf_counter()
        try:
            passages = await asyncio.to_thread(self._search, query, topk)
        except Exception as exc:  # a corpus that vanished, a bug: a status, never a crash
            message = str(exc) if isinstance(exc, AgentRLError) else first_line(exc)
            return SearchResult(status="error", message=message, latency_s=time.perf_counter() - start)
        return SearchResult(status="ok", passages=tuple(passages), latency_s=time.perf_counter() - start)

    def _search(self, query: str, topk: int) -> list[Passage]:
        return self.index().search(query, topk)

    def close(self) -> None:
        """Nothing to release: the index stays loaded for the process's other retrievers."""

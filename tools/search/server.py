"""The retriever server: BM25 over a corpus behind Search-R1's HTTP API.

Owns the HTTP surface (``create_app``), its request bounds (``ServerLimits``) and the batcher
that merges concurrent requests into one index call. Ranking is ``agentrl_tools.search.index``'s;
must not import the trainer, learner or rollout, nor know about environments.

API, matching ``search_r1/search/retrieval_server.py`` in PeterGriffinJin/Search-R1 (commit
a14dc3a), so Search-R1's clients work unchanged:

- ``POST /retrieve`` ``{"queries": [str, ...], "topk": int, "return_scores": bool}``;
  ``topk`` may be omitted (``ServerLimits.default_topk``, Search-R1's 3), ``return_scores``
  defaults to false. Answer: ``{"result": [per query: [{"document": {"id", "contents"},
  "score": float}, ...]]}``, or with ``return_scores`` false, ``{"result": [[{"id",
  "contents"}, ...]]}``: the bare documents, as Search-R1 does. A document is the corpus row as
  Search-R1's dense retriever returns it (``id`` and ``contents``; a ``title``/``text`` row
  is joined into ``contents``). Search-R1's own BM25 path returns ``title``/``text``/``contents``
  without ``id``; clients read ``contents``, which both carry.
- ``GET /health``: 503 ``{"status": "loading"}`` (or ``"failed"`` with a ``reason``) until the
  index is loaded in a background thread, then 200 ``{"status": "ok", "documents": N}``.
- ``GET /stats``: ``documents``, ``requests``, ``queries`` and ``bm25_calls`` (index calls;
  fewer than requests when batching merges them). Per worker process. Not in Search-R1.

Deviations: bounds that Search-R1 does not have. More than ``max_queries`` queries, a query
longer than ``max_query_chars`` or ``topk`` outside ``1..max_topk`` is a 422 whose ``detail``
says which; a malformed body (not JSON, NaN or Infinity anywhere, a field of the wrong type) a
422 whose ``detail`` is one line that never repeats the body; a body over ``max_body_bytes`` a
413, whether or not it says its length; a request before the index is loaded a 503. No bad
request is a 500 or a traceback in the log.

Batching: a request puts its queries on a queue; one task takes everything queued (up to
``max_batch_queries``) and ranks it with one ``search_many`` call in a worker thread, so the
event loop keeps accepting requests, which wait for the next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentrl.errors import AgentRLError, first_line
from agentrl_tools.search.base import MAX_QUERY_CHARS, Passage
from agentrl_tools.search.index import BM25Index

CORPUS_ENV, CACHE_DIR_ENV = "AGENTRL_RETRIEVER_CORPUS", "AGENTRL_RETRIEVER_CACHE_DIR"
"""How ``app_from_env`` (the factory uvicorn's worker processes call) finds its corpus."""


@dataclass(frozen=True)
class ServerLimits:
    """What one request may ask for."""

    max_queries: int = 1024
    max_query_chars: int = MAX_QUERY_CHARS
    max_topk: int = 100
    default_topk: int = 3
    max_body_bytes: int = 32 << 20
    max_batch_queries: int = 4096
    """Queries ranked in one index call at most (a single request is never split)."""


class RetrieveRequest(BaseModel):
    queries: list[str]
    topk: int | None = None
    return_scores: bool = False


_Pending = tuple[list[str], int, "asyncio.Future[list[list[Passage]]]"]
"""A request's queries, its ``topk``, and where its passages go."""


class Batcher:
    """Merges the queries of concurrent requests into one ``search_many`` call. Requests that
    arrive while a call runs are merged into the next one. Lives on one event loop."""

    def __init__(self, index: BM25Index, max_batch_queries: int):
        self.index, self.max_batch_queries = index, max_batch_queries
        self._queue: list[_Pending] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def search(self, queries: list[str], topk: int) -> list[list[Passage]]:
        future: asyncio.Future[list[list[Passage]]] = asyncio.get_running_loop().create_future()
        self._queue.append((queries, topk, future))
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        return await future

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                await self._rank(self._take())

    def _take(self) -> list[_Pending]:
        taken, size = 0, 0
        while taken < len(self._queue) and (taken == 0 or size + len(self._queue[taken][0]) <= self.max_batch_queries):
            size += len(self._queue[taken][0])
            taken += 1
        batch, self._queue = self._queue[:taken], self._queue[taken:]
        return batch

    async def _rank(self, batch: list[_Pending]) -> None:
        queries = [q for qs, _, _ in batch for q in qs]
        topk = max(k for _, k, _ in batch)  # one call for every topk; each request keeps its own
        try:
            ranked = await asyncio.to_thread(self.index.search_many, queries, topk)
        except Exception as exc:  # reaches each waiting request as a 500
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        at = 0
        for qs, k, future in batch:
            if not future.done():  # the client may have gone away
                future.set_result([passages[:k] for passages in ranked[at : at + len(qs)]])
            at += len(qs)


class _State:
    """The app's index, loaded in a background thread, and its counters."""

    def __init__(self, corpus_path: str, cache_dir: str | None, limits: ServerLimits):
        self.corpus_path, self.cache_dir, self.limits = corpus_path, cache_dir, limits
        self.index: BM25Index | None = None
        self.error: str | None = None
        self.batcher: Batcher | None = None
        self.requests = self.queries = 0

    def load(self) -> None:
        try:
            self.index = BM25Index.open(self.corpus_path, self.cache_dir)
        except AgentRLError as exc:
            self.error = str(exc)
        except Exception as exc:
            self.error = first_line(exc)


def create_app(
    corpus_path: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    limits: ServerLimits | None = None,
) -> FastAPI:
    """The retriever app for ``corpus_path``; its index loads in a background thread when the
    app starts (build it beforehand with ``index.ensure_index`` so that is only a load)."""
    state = _State(str(corpus_path), str(cache_dir) if cache_dir is not None else None, limits or ServerLimits())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        threading.Thread(target=state.load, name="agentrl-retriever-load", daemon=True).start()
        yield
        if state.batcher is not None:
            state.batcher.close()

    app = FastAPI(title="agentrl retriever", lifespan=lifespan)
    app.state.retriever = state

    app.add_middleware(_BodyLimit, max_bytes=state.limits.max_body_bytes)

    @app.get("/health")
    async def health() -> JSONResponse:
        if state.index is None:
            body = {"status": "failed", "reason": state.error} if state.error else {"status": "loading"}
            return JSONResponse(body, status_code=503)
        return JSONResponse({"status": "ok", "documents": len(state.index)})

    @app.get("/stats")
    async def stats() -> dict[str, int]:
        calls = state.index.calls if state.index is not None else 0
        documents = len(state.index) if state.index is not None else 0
        return {"documents": documents, "requests": state.requests, "queries": state.queries, "bm25_calls": calls}

    @app.post("/retrieve")
    async def retrieve(raw: Request) -> JSONResponse:
        request = _parse(await raw.body())
        topk = _check(request, state.limits)
        if state.index is None:
            raise HTTPException(503, detail=f"the index is not loaded ({state.error or 'still loading'})")
        if state.batcher is None:
            state.batcher = Batcher(state.index, state.limits.max_batch_queries)
        state.requests += 1
        state.queries += len(request.queries)
        ranked = await state.batcher.search(request.queries, topk)
        return JSONResponse({"result": [[_entry(p, request.return_scores) for p in ps] for ps in ranked]})

    return app


class _BodyLimit:
    """A 413 for a body over ``max_bytes``: at once when its ``Content-Length`` says so, and for
    a body sent without one (chunked) as soon as what arrived passes the limit; such a body is
    read here, within the limit, and handed on whole. Plain ASGI: ``@app.middleware("http")``
    would add ~0.4 ms to every request."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        size = dict(scope["headers"]).get(b"content-length")
        if size is not None:
            if size.isdigit() and int(size) > self.max_bytes:
                return await self._refuse(f"request body of {int(size)} bytes", scope, receive, send)
            return await self.app(scope, receive, send)
        chunks, total = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return None
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_bytes:
                return await self._refuse(f"a request body of more than {total} bytes", scope, receive, send)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        whole: list[Message] = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replay() -> Message:
            return whole.pop() if whole else await receive()

        return await self.app(scope, replay, send)

    async def _refuse(self, what: str, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"{what} is over the limit of {self.max_bytes}"
        await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)


def _parse(body: bytes) -> RetrieveRequest:
    """The request in ``body``; a 422 saying why for anything else. Stricter than Python's JSON:
    NaN, Infinity and numbers too large for a float are refused (they are not JSON, and a
    validation error echoing one back could not be encoded). The reason never repeats the
    body."""
    try:
        data = json.loads(body, parse_constant=_non_finite, parse_float=_finite_float)
    except _NotFinite as exc:
        raise HTTPException(422, detail=str(exc)) from None
    except ValueError as exc:  # not JSON, not UTF-8
        raise HTTPException(422, detail=f"the body is not JSON: {first_line(exc)}") from None
    try:
        return RetrieveRequest.model_validate(data)
    except ValidationError as exc:
        reasons = ("/".join(map(str, e["loc"])) + f": {e['msg']}" if e["loc"] else e["msg"] for e in exc.errors())
        raise HTTPException(422, detail="; ".join(reasons)) from None


class _NotFinite(ValueError):
    pass


def _non_finite(name: str) -> float:
    raise _NotFinite(f"{name} is not a JSON number: numbers must be finite (no NaN or Infinity)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite(f"{text[:32]} is too large for a number: numbers must be finite (no NaN or Infinity)")
    return value


def _check(request: RetrieveRequest, limits: ServerLimits) -> int:
    """``topk`` to use; a 422 naming the bound for a request past one."""
    topk = limits.default_topk if request.topk is None else request.topk
    if not 1 <= topk <= limits.max_topk:
        raise HTTPException(422, detail=f"topk must be between 1 and {limits.max_topk}, got {topk}")
    if len(request.queries) > limits.max_queries:
        raise HTTPException(422, detail=f"at most {limits.max_queries} queries per request, got {len(request.queries)}")
    longest = max((len(q) for q in request.queries), default=0)
    if longest > limits.max_query_chars:
        raise HTTPException(
            422, detail=f"queries must be at most {limits.max_query_chars} characters, one has {longest}"
        )
    return topk


def _entry(passage: Passage, with_score: bool) -> dict[str, Any]:
    document = {"id": passage.id, "contents": passage.contents}
    return {"document": document, "score": passage.score} if with_score else document


def app_from_env() -> FastAPI:
    """The app for ``$AGENTRL_RETRIEVER_CORPUS`` (and ``$AGENTRL_RETRIEVER_CACHE_DIR``): the
    factory that ``agentrl serve retriever --workers N`` gives uvicorn's worker processes."""
    corpus = os.environ.get(CORPUS_ENV)
    if not corpus:
        raise AgentRLError(f"${CORPUS_ENV} is not set; start the server with `agentrl serve retriever --corpus FILE`")
    return create_app(corpus, cache_dir=os.environ.get(CACHE_DIR_ENV) or None)

"""``HttpRetriever``: a client of a server speaking Search-R1's ``/retrieve`` API.

Owns the connection to the server: one ``httpx.AsyncClient`` on an event loop of its own, in a
background thread, so ``search`` can be awaited from any thread's loop (a fresh loop per
synchronous rollout step, or the async trainer's); the batching of concurrent searches into
one request; retries; and the mapping of failures to statuses. Must not know about
environments, tokens or the trainer, and never imports the server.

Batching: the searches a caller's loop starts together (``asyncio.gather``) reach the client's
loop as one hand-off; searches queue up on the client's loop; a dispatcher sends what is queued (at most
``max_batch`` queries of one ``topk``) as one request, with at most
``max_concurrent_requests`` in flight; while that many are out, new searches wait and join
the next batch. While a request is in flight, the dispatcher also lingers ``batch_wait_s``
before sending, for company; an idle client sends at once.

Failures (``search`` never raises): a connection error, a timeout (``timeout_s`` for a whole
attempt) or a 5xx is retried up to ``retries`` times with jittered exponential backoff
(``backoff_s``, doubling); then the result is ``timeout`` or ``unavailable``. A 4xx or an
answer of the wrong shape is ``error`` at once: asking again would not change it. Queries are
cut to ``max_query_chars`` (the server's limit) before sending.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import os
import random
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from agentrl.errors import ConfigError, first_line
from agentrl_tools.search.base import MAX_QUERY_CHARS, Passage, RetrieverUnavailable, SearchResult

_Search = tuple[str, int, Callable[["asyncio.Future[SearchResult]"], None]]
"""A search handed to the client's loop: its query, its ``topk``, and what to call when it is done."""
_START_HINT = "start it with `agentrl serve retriever --corpus FILE`"
_CLOSED = SearchResult(status="unavailable", message="the retriever client was closed")


@dataclass(frozen=True)
class _Options:
    url: str
    timeout_s: float
    retries: int
    backoff_s: float
    max_concurrent_requests: int
    max_batch: int
    batch_wait_s: float
    max_query_chars: int


@dataclass
class _Waiting:
    query: str
    topk: int
    future: asyncio.Future[SearchResult]


class HttpRetriever:
    """A ``Retriever`` backed by ``url`` (e.g. ``http://127.0.0.1:8000``, as printed by
    ``agentrl serve retriever``). Constructing one is free: the thread and the connection pool
    start with the first search, and again in a forked child."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        retries: int = 2,
        backoff_s: float = 0.2,
        max_concurrent_requests: int = 8,
        max_batch: int = 64,
        batch_wait_s: float = 0.002,
        max_query_chars: int = MAX_QUERY_CHARS,
        startup_wait_s: float = 10.0,
    ):
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"retriever URL {url!r} must start with http:// or https://")
        _check_options(
            timeout_s=timeout_s, retries=retries, backoff_s=backoff_s, max_concurrent_requests=max_concurrent_requests,
            max_batch=max_batch, batch_wait_s=batch_wait_s, max_query_chars=max_query_chars,
        )  # fmt: skip
        self.url = self.where = url.rstrip("/")
        self.startup_wait_s = startup_wait_s
        self.options = _Options(
            self.url, timeout_s, retries, backoff_s, max_concurrent_requests, max_batch, batch_wait_s, max_query_chars
        )
        self._lock = threading.Lock()
        self._worker: _Worker | None = None
        self._closed = False
        self._gathering: dict[asyncio.AbstractEventLoop, list[tuple[str, int, asyncio.Future[SearchResult]]]] = {}

    async def search(self, query: str, topk: int) -> SearchResult:
        start = time.perf_counter()
        try:
            worker = self._running()
            if worker is None:
                result = SearchResult(status="unavailable", message="the retriever client is closed")
            else:
                result = await self._gathered(worker, query, topk)
        except Exception as exc:  # a bug here must still be a status
            result = SearchResult(status="error", message=first_line(exc))
        return dataclasses.replace(result, latency_s=time.perf_counter() - start)

    def _gathered(self, worker: _Worker, query: str, topk: int) -> asyncio.Future[SearchResult]:
        """The search's result, once the searches its caller's loop started in the same turn of
        that loop (``asyncio.gather``) have reached the client's loop together, as one hand-off:
        the dispatcher then sees them all and sends them as one request."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[SearchResult] = loop.create_future()
        with self._lock:
            gathering = self._gathering.setdefault(loop, [])
            gathering.append((query, topk, future))
            first = len(gathering) == 1
        if first:
            loop.call_soon(self._hand_off, worker, loop)  # after the searches started in this turn
        return future

    def _hand_off(self, worker: _Worker, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            gathered = self._gathering.pop(loop, [])

        def answer(future: asyncio.Future[SearchResult], done: asyncio.Future[SearchResult]) -> None:
            result = done.result() if not done.cancelled() else _CLOSED
            with contextlib.suppress(RuntimeError):  # the caller's loop has closed: nobody waits
                loop.call_soon_threadsafe(_settle, future, result)

        searches: list[_Search] = [(query, topk, functools.partial(answer, future)) for query, topk, future in gathered]
        try:
            worker.loop.call_soon_threadsafe(worker.enqueue, searches)
        except RuntimeError:  # the client's loop has stopped (closed meanwhile)
            for _, _, future in gathered:
                _settle(future, _CLOSED)

    def _running(self) -> _Worker | None:
        with self._lock:
            if self._closed:
                return None
            if self._worker is None or self._worker.pid != os.getpid():
                self._worker = _Worker(self.options)
                weakref.finalize(self, self._worker.stop)  # also runs at exit: a forgotten close never hangs
            return self._worker

    def close(self) -> None:
        with self._lock:
            self._closed, worker, self._worker = True, self._worker, None
        if worker is not None:
            worker.stop()

    def check(self) -> None:
        """Wait up to ``startup_wait_s`` for ``/health`` to say the index is loaded; raise
        ``RetrieverUnavailable`` (one line) if it does not. A server without ``/health``
        (Search-R1's own) is checked with a one-query ``/retrieve``."""
        deadline = time.monotonic() + self.startup_wait_s
        timeout = httpx.Timeout(min(self.options.timeout_s, 5.0))
        problem = reason = ""
        while True:
            try:
                response = httpx.get(f"{self.url}/health", timeout=timeout)
                if response.status_code in (404, 405):
                    response = httpx.post(
                        f"{self.url}/retrieve", json={"queries": ["test"], "topk": 1}, timeout=timeout
                    )
                if response.status_code == 200:
                    return
                problem = _problem(response)
            except httpx.ReadTimeout:  # connected, then nothing: a server that hangs
                problem = f"connected but did not answer within {timeout.read:g}s (hung or overloaded)"
            except httpx.HTTPError as exc:
                problem = ""
                reason = first_line(exc)
            if problem.startswith("failed"):
                raise RetrieverUnavailable(f"retriever at {self.url} {problem}")
            if time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        if problem:
            raise RetrieverUnavailable(f"retriever at {self.url} is {problem} after {self.startup_wait_s:g}s")
        raise RetrieverUnavailable(f"retriever at {self.url} is not reachable ({reason}); {_START_HINT}")


def _check_options(**values: float) -> None:
    for name, value in values.items():
        low = 1e-3 if name == "timeout_s" else 0 if name in ("retries", "backoff_s", "batch_wait_s") else 1
        if value < low:
            raise ConfigError(f"HttpRetriever: {name} must be at least {low:g}, got {value}")


def _problem(response: httpx.Response) -> str:
    """What a non-200 ``/health`` says is wrong."""
    if response.status_code != 503:
        return f"not healthy (HTTP {response.status_code}: {_detail(response)})"
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("status") == "failed":
        return f"failed to load its index: {body.get('reason')}"
    return "still loading its index"


class _Worker:
    """The client's event loop thread, its connection pool and its dispatcher."""

    def __init__(self, options: _Options):
        self.options, self.pid = options, os.getpid()
        self.loop = asyncio.new_event_loop()
        self.queue: list[_Waiting] = []  # touched only on self.loop
        self.wake = asyncio.Event()
        self.slots = asyncio.Semaphore(options.max_concurrent_requests)
        self.client: httpx.AsyncClient | None = None
        self.dispatcher: asyncio.Task[None] | None = None
        self.sending: set[asyncio.Task[None]] = set()
        self.thread = threading.Thread(target=self._serve, name="agentrl-retriever-client", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        self.loop.close()

    def enqueue(self, searches: list[_Search]) -> None:
        """Queue ``searches`` (query, topk, called with the search's done future) at once, so
        the dispatcher takes them in one batch. Runs on the client's loop."""
        if self.dispatcher is None:
            limits = httpx.Limits(
                max_connections=self.options.max_concurrent_requests,
                max_keepalive_connections=self.options.max_concurrent_requests,
            )
            self.client = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(self.options.timeout_s))
            self.dispatcher = asyncio.create_task(self._dispatch())
        for query, topk, answer in searches:
            future: asyncio.Future[SearchResult] = self.loop.create_future()
            future.add_done_callback(answer)
            self.queue.append(_Waiting(query, topk, future))
        self.wake.set()

    async def _dispatch(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            if self.options.batch_wait_s and self.sending:  # busy: let concurrent searches join
                await asyncio.sleep(self.options.batch_wait_s)
            while self.queue:
                await self.slots.acquire()  # while every slot is busy, the queue grows into the next batch
                batch = self._take()
                if not batch:
                    self.slots.release()
                    break
                task = asyncio.create_task(self._send(batch))
                self.sending.add(task)
                task.add_done_callback(self.sending.discard)

    def _take(self) -> list[_Waiting]:
        """Up to ``max_batch`` waiting searches that share the first one's ``topk``."""
        waiting = [w for w in self.queue if not w.future.done()]  # a cancelled caller leaves a done future
        if not waiting:
            self.queue = []
            return []
        topk = waiting[0].topk
        batch = [w for w in waiting if w.topk == topk][: self.options.max_batch]
        taken = {id(w) for w in batch}
        self.queue = [w for w in waiting if id(w) not in taken]
        return batch

    async def _send(self, batch: list[_Waiting]) -> None:
        results = [_CLOSED] * len(batch)  # what the waiting searches get if close() cancels this send
        try:
            results = await self._post([w.query[: self.options.max_query_chars] for w in batch], batch[0].topk)
        except Exception as exc:  # a bug: every waiting search still gets an answer
            results = [SearchResult(status="error", message=first_line(exc))] * len(batch)
        finally:
            self.slots.release()
            for waiting, result in zip(batch, results, strict=True):
                if not waiting.future.done():
                    waiting.future.set_result(result)

    async def _post(self, queries: list[str], topk: int) -> list[SearchResult]:
        body = {"queries": queries, "topk": topk, "return_scores": True}
        retries, backoff = self.options.retries, self.options.backoff_s
        for attempt in range(retries + 1):
            if attempt:
                await asyncio.sleep(backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))
            status, outcome, retry = await self._attempt(body, len(queries))
            if status == "ok":
                return [SearchResult(status="ok", passages=passages) for passages in outcome]
            if not retry:
                break
        tries = f" (after {attempt + 1} attempts)" if attempt else ""
        return [SearchResult(status=status, message=f"{outcome}{tries}")] * len(queries)

    async def _attempt(self, body: dict[str, Any], n: int) -> tuple[str, Any, bool]:
        """``(status, passages per query or a one-line reason, worth retrying)``."""
        url, client = f"{self.options.url}/retrieve", self.client
        assert client is not None
        try:
            async with asyncio.timeout(self.options.timeout_s):
                response = await client.post(url, json=body)
        except (TimeoutError, httpx.TimeoutException):
            return "timeout", f"no answer from {url} within {self.options.timeout_s:g}s", True
        except httpx.TransportError as exc:
            return "unavailable", f"cannot reach {url} ({first_line(exc)})", True
        if response.status_code >= 500:
            return "unavailable", f"{url} answered HTTP {response.status_code}: {_detail(response)}", True
        if response.status_code != 200:
            return "error", f"{url} refused the request: HTTP {response.status_code}: {_detail(response)}", False
        try:
            return "ok", parse_result(response.content, n), False
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            return "error", f"malformed answer from {url}: {first_line(exc)}", False

    def stop(self) -> None:
        """Fail waiting searches, close the pool, end the thread. Idempotent, any thread."""
        if self.pid != os.getpid() or not self.thread.is_alive():
            return
        if threading.current_thread() is not self.thread:
            future = asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop)
            with contextlib.suppress(Exception):  # a loop already stopping has nothing left to release
                future.result(timeout=2.0)
        self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout=2.0)

    async def _shutdown(self) -> None:
        tasks = [t for t in [self.dispatcher, *self.sending] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for waiting in self.queue:
            if not waiting.future.done():
                waiting.future.set_result(_CLOSED)
        self.queue = []
        if self.client is not None:
            await self.client.aclose()


def _detail(response: httpx.Response) -> str:
    """The server's reason, on one line and short."""
    try:
        detail = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        detail = response.text
    text = detail if isinstance(detail, str) else json.dumps(detail)
    return " ".join(text.split())[:300] or response.reason_phrase


def parse_result(content: bytes, n: int) -> list[tuple[Passage, ...]]:
    """The passages per query of a ``/retrieve`` answer for ``n`` queries, with or without
    scores; a ``ValueError`` (or ``TypeError``/``KeyError``) for any other shape."""
    result = json.loads(content)["result"]
    if not isinstance(result, list) or len(result) != n:
        raise ValueError(f'expected "result" to be a list of {n} lists')
    return [tuple(_passage(item) for item in ranked) for ranked in result]


def _passage(item: dict[str, Any]) -> Passage:
    document, score = (item["document"], item.get("score", 0.0)) if "document" in item else (item, 0.0)
    contents = document.get("contents")
    if contents is None and isinstance(document.get("title"), str):
        contents = f"{document['title']}\n{document.get('text', '')}"
    if not isinstance(contents, str):
        raise ValueError("a document has no contents")
    return Passage(id=str(document.get("id", "")), contents=contents, score=float(score))


def _settle(future: asyncio.Future[SearchResult], result: SearchResult) -> None:
    if not future.done():  # a caller that gave up (cancelled) has a done future
        future.set_result(result)

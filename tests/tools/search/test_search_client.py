"""``HttpRetriever`` against stub servers (timeouts, bad answers, 4xx, 5xx) and against a real
``agentrl serve retriever`` process (batching, a SIGKILL mid-run, a restart)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response
from search_helpers import CAPITALS, serve_app

from agentrl.errors import ConfigError
from agentrl_tools.search.base import RetrieverUnavailable, SearchResult
from agentrl_tools.search.client import HttpRetriever
from agentrl_tools.search.local import LocalRetriever
from helpers import ServerProcess, free_port

GOOD = {"result": [[{"document": {"id": "1", "contents": "Title\nText"}, "score": 1.5}]]}


class Stub:
    """A server whose ``/retrieve`` answers as ``behaviour`` says, counting requests."""

    def __init__(self) -> None:
        self.behaviour = "ok"
        self.requests: list[dict[str, Any]] = []
        self.app = FastAPI()
        self.app.post("/retrieve")(self.retrieve)
        self.app.get("/health")(self.health)

    async def retrieve(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        if self.behaviour == "slow":
            await asyncio.sleep(2)
        answers = {
            "ok": (200, json.dumps({"result": GOOD["result"] * len(body["queries"])})),
            "not json": (200, "<html>oops</html>"),
            "wrong shape": (200, '{"result": [[], [], []]}'),
            "4xx": (422, '{"detail": "topk must be between 1 and 100, got 0"}'),
            "5xx": (500, "Internal Server Error"),
            "slow": (200, "{}"),
        }
        status, text = answers.get(self.behaviour, answers["ok"])
        return Response(text, status_code=status, media_type="application/json")

    async def health(self) -> Response:
        if self.behaviour == "loading":
            return Response('{"status": "loading"}', status_code=503)
        if self.behaviour == "no health":
            return Response("Not Found", status_code=404)
        return Response('{"status": "ok", "documents": 1}')


@pytest.fixture
def stub() -> Iterator[tuple[Stub, str]]:
    stub = Stub()
    with serve_app(stub.app) as url:
        yield stub, url


def search(retriever: HttpRetriever, query: str = "capital", topk: int = 3) -> SearchResult:
    return asyncio.run(retriever.search(query, topk))


def test_an_answer_is_parsed_and_long_queries_are_cut(stub: tuple[Stub, str]):
    server, url = stub
    retriever = HttpRetriever(url, max_query_chars=50)
    result = search(retriever, "q" * 10_000)
    assert result.status == "ok" and result.passages[0].title == "Title" and result.passages[0].score == 1.5
    assert server.requests[0] == {"queries": ["q" * 50], "topk": 3, "return_scores": True}
    retriever.close()


@pytest.mark.parametrize(
    ("behaviour", "status", "requests", "message"),
    [
        ("slow", "timeout", 3, "within 0.2s (after 3 attempts)"),
        ("5xx", "unavailable", 3, "HTTP 500: Internal Server Error (after 3 attempts)"),
        ("4xx", "error", 1, "HTTP 422: topk must be between 1 and 100, got 0"),
        ("not json", "error", 1, "malformed answer"),
        ("wrong shape", "error", 1, 'expected "result" to be a list of 1 lists'),
    ],
)
def test_failures_become_statuses_retrying_only_what_may_pass(
    stub: tuple[Stub, str], behaviour: str, status: str, requests: int, message: str
):
    server, url = stub
    server.behaviour = behaviour
    retriever = HttpRetriever(url, timeout_s=0.2, retries=2, backoff_s=0.01)
    start = time.perf_counter()
    result = search(retriever)
    assert (result.status, len(server.requests)) == (status, requests)
    assert message in result.message and "\n" not in result.message
    assert time.perf_counter() - start < 3 * 0.2 + 1.0
    retriever.close()


def test_check_waits_for_loading_and_accepts_a_server_without_health(stub: tuple[Stub, str]):
    server, url = stub
    server.behaviour = "loading"
    with pytest.raises(RetrieverUnavailable, match=r"still loading its index after 0\.3s"):
        HttpRetriever(url, startup_wait_s=0.3).check()
    threading.Timer(0.3, setattr, args=(server, "behaviour", "ok")).start()
    HttpRetriever(url, startup_wait_s=5).check()
    server.behaviour = "no health"  # Search-R1's own server: checked with a one-query /retrieve
    HttpRetriever(url, startup_wait_s=0).check()


def test_check_against_nothing_is_one_line():
    url = f"http://127.0.0.1:{free_port()}"
    start = time.perf_counter()
    with pytest.raises(RetrieverUnavailable) as info:
        HttpRetriever(url, startup_wait_s=0.3).check()
    message = str(info.value)
    assert message.startswith(f"retriever at {url} is not reachable (ConnectError")
    assert message.endswith("start it with `agentrl serve retriever --corpus FILE`") and "\n" not in message
    assert time.perf_counter() - start < 2


def test_bad_options_and_close(stub: tuple[Stub, str]):
    with pytest.raises(ConfigError, match="must start with http"):
        HttpRetriever("localhost:8000")
    with pytest.raises(ConfigError, match="max_batch must be at least 1"):
        HttpRetriever("http://x", max_batch=0)
    _, url = stub
    retriever = HttpRetriever(url)
    assert search(retriever).status == "ok"
    thread = retriever._worker.thread if retriever._worker else None
    retriever.close()
    retriever.close()
    assert thread is not None and not thread.is_alive()
    closed = search(retriever)
    assert closed.status == "unavailable" and "closed" in closed.message


@pytest.mark.slow
def test_many_concurrent_searches_are_batched_by_a_real_server(corpus: Path, start_server: Any):
    server: ServerProcess = start_server(corpus)
    retriever = HttpRetriever(server.url)
    retriever.check()
    queries = [f"What is the capital of {country}?" for country in CAPITALS] * 125  # 1,000

    async def episodes() -> list[SearchResult]:
        return await asyncio.gather(*(retriever.search(q, 2) for q in queries))

    results = asyncio.run(episodes())
    local = asyncio.run(LocalRetriever(corpus).search(queries[3], 2))
    assert {r.status for r in results} == {"ok"}
    assert results[3].passages == local.passages
    stats = server.stats()
    assert stats["queries"] == 1000
    assert stats["requests"] <= 1000 / 8 and stats["bm25_calls"] <= stats["requests"]

    # one loop per thread, as synchronous rollouts run it, all sharing the client
    answers: list[str] = []
    threads = [threading.Thread(target=lambda: answers.append(search(retriever).status)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == ["ok"] * 8
    retriever.close()


@pytest.mark.slow
def test_a_killed_server_gives_unavailable_then_a_restart_works(corpus: Path, start_server: Any):
    server: ServerProcess = start_server(corpus)
    retriever = HttpRetriever(server.url, timeout_s=1.0, retries=2, backoff_s=0.05)

    async def episode() -> list[str]:  # searches one after another until one fails
        statuses = ["ok"]
        while statuses[-1] == "ok" and len(statuses) < 10_000:
            statuses.append((await retriever.search("capital of Peru", 1)).status)
        return statuses[1:]

    async def run_while_killing() -> list[str]:
        episodes = [asyncio.ensure_future(episode()) for _ in range(16)]
        await asyncio.sleep(0.3)
        server.kill()
        return [status for statuses in await asyncio.gather(*episodes) for status in statuses]

    during = asyncio.run(run_while_killing())
    assert set(during) == {"ok", "unavailable"} and during.count("unavailable") == 16
    start = time.perf_counter()

    async def after_kill() -> list[SearchResult]:
        return list(await asyncio.gather(*(retriever.search("Peru", 1) for _ in range(50))))

    after = asyncio.run(after_kill())
    assert {r.status for r in after} == {"unavailable"}
    assert "cannot reach" in after[0].message and "(after 3 attempts)" in after[0].message
    assert time.perf_counter() - start < 3 * 1.0 + 0.5

    start_server(corpus, port=server.port)
    again = search(retriever, "capital of Peru", 1)
    assert again.status == "ok" and again.passages[0].id == "doc-3"
    retriever.close()


@pytest.mark.parametrize("topk", [1, 3])
def test_one_callers_searches_awaited_together_are_one_request(corpus: Path, start_server: Any, topk: int):
    """An episode that awaits 8 searches at once (``asyncio.gather``) sends them as one request,
    on a fresh client and on one that has sent before."""
    server: ServerProcess = start_server(corpus)
    retriever = HttpRetriever(server.url)

    async def eight() -> list[SearchResult]:
        return await asyncio.gather(*(retriever.search(f"capital of {c}", topk) for c in list(CAPITALS)[:8]))

    for round_ in (1, 2):
        assert {r.status for r in asyncio.run(eight())} == {"ok"}
        assert server.stats()["requests"] == round_, server.stats()
    retriever.close()

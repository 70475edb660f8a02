"""The retriever server's HTTP surface (in process) and ``agentrl serve retriever``'s errors."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agentrl.cli.main import main
from agentrl_tools.search import server as server_module
from agentrl_tools.search.index import BM25Index
from agentrl_tools.search.server import ServerLimits, create_app
from helpers import free_port


def healthy(client: TestClient) -> dict[str, object]:
    deadline = time.monotonic() + 10
    while (response := client.get("/health")).status_code != 200:
        assert time.monotonic() < deadline and response.json()["status"] == "loading", response.json()
        time.sleep(0.01)
    return response.json()


def test_search_r1_response_shapes(corpus: Path):
    with TestClient(create_app(corpus)) as client:
        assert healthy(client) == {"status": "ok", "documents": 48}
        body = {"queries": ["capital of Japan", "?!"], "topk": 2, "return_scores": True}
        scored = client.post("/retrieve", json=body).json()["result"]
        assert [len(r) for r in scored] == [2, 0]
        assert scored[0][0]["document"] == {"id": "doc-1", "contents": '"Japan"\nThe capital of Japan is Tokyo.'}
        assert isinstance(scored[0][0]["score"], float) and scored[0][0]["score"] >= scored[0][1]["score"]
        bare = client.post("/retrieve", json={"queries": ["capital of Japan"], "topk": 2}).json()["result"]
        assert bare == [[entry["document"] for entry in scored[0]]]
        default_topk = client.post("/retrieve", json={"queries": ["capital"]}).json()["result"]
        assert len(default_topk[0]) == 3  # Search-R1's default


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"queries": ["x"], "topk": 0}, "topk must be between 1 and 100, got 0"),
        ({"queries": ["x"], "topk": 10**6}, "topk must be between 1 and 100, got 1000000"),
        ({"queries": ["x"] * 1025}, "at most 1024 queries per request, got 1025"),
        ({"queries": ["x" * 4097]}, "queries must be at most 4096 characters, one has 4097"),
        ({"queries": "capital"}, "Input should be a valid list"),
        ({"queries": [1]}, "Input should be a valid string"),
        ({"topk": 3}, "Field required"),
    ],
)
def test_bad_requests_are_422_with_a_reason(corpus: Path, body: dict[str, object], reason: str):
    with TestClient(create_app(corpus)) as client:
        healthy(client)
        response = client.post("/retrieve", json=body)
    assert response.status_code == 422
    assert reason in str(response.json()["detail"])


def test_limits_are_configurable_and_big_bodies_refused(corpus: Path):
    limits = ServerLimits(max_queries=2, max_topk=5, max_body_bytes=1000)
    with TestClient(create_app(corpus, limits=limits)) as client:
        healthy(client)
        assert client.post("/retrieve", json={"queries": ["a", "b"], "topk": 5}).status_code == 200
        assert "topk must be between 1 and 5" in client.post("/retrieve", json={"queries": ["a"], "topk": 6}).text
        assert client.post("/retrieve", json={"queries": ["a", "b", "c"]}).status_code == 422
        too_big = client.post("/retrieve", json={"queries": ["a" * 2000]})
    assert too_big.status_code == 413 and "over the limit of 1000" in too_big.json()["detail"]


def test_health_is_503_until_the_index_is_loaded(corpus: Path, monkeypatch: pytest.MonkeyPatch):
    release, real_open = threading.Event(), BM25Index.open

    def slow_open(*args: object) -> BM25Index:
        release.wait(10)
        return real_open(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(server_module.BM25Index, "open", staticmethod(slow_open))
    with TestClient(create_app(corpus)) as client:
        loading = client.get("/health")
        assert (loading.status_code, loading.json()) == (503, {"status": "loading"})
        early = client.post("/retrieve", json={"queries": ["capital"]})
        assert early.status_code == 503 and "still loading" in early.json()["detail"]
        release.set()
        assert healthy(client)["documents"] == 48


def test_health_reports_a_failed_load(tmp_path: Path):
    with TestClient(create_app(tmp_path / "missing.jsonl")) as client:
        deadline = time.monotonic() + 10
        while (body := client.get("/health").json())["status"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.01)
    assert body["status"] == "failed" and "does not exist" in body["reason"]


def test_concurrent_requests_share_index_calls(corpus: Path):
    with TestClient(create_app(corpus)) as client:
        healthy(client)
        threads = [
            threading.Thread(target=client.post, args=("/retrieve",), kwargs={"json": {"queries": ["capital"] * 8}})
            for _ in range(32)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = client.get("/stats").json()
    assert (stats["requests"], stats["queries"]) == (32, 256)
    assert 1 <= stats["bm25_calls"] <= 32


def test_the_server_imports_nothing_from_training():
    code = (
        "import sys, agentrl_tools.search.server; "
        "print([m for m in sys.modules if m.startswith(('agentrl.trainer', 'agentrl.learner', 'agentrl.rollout'))])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_serve_missing_corpus_is_exit_2_and_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["serve", "retriever", "--corpus", str(tmp_path / "missing.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("agentrl: error: corpus file") and "does not exist" in err


def test_serve_busy_port_and_bad_workers_are_one_line(corpus: Path, capsys: pytest.CaptureFixture[str]):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "retriever", "--corpus", str(corpus), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in err
    assert main(["serve", "retriever", "--corpus", str(corpus), "--workers", "0"]) == 2
    assert capsys.readouterr().err == "agentrl: error: --workers must be at least 1, got 0\n"


NON_FINITE = [
    '{"queries": ["capital"], "topk": NaN}',
    '{"queries": ["capital"], "topk": Infinity}',
    '{"queries": ["capital"], "topk": -Infinity}',
    '{"queries": ["capital"], "topk": 1e999}',
    '{"queries": [NaN]}',
    '{"queries": ["capital", Infinity]}',
    '{"queries": ["capital"], "return_scores": NaN}',
    '{"queries": ["capital"], "topk": 2, "extra": [NaN]}',
]


def test_non_finite_numbers_are_422_and_never_a_traceback(corpus: Path, start_server):
    """JSON's NaN and Infinity (which Python's parser accepts) anywhere in a body: a 422 saying
    so, and the server's log shows no traceback."""
    import httpx

    server = start_server(corpus)
    for body in NON_FINITE:
        response = httpx.post(f"{server.url}/retrieve", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 422, (body, response.status_code, response.text)
        assert "NaN" in response.json()["detail"] or "Infinity" in response.json()["detail"], response.text
    ok = httpx.post(f"{server.url}/retrieve", json={"queries": ["capital of Japan"], "topk": 1})
    assert ok.status_code == 200
    server.kill()
    log = server.proc.stderr.read()
    assert "Traceback" not in log and " 500 " not in log, log


def test_a_chunked_body_over_the_limit_is_refused_before_it_is_read_whole(corpus: Path, start_server):
    """A body without Content-Length (chunked) is counted as it arrives: a 413 once it passes
    ``max_body_bytes`` (32 MB), not a parse of all 40 MB."""
    import httpx

    server = start_server(corpus)
    sent = 0

    def forty_mb():
        nonlocal sent
        yield b'{"queries": ["'
        for _ in range(40):
            sent += 1 << 20
            yield b"a" * (1 << 20)
        yield b'"]}'

    try:
        response = httpx.post(f"{server.url}/retrieve", content=forty_mb(), timeout=30)
        assert response.status_code == 413 and "over the limit" in response.json()["detail"], response.text
    except httpx.TransportError:  # the server answered and closed while the rest was still being sent
        assert sent < 40 << 20
    assert httpx.get(f"{server.url}/health").status_code == 200  # and it still serves


def test_a_corpus_with_duplicate_ids_stops_serve_in_one_line(tmp_path: Path):
    rows = [{"id": "a", "contents": "x\none"}, {"id": "b", "contents": "y\ntwo"}, {"id": "a", "contents": "z\nthree"}]
    corpus = tmp_path / "dup.jsonl"
    corpus.write_text("".join(json.dumps(row) + "\n" for row in rows))
    command = [sys.executable, "-m", "agentrl.cli.main", "serve", "retriever", "--corpus", str(corpus)]
    command += ["--port", str(free_port())]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)  # served, it would never end
    assert done.returncode == 2, done.stderr
    err = done.stderr
    assert err.count("\n") == 1 and "duplicate ids" in err and "'a' (lines 1, 3)" in err, err

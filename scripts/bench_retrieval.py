"""Retrieval throughput and latency: BM25 in process against ``agentrl serve retriever``.

Writes a seeded synthetic corpus (``--docs`` documents of Zipf-distributed made-up words),
then runs ``--episodes`` concurrent episodes on one event loop (as the async trainer does),
each issuing searches one after another for ``--seconds``. Measured per setting: searches
per second, p50 and p99 latency, and for the server the requests it received and the index
calls it made (from ``/stats``; fewer calls than requests means server-side batching).

Settings: ``local`` (``LocalRetriever``), ``http`` (``HttpRetriever`` against the server,
started as a subprocess, batching), and at the largest episode count ``http max_batch=1``
(one request per search). Client and server share this machine's CPUs.

    python scripts/bench_retrieval.py
    python scripts/bench_retrieval.py --docs 100000 --episodes 1 64 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from agentrl_tools.search.base import Retriever
from agentrl_tools.search.client import HttpRetriever
from agentrl_tools.search.index import ensure_index
from agentrl_tools.search.local import LocalRetriever


def make_corpus(path: Path, docs: int, seed: int) -> list[str]:
    """Write ``docs`` documents; return queries drawn from them (3 to 6 of a document's words)."""
    rng = random.Random(seed)
    vocab = ["".join(rng.choices("bcdfghjklmnprstvz", k=2) + rng.choices("aeiou", k=1) + rng.choices("nrst", k=1))
             + str(i % 97) for i in range(20_000)]  # fmt: skip
    weights = [1 / (rank + 1) for rank in range(len(vocab))]
    queries = []
    with path.open("w") as handle:
        for i in range(docs):
            words = rng.choices(vocab, weights=weights, k=rng.randint(60, 140))
            handle.write(f'{{"id": "d{i}", "contents": "\\"Title {i}\\"\\n{" ".join(words)}"}}\n')
            queries.append(" ".join(rng.sample(words, rng.randint(3, 6))))
    rng.shuffle(queries)
    return queries


async def run(retriever: Retriever, queries: list[str], episodes: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    failures = 0
    deadline = time.perf_counter() + seconds

    async def episode(offset: int) -> None:
        nonlocal failures
        i = offset
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            result = await retriever.search(queries[i % len(queries)], 3)
            latencies.append(time.perf_counter() - start)
            failures += result.status != "ok"
            i += episodes

    start = time.perf_counter()
    await asyncio.gather(*(episode(e) for e in range(episodes)))
    elapsed = time.perf_counter() - start
    cuts = statistics.quantiles(latencies, n=100)
    return {"qps": len(latencies) / elapsed, "p50": cuts[49] * 1e3, "p99": cuts[98] * 1e3, "failed": failures}


def start_server(corpus: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "agentrl.cli.main", "serve", "retriever", "--corpus", str(corpus)]
    proc = subprocess.Popen([*cmd, "--port", str(port), "--workers", str(workers)], stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    HttpRetriever(url, startup_wait_s=120).check()
    return proc, url


def stats(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/stats").json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--episodes", type=int, nargs="+", default=[1, 16, 256])
    parser.add_argument("--seconds", type=float, default=3.0, help="per setting")
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench_retrieval-"))
    corpus = folder / "corpus.jsonl"
    queries = make_corpus(corpus, args.docs, args.seed)
    start = time.perf_counter()
    ensure_index(corpus)
    print(f"{args.docs} documents, index built in {time.perf_counter() - start:.2f}s, {os.cpu_count()} CPUs")
    proc, url = start_server(corpus, args.workers)
    rows = []
    try:
        settings: list[tuple[str, int, Retriever]] = []
        for episodes in args.episodes:
            settings.append(("local", episodes, LocalRetriever(corpus)))
            settings.append(("http", episodes, HttpRetriever(url)))
        settings.append(("http max_batch=1", max(args.episodes), HttpRetriever(url, max_batch=1)))
        for name, episodes, retriever in settings:
            asyncio.run(retriever.search("warm up", 3))
            before = stats(url)
            measured = asyncio.run(run(retriever, queries, episodes, args.seconds))
            after = stats(url)
            retriever.close()
            served = {k: after[k] - before[k] for k in ("requests", "bm25_calls")} if name != "local" else {}
            rows.append((name, episodes, measured, served))
    finally:
        proc.terminate()
        proc.wait()
    print(f"{'setting':<17} {'episodes':>8} {'searches/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} "
          f"{'bm25 calls':>10} {'failed':>6}")  # fmt: skip
    for name, episodes, m, served in rows:
        print(f"{name:<17} {episodes:>8} {m['qps']:>10.0f} {m['p50']:>8.2f} {m['p99']:>8.2f} "
              f"{served.get('requests', '-'):>9} {served.get('bm25_calls', '-'):>10} {m['failed']:>6.0f}")  # fmt: skip


if __name__ == "__main__":
    main()

"""Python-tool throughput and latency per sandbox backend, warm pool against cold start.

Each of ``--concurrency`` episodes (threads, as the rollout's tool calls run) opens a session
and makes ``--calls`` trivial calls (``x = i``, then ``print(x)``...); a session's first call
waits for its sandbox unless the pool had one ready. Three pools per backend and concurrency:
``warm N`` (N sandboxes started ahead; the pool starts N more while the episodes run, as in
training), ``cold`` (each session starts its sandbox on its first call, while the others'
calls run) and ``steady`` (every session's sandbox is started before the clock starts, so the
calls measured share the machine with nothing but each other: the call latency itself).
Printed: calls per second, p50 and p99 latency of the calls after the first, and p50 of first
calls (with a cold pool: the session start). ``--repeat`` runs each row that many times and
prints the median of each figure. The baseline is the naive way: one ``docker run --rm`` per
call (a fresh container each time, no state).

    python scripts/bench_sandbox.py
    python scripts/bench_sandbox.py --backends bwrap --concurrency 1 8 --calls 200 --repeat 3
    python scripts/bench_sandbox.py --json figures.json      # the rows as JSON too
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import statistics
import subprocess
import threading
import time

from agentrl_tools.sandbox.backends import open_pool
from agentrl_tools.sandbox.image import IMAGE
from agentrl_tools.sandbox.session import Limits, PythonSession, SandboxUnavailable


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def episode(pool, calls: int, started: threading.Barrier | None = None) -> list[float]:
    """The latencies of a session's calls; with ``started``, the first call (the start) is
    made, and the others wait until every episode has made its own."""
    session = PythonSession(pool)
    latencies = []
    try:
        for i in range(calls):
            start = time.perf_counter()
            result = session.run(f"x = {i}" if i % 2 == 0 else "print(x)")
            if result.status != "ok":
                raise RuntimeError(f"call failed: {result}")
            latencies.append(time.perf_counter() - start)
            if i == 0 and started is not None:
                started.wait()
    finally:
        session.close()
    return latencies


def measure(backend: str, pool_kind: str, concurrency: int, calls: int) -> dict[str, float]:
    warm = concurrency if pool_kind == "warm" else 0
    pool = open_pool(backend, Limits(), warm=warm)
    if warm:
        deadline = time.time() + 120
        while pool.ready < warm and time.time() < deadline:  # let the pool fill first
            time.sleep(0.05)
    started = threading.Barrier(concurrency + 1) if pool_kind == "steady" else None
    with concurrent.futures.ThreadPoolExecutor(concurrency) as executor:
        futures = [executor.submit(episode, pool, calls, started) for _ in range(concurrency)]
        if started is not None:
            started.wait()
        start = time.perf_counter()
        results = [future.result() for future in futures]
    wall = time.perf_counter() - start
    pool.close()
    later = [t for latencies in results for t in latencies[1:]]
    measured = len(later) if started is not None else sum(map(len, results))
    return {
        "calls_per_s": measured / wall,
        "p50_ms": 1000 * statistics.median(later),
        "p99_ms": 1000 * percentile(later, 0.99),
        "first_p50_ms": 1000 * statistics.median(latencies[0] for latencies in results),
    }


def median_row(rows: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(row[key] for row in rows) for key in rows[0]}


def docker_run_baseline(concurrency: int, calls: int) -> dict[str, float]:
    command = ["docker", "run", "--rm", "--network", "none", "--read-only", "--user", "65534:65534", IMAGE]

    def one(_: int) -> float:
        start = time.perf_counter()
        subprocess.run([*command, "python3", "-c", "print(1)"], check=True, capture_output=True)
        return time.perf_counter() - start

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as executor:
        every = list(executor.map(one, range(concurrency * calls)))
    wall = time.perf_counter() - start
    return {
        "calls_per_s": len(every) / wall,
        "p50_ms": 1000 * statistics.median(every),
        "p99_ms": 1000 * percentile(every, 0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["bwrap", "docker"])
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 8, 64])
    parser.add_argument("--calls", type=int, default=10, help="calls per episode")
    parser.add_argument("--repeat", type=int, default=1, help="runs per row; each figure is their median")
    parser.add_argument("--baseline-calls", type=int, default=3, help="docker run calls per thread")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    rows = []
    print("| backend | pool | episodes at once | calls/s | p50 ms | p99 ms | first call p50 ms |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for backend in args.backends:
        for concurrency in args.concurrency:
            for kind in ("warm", "cold", "steady"):
                try:
                    row = median_row([measure(backend, kind, concurrency, args.calls) for _ in range(args.repeat)])
                except SandboxUnavailable as exc:
                    print(f"| {backend} | - | {concurrency} | unavailable: {exc} | | | |")
                    break
                pool = f"warm {concurrency}" if kind == "warm" else kind
                rows.append({"backend": backend, "pool": pool, "concurrency": concurrency, **row})
                print(
                    f"| {backend} | {pool} | {concurrency} | {row['calls_per_s']:.0f} | {row['p50_ms']:.3f} | "
                    f"{row['p99_ms']:.2f} | {row['first_p50_ms']:.1f} |",
                    flush=True,
                )
    if "docker" in args.backends and args.baseline_calls > 0:
        for concurrency in args.concurrency[:2]:
            row = docker_run_baseline(concurrency, args.baseline_calls)
            rows.append({"backend": "docker run --rm per call", "concurrency": concurrency, **row})
            print(
                f"| docker run --rm per call | - | {concurrency} | {row['calls_per_s']:.1f} | {row['p50_ms']:.0f} | "
                f"{row['p99_ms']:.0f} | - |",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as out:
            json.dump(rows, out, indent=1)


if __name__ == "__main__":
    main()

"""Corpora, a real ``agentrl serve retriever`` process, and in-thread stub servers."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CAPITALS = {
    "France": "Paris",
    "Japan": "Tokyo",
    "Kenya": "Nairobi",
    "Peru": "Lima",
    "Norway": "Oslo",
    "Egypt": "Cairo",
    "Canada": "Ottawa",
    "Chile": "Santiago",
}


def capital_rows() -> list[dict[str, Any]]:
    """One document per country, Search-R1 shaped, plus filler that mentions no country."""
    rows: list[dict[str, Any]] = [
        {"id": f"doc-{i}", "contents": f'"{country}"\nThe capital of {country} is {city}.'}
        for i, (country, city) in enumerate(CAPITALS.items())
    ]
    rows += [{"id": f"filler-{i}", "contents": f"Filler {i}\nweather report number {i} sunny"} for i in range(40)]
    return rows


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


@contextlib.contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Run an ASGI app under uvicorn in a thread, on a free port; yields its URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()

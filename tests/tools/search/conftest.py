"""Fixtures of the retriever tests: a small corpus and real server processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from search_helpers import capital_rows, write_jsonl

from helpers import ServerProcess


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "corpus.jsonl", capital_rows())


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(corpus: Path, port: int | None = None) -> ServerProcess:
        server = ServerProcess(corpus, port)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.kill()

"""Corpus reading, the BM25 index on disk, query handling, and the in-process retriever."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from search_helpers import CAPITALS, capital_rows, write_jsonl

from agentrl.errors import AgentRLWarning
from agentrl_tools.search import index as index_module
from agentrl_tools.search.base import RetrieverUnavailable
from agentrl_tools.search.corpus import CorpusError, load_corpus
from agentrl_tools.search.index import BM25Index, ensure_index, index_home, tokenize
from agentrl_tools.search.local import LocalRetriever, shared_index


def test_both_row_shapes(tmp_path: Path):
    path = write_jsonl(
        tmp_path / "c.jsonl",
        [
            {"id": 7, "contents": '"Paris"\nCapital of France.'},
            {"id": "b", "title": "Oslo", "text": "Capital of Norway."},
        ],
    )
    corpus = load_corpus(path)
    assert corpus.ids == ["7", "b"]
    assert corpus.contents == ['"Paris"\nCapital of France.', "Oslo\nCapital of Norway."]
    index = BM25Index.open(path)
    [paris] = index.search("france", 5)
    assert (paris.id, paris.title, paris.text) == ("7", "Paris", "Capital of France.")
    [oslo] = index.search("NORWAY?", 5)
    assert (oslo.id, oslo.title, oslo.text) == ("b", "Oslo", "Capital of Norway.")


def test_bad_lines_are_skipped_counted_and_warned_once(tmp_path: Path):
    rows = [
        {"id": 1, "contents": "good one"},
        "this is not json",
        {"id": 2},  # no contents
        "[1, 2]",
        {"id": True, "contents": "a bool is not an id"},
        "",  # blank lines are not counted
        {"id": 3, "title": "T", "text": "good two"},
    ]
    path = write_jsonl(tmp_path / "c.jsonl", rows)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        corpus = load_corpus(path)
    assert (len(corpus), corpus.skipped) == (2, 4)
    [warning] = caught
    assert warning.category is AgentRLWarning
    assert "skipped 4 line(s)" in str(warning.message) and "line 2" in str(warning.message)


def test_a_corpus_with_no_usable_row_is_one_line_error(tmp_path: Path):
    path = write_jsonl(tmp_path / "c.jsonl", ["nope", {"id": 1, "contents": "   "}])
    with pytest.raises(CorpusError, match="no usable document") as info:
        load_corpus(path)
    assert "\n" not in str(info.value)
    with pytest.raises(CorpusError, match="does not exist"):
        load_corpus(tmp_path / "missing.jsonl")
    with pytest.raises(CorpusError, match="does not exist"):
        ensure_index(tmp_path / "missing.jsonl")
    punctuation = write_jsonl(tmp_path / "p.jsonl", [{"id": 1, "contents": "!!! ?"}])
    with pytest.raises(CorpusError, match="no searchable words"):
        ensure_index(punctuation)


def test_index_is_saved_beside_the_corpus_and_reloaded_memory_mapped(corpus: Path, monkeypatch: pytest.MonkeyPatch):
    folder = ensure_index(corpus)
    assert folder.parent == corpus.parent / "corpus.jsonl.bm25s"
    assert json.loads((folder / "meta.json").read_text())["documents"] == len(capital_rows())

    def no_build(*args: object) -> None:
        raise AssertionError("rebuilt an index that is up to date")

    monkeypatch.setattr(index_module, "_build", no_build)
    monkeypatch.setattr(index_module, "fingerprint", no_build)  # an unchanged corpus is not even hashed again
    index = BM25Index.open(corpus)
    assert isinstance(index.model.scores["data"], np.memmap)
    assert [p.id for p in index.search("capital of Kenya", 1)] == ["doc-2"]


def test_index_is_rebuilt_when_the_corpus_changes(corpus: Path):
    first = ensure_index(corpus)
    os.utime(corpus)  # touched but unchanged: same version
    assert ensure_index(corpus) == first
    write_jsonl(
        corpus, [*capital_rows(), {"id": "new", "contents": "Atlantis\nThe capital of Atlantis is Poseidonia."}]
    )
    second = ensure_index(corpus)
    assert second != first and not first.exists()  # the old version is removed
    assert [p.id for p in BM25Index.open(corpus).search("poseidonia", 3)] == ["new"]


def test_cache_dir_when_given_or_when_the_corpus_folder_is_read_only(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    assert ensure_index(corpus, tmp_path / "cache").is_relative_to(tmp_path / "cache" / "bm25s")
    monkeypatch.setenv("AGENTRL_CACHE_DIR", str(tmp_path / "default"))
    monkeypatch.setattr(index_module.os, "access", lambda path, mode: False)
    assert index_home(corpus).is_relative_to(tmp_path / "default" / "bm25s")


def test_a_killed_build_leaves_no_broken_index(corpus: Path, monkeypatch: pytest.MonkeyPatch):
    home = index_home(corpus)
    home.mkdir()
    (home / ".tmp-999999999-dead").mkdir()  # left by a builder that no longer runs
    real_write = index_module._write

    def dies_half_way(corpus_: object, key: str, folder: Path) -> None:
        (folder / "params.index.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(index_module, "_write", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        ensure_index(corpus)
    assert sorted(p.name for p in home.iterdir()) == []  # neither a version nor its temporary folder
    monkeypatch.setattr(index_module, "_write", real_write)
    folder = ensure_index(corpus)
    assert sorted(p.name for p in home.iterdir()) == ["current.json", folder.name]


def test_two_processes_building_at_once_both_get_a_complete_index(tmp_path: Path):
    rows = [
        {"id": i, "contents": f"doc {i} " + " ".join(f"w{(i * 7 + j) % 997}" for j in range(30))} for i in range(4000)
    ]
    path = write_jsonl(tmp_path / "big.jsonl", rows)
    code = "import sys; from agentrl_tools.search.index import ensure_index; print(ensure_index(sys.argv[1]))"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outputs[0] == outputs[1]
    home = index_home(path)
    assert sorted(p.name for p in home.iterdir()) == ["current.json", Path(outputs[0]).name]
    assert len(BM25Index(outputs[0])) == 4000


BAD_QUERIES = {
    "empty": "",
    "blank": "  \n\t ",
    "punctuation": "?!...,;:()[]{}",
    "control characters": "\x00\x01\x02\x1b[31m\x7f",
    "unicode junk": "😀🙃\u200b\u200d\ufeff\U0010ffff",
    "lone surrogate": "\ud800",
    "single letters": "a b c d e",
}


@pytest.mark.parametrize("query", BAD_QUERIES.values(), ids=BAD_QUERIES.keys())
def test_a_query_without_indexable_words_returns_no_passages(corpus: Path, query: str):
    assert BM25Index.open(corpus).search(query, 3) == []


def test_a_huge_query_is_capped_not_slow(corpus: Path):
    index = BM25Index.open(corpus)
    huge = ("capital of Peru " * 7000)[:100_000]
    start = time.perf_counter()
    assert index.search(huge, 1)[0].id == "doc-3"
    assert time.perf_counter() - start < 0.5
    assert index.search("x " * 600 + "Peru", 3) == []  # the word past READ_QUERY_CHARS is not read
    assert len(tokenize(huge[: index_module.READ_QUERY_CHARS])) < 300


def test_topk_is_clamped_to_the_corpus(corpus: Path):
    index = BM25Index.open(corpus)
    assert index.search("capital", 0) == [] and index.search("capital", -5) == []
    assert [p.id for p in index.search("capital", 3)] == ["doc-0", "doc-1", "doc-2"]  # a tie: corpus order
    everything = index.search("capital", 10**6)
    assert len(everything) == len(CAPITALS)  # documents that share no word with the query are left out
    assert len(index.search("capital sunny weather", 10**6)) == len(capital_rows())


def test_search_many_is_one_call_and_matches_single_searches(corpus: Path):
    index = BM25Index.open(corpus)
    queries = [f"capital of {country}" for country in CAPITALS] + ["", "weather report 3", "sunny"] * 30
    singles = [index.search(q, 4) for q in queries]
    calls = index.calls
    assert index.search_many(queries, 4) == singles
    assert index.calls == calls + 1
    assert [ps[0].id for ps in singles[: len(CAPITALS)]] == [f"doc-{i}" for i in range(len(CAPITALS))]


def test_ranking_matches_bm25s_scores(corpus: Path):
    """The sparse batch scorer against bm25s's own dense scores (ties may come in any order)."""
    index = BM25Index.open(corpus)
    position = {row["id"]: i for i, row in enumerate(capital_rows())}
    for query in ["capital of Chile", "weather report 12 sunny", "the capital capital Japan"]:
        dense = index.model.get_scores(index.query_ids(query))  # (N,)
        got = index.search(query, 5)
        np.testing.assert_allclose([p.score for p in got], sorted(dense[dense > 0], reverse=True)[:5], rtol=1e-5)
        np.testing.assert_allclose([p.score for p in got], [dense[position[p.id]] for p in got], rtol=1e-5)


@pytest.mark.parametrize("factor", [0, 10**9], ids=["dense", "sparse"])
def test_dense_and_sparse_scoring_agree(corpus: Path, monkeypatch: pytest.MonkeyPatch, factor: int):
    index = BM25Index.open(corpus)
    queries = ["capital of Chile", "weather report 12 sunny", "the capital capital Japan", "Filler 7"]
    expected = index.search_many(queries, 6)
    monkeypatch.setattr(index_module, "SPARSE_FACTOR", factor)
    got = index.search_many(queries, 6)
    assert [[p.id for p in ps] for ps in got] == [[p.id for p in ps] for ps in expected]
    np.testing.assert_allclose([p.score for ps in got for p in ps], [p.score for ps in expected for p in ps], rtol=1e-6)


def test_local_retriever(corpus: Path, tmp_path: Path):
    retriever = LocalRetriever(corpus)
    retriever.check()
    result = asyncio.run(retriever.search("What is the capital of Egypt?", 2))
    assert result.status == "ok" and result.passages[0].id == "doc-5" and result.latency_s > 0
    assert asyncio.run(retriever.search("", 2)).passages == ()
    assert LocalRetriever(corpus).index() is retriever.index()  # one index per process and corpus
    retriever.close()
    retriever.close()
    with pytest.raises(RetrieverUnavailable, match="does not exist"):
        LocalRetriever(tmp_path / "missing.jsonl").check()
    failed = asyncio.run(LocalRetriever(tmp_path / "missing.jsonl").search("x", 1))
    assert failed.status == "error" and "does not exist" in failed.message


def test_local_retriever_from_many_threads_and_loops(tmp_path: Path):
    path = write_jsonl(tmp_path / "c.jsonl", capital_rows())
    loaded: list[object] = []
    results: list[str] = []

    def episode(country: str) -> None:
        loaded.append(shared_index(path))
        results.append(asyncio.run(LocalRetriever(path).search(f"capital of {country}", 1)).passages[0].id)

    threads = [threading.Thread(target=episode, args=(c,)) for c in list(CAPITALS) * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(x) for x in loaded}) == 1
    assert sorted(results) == sorted([f"doc-{i}" for i in range(len(CAPITALS))] * 2)

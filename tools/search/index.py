"""A BM25 index of a JSONL corpus: built once, kept on disk, loaded memory-mapped.

Owns tokenisation (lowercase, words of two or more word characters, no stopwords, no
stemming; one function, ``tokenize``, for documents and queries alike), where an index lives,
how it is built and replaced, and ``BM25Index.search_many``. Must not know about HTTP,
event loops, environments or the trainer.

On disk, an index of ``wiki.jsonl`` lives in ``wiki.jsonl.bm25s/`` beside it, or, when
``cache_dir`` is given or the corpus's folder is not writable, in
``<cache_dir>/bm25s/wiki.jsonl-<hash of its path>.bm25s/``. Inside, one folder per corpus
version, named by the corpus's sha256 (``corpus.fingerprint``), holds bm25s's arrays, the
documents (``docs.jsonl`` plus ``offsets.npy``, read through ``mmap``) and ``meta.json``.
A version is built in a temporary folder and renamed into place, so a folder that exists is
complete: two processes building at once both finish (the second rename loses and its copy is
dropped), and a killed build leaves only a temporary folder, removed by the next build.
``current.json`` remembers the corpus's size, mtime and fingerprint so an unchanged corpus is
not hashed again on every load.

Queries: only the first ``READ_QUERY_CHARS`` characters are tokenised (a 100 KB query costs
the same as a short one); words not in the corpus are dropped, and a query left with none
returns no passages without touching the index. Passages that share no word with the query
(score 0) are not returned, and ``topk`` is clamped to the corpus size.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import re
import shutil
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agentrl_tools.search.base import Passage, default_cache_dir
from agentrl_tools.search.corpus import Corpus, CorpusError, fingerprint, load_corpus

READ_QUERY_CHARS = 1000
"""Characters of a query that are tokenised; the rest is ignored."""

FORMAT = 2
"""Bumped when the on-disk layout, ``tokenize`` or what a corpus must satisfy changes, so old
indexes are rebuilt (2: a corpus with duplicate ids is refused)."""

SPARSE_FACTOR = 8
"""A query whose posting lists hold fewer than N / SPARSE_FACTOR entries is scored sparsely."""

_WORD = re.compile(r"\w\w+")


def tokenize(text: str) -> list[str]:
    """The words BM25 sees: lowercase runs of two or more word characters."""
    return _WORD.findall(text.lower())


def index_home(corpus_path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder that holds the index versions of ``corpus_path`` (see the module docstring)."""
    path = Path(corpus_path).resolve()
    if cache_dir is None and os.access(path.parent, os.W_OK):
        return path.parent / f"{path.name}.bm25s"
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    return root / "bm25s" / f"{path.name}-{digest}.bm25s"


def ensure_index(corpus_path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder of the index of the corpus as it is now, built first when there is none.

    Raises ``CorpusError`` (one line) for a missing or unusable corpus or an index folder that
    cannot be created."""
    path = Path(corpus_path).resolve()
    try:
        stat = path.stat()
    except OSError:
        raise CorpusError(f"corpus file {corpus_path} does not exist") from None
    home = index_home(path, cache_dir)
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CorpusError(f"cannot create the index folder {home}: {exc.strerror or exc}; pass a cache dir") from None
    remembered = _remembered_fingerprint(home, stat)
    key = remembered or fingerprint(path)
    target = home / f"v{FORMAT}-{key.rpartition('-')[2][:32]}"
    if not target.is_dir():
        try:
            _build(path, key, target)
        except OSError as exc:  # a full disk, a folder of someone else's
            raise CorpusError(f"cannot write the index to {home}: {exc.strerror or exc}; pass a cache dir") from None
    if remembered is None:
        _remember(home, {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "fingerprint": key})
    return target


def _remembered_fingerprint(home: Path, stat: os.stat_result) -> str | None:
    try:
        seen = json.loads((home / "current.json").read_text())
    except (OSError, ValueError):
        return None
    if isinstance(seen, dict) and seen.get("size") == stat.st_size and seen.get("mtime_ns") == stat.st_mtime_ns:
        return str(seen.get("fingerprint") or "") or None
    return None


def _remember(home: Path, record: dict[str, Any]) -> None:
    """Write ``current.json`` atomically; a failure only costs a re-hash next time."""
    with contextlib.suppress(OSError):
        fd, tmp = tempfile.mkstemp(dir=home, prefix=".current-")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(record, handle)
            os.replace(tmp, home / "current.json")
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def _build(path: Path, key: str, target: Path) -> None:
    corpus = load_corpus(path)
    home = target.parent
    _prune(home, keep=None)  # leftovers of killed builds
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{os.getpid()}-", dir=home))
    try:
        _write(corpus, key, tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not target.is_dir():  # not "another process finished first"
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _prune(home, keep=target.name)


def _prune(home: Path, keep: str | None) -> None:
    """Remove other index versions (when ``keep`` is given) and temporary folders whose
    builder is gone. A process still reading a removed version keeps its open files."""
    for entry in home.iterdir():
        name = entry.name
        if name.startswith(".tmp-"):
            pid = name.split("-")[1] if name.count("-") >= 2 else ""
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(entry, ignore_errors=True)
        elif keep is not None and name.startswith("v") and entry.is_dir() and name != keep:
            doomed = home / f".tmp-{os.getpid()}-old-{name}"
            with contextlib.suppress(OSError):
                entry.rename(doomed)  # renamed first, so no reader sees a half-removed version
                shutil.rmtree(doomed, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write(corpus: Corpus, key: str, folder: Path) -> None:
    import bm25s

    vocab: dict[str, int] = {}
    token_ids = [[vocab.setdefault(word, len(vocab)) for word in tokenize(text)] for text in corpus.contents]
    if not vocab:
        raise CorpusError(f"corpus file {corpus.path} has no searchable words (every document is punctuation)")
    model = bm25s.BM25()
    model.index((token_ids, vocab), show_progress=False)
    model.save(str(folder), show_progress=False)
    offsets = [0]
    with (folder / "docs.jsonl").open("wb") as handle:
        for doc_id, contents in zip(corpus.ids, corpus.contents, strict=True):
            line = json.dumps([doc_id, contents], ensure_ascii=False).encode() + b"\n"
            handle.write(line)
            offsets.append(offsets[-1] + len(line))
    np.save(folder / "offsets.npy", np.asarray(offsets, dtype=np.int64))
    meta = {"format": FORMAT, "fingerprint": key, "documents": len(corpus), "skipped": corpus.skipped}
    (folder / "meta.json").write_text(json.dumps(meta))


@dataclass(frozen=True)
class _Docs:
    """The documents of an index version, read on demand from a memory map."""

    offsets: np.ndarray  # (N + 1,) int64 byte offsets into docs.jsonl
    data: mmap.mmap

    def __getitem__(self, i: int) -> tuple[str, str]:
        doc_id, contents = json.loads(self.data[int(self.offsets[i]) : int(self.offsets[i + 1])])
        return str(doc_id), str(contents)


class BM25Index:
    """A loaded index version: ``search_many`` ranks queries against it. Thread-safe."""

    def __init__(self, folder: str | os.PathLike[str]):
        import bm25s

        self.folder = Path(folder)
        self.meta = json.loads((self.folder / "meta.json").read_text())
        self.model = bm25s.BM25.load(str(self.folder), mmap=True, show_progress=False)
        self.vocab: dict[str, int] = self.model.vocab_dict
        with (self.folder / "docs.jsonl").open("rb") as handle:
            data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        self.docs = _Docs(np.asarray(np.load(self.folder / "offsets.npy", mmap_mode="r")), data)
        # plain ndarray views of the memory maps: slicing a np.memmap costs microseconds of Python
        scores = self.model.scores
        self._postings = tuple(np.asarray(scores[name]) for name in ("data", "indices", "indptr"))
        self.documents = int(self.meta["documents"])
        self.calls = 0
        """``search_many`` calls that reached bm25s (a batch of any size counts once)."""
        self._lock = threading.Lock()

    @classmethod
    def open(cls, corpus_path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> BM25Index:
        """The index of ``corpus_path``, built first when needed (see ``ensure_index``)."""
        return cls(ensure_index(corpus_path, cache_dir))

    def __len__(self) -> int:
        return self.documents

    def query_ids(self, query: str) -> list[int]:
        """The indexed words of ``query``'s first ``READ_QUERY_CHARS`` characters, as token ids."""
        return [self.vocab[w] for w in tokenize(query[:READ_QUERY_CHARS]) if w in self.vocab]

    def search(self, query: str, topk: int) -> list[Passage]:
        return self.search_many([query], topk)[0]

    def search_many(self, queries: list[str], topk: int) -> list[list[Passage]]:
        """The top ``topk`` passages of each query, best first (ties: corpus order), in one call
        (the unit the server batches into)."""
        k = max(0, min(int(topk), self.documents))
        ids = [self.query_ids(q) for q in queries]
        if k == 0 or not any(ids):
            return [[] for _ in queries]
        with self._lock:
            self.calls += 1
        out = []
        for words in ids:
            docs, scores = self._top(words, k) if words else ([], [])
            out.append([Passage(*self.docs[d], score=s) for d, s in zip(docs, scores, strict=True)])
        return out

    def _top(self, words: list[int], k: int) -> tuple[list[int], list[float]]:
        """The ``k`` best documents for a query's token ids, and their scores.

        BM25 is bm25s's ``lucene`` variant: a document's score is the sum of its precomputed
        per-word scores over the query's words, a repeated word counting each time (as
        ``bm25s.BM25.get_scores`` does). Only documents sharing a word with the query are
        candidates; bm25s's own ``retrieve`` ranks all N and its top-k costs ~1 ms a query on
        mostly-zero scores. Short posting lists are merged sparsely, long ones into a dense (N,)
        accumulator, whichever touches less memory."""
        data, indices, indptr = self._postings
        counted = Counter(words)
        spans = [(int(indptr[w]), int(indptr[w + 1]), c) for w, c in counted.items()]
        total = sum(hi - lo for lo, hi, _ in spans)
        if total * SPARSE_FACTOR < self.documents:
            hits = np.concatenate([indices[lo:hi] for lo, hi, _ in spans])  # (P,)
            weights = np.concatenate([data[lo:hi] * c for lo, hi, c in spans])  # (P,)
            docs, where = np.unique(hits, return_inverse=True)  # (D,) ascending
            scores = np.bincount(where, weights=weights).astype(np.float32)  # (D,)
        else:
            dense = np.zeros(self.documents, dtype=np.float32)  # (N,)
            for lo, hi, c in spans:
                dense[indices[lo:hi]] += data[lo:hi] * c  # a posting list names each document once
            docs = np.flatnonzero(dense)  # (D,) ascending
            scores = dense[docs]
        if len(docs) > k:  # keep the k best; at the cut, ties go to the earlier documents
            cut = np.partition(scores, len(scores) - k)[len(scores) - k]
            above, tied = np.flatnonzero(scores > cut), np.flatnonzero(scores == cut)
            keep = np.concatenate([above, tied[: k - len(above)]])
            docs, scores = docs[keep], scores[keep]
        order = np.lexsort((docs, -scores))
        return docs[order].tolist(), scores[order].tolist()

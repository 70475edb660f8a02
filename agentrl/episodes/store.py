"""The episode store on disk: every episode of a run or an evaluation, kept true across a kill.

Owns the layout and its reading and writing, nothing about how a record is made
(``agentrl.episodes.records``). A store is a folder, ``episodes/`` inside a run or an eval
folder:

- ``step-NNNNNN.SPLIT.jsonl.gz``: the episodes of one step and split (``train``, or ``eval`` for
  held-out ones), one JSON record per line, gzip-compressed; written whole to a temporary name,
  synced and renamed, so a file is either complete or absent;
- ``index.jsonl.gz``: one short row per episode (step, split, reward, turns, tool errors, ...:
  ``INDEX_FIELDS``) with the file and line that hold it, appended as one more gzip member per
  step after its file is in place. A run killed mid-append leaves at most a cut last member,
  which readers skip.

``rewind`` cuts a store back to a checkpoint's step, as ``agentrl.trainer.history`` cuts
``metrics.jsonl``, so a resumed run records each step once. The viewer (``agentrl view``) and
``agentrl show`` read a store through ``EpisodeStore``; nothing here imports the trainer.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import zlib
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

FOLDER = "episodes"
INDEX = "index.jsonl.gz"
_FILE = re.compile(r"step-(\d+)\.([A-Za-z0-9_-]+)\.jsonl\.gz")
INDEX_FIELDS = (
    "id", "step", "split", "file", "line", "env", "task_id", "group_id", "episode_id", "sample_index",
    "reward", "correct", "turns", "tool_calls", "tool_errors", "parse_errors", "service_failures",
    "truncated", "stop_reason", "staleness", "sampled_tokens", "has_learner",
)  # fmt: skip


def file_name(step: int, split: str) -> str:
    return f"step-{step:06d}.{split}.jsonl.gz"


class EpisodeWriter:
    """Appends the episodes of one step and split at a time to the store in ``folder``."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def write(self, step: int, split: str, records: list[dict[str, Any]]) -> int:
        """Write ``records`` (``agentrl.episodes.records``) as step ``step``'s ``split``; returns the
        bytes the file takes. A step and split written twice replaces the first (its index rows
        are dropped by readers, which keep the newest file's)."""
        if not records:
            return 0
        self.folder.mkdir(parents=True, exist_ok=True)
        name = file_name(step, split)
        path, tmp = self.folder / name, self.folder / f".{name}.tmp"
        with tmp.open("wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as handle:
                for record in records:
                    handle.write((json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode())
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
        rows = [index_row(record, name, line) for line, record in enumerate(records)]
        with (self.folder / INDEX).open("ab") as index:
            index.write(_member(json.dumps(row, separators=(",", ":")) for row in rows))
            index.flush()
            os.fsync(index.fileno())
        return path.stat().st_size


def _member(lines: Iterable[str]) -> bytes:
    """``lines`` as one gzip member (members concatenate into one gzip stream)."""
    return gzip.compress("".join(f"{line}\n" for line in lines).encode(), compresslevel=6, mtime=0)


def _index_lines(path: Path) -> list[str]:
    """The index's lines, up to a member cut short by a kill."""
    lines: list[str] = []
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
        try:
            for line in handle:
                lines.append(line)
        except (EOFError, gzip.BadGzipFile, zlib.error):
            pass
    return lines


def index_row(record: dict[str, Any], name: str, line: int) -> dict[str, Any]:
    summary = {key: record.get(key) for key in INDEX_FIELDS}
    return summary | {"file": name, "line": line}


class EpisodeStore:
    """A store read back: the index (``rows``) and any episode by id (``episode``)."""

    def __init__(self, folder: str | Path, cache_files: int = 8):
        self.folder = Path(folder)
        if self.folder.name != FOLDER and (self.folder / FOLDER).is_dir():
            self.folder = self.folder / FOLDER  # a run or eval folder given: its store
        self._cache: OrderedDict[str, list[bytes]] = OrderedDict()
        self._cache_files = cache_files
        self._rows: list[dict[str, Any]] | None = None
        self._by_id: dict[str, dict[str, Any]] = {}
        self._mtime: float | None = None

    @property
    def exists(self) -> bool:
        return (self.folder / INDEX).is_file()

    def rows(self) -> list[dict[str, Any]]:
        """Every episode's index row, in the order written; rows whose file is gone, and a cut last
        line, are skipped; re-read when the index changed (a run still training)."""
        path = self.folder / INDEX
        mtime = path.stat().st_mtime if path.is_file() else None
        if self._rows is not None and mtime == self._mtime:
            return self._rows
        rows: dict[str, dict[str, Any]] = {}
        present = {p.name for p in self.folder.glob("step-*.jsonl.gz")}
        for line in _index_lines(path) if mtime is not None else []:
            row = _parse(line)
            if row is not None and row.get("file") in present:
                rows.pop(row["id"], None)  # a step written again: its newest row, at its new place
                rows[row["id"]] = row
        self._rows, self._mtime = list(rows.values()), mtime
        self._by_id = rows
        self._cache.clear()
        return self._rows

    def episode(self, episode_id: str) -> dict[str, Any] | None:
        """The whole record of ``episode_id``, or None when the store has no such episode."""
        self.rows()
        row = self._by_id.get(episode_id)
        if row is None:
            return None
        lines = self._lines(row["file"])
        if row["line"] >= len(lines):
            return None
        record: dict[str, Any] = json.loads(lines[row["line"]])
        return record

    def steps(self, split: str | None = None) -> list[int]:
        return sorted({r["step"] for r in self.rows() if split is None or r["split"] == split})

    def _lines(self, name: str) -> list[bytes]:
        if name in self._cache:
            self._cache.move_to_end(name)
            return self._cache[name]
        with gzip.open(self.folder / name, "rb") as handle:
            lines = handle.read().splitlines()
        self._cache[name] = lines
        while len(self._cache) > self._cache_files:
            self._cache.popitem(last=False)
        return lines


def _parse(line: str) -> dict[str, Any] | None:
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return row if isinstance(row, dict) and isinstance(row.get("id"), str) and "file" in row else None


def rewind(folder: str | Path, step: int | None) -> int:
    """Cut the store in ``folder`` back to the checkpoint at ``step`` (None: no checkpoint, the
    run starts afresh): the files of later steps go, and the index keeps the rows of the files
    that stay (not the rows of a file a kill left unwritten); written beside the old index and
    renamed over it. Returns the index rows removed."""
    folder = Path(folder)
    gone: set[str] = set()
    for path in folder.glob("step-*.jsonl.gz"):
        match = _FILE.fullmatch(path.name)
        if match and (step is None or int(match.group(1)) > step):
            gone.add(path.name)
    for path in [*folder.glob(".step-*.tmp"), *folder.glob(".index.tmp")]:  # writes cut short by a kill
        path.unlink()
    index = folder / INDEX
    if not index.is_file():
        for name in gone:
            (folder / name).unlink()
        return 0
    kept, removed = [], 0
    present = {p.name for p in folder.glob("step-*.jsonl.gz")} - gone
    for line in _index_lines(index):
        row = _parse(line)
        if row is not None and row["file"] in present:  # not a later step's, nor one whose file is gone
            kept.append(line.rstrip("\n"))
        elif line.strip():
            removed += 1
    tmp = folder / ".index.tmp"
    with tmp.open("wb") as handle:
        handle.write(_member(kept))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, index)
    for name in gone:
        (folder / name).unlink()
    return removed


def total_bytes(folder: str | Path) -> int:
    """The bytes the store in ``folder`` takes on disk (its files and index)."""
    return sum(p.stat().st_size for p in Path(folder).glob("*") if p.is_file())


def read_all(folder: str | Path, ids: Iterable[str]) -> list[dict[str, Any]]:
    store = EpisodeStore(folder)
    return [r for r in (store.episode(i) for i in ids) if r is not None]

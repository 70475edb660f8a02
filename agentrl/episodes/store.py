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

The step files are the truth and the index a summary of them: a reader leaves out the rows of a
file that is gone and reads a file that has no rows for its own, so a cut or lost index hides
nothing. ``rewind`` cuts a store back to a checkpoint's step, as ``agentrl.trainer.history`` cuts
``metrics.jsonl``, so a resumed run records each step once, and rewrites the index whole. The
viewer (``agentrl view``) and ``agentrl show`` read a store through ``EpisodeStore``; nothing here
imports the trainer.
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

from agentrl.errors import AgentRLError

FOLDER = "episodes"
INDEX = "index.jsonl.gz"
_FILE = re.compile(r"step-(\d+)\.([A-Za-z0-9_-]+)\.jsonl\.gz")
INDEX_FIELDS = (
    "id", "step", "split", "file", "line", "env", "task_id", "group_id", "episode_id", "sample_index", "num_samples",
    "reward", "correct", "turns", "tool_calls", "tool_errors", "tool_errors_by_kind", "parse_errors",
    "service_failures", "truncated", "stop_reason", "staleness", "sampled_tokens", "has_learner",
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
        path = self.folder / name
        _replace(path, _member(json.dumps(record, ensure_ascii=False, separators=(",", ":")) for record in records))
        rows = [index_row(record, name, line) for line, record in enumerate(records)]
        with (self.folder / INDEX).open("ab") as index:
            index.write(_member(json.dumps(row, separators=(",", ":")) for row in rows))
            index.flush()
            os.fsync(index.fileno())
        return path.stat().st_size


def _replace(path: Path, data: bytes) -> None:
    """``path`` holding ``data``, written beside it, synced and renamed over it: a kill leaves the
    old file or the new one (its ``.NAME.tmp`` at most, which ``rewind`` removes)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _member(lines: Iterable[str]) -> bytes:
    """``lines`` as one gzip member (members concatenate into one gzip stream)."""
    return gzip.compress("".join(f"{line}\n" for line in lines).encode(), compresslevel=6, mtime=0)


def _members(raw: bytes) -> list[bytes]:
    """The whole gzip members of ``raw`` decompressed: a last member cut short, or bytes that are
    not gzip, are left out whole."""
    out: list[bytes] = []
    while raw:
        inflate = zlib.decompressobj(wbits=31)
        try:
            data = inflate.decompress(raw)
        except zlib.error:
            return out
        if not inflate.eof:
            return out
        out.append(data)
        raw = inflate.unused_data
    return out


def _index_lines(path: Path) -> list[str]:
    """The index's lines, from its whole members only: a member a kill cut short is left out
    (its episodes are then read from their files, ``EpisodeStore.rows``)."""
    if not path.is_file():
        return []
    members = _members(path.read_bytes())
    return [line for data in members for line in data.decode("utf-8", errors="replace").splitlines()]


class DamagedStoreError(AgentRLError):
    """A file of the store cannot be read back (cut short, or not what the store writes)."""


def _file_lines(path: Path) -> tuple[list[bytes], str | None]:
    """The whole lines of one step file, and what is wrong with it (None: nothing): a file cut
    short keeps the lines before the cut; one that is not gzip has none."""
    inflate = zlib.decompressobj(wbits=31)
    try:
        data = inflate.decompress(path.read_bytes())
    except (OSError, zlib.error) as exc:
        return [], f"{type(exc).__name__}: {exc}"
    if inflate.eof:
        return data.splitlines(), None
    whole = data[: data.rfind(b"\n") + 1]  # the line the cut fell in is not whole
    return whole.splitlines(), "EOFError: the file ends before its gzip stream does (cut short)"


def _damaged(path: Path, problem: str) -> DamagedStoreError:
    return DamagedStoreError(
        f"{path} is damaged ({problem}); this episode cannot be read (the rest of the store can: a resumed "
        "run writes the step again if it is past the checkpoint)"
    )


def _rows_of_file(folder: Path, name: str) -> list[dict[str, Any]]:
    """Index rows rebuilt from a step file itself (its index rows are missing: a kill, or an index
    that was lost); a damaged file gives none."""
    lines, _ = _file_lines(folder / name)
    rows = []
    for line, text in enumerate(lines):
        try:
            record = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("id"), str):
            rows.append(index_row(record, name, line))
    return rows


def _step_of(name: str) -> int:
    match = _FILE.fullmatch(name)
    assert match is not None, name  # only names _step_files gave
    return int(match.group(1))


def _step_files(folder: Path) -> list[str]:
    """The step files in ``folder``, in step order (train before eval within a step: written so)."""
    found = [
        (int(m.group(1)), m.group(2) != "train", p.name)
        for p in folder.glob("step-*.jsonl.gz")
        if (m := _FILE.fullmatch(p.name))
    ]
    return [name for *_, name in sorted(found)]


def index_row(record: dict[str, Any], name: str, line: int) -> dict[str, Any]:
    summary = {key: record.get(key) for key in INDEX_FIELDS}
    return summary | {"file": name, "line": line}


class EpisodeStore:
    """A store read back: the index (``rows``) and any episode by id (``episode``)."""

    def __init__(self, folder: str | Path, cache_files: int = 8):
        self.folder = Path(folder)
        if self.folder.name != FOLDER and (self.folder / FOLDER).is_dir():
            self.folder = self.folder / FOLDER  # a run or eval folder given: its store
        self._cache: OrderedDict[str, tuple[list[bytes], str | None]] = OrderedDict()
        self._cache_files = cache_files
        self._rows: list[dict[str, Any]] | None = None
        self._by_id: dict[str, dict[str, Any]] = {}
        self._signature: tuple[Any, ...] | None = None
        self._unindexed = 0

    @property
    def exists(self) -> bool:
        """Whether the folder holds a store (an index, or step files whose index was lost)."""
        return (self.folder / INDEX).is_file() or bool(_step_files(self.folder))

    def rows(self) -> list[dict[str, Any]]:
        """Every episode's index row, in step order. The step files are the truth and the index a
        summary of them: rows whose file is gone are left out, and a file without rows (its index
        member cut by a kill, or the index lost) is read for its own. Re-read when the folder
        changed (a run still training)."""
        path = self.folder / INDEX
        files = _step_files(self.folder)
        signature = (path.stat().st_mtime_ns if path.is_file() else None, tuple(files))
        if self._rows is not None and signature == self._signature:
            return self._rows
        by_file: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in files}
        for line in _index_lines(path):
            row = _parse(line)
            if row is not None and row["file"] in by_file:
                by_file[row["file"]][row["id"]] = row  # a step written again: the newest row
        self._unindexed = 0
        for name, found in by_file.items():
            if not found:
                found.update((row["id"], row) for row in _rows_of_file(self.folder, name))
                self._unindexed += 1
        rows = {row["id"]: row for found in by_file.values() for row in found.values()}
        self._rows, self._signature, self._by_id = list(rows.values()), signature, rows
        self._cache.clear()
        return self._rows

    def unindexed_files(self) -> int:
        """How many step files the index has no rows of (read from the files themselves)."""
        self.rows()
        return self._unindexed

    def episode(self, episode_id: str) -> dict[str, Any] | None:
        """The whole record of ``episode_id``, or None when the store has no such episode; a
        damaged step file is a ``DamagedStoreError`` naming it."""
        self.rows()
        row = self._by_id.get(episode_id)
        if row is None:
            return None
        lines, problem = self._lines(row["file"])
        if row["line"] >= len(lines):
            if problem is not None:
                raise _damaged(self.folder / row["file"], problem)
            return None
        try:
            record: dict[str, Any] = json.loads(lines[row["line"]])
        except json.JSONDecodeError as exc:
            raise DamagedStoreError(
                f"{self.folder / row['file']} line {row['line'] + 1} is not a record ({exc})"
            ) from None
        return record

    def steps(self, split: str | None = None) -> list[int]:
        return sorted({r["step"] for r in self.rows() if split is None or r["split"] == split})

    def _lines(self, name: str) -> tuple[list[bytes], str | None]:
        if name in self._cache:
            self._cache.move_to_end(name)
            return self._cache[name]
        lines = _file_lines(self.folder / name)
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
    for path in folder.glob(".*.tmp"):  # writes cut short by a kill
        path.unlink()
    index, files = folder / INDEX, _step_files(folder)
    if not index.is_file() and not files:
        return 0
    gone = {name for name in files if step is None or _step_of(name) > step}
    present = [name for name in files if name not in gone]
    keep = set(present)
    kept, removed = [], 0
    indexed: set[str] = set()
    for line in _index_lines(index):
        row = _parse(line)
        if row is not None and row["file"] in keep:  # not a later step's, nor one whose file is gone
            kept.append(line.rstrip("\n"))
            indexed.add(row["file"])
        elif line.strip():
            removed += 1
    for name in present:  # a file whose rows a kill (or a lost index) took: its rows again, from it
        if name not in indexed:
            kept += [json.dumps(row, separators=(",", ":")) for row in _rows_of_file(folder, name)]
    _replace(index, _member(kept))
    for name in gone:
        (folder / name).unlink()
    return removed

"""Reading a JSONL corpus, and the fingerprint that says whether it changed.

Owns the rule for which lines of a corpus file are documents (``row_contents`` from
``base``: ``{"id", "contents"}`` or ``{"id", "title", "text"}``), how unusable lines are
reported (skipped and counted; one ``AgentRLWarning`` naming the first; an error when none is
usable, and when two rows share an id) and ``fingerprint``. Must not know about indexes, servers or environments.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from agentrl.errors import AgentRLError, AgentRLWarning
from agentrl_tools.search.base import row_contents


class CorpusError(AgentRLError):
    """A corpus file is missing, unreadable, or holds no usable document."""


@dataclass
class Corpus:
    """The usable documents of a corpus file, in file order."""

    path: Path
    ids: list[str]
    contents: list[str]
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.ids)


def iter_rows(path: str | os.PathLike[str]) -> Iterator[tuple[int, tuple[str, str] | None]]:
    """``(line number, (id, contents) or None)`` for every non-blank line of ``path``."""
    path = Path(path)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise CorpusError(f"corpus file {path} does not exist") from None
    except OSError as exc:
        raise CorpusError(f"cannot read corpus file {path}: {exc.strerror or exc}") from None
    with handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except ValueError:  # not JSON, or not UTF-8
                yield number, None
                continue
            yield number, row_contents(row)


def load_corpus(path: str | os.PathLike[str]) -> Corpus:
    """Every usable document of the JSONL file at ``path``.

    A line that is not JSON or is not a document is skipped; when any was, one warning says how
    many and the first one's line number. Raises ``CorpusError`` when the file is missing, holds
    no usable document, or has two documents with one id (naming them and their lines)."""
    corpus = Corpus(path=Path(path), ids=[], contents=[])
    first_bad = 0
    lines: dict[str, list[int]] = {}
    for number, doc in iter_rows(path):
        if doc is None:
            corpus.skipped += 1
            first_bad = first_bad or number
            continue
        corpus.ids.append(doc[0])
        corpus.contents.append(doc[1])
        lines.setdefault(doc[0], []).append(number)
    if len(lines) < len(corpus.ids):
        repeated = [(doc_id, at) for doc_id, at in lines.items() if len(at) > 1]
        named = ", ".join(f"{doc_id!r} (lines {', '.join(map(str, at[:5]))})" for doc_id, at in repeated[:3])
        more = f" and {len(repeated) - 3} more" if len(repeated) > 3 else ""
        raise CorpusError(
            f"corpus file {path} has duplicate ids: {named}{more}; a search would return one document "
            "twice under one id: keep one row per id"
        )
    if not corpus.ids:
        raise CorpusError(
            f"corpus file {path} has no usable document (each line must be JSON with "
            '"id" and "contents", or "id", "title" and "text")'
        )
    if corpus.skipped:
        warnings.warn(
            f"corpus {path}: skipped {corpus.skipped} line(s) that are not a JSON document with id and "
            f"contents (or id, title and text); the first is line {first_bad}",
            AgentRLWarning,
            stacklevel=2,
        )
    return corpus


def fingerprint(path: str | os.PathLike[str]) -> str:
    """``<size>-<sha256>`` of the file's bytes: equal fingerprints mean the same corpus."""
    digest = hashlib.sha256()
    try:
        with Path(path).open("rb") as handle:
            size = 0
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
    except FileNotFoundError:
        raise CorpusError(f"corpus file {path} does not exist") from None
    except OSError as exc:
        raise CorpusError(f"cannot read corpus file {path}: {exc.strerror or exc}") from None
    return f"{size}-{digest.hexdigest()}"

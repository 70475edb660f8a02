"""Task sources that are data: local JSONL / JSON / parquet files and ``datasets`` names.

Owns turning rows into ``Task``s, including GSM8K's ``#### answer`` convention. A row with
no usable question or answer is skipped with a warning naming how many and which rows;
a source with no usable row at all is a one-line error. Must not import torch.

Source strings (``resolve``): a path (``{split}`` in it is replaced by the split name), or
``hf:NAME`` / ``hf:NAME:CONFIG`` for ``datasets.load_dataset`` (which also takes a local
dataset directory as NAME).
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from agentrl.errors import AgentRLError
from agentrl.types import Task

QUESTION_KEYS = ("question", "prompt", "problem", "query", "input")
ANSWER_KEYS = ("answer", "solution", "gold", "target", "output")
_GSM8K_FINAL = re.compile(r"####\s*(.+?)\s*$", re.DOTALL)
_BOXED = "\\boxed{"


class TaskSourceError(AgentRLError):
    """A task source is missing, unreadable or has no usable rows."""


def resolve(source: str, split: str, *, question_key: str | None = None, answer_key: str | None = None) -> list[Task]:
    """Load the tasks of ``split`` from a file path or an ``hf:`` dataset name."""
    if source.startswith("hf:"):
        name, _, config = source[3:].partition(":")
        rows = _load_hf(name, config or None, split)
    else:
        rows = _load_file(Path(source.replace("{split}", split)))
    return rows_to_tasks(rows, source=source, question_key=question_key, answer_key=answer_key)


def gold_answer(text: Any) -> str | None:
    """The final answer in a gold field: after ``####`` (GSM8K), inside ``\\boxed{}``, or the
    whole text. None when there is no answer."""
    if text is None:
        return None
    text = str(text).strip()
    match = _GSM8K_FINAL.search(text)
    if match:
        return match.group(1).replace(",", "").strip() or None
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed.strip() or None
    return text or None


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` with balanced braces, or None."""
    start = text.rfind(_BOXED)
    if start < 0:
        return None
    depth, i = 1, start + len(_BOXED)
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return None


def rows_to_tasks(
    rows: Iterable[Mapping[str, Any]],
    *,
    source: str,
    question_key: str | None = None,
    answer_key: str | None = None,
) -> list[Task]:
    tasks, skipped = [], []
    for index, row in enumerate(rows):
        question = _pick(row, question_key, QUESTION_KEYS)
        answer = gold_answer(_pick(row, answer_key, ANSWER_KEYS))
        if not question or answer is None:
            skipped.append(index)
            continue
        task_id = str(row.get("id", f"{Path(source).stem}-{index}"))
        tasks.append(Task(id=task_id, prompt=str(question).strip(), answer=answer, meta={"row": index}))
    if skipped:
        shown = ", ".join(map(str, skipped[:10])) + (" ..." if len(skipped) > 10 else "")
        warnings.warn(
            f"{source}: skipped {len(skipped)} rows without a question or answer (rows {shown})",
            stacklevel=2,
        )
    if not tasks:
        raise TaskSourceError(
            f"{source}: no row has both a question ({'/'.join(QUESTION_KEYS)}) and an answer ({'/'.join(ANSWER_KEYS)})"
        )
    return tasks


def _pick(row: Mapping[str, Any], key: str | None, candidates: tuple[str, ...]) -> Any:
    if key is not None:
        return row.get(key)
    return next((row[k] for k in candidates if row.get(k) not in (None, "")), None)


def _load_file(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise TaskSourceError(f"task file {path} does not exist")
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise TaskSourceError("reading parquet needs pyarrow: pip install 'agentrl[data]'") from None
        return pq.read_table(path).to_pylist()
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        data = json.loads(text)
        return data if isinstance(data, list) else list(data.get("data", []))
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise TaskSourceError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
    return rows


def _load_hf(name: str, config: str | None, split: str) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError:
        raise TaskSourceError("loading hf: sources needs the datasets package: pip install 'agentrl[data]'") from None
    try:
        return list(datasets.load_dataset(name, config, split=split))
    except Exception as exc:  # datasets raises many types; the user needs one line
        raise TaskSourceError(f"cannot load dataset {name!r} split {split!r}: {type(exc).__name__}: {exc}") from None

"""Task sources that are data: local JSONL / JSON / parquet files and ``datasets`` names.

Owns turning rows into ``Task``s. What the gold answer in a row's answer field is belongs
to the environment: ``resolve`` takes an ``answer`` function (the math environments pass one
that reads GSM8K's ``#### answer`` and ``\\boxed{}``); by default the field's text is the
answer. A row with no usable question or answer is skipped with a warning naming how many
and which rows; a source with no usable row at all is a one-line error. Must not import
torch, and knows no environment's answer format.

Source strings (``resolve``): a path (``{split}`` in it is replaced by the split name; such a
source has the splits whose files exist, and any other split is an error listing them), or
``hf:NAME`` / ``hf:NAME:CONFIG`` for ``datasets.load_dataset`` (which also takes a local
dataset directory as NAME).
"""

from __future__ import annotations

import glob
import json
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from agentrl.errors import AgentRLError
from agentrl.types import Task

QUESTION_KEYS = ("question", "prompt", "problem", "query", "input")
ANSWER_KEYS = ("answer", "solution", "gold", "target", "output", "golden_answers")
AnswerFn = Callable[[Any], str | None]  # a row's answer field -> the gold answer, or None


class TaskSourceError(AgentRLError):
    """A task source is missing, unreadable or has no usable rows."""


def plain_answer(value: Any) -> str | None:
    """The answer field's text, stripped; None when there is none."""
    return None if value is None else str(value).strip() or None


def resolve(
    source: str,
    split: str,
    *,
    question_key: str | None = None,
    answer_key: str | None = None,
    answer: AnswerFn = plain_answer,
) -> list[Task]:
    """Load the tasks of ``split`` from a file path or an ``hf:`` dataset name; ``answer``
    reads the gold answer out of a row's answer field."""
    if source.startswith("hf:"):
        name, _, config = source[3:].partition(":")
        rows = _load_hf(name, config or None, split)
    else:
        path = Path(source.replace("{split}", split))
        if "{split}" in source and not path.is_file() and (splits := file_splits(source)):
            raise TaskSourceError(f"{source}: no file for split {split!r} ({path}); valid splits: {', '.join(splits)}")
        rows = _load_file(path)
    return rows_to_tasks(rows, source=source, question_key=question_key, answer_key=answer_key, answer=answer)


def file_splits(source: str) -> list[str]:
    """The splits a path with ``{split}`` has: the names whose file exists, sorted."""
    parts = source.split("{split}")
    name = re.compile("([^/]+)".join(re.escape(p) for p in parts))
    found = set()
    for path in glob.glob("*".join(glob.escape(p) for p in parts)):
        match = name.fullmatch(path)
        if match and len(set(match.groups())) == 1 and Path(path).is_file():
            found.add(match.group(1))
    return sorted(found)


def rows_to_tasks(
    rows: Iterable[Mapping[str, Any]],
    *,
    source: str,
    question_key: str | None = None,
    answer_key: str | None = None,
    answer: AnswerFn = plain_answer,
) -> list[Task]:
    tasks, skipped = [], []
    for index, row in enumerate(rows):
        question = _pick(row, question_key, QUESTION_KEYS)
        gold = answer(_pick(row, answer_key, ANSWER_KEYS))
        if not question or gold is None:
            skipped.append(index)
            continue
        task_id = str(row.get("id", f"{Path(source).stem}-{index}"))
        tasks.append(Task(id=task_id, prompt=str(question).strip(), answer=gold, meta={"row": index}))
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

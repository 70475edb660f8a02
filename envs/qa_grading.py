"""Open-domain QA grading: the final answer's tag, SQuAD-style normalisation, EM and F1.

Owns what "correct" means for ``search_qa``: the text of the last ``<answer>...</answer>`` is
compared with every gold answer after SQuAD's normalisation (lower case, punctuation and the
articles a / an / the removed, whitespace collapsed). Exact match is 1 if it equals any gold
answer; F1 is the best token-overlap F1 over the gold answers. Also reads the gold answers of
a task (``Task.answer`` holds them as a JSON list) and of a dataset row (a list, or a string).
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Sequence
from typing import Any

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation or articles, single spaces."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def extract_answer(text: str) -> str | None:
    """The text inside the last ``<answer>...</answer>``, stripped; None when there is none."""
    found = _ANSWER.findall(text)
    return found[-1].strip() if found else None


def exact_match(answer: str, golds: Sequence[str]) -> float:
    return float(any(normalize(answer) == normalize(g) for g in golds))


def f1(answer: str, golds: Sequence[str]) -> float:
    """The best token F1 between ``answer`` and any gold answer (0 for an empty answer)."""
    return max((_f1(normalize(answer).split(), normalize(g).split()) for g in golds), default=0.0)


def _f1(predicted: list[str], gold: list[str]) -> float:
    common = sum((Counter(predicted) & Counter(gold)).values())
    if not common:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def golds_of(task_answer: str) -> list[str]:
    """The gold answers a task stores (a JSON list of strings; a plain string is one answer)."""
    try:
        value = json.loads(task_answer)
    except json.JSONDecodeError:
        return [task_answer]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    return [task_answer]


def gold_list(value: Any) -> str | None:
    """A dataset row's gold field (``golden_answers``: a list, or one string) as a task's
    ``answer``: a JSON list of the non-empty answers; None when there is none."""
    items = value if isinstance(value, list | tuple) else [value]
    golds = [str(v).strip() for v in items if v is not None and str(v).strip()]
    return json.dumps(golds, ensure_ascii=False) if golds else None

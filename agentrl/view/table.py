"""The episode table: every index row of every source in columns, filtered, sorted and paged.

Owns the query (``Filters``: what the page's filter bar sends, checked by pydantic so a bad value
or an unknown parameter is a 422 naming it) and its answer. The rows become numpy columns once
per change of a store's index, so a filtered, sorted page of 100,000 episodes is a few boolean
masks and one argsort rather than a Python loop per row. Rows keep the order they were written
in; a sort is stable, so ties stay in that order, and a missing value (an episode with no
``correct``) sorts last either way.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

NUMBERS = (
    "step", "reward", "turns", "tool_calls", "tool_errors", "parse_errors", "service_failures", "staleness",
    "sampled_tokens", "correct", "truncated", "has_learner",
)  # fmt: skip
LABELS = ("source", "split", "env", "task_id", "stop_reason")
Sort = Literal[
    "step", "reward", "turns", "tool_calls", "tool_errors", "parse_errors", "service_failures", "staleness",
    "sampled_tokens", "correct", "truncated", "has_learner", "source", "split", "env", "task_id", "stop_reason",
]  # fmt: skip


class Filters(BaseModel):
    """One page of the table: which episodes (every filter given must hold), in what order."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = None
    split: Literal["train", "eval"] | None = None
    env: str | None = None
    task_id: str | None = Field(None, description="episodes whose task id contains this text")
    stop_reason: str | None = None
    step: int | None = None
    step_min: int | None = None
    step_max: int | None = None
    reward_min: float | None = None
    reward_max: float | None = None
    correct: bool | None = None
    truncated: bool | None = None
    turns_min: int | None = None
    turns_max: int | None = None
    tool_errors: Literal["any", "none"] | None = None
    kind: str | None = Field(None, description="episodes with at least one tool error of this kind")
    staleness_min: int | None = None
    staleness_max: int | None = None
    sort: Sort = "step"
    order: Literal["asc", "desc"] = "desc"
    offset: int = Field(0, ge=0)
    limit: int = Field(50, ge=1, le=1000)

    @model_validator(mode="after")
    def _bounds_in_order(self) -> Filters:
        for name in ("reward_min", "reward_max"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, not {value}")
        if self.step is not None and (self.step_min is not None or self.step_max is not None):
            raise ValueError("step takes one step; step_min and step_max a range: give one or the other")
        for name in ("step", "reward", "turns", "staleness"):
            low, high = getattr(self, f"{name}_min"), getattr(self, f"{name}_max")
            if low is not None and high is not None and low > high:
                raise ValueError(f"{name}_min ({low}) is above {name}_max ({high})")
        return self


class Labels:
    """A text column as codes: ``codes[i]`` names row i's value, ``rank[i]`` its place in sorted order."""

    def __init__(self, values: list[Any]):
        index: dict[Any, int] = {}
        self.codes = np.fromiter((index.setdefault(v, len(index)) for v in values), np.int64, len(values))
        self.index, self.names = index, list(index)
        order = sorted(range(len(self.names)), key=lambda i: "" if self.names[i] is None else str(self.names[i]))
        place = np.empty(len(order), np.float64)
        place[order] = np.arange(len(order))
        self.rank = place[self.codes] if len(order) else np.zeros(0)

    def containing(self, text: str) -> np.ndarray:
        """The rows whose value contains ``text``."""
        codes = [code for name, code in self.index.items() if name is not None and text in str(name)]
        return np.isin(self.codes, codes)

    def equals(self, value: str) -> np.ndarray:
        code = self.index.get(value)
        return self.codes == code if code is not None else np.zeros(len(self.codes), bool)


class Table:
    """The rows of each ``(source name, index rows)`` in ``parts``, in columns."""

    def __init__(self, parts: list[tuple[str, list[dict[str, Any]]]]):
        self.rows = [row for _, rows in parts for row in rows]
        names = [name for name, rows in parts for _ in rows]
        self.numbers = {key: _column(self.rows, key) for key in NUMBERS}
        self.labels = {key: Labels([r.get(key) for r in self.rows]) for key in LABELS if key != "source"}
        self.labels["source"] = Labels(names)

    def __len__(self) -> int:
        return len(self.rows)

    def select(self, f: Filters) -> np.ndarray:
        """The positions of the rows ``f`` keeps, in its order."""
        mask = np.ones(len(self.rows), bool)
        for key in LABELS:
            if getattr(f, key) is not None:
                value, labels = getattr(f, key), self.labels[key]
                mask &= labels.containing(value) if key == "task_id" else labels.equals(value)
        col = self.numbers
        bounds = [
            ("step", f.step if f.step is not None else f.step_min, f.step if f.step is not None else f.step_max),
            ("reward", f.reward_min, f.reward_max),
            ("turns", f.turns_min, f.turns_max),
            ("staleness", f.staleness_min, f.staleness_max),
            ("correct", *(2 * [float(f.correct)] if f.correct is not None else [None, None])),
            ("truncated", *(2 * [float(f.truncated)] if f.truncated is not None else [None, None])),
        ]
        for key, low, high in bounds:
            if low is not None:
                mask &= col[key] >= low
            if high is not None:
                mask &= col[key] <= high
        if f.tool_errors is not None:
            mask &= col["tool_errors"] > 0 if f.tool_errors == "any" else col["tool_errors"] == 0
        if f.kind is not None:
            mask &= col["tool_errors"] > 0
            mask[mask] = [f.kind in kinds_of for kinds_of in self.kinds(np.flatnonzero(mask))]
        picked = np.flatnonzero(mask)
        values = (self.labels[f.sort].rank if f.sort in self.labels else col[f.sort])[picked]
        order = np.argsort(-values if f.order == "desc" else values, kind="stable")  # NaN (missing) last
        return picked[order]

    def page(self, f: Filters) -> dict[str, Any]:
        """The rows of ``f``'s page, each with its source's name, and how many rows match."""
        picked = self.select(f)
        shown = picked[f.offset : f.offset + f.limit]
        names = self.labels["source"].names
        sources = self.labels["source"].codes
        rows = [{"source": names[sources[i]]} | self.rows[i] for i in shown.tolist()]
        return {"total": len(picked), "offset": f.offset, "limit": f.limit, "rows": rows}

    def kinds(self, positions: np.ndarray) -> list[dict[str, int]]:
        """The tool errors by kind of the rows at ``positions`` (the index carries them)."""
        return [
            kinds if isinstance(kinds := self.rows[i].get("tool_errors_by_kind"), dict) else {}
            for i in positions.tolist()
        ]

    def facets(self) -> dict[str, Any]:
        """The values each text filter can take, and the steps' range."""
        values = {key: sorted(str(v) for v in labels.names if v is not None) for key, labels in self.labels.items()}
        steps = self.numbers["step"]
        values.pop("task_id")  # too many to list; the filter takes one typed in
        span = [int(steps.min()), int(steps.max())] if len(steps) else [0, 0]
        return values | {"steps": span, "episodes": len(self.rows)}


def _column(rows: list[dict[str, Any]], key: str) -> np.ndarray:
    """One numeric column; a missing value (None) is NaN, a flag is 0.0 or 1.0."""
    return np.array([r.get(key) for r in rows], np.float64)  # numpy reads None as NaN

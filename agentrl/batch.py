"""``TokenBatch``: trajectories as padded tensors, the learner's unit of work.

Owns the conversion from ``Trajectory`` records (in memory or JSONL) to tensors, the row
checks (non-finite rewards or logprobs drop the row and are counted), selecting rows and
cutting positions (what micro-batches are made of), and the one way a batch changes after
it is built: ``with_fields``, which returns a new batch and checks the shapes (a
``TokenBatch`` is frozen). Shapes: ``B`` rows (trajectories), ``T`` the padded length. Every
per-token tensor is aligned with ``input_ids``: ``logprobs[:, t]`` is the logprob of
``input_ids[:, t]`` given the tokens before it, and position 0 (never sampled) carries 0
(docs/algorithms.md#token-batch-and-masks).

Also owns ``Prepared``, the base of what an algorithm computes for its own loss (PPO's
returns, DAPO's keep mask, ...): each algorithm declares a frozen dataclass subclass with
typed per-row fields, attaches it with ``batch.with_fields(prepared=...)`` and reads it back
with ``batch.prepared_as(ItsClass)``. It knows nothing of objectives: it imports nothing
from ``agentrl.algos``, the learner or the trainer.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

import torch

from agentrl.types import Trajectory

Index = torch.Tensor | slice

PER_TOKEN: tuple[str, ...] = (
    "input_ids",
    "attention_mask",
    "loss_mask",
    "behavior_logprobs",
    "turn_index",
    "policy_version",
    "advantages",
    "old_logprobs",
    "ref_logprobs",
    "old_values",
)
"""Fields shaped (B, T)."""

PER_ROW: tuple[str, ...] = (
    "rewards",
    "group_index",
    "truncated",
    "num_tool_calls",
    "num_tool_turns",
    "sample_weight",
    "grad_sq_norm",
    "source_row",
)
"""Fields shaped (B,)."""

OptionalField = Literal[
    "advantages",
    "old_logprobs",
    "ref_logprobs",
    "old_values",
    "sample_weight",
    "grad_sq_norm",
    "num_tool_turns",
    "source_row",
]
SET_BY: dict[str, str] = {
    "advantages": "the algorithm's with_advantages",
    "old_logprobs": "the learner",
    "ref_logprobs": "the learner, when the algorithm needs a reference,",
    "old_values": "the learner, when the algorithm needs a value head,",
    "sample_weight": "the staleness bound",
    "grad_sq_norm": "the learner, when the algorithm needs score norms,",
    "num_tool_turns": "TokenBatch.from_trajectories",
    "source_row": "TokenBatch.from_trajectories",
}
"""Who sets each optional tensor field, for ``TokenBatch.require``'s error."""


def _move(t: torch.Tensor, device: torch.device | str, dtype: torch.dtype | None) -> torch.Tensor:
    """``t`` on ``device``; a floating tensor is also cast to ``dtype`` when given."""
    return t.to(device, dtype=dtype) if dtype is not None and t.is_floating_point() else t.to(device)


@dataclass(frozen=True)
class Prepared:
    """Base of an algorithm's prepared quantities. A subclass declares typed fields; every
    tensor field is per row (leading dimension ``B``), so ``TokenBatch.rows`` slices it with
    the batch and ``TokenBatch.to`` moves it; one shaped ``(B, T, ...)`` is also per token,
    and ``TokenBatch.columns`` cuts it with the positions; a field that is not a tensor (``None``
    included) is kept as it is. No methods, so that no field name can shadow one."""


def prepared_tensors(prepared: Prepared) -> dict[str, torch.Tensor]:
    """The tensor fields of ``prepared`` by name."""
    return {f.name: v for f in fields(prepared) if isinstance(v := getattr(prepared, f.name), torch.Tensor)}


P = TypeVar("P", bound=Prepared)


@dataclass(frozen=True)
class TokenBatch:
    input_ids: torch.Tensor  # (B, T) long, right-padded
    attention_mask: torch.Tensor  # (B, T) long, 1 on real tokens
    loss_mask: torch.Tensor  # (B, T) float, 1 on sampled tokens
    behavior_logprobs: torch.Tensor  # (B, T) float, the sampler's logprobs (mu), 0 where mask is 0
    turn_index: torch.Tensor  # (B, T) long, k on turn k, -1 elsewhere
    policy_version: torch.Tensor  # (B, T) long, -1 where mask is 0
    rewards: torch.Tensor  # (B,) float
    group_index: torch.Tensor  # (B,) long, rows with equal index share a prompt group
    truncated: torch.Tensor  # (B,) bool
    num_tool_calls: torch.Tensor  # (B,) float
    num_tool_turns: torch.Tensor | None = None  # (B,) float, assistant turns that made at least one tool call
    temperature: float = 1.0
    advantages: torch.Tensor | None = None  # (B, T), set by the algorithm's estimator
    old_logprobs: torch.Tensor | None = None  # (B, T), pi_old, set by the learner
    ref_logprobs: torch.Tensor | None = None  # (B, T), frozen reference, when KL is on
    old_values: torch.Tensor | None = None  # (B, T), value head before the update (ppo)
    sample_weight: torch.Tensor | None = None  # (B,) factor on each row's loss (stale rows in async training)
    grad_sq_norm: torch.Tensor | None = None  # (B,) ||grad sum_t m log pi||^2, set by the learner on request
    source_row: torch.Tensor | None = None  # (B,) long: each row's position in the trajectories it was built from
    prepared: Prepared | None = None  # the algorithm's own per-row quantities
    dropped: int = 0  # rows removed for non-finite rewards or logprobs

    @property
    def size(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def lengths(self) -> torch.Tensor:
        """(B,) generated tokens per row, ``|y_i|``."""
        return self.loss_mask.sum(-1)

    @property
    def seq_lengths(self) -> torch.Tensor:
        """(B,) each row's real length: one past its last attended position (0 for an empty row)."""
        positions = torch.arange(1, self.input_ids.shape[1] + 1, device=self.attention_mask.device)
        return (self.attention_mask.ne(0) * positions).amax(-1) if self.size else positions[:0]

    @classmethod
    def from_trajectories(cls, trajectories: Iterable[Trajectory], pad_token_id: int = 0) -> TokenBatch:
        kept, source, dropped = [], [], 0
        for i, t in enumerate(trajectories):
            if math.isfinite(t.reward) and all(map(math.isfinite, t.behavior_logprobs)):
                kept.append(t)
                source.append(i)
            else:
                dropped += 1
        if not kept:
            raise ValueError(f"no usable trajectory: {dropped} had non-finite rewards or logprobs")
        length = max(len(t.token_ids) for t in kept)
        groups: dict[str, int] = {}

        def pad(rows: Sequence[Sequence[float]], value: float, dtype: torch.dtype) -> torch.Tensor:
            out = torch.full((len(rows), length), value, dtype=dtype)
            for i, row in enumerate(rows):
                out[i, : len(row)] = torch.tensor(list(row), dtype=dtype)
            return out

        return cls(
            input_ids=pad([t.token_ids for t in kept], pad_token_id, torch.long),
            attention_mask=pad([[1] * len(t.token_ids) for t in kept], 0, torch.long),
            loss_mask=pad([t.loss_mask for t in kept], 0, torch.float32),
            behavior_logprobs=pad([t.behavior_logprobs for t in kept], 0.0, torch.float32),
            turn_index=pad([t.turn_index for t in kept], -1, torch.long),
            policy_version=pad([t.policy_version for t in kept], -1, torch.long),
            rewards=torch.tensor([t.reward for t in kept], dtype=torch.float32),
            group_index=torch.tensor([groups.setdefault(t.group_id, len(groups)) for t in kept]),
            truncated=torch.tensor([t.truncated for t in kept]),
            num_tool_calls=torch.tensor([float(t.tool_calls) for t in kept]),
            num_tool_turns=torch.tensor([float(t.tool_turns) for t in kept]),
            source_row=torch.tensor(source, dtype=torch.long),
            temperature=kept[0].temperature,
            dropped=dropped,
        )

    @classmethod
    def from_jsonl(cls, path: str | Path, pad_token_id: int = 0) -> TokenBatch:
        """From a trajectories JSONL file written by a rollout (``agentrl eval`` writes one)."""
        from agentrl.rollout.io import read_trajectories

        return cls.from_trajectories(read_trajectories(path), pad_token_id)

    def with_fields(self, **changes: object) -> TokenBatch:
        """A new batch with ``changes`` applied: the one way to change a batch once built.

        Raises ``TypeError`` for a name that is not a field, ``ValueError`` for a tensor whose
        shape does not fit: per-token fields (``PER_TOKEN``) are ``(B, T)``, per-row fields
        (``PER_ROW``) ``(B,)``, every tensor of ``prepared`` ``(B, ...)``, with ``B`` and ``T``
        those of the new batch's ``input_ids``. ``None`` clears an optional field."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(f"TokenBatch has no field {', '.join(unknown)}; its fields: {', '.join(sorted(known))}")
        typed: dict[str, Any] = changes  # the names are checked above, the tensors' shapes below
        new = replace(self, **typed)
        rows, length = new.input_ids.shape
        for name, value in changes.items():
            if name == "prepared" and isinstance(value, Prepared):
                for key, t in prepared_tensors(value).items():
                    _check_shape(f"prepared.{key}", t, (rows,), leading=True)
            elif name in PER_TOKEN and value is not None:
                _check_shape(name, value, (rows, length))
            elif name in PER_ROW and value is not None:
                _check_shape(name, value, (rows,))
            elif name == "prepared" and value is not None:
                raise TypeError(f"TokenBatch.prepared must be a Prepared, got {type(value).__name__}")
        return new

    def require(self, name: OptionalField) -> torch.Tensor:
        """The optional tensor field ``name``, or a ``ValueError`` saying who sets it."""
        value: torch.Tensor | None = getattr(self, name)
        if value is None:
            raise ValueError(f"the batch has no {name}: {SET_BY[name]} sets it first")
        return value

    def prepared_as(self, kind: type[P]) -> P:
        """``self.prepared`` as ``kind``; a ``ValueError`` naming what the batch carries instead."""
        if not isinstance(self.prepared, kind):
            held = "nothing" if self.prepared is None else type(self.prepared).__name__
            raise ValueError(
                f"the batch carries {held} where {kind.__name__} is needed: "
                "the algorithm's with_advantages / prepare must run on the batch first"
            )
        return self.prepared

    def rows(self, index: Index) -> TokenBatch:
        """The sub-batch of rows ``index`` (every per-row tensor and prepared tensor sliced alike)."""
        changes: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                changes[f.name] = value[index]
            elif isinstance(value, Prepared):
                changes[f.name] = replace(value, **{k: t[index] for k, t in prepared_tensors(value).items()})
        return replace(self, **changes)

    def columns(self, length: int) -> TokenBatch:
        """The batch cut to its first ``length`` positions: every per-token tensor, and every
        prepared tensor shaped ``(B, T, ...)``, sliced alike; per-row tensors kept."""
        t = int(self.input_ids.shape[1])
        changes: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in PER_TOKEN and isinstance(value, torch.Tensor):
                changes[f.name] = value[:, :length]
            elif isinstance(value, Prepared):
                cut = {k: v[:, :length] for k, v in prepared_tensors(value).items() if v.dim() >= 2 and v.shape[1] == t}
                changes[f.name] = replace(value, **cut)
        return replace(self, **changes)

    def row_slices(self, parts: int) -> list[slice]:
        """``parts`` contiguous, non-empty row ranges covering the batch, as even as possible."""
        bounds = torch.linspace(0, self.size, min(parts, self.size) + 1).round().long().tolist()
        return [slice(a, b) for a, b in itertools.pairwise(bounds) if b > a]

    def split(self, parts: int) -> list[TokenBatch]:
        return [self.rows(s) for s in self.row_slices(parts)]

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> TokenBatch:
        """Move every tensor (prepared ones too); floating tensors are cast to ``dtype`` when given."""
        changes: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                changes[f.name] = _move(value, device, dtype)
            elif isinstance(value, Prepared):
                moved = {k: _move(t, device, dtype) for k, t in prepared_tensors(value).items()}
                changes[f.name] = replace(value, **moved)
        return replace(self, **changes)


def _check_shape(name: str, value: object, shape: tuple[int, ...], leading: bool = False) -> None:
    """Raise unless ``value`` is a tensor of ``shape`` (with ``leading``: whose shape starts with it)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"TokenBatch.{name} must be a tensor, got {type(value).__name__}")
    got = tuple(value.shape)
    if (got[: len(shape)] if leading else got) != shape:
        want = "(" + ", ".join(map(str, shape)) + (", ...)" if leading else ",)" if len(shape) == 1 else ")")
        raise ValueError(f"TokenBatch.{name} must be {want}, got {got}")

"""``TokenBatch``: trajectories as padded tensors, the learner's unit of work.

Owns the conversion from ``Trajectory`` records (in memory or JSONL) to tensors, the row
checks (non-finite rewards or logprobs drop the row and are counted), and splitting into
micro-batches. Shapes: ``B`` rows (trajectories), ``T`` the padded length. Every per-token
tensor is aligned with ``input_ids``: ``logprobs[:, t]`` is the logprob of ``input_ids[:, t]``
given the tokens before it, and position 0 (never sampled) carries 0.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch

from agentrl.types import Trajectory


@dataclass
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
    temperature: float = 1.0
    advantages: torch.Tensor | None = None  # (B, T), set by the algorithm's estimator
    old_logprobs: torch.Tensor | None = None  # (B, T), pi_old, set by the learner
    ref_logprobs: torch.Tensor | None = None  # (B, T), frozen reference, when KL is on
    old_values: torch.Tensor | None = None  # (B, T), value head before the update (ppo)
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # (B, ...) algorithm-prepared tensors
    dropped: int = 0  # rows removed for non-finite rewards or logprobs

    @property
    def size(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def lengths(self) -> torch.Tensor:
        """(B,) generated tokens per row, ``|y_i|``."""
        return self.loss_mask.sum(-1)

    @classmethod
    def from_trajectories(cls, trajectories: Iterable[Trajectory], pad_token_id: int = 0) -> TokenBatch:
        kept, dropped = [], 0
        for t in trajectories:
            if math.isfinite(t.reward) and all(map(math.isfinite, t.behavior_logprobs)):
                kept.append(t)
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
            temperature=kept[0].temperature,
            dropped=dropped,
        )

    @classmethod
    def from_jsonl(cls, path: str | Path, pad_token_id: int = 0) -> TokenBatch:
        """From a trajectories JSONL file written by a rollout (``agentrl eval`` writes one)."""
        from agentrl.rollout.io import read_trajectories

        return cls.from_trajectories(read_trajectories(path), pad_token_id)

    def rows(self, index: torch.Tensor | slice) -> TokenBatch:
        """The sub-batch of rows ``index`` (every per-row tensor and extra sliced alike)."""
        changes: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                changes[f.name] = value[index]
        changes["extras"] = {k: v[index] for k, v in self.extras.items()}
        return replace(self, **changes)

    def row_slices(self, parts: int) -> list[slice]:
        """``parts`` contiguous, non-empty row ranges covering the batch, as even as possible."""
        bounds = torch.linspace(0, self.size, min(parts, self.size) + 1).round().long().tolist()
        return [slice(a, b) for a, b in itertools.pairwise(bounds) if b > a]

    def split(self, parts: int) -> list[TokenBatch]:
        return [self.rows(s) for s in self.row_slices(parts)]

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> TokenBatch:
        """Move every tensor; floating tensors are cast to ``dtype`` when given."""

        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device, dtype=dtype) if dtype is not None and t.is_floating_point() else t.to(device)

        changes: dict[str, Any] = {
            f.name: move(getattr(self, f.name)) for f in fields(self) if isinstance(getattr(self, f.name), torch.Tensor)
        }
        changes["extras"] = {k: move(v) for k, v in self.extras.items()}
        return replace(self, **changes)

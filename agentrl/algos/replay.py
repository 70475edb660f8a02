"""SPEAR's replay buffer of the agent's own good trajectories (docs/algorithms.md#spear).

Owns admission, eviction by policy-version age, the bounded history of per-group mean
rewards used to recalibrate advantages, the seeded sampling of a replay batch, and
checkpointing (``state_dict`` / ``load_state_dict``). It stores one-row ``TokenBatch``
slices trimmed to their real length and knows nothing of models, optimizers or the learner;
SPEAR (``agentrl.algos.spear``) decides what to admit and weights the replay loss.

Rules, with the reference they follow (TencentYoutuResearch/SPEAR,
``TrajectoryBufferBatch`` in verl-agent's ray trainer) and our readings:

- admission: rows with advantage ``A > 0`` are stored with their behaviour logprobs and the
  policy version that made them; ``A <= 0`` is never stored, whatever the caller passes.
  A row's version is the *oldest* version among its generated tokens (multi-turn rows
  sampled across a weight update age by their first turn; our reading).
- eviction: entries more than ``tolerate_steps`` versions older than the newest version
  seen are dropped after each admission (age == tolerate_steps is kept), as in the
  reference, which measures age against the newest entry rather than the learner's step.
- history: after each step the mean reward of every group of the batch is appended to a
  bounded history (``history_size`` groups, oldest dropped first).
- recalibration: ``p50`` gives ``A = R - P50(history)`` (P50 with linear interpolation, as
  ``numpy.percentile``); ``gamma`` gives ``A = gamma * A_stored``. With an empty history
  ``p50`` falls back to the stored advantage (our choice; cannot happen through SPEAR,
  which records the history before it admits).
- firing: "more than 1.5 x buffer_size *admissible* trajectories" counts the entries whose
  recalibrated advantage is ``> 0`` (the reference counts ``R > P50`` in p50 mode and every
  entry in gamma mode, which is the same thing). Then entries with recalibrated ``A >= 0``
  are kept, ``2^floor(log2(min(count, buffer_size)))`` of them are drawn without
  replacement with the buffer's own ``torch.Generator``, and the buffer is emptied.
  Capping *before* rounding down keeps the size a power of two for any ``buffer_size``.
- storage: rows are copied to CPU (the buffer outlives a step; the learner moves the replay
  batch to its device like any rollout batch).
- padding: rows are right-padded to the longest with 0, except ``turn_index`` and
  ``policy_version`` (-1), as ``TokenBatch.from_trajectories`` pads (pad token id 0).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, fields, replace
from typing import Any

import torch

from agentrl.batch import TokenBatch
from agentrl.config import check_choice, check_range

RECALIBRATIONS: tuple[str, ...] = ("p50", "gamma")
PAD_VALUES: dict[str, int] = {"turn_index": -1, "policy_version": -1}  # every other per-token field pads with 0
NOT_STORED: tuple[str, ...] = ("advantages", "old_logprobs", "old_values")  # recomputed or set at replay
CLEARED: dict[str, Any] = {"prepared": None, "sample_weight": None, "grad_sq_norm": None, "dropped": 0}
"""What a stored row loses: what was computed for one step's loss, and the drop count."""


@dataclass
class ReplayEntry:
    row: TokenBatch  # one row, trimmed to its real length, nothing prepared for a loss
    reward: float  # task reward R
    advantage: float  # A when admitted (> 0)
    version: int  # oldest policy version among its generated tokens


def largest_power_of_two(n: int) -> int:
    """The largest power of two ``<= n``; 0 for ``n < 1``."""
    return 1 << (n.bit_length() - 1) if n >= 1 else 0


class ReplayBuffer:
    def __init__(
        self,
        buffer_size: int,
        tolerate_steps: int = 5,
        history_size: int = 10240,
        recalibration: str = "p50",
        gamma: float = 1.0,
        seed: int = 0,
    ):
        check_range("ReplayBuffer", "buffer_size", buffer_size, 1)
        check_range("ReplayBuffer", "tolerate_steps", tolerate_steps, 0, 10)
        check_range("ReplayBuffer", "history_size", history_size, 1)
        check_choice("ReplayBuffer", "recalibration", recalibration, RECALIBRATIONS)
        check_range("ReplayBuffer", "gamma", gamma, 0, 1)
        self.buffer_size, self.tolerate_steps = buffer_size, tolerate_steps
        self.recalibration, self.gamma = recalibration, gamma
        self.entries: list[ReplayEntry] = []
        self.history: deque[float] = deque(maxlen=history_size)
        self.latest_version = -1
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.entries)

    def record_groups(self, rewards: torch.Tensor, groups: torch.Tensor) -> None:
        """Append the mean reward of each group in the batch (in group-index order) to the history."""
        ids, inverse = torch.unique(groups.cpu(), return_inverse=True)  # the history is host-side: on the CPU
        sums = torch.zeros(len(ids), dtype=torch.float64).index_add_(0, inverse, rewards.detach().double().cpu())
        counts = torch.bincount(inverse, minlength=len(ids)).double()
        self.history.extend((sums / counts).tolist())

    def add(self, batch: TokenBatch, advantages: torch.Tensor, rewards: torch.Tensor | None = None) -> int:
        """Store the rows with ``advantages > 0`` (B,), then evict stale entries; returns how many were stored.

        ``rewards`` (B,) default to ``batch.rewards``: the R that p50 recalibration compares.
        """
        rewards = batch.rewards if rewards is None else rewards
        generated = batch.loss_mask > 0  # (B, T)
        versions = batch.policy_version.masked_fill(~generated, torch.iinfo(torch.long).max)  # (B, T)
        if bool(generated.any()):
            self.latest_version = max(self.latest_version, int(batch.policy_version[generated].max()))
        stored = 0
        for i in range(batch.size):
            if not (float(advantages[i]) > 0 and bool(generated[i].any())):
                continue  # never store A <= 0 (or NaN), nor a row without generated tokens
            row = trim(batch.rows(slice(i, i + 1)))
            self.entries.append(ReplayEntry(row, float(rewards[i]), float(advantages[i]), int(versions[i].min())))
            stored += 1
        self.evict()
        return stored

    def evict(self) -> int:
        """Drop entries more than ``tolerate_steps`` versions older than the newest seen; returns how many."""
        before = len(self.entries)
        self.entries = [e for e in self.entries if self.latest_version - e.version <= self.tolerate_steps]
        return before - len(self.entries)

    def baseline(self) -> float | None:
        """P50 of the history of group mean rewards (None when empty)."""
        if not self.history:
            return None
        return float(torch.quantile(torch.tensor(list(self.history), dtype=torch.float64), 0.5))

    def recalibrated(self) -> torch.Tensor:
        """(N,) float64 replay advantages of the stored entries."""
        stored = torch.tensor([e.advantage for e in self.entries], dtype=torch.float64)
        p50 = self.baseline()
        if self.recalibration == "gamma" or p50 is None:
            return stored * (self.gamma if self.recalibration == "gamma" else 1.0)
        return torch.tensor([e.reward for e in self.entries], dtype=torch.float64) - p50

    def admissible(self) -> int:
        """Entries whose recalibrated advantage is positive."""
        return int((self.recalibrated() > 0).sum()) if self.entries else 0

    def ready(self) -> bool:
        """Replay fires when more than 1.5 x ``buffer_size`` admissible entries are held."""
        return self.admissible() > 1.5 * self.buffer_size

    def sample(self) -> TokenBatch | None:
        """When ``ready``: a padded batch of a power-of-two number of entries with recalibrated
        ``A >= 0`` (``advantages`` broadcast over ``loss_mask``, ``old_logprobs`` = the stored
        behaviour logprobs); the buffer is emptied. Otherwise None and the buffer is kept."""
        if not self.ready():
            return None
        advantages = self.recalibrated()  # (N,)
        keep = (advantages >= 0).nonzero().squeeze(-1)
        size = largest_power_of_two(min(len(keep), self.buffer_size))
        picked = keep[torch.randperm(len(keep), generator=self.generator)[:size]].sort().values
        batch = stack_rows([self.entries[int(i)].row for i in picked])
        replayed = batch.with_fields(
            advantages=advantages[picked].to(batch.loss_mask.dtype)[:, None] * batch.loss_mask,  # (B, T)
            old_logprobs=batch.behavior_logprobs.clone(),
        )
        self.entries = []
        return replayed

    def state_dict(self) -> dict[str, Any]:
        """Plain tensors, numbers and lists (loadable with ``torch.load(weights_only=True)``)."""
        return {
            "entries": [
                {"row": row_state(e.row), "reward": e.reward, "advantage": e.advantage, "version": e.version}
                for e in self.entries
            ],
            "history": list(self.history),
            "latest_version": self.latest_version,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.entries = [
            ReplayEntry(TokenBatch(**_known_fields(e["row"])), e["reward"], e["advantage"], e["version"])
            for e in state["entries"]
        ]
        self.history.clear()
        self.history.extend(state["history"])
        self.latest_version = state["latest_version"]
        self.generator.set_state(state["generator"])


def trim(row: TokenBatch) -> TokenBatch:
    """A one-row batch cut to its real length, copied to CPU, without ``CLEARED`` or the fields set at replay."""
    cut = row.columns(int(row.seq_lengths[0]))
    changes: dict[str, Any] = {name: None for name in NOT_STORED}
    for f in fields(cut):
        value = getattr(cut, f.name)
        if f.name not in NOT_STORED and isinstance(value, torch.Tensor):
            changes[f.name] = value.to("cpu", copy=True)
    return replace(cut, **(changes | CLEARED))


def stack_rows(rows: list[TokenBatch]) -> TokenBatch:
    """Concatenate one-row batches, right-padding per-token (2-D) fields to the longest row.

    An optional field (``ref_logprobs``) is kept only when every row has it."""
    length = max(int(r.input_ids.shape[1]) for r in rows)
    changes: dict[str, Any] = {}
    for f in fields(rows[0]):
        values = [getattr(r, f.name) for r in rows]
        if not all(isinstance(v, torch.Tensor) for v in values):
            if any(isinstance(v, torch.Tensor) for v in values):
                changes[f.name] = None
            continue
        if values[0].dim() == 2:
            pad = PAD_VALUES.get(f.name, 0)
            values = [torch.nn.functional.pad(v, (0, length - v.shape[1]), value=pad) for v in values]
        changes[f.name] = torch.cat(values)
    return replace(rows[0], **(changes | CLEARED))


def row_state(row: TokenBatch) -> dict[str, Any]:
    return {f.name: getattr(row, f.name) for f in fields(row)}


def _known_fields(state: dict[str, Any]) -> dict[str, Any]:
    """A stored row's fields that ``TokenBatch`` still has (checkpoints written before the
    typed fields replaced the ``extras`` dict hold an empty ``extras``)."""
    known = {f.name for f in fields(TokenBatch)}
    return {k: v for k, v in state.items() if k in known}

"""Staleness in asynchronous training: measured per row, bounded by K, dropped or down-weighted.

Owns what happens to a sample that reaches the learner more than ``max_staleness`` policy
versions after it was sampled. A row's staleness is the learner's version minus the oldest
version among its sampled tokens, so an episode that continued across a weight update counts
from its first turn. Past K, a row is either dropped (removed before the update, counted) or
down-weighted: its loss is scaled by ``decay ** (staleness - K)`` through the batch's
``sample_weight`` field (set with ``with_fields``), which every objective's ``loss`` applies.

Also reports the staleness histogram (rows per staleness 0..K, and past K) and how many rows
mix several versions (docs/algorithms.md#asynchronous-staleness). Works on a ``TokenBatch``,
which it changes only through ``with_fields``; never reads the run config.
"""

from __future__ import annotations

import torch

from agentrl.batch import TokenBatch


def _version_range(batch: TokenBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B,) oldest and newest version among each row's sampled tokens, and whether it has any."""
    sampled = batch.loss_mask > 0  # (B, T)
    big = torch.iinfo(torch.long).max
    oldest = batch.policy_version.masked_fill(~sampled, big).min(-1).values
    newest = batch.policy_version.masked_fill(~sampled, -1).max(-1).values
    return oldest, newest, sampled.any(-1)


def row_staleness(batch: TokenBatch, version: int) -> torch.Tensor:
    """(B,) long: ``version`` minus the oldest version among a row's sampled tokens (0 for a
    row with none)."""
    oldest, _, any_sampled = _version_range(batch)
    return _staleness(oldest, any_sampled, version)


def _staleness(oldest: torch.Tensor, any_sampled: torch.Tensor, version: int) -> torch.Tensor:
    return torch.where(any_sampled, (version - oldest).clamp(min=0), torch.zeros_like(oldest))


def bound_staleness(
    batch: TokenBatch, version: int, max_staleness: int, mode: str, decay: float
) -> tuple[TokenBatch | None, dict[str, float]]:
    """Apply the bound: returns the batch to train on (None when every row was dropped) and
    ``async/*`` metrics."""
    oldest, newest, any_sampled = _version_range(batch)
    staleness = _staleness(oldest, any_sampled, version)  # (B,)
    stale = staleness > max_staleness
    metrics = {f"async/staleness/{k}": float((staleness == k).sum()) for k in range(max_staleness + 1)}
    metrics |= {
        "async/staleness/over": float(stale.sum()),
        "async/staleness_mean": float(staleness.float().mean()),
        "async/staleness_max": float(staleness.max()),
        "async/mixed_version_rows": float((any_sampled & (newest > oldest)).sum()),
        "async/dropped_stale": 0.0,
        "async/downweighted_stale": 0.0,
    }
    if not bool(stale.any()):
        return batch, metrics
    if mode == "drop":
        metrics["async/dropped_stale"] = float(stale.sum())
        keep = (~stale).nonzero().squeeze(-1)
        return (batch.rows(keep) if keep.numel() else None), metrics
    if mode == "downweight":
        metrics["async/downweighted_stale"] = float(stale.sum())
        excess = (staleness - max_staleness).clamp(min=0).to(batch.loss_mask.dtype)
        return batch.with_fields(sample_weight=decay**excess), metrics  # (B,)
    raise ValueError(f"stale={mode!r}; allowed: drop, downweight")

"""Shared tensor math for objectives: loss aggregation with global counts, group
statistics, the clipped surrogate and its metrics.

Owns the pieces every objective composes (docs/algorithms.md#aggregation-with-global-counts and
docs/algorithms.md#clipped-surrogate). Pure functions over tensors: no model, no optimizer, no run config, no
``torch.distributed``. Counts that normalise a loss come in as ``GlobalCounts`` so a loss
summed over micro-batches equals the loss of the whole batch.

Metric convention: a metric is a sum that adds up across micro-batches to the batch value
(``masked_sum / counts.num_tokens``), except keys ending in ``/max`` (reduced with max)
and ``/min`` (reduced with min).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

Aggregation = Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"]
AGGREGATIONS: tuple[str, ...] = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm")


@dataclass(frozen=True)
class GlobalCounts:
    """Counts over the whole optimizer batch (all micro-batches, all ranks).

    ``num_tokens``: generated tokens; ``num_seqs``: rows with at least one generated token;
    ``norm_constant``: the constant C of ``seq-mean-token-sum-norm``.
    """

    num_tokens: float
    num_seqs: float
    norm_constant: float

    @classmethod
    def of(cls, loss_mask: torch.Tensor, norm_constant: float | None = None) -> GlobalCounts:
        lengths = loss_mask.sum(-1)
        return cls(
            num_tokens=max(float(lengths.sum()), 1.0),
            num_seqs=max(float((lengths > 0).sum()), 1.0),
            norm_constant=float(norm_constant if norm_constant is not None else max(float(lengths.max()), 1.0)),
        )


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, mode: str, counts: GlobalCounts) -> torch.Tensor:
    """Reduce a ``(B, T)`` per-token loss over ``mask`` to a scalar, normalised by global counts."""
    masked = per_token * mask
    if mode == "token-mean":
        return masked.sum() / counts.num_tokens
    if mode == "seq-mean-token-mean":
        per_seq = masked.sum(-1) / mask.sum(-1).clamp(min=1)
        return per_seq.sum() / counts.num_seqs
    if mode == "seq-mean-token-sum":
        return masked.sum() / counts.num_seqs
    if mode == "seq-mean-token-sum-norm":
        # Dr. GRPO: the sum over tokens divided by a constant C, no per-length normalisation
        return masked.sum() / counts.norm_constant
    raise ValueError(f"unknown aggregation {mode!r}; choose one of {', '.join(AGGREGATIONS)}")


def token_mean(values: torch.Tensor, mask: torch.Tensor, counts: GlobalCounts) -> torch.Tensor:
    """A metric: the masked sum of ``values`` over the batch's token count (sums across micro-batches)."""
    return (values * mask).sum() / counts.num_tokens


def masked_max(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return values.masked_fill(mask == 0, float("-inf")).max() if bool((mask > 0).any()) else values.new_tensor(0.0)


def masked_min(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return values.masked_fill(mask == 0, float("inf")).min() if bool((mask > 0).any()) else values.new_tensor(0.0)


def group_mean(values: torch.Tensor, groups: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) the (weighted) mean of ``values`` over each row's group."""
    weights = torch.ones_like(values) if weights is None else weights
    num = torch.zeros(int(groups.max()) + 1, dtype=values.dtype, device=values.device).index_add_(
        0, groups, values * weights
    )
    den = torch.zeros_like(num).index_add_(0, groups, weights)
    return (num / den.clamp(min=torch.finfo(values.dtype).tiny))[groups]


def group_size(groups: torch.Tensor) -> torch.Tensor:
    """(B,) the number of rows in each row's group."""
    return torch.bincount(groups)[groups]


def group_std(values: torch.Tensor, groups: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """(B,) the standard deviation of each row's group (0 for a singleton when unbiased)."""
    n = group_size(groups).to(values.dtype)
    centered = values - group_mean(values, groups)
    ss = torch.zeros(int(groups.max()) + 1, dtype=values.dtype, device=values.device)
    ss = ss.index_add_(0, groups, centered**2)[groups]
    std = (ss / ((n - 1).clamp(min=1) if unbiased else n)).sqrt()
    return torch.where(n > 1, std, torch.zeros_like(values))


def zero_variance(values: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """(B,) bool: the row's group has all values exactly equal (a singleton group too)."""
    n = int(groups.max()) + 1
    high = torch.full((n,), float("-inf"), dtype=values.dtype, device=values.device)
    low = torch.full((n,), float("inf"), dtype=values.dtype, device=values.device)
    high, low = high.scatter_reduce(0, groups, values, "amax"), low.scatter_reduce(0, groups, values, "amin")
    return (high == low)[groups]


def broadcast(per_seq: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, T): one value per row on its masked tokens, 0 elsewhere."""
    return per_seq[:, None] * mask


@dataclass
class ClipResult:
    per_token: torch.Tensor  # (B, T) loss
    clipped_low: torch.Tensor  # (B, T) bool: the lower clip was active
    clipped_high: torch.Tensor  # (B, T) bool: the upper clip was active


def clipped_surrogate(
    ratio: torch.Tensor, advantages: torch.Tensor, clip_low: float, clip_high: float, dual_clip: float | None = None
) -> ClipResult:
    """``-min(r A, clip(r, 1 - eps_lo, 1 + eps_hi) A)``, optionally bounded by ``-c A`` for A < 0."""
    unclipped = -ratio * advantages
    clipped = -ratio.clamp(1 - clip_low, 1 + clip_high) * advantages
    loss = torch.maximum(unclipped, clipped)
    if dual_clip is not None:
        loss = torch.where(advantages < 0, torch.minimum(loss, -dual_clip * advantages), loss)
    active = clipped > unclipped
    return ClipResult(loss, active & (ratio < 1 - clip_low), active & (ratio > 1 + clip_high))


def ratio_metrics(
    log_ratio: torch.Tensor, mask: torch.Tensor, counts: GlobalCounts, prefix: str = "ratio"
) -> dict[str, torch.Tensor]:
    ratio = log_ratio.exp()
    return {
        f"{prefix}/mean": token_mean(ratio, mask, counts),
        f"{prefix}/max": masked_max(ratio, mask),
        f"{prefix}/min": masked_min(ratio, mask),
        f"{prefix}/abs_dev/max": masked_max((ratio - 1).abs(), mask),
        "loss/approx_kl": token_mean(ratio - 1 - log_ratio, mask, counts),
    }


def effective_sample_size(log_weights: torch.Tensor, cap: float | None = None) -> torch.Tensor:
    """``(sum w)^2 / sum w^2`` of ``w = exp(log_weights)`` (B,), optionally ``min(w, cap)``.

    Scale-invariant, so unclipped weights are shifted by their maximum first (no overflow)."""
    w = (log_weights - log_weights.max()).exp() if cap is None else log_weights.exp().clamp(max=cap)  # (B,)
    return w.sum() ** 2 / (w**2).sum()


def turn_mean(values: torch.Tensor, turn_index: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T) each generated token's mean of ``values`` over its turn (0 where ``mask`` is 0).

    Turns are keyed by (row, ``turn_index``); a generated token without a turn keeps its value."""
    rows, _ = values.shape
    in_turn = ((turn_index >= 0) & (mask > 0)).to(values.dtype)  # (B, T)
    num_turns = int(turn_index.max().clamp(min=0)) + 1
    row_offset = torch.arange(rows, device=values.device)[:, None] * num_turns  # (B, 1)
    slot = (row_offset + turn_index.clamp(min=0)).flatten()  # (B*T,)
    sums = values.new_zeros(rows * num_turns).index_add_(0, slot, (values * in_turn).flatten())
    sizes = values.new_zeros(rows * num_turns).index_add_(0, slot, in_turn.flatten())
    mean = (sums / sizes.clamp(min=1))[slot].view_as(values)  # (B, T)
    return torch.where(in_turn > 0, mean, values) * mask

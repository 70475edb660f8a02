"""SPEAR's cosine curriculum: the self-imitation weight fades in while the tool-call bonus fades out.

docs/algorithms.md#spear. Owns the two schedules and the intrinsic tool-call reward, as pure
functions of the optimizer step ``t`` and a horizon ``T``; it knows nothing of batches,
buffers or the learner.

- self-imitation weight ``coef * (1 - cos(pi t / T)) / 2`` for ``t <= T``, then ``coef``;
- tool-call bonus ``min(cap, per_call * n_tool_calls) * (1 + cos(pi t / T)) / 2`` for
  ``t <= T``, then 0 (``per_call = 0.1``, ``cap = 1`` in the paper).

Edge cases (our choices): a negative step counts as 0; a horizon ``T <= 0`` means the
schedule has already finished (weight ``coef``, bonus 0).
"""

from __future__ import annotations

import math

import torch


def _progress(step: int, horizon: int) -> float:
    """``t / T`` clamped to ``[0, 1]``; 1 when ``T <= 0`` (the schedule is over)."""
    if horizon <= 0:
        return 1.0
    return min(max(step, 0), horizon) / horizon


def self_imitation_weight(step: int, horizon: int, coef: float = 1.0) -> float:
    """The replay loss weight at ``step``: 0 at t = 0, ``coef / 2`` at T / 2, ``coef`` from T on."""
    return coef * (1.0 - math.cos(math.pi * _progress(step, horizon))) / 2.0


def tool_bonus_weight(step: int, horizon: int) -> float:
    """The fade-out factor of the tool-call bonus: 1 at t = 0, 0.5 at T / 2, 0 from T on."""
    if _progress(step, horizon) >= 1.0:
        return 0.0  # exactly 0 after T, not cos(pi)'s rounding error
    return (1.0 + math.cos(math.pi * _progress(step, horizon))) / 2.0


def tool_call_bonus(
    num_tool_calls: torch.Tensor, step: int, horizon: int, per_call: float = 0.1, cap: float = 1.0
) -> torch.Tensor:
    """(B,) intrinsic reward ``min(cap, per_call * n) * tool_bonus_weight(step, horizon)``."""
    return (per_call * num_tool_calls.clamp(min=0)).clamp(max=cap) * tool_bonus_weight(step, horizon)

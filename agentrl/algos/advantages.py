"""Advantage estimators shared by several algorithms (docs/algorithms.md#opo, #grpo,
#dr_grpo, #rloo, #ppo).

Pure functions of rewards ``(B,)``, group indices ``(B,)``, lengths ``(B,)`` and, for GAE,
values and masks ``(B, T)``. Group conventions: a singleton group has advantage 0 (there
is nothing to compare against), and is counted by the learner's metrics.
"""

from __future__ import annotations

import torch

from agentrl.algos.core import group_mean, group_size, group_std


def group_baseline(rewards: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """``R - mean(R of the group)``; REINFORCE with a group-mean baseline and Dr. GRPO."""
    return torch.where(group_size(groups) > 1, rewards - group_mean(rewards, groups), torch.zeros_like(rewards))


def group_normalized(rewards: torch.Tensor, groups: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """GRPO: ``(R - mean) / (std + eps)`` with the unbiased std of the group."""
    return group_baseline(rewards, groups) / (group_std(rewards, groups, unbiased=True) + eps)


def leave_one_out(rewards: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """RLOO: ``R_i - mean_{j != i} R_j`` = ``G / (G - 1) (R_i - mean)``."""
    n = group_size(groups).to(rewards.dtype)
    return torch.where(
        n > 1, (rewards - group_mean(rewards, groups)) * n / (n - 1).clamp(min=1), torch.zeros_like(rewards)
    )


def length_weighted_baseline(rewards: torch.Tensor, groups: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """OPO: ``R - b`` with ``b = sum |y| R / sum |y|`` per group (singleton: 0)."""
    baseline = group_mean(rewards, groups, weights=lengths.to(rewards.dtype))
    return torch.where(group_size(groups) > 1, rewards - baseline, torch.zeros_like(rewards))


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over each row's generated tokens.

    The reward arrives at the last generated token. Observation and template tokens
    (``mask == 0``) are transparent: value and advantage pass through them unchanged, so
    the recursion runs over the generated tokens only. ``values[:, t]`` estimates the state
    before token ``t`` is generated. Returns ``(advantages, returns)``, both ``(B, T)``.
    """
    advantages = torch.zeros_like(values)
    for row in range(values.shape[0]):
        positions = mask[row].nonzero().squeeze(-1).tolist()
        running, next_value = 0.0, 0.0
        for k, t in enumerate(reversed(positions)):
            reward = float(rewards[row]) if k == 0 else 0.0
            delta = reward + gamma * next_value - float(values[row, t])
            running = delta + gamma * lam * running
            advantages[row, t] = running
            next_value = float(values[row, t])
    return advantages, (advantages + values) * mask


def turn_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    turn_index: torch.Tensor,
    gamma: float = 1.0,
    lam: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Turn-level GAE: one value, one advantage and one return per assistant turn.

    Turn ``k`` of a row is its generated tokens with ``turn_index == k``. ``V_k`` is the value at
    the turn's first generated token (the state before the turn is generated); the reward ``R``
    arrives after the last turn, after which the value is 0. ``delta_k = r_k + gamma V_{k+1} -
    V_k``, ``A_k = delta_k + gamma lam A_{k+1}``, ``G_k = A_k + V_k``. Returns ``(advantages,
    returns, weights)``, all ``(B, T)``: ``A_k`` and ``G_k`` on every token of turn ``k``, and at
    each turn's first token the turn's length (0 elsewhere), which weights the value loss there
    as if every token of the turn carried it.
    """
    advantages, returns, weights = torch.zeros_like(values), torch.zeros_like(values), torch.zeros_like(values)
    for row in range(values.shape[0]):
        turns: dict[int, list[int]] = {}
        for t in mask[row].nonzero().squeeze(-1).tolist():
            turns.setdefault(int(turn_index[row, t]), []).append(t)
        running, next_value = 0.0, 0.0
        for k, positions in enumerate(sorted(turns.values(), key=lambda p: -p[0])):  # the last turn first
            value = float(values[row, positions[0]])
            delta = (float(rewards[row]) if k == 0 else 0.0) + gamma * next_value - value
            running = delta + gamma * lam * running
            advantages[row, positions] = running
            returns[row, positions] = running + value
            weights[row, positions[0]] = len(positions)
            next_value = value
    return advantages, returns, weights

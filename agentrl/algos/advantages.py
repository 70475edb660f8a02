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

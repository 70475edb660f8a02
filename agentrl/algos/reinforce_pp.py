"""``reinforce_pp``: REINFORCE++ with a group baseline (REINFORCE++-baseline, arXiv 2501.03262).

docs/algorithms.md#reinforce_pp (batch-whitened advantages). Reading, documented:

1. ``a_i = R_i - mean(R of the group)`` (singleton group: 0), broadcast over the row's
   generated tokens (with ``gamma = 1`` and a single terminal reward the token return is
   ``a_i`` at every generated token);
2. whitened over the whole optimizer batch's generated tokens, as OpenRLHF's
   ``reinforce_baseline``: ``A = (a - mu) / sqrt(max(var, 1e-8))`` with
   ``mu = sum_i |y_i| a_i / N`` and ``var = sum_i |y_i| (a_i - mu)^2 / N`` (population
   variance), ``N`` the number of generated tokens. A long row weighs by its length.
   ``whiten_over=sequences`` weighs every row once instead.
3. PPO clipped surrogate (``clip.ppo_token_loss``), token-mean.

Advantages are computed once on the whole optimizer batch (before micro-batching), so the
whitening statistics are global. REINFORCE++ folds a token-level KL into the reward; here the
KL to a reference is the shared ``kl_coef`` loss term (k3), off by default.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agentrl.algos.advantages import group_baseline
from agentrl.algos.clip import ClipConfig
from agentrl.algos.grpo import GRPO
from agentrl.algos.registry import register
from agentrl.batch import TokenBatch
from agentrl.config import check_choice, option

VAR_FLOOR = 1e-8


@dataclass
class ReinforcePPConfig(ClipConfig):
    whiten_over: str = option("tokens", "whitening statistics over the batch's generated tokens or its sequences")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(type(self).__name__, "whiten_over", self.whiten_over, ("tokens", "sequences"))


def batch_whitened(per_seq: torch.Tensor, mask: torch.Tensor, over: str = "tokens") -> torch.Tensor:
    """(B, T) ``(a - mu) / sqrt(max(var, 1e-8))`` on generated tokens (0 elsewhere); ``mu`` and
    the population ``var`` over the batch's generated tokens (``over=tokens``) or over its rows
    with at least one generated token (``over=sequences``)."""
    lengths = mask.sum(-1)  # (B,)
    weights = lengths if over == "tokens" else (lengths > 0).to(mask.dtype)  # (B,)
    total = weights.sum().clamp(min=1)
    mu = (weights * per_seq).sum() / total
    var = (weights * (per_seq - mu) ** 2).sum() / total
    return ((per_seq - mu) / var.clamp(min=VAR_FLOOR).sqrt())[:, None] * mask


@register
class ReinforcePP(GRPO):
    name = "reinforce_pp"
    description = "REINFORCE++-baseline: R - group mean, whitened over the batch's tokens, PPO clip"
    config_cls = ReinforcePPConfig

    def advantages(self, batch: TokenBatch) -> torch.Tensor:
        assert isinstance(self.config, ReinforcePPConfig)
        a = group_baseline(batch.rewards, batch.group_index)  # (B,)
        return batch_whitened(a, batch.loss_mask, self.config.whiten_over)

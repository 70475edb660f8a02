"""``sapo``: Soft Adaptive Policy Optimization (SAPO, arXiv 2511.20347).

docs/algorithms.md#sapo. GRPO advantages (``advantages.group_normalized``); PPO's hard clip is replaced by a smooth
gate on the token ratio ``r = pi_theta / pi_old``::

    l_{i,t} = -f(r) A,   f(r) = (4 / tau) sigmoid(tau (r - 1)),
    tau = tau_pos (1.0) where A > 0, tau_neg (1.05) where A <= 0

``f'(r) = 4 s (1 - s)`` with ``s = sigmoid(tau (r - 1))``, so ``f'(1) = 1`` for any ``tau``:
at ``r == 1`` the gradient is the policy gradient ``-A grad log pi``, and it decays smoothly
as ``r`` leaves 1 (faster for negative advantages, ``tau_neg > tau_pos``). ``f(1) = 2 / tau``,
so the loss *value* at ``r == 1`` is ``-2 A / tau``, not ``-A``; only its gradient matters.
``A == 0`` takes ``tau_neg`` (it contributes nothing either way).

Aggregation: ``seq-mean-token-mean``, the paper's objective ``(1/G) sum_i (1/|y_i|) sum_t``
(as GRPO/GSPO there); Trinity-RFT's implementation defaults to token-mean (``aggregation``).
``policy/soft_gate`` logs the mean gradient weight ``f'(r)`` (1 on policy).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agentrl.algos.advantages import group_normalized
from agentrl.algos.base import Algorithm, LossInputs, ObjectiveConfig
from agentrl.algos.core import AGGREGATIONS, GlobalCounts, broadcast, ratio_metrics, token_mean
from agentrl.algos.registry import register
from agentrl.batch import TokenBatch
from agentrl.config import check_range, option


@dataclass
class SAPOConfig(ObjectiveConfig):
    aggregation: str = option("seq-mean-token-mean", "loss aggregation: " + ", ".join(AGGREGATIONS))
    tau_pos: float = option(1.0, "gate temperature for tokens with a positive advantage")
    tau_neg: float = option(1.05, "gate temperature for tokens with a negative (or zero) advantage")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(type(self).__name__, "tau_pos", self.tau_pos, 1e-6)
        check_range(type(self).__name__, "tau_neg", self.tau_neg, 1e-6)


def soft_gate(ratio: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """(B, T) ``f(r) = (4 / tau) sigmoid(tau (r - 1))``; ``f'(1) = 1``."""
    return 4 / tau * torch.sigmoid(tau * (ratio - 1))


@register
class SAPO(Algorithm):
    name = "sapo"
    description = "SAPO: GRPO advantages, soft sigmoid gate -(4/tau) sigmoid(tau (r-1)) A instead of hard clip"
    old_logprobs_in_loss_only = True
    config_cls = SAPOConfig

    def advantages(self, batch: TokenBatch) -> torch.Tensor:
        return broadcast(group_normalized(batch.rewards, batch.group_index), batch.loss_mask)

    def token_loss(
        self, inputs: LossInputs, batch: TokenBatch, counts: GlobalCounts
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.config
        assert isinstance(c, SAPOConfig)
        mask, advantages = batch.loss_mask, batch.require("advantages")
        log_ratio = (inputs.logprobs - batch.require("old_logprobs")) * mask  # (B, T)
        ratio = log_ratio.exp()
        # tau as a tensor of the advantages' dtype: a float32 tau would break f'(1) = 1 in float64
        tau = torch.where(advantages > 0, advantages.new_tensor(c.tau_pos), advantages.new_tensor(c.tau_neg))
        per_token = -soft_gate(ratio, tau) * advantages
        gate = torch.sigmoid(tau * (ratio.detach() - 1))
        metrics = ratio_metrics(log_ratio.detach(), mask, counts)
        metrics["policy/soft_gate"] = token_mean(4 * gate * (1 - gate), mask, counts)
        metrics["loss/policy"] = token_mean(per_token.detach(), mask, counts)
        return per_token, metrics

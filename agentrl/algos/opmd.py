"""``opmd``: on-policy mirror descent as a policy gradient with a squared log-ratio penalty.

docs/algorithms.md#opmd::

    l_{i,t} = -A log pi_theta + tau (log pi_theta - log pi_old)^2,   tau = 0.1

The penalty keeps each update close to ``pi_old`` (the mirror-descent proximal term). Kimi
k1.5's OPMD gradient has ``tau / 2`` times the squared *sequence* log-ratio; this is the
table's per-token form with ``tau`` as written (reading, documented). The penalty's gradient
``2 tau (log pi - log pi_old)`` is 0 at ``pi_theta == pi_old``, so on policy the gradient is
the policy gradient. Token-mean.

Advantage (reading, documented): the group baseline ``A = R - mean(R of the group)`` (singleton
0), as Trinity-RFT's ``opmd_baseline=mean``; its ``logavgexp`` baseline and ``1 / (1 + tau)``
scaling are not used (that variant drops the explicit penalty, which this form keeps).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agentrl.algos.base import LossInputs, ObjectiveConfig
from agentrl.algos.core import GlobalCounts, ratio_metrics, token_mean
from agentrl.algos.registry import register
from agentrl.algos.reinforce import Reinforce
from agentrl.batch import TokenBatch
from agentrl.config import check_range, option


@dataclass
class OPMDConfig(ObjectiveConfig):
    tau: float = option(0.1, "weight of the squared log-ratio penalty tau (log pi - log pi_old)^2")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(type(self).__name__, "tau", self.tau, 0)


@register
class OPMD(Reinforce):
    name = "opmd"
    description = "OPMD: -(R - mean) log pi + tau (log pi - log pi_old)^2, a proximal policy gradient"
    config_cls = OPMDConfig

    def token_loss(
        self, inputs: LossInputs, batch: TokenBatch, counts: GlobalCounts
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.config
        assert isinstance(c, OPMDConfig)
        mask = batch.loss_mask
        log_ratio = (inputs.logprobs - batch.require("old_logprobs")) * mask  # (B, T)
        policy = -batch.require("advantages") * inputs.logprobs
        penalty = log_ratio**2
        metrics = ratio_metrics(log_ratio.detach(), mask, counts)
        metrics["loss/policy"] = token_mean(policy.detach(), mask, counts)
        metrics["loss/opmd_penalty"] = token_mean(penalty.detach(), mask, counts)
        return policy + c.tau * penalty, metrics

"""``opo`` and ``opo_batch``: exactly on-policy RL with the optimal reward baseline.

docs/algorithms.md#opo. ``A_i = R_i - b`` with ``b = sum_i |y_i| R_i / sum_i |y_i|`` over the
group (``opo``) or the whole batch (``opo_batch``), broadcast over generated tokens; no std
normalisation, no KL, no entropy, token-mean. A singleton group gets ``A = 0`` (reference
codes disagree between 0 and R; 0 keeps the estimator a baseline-corrected one).

The loss is ``-A r`` with ``r = exp(log pi - log pi_old)``; exact on-policy training keeps
``r == 1``, so its gradient is the REINFORCE gradient ``-A grad log pi``. ``on_policy_only``
makes the learner refuse settings with more than one optimizer step per rollout batch, and
``ratio/abs_dev/max`` logs max ``|r - 1|``.
"""

from __future__ import annotations

import torch

from agentrl.algos.advantages import length_weighted_baseline
from agentrl.algos.base import Algorithm, LossInputs
from agentrl.algos.core import GlobalCounts, broadcast, ratio_metrics, token_mean
from agentrl.algos.registry import register
from agentrl.batch import TokenBatch


@register
class OPO(Algorithm):
    name = "opo"
    description = "OPO: exactly on-policy, length-weighted optimal baseline per group, token-mean"
    old_logprobs_in_loss_only = True
    on_policy_only = True

    def baseline_groups(self, batch: TokenBatch) -> torch.Tensor:
        return batch.group_index

    def advantages(self, batch: TokenBatch) -> torch.Tensor:
        a = length_weighted_baseline(batch.rewards, self.baseline_groups(batch), batch.lengths)
        return broadcast(a, batch.loss_mask)

    def token_loss(
        self, inputs: LossInputs, batch: TokenBatch, counts: GlobalCounts
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        log_ratio = (inputs.logprobs - batch.require("old_logprobs")) * batch.loss_mask
        per_token = -batch.require("advantages") * log_ratio.exp()
        metrics = ratio_metrics(log_ratio.detach(), batch.loss_mask, counts)
        metrics["loss/policy"] = token_mean(per_token.detach(), batch.loss_mask, counts)
        return per_token, metrics


@register
class OPOBatch(OPO):
    name = "opo_batch"
    description = "OPO with the optimal baseline taken over the whole batch instead of each group"

    def baseline_groups(self, batch: TokenBatch) -> torch.Tensor:
        return torch.zeros_like(batch.group_index)

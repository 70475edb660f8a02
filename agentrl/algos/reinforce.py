"""``reinforce``: REINFORCE with a group-mean baseline, ``-A log pi``."""

from __future__ import annotations

import torch

from agentrl.algos.advantages import group_baseline
from agentrl.algos.base import Algorithm, LossInputs
from agentrl.algos.core import GlobalCounts, broadcast, token_mean
from agentrl.algos.registry import register
from agentrl.batch import TokenBatch


@register
class Reinforce(Algorithm):
    name = "reinforce"
    description = "REINFORCE with a group-mean baseline: -(R - mean R) log pi"
    old_logprobs_in_loss_only = True

    def advantages(self, batch: TokenBatch) -> torch.Tensor:
        return broadcast(group_baseline(batch.rewards, batch.group_index), batch.loss_mask)

    def token_loss(
        self, inputs: LossInputs, batch: TokenBatch, counts: GlobalCounts
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        per_token = -batch.require("advantages") * inputs.logprobs
        return per_token, {"loss/policy": token_mean(per_token.detach(), batch.loss_mask, counts)}

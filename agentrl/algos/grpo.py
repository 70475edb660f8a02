"""``grpo``: group-normalised advantages with the PPO clipped surrogate (optional k3 KL).

``A = (R - mean) / (std + 1e-6)``, unbiased std over the group; a singleton group gets 0.
"""

from __future__ import annotations

import torch

from agentrl.algos.advantages import group_normalized
from agentrl.algos.base import Algorithm, LossInputs
from agentrl.algos.clip import ClipConfig, ppo_token_loss
from agentrl.algos.core import GlobalCounts, broadcast
from agentrl.algos.registry import register
from agentrl.batch import TokenBatch


@register
class GRPO(Algorithm):
    name = "grpo"
    description = "GRPO: (R - mean) / std advantages, PPO clipped surrogate, optional KL to a reference"
    old_logprobs_in_loss_only = True
    config_cls = ClipConfig

    def advantages(self, batch: TokenBatch) -> torch.Tensor:
        return broadcast(group_normalized(batch.rewards, batch.group_index), batch.loss_mask)

    def token_loss(
        self, inputs: LossInputs, batch: TokenBatch, counts: GlobalCounts
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        assert isinstance(self.config, ClipConfig)
        old, advantages = batch.require("old_logprobs"), batch.require("advantages")
        return ppo_token_loss(inputs.logprobs, old, advantages, batch.loss_mask, self.config, counts)

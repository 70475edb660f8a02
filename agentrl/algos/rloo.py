"""``rloo``: REINFORCE leave-one-out advantages with the PPO clipped surrogate.

docs/algorithms.md#rloo. ``A_i = R_i - mean_{j != i} R_j = G / (G - 1) (R_i - mean)``
(``advantages.leave_one_out``; a singleton group gets 0), broadcast over generated tokens,
then ``clip.ppo_token_loss``. Token-mean aggregation by default, as the other PPO-style
objectives here (the RLOO paper scores whole sequences; ``aggregation`` switches).
"""

from __future__ import annotations

import torch

from agentrl.algos.advantages import leave_one_out
from agentrl.algos.core import broadcast
from agentrl.algos.grpo import GRPO
from agentrl.algos.registry import register
from agentrl.batch import TokenBatch


@register
class RLOO(GRPO):
    name = "rloo"
    description = "RLOO: leave-one-out baseline R_i - mean_{j != i} R_j, PPO clipped surrogate"

    def advantages(self, batch: TokenBatch) -> torch.Tensor:
        return broadcast(leave_one_out(batch.rewards, batch.group_index), batch.loss_mask)

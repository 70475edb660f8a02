"""``dr_grpo``: Dr. GRPO, GRPO without its length and difficulty biases.

docs/algorithms.md#dr_grpo. ``A = R - mean(R of the group)`` (no std normalisation; a singleton
group gets 0), the PPO clipped surrogate (``clip.ppo_token_loss``), no KL by default, and the
``seq-mean-token-sum-norm`` aggregation: the sum of the per-token loss over generated tokens
divided by a constant ``C``, so neither a response's length nor the padding rescales its
tokens' weight. Padding never enters the sum, so for a fixed ``C`` the loss is invariant to
padding (``tests/algos/test_baselines.py`` checks it).

``C`` is ``norm_constant``; its default (None) is the longest response in the optimizer batch,
which the learner computes once over the whole batch. The paper uses the generation budget
(max response tokens); set ``norm_constant`` to it to match that exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agentrl.algos.advantages import group_baseline
from agentrl.algos.clip import ClipConfig
from agentrl.algos.core import AGGREGATIONS, broadcast
from agentrl.algos.grpo import GRPO
from agentrl.algos.registry import register
from agentrl.batch import TokenBatch
from agentrl.config import option


@dataclass
class DrGRPOConfig(ClipConfig):
    aggregation: str = option("seq-mean-token-sum-norm", "loss aggregation: " + ", ".join(AGGREGATIONS))


@register
class DrGRPO(GRPO):
    name = "dr_grpo"
    description = "Dr. GRPO: R - mean advantages (no std), PPO clip, token sum over a constant C, no KL"
    config_cls = DrGRPOConfig

    def advantages(self, batch: TokenBatch) -> torch.Tensor:
        return broadcast(group_baseline(batch.rewards, batch.group_index), batch.loss_mask)

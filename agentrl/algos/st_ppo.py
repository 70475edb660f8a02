"""``st_ppo``: turn-level ratios plus the clipping-bias correction (ST-PPO of arXiv 2511.20718).

docs/algorithms.md#st_ppo. Owns only the composition: the turn ratio comes from
``turn_ppo.turn_log_ratio``, the clipped surrogate with the per-sequence correction from
``s_ppo.corrected_ppo_loss``, the advantages (group-relative or the turn-level critic,
``advantage=gae``) from ``turn_ppo.TurnAdvantages``;
the readings and deviations recorded there apply here (the correction's normaliser is
**unverified**; ``correction`` picks the reading). Since every token of a turn shares the turn
ratio, a turn is clipped as a whole, and the clipped fraction of a sequence is the share of
its tokens in clipped turns. With no turn clipped, ST-PPO equals Turn-PPO exactly.
"""

from __future__ import annotations

import torch

from agentrl.algos.base import LossInputs
from agentrl.algos.core import GlobalCounts
from agentrl.algos.registry import register
from agentrl.algos.s_ppo import SPPO, SPPOConfig, corrected_ppo_loss
from agentrl.algos.turn_ppo import token_spread_metrics, turn_log_ratio
from agentrl.batch import TokenBatch


@register
class STPPO(SPPO):
    """S-PPO's advantages and correction; only the ratio is turn-level."""

    name = "st_ppo"
    description = "ST-PPO: turn-level ratios with the S-PPO clipping-bias correction, group or turn-GAE advantages"

    def token_loss(
        self, inputs: LossInputs, batch: TokenBatch, counts: GlobalCounts
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        assert isinstance(self.config, SPPOConfig)
        mask = batch.loss_mask
        old, advantages = batch.require("old_logprobs"), batch.require("advantages")
        log_ratio = turn_log_ratio(inputs.logprobs, old, batch.turn_index, mask)
        per_token, metrics = corrected_ppo_loss(
            inputs.logprobs, old, advantages, mask, self.config, counts, log_ratio=log_ratio
        )
        metrics |= token_spread_metrics(inputs.logprobs, old, mask)
        return self.with_value_loss(per_token, metrics, inputs, batch, counts)

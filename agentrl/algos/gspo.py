"""``gspo``: Group Sequence Policy Optimization (GSPO, arXiv 2507.18071).

docs/algorithms.md#gspo. GRPO advantages (inherited), the clipped surrogate on the *sequence*
ratio ``s_i = exp(mean_t m log r_{i,t})`` (the geometric mean of the row's token ratios over
its generated tokens), clip range ``[1 - 3e-4, 1 + 4e-4]``, ``seq-mean-token-mean``.

Form: the paper's GSPO-token variant, the "sequence-level with per-token gradient" form
``s_{i,t} = sg(s_i) pi_theta(t) / sg(pi_theta(t))``, i.e.
``log s_{i,t} = sg(log s_i) + log pi - sg(log pi)``. Its value is ``s_i`` on every token; its
gradient is ``s_i grad log pi(t)``. With a per-sequence advantage and ``seq-mean-token-mean``
this equals the sequence form ``-(1/B) sum_i min(s_i A_i, clip(s_i) A_i)`` in value, clipping
decision and gradient (``grad s_i = s_i (1/|y_i|) sum_t grad log pi(t)``), and it still allows
per-token advantages. The ratio is the one-turn case of Turn-PPO's turn ratio, so it is
computed by ``turn_ppo.turn_log_ratio`` with every generated token in turn 0 (one place for
that math). Ratio and clip-fraction metrics are those of the sequence ratio, per token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agentrl.algos.base import LossInputs
from agentrl.algos.clip import ClipConfig, ppo_token_loss
from agentrl.algos.core import AGGREGATIONS, GlobalCounts
from agentrl.algos.grpo import GRPO
from agentrl.algos.registry import register
from agentrl.algos.turn_ppo import turn_log_ratio
from agentrl.batch import TokenBatch
from agentrl.config import option


@dataclass
class GSPOConfig(ClipConfig):
    aggregation: str = option("seq-mean-token-mean", "loss aggregation: " + ", ".join(AGGREGATIONS))
    clip_low: float = option(3e-4, "eps_lo: the sequence ratio is clipped below at 1 - clip_low")
    clip_high: float = option(4e-4, "eps_hi: the sequence ratio is clipped above at 1 + clip_high")


def sequence_log_ratio(logprobs: torch.Tensor, old_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T) ``sg(log s_i) + log pi - sg(log pi)`` on generated tokens, 0 elsewhere, where
    ``log s_i = mean_t m (log pi - log pi_old)`` over the row's generated tokens."""
    one_turn = torch.zeros_like(mask, dtype=torch.long)  # (B, T) every generated token in turn 0
    return turn_log_ratio(logprobs, old_logprobs, one_turn, mask)


@register
class GSPO(GRPO):
    name = "gspo"
    description = "GSPO: GRPO advantages, PPO clip on the sequence ratio exp(mean log r), seq-mean-token-mean"
    config_cls = GSPOConfig

    def token_loss(
        self, inputs: LossInputs, batch: TokenBatch, counts: GlobalCounts
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        assert isinstance(self.config, GSPOConfig)
        mask = batch.loss_mask
        old, advantages = batch.require("old_logprobs"), batch.require("advantages")
        log_ratio = sequence_log_ratio(inputs.logprobs, old, mask)
        return ppo_token_loss(inputs.logprobs, old, advantages, mask, self.config, counts, log_ratio=log_ratio)

"""``cispo``: Clipped IS-weight Policy Optimization (CISPO, MiniMax-M1, arXiv 2506.13585).

docs/algorithms.md#cispo. GRPO advantages (inherited) and the per-token loss::

    l_{i,t} = -sg(clip(r, 1 - eps_lo, 1 + eps_hi)) A log pi_theta,   r = pi_theta / pi_old

with token-mean aggregation. The importance weight is clipped and detached instead of the
update: every token keeps a gradient ``-clip(r) A grad log pi``. Inside the clip range that is
PPO's gradient ``-r A grad log pi``; outside it, where PPO's gradient is 0 on the clipped side,
CISPO's is the truncated weight times the policy gradient.

Defaults: ``clip_low = 1.0`` (lower bound 0: no lower clip, as MiniMax-M1, which "did not
impose a lower bound on the IS weight"), ``clip_high = 3.0`` (weights capped at 4; MiniMax-M1
does not publish its eps_hi; 4 is the cap Tinker's CISPO defaults to). ``dual_clip`` has no
meaning here and must stay None. The loss value ``-w A log pi`` is a gradient surrogate, not an
objective estimate; ``loss/policy`` logs it as is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agentrl.algos.base import LossInputs
from agentrl.algos.clip import ClipConfig
from agentrl.algos.core import GlobalCounts, ratio_metrics, token_mean
from agentrl.algos.grpo import GRPO
from agentrl.algos.registry import register
from agentrl.batch import TokenBatch
from agentrl.config import check_choice, option


@dataclass
class CISPOConfig(ClipConfig):
    clip_low: float = option(1.0, "eps_lo: the IS weight is clipped below at 1 - clip_low (1 = no lower clip)")
    clip_high: float = option(3.0, "eps_hi: the IS weight is clipped above at 1 + clip_high")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(type(self).__name__, "dual_clip", self.dual_clip, (None,))


@register
class CISPO(GRPO):
    name = "cispo"
    description = "CISPO: GRPO advantages, -sg(clip(r)) A log pi (clipped IS weight, every token keeps a gradient)"
    config_cls = CISPOConfig

    def token_loss(
        self, inputs: LossInputs, batch: TokenBatch, counts: GlobalCounts
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.config
        assert isinstance(c, CISPOConfig)
        mask = batch.loss_mask
        log_ratio = ((inputs.logprobs - batch.require("old_logprobs")) * mask).detach()  # (B, T)
        ratio = log_ratio.exp()
        weight = ratio.clamp(1 - c.clip_low, 1 + c.clip_high)  # (B, T), no gradient
        per_token = -weight * batch.require("advantages") * inputs.logprobs
        metrics = ratio_metrics(log_ratio, mask, counts)
        metrics["loss/clipfrac_low"] = token_mean((ratio < 1 - c.clip_low).to(mask.dtype), mask, counts)
        metrics["loss/clipfrac_high"] = token_mean((ratio > 1 + c.clip_high).to(mask.dtype), mask, counts)
        metrics["loss/policy"] = token_mean(per_token.detach(), mask, counts)
        return per_token, metrics

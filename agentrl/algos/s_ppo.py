"""``s_ppo``: token-level PPO with the clipping-bias correction (S-PPO of arXiv 2511.20718).

docs/algorithms.md#s_ppo. Owns the clipping-bias correction (``SPPOConfig``,
``clip_correction``, ``corrected_ppo_loss``) and the ``s_ppo`` algorithm; ``st_ppo`` reuses
``corrected_ppo_loss`` with turn-level ratios. It does not touch the clipped surrogate itself
(``clip.ppo_token_loss``) nor the advantages (``turn_ppo.TurnAdvantages``, shared).

The paper normalises the gradient to down-weight updates dominated by highly off-policy
(clipped) samples; its exact normaliser (eq. 8/9; v2's "clipping-triggered normalization")
is **unverified**. Two documented readings, chosen by ``correction``; both are per sequence,
so local to a row and hence invariant to the micro-batch split and the number of ranks
(a batch-level count of clipped tokens cannot be computed in ``prepare``, where the ratio is
still 1, and ``GlobalCounts`` carries no clip count):

- ``downweight`` (default): each sequence's per-token loss is multiplied by
  ``sg(1 - f_i)``, ``f_i`` = the fraction of its generated tokens whose clip is active
  (the clipped branch binds, so the token gives no gradient). A sequence dominated by clipped
  tokens contributes little: the literal "down-weight unreliable samples" of the paper.
- ``renormalize``: each sequence is multiplied by ``sg(|y_i| / #unclipped_i)`` (1 when every
  token is clipped), the per-sequence form of "(#tokens) / (#tokens not clipped)": the
  sequence's gradient becomes the mean over the tokens that still carry one.

In both readings the weight is exactly 1 when no token is clipped, so S-PPO then equals PPO
(loss and gradient). Only the ratio clip counts as clipping, not the dual clip. Advantages
are ``turn_ppo``'s: group-relative, or the paper's critic at the turn level (``advantage=gae``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agentrl.algos.base import LossInputs
from agentrl.algos.clip import ppo_token_loss
from agentrl.algos.core import GlobalCounts, broadcast, clipped_surrogate, masked_min, token_mean
from agentrl.algos.registry import register
from agentrl.algos.turn_ppo import TurnAdvantages, TurnPPOConfig
from agentrl.batch import TokenBatch
from agentrl.config import check_choice, option

CORRECTIONS: tuple[str, ...] = ("downweight", "renormalize")


@dataclass
class SPPOConfig(TurnPPOConfig):
    correction: str = option(
        "downweight",
        "clipping-bias correction per sequence: downweight (x sg(1 - clipped fraction)) "
        "or renormalize (x sg(|y| / unclipped tokens))",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(type(self).__name__, "correction", self.correction, CORRECTIONS)


def clip_correction(
    log_ratio: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, config: SPPOConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) per-sequence correction weights (detached) and (B,) clipped-token fractions."""
    flags = clipped_surrogate(log_ratio.detach().exp(), advantages, config.clip_low, config.clip_high)
    clipped = ((flags.clipped_low | flags.clipped_high).to(mask.dtype) * mask).sum(-1)  # (B,)
    tokens = mask.sum(-1)  # (B,)
    fraction = clipped / tokens.clamp(min=1)  # (B,)
    if config.correction == "downweight":
        weights = 1 - fraction
    else:
        unclipped = tokens - clipped
        weights = torch.where(unclipped > 0, tokens / unclipped.clamp(min=1), torch.ones_like(tokens))
    return weights.detach(), fraction.detach()


def corrected_ppo_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    config: SPPOConfig,
    counts: GlobalCounts,
    log_ratio: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(B, T) the PPO clipped surrogate times the per-sequence clipping-bias correction.

    ``log_ratio`` overrides the token log-ratio as in ``ppo_token_loss`` (``st_ppo`` passes the
    turn-level one); the clip flags are taken from the same ratio."""
    log_ratio = (logprobs - old_logprobs) * mask if log_ratio is None else log_ratio
    per_token, metrics = ppo_token_loss(logprobs, old_logprobs, advantages, mask, config, counts, log_ratio=log_ratio)
    weights, fraction = clip_correction(log_ratio, advantages, mask, config)  # (B,), (B,)
    per_token = per_token * broadcast(weights, mask)  # (B, T)
    rows = (mask.sum(-1) > 0).to(mask.dtype)  # (B,)
    metrics["sppo/weight_mean"] = (weights * rows).sum() / counts.num_seqs
    metrics["sppo/weight/min"] = masked_min(weights[:, None], rows[:, None])  # over rows with tokens
    metrics["sppo/clipped_seq_frac"] = ((fraction > 0).to(mask.dtype) * rows).sum() / counts.num_seqs
    metrics["loss/policy"] = token_mean(per_token.detach(), mask, counts)
    return per_token, metrics


@register
class SPPO(TurnAdvantages):
    name = "s_ppo"
    description = "S-PPO: token PPO clip with a per-sequence clipping-bias correction, group or turn-GAE advantages"
    config_cls = SPPOConfig

    def token_loss(
        self, inputs: LossInputs, batch: TokenBatch, counts: GlobalCounts
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        assert isinstance(self.config, SPPOConfig)
        old, advantages = batch.require("old_logprobs"), batch.require("advantages")
        per_token, metrics = corrected_ppo_loss(inputs.logprobs, old, advantages, batch.loss_mask, self.config, counts)
        return self.with_value_loss(per_token, metrics, inputs, batch, counts)

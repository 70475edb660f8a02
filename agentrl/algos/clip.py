"""The PPO clipped surrogate as a per-token objective, shared by the PPO-style algorithms.

Owns ``ClipConfig`` (clip range and dual clip) and ``ppo_token_loss``: the ratio against
``pi_old``, the surrogate, and the clip / ratio metrics of
docs/algorithms.md#clipped-surrogate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agentrl.algos.base import ObjectiveConfig
from agentrl.algos.core import GlobalCounts, clipped_surrogate, ratio_metrics, token_mean
from agentrl.config import check_range, option


@dataclass
class ClipConfig(ObjectiveConfig):
    clip_low: float = option(0.2, "eps_lo: the ratio is clipped below at 1 - clip_low")
    clip_high: float = option(0.2, "eps_hi: the ratio is clipped above at 1 + clip_high")
    dual_clip: float | None = option(None, "dual clip c for negative advantages (loss <= -c A); None = off")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(type(self).__name__, "clip_low", self.clip_low, 0, 1)
        check_range(type(self).__name__, "clip_high", self.clip_high, 0)
        if self.dual_clip is not None:
            check_range(type(self).__name__, "dual_clip", self.dual_clip, 1)


def ppo_token_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    config: ClipConfig,
    counts: GlobalCounts,
    log_ratio: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(B, T) clipped-surrogate loss. ``log_ratio`` overrides the token log-ratio (turn- or
    sequence-level ratios pass theirs, with the gradient they want)."""
    log_ratio = (logprobs - old_logprobs) * mask if log_ratio is None else log_ratio
    result = clipped_surrogate(log_ratio.exp(), advantages, config.clip_low, config.clip_high, config.dual_clip)
    metrics = ratio_metrics(log_ratio.detach(), mask, counts)
    metrics["loss/clipfrac_low"] = token_mean(result.clipped_low.to(mask.dtype), mask, counts)
    metrics["loss/clipfrac_high"] = token_mean(result.clipped_high.to(mask.dtype), mask, counts)
    metrics["loss/policy"] = token_mean(result.per_token.detach(), mask, counts)
    return result.per_token, metrics

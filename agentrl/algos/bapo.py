"""``bapo``: Balanced Policy Optimization with Adaptive Clipping (BAPO, arXiv 2510.18927).

docs/algorithms.md#bapo. GRPO advantages (``advantages.group_normalized``), the PPO clipped surrogate
with ratio bounds ``[c_low, c_high]`` searched once per optimizer batch so that
positive-advantage tokens carry at least a share ``rho_0`` of the surrogate's magnitude.
**Unverified** in several details; the reading implemented, each a config value:

- **Contribution** (``positive_share``): a token contributes ``|r A|`` when its gradient
  survives the clip (``A > 0`` and ``r <= c_high``, or ``A < 0`` and ``r >= c_low``), else 0;
  ``share = sum over A > 0 / sum over all`` (1 when nothing contributes). Raising ``c_high``
  lets more positive tokens through, raising ``c_low`` clips more negative ones, so both
  steps move the share up. (The authors' verl recipe instead compares the *values*
  ``min(r, c_high) A`` / ``max(r, c_low) A`` as a positive/negative ratio, target 1.)
- **Search** (``adaptive_clip_bounds``): start at ``c_low = low_start`` (0.6),
  ``c_high = high_start`` (1.2); while ``share < target_share`` and a bound can move, raise
  both at once, ``c_low`` by ``low_step`` (0.02) up to ``low_max`` (0.9) and ``c_high`` by
  ``high_step`` (0.05) up to ``high_max`` (3.0). Ranges as the authors' README; the step
  sizes are a reading (their verl recipe steps both by 0.05, and raises ``c_low`` to its
  limit first, then ``c_high``). ``target_share`` 0.4 (the README gives 0.5).
- **Which ratios.** The search runs in ``prepare``, once on the whole optimizer batch, before
  micro-batching, so every micro-batch (and rank) uses the same bounds; at that point
  ``pi_theta == pi_old`` and the update's ratio is 1. ``ratio_source=behavior`` (default)
  searches with ``r = pi_old / mu``, the staleness of the data against the policy that
  sampled it, which is BAPO's off-policy ratio at the first step of the update; with
  ``mu == pi_old`` it is 1. ``ratio_source=start`` uses ``r = 1``: the share is then the
  token-weighted ``|A|`` share, no bound changes it, and when it is below the target both
  bounds go to their limits. The bounds then stay fixed for every step on that batch.

The chosen bounds are stored per row in ``BAPOPrepared`` (equal on every row, so slicing rows
keeps them) and logged as ``bapo/clip_low/min``, ``bapo/clip_high/max`` and
``bapo/positive_share/min``. Token-mean aggregation; optional dual clip.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agentrl.algos.advantages import group_normalized
from agentrl.algos.base import Algorithm, LossInputs, ObjectiveConfig
from agentrl.algos.clip import ClipConfig, ppo_token_loss
from agentrl.algos.core import GlobalCounts, broadcast
from agentrl.algos.registry import register
from agentrl.batch import Prepared, TokenBatch
from agentrl.config import check_choice, check_range, option


@dataclass
class BAPOConfig(ObjectiveConfig):
    target_share: float = option(0.4, "rho_0: the share of the surrogate that positive-advantage tokens must reach")
    low_start: float = option(0.6, "a-: the lower ratio bound c_low starts here")
    low_max: float = option(0.9, "b-: c_low is raised at most to this")
    low_step: float = option(0.02, "c_low is raised by this much per search step")
    high_start: float = option(1.2, "a+: the upper ratio bound c_high starts here")
    high_max: float = option(3.0, "b+: c_high is raised at most to this")
    high_step: float = option(0.05, "c_high is raised by this much per search step")
    ratio_source: str = option("behavior", "ratios the search uses: behavior (pi_old / mu) or start (1)")
    dual_clip: float | None = option(None, "dual clip c for negative advantages (loss <= -c A); None = off")

    def __post_init__(self) -> None:
        super().__post_init__()
        owner = type(self).__name__
        check_range(owner, "target_share", self.target_share, 0, 1)
        check_range(owner, "low_start", self.low_start, 1e-6, 1)
        check_range(owner, "low_max", self.low_max, self.low_start, 1)
        check_range(owner, "low_step", self.low_step, 1e-6)
        check_range(owner, "high_start", self.high_start, 1)
        check_range(owner, "high_max", self.high_max, self.high_start)
        check_range(owner, "high_step", self.high_step, 1e-6)
        check_choice(owner, "ratio_source", self.ratio_source, ("behavior", "start"))
        if self.dual_clip is not None:
            check_range(owner, "dual_clip", self.dual_clip, 1)


def positive_share(
    ratio: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, c_low: float, c_high: float
) -> float:
    """The share of ``sum |r A|`` over unclipped tokens that comes from ``A > 0`` (1 if none)."""
    magnitude = (ratio * advantages).abs() * mask  # (B, T)
    positive = (magnitude * ((advantages > 0) & (ratio <= c_high))).sum()
    negative = (magnitude * ((advantages < 0) & (ratio >= c_low))).sum()
    total = float(positive + negative)
    return float(positive) / total if total > 0 else 1.0


def adaptive_clip_bounds(
    ratio: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, config: BAPOConfig
) -> tuple[float, float, float]:
    """``(c_low, c_high, share)``: bounds raised step by step from their starts until the
    positive share reaches ``config.target_share`` or both bounds are at their limits."""
    c_low, c_high = config.low_start, config.high_start
    share = positive_share(ratio, advantages, mask, c_low, c_high)
    while share < config.target_share and (c_low < config.low_max or c_high < config.high_max):
        c_low = min(c_low + config.low_step, config.low_max)
        c_high = min(c_high + config.high_step, config.high_max)
        share = positive_share(ratio, advantages, mask, c_low, c_high)
    return c_low, c_high, share


@dataclass(frozen=True)
class BAPOPrepared(Prepared):
    """The bounds searched over the optimizer batch, repeated per row (B,) so that slicing
    rows keeps them."""

    clip_low: torch.Tensor  # (B,) c_low
    clip_high: torch.Tensor  # (B,) c_high
    positive_share: torch.Tensor  # (B,) the share reached with them


@register
class BAPO(Algorithm):
    name = "bapo"
    description = "BAPO: GRPO advantages, PPO clip with bounds searched per batch to balance positive tokens"
    config_cls = BAPOConfig

    def advantages(self, batch: TokenBatch) -> torch.Tensor:
        return broadcast(group_normalized(batch.rewards, batch.group_index), batch.loss_mask)

    @property
    def cfg(self) -> BAPOConfig:
        assert isinstance(self.config, BAPOConfig)
        return self.config

    def prepare(self, batch: TokenBatch) -> TokenBatch:
        mask = batch.loss_mask
        if self.cfg.ratio_source == "behavior" and batch.old_logprobs is not None:
            ratio = ((batch.old_logprobs - batch.behavior_logprobs) * mask).exp()  # (B, T) pi_old / mu
        else:
            ratio = torch.ones_like(mask)
        c_low, c_high, share = adaptive_clip_bounds(ratio, batch.require("advantages"), mask, self.cfg)
        rows = mask.new_ones(mask.shape[0])  # (B,)
        return batch.with_fields(prepared=BAPOPrepared(rows * c_low, rows * c_high, rows * share))

    def token_loss(
        self, inputs: LossInputs, batch: TokenBatch, counts: GlobalCounts
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if not isinstance(batch.prepared, BAPOPrepared):
            raise ValueError("bapo needs prepare(batch) on the whole optimizer batch before the loss")
        bounds = batch.prepared
        # equal on every row: the batch-wide bounds, as a plain PPO clip range
        c_low, c_high = float(bounds.clip_low[0]), float(bounds.clip_high[0])
        clip = ClipConfig(clip_low=1 - c_low, clip_high=c_high - 1, dual_clip=self.cfg.dual_clip)
        mask = batch.loss_mask
        per_token, metrics = ppo_token_loss(
            inputs.logprobs, batch.require("old_logprobs"), batch.require("advantages"), mask, clip, counts
        )
        metrics["bapo/clip_low/min"] = bounds.clip_low.min()
        metrics["bapo/clip_high/max"] = bounds.clip_high.max()
        metrics["bapo/positive_share/min"] = bounds.positive_share.min()
        return per_token, metrics

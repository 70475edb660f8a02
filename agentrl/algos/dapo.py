"""``dapo``: Decoupled clip and dynamic sampling policy optimisation (DAPO, arXiv 2503.14476).

docs/algorithms.md#dapo. Owns the overlong reward shaping and the zero-variance group filter;
the surrogate is ``clip.ppo_token_loss``.

- **Overlong penalty**, added to the reward before the advantages::

      R' = R + min(-(L - (Lmax - Lc)) / Lc, 0),   L = |y| (generated tokens, ``batch.lengths``)

  ``Lmax = max_response_tokens``, ``Lc = overlong_buffer``; ``L = Lmax - Lc / 2`` gives -0.5.
  Reading: the penalty is floored at -1 (the paper's value for ``L > Lmax``); between
  ``Lmax - Lc`` and ``Lmax`` it is the table's formula. In a multi-turn trajectory ``L``
  counts every generated token of every turn. Defaults are the paper's (16384 expected
  tokens + 4096 of soft-punishment cache = 20480); set them to your generation budget.
- **Advantages**: GRPO's ``(R' - mean) / (std + 1e-6)`` over the group (unbiased std).
- **Clip-higher** ``eps_lo = 0.2, eps_hi = 0.28``; **token-mean** aggregation; no KL.
- **Dynamic sampling** as a filter: rows of groups whose rewards have zero variance (every
  reward exactly equal, a singleton group included; ``spear.zero_variance``, the one
  definition SPEAR's Dr.BoT filter uses too) are dropped from the loss by
  ``loss_mask``. DAPO over-samples and refills the batch instead; here the rows stay in the
  batch with no weight. The variance is that of the task reward ``R`` (the paper filters on
  accuracy); ``filter_reward=shaped`` filters on ``R'`` instead. The keep mask is computed in
  ``prepare`` over the whole optimizer batch (a micro-batch may split a group) and carried
  per row as ``DAPOPrepared``. Metrics ``filter/zero_var_groups``, ``filter/dropped_rows`` and
  ``reward/overlong_penalty`` (mean over rows) sum over micro-batches to the batch's values.

Normalisation: token-mean divides by ``counts.num_tokens``. The learner computes the counts
from ``algo.loss_mask(batch)``, so the dropped rows leave the denominator too (DAPO normalises
over the kept batch); counts taken from ``batch.loss_mask`` would keep them in it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agentrl.algos.advantages import group_normalized
from agentrl.algos.base import LossInputs
from agentrl.algos.clip import ClipConfig
from agentrl.algos.core import GlobalCounts, broadcast, group_size, zero_variance
from agentrl.algos.grpo import GRPO
from agentrl.algos.registry import register
from agentrl.batch import Prepared, TokenBatch
from agentrl.config import check_choice, check_range, option


@dataclass
class DAPOConfig(ClipConfig):
    clip_high: float = option(0.28, "eps_hi: the ratio is clipped above at 1 + clip_high (clip-higher)")
    overlong_penalty: bool = option(True, "add the soft overlong penalty to the reward before the advantages")
    max_response_tokens: int = option(20480, "Lmax: generated tokens at which the overlong penalty reaches -1")
    overlong_buffer: int = option(4096, "Lc: the penalty ramps from 0 to -1 over the last Lc tokens before Lmax")
    filter_reward: str = option("task", "zero-variance filter on the task reward (task) or the penalised one (shaped)")

    def __post_init__(self) -> None:
        super().__post_init__()
        owner = type(self).__name__
        check_range(owner, "max_response_tokens", self.max_response_tokens, 1)
        check_range(owner, "overlong_buffer", self.overlong_buffer, 1, self.max_response_tokens)
        check_choice(owner, "filter_reward", self.filter_reward, ("task", "shaped"))


def overlong_penalty(lengths: torch.Tensor, max_tokens: float, buffer: float) -> torch.Tensor:
    """(B,) ``min(-(L - (Lmax - Lc)) / Lc, 0)``, floored at -1 (DAPO's soft overlong punishment)."""
    return (((max_tokens - buffer) - lengths) / buffer).clamp(-1.0, 0.0)


@dataclass(frozen=True)
class DAPOPrepared(Prepared):
    """The zero-variance filter over the optimizer batch, per row (B,)."""

    keep: torch.Tensor  # 1 for rows in the loss, 0 for rows of zero-variance groups
    dropped_group_share: torch.Tensor  # 1 / (group size) on each dropped row: the rows sum to the dropped groups
    overlong_penalty: torch.Tensor  # R' - R


@register
class DAPO(GRPO):
    name = "dapo"
    description = "DAPO: GRPO advantages, clip-higher, token-mean, zero-variance groups dropped, overlong penalty"
    config_cls = DAPOConfig

    @property
    def cfg(self) -> DAPOConfig:
        assert isinstance(self.config, DAPOConfig)
        return self.config

    def shaped_rewards(self, batch: TokenBatch) -> torch.Tensor:
        """(B,) the reward plus the overlong penalty (when on)."""
        rewards: torch.Tensor = batch.rewards
        if not self.cfg.overlong_penalty:
            return rewards
        lengths = batch.lengths.to(rewards.dtype)  # (B,)
        return rewards + overlong_penalty(lengths, self.cfg.max_response_tokens, self.cfg.overlong_buffer)

    def advantages(self, batch: TokenBatch) -> torch.Tensor:
        return broadcast(group_normalized(self.shaped_rewards(batch), batch.group_index), batch.loss_mask)

    def row_filter(self, batch: TokenBatch) -> DAPOPrepared:
        """Per-row (B,) keep mask, dropped-group shares and penalties over ``batch`` taken as whole."""
        shaped = self.shaped_rewards(batch)
        rewards = batch.rewards if self.cfg.filter_reward == "task" else shaped
        dropped = zero_variance(rewards, batch.group_index).to(batch.loss_mask.dtype)  # (B,)
        return DAPOPrepared(
            keep=1 - dropped,
            dropped_group_share=dropped / group_size(batch.group_index).to(dropped.dtype),
            overlong_penalty=shaped - batch.rewards,
        )

    def prepare(self, batch: TokenBatch) -> TokenBatch:
        return batch.with_fields(prepared=self.row_filter(batch))

    def filter_of(self, batch: TokenBatch) -> DAPOPrepared:
        """The prepared filter (sliced with the micro-batch), or, without ``prepare``, the
        filter of ``batch`` itself."""
        return batch.prepared if isinstance(batch.prepared, DAPOPrepared) else self.row_filter(batch)

    def loss_mask(self, batch: TokenBatch) -> torch.Tensor:
        mask: torch.Tensor = batch.loss_mask  # (B, T)
        return mask * self.filter_of(batch).keep[:, None]

    def token_loss(
        self, inputs: LossInputs, batch: TokenBatch, counts: GlobalCounts
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        per_token, metrics = super().token_loss(inputs, batch, counts)
        rows = self.filter_of(batch)
        has_tokens = (batch.lengths > 0).to(batch.loss_mask.dtype)  # (B,), the rows counts.num_seqs counts
        metrics["filter/zero_var_groups"] = rows.dropped_group_share.sum()
        metrics["filter/dropped_rows"] = (1 - rows.keep).sum()
        metrics["reward/overlong_penalty"] = (rows.overlong_penalty * has_tokens).sum() / counts.num_seqs
        return per_token, metrics

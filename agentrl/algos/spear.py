"""``spear``: self-imitation with progressive exploration on top of Dr.BoT (docs/algorithms.md#spear).

Owns ``SPEARConfig`` and the ``SPEAR`` algorithm: the on-policy advantages and row masks,
the Clip-Cov keep-mask (computed in ``prepare``), the replay hooks (``after_step`` admits,
``replay_batch`` hands out a replay step) and the per-token loss. The schedules live in
``agentrl.algos.schedules``, the buffer in ``agentrl.algos.replay``, Clip-Cov in
``agentrl.algos.clip_cov``. It never reads the run config, the learner or torch.distributed.

On-policy part ("Dr.BoT"): rewards are augmented by the tool-call bonus
``min(1, 0.1 n) (1 + cos(pi t / T)) / 2`` at step ``t = self.step`` (set by ``begin_step``),
``n`` the row's assistant turns that called a tool (``bonus_counts="turns"``, the reference's
tool-use recipe) or its calls (``"calls"``),
``A = R' - mean_group(R')`` without std normalisation (singleton: 0), PPO clip-higher
0.2 / 0.28, no KL, seq-mean-token-sum-norm. ``loss_mask`` zeroes the rows of groups with zero
reward variance and truncated rows; the row mask is computed with the advantages on the whole
batch (``with_advantages``) and carried in ``SPEARPrepared.rows`` (B,), so micro-batches
slice it.

Replay: after the step, rows with per-row ``A > 0`` that are in the loss are admitted with
their behaviour logprobs and policy version; when the buffer fires, ``replay_batch`` returns
a batch whose ``advantages`` are the recalibrated ones, ``old_logprobs`` the stored
behaviour logprobs, and whose loss is multiplied by the self-imitation weight
``coef (1 - cos(pi t / T)) / 2`` (``SPEARPrepared.replay_weight`` (B,)). Rows of a replay batch
are never re-admitted.

Readings of unverified details (each a flag where it matters):

- the zero-variance test looks at the reward the advantages use, i.e. task reward plus
  tool bonus (``zero_variance_on="augmented"``): a group whose rows differ only in tool
  calls keeps a non-zero advantage, which is the bonus's purpose; ``"task"`` tests the task
  reward alone. Truncated rows still count in their group's mean and variance (as DAPO's
  overlong masking does); they only leave the loss.
- recalibration compares *task* rewards: the history of group means and the stored ``R``
  use ``batch.rewards`` without the bonus (the bonus fades with ``t``, so a stored bonus
  would be stale at replay time). Truncated and dropped rows are never admitted.
- per-row advantage for admission = the mean of ``A`` over the row's generated tokens.
- Clip-Cov (``clip_cov.py``), with the reference's two settings (on-policy 0.0002 / 1 / 5,
  replay 0.02 / 2 / 60): ``clip_cov_logprobs=current`` (default, the reference's) picks in the
  loss, per micro-batch, with the loss's own logprobs, tokens whose PPO clip binds excluded;
  ``pi_old`` picks once per optimizer batch in ``prepare`` with ``pi_old`` (the ratio is 1 there),
  which keeps the loss independent of the micro-batch split.
- the Dr.BoT filters beyond zero variance and truncation (``agentrl.algos.drbot``): the top
  ``group_filter_ratio`` of groups by reward std, and rows that repeat an n-gram; the reference's
  "unreadable" (decoded text) and "incomplete" filters are not here (docs/algorithms.md#spear).
- the replay step is skipped (``replay_batch`` returns None, the buffer is still emptied)
  while the self-imitation weight is 0, so the optimizer never takes an empty step;
  ``replay_coef = 0`` turns replay off entirely (nothing is stored).

Defaults: ``bonus_T = 200`` equals ``replay_T`` so the bonus fades out exactly while
self-imitation fades in (their weights sum to 1), and it is the reference's
``max_toolcall_steps=200``. ``buffer_size = 64`` is ours: the reference's 2048 counts
per-turn samples (verl-agent splits an ALFWorld episode into one row per step); a row here
is a whole trajectory, and 64 makes the buffer fire (> 96 admissible) within the
``tolerate_steps = 5`` window at batches of 64-128 trajectories.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from agentrl.algos.advantages import group_baseline
from agentrl.algos.base import Algorithm, LossInputs, ObjectiveConfig
from agentrl.algos.clip import ClipConfig, ppo_token_loss
from agentrl.algos.clip_cov import clip_cov_keep_mask
from agentrl.algos.core import (
    AGGREGATIONS,
    GlobalCounts,
    broadcast,
    clipped_surrogate,
    masked_max,
    token_mean,
    zero_variance,
)
from agentrl.algos.drbot import repetitive_rows, top_std_groups
from agentrl.algos.registry import register
from agentrl.algos.replay import RECALIBRATIONS, ReplayBuffer
from agentrl.algos.schedules import self_imitation_weight, tool_call_bonus
from agentrl.batch import Prepared, TokenBatch
from agentrl.config import check_choice, check_range, option


@dataclass(frozen=True)
class SPEARPrepared(Prepared):
    rows: torch.Tensor  # (B,) 1 for rows in the loss, set with the advantages over the whole batch
    clip_cov_keep: torch.Tensor | None = None  # (B, T) 0 on the tokens Clip-Cov picked, set by prepare
    replay_weight: torch.Tensor | None = None  # (B,) self-imitation weight, only on replay batches


@dataclass
class SPEARConfig(ClipConfig):
    aggregation: str = option("seq-mean-token-sum-norm", "loss aggregation: " + ", ".join(AGGREGATIONS))
    clip_high: float = option(0.28, "eps_hi: the ratio is clipped above at 1 + clip_high (clip-higher)")
    mask_truncated: bool = option(True, "drop truncated / over-long rows from the loss")
    drop_zero_variance: bool = option(True, "drop groups whose rewards are all equal from the loss")
    zero_variance_on: str = option("augmented", "reward the zero-variance test reads: augmented (task + bonus) or task")
    bonus_per_call: float = option(0.1, "tool-call bonus per counted call (0 = no bonus)")
    bonus_counts: str = option(
        "turns",
        "what the tool-call bonus counts: turns (assistant turns that made a call: the reference's tool-use "
        "recipe) or calls (every call, parallel ones each)",
    )
    bonus_cap: float = option(1.0, "cap of the tool-call bonus before the schedule")
    bonus_T: int = option(200, "steps over which the tool-call bonus fades out (cosine); 0 = no bonus")
    replay_coef: float = option(1.0, "self-imitation weight reached at replay_T (0 = no replay)")
    replay_T: int = option(200, "steps over which the self-imitation weight fades in (cosine)")
    buffer_size: int = option(64, "replay batch cap; replay fires above 1.5 x this many admissible trajectories")
    tolerate_steps: int = option(5, "evict replay entries more than this many policy versions old (<= 10)")
    history_size: int = option(10240, "groups in the history of group mean rewards (recalibration baseline)")
    recalibration: str = option("p50", "replay advantages: p50 (R - P50 of group means) or gamma (gamma x stored A)")
    gamma: float = option(1.0, "factor of the gamma recalibration")
    clip_cov: bool = option(True, "Clip-Cov: zero the loss of a few high-covariance tokens")
    clip_cov_ratio: float = option(0.0002, "Clip-Cov on the on-policy step: picks max(1, floor(ratio x N)) tokens")
    clip_cov_lb: float = option(1.0, "Clip-Cov on the on-policy step: eligible when cov > lb")
    clip_cov_ub: float = option(5.0, "Clip-Cov on the on-policy step: eligible when cov < ub")
    replay_clip_cov_ratio: float = option(0.02, "Clip-Cov on the replay step: the ratio")
    replay_clip_cov_lb: float = option(2.0, "Clip-Cov on the replay step: lb")
    replay_clip_cov_ub: float = option(60.0, "Clip-Cov on the replay step: ub")
    clip_cov_logprobs: str = option(
        "current",
        "Clip-Cov's log pi: current (the loss's own, per micro-batch, PPO-clipped tokens excluded: the "
        "reference's) or pi_old (once per optimizer batch in prepare: independent of the micro-batch split)",
    )
    group_filter_ratio: float = option(
        0.75, "keep the groups whose reward std is among the top share of the batch's groups (1 = keep all)"
    )
    mask_repetitive: bool = option(True, "drop rows whose generated tokens repeat an n-gram (below) from the loss")
    repetition_ngram: int = option(20, "mask_repetitive: n-gram length, in tokens")
    repetition_count: int = option(10, "mask_repetitive: occurrences of one n-gram that make a row repetitive")
    entropy_coef: float = option(0.001, "weight of the entropy bonus (the reference's)")
    seed: int = option(0, "seed of the replay sampler (seed) and of the Clip-Cov pick (seed + 1)")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("spear", "zero_variance_on", self.zero_variance_on, ("augmented", "task"))
        check_choice("spear", "bonus_counts", self.bonus_counts, ("turns", "calls"))
        check_range("spear", "bonus_per_call", self.bonus_per_call, 0)
        check_range("spear", "bonus_cap", self.bonus_cap, 0)
        check_range("spear", "bonus_T", self.bonus_T, 0)
        check_range("spear", "replay_coef", self.replay_coef, 0)
        check_range("spear", "replay_T", self.replay_T, 0)
        check_range("spear", "buffer_size", self.buffer_size, 1)
        check_range("spear", "tolerate_steps", self.tolerate_steps, 0, 10)
        check_range("spear", "history_size", self.history_size, 1)
        check_choice("spear", "recalibration", self.recalibration, RECALIBRATIONS)
        check_range("spear", "gamma", self.gamma, 0, 1)
        check_range("spear", "clip_cov_ratio", self.clip_cov_ratio, 0, 1)
        check_range("spear", "clip_cov_ub", self.clip_cov_ub, self.clip_cov_lb)
        check_range("spear", "replay_clip_cov_ratio", self.replay_clip_cov_ratio, 0, 1)
        check_range("spear", "replay_clip_cov_ub", self.replay_clip_cov_ub, self.replay_clip_cov_lb)
        check_choice("spear", "clip_cov_logprobs", self.clip_cov_logprobs, ("current", "pi_old"))
        check_range("spear", "group_filter_ratio", self.group_filter_ratio, 0.0, 1.0)
        check_range("spear", "repetition_ngram", self.repetition_ngram, 1)
        check_range("spear", "repetition_count", self.repetition_count, 2)


@register
class SPEAR(Algorithm):
    name = "spear"
    description = "SPEAR: Dr.BoT clipped PG with a tool-call bonus curriculum, self-imitation replay and Clip-Cov"
    config_cls = SPEARConfig

    def __init__(self, config: ObjectiveConfig | None = None):
        super().__init__(config)
        c = self.cfg
        self.buffer = ReplayBuffer(c.buffer_size, c.tolerate_steps, c.history_size, c.recalibration, c.gamma, c.seed)
        self.generator = torch.Generator().manual_seed(c.seed + 1)  # Clip-Cov's pick

    @property
    def cfg(self) -> SPEARConfig:
        assert isinstance(self.config, SPEARConfig)
        return self.config

    def augmented_rewards(self, batch: TokenBatch) -> torch.Tensor:
        """(B,) task reward plus the tool-call bonus at ``self.step``."""
        c = self.cfg
        counted = batch.require("num_tool_turns") if c.bonus_counts == "turns" else batch.num_tool_calls
        bonus = tool_call_bonus(counted, self.step, c.bonus_T, c.bonus_per_call, c.bonus_cap)
        rewards: torch.Tensor = batch.rewards + bonus
        return rewards

    def advantages(self, batch: TokenBatch) -> torch.Tensor:
        rewards = self.augmented_rewards(batch)  # (B,)
        return broadcast(group_baseline(rewards, batch.group_index), batch.loss_mask)

    def with_advantages(self, batch: TokenBatch) -> TokenBatch:
        """The advantages and, from the same augmented rewards, the row mask."""
        rows = self.rows_in_loss(batch, self.augmented_rewards(batch))
        return batch.with_fields(advantages=self.advantages(batch), prepared=SPEARPrepared(rows))

    def rows_in_loss(self, batch: TokenBatch, augmented: torch.Tensor) -> torch.Tensor:
        """(B,) 1 for rows that count in the loss: not truncated, in a group with reward variance."""
        c = self.cfg
        keep = torch.ones(batch.size, dtype=torch.bool, device=augmented.device)
        if c.mask_truncated:
            keep &= ~batch.truncated.bool()
        tested = augmented if c.zero_variance_on == "augmented" else batch.rewards
        if c.drop_zero_variance:
            keep &= ~zero_variance(tested, batch.group_index)
        if c.group_filter_ratio < 1:
            keep &= top_std_groups(tested, batch.group_index, c.group_filter_ratio).to(keep.device)
        if c.mask_repetitive:
            repeated = repetitive_rows(batch.input_ids, batch.loss_mask, c.repetition_ngram, c.repetition_count)
            keep &= ~repeated.to(keep.device)
        return keep.to(batch.loss_mask.dtype)

    @staticmethod
    def prepared_of(batch: TokenBatch) -> SPEARPrepared:
        if not isinstance(batch.prepared, SPEARPrepared):
            raise ValueError("spear: the batch has no row mask; call spear's with_advantages(batch) first")
        return batch.prepared

    def loss_mask(self, batch: TokenBatch) -> torch.Tensor:
        mask: torch.Tensor = batch.loss_mask * self.prepared_of(batch).rows[:, None]  # (B, T)
        return mask

    def clip_cov_setting(self, batch: TokenBatch) -> tuple[float, float, float]:
        """``(ratio, lb, ub)`` of Clip-Cov: the replay step's on a replay batch, else the on-policy one."""
        c = self.cfg
        if self.prepared_of(batch).replay_weight is not None:
            return c.replay_clip_cov_ratio, c.replay_clip_cov_lb, c.replay_clip_cov_ub
        return c.clip_cov_ratio, c.clip_cov_lb, c.clip_cov_ub

    def prepare(self, batch: TokenBatch) -> TokenBatch:
        """With ``clip_cov_logprobs=pi_old``: the Clip-Cov keep-mask over the whole optimizer batch."""
        c = self.cfg
        if not c.clip_cov or c.clip_cov_logprobs != "pi_old":
            return batch
        logprobs = batch.old_logprobs if batch.old_logprobs is not None else batch.behavior_logprobs
        keep = clip_cov_keep_mask(
            batch.require("advantages"), logprobs, self.loss_mask(batch), *self.clip_cov_setting(batch), self.generator
        )
        return batch.with_fields(prepared=replace(self.prepared_of(batch), clip_cov_keep=keep))

    def _clip_cov_keep(self, inputs: LossInputs, batch: TokenBatch, mask: torch.Tensor) -> torch.Tensor:
        """The keep-mask: prepare's (pi_old), or this micro-batch's with the loss's own logprobs,
        tokens the PPO clip binds on excluded (current)."""
        c = self.cfg
        if c.clip_cov_logprobs == "pi_old":
            keep = self.prepared_of(batch).clip_cov_keep
            if keep is None:
                raise ValueError("spear: clip_cov needs prepare(batch) on the whole optimizer batch first")
            return keep
        advantages = batch.require("advantages")
        ratio = (inputs.logprobs.detach() - batch.require("old_logprobs")).exp()
        flags = clipped_surrogate(ratio, advantages, c.clip_low, c.clip_high, c.dual_clip)
        clipped = (flags.clipped_low | flags.clipped_high) & (mask > 0)
        return clip_cov_keep_mask(
            advantages, inputs.logprobs, mask, *self.clip_cov_setting(batch), self.generator, clipped=clipped
        )

    def token_loss(
        self, inputs: LossInputs, batch: TokenBatch, counts: GlobalCounts
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.cfg
        mask = self.loss_mask(batch)
        per_token, metrics = ppo_token_loss(
            inputs.logprobs, batch.require("old_logprobs"), batch.require("advantages"), mask, c, counts
        )
        if c.clip_cov:
            keep = self._clip_cov_keep(inputs, batch, mask)
            per_token = per_token * keep
            metrics["loss/clip_cov_frac"] = token_mean(1 - keep, mask, counts)
        weight = self.prepared_of(batch).replay_weight
        if weight is not None:
            per_token = per_token * weight[:, None]
            metrics["replay/weight/max"] = masked_max(broadcast(weight, mask), mask)
        return per_token, metrics

    def after_step(self, batch: TokenBatch) -> None:
        """Admit the rows with ``A > 0`` that were in the loss (replay batches are not re-admitted)."""
        replayed = isinstance(batch.prepared, SPEARPrepared) and batch.prepared.replay_weight is not None
        if self.cfg.replay_coef <= 0 or replayed:
            return
        if batch.advantages is None:
            raise ValueError("spear: after_step needs the batch's advantages")
        self.buffer.record_groups(batch.rewards, batch.group_index)
        mask = self.loss_mask(batch)
        per_row = (batch.advantages * mask).sum(-1) / mask.sum(-1).clamp(min=1)  # (B,), 0 on dropped rows
        self.buffer.add(batch, per_row)

    def replay_batch(self) -> TokenBatch | None:
        """The replay batch when the buffer fires and the self-imitation weight is positive, else None."""
        c = self.cfg
        if c.replay_coef <= 0:
            return None
        batch = self.buffer.sample()
        weight = self_imitation_weight(self.step, c.replay_T, c.replay_coef)
        if batch is None or weight <= 0:
            return None
        dtype = batch.loss_mask.dtype
        marks = SPEARPrepared(
            rows=torch.ones(batch.size, dtype=dtype), replay_weight=torch.full((batch.size,), weight, dtype=dtype)
        )
        return self.prepare(batch.with_fields(prepared=marks))

    def metrics(self) -> dict[str, float]:
        baseline = self.buffer.baseline()
        return {
            "replay/buffer_size": float(len(self.buffer)),
            "replay/admissible": float(self.buffer.admissible()),
            "replay/p50_baseline": float(baseline) if baseline is not None else 0.0,
        }

    def state_dict(self) -> dict[str, Any]:
        """The replay buffer and the Clip-Cov generator, for checkpoints."""
        return {"buffer": self.buffer.state_dict(), "clip_cov_generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer.load_state_dict(state["buffer"])
        self.generator.set_state(state["clip_cov_generator"])

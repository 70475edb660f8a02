"""``vcpo``: Variance Controlled Policy Optimization for asynchronous, off-policy training.

docs/algorithms.md#vcpo. Owns the VCPO objective and its three parts; it does not touch the
optimizer (the learner applies the ``lr_scale`` factor and restores the base lr) and it does
not compute gradient norms (the learner does, when ``needs_grad_norms`` is True).

- **Loss** (REINFORCE/GRPO with a sequence-level truncated importance weight against the
  behaviour policy ``mu``)::

      L = -(1/B) sum_i sg(min(w_i, C)) A_i (1/|y_i|) sum_t m log pi_theta,
      w_i = exp(sum_t m (log pi_theta - log mu)),   C = 8

  No PPO clipping, no KL, no entropy; ``seq-mean-token-mean`` by default. ``w_i`` uses the
  *current* logprobs (``inputs.logprobs``), detached, so it matches the formula at every
  step of the update; at ``pi_theta == mu`` it is 1 and the loss is ``-A log pi``.
- **ESS learning-rate scaling** (``lr_scale``, once per optimizer step on the whole
  optimizer batch): ``ESS = (sum w)^2 / sum w^2``, ``rho = ESS / B``, factor
  ``sqrt(min(1, rho / rho_base))`` (or ``min(1, rho / rho_base)`` with ``lr_rule=linear``).
  Here ``w_i = exp(sum_t m (log pi_old - log mu))``: at that moment the policy being
  optimised is ``pi_old``. Unclipped ``w`` by default, as the reference code
  (``ess_clipped`` flag). ``B`` counts rows with at least one generated token.
- **Optimal off-policy baseline (OPOB)** per group (default) or per batch:
  ``b = sum_i w_i^2 n_i R_i / sum_i w_i^2 n_i``, ``A_i = (R_i - b) / sigma``, ``sigma`` the
  population std of the rewards of the same set (the group, or the batch with
  ``baseline=batch``); no scaling when ``sigma <= 1e-8``. ``w_i`` from ``old_logprobs`` vs
  ``behavior_logprobs`` (advantages are computed after the learner sets ``old_logprobs``;
  when it is None, recomputation was skipped, ``pi_old = mu`` and ``w = 1``).

Choices and readings (recorded as config flags):

- ``grad_norm=length`` is the default: ``n_i = |y_i|`` (cheap mode), which reduces OPOB to a
  ``w^2``-weighted OPO baseline. The exact mode (``grad_norm=exact``, ``n_i = ||g_i||^2``
  from ``batch.grad_sq_norm``, set by the learner) needs one backward pass per trajectory on top of the
  update, which roughly doubles the learner's cost; the cheap mode is the practical default.
- Weights are combined in log space (``2 log w_i + log n_i`` minus the set's maximum) so a
  very stale trajectory neither overflows nor zeroes the baseline; if every weight of a set
  is 0 (all ``n_i = 0``) the plain mean is used. A singleton set gets ``A = 0``.
- ``opob_weight`` says what multiplies ``n_i``: ``w2`` (default, the formula), ``capped``
  (``min(w, C)^2``: with very stale batches the unclipped ``w^2`` spans many orders of magnitude
  and one trajectory sets its group's baseline; this bounds it) or ``authors``
  (``min(w, C)^2 w^2``): the reference code measures each trajectory's gradient norm on the loss,
  which already holds ``min(w, C)``, and then multiplies by ``w^2``.
- The ``mismatch`` correction (docs/algorithms.md#mismatch-correction) is redundant with ``w`` (which already divides by
  ``mu``); it is left off by default and, if turned on, multiplies in as for any objective.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from agentrl.algos.base import Algorithm, LossInputs, ObjectiveConfig
from agentrl.algos.core import (
    AGGREGATIONS,
    GlobalCounts,
    broadcast,
    effective_sample_size,
    group_std,
    ratio_metrics,
    token_mean,
)
from agentrl.algos.registry import register
from agentrl.batch import TokenBatch
from agentrl.config import check_choice, check_range, option

STD_FLOOR = 1e-8
OPOB_WEIGHTS = ("w2", "capped", "authors")


@dataclass
class VCPOConfig(ObjectiveConfig):
    aggregation: str = option("seq-mean-token-mean", "loss aggregation: " + ", ".join(AGGREGATIONS))
    is_cap: float = option(8.0, "C: the sequence importance weight in the loss is sg(min(w, C))")
    lr_rule: str = option("sqrt", "ESS learning-rate rule: sqrt, linear or off")
    rho_base: float = option(1.0, "rho_base in (0, 1]: the lr is scaled down only when ESS / B < rho_base")
    ess_clipped: bool = option(False, "compute the ESS from min(w, C) instead of the unclipped w")
    baseline: str = option("group", "OPOB baseline (and reward std) over each group or the whole batch")
    grad_norm: str = option("length", "||g_i||^2 in OPOB: length (|y_i|, cheap) or exact (one backward per row)")
    std_normalize: bool = option(True, "divide advantages by the population std of the baseline's rewards")
    opob_weight: str = option(
        "w2",
        "each row's OPOB weight times n_i: w2 (w^2, the paper's formula), capped (min(w, C)^2) or authors "
        "(min(w, C)^2 w^2: the reference code's norm is taken of the loss, which already holds min(w, C))",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        owner = type(self).__name__
        check_range(owner, "is_cap", self.is_cap, 1e-6)
        check_choice(owner, "lr_rule", self.lr_rule, ("sqrt", "linear", "off"))
        check_range(owner, "rho_base", self.rho_base, 1e-6, 1.0)
        check_choice(owner, "baseline", self.baseline, ("group", "batch"))
        check_choice(owner, "grad_norm", self.grad_norm, ("length", "exact"))
        check_choice(owner, "opob_weight", self.opob_weight, OPOB_WEIGHTS)


def sequence_log_weights(logprobs: torch.Tensor, behavior_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) ``log w_i = sum_t m (log pi - log mu)``, detached."""
    return ((logprobs - behavior_logprobs) * mask).sum(-1).detach()


def _set_max(log_values: torch.Tensor, sets: torch.Tensor) -> torch.Tensor:
    """(B,) the maximum finite ``log_values`` of each row's set (0 where none is finite)."""
    top = torch.full((int(sets.max()) + 1,), -math.inf, dtype=log_values.dtype, device=log_values.device)
    top = top.scatter_reduce(0, sets, log_values, reduce="amax")
    return torch.where(torch.isfinite(top), top, torch.zeros_like(top))[sets]


def opob_baseline(
    rewards: torch.Tensor, sets: torch.Tensor, log_weights: torch.Tensor, sq_norms: torch.Tensor
) -> torch.Tensor:
    """(B,) ``b = sum w^2 n R / sum w^2 n`` over each row's set, computed in log space.

    ``log_weights`` (B,) is ``log w_i``, ``sq_norms`` (B,) is ``n_i = ||g_i||^2`` (>= 0)."""
    log_v = 2 * log_weights + sq_norms.to(rewards.dtype).log()  # (B,), -inf where n_i = 0
    v = (log_v - _set_max(log_v, sets)).exp()  # (B,) in [0, 1], the set's largest is 1
    num_sets = int(sets.max()) + 1
    total = torch.zeros(num_sets, dtype=v.dtype, device=v.device).index_add_(0, sets, v)[sets]
    v = torch.where(total > 0, v, torch.ones_like(v))  # all-zero set: plain mean
    num = torch.zeros(num_sets, dtype=v.dtype, device=v.device).index_add_(0, sets, v * rewards)
    den = torch.zeros(num_sets, dtype=v.dtype, device=v.device).index_add_(0, sets, v)
    return (num / den)[sets]


def opob_advantages(
    rewards: torch.Tensor,
    sets: torch.Tensor,
    log_weights: torch.Tensor,
    sq_norms: torch.Tensor,
    std_normalize: bool = True,
) -> torch.Tensor:
    """(B,) ``(R - b) / sigma`` with the OPOB baseline; ``sigma <= 1e-8`` skips the scaling."""
    advantages = rewards - opob_baseline(rewards, sets, log_weights, sq_norms)
    if std_normalize:
        sigma = group_std(rewards, sets, unbiased=False)  # (B,) population std
        advantages = torch.where(sigma > STD_FLOOR, advantages / sigma.clamp(min=STD_FLOOR), advantages)
    return advantages


def lr_factor(rho: float, rho_base: float, rule: str) -> float:
    """The ESS learning-rate factor: ``sqrt(min(1, rho / rho_base))`` or its linear variant."""
    ratio = min(1.0, rho / rho_base)
    if rule == "sqrt":
        return math.sqrt(ratio)
    if rule == "linear":
        return ratio
    return 1.0


@register
class VCPO(Algorithm):
    name = "vcpo"
    description = "VCPO: sequence-truncated IS vs the behaviour policy, ESS lr scaling, optimal off-policy baseline"
    config_cls = VCPOConfig

    @property
    def cfg(self) -> VCPOConfig:
        assert isinstance(self.config, VCPOConfig)
        return self.config

    @property
    def needs_grad_norms(self) -> bool:
        return self.cfg.grad_norm == "exact"

    def _stale_log_weights(self, batch: TokenBatch) -> torch.Tensor:
        """(B,) ``log w_i`` of ``pi_old`` against ``mu`` (0 when pi_old is mu)."""
        if batch.old_logprobs is None:
            return torch.zeros_like(batch.rewards)
        return sequence_log_weights(batch.old_logprobs, batch.behavior_logprobs, batch.loss_mask)

    def advantages(self, batch: TokenBatch) -> torch.Tensor:
        c = self.cfg
        if c.grad_norm == "exact":
            if batch.grad_sq_norm is None:
                raise ValueError("vcpo grad_norm=exact needs batch.grad_sq_norm (the learner computes it)")
            sq_norms = batch.grad_sq_norm
        else:
            sq_norms = batch.lengths
        sets = batch.group_index if c.baseline == "group" else torch.zeros_like(batch.group_index)
        a = opob_advantages(batch.rewards, sets, self._opob_log_weights(batch), sq_norms, c.std_normalize)
        return broadcast(a, batch.loss_mask)

    def _opob_log_weights(self, batch: TokenBatch) -> torch.Tensor:
        """(B,) ``log v_i`` with ``v_i^2`` the row's OPOB weight before ``n_i`` (``opob_weight``)."""
        log_w, log_cap = self._stale_log_weights(batch), math.log(self.cfg.is_cap)
        if self.cfg.opob_weight == "capped":
            return log_w.clamp(max=log_cap)
        if self.cfg.opob_weight == "authors":
            return log_w + log_w.clamp(max=log_cap)  # v^2 = w^2 min(w, C)^2
        return log_w

    def lr_scale(self, batch: TokenBatch) -> tuple[float, dict[str, float]]:
        c = self.cfg
        log_w = self._stale_log_weights(batch)[batch.lengths > 0]  # (B,)
        if log_w.numel() == 0:
            return 1.0, {}
        ess = float(effective_sample_size(log_w, c.is_cap if c.ess_clipped else None))
        rho = ess / log_w.numel()
        factor = lr_factor(rho, c.rho_base, c.lr_rule)
        w = log_w.exp()
        metrics = {
            "vcpo/ess": ess,
            "vcpo/rho": rho,
            "vcpo/lr_factor": factor,
            "is/weight_mean": float(w.mean()),
            "is/weight/max": float(w.max()),
            "is/clipped_frac": float((w > c.is_cap).to(w.dtype).mean()),
        }
        return factor, metrics

    def token_loss(
        self, inputs: LossInputs, batch: TokenBatch, counts: GlobalCounts
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        mask = batch.loss_mask
        w = sequence_log_weights(inputs.logprobs, batch.behavior_logprobs, mask).exp()  # (B,) detached
        truncated = w.clamp(max=self.cfg.is_cap)  # (B,)
        per_token = -broadcast(truncated, mask) * batch.require("advantages") * inputs.logprobs  # (B, T)
        rows = (mask.sum(-1) > 0).to(w.dtype)  # (B,)
        metrics: dict[str, torch.Tensor] = {}
        if batch.old_logprobs is not None:
            metrics |= ratio_metrics(((inputs.logprobs - batch.old_logprobs) * mask).detach(), mask, counts)
        metrics["is/loss_weight_mean"] = (truncated * rows).sum() / counts.num_seqs
        metrics["is/loss_clipped_frac"] = ((w > self.cfg.is_cap).to(w.dtype) * rows).sum() / counts.num_seqs
        metrics["is/loss_weight/max"] = w.masked_fill(rows == 0, 0.0).max()
        metrics["loss/policy"] = token_mean(per_token.detach(), mask, counts)
        return per_token, metrics

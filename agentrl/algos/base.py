"""The algorithm contract: an advantage estimator plus a per-token objective.

Owns ``Algorithm`` (what the learner calls), ``ObjectiveConfig`` (the fields every
objective shares: aggregation, KL to a reference, entropy bonus, and the
training–inference mismatch correction of docs/algorithms.md#mismatch-correction) and ``LossOutput``.

An algorithm implements two pure methods on a ``TokenBatch`` (``agentrl.batch``):

- ``advantages(batch) -> (B, T)``: from rewards, groups, lengths (and, for some, values or
  old / behaviour logprobs); computed once per batch, before micro-batching;
- ``token_loss(inputs, batch, counts) -> ((B, T) loss, metrics)``: the per-token objective.

``loss`` (shared, not overridden) applies the per-row ``batch.sample_weight``, the mismatch
weights, the KL and entropy terms and the aggregation with global counts. What an algorithm
computes for its loss beyond the batch's fields travels as its own ``Prepared`` subclass in
``batch.prepared``, attached through ``batch.with_fields`` by one of two methods that return
a new batch (a batch is never changed in place): ``with_advantages`` (the whole rollout
batch; by default it only sets ``advantages``) and ``prepare`` (each optimizer batch; by
default the batch as it is). Other hooks have neutral defaults: ``lr_scale`` (a per-step
learning-rate factor), and the capability flags ``on_policy_only`` / ``needs_value_head`` /
``needs_reference`` / ``needs_grad_norms``. The learner calls these and never branches on an
algorithm's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from agentrl.algos.core import AGGREGATIONS, GlobalCounts, aggregate, masked_max, token_mean, turn_mean
from agentrl.batch import TokenBatch
from agentrl.config import check_choice, check_range, option


@dataclass
class ObjectiveConfig:
    aggregation: str = option("token-mean", "loss aggregation: " + ", ".join(AGGREGATIONS))
    norm_constant: float | None = option(None, "C of seq-mean-token-sum-norm; None = longest response in the batch")
    kl_coef: float = option(0.0, "weight of the k3 KL penalty to the frozen reference model (0 = no reference)")
    entropy_coef: float = option(0.0, "weight of the entropy bonus")
    mismatch: str = option(
        "off",
        "training-inference mismatch correction: off, token, turn (geometric mean per turn) or sequence",
    )
    mismatch_cap: float = option(2.0, "truncated IS: weights are min(pi_old / mu, cap)")
    mismatch_mask: bool = option(
        False, "mask tokens/sequences outside [mismatch_low, mismatch_high] instead of truncating"
    )
    mismatch_low: float = option(0.5, "lower bound of the masking range")
    mismatch_high: float = option(2.0, "upper bound of the masking range")

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_choice(owner, "aggregation", self.aggregation, AGGREGATIONS)
        check_choice(owner, "mismatch", self.mismatch, ("off", "token", "turn", "sequence"))
        check_range(owner, "kl_coef", self.kl_coef, 0)
        check_range(owner, "mismatch_cap", self.mismatch_cap, 1e-6)
        if self.norm_constant is not None:
            check_range(owner, "norm_constant", self.norm_constant, 1e-6)


@dataclass
class LossInputs:
    """What the learner computed for a micro-batch, all ``(B, T)`` aligned with the tokens."""

    logprobs: torch.Tensor  # log pi_theta, with grad
    entropy: torch.Tensor | None = None  # per-token entropy, with grad
    values: torch.Tensor | None = None  # value head output, with grad (ppo)


@dataclass
class LossOutput:
    loss: torch.Tensor  # scalar; sums over micro-batches to the batch loss
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)


class Algorithm:
    """Base class; subclasses set ``name``, ``description``, ``config_cls`` and implement
    ``advantages`` and ``token_loss``. Registered with ``agentrl.algos.registry.register``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    config_cls: ClassVar[type[ObjectiveConfig]] = ObjectiveConfig
    on_policy_only: ClassVar[bool] = False
    old_logprobs_in_loss_only: ClassVar[bool] = False
    """True when ``batch.old_logprobs`` (pi_old) is read only by ``loss`` / ``token_loss``, never
    by ``advantages``, ``with_advantages``, ``prepare``, ``lr_scale`` or ``loss_mask``. On an
    exactly on-policy step the learner then takes pi_old from the loss's own forward instead of
    a separate pass (``TorchLearner.pi_old_from_loss``). False, the safe default, always pays
    for the separate pass."""

    def __init__(self, config: ObjectiveConfig | None = None):
        self.config = config if config is not None else self.config_cls()
        self.step = 0

    @property
    def needs_value_head(self) -> bool:
        """True when the objective reads a value head's predictions (``LossInputs.values`` and
        ``batch.old_values``), which the learner then builds and trains."""
        return False

    @property
    def needs_grad_norms(self) -> bool:
        """True when ``advantages`` reads ``batch.grad_sq_norm`` (B,): the squared norm of
        each trajectory's score ``grad sum_t m log pi``, which the learner then computes."""
        return False

    def begin_step(self, step: int) -> None:
        """Called by the learner before each rollout batch with the optimizer step count."""
        self.step = step

    def after_step(self, batch: TokenBatch) -> None:
        """Called after the batch's optimizer step(s), with advantages set (replay admission)."""

    def replay_batch(self) -> TokenBatch | None:
        """A batch for one extra optimizer step (advantages and ``old_logprobs`` already set,
        the latter to the stored behaviour logprobs), or None."""
        return None

    @property
    def needs_reference(self) -> bool:
        return self.config.kl_coef > 0

    def advantages(self, batch: TokenBatch) -> torch.Tensor:
        raise NotImplementedError

    def with_advantages(self, batch: TokenBatch) -> TokenBatch:
        """The whole rollout batch with its ``advantages`` set, once, before micro-batching.
        An estimator that yields per-row quantities alongside them (PPO's returns) overrides
        this to attach them as its ``Prepared``."""
        return batch.with_fields(advantages=self.advantages(batch))

    def token_loss(
        self, inputs: LossInputs, batch: TokenBatch, counts: GlobalCounts
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def prepare(self, batch: TokenBatch) -> TokenBatch:
        """The optimizer batch with quantities computed over all of its rows (a clip range
        searched per batch, a filter over whole groups) attached as the algorithm's
        ``Prepared``; micro-batches then slice them. The default returns ``batch``."""
        return batch

    def lr_scale(self, batch: TokenBatch) -> tuple[float, dict[str, float]]:
        """A factor for this step's learning rate, and metrics."""
        return 1.0, {}

    def loss_mask(self, batch: TokenBatch) -> torch.Tensor:
        """(B, T) tokens that count in the loss; algorithms may drop rows (zero-variance groups)."""
        mask: torch.Tensor = batch.loss_mask
        return mask

    def metrics(self) -> dict[str, float]:
        """Algorithm-held metrics (a replay buffer's size, ...), read after each rollout batch."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """State that must survive a checkpoint (a replay buffer, ...)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""

    def loss(self, inputs: LossInputs, batch: TokenBatch, counts: GlobalCounts) -> LossOutput:
        c = self.config
        mask = self.loss_mask(batch)
        per_token, metrics = self.token_loss(inputs, batch, counts)
        if batch.sample_weight is not None:
            per_token = per_token * batch.sample_weight[:, None]
        if c.mismatch != "off":
            weights, extra = mismatch_weights(
                batch.old_logprobs, batch.behavior_logprobs, batch.loss_mask, c, counts, batch.turn_index
            )
            per_token = per_token * weights
            metrics |= extra
        if c.kl_coef > 0:
            if batch.ref_logprobs is None:
                raise ValueError("kl_coef > 0 needs reference logprobs (the learner computes them)")
            kl = k3_kl(inputs.logprobs, batch.ref_logprobs)
            per_token = per_token + c.kl_coef * kl
            metrics["loss/kl_ref"] = token_mean(kl.detach(), mask, counts)
        if c.entropy_coef and inputs.entropy is not None:
            per_token = per_token - c.entropy_coef * inputs.entropy
        if inputs.entropy is not None:
            metrics["policy/entropy"] = token_mean(inputs.entropy.detach(), mask, counts)
        loss = aggregate(per_token, mask, c.aggregation, counts)
        metrics["loss/total"] = loss.detach()
        metrics["tokens/in_loss_frac"] = (mask.sum() / counts.num_tokens).detach()
        return LossOutput(loss, metrics)


def k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """The k3 estimator of KL(pi_theta || pi_ref): exp(ref - logp) - (ref - logp) - 1 (>= 0)."""
    delta = ref_logprobs - logprobs
    return delta.exp() - delta - 1


def mismatch_weights(
    old_logprobs: torch.Tensor | None,
    behavior_logprobs: torch.Tensor,
    mask: torch.Tensor,
    config: ObjectiveConfig,
    counts: GlobalCounts,
    turn_index: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Truncated importance weights ``sg(min(pi_old / mu, C))`` (or a 0/1 mask outside
    ``[low, high]``), per token, per turn or per sequence, and the distribution of
    ``pi_old / mu``. A turn's weight is the geometric mean of its tokens' ratios, as Turn-PPO
    forms its ratio, so each turn of a trajectory sampled across a weight update is corrected
    against the version that sampled it. With ``mu == pi_old`` every weight is 1."""
    if old_logprobs is None:
        raise ValueError("mismatch correction needs old logprobs (the learner computes them)")
    log_w = ((old_logprobs - behavior_logprobs) * mask).detach()  # (B, T)
    if config.mismatch == "sequence":
        log_w = broadcast_seq(log_w.sum(-1), mask)
    elif config.mismatch == "turn":
        if turn_index is None:
            raise ValueError("mismatch='turn' needs the batch's turn_index")
        log_w = turn_mean(log_w, turn_index, mask)
    w = log_w.exp()
    if config.mismatch_mask:
        weights = ((w >= config.mismatch_low) & (w <= config.mismatch_high)).to(w.dtype)
    else:
        weights = w.clamp(max=config.mismatch_cap)
    outside = ((w < 0.9) | (w > 1.1)).to(w.dtype)
    metrics = {
        "mismatch/ratio_mean": token_mean(w, mask, counts),
        "mismatch/ratio/max": masked_max(w, mask),
        "mismatch/frac_outside_0.9_1.1": token_mean(outside, mask, counts),
        "mismatch/capped_frac": token_mean((w > config.mismatch_cap).to(w.dtype), mask, counts),
    }
    return weights * mask, metrics


def broadcast_seq(per_seq: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return per_seq[:, None] * torch.ones_like(mask)

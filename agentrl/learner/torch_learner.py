"""The plain PyTorch learner: one process, CPU or GPU.

Owns the update: pi_old (and reference / value) recomputation, or on an exactly on-policy
step pi_old from the loss's own forward (``pi_old_from_loss``), advantages through the
algorithm, micro-batching (``agentrl.learner.micro``) with global counts, gradient
clipping, AdamW, the per-step learning-rate hook, precision (bf16 or fp16 autocast over float32
master weights, fp16 with dynamic loss scaling), gradient checkpointing, and the skipping
of non-finite steps. It calls
the algorithm's methods and hooks and never branches on an algorithm's name
(docs/algorithms.md#the-learners-update). It changes a batch only through
``TokenBatch.with_fields`` and the algorithm's ``with_advantages`` / ``prepare``.

A step whose loss or gradient is not finite is skipped: gradients are zeroed, the
optimizer does not step, and ``learner/skipped_steps`` counts it, so a NaN never reaches
the weights (docs/algorithms.md#skipped-non-finite-steps).
"""

from __future__ import annotations

import contextlib
import copy
import math
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from agentrl.algos.base import Algorithm, LossInputs
from agentrl.algos.core import GlobalCounts
from agentrl.batch import TokenBatch
from agentrl.errors import CheckpointError, ConfigError
from agentrl.learner import lora
from agentrl.learner.config import LearnerConfig
from agentrl.learner.forward import ValueHead, forward_tokens
from agentrl.learner.metrics import RunningMetrics, StepMetrics, behavior_weight_stats
from agentrl.learner.micro import MicroBatch, gather, micro_batches
from agentrl.learner.scores import score_grad_sq_norms
from agentrl.learner.trace import TokenTrace

_DTYPES = {"fp64": torch.float64}  # the batch's float dtype (logprobs, masks, advantages); else float32
_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}
# fp16's first loss scale: torch's default (2^16) overflows the first few steps' gradients, and each
# overflow skips a step, which in RL is a whole rollout batch; the scale grows back every 2,000 steps
LOSS_SCALE_INIT = 2.0**10


class TorchLearner:
    """Trains ``model`` with ``algorithm``. ``reference`` is the frozen model for KL (a copy
    of the initial model is made when the algorithm needs one and none is given)."""

    def __init__(
        self,
        model: nn.Module,
        algorithm: Algorithm,
        config: LearnerConfig | None = None,
        reference: nn.Module | None = None,
    ):
        self.config = config or LearnerConfig()
        self.algorithm = algorithm
        self.model = model
        if algorithm.on_policy_only and (self.config.epochs > 1 or self.config.minibatches > 1):
            raise ConfigError(
                f"{algorithm.name} is exactly on-policy: it takes one optimizer step per rollout batch, "
                f"but epochs={self.config.epochs} and minibatches={self.config.minibatches}; set both to 1"
            )
        self.device = next(model.parameters()).device
        precision = self.config.precision
        if precision == "auto":
            precision = "bf16" if self.device.type == "cuda" else "fp32"
        self.autocast: torch.dtype | None = _AUTOCAST.get(precision)  # the forward's compute dtype, if not the weights'
        self.dtype = _DTYPES.get(precision, torch.float32)
        self.lora = lora.adapters_of(model)  # adapters only train; the reference is the base with them off
        fp16 = precision == "fp16"
        self.scaler = torch.amp.GradScaler(self.device.type, init_scale=LOSS_SCALE_INIT) if fp16 else None
        if self.config.gradient_checkpointing:
            enable_gradient_checkpointing(model)
        self.reference = self._reference(reference)
        self.value_head = self._value_head() if algorithm.needs_value_head else None
        self.optimizer = torch.optim.AdamW(
            self._param_groups(),
            lr=self.config.lr,
            betas=self.config.betas,
            eps=self.config.eps,
            weight_decay=self.config.weight_decay,
        )
        self.step = 0
        self.skipped_steps = 0
        self.last_trace: list[dict[str, list[float]] | None] | None = None  # per row of the last traced batch
        self._trace: TokenTrace | None = None

    # ---- set-up -------------------------------------------------------------------------
    def _reference(self, reference: nn.Module | None) -> nn.Module | None:
        if not self.algorithm.needs_reference:
            return None
        if reference is None and self.lora is not None:
            return self.model  # run with its adapters off (_as_reference): no second model in memory
        ref = reference if reference is not None else copy.deepcopy(self.model)
        return ref.eval().requires_grad_(False)

    def _value_head(self) -> ValueHead:
        hidden = getattr(getattr(self.model, "config", None), "hidden_size", None)
        if hidden is None:
            raise ConfigError(f"{self.algorithm.name} needs a value head, but the model has no config.hidden_size")
        return ValueHead(hidden).to(self.device, dtype=next(self.model.parameters()).dtype)

    def _param_groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = [{"params": [p for p in self.model.parameters() if p.requires_grad]}]
        if self.value_head is not None:
            groups.append({"params": list(self.value_head.parameters()), "lr": self.config.value_lr or self.config.lr})
        for g in groups:
            g["base_lr"] = g.get("lr", self.config.lr)
        return groups

    # ---- the step -----------------------------------------------------------------------
    def train_step(self, batch: TokenBatch, trace: bool = False) -> dict[str, float]:
        """One rollout batch: ``epochs x minibatches`` optimizer steps (plus a replay step
        when the algorithm offers one). Returns namespaced metrics. With ``trace``,
        ``last_trace`` holds what the update computed per token of each row (``TokenTrace``;
        collective under data parallelism: every rank passes the same ``trace``)."""
        algo, running = self.algorithm, RunningMetrics()
        algo.begin_step(self.step)
        from_loss = self.pi_old_from_loss
        batch = self.prepare_batch(batch.to(self.device, self.dtype), old_logprobs=not from_loss)
        running.set("batch/rows", batch.size)
        running.set("batch/dropped_nonfinite", batch.dropped)
        running.set("batch/tokens", float(batch.loss_mask.sum()))
        running.set("batch/empty_rows", float((batch.lengths == 0).sum()))
        running.set("batch/singleton_groups", float((torch.bincount(batch.group_index) == 1).sum()))
        for key, value in _advantage_stats(batch).items():
            running.set(key, value)
        self._trace = TokenTrace(batch) if trace else None
        for _ in range(self.config.epochs):
            for rows in batch.row_slices(self.config.minibatches):
                if self._trace is not None:
                    self._trace.offset = rows.start
                metrics, old = self._optimizer_step(batch.rows(rows), old_from_loss=from_loss)
                running.add_step(metrics)
        self.last_trace = self._trace_rows(self._trace.rows()) if self._trace is not None else None
        self._trace = None  # a replay step is not the rollout batch's
        if from_loss:  # the one optimizer step covered every row
            batch = batch.with_fields(old_logprobs=old)
        stats = behavior_weight_stats(batch.loss_mask, batch.require("old_logprobs"), batch.behavior_logprobs)
        for key, value in stats.items():
            running.set(key, value)
        algo.after_step(batch)
        replay = algo.replay_batch()
        if replay is not None:
            replay = replay.to(self.device, self.dtype)
            replay_metrics, _ = self._optimizer_step(replay)
            running.set("replay/rows", replay.size)
            running.set("replay/loss", replay_metrics.get("loss/total", 0.0))
        for key, value in algo.metrics().items():
            running.set(key, value)
        self.step += 1
        running.set("learner/step", self.step)
        running.set("learner/skipped_steps", self.skipped_steps)
        return running.result()

    @property
    def pi_old_from_loss(self) -> bool:
        """True when pi_old is taken from the loss's own forward instead of a separate pass.

        On an exactly on-policy step (one epoch, one minibatch) the weights that the loss's
        forward runs are the weights before the update, so its detached logprobs *are*
        pi_old, bit for bit, and the extra forward over the batch is waste. That needs an
        algorithm that reads pi_old only inside its loss (``old_logprobs_in_loss_only``) and
        no value head (whose old values the separate pass computes)."""
        c = self.config
        return (
            c.recompute_old_logprobs
            and c.epochs == 1
            and c.minibatches == 1
            and self.value_head is None
            and self.algorithm.old_logprobs_in_loss_only
        )

    def prepare_batch(self, batch: TokenBatch, old_logprobs: bool = True) -> TokenBatch:
        """The batch with pi_old (unless ``old_logprobs`` is False: the loss's forward then
        sets it), reference logprobs, old values (score norms when the algorithm asks) and
        the algorithm's advantages set."""
        recompute = self.config.recompute_old_logprobs and old_logprobs
        with_values = self.value_head is not None
        policy_pass = recompute or with_values
        # no pass at all (pi_old from the loss, no reference): nothing to plan or copy
        micro = self._micro_batches(batch) if policy_pass or self.reference is not None else []
        old: list[torch.Tensor] = []
        ref: list[torch.Tensor] = []
        values: list[torch.Tensor] = []
        with torch.no_grad():
            for mb in micro:
                if policy_pass:
                    logprobs, _, v = self._forward(self.model, mb.batch, value=with_values)
                    old.append(logprobs)
                    if v is not None:
                        values.append(v)
                if self.reference is not None:
                    with self._as_reference():
                        ref.append(self._forward(self.reference, mb.batch)[0])
        like = batch.loss_mask
        if not self.config.recompute_old_logprobs:
            batch = batch.with_fields(old_logprobs=batch.behavior_logprobs.clone())
        elif recompute:
            batch = batch.with_fields(old_logprobs=gather(old, micro, like))
        batch = batch.with_fields(
            ref_logprobs=gather(ref, micro, like) if ref else None,
            old_values=gather(values, micro, like) if with_values else None,
        )
        if self.algorithm.needs_grad_norms:
            batch = batch.with_fields(grad_sq_norm=score_grad_sq_norms(self.model, batch, self._forward))
        return self.algorithm.with_advantages(batch)

    def compute_gradients(
        self, batch: TokenBatch, old_from_loss: bool = False
    ) -> tuple[bool, StepMetrics, torch.Tensor | None]:
        """Zero the gradients, then accumulate the loss's gradient over micro-batches, with
        counts over the whole (optimizer) ``batch``. Returns whether the loss was finite, the
        metrics, and with ``old_from_loss`` the ``(B, T)`` pi_old the forwards gave (each
        micro-batch's loss reads its detached logprobs as ``old_logprobs``)."""
        algo, metrics = self.algorithm, StepMetrics()
        counts = GlobalCounts.of(algo.loss_mask(batch), algo.config.norm_constant)
        self.optimizer.zero_grad(set_to_none=True)
        finite = True
        micro = self._micro_batches(batch)
        old: list[torch.Tensor] = []
        for mb in self._my_micro_batches(micro):
            part = mb.batch if mb is not None else micro[0].batch.rows(slice(0, 1))
            logprobs, entropy, values = self._forward(
                self.model,
                part,
                entropy=True,
                value=self.value_head is not None,
                entropy_grad=algo.config.entropy_coef > 0,
            )
            if mb is None:  # a pass that only keeps the ranks in step: every output, times 0
                outputs = [t.sum() for t in (logprobs, entropy, values) if t is not None and t.requires_grad]
                loss = torch.stack(outputs).sum() * 0.0
            else:
                if old_from_loss:
                    old.append(logprobs.detach())
                    part = part.with_fields(old_logprobs=old[-1])
                if self._trace is not None and logprobs.requires_grad:
                    logprobs.retain_grad()  # its gradient is each token's weight in the update
                out = algo.loss(LossInputs(logprobs, entropy, values), part, counts)
                loss = out.loss
                metrics.add(out.metrics)
            finite = finite and self._all_finite(bool(torch.isfinite(loss)))
            self._accumulate(loss, finite)
            if self._trace is not None and mb is not None and finite:
                scale = self._gradient_scale()
                self._trace.add(mb.index, part, logprobs, entropy, algo.loss_mask(part), counts.num_tokens, scale)
        metrics = self._combined(metrics)
        return finite, metrics, gather(old, micro, batch.loss_mask) if old_from_loss else None

    # ---- what a data-parallel learner changes (agentrl.learner.deepspeed_learner) ---------
    def _my_micro_batches(self, micro: list[MicroBatch]) -> list[MicroBatch | None]:
        """The micro-batches this process computes the loss on (None: a zero pass that keeps
        data-parallel ranks in step). One process computes all of them."""
        return list(micro)

    def _accumulate(self, loss: torch.Tensor, finite: bool) -> None:
        """Add the pass's gradient; once the step's loss is not finite, nothing more (the step
        will be skipped)."""
        if finite:
            (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def _all_finite(self, finite: bool) -> bool:
        """Whether every process's loss was finite (one process: its own)."""
        return finite

    def _gradient_scale(self) -> float:
        """What a pass's backward multiplied the loss's gradient by (fp16's loss scale, or 1)."""
        return float(self.scaler.get_scale()) if self.scaler is not None else 1.0

    def _trace_rows(self, rows: list[dict[str, list[float]] | None]) -> list[dict[str, list[float]] | None]:
        """The token trace's rows over every process (one process: its own)."""
        return rows

    def _combined(self, metrics: StepMetrics) -> StepMetrics:
        """The step's loss metrics over every process (one process: its own)."""
        return metrics

    def _optimizer_step(
        self, batch: TokenBatch, old_from_loss: bool = False
    ) -> tuple[dict[str, float], torch.Tensor | None]:
        """One optimizer step on ``batch``: its metrics, and pi_old when ``old_from_loss``."""
        batch = self.algorithm.prepare(batch)
        factor, lr_metrics = self.algorithm.lr_scale(batch)
        finite, metrics, old = self.compute_gradients(batch, old_from_loss)
        metrics.add(lr_metrics)
        grad_norm = self._apply_gradients(factor * self._warmup_factor(), finite)
        if not math.isfinite(grad_norm):
            self.optimizer.zero_grad(set_to_none=True)
            self.skipped_steps += 1
            metrics.add({"learner/skipped": 1.0})
            return metrics.values, old
        lr = self.config.lr * factor * self._warmup_factor()
        metrics.add({"grad/norm": grad_norm, "learner/lr": lr, "learner/skipped": 0.0})
        if self.scaler is not None:
            metrics.add({"learner/loss_scale": self.scaler.get_scale()})
        return metrics.values, old

    def _warmup_factor(self) -> float:
        """Linear warm-up over the first ``warmup_steps`` rollout batches (1.0 after)."""
        warmup = self.config.warmup_steps
        return 1.0 if self.step >= warmup else (self.step + 1) / warmup

    def _apply_gradients(self, lr_factor: float, finite: bool) -> float:
        """Clip the gradients and step the optimizer at ``lr_factor`` x each group's lr; returns the
        pre-clip gradient norm. A non-finite loss (``finite`` False) or norm returns NaN before
        the step (the caller skips it)."""
        if not finite:
            return float("nan")
        if self.scaler is not None:  # fp16: the true gradients, before clipping; inf where the scale overflowed
            self.scaler.unscale_(self.optimizer)
        params = [p for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
        limit = self.config.max_grad_norm if self.config.max_grad_norm is not None else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, limit))
        if math.isfinite(grad_norm):
            with self._scaled_lr(lr_factor):
                if self.scaler is None:
                    self.optimizer.step()
                else:
                    self.scaler.step(self.optimizer)
        if self.scaler is not None:
            self.scaler.update()  # halves the scale after an overflow (that step is skipped), else may grow it
        return grad_norm

    @contextlib.contextmanager
    def _scaled_lr(self, factor: float) -> Iterator[None]:
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        try:
            yield
        finally:
            for group in self.optimizer.param_groups:
                group["lr"] = group["base_lr"]

    def _micro_batches(self, batch: TokenBatch) -> list[MicroBatch]:
        return micro_batches(batch, self.config.micro_batch_size, self.config.micro_batch_tokens)

    def _forward(
        self,
        model: nn.Module,
        batch: TokenBatch,
        *,
        entropy: bool = False,
        value: bool = False,
        entropy_grad: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        autocast = torch.autocast(self.device.type, dtype=self.autocast) if self.autocast else contextlib.nullcontext()
        with autocast:
            logprobs, ent, values = forward_tokens(
                model,
                batch.input_ids,
                batch.attention_mask,
                batch.temperature,
                with_entropy=entropy,
                entropy_grad=entropy_grad,
                value_head=self.value_head if value else None,
                logits_chunk=self.config.logits_chunk,
                positions=batch.loss_mask > 0,  # every objective reads logprobs only where the mask is 1
            )
        cast = batch.loss_mask.dtype
        return logprobs.to(cast), None if ent is None else ent.to(cast), None if values is None else values.to(cast)

    def _as_reference(self) -> contextlib.AbstractContextManager[None]:
        """The reference pass's context: with LoRA, the policy's adapters off (the base model)."""
        return lora.adapters_off(self.model) if self.reference is self.model else contextlib.nullcontext()

    # ---- weights and checkpoints ----------------------------------------------------------
    def full_state(self) -> dict[str, torch.Tensor]:
        """The model's weights as they are trained (with LoRA: base layers and adapters apart)."""
        return {k: v.detach() for k, v in self.model.state_dict().items()}

    def policy_state(self) -> dict[str, torch.Tensor]:
        """The policy's whole weights under the plain model's names: what an engine loads (with
        LoRA, the adapters merged into the base weights)."""
        state = self.full_state()
        return lora.merged(state, self.lora.config.scaling) if self.lora is not None else state

    def state_dict(self) -> dict[str, Any]:
        weights = self.model.state_dict()
        return {
            "model": lora.adapter_state(weights) if self.lora is not None else weights,  # LoRA: the adapters
            "value_head": self.value_head.state_dict() if self.value_head is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "algorithm": self.algorithm.state_dict(),
            "step": self.step,
            "skipped_steps": self.skipped_steps,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
        }

    def save(self, folder: Path) -> None:
        """Write what resuming needs into the checkpoint ``folder`` (``learner.pt``); with LoRA,
        also the adapter in peft's format (the checkpoint's policy)."""
        torch.save(self.state_dict(), folder / "learner.pt")
        if self.lora is not None:
            lora.save_adapter(self.lora, self.model.state_dict(), folder)

    def load(self, folder: Path) -> None:
        """Restore what ``save`` wrote into ``folder``."""
        state = read_state(folder / "learner.pt")
        if "model" not in state:
            raise CheckpointError(
                f"{folder} was written by a data-parallel learner (its weights are the shards under deepspeed/); "
                "resume it with the learner.backend it was written with"
            )
        self.load_state_dict(state)

    def close(self) -> None:
        """Release what the learner holds beyond its own process (one process: nothing)."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._load_weights(state["model"])
        if self.value_head is not None and state.get("value_head") is not None:
            self.value_head.load_state_dict(state["value_head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.algorithm.load_state_dict(state.get("algorithm", {}))
        self.step, self.skipped_steps = state["step"], state["skipped_steps"]
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])

    def _load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        """The model's weights from a checkpoint: all of them, or with LoRA the adapters (the
        base weights are the base model's, loaded with it)."""
        if self.lora is None:
            self.model.load_state_dict(weights)
            return
        expected = {k: v.shape for k, v in lora.adapter_state(self.model.state_dict()).items()}
        if {k: v.shape for k, v in weights.items()} != expected:  # other layers, or another rank
            raise CheckpointError(
                f"the checkpoint's adapters do not fit this model's ({len(weights)} tensors, {len(expected)} "
                "expected): resume with the lora options it was written with"
            )
        self.model.load_state_dict(weights, strict=False)


def enable_gradient_checkpointing(model: nn.Module) -> None:
    """Recompute each layer's activations in the backward pass (``learner.gradient_checkpointing``);
    transformers does it in training mode. Non-reentrant: it needs no input that requires grad."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise ConfigError(
            f"learner.gradient_checkpointing: the model ({type(model).__name__}) does not support it; "
            "set learner.gradient_checkpointing=false"
        )
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})  # type: ignore[operator]


def read_state(path: Path) -> dict[str, Any]:
    """A ``torch.save``d learner state, or a ``CheckpointError`` naming the file."""
    try:
        return dict(torch.load(path, weights_only=False))
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from None


def _advantage_stats(batch: TokenBatch) -> dict[str, float]:
    assert batch.advantages is not None
    mask = batch.loss_mask > 0
    values = batch.advantages[mask]
    if values.numel() == 0:
        return {"adv/mean": 0.0, "adv/std": 0.0, "adv/max": 0.0, "adv/min": 0.0}
    return {
        "adv/mean": float(values.mean()),
        "adv/std": float(values.std(unbiased=False)),
        "adv/max": float(values.max()),
        "adv/min": float(values.min()),
    }

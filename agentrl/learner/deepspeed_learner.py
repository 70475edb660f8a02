"""The DeepSpeed ZeRO learner: ``TorchLearner``'s update, data parallel over torch.distributed ranks.

Owns the DeepSpeed engine and what data parallelism changes in the update, nothing else; the
objective, the micro-batch plan, pi_old, advantages and metrics are ``TorchLearner``'s
(docs/distributed.md). The only module of agentrl that imports deepspeed.

- Every rank is given the whole rollout batch. pi_old, reference logprobs, old values and
  advantages are computed on every rank over the whole batch (identical on all ranks), so the
  counts that normalise the loss are the whole optimizer batch's.
- The loss's micro-batches are one process's plan, dealt round-robin: rank r computes
  micro-batches r, r + N, ... A rank with fewer runs zero passes (every output times 0) so all
  ranks run as many forward/backward passes; ZeRO-3 gathers parameters inside each forward and
  ranks that disagree on the count would hang.
- DeepSpeed averages gradients over ranks and divides a backward by its accumulation steps.
  Here the learner sets the accumulation boundary itself (on each rank's last pass of the step),
  calls ``backward(..., scale_wrt_gas=False)`` and ``step()`` once per optimizer step, and
  multiplies each rank's loss by the world size, so the summed gradient is the one-process
  gradient exactly.
- Clipping is DeepSpeed's (``gradient_clipping`` = ``max_grad_norm``, on the global norm); the
  step's lr factor is set on the optimizer's groups before ``step()``. Once a micro-batch's loss
  is not finite on any rank (the finite flag is all-reduced), every rank's remaining backwards
  carry NaN, and ``step()``'s invalid-norm check skips the step and drops what was accumulated
  (stopping the backwards instead left ZeRO's partial sums behind for the next step).
- Under ZeRO-3 the weights handed to the engine are gathered ``gather_bucket_mb`` of full-size
  parameters at a time (``ds_numel``, not the partitioned ``numel()``).
- With LoRA only the adapters are in the optimizer; the shards of a checkpoint leave the frozen
  base weights out (they are the base model's), and rank 0 writes the adapter in peft's format.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import torch
import torch.distributed as dist
from torch import nn

from agentrl.algos.base import Algorithm
from agentrl.batch import TokenBatch
from agentrl.engines.loading import quiet_deepspeed_accelerator
from agentrl.errors import CheckpointError, ConfigError
from agentrl.learner import lora
from agentrl.learner.config import LearnerConfig
from agentrl.learner.metrics import StepMetrics
from agentrl.learner.micro import MicroBatch
from agentrl.learner.torch_learner import TorchLearner, read_state

DEEPSPEED_DIR, SHARDS_TAG = "deepspeed", "zero"  # a checkpoint's folder/deepspeed/zero/ holds each rank's shards


def import_deepspeed() -> Any:
    """deepspeed, on the CPU accelerator when torch sees no GPU (a one-line error when absent)."""
    quiet_deepspeed_accelerator()
    # DeepSpeed's ZeRO calls collectives torch has renamed; the warning is DeepSpeed's to act on
    warnings.filterwarnings("ignore", r"`torch\.distributed\.\w+` is deprecated", FutureWarning)
    try:
        import deepspeed
    except ImportError as err:
        raise ConfigError(
            f"learner.backend=deepspeed needs deepspeed: pip install 'agentrl[deepspeed]' ({err})"
        ) from None
    return deepspeed


def init_distributed(timeout_min: float = 60.0) -> None:
    """Join the torchrun process group (gloo on CPU, nccl on GPU) unless already in one; a
    collective that waits longer than ``timeout_min`` fails."""
    if dist.is_initialized():
        return
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise ConfigError(
            "learner.backend=deepspeed runs under torchrun: agentrl train --nproc N, or torchrun -m agentrl"
        )
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    import_deepspeed().init_distributed(dist_backend=backend, timeout=timedelta(minutes=timeout_min))


class _Trained(nn.Module):
    """The modules the engine trains: the policy and, when the objective has one, its value head.

    Its forward runs the learner's own forward (``run``) inside the engine's: DeepSpeed's forward
    does ZeRO bookkeeping (a ZeRO-3 micro-step starts there; without it gradient accumulation
    copies instead of adding)."""

    def __init__(self, policy: nn.Module, value_head: nn.Module | None):
        super().__init__()
        self.policy = policy
        self.value_head = value_head

    def forward(self, run: Callable[[], Any]) -> Any:
        return run()


class DeepSpeedLearner(TorchLearner):
    """``TorchLearner`` with ZeRO stage ``config.zero_stage`` over the current process group."""

    def __init__(
        self,
        model: nn.Module,
        algorithm: Algorithm,
        config: LearnerConfig | None = None,
        reference: nn.Module | None = None,
    ):
        deepspeed = import_deepspeed()
        init_distributed((config or LearnerConfig()).dist_timeout_min)
        super().__init__(model, algorithm, config, reference)
        c = self.config
        if c.zero_stage == 3 and algorithm.needs_grad_norms:
            raise ConfigError(
                f"{algorithm.name} asks for per-trajectory gradient norms, which ZeRO-3's partitioned "
                "parameters cannot give; use learner.zero_stage=2"
            )
        self.autocast = None  # float32 (LearnerConfig refuses bf16 and fp16 here), auto too, on a GPU too
        if any(p.dtype != torch.float32 for p in model.parameters()):
            # in float32 ZeRO's step checks the gradient norm for inf / NaN; that check is what
            # discards a non-finite step (see _accumulate), and bf16 parameters would skip it
            raise ConfigError(
                "learner.backend=deepspeed trains float32 weights for now: load the model in float32 "
                "(learner.weights_dtype=float32)"
            )
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        groups = [
            {k: v for k, v in g.items() if k != "params"} | {"params": list(g["params"])}
            for g in self.optimizer.param_groups
        ]
        self.engine, self.optimizer, _, _ = deepspeed.initialize(
            model=_Trained(model, self.value_head), model_parameters=groups, config=self.deepspeed_config()
        )
        self.model = self.engine.module.policy
        self.value_head = self.engine.module.value_head
        self.device = self.engine.device  # the engine puts each rank's model on its own GPU (LOCAL_RANK)
        if self.reference is not None and self.reference is not self.model:  # LoRA: the policy itself
            self.reference.to(self.device)
        self._deepspeed = deepspeed
        self._passes_left = 0

    def deepspeed_config(self) -> dict[str, Any]:
        """The DeepSpeed config this learner's settings make (docs/distributed.md)."""
        c = self.config
        zero: dict[str, Any] = {"stage": c.zero_stage}
        if c.offload_optimizer:
            zero["offload_optimizer"] = {"device": "cpu"}
        if c.offload_params:
            zero["offload_param"] = {"device": "cpu"}
        return {
            "train_micro_batch_size_per_gpu": 1,  # unused: this learner plans its own micro-batches
            "gradient_accumulation_steps": 1,
            "gradient_clipping": c.max_grad_norm or 0.0,
            "optimizer": {
                "type": "AdamW",
                "params": {
                    "lr": c.lr,
                    "betas": list(c.betas),
                    "eps": c.eps,
                    "weight_decay": c.weight_decay,
                    "torch_adam": True,
                },
            },
            "zero_force_ds_cpu_optimizer": False,
            "zero_optimization": zero,
            "steps_per_print": 2**31 - 1,
            "wall_clock_breakdown": False,
        }

    @property
    def pi_old_from_loss(self) -> bool:
        """Never: a rank's loss covers only its rows, and pi_old is needed for all of them."""
        return False

    # ---- the hooks of TorchLearner's update ------------------------------------------------
    def _my_micro_batches(self, micro: list[MicroBatch]) -> list[MicroBatch | None]:
        mine: list[MicroBatch | None] = list(micro[self.rank :: self.world])
        passes = -(-len(micro) // self.world)  # every rank runs this many
        self._passes_left = passes
        return mine + [None] * (passes - len(mine))

    def _forward(
        self, model: nn.Module, batch: TokenBatch, **options: Any
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        if model is not self.model:  # the frozen reference is not the engine's
            return super()._forward(model, batch, **options)
        return cast(Any, self.engine(lambda: super(DeepSpeedLearner, self)._forward(model, batch, **options)))

    def _accumulate(self, loss: torch.Tensor, finite: bool) -> None:
        """Every pass runs its backward, so the ranks reach the accumulation boundary together;
        once the step is not finite (on any rank) the gradient is made NaN, and ``step()``'s
        invalid-norm check discards the step and every gradient accumulated for it."""
        self._passes_left -= 1
        self.engine.set_gradient_accumulation_boundary(self._passes_left == 0)
        scale = self.world if finite else float("nan")
        self.engine.backward(loss * scale, scale_wrt_gas=False)

    def _all_finite(self, finite: bool) -> bool:
        flag = torch.tensor([1.0 if finite else 0.0], device=self.device)  # NCCL reduces GPU tensors only
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item() > 0)

    def _gradient_scale(self) -> float:
        return float(self.world)  # each rank's loss is multiplied by the world size (see _accumulate)

    def _trace_rows(self, rows: list[dict[str, list[float]] | None]) -> list[dict[str, list[float]] | None]:
        """Each rank traced its own micro-batches: every rank gets every row's."""
        parts: list[list[dict[str, list[float]] | None] | None] = [None] * self.world
        dist.all_gather_object(parts, rows)
        return [next((p[i] for p in parts if p is not None and p[i] is not None), None) for i in range(len(rows))]

    def _combined(self, metrics: StepMetrics) -> StepMetrics:
        parts: list[dict[str, float] | None] = [None] * self.world
        dist.all_gather_object(parts, metrics.values)
        out = StepMetrics()
        for part in parts:
            out.add(part or {})  # the same reduction as across micro-batches: sums, /max, /min
        return out

    def _apply_gradients(self, lr_factor: float, finite: bool) -> float:
        with self._scaled_lr(lr_factor):
            self.engine.step()  # also on a non-finite step: it discards the NaN gradient (see _accumulate)
        norm = self.engine.get_global_grad_norm()
        if not (finite and self.engine.was_step_applied()):
            return float("nan")
        return float(norm) if norm is not None else 0.0

    # ---- checkpoints -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """What the engine's own checkpoint does not hold: the algorithm's state and the counters
        (identical on every rank: every rank runs the algorithm on the whole batch)."""
        return {
            "algorithm": self.algorithm.state_dict(),
            "step": self.step,
            "skipped_steps": self.skipped_steps,
            "world_size": self.world,
            "zero_stage": self.config.zero_stage,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.algorithm.load_state_dict(state.get("algorithm", {}))
        self.step, self.skipped_steps = state["step"], state["skipped_steps"]

    def save(self, folder: Path) -> None:
        """Every rank writes its ZeRO shards (weights, value head, optimizer state) under
        ``folder/deepspeed``; rank 0 writes ``learner.pt``. Collective: returns on every rank once
        all have written (``folder`` must be one directory for all ranks: a shared filesystem
        across nodes)."""
        frozen = self.lora is not None  # LoRA: the shards hold the adapters; the base is the base model's
        self.engine.save_checkpoint(
            str(folder / DEEPSPEED_DIR), tag=SHARDS_TAG, save_latest=False, exclude_frozen_parameters=frozen
        )
        # the adapters alone, gathered under ZeRO-3 (collective): not the frozen base with them
        adapters = self._gathered(lora.is_adapter_key) if self.lora is not None else None
        if self.rank == 0:
            torch.save(self.state_dict(), folder / "learner.pt")
            if self.lora is not None and adapters is not None:
                lora.save_adapter(self.lora, adapters, folder)
        dist.barrier()

    def load(self, folder: Path) -> None:
        """Restore what ``save`` wrote, on every rank (collective)."""
        shards = folder / DEEPSPEED_DIR / SHARDS_TAG
        if not shards.is_dir():
            raise CheckpointError(
                f"{folder} holds no DeepSpeed shards ({shards} is missing): it was written by another learner "
                "backend, which learner.backend=deepspeed cannot resume"
            )
        state = read_state(folder / "learner.pt")
        written = (state.get("world_size"), state.get("zero_stage"))
        if written != (self.world, self.config.zero_stage):
            raise CheckpointError(
                f"{folder} holds ZeRO-{written[1]} shards of {written[0]} ranks; resume it with as many ranks "
                f"(--nproc x --nnodes) and learner.zero_stage={written[1]}, "
                f"not {self.world} ranks of ZeRO-{self.config.zero_stage}"
            )
        loaded, _ = self.engine.load_checkpoint(
            str(folder / DEEPSPEED_DIR), tag=SHARDS_TAG, load_module_strict=self.lora is None
        )
        if loaded is None:
            raise CheckpointError(f"DeepSpeed could not load the shards in {shards}")
        self.load_state_dict(state)

    # ---- weights ---------------------------------------------------------------------------
    def full_state(self) -> dict[str, torch.Tensor]:
        """The model's full weights on every rank (gathered a bucket at a time under ZeRO-3)."""
        return self._gathered(lambda name: True)

    def _gathered(self, keep: Callable[[str], bool]) -> dict[str, torch.Tensor]:
        """The model's state entries whose name ``keep`` takes, whole on every rank; under ZeRO-3
        only those parameters are gathered (collective)."""
        if self.config.zero_stage < 3:
            return {k: v for k, v in super().full_state().items() if keep(k)}
        named = [(n, p) for n, p in self.model.named_parameters(remove_duplicate=False) if keep(n)]
        full: dict[int, torch.Tensor] = {}
        for bucket in gather_buckets([p for _, p in named], self.config.gather_bucket_mb * 2**20):
            with self._deepspeed.zero.GatheredParameters(bucket, modifier_rank=None):
                for p in bucket:
                    full[id(p)] = p.detach().clone()
        state = {name: full[id(p)] for name, p in named}
        state.update({name: b.detach() for name, b in self.model.named_buffers() if keep(name)})
        keys = self.model.state_dict().keys()
        return {k: state[k] for k in keys if k in state}


def gather_buckets(params: list[nn.Parameter], max_bytes: float) -> list[list[nn.Parameter]]:
    """Distinct ``params`` in order, grouped so a group's full size (``ds_numel`` under ZeRO-3)
    stays within ``max_bytes``; a parameter larger than that goes alone."""
    buckets: list[list[nn.Parameter]] = []
    seen: set[int] = set()
    size = 0.0
    for p in params:
        if id(p) in seen:
            continue
        seen.add(id(p))
        nbytes = getattr(p, "ds_numel", p.numel()) * p.element_size()
        if buckets and size + nbytes <= max_bytes:
            buckets[-1].append(p)
            size += nbytes
        else:
            buckets.append([p])
            size = nbytes
    return buckets

"""Per-trajectory score norms ``||grad_theta sum_t m log pi(y_i)||^2`` (VCPO's exact OPOB).

Owns the one-backward-per-trajectory computation. Costly by design (B backward passes); an
algorithm asks for it through ``needs_grad_norms`` only in its exact mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from agentrl.batch import TokenBatch


def score_grad_sq_norms(model: nn.Module, batch: TokenBatch, forward: Callable[..., Any]) -> torch.Tensor:
    params = [p for p in model.parameters() if p.requires_grad]
    norms = torch.zeros(batch.size, dtype=batch.loss_mask.dtype, device=batch.loss_mask.device)
    for row in range(batch.size):
        part = batch.rows(slice(row, row + 1))
        logprobs = forward(model, part)[0]
        score = (logprobs * part.loss_mask).sum()
        grads = torch.autograd.grad(score, params, allow_unused=True)
        norms[row] = sum(float((g.double() ** 2).sum()) for g in grads if g is not None)  # accumulate in fp64
    return norms

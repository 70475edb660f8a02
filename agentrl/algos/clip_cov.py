"""Clip-Cov: drop the gradient of a few tokens whose advantage and logprob covary strongly.

docs/algorithms.md#spear (SPEAR's regulariser, from "The Entropy Mechanism of RL for
Reasoning LMs", reference: verl ``compute_policy_loss_clip_cov``). Owns one pure function,
``clip_cov_keep_mask``; SPEAR calls it (from its loss or its ``prepare``) and multiplies its
per-token loss by the result. It must not read a config or the learner.

Per valid token ``cov_t = (A_t - mean A)(log pi_t - mean log pi)``, means over the valid
tokens; tokens already clipped by the PPO surrogate are not eligible; among the tokens with
``lb < cov_t < ub`` pick ``k = max(1, floor(ratio * N))`` uniformly at random (all of them
when fewer are eligible, none when none is) and set their keep value to 0. ``N`` is the
number of valid tokens.

The means and the pick cover whatever tokens and ``logprobs`` the caller passes: SPEAR passes a
micro-batch's tokens and the loss's own logprobs (the verl reference's way), or the whole
optimizer batch and ``pi_old`` (``clip_cov_logprobs=pi_old``). The pick comes from a caller-owned
``torch.Generator``, so a run is reproducible.
"""

from __future__ import annotations

import math

import torch


def covariance(advantages: torch.Tensor, logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T) ``(A - mean A)(log pi - mean log pi)``, means over ``mask``; 0 off the mask."""
    n = mask.sum().clamp(min=1)
    mean_a = (advantages * mask).sum() / n
    mean_logp = (logprobs * mask).sum() / n
    return (advantages - mean_a) * (logprobs - mean_logp) * mask


def clip_cov_keep_mask(
    advantages: torch.Tensor,
    logprobs: torch.Tensor,
    mask: torch.Tensor,
    ratio: float,
    lb: float,
    ub: float,
    generator: torch.Generator | None = None,
    clipped: torch.Tensor | None = None,
) -> torch.Tensor:
    """(B, T) 0/1 in ``mask``'s dtype: 0 on the tokens picked for clipping, 1 everywhere else.

    ``clipped`` (B, T) bool marks tokens the PPO clip already clips; they are neither
    eligible nor picked (they still count in N, as in verl).
    """
    advantages, logprobs = advantages.detach(), logprobs.detach()
    cov = covariance(advantages, logprobs, mask)  # (B, T)
    eligible = (mask > 0) & (cov > lb) & (cov < ub)
    if clipped is not None:
        eligible &= ~clipped
    keep = torch.ones(mask.numel(), dtype=mask.dtype, device=mask.device)  # flat (B * T,)
    candidates = eligible.flatten().nonzero().squeeze(-1)  # flat indices, row-major
    if candidates.numel() > 0:
        count = max(1, math.floor(ratio * float(mask.sum())))
        order = torch.randperm(candidates.numel(), generator=generator).to(candidates.device)
        keep[candidates[order[:count]]] = 0
    return keep.view(mask.shape)

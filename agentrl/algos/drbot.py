"""Dr.BoT's row filters beyond zero variance and truncation, as SPEAR's authors run them.

docs/algorithms.md#spear. Pure functions of a batch's rewards, groups and token ids that say
which rows stay in the loss (``(B,)`` bool); ``spear`` combines them. They read no config and
touch nothing else.

- ``top_std_groups``: keep the groups whose reward standard deviation is among the highest
  ``ratio`` of the batch's groups (the reference keeps the top 75%: a group with more spread
  carries more signal); ties keep the earlier group.
- ``repetitive_rows``: a row whose generated tokens hold some ``n``-gram of token ids at least
  ``count`` times (the reference: 20-grams, 10 times).
"""

from __future__ import annotations

import math

import torch


def top_std_groups(rewards: torch.Tensor, groups: torch.Tensor, ratio: float) -> torch.Tensor:
    """(B,) True for rows whose group is among the ``ceil(ratio x groups)`` with the largest
    population standard deviation of ``rewards``."""
    zeros = rewards.new_zeros(int(groups.max()) + 1)  # on the batch's device, in its dtype
    size = zeros.clone().index_add_(0, groups, torch.ones_like(rewards))
    mean = zeros.clone().index_add_(0, groups, rewards) / size.clamp(min=1)
    var = zeros.clone().index_add_(0, groups, (rewards - mean[groups]) ** 2) / size.clamp(min=1)
    present = (size > 0).nonzero().squeeze(-1)
    keep = math.ceil(ratio * present.numel())
    spread = var.tolist()
    order = sorted(present.tolist(), key=lambda g: (-spread[g], g))  # largest spread first, then earlier
    kept = torch.zeros(len(zeros), dtype=torch.bool, device=groups.device)
    kept[order[:keep]] = True
    return kept[groups]


def repetitive_rows(token_ids: torch.Tensor, mask: torch.Tensor, n: int, count: int) -> torch.Tensor:
    """(B,) True for rows whose generated tokens (``mask`` 1) repeat some ``n``-gram ``count``
    times or more (occurrences may overlap, as a sliding window counts them)."""
    flags = []
    for row in range(token_ids.shape[0]):
        ids = token_ids[row][mask[row] > 0].tolist()
        seen: dict[tuple[int, ...], int] = {}
        repeated = False
        for start in range(len(ids) - n + 1):
            gram = tuple(ids[start : start + n])
            seen[gram] = seen.get(gram, 0) + 1
            if seen[gram] >= count:
                repeated = True
                break
        flags.append(repeated)
    return torch.tensor(flags, dtype=torch.bool, device=token_ids.device)

"""Micro-batches: which rows share a forward/backward pass, and how their outputs come back.

Owns the packing rule (docs/algorithms.md#micro-batches). Rows are ordered by real length,
longest first (ties by row index, so the plan is deterministic), and packed greedily: a
micro-batch takes the next row while its padded size, rows x its longest row, stays within
``max_tokens`` and it holds fewer than ``max_rows`` rows; a row longer than ``max_tokens``
goes alone. Each micro-batch is then cut to its own longest row (``TokenBatch.columns``), so
no pass computes over padding that one long row elsewhere forced on the whole rollout batch.

Losses are normalised by counts over the whole optimizer batch (``GlobalCounts``), and every
objective's loss is a sum over rows, so the packing changes the order of a sum and nothing
else. ``gather`` puts per-micro-batch ``(b, t)`` outputs back at their rows and positions
(0 past a row's length). Knows nothing of objectives or models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from agentrl.batch import TokenBatch


@dataclass(frozen=True)
class MicroBatch:
    index: torch.Tensor  # (b,) long: the rows of the parent batch
    batch: TokenBatch  # those rows, cut to the longest of them


def plan(lengths: Sequence[int], max_rows: int, max_tokens: int | None) -> list[list[int]]:
    """Row indices per micro-batch under the packing rule (see the module docstring)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    groups: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = max(lengths[current[0]], 1) if current else 0
        full = len(current) >= max_rows or (max_tokens is not None and (len(current) + 1) * longest > max_tokens)
        if current and full:
            groups.append(current)
            current = []
        current.append(i)
    if current:
        groups.append(current)
    return groups


def micro_batches(batch: TokenBatch, max_rows: int, max_tokens: int | None) -> list[MicroBatch]:
    """``batch`` packed into micro-batches, each cut to its longest row."""
    lengths = [int(n) for n in batch.seq_lengths.tolist()]
    out = []
    for rows in plan(lengths, max_rows, max_tokens):
        index = torch.tensor(rows, dtype=torch.long, device=batch.input_ids.device)
        out.append(MicroBatch(index, batch.rows(index).columns(max(lengths[rows[0]], 1))))
    return out


def gather(parts: Sequence[torch.Tensor], micro: Sequence[MicroBatch], like: torch.Tensor) -> torch.Tensor:
    """The ``(B, T)`` tensor shaped as ``like`` holding each micro-batch's ``(b, t)`` part."""
    out = torch.zeros(like.shape, dtype=parts[0].dtype, device=parts[0].device)
    for part, mb in zip(parts, micro, strict=True):
        out[mb.index, : part.shape[1]] = part
    return out

"""Accumulating metrics across micro-batches and optimizer steps.

Owns the reduction convention of ``agentrl.algos.core``: keys ending in ``/max`` reduce
with max, ``/min`` with min, everything else adds up across the micro-batches of one
optimizer step; across optimizer steps values are averaged (max / min stay extreme).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import torch

from agentrl.algos.core import effective_sample_size


def _reduce(key: str, a: float, b: float) -> float:
    if key.endswith("/max"):
        return max(a, b)
    if key.endswith("/min"):
        return min(a, b)
    return a + b


class StepMetrics:
    """Metrics of one optimizer step, summed over its micro-batches."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def add(self, metrics: Mapping[str, torch.Tensor | float]) -> None:
        for key, value in metrics.items():
            v = float(value)
            self.values[key] = _reduce(key, self.values[key], v) if key in self.values else v


class RunningMetrics:
    """Averages over optimizer steps (extremes for /max and /min keys), plus counters."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = defaultdict(int)
        self.extra: dict[str, float] = {}

    def add_step(self, step: Mapping[str, float]) -> None:
        for key, value in step.items():
            if key.endswith(("/max", "/min")):
                self.sums[key] = _reduce(key, self.sums[key], value) if key in self.sums else value
                self.counts[key] = 1
            else:
                self.sums[key] = self.sums.get(key, 0.0) + value
                self.counts[key] += 1

    def set(self, key: str, value: float) -> None:
        self.extra[key] = float(value)

    def result(self) -> dict[str, float]:
        out = {key: self.sums[key] / self.counts[key] for key in self.sums}
        out.update(self.extra)
        return out


def behavior_weight_stats(
    loss_mask: torch.Tensor, old_logprobs: torch.Tensor, behavior: torch.Tensor
) -> dict[str, float]:
    """How far the sampler's policy mu is from pi_old, for any objective: the effective sample
    size of the sequence weights ``prod_t pi_old / mu`` (as a fraction of the rows with sampled
    tokens) and the tails of the token ratios ``pi_old / mu``. Inputs are (B, T)."""
    sampled = loss_mask > 0
    rows = sampled.any(-1)
    if not bool(rows.any()):
        return {}
    log_r = ((old_logprobs - behavior) * loss_mask).detach()  # (B, T)
    seq = log_r.sum(-1)[rows]  # (B',)
    ratios = log_r[sampled].exp()
    return {
        "offpolicy/ess_frac": float(effective_sample_size(seq)) / int(rows.sum()),
        "offpolicy/seq_log_weight/max": float(seq.max()),
        "offpolicy/seq_log_weight/min": float(seq.min()),
        "offpolicy/token_ratio/max": float(ratios.max()),
        "offpolicy/token_ratio/min": float(ratios.min()),
        "offpolicy/token_ratio_p99": float(torch.quantile(ratios.float(), 0.99)),
        "offpolicy/frac_outside_0.5_2": float(((ratios < 0.5) | (ratios > 2)).float().mean()),
    }

"""``asymre``: asymmetric REINFORCE, a group-mean baseline lowered by ``beta``.

docs/algorithms.md#asymre (Arnal et al. 2025, "Asymmetric REINFORCE for
off-policy RL"). ``A = R - (mean(R of the group) - beta)``, ``beta = 0.1``: a baseline below
the mean shifts every advantage up by ``beta``, which tempers negative rewards relative to
positive ones; the loss is REINFORCE's ``-A log pi`` (token-mean). ``beta = 0`` is
``reinforce``; ``beta`` may be negative.

Singleton group (reading, documented, a config flag): the default gives ``A = 0``, as every
group estimator here (nothing to compare against); ``singleton=beta`` applies the formula
literally (``mean = R``, so ``A = beta``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agentrl.algos.advantages import group_baseline
from agentrl.algos.base import ObjectiveConfig
from agentrl.algos.core import broadcast, group_size
from agentrl.algos.registry import register
from agentrl.algos.reinforce import Reinforce
from agentrl.batch import TokenBatch
from agentrl.config import check_choice, option


@dataclass
class AsymREConfig(ObjectiveConfig):
    beta: float = option(0.1, "the baseline is the group mean minus beta (beta > 0 favours positive rewards)")
    singleton: str = option("zero", "advantage of a singleton group: zero, or beta (the formula with mean = R)")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(type(self).__name__, "singleton", self.singleton, ("zero", "beta"))


def asymmetric_baseline(rewards: torch.Tensor, groups: torch.Tensor, beta: float, singleton: str) -> torch.Tensor:
    """(B,) ``R - (mean - beta)``; a singleton group gets 0 or ``beta`` (``singleton``)."""
    shift = torch.full_like(rewards, beta)
    if singleton == "zero":
        shift = torch.where(group_size(groups) > 1, shift, torch.zeros_like(shift))
    return group_baseline(rewards, groups) + shift


@register
class AsymRE(Reinforce):
    name = "asymre"
    description = "AsymRE: REINFORCE with the baseline group mean - beta, -A log pi"
    config_cls = AsymREConfig

    def advantages(self, batch: TokenBatch) -> torch.Tensor:
        c = self.config
        assert isinstance(c, AsymREConfig)
        return broadcast(asymmetric_baseline(batch.rewards, batch.group_index, c.beta, c.singleton), batch.loss_mask)

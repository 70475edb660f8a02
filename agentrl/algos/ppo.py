"""``ppo``: PPO with a value head, GAE advantages and a clipped value loss.

GAE with ``gamma = lambda = 1`` by default; observation tokens pass value and advantage
through (``agentrl.algos.advantages.gae``). Value loss
``0.5 max((V - G)^2, (clip(V, V_old +- eps_v) - G)^2)`` per generated token, weighted
by ``vf_coef`` and aggregated with the policy loss. The GAE returns ``G`` are computed with
the advantages, on the whole rollout batch, and travel as ``PPOPrepared``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agentrl.algos.advantages import gae
from agentrl.algos.base import Algorithm, LossInputs
from agentrl.algos.clip import ClipConfig, ppo_token_loss
from agentrl.algos.core import GlobalCounts, token_mean
from agentrl.algos.registry import register
from agentrl.batch import Prepared, TokenBatch
from agentrl.config import check_range, option


@dataclass
class PPOConfig(ClipConfig):
    gamma: float = option(1.0, "GAE discount")
    lam: float = option(1.0, "GAE lambda")
    vf_coef: float = option(0.5, "weight of the value loss")
    value_clip: float = option(0.2, "eps_v: the value prediction is clipped to V_old +- value_clip")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("ppo", "gamma", self.gamma, 0, 1)
        check_range("ppo", "lam", self.lam, 0, 1)


@dataclass(frozen=True)
class PPOPrepared(Prepared):
    returns: torch.Tensor  # (B, T) GAE returns G, the value loss's target


def clipped_value_loss(values: torch.Tensor, old: torch.Tensor, returns: torch.Tensor, clip: float) -> torch.Tensor:
    """``0.5 max((V - G)^2, (clip(V, V_old +- clip) - G)^2)`` per position."""
    clipped = old + (values - old).clamp(-clip, clip)
    return 0.5 * torch.maximum((values - returns) ** 2, (clipped - returns) ** 2)


@register
class PPO(Algorithm):
    name = "ppo"
    description = "PPO: GAE from a value head, clipped surrogate and clipped value loss"
    config_cls = PPOConfig

    @property
    def needs_value_head(self) -> bool:
        return True

    def gae(self, batch: TokenBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) advantages and returns from the value head's predictions before the update."""
        if batch.old_values is None:
            raise ValueError("ppo needs the value head's predictions (old_values)")
        c = self.config
        assert isinstance(c, PPOConfig)
        return gae(batch.rewards, batch.old_values, batch.loss_mask, c.gamma, c.lam)

    def advantages(self, batch: TokenBatch) -> torch.Tensor:
        return self.gae(batch)[0]

    def with_advantages(self, batch: TokenBatch) -> TokenBatch:
        advantages, returns = self.gae(batch)
        return batch.with_fields(advantages=advantages, prepared=PPOPrepared(returns))

    def token_loss(
        self, inputs: LossInputs, batch: TokenBatch, counts: GlobalCounts
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.config
        assert isinstance(c, PPOConfig)
        mask = batch.loss_mask
        per_token, metrics = ppo_token_loss(
            inputs.logprobs, batch.require("old_logprobs"), batch.require("advantages"), mask, c, counts
        )
        if inputs.values is None:
            return per_token, metrics
        returns, old = batch.prepared_as(PPOPrepared).returns, batch.old_values
        assert old is not None
        value_loss = clipped_value_loss(inputs.values, old, returns, c.value_clip)
        metrics["loss/value"] = token_mean(value_loss.detach(), mask, counts)
        return per_token + c.vf_coef * value_loss, metrics

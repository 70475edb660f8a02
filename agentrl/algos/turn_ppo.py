"""``turn_ppo``: PPO with turn-level importance ratios (Turn-PPO of ST-PPO, arXiv 2511.20718).

docs/algorithms.md#turn_ppo. Owns the turn ratio (``turn_log_ratio``), the critic-free advantage
choice shared by the section-3 objectives (``TurnPPOConfig``, ``group_advantages``) and the
``turn_ppo`` algorithm. It does not touch the clipped surrogate (``clip.ppo_token_loss``) nor
the clipping-bias correction (``s_ppo``); ``st_ppo`` composes this module with ``s_ppo``.

For turn ``k`` of trajectory ``i`` (a contiguous run of ``batch.turn_index == k`` on generated
tokens), ``rho_{i,k} = exp(mean_{t in k} log r_{i,t})``, the geometric mean of the turn's token
ratios. Every token of the turn uses it in the clipped surrogate, in the "sequence-level with
per-token gradient" form ``s_{i,t} = sg(rho_{i,k}) pi_theta(t) / sg(pi_theta(t))``, i.e.
``log s = sg(log rho_k) + log pi - sg(log pi)``: the value is the turn ratio, the gradient
flows through each token's own logprob, so advantages may vary per token. Reductions: a
single turn per row is GSPO-style sequence-level PPO; one-token turns are token-level PPO; at
``r == 1`` the gradient is the policy gradient. The ``ratio/*`` and ``loss/clipfrac_*``
metrics describe the turn ratios.

Deviations and readings:

- Advantages are group-relative (critic-free): ``advantage=group_norm`` (default) is GRPO's
  ``(R - mean) / (std + 1e-6)`` with the *unbiased* group std (singleton: 0); ``group`` is
  ``R - mean``. The paper uses PPO with a critic and GAE; GAE is not offered here because
  ``needs_value_head`` is a class-level flag (a config-selected value head would need it to
  become a property in ``base.py``).
- A generated token whose ``turn_index`` is -1 (should not happen) keeps its own token ratio.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agentrl.algos.advantages import group_baseline, group_normalized
from agentrl.algos.base import Algorithm, LossInputs
from agentrl.algos.clip import ClipConfig, ppo_token_loss
from agentrl.algos.core import GlobalCounts, broadcast, turn_mean
from agentrl.algos.registry import register
from agentrl.batch import TokenBatch
from agentrl.config import check_choice, option

ADVANTAGES: tuple[str, ...] = ("group_norm", "group")


@dataclass
class TurnPPOConfig(ClipConfig):
    advantage: str = option("group_norm", "critic-free advantage: group_norm ((R - mean) / std) or group (R - mean)")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(type(self).__name__, "advantage", self.advantage, ADVANTAGES)


def group_advantages(batch: TokenBatch, mode: str) -> torch.Tensor:
    """(B, T) group-relative advantages broadcast over generated tokens."""
    if mode == "group_norm":
        a = group_normalized(batch.rewards, batch.group_index)
    elif mode == "group":
        a = group_baseline(batch.rewards, batch.group_index)
    else:
        raise ValueError(f"unknown advantage {mode!r}; choose one of {', '.join(ADVANTAGES)}")
    return broadcast(a, batch.loss_mask)


def turn_log_ratio(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, turn_index: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """(B, T) ``log s = sg(log rho_turn) + log pi - sg(log pi)`` on generated tokens, 0 elsewhere."""
    token_log_ratio = ((logprobs - old_logprobs) * mask).detach()  # (B, T)
    log_rho = turn_mean(token_log_ratio, turn_index, mask)  # (B, T), constant over each turn
    return (log_rho + logprobs - logprobs.detach()) * mask


@register
class TurnPPO(Algorithm):
    name = "turn_ppo"
    description = "Turn-PPO: PPO clip on turn-level ratios (geometric mean per turn), group advantages"
    old_logprobs_in_loss_only = True
    config_cls = TurnPPOConfig

    def advantages(self, batch: TokenBatch) -> torch.Tensor:
        assert isinstance(self.config, TurnPPOConfig)
        return group_advantages(batch, self.config.advantage)

    def token_loss(
        self, inputs: LossInputs, batch: TokenBatch, counts: GlobalCounts
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        assert isinstance(self.config, TurnPPOConfig)
        mask = batch.loss_mask
        old, advantages = batch.require("old_logprobs"), batch.require("advantages")
        log_ratio = turn_log_ratio(inputs.logprobs, old, batch.turn_index, mask)
        return ppo_token_loss(inputs.logprobs, old, advantages, mask, self.config, counts, log_ratio=log_ratio)

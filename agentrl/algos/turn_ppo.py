"""``turn_ppo``: PPO with turn-level importance ratios (Turn-PPO of ST-PPO, arXiv 2511.20718).

docs/algorithms.md#turn_ppo. Owns the turn ratio (``turn_log_ratio``), the advantages shared by
the section-3 objectives (``TurnPPOConfig``, ``TurnAdvantages``: group-relative or a turn-level
critic) and the ``turn_ppo`` algorithm. It does not touch the clipped surrogate (``clip.ppo_token_loss``) nor
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

Advantages (``advantage``, shared by ``turn_ppo``, ``s_ppo`` and ``st_ppo``):

- ``gae``: the paper's critic, at the turn level. A value head predicts ``V_k`` at each turn's
  first generated token (the state before the turn); turn-level GAE
  (``advantages.turn_gae``, ``gamma`` and ``lam``) gives every token of turn ``k`` the turn's
  advantage ``A_k``; the value loss is PPO's clipped one (``value_clip``, ``vf_coef``) against
  ``G_k = A_k + V_k`` at each turn's first token, weighted by the turn's length, so it counts as
  if every token of the turn carried it. Reading: the paper defines the value per turn but not
  which token holds it; the first token's is the state the turn is sampled from.
- ``group_norm`` (default, critic-free): GRPO's ``(R - mean) / (std + 1e-6)`` with the
  *unbiased* group std (singleton: 0); ``group``: ``R - mean``.

A generated token whose ``turn_index`` is -1 (should not happen) keeps its own token ratio.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agentrl.algos.advantages import group_baseline, group_normalized, turn_gae
from agentrl.algos.base import Algorithm, LossInputs
from agentrl.algos.clip import ClipConfig, ppo_token_loss
from agentrl.algos.core import GlobalCounts, broadcast, masked_max, token_mean, turn_mean
from agentrl.algos.ppo import clipped_value_loss
from agentrl.algos.registry import register
from agentrl.batch import Prepared, TokenBatch
from agentrl.config import check_choice, check_range, option

ADVANTAGES: tuple[str, ...] = ("group_norm", "group", "gae")


@dataclass
class TurnPPOConfig(ClipConfig):
    advantage: str = option(
        "group_norm",
        "group_norm ((R - mean) / std), group (R - mean), or gae (a turn-level critic: a value head and "
        "turn-level GAE)",
    )
    gamma: float = option(1.0, "gae: discount per turn")
    lam: float = option(1.0, "gae: lambda per turn")
    vf_coef: float = option(0.5, "gae: weight of the value loss")
    value_clip: float = option(0.2, "gae: the value prediction is clipped to V_old +- value_clip")

    def __post_init__(self) -> None:
        super().__post_init__()
        owner = type(self).__name__
        check_choice(owner, "advantage", self.advantage, ADVANTAGES)
        check_range(owner, "gamma", self.gamma, 0, 1)
        check_range(owner, "lam", self.lam, 0, 1)
        check_range(owner, "vf_coef", self.vf_coef, 0)
        check_range(owner, "value_clip", self.value_clip, 0)


@dataclass(frozen=True)
class TurnValuePrepared(Prepared):
    returns: torch.Tensor  # (B, T) the turn's return G_k on each of its tokens
    weights: torch.Tensor  # (B, T) the turn's length at its first token, 0 elsewhere


def group_advantages(batch: TokenBatch, mode: str) -> torch.Tensor:
    """(B, T) group-relative advantages broadcast over generated tokens."""
    if mode == "group_norm":
        a = group_normalized(batch.rewards, batch.group_index)
    elif mode == "group":
        a = group_baseline(batch.rewards, batch.group_index)
    else:
        raise ValueError(f"unknown group advantage {mode!r}; choose group_norm or group")
    return broadcast(a, batch.loss_mask)


class TurnAdvantages(Algorithm):
    """The advantages of the section-3 objectives (``turn_ppo``, ``s_ppo``, ``st_ppo``):
    group-relative, or a turn-level critic (``advantage=gae``) with its value loss."""

    config_cls = TurnPPOConfig
    old_logprobs_in_loss_only = True  # advantages read rewards and old values only

    @property
    def turn_config(self) -> TurnPPOConfig:
        assert isinstance(self.config, TurnPPOConfig)
        return self.config

    @property
    def needs_value_head(self) -> bool:
        return self.turn_config.advantage == "gae"

    def advantages(self, batch: TokenBatch) -> torch.Tensor:
        c = self.turn_config
        if c.advantage != "gae":
            return group_advantages(batch, c.advantage)
        return self._turn_gae(batch)[0]

    def _turn_gae(self, batch: TokenBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if batch.old_values is None:
            raise ValueError(f"{self.name} with advantage=gae needs the value head's predictions (old_values)")
        c = self.turn_config
        return turn_gae(batch.rewards, batch.old_values, batch.loss_mask, batch.turn_index, c.gamma, c.lam)

    def with_advantages(self, batch: TokenBatch) -> TokenBatch:
        if self.turn_config.advantage != "gae":
            return super().with_advantages(batch)
        advantages, returns, weights = self._turn_gae(batch)
        return batch.with_fields(advantages=advantages, prepared=TurnValuePrepared(returns, weights))

    def with_value_loss(
        self,
        per_token: torch.Tensor,
        metrics: dict[str, torch.Tensor],
        inputs: LossInputs,
        batch: TokenBatch,
        counts: GlobalCounts,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``per_token`` plus the turn-level value loss (``advantage=gae``; else unchanged)."""
        c = self.turn_config
        if c.advantage != "gae" or inputs.values is None:
            return per_token, metrics
        prepared, old = batch.prepared_as(TurnValuePrepared), batch.old_values
        assert old is not None
        value_loss = clipped_value_loss(inputs.values, old, prepared.returns, c.value_clip) * prepared.weights
        metrics["loss/value"] = token_mean(value_loss.detach(), batch.loss_mask, counts)
        return per_token + c.vf_coef * value_loss, metrics


def turn_log_ratio(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, turn_index: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """(B, T) ``log s = sg(log rho_turn) + log pi - sg(log pi)`` on generated tokens, 0 elsewhere."""
    token_log_ratio = ((logprobs - old_logprobs) * mask).detach()  # (B, T)
    log_rho = turn_mean(token_log_ratio, turn_index, mask)  # (B, T), constant over each turn
    return (log_rho + logprobs - logprobs.detach()) * mask


def token_spread_metrics(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, mask: torch.Tensor
) -> dict[str, torch.Tensor]:
    """``ratio/token_abs_dev/max``: the largest ``|r_t - 1|`` of a single token's own ratio. The
    turn ratio is a geometric mean, so the clip bounds a turn's mean log-ratio, not each token's:
    one token of an n-token turn can move up to n times as far (in log-ratio) before its turn clips."""
    ratio = ((logprobs - old_logprobs) * mask).detach().exp()
    return {"ratio/token_abs_dev/max": masked_max((ratio - 1).abs(), mask)}


@register
class TurnPPO(TurnAdvantages):
    name = "turn_ppo"
    description = "Turn-PPO: PPO clip on turn-level ratios (geometric mean per turn), group or turn-GAE advantages"

    def token_loss(
        self, inputs: LossInputs, batch: TokenBatch, counts: GlobalCounts
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        mask = batch.loss_mask
        old, advantages = batch.require("old_logprobs"), batch.require("advantages")
        log_ratio = turn_log_ratio(inputs.logprobs, old, batch.turn_index, mask)
        per_token, metrics = ppo_token_loss(
            inputs.logprobs, old, advantages, mask, self.turn_config, counts, log_ratio=log_ratio
        )
        metrics |= token_spread_metrics(inputs.logprobs, old, mask)
        return self.with_value_loss(per_token, metrics, inputs, batch, counts)

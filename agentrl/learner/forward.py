"""Forward passes the learner needs: token logprobs, entropy and values, aligned with tokens.

Owns the alignment convention (``agentrl.algos.batch``): ``out[:, t]`` concerns token ``t``
predicted from the tokens before it; position 0 is 0. Logprobs use the same function as the
engines (``agentrl.engines.logprobs.sampling_logprobs``) with the batch's sampling
temperature, so the learner's pi_old compares like with like with the behaviour logprobs
(top-k / top-p filters are not applied in training: the policy gradient is of the full
tempered distribution).
"""

from __future__ import annotations

import torch
from torch import nn

from agentrl.engines.logprobs import sampling_logprobs


class ValueHead(nn.Module):
    """A linear value estimate from the last hidden state (ppo)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.linear = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, T)
        return self.linear(hidden).squeeze(-1)


def shift_right(per_position: torch.Tensor) -> torch.Tensor:
    """(B, T-1) values for tokens 1..T-1 -> (B, T) with 0 at position 0."""
    return torch.cat([per_position.new_zeros(per_position.shape[0], 1), per_position], dim=1)


def forward_tokens(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    temperature: float,
    *,
    with_entropy: bool = False,
    entropy_grad: bool = True,
    value_head: ValueHead | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """``(logprobs, entropy, values)``, each ``(B, T)`` or None, for ``input_ids`` ``(B, T)``.

    ``entropy_grad=False`` computes the entropy outside autograd (a metric only), which saves
    the backward pass through a ``(B, T, V)`` product."""
    out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=value_head is not None)
    logp_all = sampling_logprobs(out.logits[:, :-1], temperature if temperature > 0 else 1.0)  # (B, T-1, V)
    logprobs = shift_right(logp_all.gather(-1, input_ids[:, 1:, None]).squeeze(-1))
    entropy = None
    if with_entropy:
        with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
            entropy = shift_right(-(logp_all.exp() * logp_all).sum(-1))
    values = None
    if value_head is not None:
        hidden = out.hidden_states[-1][:, :-1]  # the state before each token t = 1..T-1
        values = shift_right(value_head(hidden.to(value_head.linear.weight.dtype)))
    return logprobs, entropy, values

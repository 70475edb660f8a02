"""Forward passes the learner needs: token logprobs, entropy and values, aligned with tokens.

Owns the alignment convention (``agentrl.batch``): ``out[:, t]`` concerns token ``t``
predicted from the tokens before it; position 0 is 0. Logprobs are those of the engines'
sampling distribution (``agentrl.engines.logprobs.sampling_logprobs``) at the batch's
temperature, so the learner's pi_old compares like with like with the behaviour logprobs
(top-k / top-p filters are not applied in training: the policy gradient is of the full
tempered distribution).

Owns also how the ``(B, T, V)`` logits are avoided. The model's base runs once and returns
the last hidden state; the output projection (``model.get_output_embeddings()``, the
lm_head, tied or not) is applied to ``logits_chunk`` positions at a time, and each chunk
yields only its ``(chunk,)`` logprobs (``z[y] - logsumexp(z)``, ``z`` the tempered logits)
and entropies (``logsumexp(z) - sum(softmax(z) * z)``). Under autograd each chunk runs in
``torch.utils.checkpoint`` (non-reentrant), so the backward recomputes one chunk's logits at
a time instead of keeping all of them: logits memory is O(chunk x V), not O(T x V), at the
price of one more lm_head product per chunk in the backward. A metric-only entropy is taken
under ``no_grad`` in the same chunk and keeps no graph. A model that does not expose a base
and an output projection, or that transforms its logits after the projection (Gemma-2's
``final_logit_softcapping``, Cohere's ``logit_scale``), and ``logits_chunk=0`` take the full
logits path: one ``model(...)`` call and a log-softmax over ``(B, T-1, V)``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from agentrl.engines.logprobs import sampling_logprobs

LOGITS_MIN, LOGITS_MAX = 2**23, 2**25
"""Bounds on the logits of one lm_head chunk when ``logits_chunk`` is None (32 and 128 MiB in
float32); see ``chunk_positions``."""

_POST_PROJECTION = ("final_logit_softcapping", "logit_scale")  # config fields that change logits after lm_head


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


def base_and_head(model: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    """The model's base (returns ``last_hidden_state``) and output projection, or None when the
    chunked path cannot reproduce the model's logits from them."""
    base, head = getattr(model, "base_model", None), None
    get_head = getattr(model, "get_output_embeddings", None)
    if callable(get_head):
        head = get_head()
    if not isinstance(base, nn.Module) or base is model or not isinstance(head, nn.Module):
        return None
    config = getattr(model, "config", None)
    if any(getattr(config, name, None) not in (None, 1.0) for name in _POST_PROJECTION):
        return None
    return base, head


def forward_tokens(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    temperature: float,
    *,
    with_entropy: bool = False,
    entropy_grad: bool = True,
    value_head: ValueHead | None = None,
    logits_chunk: int | None = None,
    positions: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """``(logprobs, entropy, values)``, each ``(B, T)`` or None, for ``input_ids`` ``(B, T)``.

    ``entropy_grad=False`` computes the entropy outside autograd (a metric only).
    ``logits_chunk`` positions (over all rows) share one lm_head product (None:
    ``chunk_positions``); 0 takes the full logits path. A batch that fits in one
    chunk is not checkpointed: there is nothing to save by recomputing it. ``positions``
    ``(B, T)`` bool, when given, are the tokens whose logprobs and entropies are wanted (the
    learner's loss mask): the output projection runs on them only, and every other token's
    logprob and entropy is 0 (on both paths). Values are computed at every position."""
    temperature = temperature if temperature > 0 else 1.0
    parts = base_and_head(model) if logits_chunk != 0 else None
    if parts is None:
        logprobs, entropy, values = _forward_full(
            model, input_ids, attention_mask, temperature, with_entropy, entropy_grad, value_head
        )
        if positions is not None:
            keep = positions.bool()
            logprobs = torch.where(keep, logprobs, 0.0)
            entropy = None if entropy is None else torch.where(keep, entropy, 0.0)
        return logprobs, entropy, values
    base, head = parts
    # no KV cache: nothing is decoded after a teacher-forced pass (a model's config may ask for one)
    hidden = base(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state[:, :-1]
    b, t = input_ids.shape[0], input_ids.shape[1] - 1
    flat, targets = hidden.reshape(b * t, hidden.shape[-1]), input_ids[:, 1:].reshape(b * t)  # (N, H), (N,)
    index = None if positions is None else positions[:, 1:].reshape(b * t).nonzero().squeeze(-1)  # (n,)
    if index is not None:
        flat, targets = flat[index], targets[index]
    grad = torch.is_grad_enabled()
    entropy_mode = "none" if not with_entropy else ("grad" if entropy_grad and grad else "metric")
    if logits_chunk is None:
        logits_chunk = chunk_positions(flat.shape[0], hidden.shape[-1], _vocab_size(head))
    chosen, ent = _chunked_stats(head, flat, targets, temperature, entropy_mode, logits_chunk)  # (n,), (n,)
    if index is not None:  # back to every position, 0 where not wanted
        chosen = chosen.new_zeros(b * t).index_copy(0, index, chosen)
        ent = ent.new_zeros(b * t).index_copy(0, index, ent) if with_entropy else ent
    logprobs = shift_right(chosen.reshape(b, t))
    entropy = shift_right(ent.reshape(b, t)) if with_entropy else None
    values = None
    if value_head is not None:  # the state before each token t = 1..T-1
        values = shift_right(value_head(hidden.to(value_head.linear.weight.dtype)))
    return logprobs, entropy, values


def _chunked_stats(
    head: nn.Module, flat: torch.Tensor, targets: torch.Tensor, temperature: float, entropy_mode: str, chunk: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logprobs, entropy)`` ``(n,)`` over ``flat`` ``(n, H)``, ``chunk`` positions per lm_head
    product, each chunk checkpointed when under autograd and there is more than one."""
    n = flat.shape[0]
    recompute = torch.is_grad_enabled() and n > chunk  # in one chunk there is nothing to save by recomputing
    pieces = []
    for start in range(0, max(n, 1), chunk):  # one empty chunk when there is nothing to compute
        args = (head, flat[start : start + chunk], targets[start : start + chunk], temperature, entropy_mode)
        pieces.append(checkpoint(_chunk_stats, *args, use_reentrant=False) if recompute else _chunk_stats(*args))
    return torch.cat([p[0] for p in pieces]), torch.cat([p[1] for p in pieces])


def chunk_positions(positions: int, hidden: int, vocab: int) -> int:
    """Positions per lm_head chunk by default: a chunk's logits hold as many numbers as the
    hidden states of the whole pass (``positions x hidden``), so the chunk costs no more
    memory than what the pass already holds, within ``[LOGITS_MIN, LOGITS_MAX]``, rounded up.

    The floor keeps the products efficient, and on CPU it keeps each chunk's buffers at 32 MiB
    or more, which glibc's malloc maps and unmaps; many smaller ones it keeps in its heap,
    where they fragmented it (measured with scripts/bench_logits_memory.py at V = 151,936:
    chunks of 27 positions grew a step's peak RSS by 2.9 GB at T = 2,048, chunks of 56 by
    143 MiB). At V = 151,936: 56 positions for a short pass, ``positions / 42`` for a 7B
    model's (H = 3,584) long one; at the default model's V = 400, a pass of up to 20,972
    positions is one chunk."""
    return max(1, -(-min(max(positions * hidden, LOGITS_MIN), LOGITS_MAX) // vocab))


def _vocab_size(head: nn.Module) -> int:
    weight = getattr(head, "weight", None)
    if not isinstance(weight, torch.Tensor):
        return 1
    return int(getattr(weight, "ds_shape", weight.shape)[0])  # ZeRO-3 partitions: ds_shape is the full one


def _chunk_stats(
    head: nn.Module, hidden: torch.Tensor, targets: torch.Tensor, temperature: float, entropy_mode: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logprobs, entropy)`` ``(n,)`` of ``targets`` ``(n,)`` from ``hidden`` ``(n, H)``; the
    entropy is empty for ``entropy_mode="none"`` and graph-free for ``"metric"``."""
    z = head(hidden)  # (n, V)
    if z.dtype in (torch.float16, torch.bfloat16):  # the upcast sampling_logprobs makes
        z = z.float()
    if temperature != 1.0:
        z = z / temperature
    lse = torch.logsumexp(z, dim=-1)  # (n,)
    logprobs = z.gather(-1, targets[:, None]).squeeze(-1) - lse
    if entropy_mode == "none":
        return logprobs, lse.new_empty(0)
    # after the logprobs, so the checkpoint's recompute stops before a metric-only entropy
    with torch.set_grad_enabled(entropy_mode == "grad" and torch.is_grad_enabled()):
        entropy = lse - (torch.softmax(z, dim=-1) * z).sum(-1)
    return logprobs, entropy


def _forward_full(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    temperature: float,
    with_entropy: bool,
    entropy_grad: bool,
    value_head: ValueHead | None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """The reference path: the model's full ``(B, T, V)`` logits, one log-softmax over them."""
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        output_hidden_states=value_head is not None,
        use_cache=False,
    )
    logp_all = sampling_logprobs(out.logits[:, :-1], temperature)  # (B, T-1, V)
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

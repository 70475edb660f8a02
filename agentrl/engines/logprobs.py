"""Which logprobs a sample carries, computed in one place for sampling and for scoring.

A sampled token's logprob is taken under the distribution it was actually drawn from:
logits divided by the temperature, then top-k and top-p filtered, then renormalised
(greedy decoding, ``temperature = 0``, uses the unscaled logits). Engines call
``sampling_logprobs`` while sampling and ``teacher_forced_logprobs`` uses the same function
on a full forward pass, so the recorded behaviour logprobs and the learner's recomputed ones
compare like with like. Shapes: ``(B, V)`` logits, ``(B,)`` tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def process_logits(logits: torch.Tensor, temperature: float, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Temperature, then top-k, then top-p, on ``(..., V)`` float logits."""
    if temperature > 0 and temperature != 1.0:
        logits = logits / temperature
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        # drop a token when the tokens before it already hold top_p of the mass
        drop_sorted = (probs.cumsum(-1) - probs) >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sampling_logprobs(logits: torch.Tensor, temperature: float, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """``(..., V)`` log-probabilities of the sampling distribution, in float32 or wider
    (half-precision logits are upcast; float64 stays float64)."""
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    return torch.log_softmax(process_logits(logits, temperature, top_k, top_p), dim=-1)


@torch.no_grad()
def teacher_forced_logprobs(
    model: torch.nn.Module,
    sequences: Sequence[Sequence[int]],
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
) -> list[list[float]]:
    """For each sequence, the logprob of every token given its prefix (0.0 at position 0),
    from one full forward pass per sequence batch (right-padded)."""
    device = next(model.parameters()).device
    length = max(len(s) for s in sequences)
    ids = torch.zeros(len(sequences), length, dtype=torch.long, device=device)
    mask = torch.zeros_like(ids)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(list(seq), device=device)
        mask[row, : len(seq)] = 1
    logits = model(input_ids=ids, attention_mask=mask).logits  # (B, T, V)
    logprobs = sampling_logprobs(logits[:, :-1], temperature, top_k, top_p)  # (B, T-1, V)
    picked = logprobs.gather(-1, ids[:, 1:, None]).squeeze(-1)  # (B, T-1)
    return [[0.0, *picked[row, : len(seq) - 1].tolist()] for row, seq in enumerate(sequences)]

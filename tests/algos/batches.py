"""Small hand-made token batches for objective tests."""

from __future__ import annotations

import torch

from agentrl.algos import Algorithm, GlobalCounts, LossInputs
from agentrl.batch import TokenBatch


def make_batch(seed: int = 0, rows: int = 8, group: int = 2, length: int = 14, dtype=torch.float64) -> TokenBatch:
    """Rows with a prompt, two sampled turns separated by an observation, and padding."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(rows, length)
    turn = torch.full((rows, length), -1, dtype=torch.long)
    attention = torch.zeros(rows, length, dtype=torch.long)
    for i in range(rows):
        prompt = 2 + i % 3
        first = 2 + (i * 5) % 3
        gap = 1 + i % 2
        second = 1 + (i * 7) % 3
        end = prompt + first + gap + second
        mask[i, prompt : prompt + first] = 1
        turn[i, prompt : prompt + first] = 0
        mask[i, prompt + first + gap : end] = 1
        turn[i, prompt + first + gap : end] = 1
        attention[i, :end] = 1
    behavior = -torch.rand(rows, length, generator=g, dtype=dtype) * 3 * mask
    return TokenBatch(
        input_ids=torch.randint(0, 50, (rows, length), generator=g) * attention,
        attention_mask=attention,
        loss_mask=mask.to(dtype),
        behavior_logprobs=behavior,
        turn_index=turn,
        policy_version=torch.where(mask > 0, 0, -1),
        rewards=torch.rand(rows, generator=g, dtype=dtype).round(decimals=1),
        group_index=torch.arange(rows) // group,
        truncated=torch.zeros(rows, dtype=torch.bool),
        num_tool_calls=(calls := torch.randint(0, 4, (rows,), generator=g).to(dtype)),
        num_tool_turns=calls.clamp(max=1),  # one turn, parallel calls
    ).with_fields(
        old_logprobs=behavior.clone(),
        ref_logprobs=behavior.clone(),
        old_values=torch.randn(rows, length, generator=g, dtype=dtype) * mask,
    )


def leaf_inputs(batch: TokenBatch, shift: float = 0.0, seed: int = 1) -> LossInputs:
    """Leaf tensors standing in for the model's outputs; ``shift`` moves logprobs off-policy."""
    g = torch.Generator().manual_seed(seed)
    noise = shift * torch.randn(batch.loss_mask.shape, generator=g, dtype=batch.loss_mask.dtype)
    logprobs = (batch.old_logprobs + noise * batch.loss_mask).clone().requires_grad_(True)
    entropy = torch.rand(batch.loss_mask.shape, generator=g, dtype=batch.loss_mask.dtype).requires_grad_(True)
    values = None if batch.old_values is None else (batch.old_values + noise).clone().requires_grad_(True)
    return LossInputs(logprobs=logprobs, entropy=entropy, values=values)


def prepared(algo: Algorithm, batch: TokenBatch) -> TokenBatch:
    """``batch`` as the learner hands it to the loss: advantages set, then prepared."""
    return algo.prepare(algo.with_advantages(batch))


def counts_of(algo: Algorithm, batch: TokenBatch) -> GlobalCounts:
    return GlobalCounts.of(batch.loss_mask, algo.config.norm_constant)

"""Supervised next-token training on chat conversations, loss on assistant turns only.

Owns the assistant-token mask (from the chat template's own rendering, by character spans)
and a plain training loop. Used to build the tiny and default models; it is not RL and
knows nothing of rewards, engines or environments.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import torch

Conversation = Sequence[dict[str, str]]


def assistant_spans(tokenizer: Any, messages: Conversation) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of its assistant turns (the
    content and the template's end-of-turn text), from prefix renders."""
    text = tokenizer.apply_chat_template(list(messages), tokenize=False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(tokenizer.apply_chat_template(list(messages[:i]), tokenize=False, add_generation_prompt=True))
        end = len(tokenizer.apply_chat_template(list(messages[: i + 1]), tokenize=False))
        spans.append((start, end))
    return text, spans


def encode_for_sft(tokenizer: Any, messages: Conversation) -> tuple[list[int], list[int]]:
    """``(token_ids, labels_mask)``: 1 on tokens inside assistant spans."""
    text, spans = assistant_spans(tokenizer, messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    mask = [int(any(a <= start < b for a, b in spans)) for start, _ in enc["offset_mapping"]]
    return list(enc["input_ids"]), mask


def train(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[Conversation],
    *,
    steps: int,
    lr: float = 2e-3,
    batch_size: int = 64,
    seed: int = 0,
    on_step: Callable[[int, float], bool | None] | None = None,
    micro_batch_size: int | None = None,
) -> list[float]:
    """AdamW on assistant tokens. ``on_step(step, loss)`` may return True to stop early.

    Each step draws ``batch_size`` conversations uniformly. With ``micro_batch_size``, the
    batch is sorted by length and run in micro-batches of that many rows, each padded only to
    its own longest row, their gradients weighted by their share of the batch's target tokens:
    the same gradient as one padded batch, without the cost of padding short conversations to
    the length of long ones."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    encoded = [encode_for_sft(tokenizer, c) for c in conversations]
    pad = tokenizer.pad_token_id
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    losses: list[float] = []
    for step in range(1, steps + 1):
        model.train()
        batch = [encoded[rng.randrange(len(encoded))] for _ in range(batch_size)]
        batch.sort(key=lambda item: len(item[0]))
        size = micro_batch_size or batch_size
        total = sum(_targets(mask) for _, mask in batch)
        optimizer.zero_grad()
        value = 0.0
        for first in range(0, batch_size, size):
            chunk = batch[first : first + size]
            weight = sum(_targets(mask) for _, mask in chunk) / max(total, 1)
            if weight:  # a chunk with no target token has no loss (HF's mean would be 0/0)
                loss = _chunk_loss(model, chunk, pad) * weight
                loss.backward()
                value += loss.item()
        optimizer.step()
        losses.append(value)
        if on_step is not None and on_step(step, losses[-1]):
            break
    model.eval()
    return losses


def _targets(mask: list[int]) -> int:
    """Tokens a causal LM loss predicts: the masked ones after the first position."""
    return sum(mask[1:])


def _chunk_loss(model: Any, chunk: list[tuple[list[int], list[int]]], pad: int) -> torch.Tensor:
    """The mean next-token loss over ``chunk``'s target tokens, rows right-padded."""
    length = max(len(ids) for ids, _ in chunk)
    ids = torch.full((len(chunk), length), pad)
    labels = torch.full((len(chunk), length), -100)
    attention = torch.zeros((len(chunk), length), dtype=torch.long)
    for row, (tokens, mask) in enumerate(chunk):
        ids[row, : len(tokens)] = torch.tensor(tokens)
        attention[row, : len(tokens)] = 1
        labels[row, : len(tokens)] = torch.where(torch.tensor(mask) > 0, torch.tensor(tokens), -100)
    return model(input_ids=ids, attention_mask=attention, labels=labels).loss

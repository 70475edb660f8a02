"""What the learner computed for each token of a rollout batch, kept for the episode store.

Owns ``TokenTrace``: per row and token of the batch, from the last loss pass over that row
(the last epoch's), the current logprob, the ratio to pi_old, the advantage, the entropy, the
token's ``weight`` and whether the objective kept it (``in_loss``) or its clip removed it
(``clipped``). The weight is minus the loss's gradient with respect to the token's logprob, times
the tokens in the loss: for token-mean objectives the advantage times whatever clip or importance
weight the objective applied, read off the real backward, so it holds for every registered
objective without asking it. ``clipped`` is a token in the loss with a non-zero advantage whose
weight is exactly zero; a KL or entropy term keeps a gradient on a clipped token, which is then
not marked.
"""

from __future__ import annotations

import torch

from agentrl.batch import TokenBatch

FIELDS = ("logprob", "ratio", "advantage", "entropy", "weight", "in_loss", "clipped")
_DIGITS = 5


class TokenTrace:
    """The per-token record of one rollout batch's update (CPU tensors of the batch's shape)."""

    def __init__(self, batch: TokenBatch):
        shape = tuple(batch.loss_mask.shape)
        self.values = {name: torch.zeros(shape, dtype=torch.float32) for name in FIELDS}
        self.seen = torch.zeros(shape[0], dtype=torch.bool)
        self.lengths = batch.seq_lengths.detach().cpu()
        self.offset = 0  # the first row of the optimizer (mini)batch the passes now cover

    def add(
        self,
        index: torch.Tensor,
        part: TokenBatch,
        logprobs: torch.Tensor,
        entropy: torch.Tensor | None,
        in_loss: torch.Tensor,
        tokens: float,
        gradient_scale: float = 1.0,
    ) -> None:
        """One loss pass over ``part`` (the rows ``index`` of the current minibatch), after its
        backward: ``logprobs.grad`` holds the gradient times ``gradient_scale``; ``tokens`` is the
        count of tokens in the optimizer batch's loss."""
        rows = (index.detach().cpu() + self.offset).long()
        width = logprobs.shape[1]
        mask = part.loss_mask[:, :width].detach().float().cpu()
        logp = logprobs.detach().float().cpu()
        grad = logprobs.grad.detach().float().cpu() if logprobs.grad is not None else torch.zeros_like(logp)
        weight = -grad * (tokens / gradient_scale)
        old = part.old_logprobs[:, :width].detach().float().cpu() if part.old_logprobs is not None else logp
        advantages = part.advantages[:, :width].detach().float().cpu() if part.advantages is not None else None
        kept = in_loss[:, :width].detach().float().cpu()
        new_advantage = advantages if advantages is not None else torch.zeros_like(logp)
        new = {
            "logprob": logp,
            "ratio": (logp - old).exp(),
            "advantage": new_advantage,
            "entropy": entropy.detach().float().cpu() if entropy is not None else torch.zeros_like(logp),
            "weight": weight,
            "in_loss": kept,
            "clipped": ((kept > 0) & (weight == 0) & (new_advantage != 0)).float(),
        }
        for name, value in new.items():
            self.values[name][rows, :width] = value * mask
        self.seen[rows] = True

    def rows(self) -> list[dict[str, list[float]] | None]:
        """Per row, each field over the row's tokens (0 off the loss mask); None for a row no
        pass covered (another rank's, under data parallelism)."""
        out: list[dict[str, list[float]] | None] = []
        for row in range(len(self.seen)):
            if not self.seen[row]:
                out.append(None)
                continue
            n = int(self.lengths[row])
            out.append({name: [round(x, _DIGITS) for x in v[row, :n].tolist()] for name, v in self.values.items()})
        return out

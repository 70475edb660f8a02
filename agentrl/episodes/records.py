"""One stored episode: a trajectory, its tokens as text, and what the learner computed for it.

Owns the record's shape (``record``), read by ``agentrl view`` and ``agentrl show``:

- the trajectory's outcome and conversation (reward and its components, correct, turns, tool
  calls, errors, ``messages``, ``info`` with its per-turn ``tool_log``), flat;
- ``tokens``: per token of the sample, its id, its text (``pieces``: the token decoded alone, so
  a character split across tokens shows as U+FFFD), the loss mask, the behaviour logprob, the turn
  and the policy version that sampled it;
- ``learner`` (training episodes, once the update ran): per token, the current logprob, the
  ratio to pi_old, the advantage, the entropy, ``weight`` (minus the loss's gradient with respect
  to the token's logprob, times the tokens in the loss: how hard the update pushed the token),
  ``in_loss`` (the objective kept the token: not removed by a group or row filter) and
  ``clipped`` (in the loss, but its weight is exactly 0: the clip or the objective's own rule
  removed it; with KL or an entropy bonus a clipped token keeps their gradient and is not marked).
  See ``agentrl.learner.trace``.
"""

from __future__ import annotations

from typing import Any

from agentrl.types import Trajectory


def staleness(trajectory: Trajectory, step: int) -> int:
    """How many versions behind the update that made step ``step`` the oldest sampled token is:
    that update trained the weights of version ``step - 1`` (0: on-policy)."""
    versions = [v for v, m in zip(trajectory.policy_version, trajectory.loss_mask, strict=True) if m and v >= 0]
    return max(0, step - 1 - min(versions)) if versions else 0


def record(
    trajectory: Trajectory,
    *,
    step: int,
    split: str,
    index: int,
    pieces: list[str],
    learner: dict[str, list[float]] | None = None,
) -> dict[str, Any]:
    """The stored form of ``trajectory``, the ``index``-th episode of ``step``'s ``split``."""
    t = trajectory
    return {
        "id": f"{split}-{step}-{index}",
        "step": step,
        "split": split,
        "env": t.env_id,
        "task_id": t.task_id,
        "group_id": t.group_id,
        "episode_id": t.episode_id,
        "sample_index": t.sample_index,
        "num_samples": t.num_samples,
        "reward": t.reward,
        "reward_components": t.reward_components,
        "correct": t.correct,
        "answer": t.answer,
        "turns": t.num_turns,
        "tool_calls": t.tool_calls,
        "tool_turns": t.tool_turns,
        "tool_errors": t.tool_errors,
        "tool_errors_by_kind": t.info.get("tool_errors_by_kind", {}),
        "parse_errors": t.parse_errors,
        "service_failures": t.tool_service_failures,
        "terminated": t.terminated,
        "truncated": t.truncated,
        "stop_reason": t.stop_reason,
        "error": t.error,
        "temperature": t.temperature,
        "staleness": staleness(t, step) if split == "train" else 0,
        "sampled_tokens": t.num_sampled_tokens,
        "has_learner": learner is not None,
        "messages": t.messages,
        "info": t.info,
        "tokens": {
            "ids": t.token_ids,
            "pieces": pieces,
            "mask": t.loss_mask,
            "behavior_logprob": [round(x, 5) for x in t.behavior_logprobs],
            "turn": t.turn_index,
            "version": t.policy_version,
        },
        "learner": learner,
    }


def token_pieces(tokenizer: Any, trajectories: list[Trajectory]) -> list[list[str]]:
    """Each token of each trajectory decoded alone, in one batched call."""
    flat = [[token] for t in trajectories for token in t.token_ids]
    texts = tokenizer.batch_decode(flat, skip_special_tokens=False) if flat else []
    out, at = [], 0
    for t in trajectories:
        out.append(texts[at : at + len(t.token_ids)])
        at += len(t.token_ids)
    return out


Trace = list[dict[str, list[float]] | None]
TABLE_TEXT = 2000  # characters of a prompt or response in a table row


def table_rows(trajectories: list[Trajectory], step: int, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` episodes as flat rows for a logger's table (wandb): the step, the task,
    the prompt and the whole response as text, the reward and how the episode went; spread over
    the list (every k-th), so that different tasks show."""
    if not trajectories or limit <= 0:
        return []
    stride = max(1, len(trajectories) // limit)
    rows = []
    for t in trajectories[::stride][:limit]:
        prompt = next((m.get("content", "") for m in t.messages if m.get("role") == "user"), "")
        turns = [m for m in t.messages if m.get("role") != "system"][1:]
        response = "\n".join(f"[{m.get('role')}] {m.get('content', '')}" for m in turns)
        rows.append(
            {
                "step": step,
                "task_id": t.task_id,
                "prompt": str(prompt)[:TABLE_TEXT],
                "response": response[:TABLE_TEXT],
                "reward": t.reward,
                "correct": t.correct,
                "turns": t.num_turns,
                "tool_calls": t.tool_calls,
                "tool_errors": t.tool_errors,
                "stop_reason": t.stop_reason,
            }
        )
    return rows


def per_trajectory(count: int, trace: Trace | None, source_rows: list[int] | None) -> Trace:
    """The learner's trace by trajectory: row ``r`` of the batch trained is trajectory
    ``source_rows[r]``; a trajectory the batch left out (non-finite, or too stale) has None."""
    out: Trace = [None] * count
    for row, values in zip(source_rows or [], trace or [], strict=False):
        out[row] = values
    return out


def records(
    trajectories: list[Trajectory],
    tokenizer: Any,
    *,
    step: int,
    split: str,
    learner: Trace | None = None,
) -> list[dict[str, Any]]:
    """The records of one step's ``split``; ``learner[i]`` is what the update computed for
    ``trajectories[i]`` (None: it did not train on it)."""
    pieces = token_pieces(tokenizer, trajectories)
    return [
        record(t, step=step, split=split, index=i, pieces=pieces[i], learner=learner[i] if learner else None)
        for i, t in enumerate(trajectories)
    ]

"""A made-up run for the viewer's tests: episodes with known rewards, turns, tool errors by
kind, staleness, truncation and learner values (a clipped token, a filtered one, a NaN), written
through the real record and store code (``agentrl.episodes``) with a stand-in tokenizer."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from agentrl.episodes import EpisodeWriter, records
from agentrl.types import Trajectory

VOCAB = {
    1: "<|im_start|>", 2: "user\n", 3: "What is 2+2?", 4: "<|im_end|>\n", 5: "assistant\n", 6: "tool\n4",
    10: "<calculator>", 11: "2+2", 12: "</calculator>", 13: "The answer", 14: " is 4.",
}  # fmt: skip
IDS = [1, 2, 3, 4, 1, 5, 10, 11, 12, 4, 1, 6, 4, 1, 5, 13, 14]
MASK = [0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1]
TURN = [-1] * 6 + [0, 0, 0] + [-1] * 6 + [1, 1]
CLIPPED_AT, FILTERED_AT = 7, 15  # token positions: clipped in episode 2 of a step, filtered in episode 1


class Tokenizer:
    def batch_decode(self, ids: list[list[int]], skip_special_tokens: bool = False) -> list[str]:
        return [VOCAB[i[0]] for i in ids]


def trajectory(step: int, i: int, split: str) -> Trajectory:
    version = max(0, step - 1 - i % 3) if split == "train" else step
    kinds = {"timeout": 1} if i % 8 == 0 else {"bad_args": 1} if i % 4 == 0 else {}
    reward = [0.0, 0.5, 1.0][i % 3]
    log = [{"turn": 0, "calls": [{"name": "calculator", "arguments": {"expression": "2+2"}}],
            "status": next(iter(kinds), "ok"), "seconds": 0.25}]  # fmt: skip
    return Trajectory(
        token_ids=IDS,
        loss_mask=MASK,
        behavior_logprobs=[-0.1 * (k % 5 + 1) if m else 0.0 for k, m in enumerate(MASK)],
        turn_index=TURN,
        policy_version=[version if m else -1 for m in MASK],
        reward=reward,
        reward_components={"correct": float(reward == 1.0), "format": 0.5},
        group_id=f"task-{i}@{step}",
        task_id=f"task-{i}",
        env_id="toy" if i % 2 == 0 else "toy2",
        episode_id=f"task-{i}@{step}/0",
        terminated=i != 5,
        truncated=i == 5,
        num_turns=1 + i % 3,
        messages=[
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "<calculator>2+2</calculator>"},
            {"role": "tool", "content": "4"},
            {"role": "assistant", "content": "The answer is 4."},
        ],
        temperature=1.0,
        stop_reason="truncated" if i == 5 else "terminated",
        tool_calls=1,
        tool_turns=1,
        tool_errors=sum(kinds.values()),
        answer="4",
        correct=None if i == 4 else reward == 1.0,
        info={"tool_errors_by_kind": kinds, "tool_log": log, "gold": "4"},
    )


def learner(t: Trajectory, i: int) -> dict[str, list[float]]:
    """What an update computed: per token, 0 off the mask."""
    on = [float(m) for m in t.loss_mask]
    logprob = [b - 0.01 * i if m else 0.0 for b, m in zip(t.behavior_logprobs, t.loss_mask, strict=True)]
    ratio = [math.exp(lp - b) if m else 0.0 for lp, b, m in zip(logprob, t.behavior_logprobs, t.loss_mask, strict=True)]
    advantage = [(t.reward - 0.5) * m for m in on]
    in_loss = [0.0 if (i == 1 and k == FILTERED_AT) else m for k, m in enumerate(on)]
    clipped = [1.0 if (i == 2 and k == CLIPPED_AT) else 0.0 for k in range(len(on))]
    weight = [0.0 if c or not keep else a * r for a, r, c, keep in zip(advantage, ratio, clipped, in_loss, strict=True)]
    entropy = [float("nan") if (i == 3 and k == 6) else 0.1 * (k % 4) * m for k, m in enumerate(on)]
    return {"logprob": logprob, "ratio": ratio, "advantage": advantage, "entropy": entropy,
            "weight": weight, "in_loss": in_loss, "clipped": clipped}  # fmt: skip


def write_step(run: Path, step: int, split: str, count: int) -> list[dict[str, Any]]:
    trajectories = [trajectory(step, i, split) for i in range(count)]
    trace = [learner(t, i) for i, t in enumerate(trajectories)] if split == "train" else None
    stored = records(trajectories, Tokenizer(), step=step, split=split, learner=trace)
    EpisodeWriter(run / "episodes").write(step, split, stored)
    return stored


def write_run(run: Path, steps: int = 3, per_step: int = 10, evals: int = 4) -> Path:
    """A run folder: train steps 1..``steps`` of ``per_step`` episodes, evaluations at step 0 and
    the last step, and a metrics.jsonl with some of ``agentrl plot``'s keys."""
    run.mkdir(parents=True, exist_ok=True)
    write_step(run, 0, "eval", evals)
    lines = [{"step": 0, "eval/accuracy": 0.25}]
    for step in range(1, steps + 1):
        write_step(run, step, "train", per_step)
        lines.append({"step": step, "rollout/reward_mean": 0.1 * step, "policy/entropy": 1.0 / step})
    write_step(run, steps, "eval", evals)
    lines[-1]["eval/accuracy"] = 0.5
    (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return run

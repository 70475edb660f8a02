"""``math``: single-turn math. The model answers once; the answer is checked.

Answers are read from ``\\boxed{}``, after ``####``, or after "answer is", and checked with
math-verify (gold first). Reward is 1.0 for a correct answer, else 0.0. No tools.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from agentrl.config import build
from agentrl.envs.base import Env, EnvSpec, StepResult, TurnCounter, new_info
from agentrl_envs.common import MathTaskConfig, MathTaskMixin


@dataclass
class MathConfig(MathTaskConfig):
    pass


class MathEnv(MathTaskMixin, Env):
    """Single-turn math word problems, answer checked with math-verify."""

    name: ClassVar[str] = "math"
    check_actions: ClassVar[tuple[str, ...]] = ("The answer is 3.", "\\boxed{12}")
    default_system_prompt = "Solve the problem. End with: The answer is N."

    options_cls = MathConfig

    def __init__(self, **config: Any):
        self.config = build(MathConfig, config, owner="math")
        self.rollout_spec = EnvSpec(max_turns=1)
        self.turns = TurnCounter(max_turns=1)

    def step(self, action: str) -> StepResult:
        turn = self.turns.advance(action)
        answer, components, status = self.grade(action)
        self.turns.done = True
        parse_error = "empty_output" if not action.strip() else (None if answer else "no_action")
        info = new_info(
            turn,
            answer=answer,
            reward_components=components,
            parse_error=parse_error,
            grader_status=status,
        )
        return [], components["correct"], True, False, info

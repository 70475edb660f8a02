"""``math_tool``: multi-turn math with a calculator (or, with ``tool=python``, a sandboxed
Python session per episode, as ``tool_use``'s).

Each turn the model either calls the calculator (its result comes back as a ``tool``
message and the episode goes on) or answers (the episode ends and the answer is checked
with math-verify). Call format is config: ``xml`` (``<calculator>12*7</calculator>``) or
``hermes`` (``<tool_call>{"name": "calculator", "arguments": {...}}</tool_call>``).

Defined outcomes for bad actions, each an observation plus ``info["parse_error"]``; the
episode goes on while turns remain and is truncated (reward 0) when they run out:

- empty text -> ``empty_output``; no call and no answer -> ``no_action``;
- an unclosed tag, broken JSON, an unknown tool, bad arguments, more than
  ``max_calls_per_turn`` calls -> ``malformed_call`` / ``invalid_json`` / ``unknown_tool`` /
  ``bad_args`` / ``too_many_calls``, and no call runs;
- a refused expression (``9**9**9``, names, oversized input) -> a ``tool`` message
  ``Error: ...`` with ``info["tool_status"] = "error"``.

``tool_delay_s`` makes every turn that runs the calculator take that much longer (``step``
sleeps, ``astep`` awaits without blocking other episodes): the latency of a remote tool, for
measuring training where rollouts wait on tools (``scripts/bench_async.py``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from agentrl.config import build, check_choice, check_range, option
from agentrl.envs.base import Env, EnvSpec, StepResult, TurnCounter, new_info
from agentrl.types import Message
from agentrl_envs.common import MathTaskConfig, MathTaskMixin
from agentrl_envs.tool_turn import close_tools, reopen_tools, take_turn
from agentrl_tools.base import Tool, tool_spec
from agentrl_tools.calculator import Limits
from agentrl_tools.parsers import FORMATS
from agentrl_tools.python_tool import PythonToolOptions

_VERBS = {"calculator": "Call the calculator", "python": "Run Python"}
_PYTHON_PROMPTS = {
    "xml": "Run Python by writing <python>CODE</python>; what it prints comes back to you. "
    "When you know the result, end with: The answer is N.",
    "hermes": 'Run Python with <tool_call>{"name": "python", "arguments": {"code": "..."}}</tool_call>; '
    "what it prints comes back to you. When you know the result, end with: The answer is N.",
}
_PROMPTS = {
    "xml": "Use the calculator by writing <calculator>EXPRESSION</calculator>; its result comes back to you. "
    "When you know the result, end with: The answer is N.",
    "hermes": "Call the calculator with "
    '<tool_call>{"name": "calculator", "arguments": {"expression": "..."}}</tool_call>; '
    "its result comes back to you. When you know the result, end with: The answer is N.",
}


@dataclass
class MathToolConfig(MathTaskConfig, PythonToolOptions):
    max_turns: int = option(4, "turn budget; the episode is truncated when it runs out")
    tool_format: str = option("xml", "tool-call format: xml or hermes")
    max_calls_per_turn: int = option(4, "more calls than this in one turn are refused (too_many_calls)")
    max_expression_length: int = option(512, "calculator: longest expression accepted, in characters")
    max_digits_result: int = option(100, "calculator: largest number accepted, in digits")
    tool_delay_s: float = option(0.0, "seconds each turn that calls the calculator waits (a remote tool's latency)")
    tool: str = option("calculator", "the tool: calculator, or python (a sandboxed session per episode, as tool_use's)")

    def __post_init__(self) -> None:
        super().__post_init__()
        PythonToolOptions.__post_init__(self)  # the python tool's sandbox and limits (tool=python)
        check_range("math_tool", "max_turns", self.max_turns, 1, 64)
        check_choice("math_tool", "tool_format", self.tool_format, FORMATS)
        check_range("math_tool", "max_calls_per_turn", self.max_calls_per_turn, 1)
        check_range("math_tool", "tool_delay_s", self.tool_delay_s, 0.0, 600.0)
        check_choice("math_tool", "tool", self.tool, ("calculator", "python"))


class MathToolEnv(MathTaskMixin, Env):
    """Multi-turn math with a calculator tool; answer checked with math-verify."""

    name: ClassVar[str] = "math_tool"
    check_actions: ClassVar[tuple[str, ...]] = (
        "<calculator>2+3</calculator>",
        "<calculator>9**9**9</calculator>",
        "The answer is 5.",
    )

    options_cls = MathToolConfig

    def __init__(self, **config: Any):
        self.config = build(MathToolConfig, config, owner="math_tool")
        c = self.config
        # tool=python: a sandbox that cannot start fails here, before any episode
        self.tools: dict[str, Tool] = reopen_tools({}, self._tool_options())
        tool = self.tools[c.tool]
        stop = f"</{c.tool}>" if c.tool_format == "xml" else "</tool_call>"
        self.rollout_spec = EnvSpec(max_turns=c.max_turns, stop_strings=(stop,), tools=(tool_spec(tool),))
        self.default_system_prompt = (_PROMPTS if c.tool == "calculator" else _PYTHON_PROMPTS)[c.tool_format]
        self.turns = TurnCounter(max_turns=c.max_turns)

    def _tool_options(self) -> dict[str, dict[str, Any]]:
        c = self.config
        if c.tool == "python":
            return {"python": c.tool_options()}
        return {"calculator": {"limits": Limits(max_length=c.max_expression_length, max_digits=c.max_digits_result)}}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[list[Message], dict]:
        if self.config.tool == "python":  # a fresh session: nothing of the last episode carries over
            self.tools = reopen_tools(self.tools, self._tool_options())
        return MathTaskMixin.reset(self, seed=seed, options=options)

    def close(self) -> None:
        close_tools(self.tools)

    def step(self, action: str) -> StepResult:
        result = asyncio.run(self._step(action))
        time.sleep(self._delay(result))
        return result

    async def astep(self, action: str) -> StepResult:
        result = await self._step(action)
        await asyncio.sleep(self._delay(result))
        return result

    def _delay(self, result: StepResult) -> float:
        """The tool latency this step owes: ``tool_delay_s`` if it ran the tool."""
        return self.config.tool_delay_s if result[4]["tool_calls"] else 0.0

    async def _step(self, action: str) -> StepResult:
        turn = self.turns.advance(action)
        c = self.config
        taken = await take_turn(
            action,
            self.tools,
            c.tool_format,
            max_calls=c.max_calls_per_turn,
            too_many=f"at most {c.max_calls_per_turn} calls per turn",
            empty_hint=f"Your reply was empty. {_VERBS[c.tool]} or give the answer.",
            in_order=c.tool == "python",
        )
        if taken.final is None:
            return self.turns.go_on(turn, taken.messages, truncated_components={"correct": 0.0}, **taken.info)
        answer, components, status = self.grade(action)
        if answer is None:
            return self._continue(
                turn,
                "user",
                f"{_VERBS[self.config.tool]} or end with: The answer is N.",
                parse_error="no_action",
            )
        self.turns.done = True
        info = new_info(turn, answer=answer, reward_components=components, grader_status=status)
        return [], components["correct"], True, False, info

    def _continue(self, turn: int, role: str, content: str, **info: Any) -> StepResult:
        message: Message = {"role": role, "content": content}
        return self.turns.go_on(turn, [message], truncated_components={"correct": 0.0}, **info)

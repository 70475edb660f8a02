"""``tool_use``: solve a task with tools, code in a sandboxed Python session above all.

Each turn the model either calls tools (``<python>code</python>``, ``<calculator>...``, or
Hermes ``<tool_call>`` JSON; several per turn, run in order), whose results come back as
``tool`` messages, or answers (``The answer is N.``), which ends the episode and is checked
against the gold answer (math-verify). A task names its tools (``meta["tools"]``, else the
``tools`` option). Turn outcomes follow ``agentrl_envs.tool_turn``; a call that times out or
kills its interpreter is an ``Error: ...`` observation with ``info["tool_status"]`` and the
session restarts. ``step`` never raises because of the model or the sandbox.

Tasks: ``source="code"`` (default), a seeded generator of problems that are easy with code
and hard in the head (``agentrl_envs.code_tasks``); ``source="bfcl:CATEGORY"``, function-calling
tasks from the installed ``bfcl-eval`` package (``agentrl_envs.bfcl``: the task's functions are
the tools, written in Hermes JSON; the first turn with calls ends the episode and is graded
against BFCL's possible answers, nothing runs); or a question file / ``hf:`` dataset
(``question``/``answer`` columns, as ``math``'s). Tools come from the ``agentrl.tools``
registry; the ``python`` tool's sandbox is the ``sandbox`` backend with the limits of
``PythonToolOptions`` (memory, processes, CPUs, disk, inodes, timeout, output cap), one
session per episode (closed by ``close`` and at the next ``reset``). A sandbox that cannot
start is a one-line error when the environment is made, before any episode runs.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from agentrl.config import build, check_choice, check_range, option
from agentrl.envs.base import Env, EnvSpec, StepResult, TurnCounter, new_info
from agentrl.errors import ConfigError
from agentrl.tasks import resolve
from agentrl.types import Message, Task
from agentrl_envs import bfcl
from agentrl_envs.code_tasks import FAMILIES, CodeTasks
from agentrl_envs.common import opening, pick_task
from agentrl_envs.grading import extract_answer, gold_answer, shared_grader
from agentrl_envs.tool_turn import close_tools, reopen_tools, take_turn
from agentrl_tools.base import Tool, tool_spec
from agentrl_tools.parsers import FORMATS, parse_tool_calls
from agentrl_tools.python_tool import PythonToolOptions

_BFCL_PROMPT = (
    "Answer the user by calling functions, each as "
    '<tool_call>{"name": "...", "arguments": {...}}</tool_call>; several calls are allowed. The functions: '
)
_BFCL_AGAIN = "Call the functions with <tool_call>...</tool_call>."
PROMPTS = {
    "xml": "Solve the problem. To run Python, write <python>CODE</python>; what it prints comes back to you, "
    "and variables persist between runs. When you know the result, end with: The answer is N.",
    "hermes": 'Solve the problem. To run Python, call <tool_call>{"name": "python", "arguments": {"code": "..."}}'
    "</tool_call>; what it prints comes back to you. When you know the result, end with: The answer is N.",
}


@dataclass
class ToolUseConfig(PythonToolOptions):
    source: str = option("code", "'code' (generated problems), a .jsonl/.parquet question file ({split}), or hf:NAME")
    num_tasks: int = option(500, "code: tasks per split")
    seed: int = option(0, "code: generator seed")
    families: str = option(",".join(FAMILIES), "code: comma-separated problem families")
    tools: str = option("python", "comma-separated tools (agentrl.tools names) for tasks that do not name theirs")
    question_key: str | None = option(None, "file/dataset: the question column")
    answer_key: str | None = option(None, "file/dataset: the answer column")
    max_turns: int = option(4, "turn budget; the episode is truncated when it runs out")
    max_calls_per_turn: int = option(4, "more calls than this in one turn are refused (too_many_calls)")
    tool_format: str = option("xml", "tool-call format: xml (<python>code</python>) or hermes (<tool_call>)")
    grader_timeout_s: float = option(5.0, "seconds before a math-verify check counts as wrong")
    system_prompt: str | None = option(None, "system message; None uses the environment's default")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("tool_use", "num_tasks", self.num_tasks, 1)
        check_range("tool_use", "max_turns", self.max_turns, 1, 64)
        check_range("tool_use", "max_calls_per_turn", self.max_calls_per_turn, 1)
        check_choice("tool_use", "tool_format", self.tool_format, FORMATS)
        if not self.tool_names:
            raise ConfigError("tool_use: tools must name at least one tool")

    @property
    def tool_names(self) -> tuple[str, ...]:
        return tuple(name.strip() for name in self.tools.split(",") if name.strip())


class ToolUseEnv(Env):
    """Problems that are easy with code: run Python in a sandbox, then answer."""

    name: ClassVar[str] = "tool_use"
    # a program is longer than a calculator call: 48 new tokens (train's default) cut most of them
    # off; these are configs/tool_use_grpo.yaml's budget and batch
    train_defaults: ClassVar[dict[str, Any]] = {
        "sampling.max_new_tokens": 128,
        "max_total_tokens": 768,
        "tasks_per_step": 8,
        "env_args.max_turns": 3,
        "env_args.warm": 8,
    }
    check_actions: ClassVar[tuple[str, ...]] = (
        "<python>print(6 * 7)</python>",
        "<python></python>",
        "The answer is 42.",
    )

    options_cls = ToolUseConfig

    def __init__(self, **config: Any):
        self.config = build(ToolUseConfig, config, owner="tool_use")
        c = self.config
        # a sandbox that cannot start fails here, before any episode
        self.tools: dict[str, Tool] = reopen_tools({}, self._tool_options(c.tool_names))
        stops: tuple[str, ...] = ("</python>",) if c.tool_format == "xml" else ("</tool_call>",)
        if c.tool_format == "xml":
            stops += tuple(f"</{name}>" for name in self.tools if name != "python")
        specs = tuple(tool_spec(tool) for tool in self.tools.values())
        self.rollout_spec = EnvSpec(max_turns=c.max_turns, stop_strings=stops, tools=specs)
        self.default_system_prompt = PROMPTS[c.tool_format]
        self.turns = TurnCounter(max_turns=c.max_turns)
        self.task: Task | None = None

    def tasks(self, split: str = "test") -> Sequence[Task]:
        c = self.config
        if c.source.startswith("bfcl:"):
            return bfcl.bfcl_tasks(c.source.removeprefix("bfcl:"), split)
        if c.source == "code":
            families = tuple(f.strip() for f in c.families.split(",") if f.strip())
            return CodeTasks(split, c.num_tasks, c.seed, families)
        return _file_tasks(c.source, split, c.question_key, c.answer_key)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[list[Message], dict]:
        self.task = pick_task(self.tasks, options, random.Random(seed).randrange)
        self.turns.start()
        if "functions" in self.task.meta:  # BFCL: the task's functions, graded, not run
            functions = self.task.meta["functions"]
            close_tools(self.tools)
            self.tools = {f["name"]: bfcl.FunctionSpec.of(f) for f in functions}
            return opening(self.task, self.config.system_prompt, _BFCL_PROMPT + json.dumps(functions))
        names = tuple(self.task.meta.get("tools") or self.config.tool_names)
        self.tools = reopen_tools(self.tools, self._tool_options(names))  # a fresh session per episode
        return opening(self.task, self.config.system_prompt, self.default_system_prompt)

    def step(self, action: str) -> StepResult:
        return asyncio.run(self.astep(action))

    async def astep(self, action: str) -> StepResult:
        assert self.task is not None, "reset() first"
        if "functions" in self.task.meta:
            return self._graded_calls(action)
        turn = self.turns.advance(action)
        c = self.config
        taken = await take_turn(
            action,
            self.tools,
            c.tool_format,
            max_calls=c.max_calls_per_turn,
            too_many=f"at most {c.max_calls_per_turn} calls per turn",
            empty_hint="Your reply was empty. Run Python or give the answer.",
            in_order=True,
        )
        if taken.final is None:
            return self.turns.go_on(turn, taken.messages, truncated_components={"correct": 0.0}, **taken.info)
        assert self.task is not None, "reset() first"
        answer = extract_answer(action)
        if answer is None:
            hint: Message = {"role": "user", "content": "Run Python or end with: The answer is N."}
            return self.turns.go_on(turn, [hint], truncated_components={"correct": 0.0}, parse_error="no_action")
        correct, status = shared_grader(c.grader_timeout_s).check(self.task.answer, answer)
        self.turns.done = True
        info = new_info(turn, answer=answer, reward_components={"correct": float(correct)}, grader_status=status)
        return [], float(correct), True, False, info

    def _graded_calls(self, action: str) -> StepResult:
        """BFCL: the turn's calls end the episode and are graded against the possible answers."""
        assert self.task is not None
        turn = self.turns.advance(action)
        parsed = parse_tool_calls(action, self.tools, "hermes")
        if parsed.error or not parsed.calls:
            error, text = (parsed.error, f"Error: {parsed.message}") if parsed.error else ("no_action", _BFCL_AGAIN)
            message: Message = {"role": "tool" if parsed.error else "user", "content": text}
            return self.turns.go_on(turn, [message], truncated_components={"correct": 0.0}, parse_error=error)
        correct = float(bfcl.check_calls(parsed.calls, self.task.meta["ground_truth"]))
        self.turns.done = True
        calls = [{"name": call.name, "arguments": call.arguments} for call in parsed.calls]
        info = new_info(turn, tool_calls=calls, reward_components={"correct": correct})
        return [], correct, True, False, info

    def close(self) -> None:
        close_tools(self.tools)

    def _tool_options(self, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Each named tool's options: the python tool's sandbox and limits, none for the others."""
        python = self.config.tool_options()
        return {name: python if name == "python" else {} for name in names}


@functools.cache
def _file_tasks(source: str, split: str, question_key: str | None, answer_key: str | None) -> tuple[Task, ...]:
    return tuple(resolve(source, split, question_key=question_key, answer_key=answer_key, answer=gold_answer))

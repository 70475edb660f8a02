"""Stand-ins for fast unit tests (used in addition to the real-model tests), and a real
``agentrl serve retriever`` process for the tests that need one."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentrl.engines.base import Completion, SamplingParams
from agentrl_envs.math_tool import MathToolEnv
from agentrl_envs.search_qa import SearchQAEnv
from agentrl_tools.sandbox.backends import open_pool
from agentrl_tools.sandbox.image import build_image
from agentrl_tools.sandbox.session import Limits, Pool, SandboxUnavailable


class ScriptedEngine:
    """An engine that answers each prompt with scripted text, tokenised by a real tokenizer.

    ``respond(prompt_text)`` returns the reply text; an end-of-turn token is appended unless
    the reply ends with one of the stop strings. Every sampled token gets logprob -1.0.
    """

    def __init__(self, tokenizer: Any, respond: Callable[[str], str]):
        self.tokenizer, self.respond = tokenizer, respond
        self.eos_token_ids = frozenset({tokenizer.convert_tokens_to_ids("<|im_end|>")})
        self.policy_version = 0
        self.calls: list[list[list[int]]] = []

    def generate(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams, max_new_tokens: Sequence[int] | None = None
    ) -> list[Completion]:
        self.calls.append([list(p) for p in prompts])
        limits = max_new_tokens or [params.max_new_tokens] * len(prompts)
        out = []
        for prompt, limit in zip(prompts, limits, strict=True):
            text = self.respond(self.tokenizer.decode(list(prompt)))
            ids = self.tokenizer.encode(text, add_special_tokens=False)
            stopped = any(text.endswith(s) for s in params.stop)
            if not stopped:
                ids.append(min(self.eos_token_ids))
            finish = "stop"
            limit = min(limit, params.max_new_tokens)
            if len(ids) > limit:
                ids, finish = ids[:limit], "length"
            reason = None if finish == "length" else "scripted"
            out.append(Completion(ids, [-1.0] * len(ids), finish, reason, self.policy_version))
        return out

    def update_weights(self, state: Mapping[str, Any], version: int) -> None:
        self.policy_version = version


def solver(prompt_text: str) -> str:
    """A scripted math_tool policy: calls the calculator once, then answers with the tool's result."""
    if "<|im_start|>tool\n" not in prompt_text:
        question = prompt_text.rsplit("What is ", 1)[1].split("?")[0]
        return f"<calculator>{question}</calculator>"
    return f"The answer is {prompt_text.rsplit('<|im_start|>tool', 1)[1].split()[0]}."


def chat_prompts(tokenizer: Any, texts: Sequence[str], system: str) -> list[list[int]]:
    """Token ids of ``texts`` as user turns after ``system``, rendered with a generation prompt."""
    rendered = [
        tokenizer.apply_chat_template(
            [{"role": "system", "content": system}, {"role": "user", "content": t}],
            add_generation_prompt=True,
            tokenize=False,
        )
        for t in texts
    ]
    return [tokenizer.encode(r, add_special_tokens=False) for r in rendered]


class DyingEnv(MathToolEnv):
    """``math_tool`` that cannot be built on a rollout stream's thread once more than
    ``$AGENTRL_TEST_DIE_AFTER`` were built there in this process. Read from the environment,
    so the fault reaches a spawned rollout worker, and a resumed run without it runs clean."""

    built = 0

    def __init__(self, **kwargs):
        limit = os.environ.get("AGENTRL_TEST_DIE_AFTER")
        if limit is not None and threading.current_thread().name == "agentrl-rollout":
            DyingEnv.built += 1
            if DyingEnv.built > int(limit):
                raise RuntimeError("environment died")
        super().__init__(**kwargs)


class BrokenResetEnv(MathToolEnv):
    """``math_tool`` whose every reset raises while ``$AGENTRL_TEST_BROKEN_RESET`` is set."""

    def reset(self, *, seed=None, options=None):
        if os.environ.get("AGENTRL_TEST_BROKEN_RESET"):
            raise RuntimeError("reset failed")
        return super().reset(seed=seed, options=options)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``agentrl serve retriever`` as a child process (started and killed by id)."""

    def __init__(self, corpus: Path, port: int | None = None):
        self.corpus, self.port = corpus, port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout_s: float = 60.0) -> ServerProcess:
        cmd = [sys.executable, "-m", "agentrl.cli.main", "serve", "retriever", "--corpus", str(self.corpus)]
        self.proc = subprocess.Popen(
            [*cmd, "--port", str(self.port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"server exited {self.proc.returncode}: {self.proc.stderr.read() if self.proc.stderr else ''}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return self
            time.sleep(0.05)
        raise AssertionError("the retriever server did not become healthy")

    def stats(self) -> dict[str, int]:
        return httpx.get(f"{self.url}/stats", timeout=5.0).json()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class SearchEveryTurn(SearchQAEnv):
    """``search_qa`` in which every turn searches for the task's subject, whatever the model
    wrote: a run whose tool calls do not depend on what the model has learned."""

    async def astep(self, action: str) -> Any:
        assert self.task is not None
        return await super().astep(f"<search>{self.task.meta['hops'][0]}</search>")


class SearchNothingEveryTurn(SearchQAEnv):
    """``search_qa`` in which every turn searches with an empty query: a call the search tool
    refuses for its input (the model's fault, never the service's)."""

    async def astep(self, action: str) -> Any:
        return await super().astep("<search> </search>")


SANDBOX_LIMITS = Limits(timeout_s=3.0, memory_mb=256, processes=32, disk_mb=8, inodes=512, max_output_bytes=1000)


def open_or_skip(backend: str, limits: Limits = SANDBOX_LIMITS, warm: int = 2) -> Pool:
    """A pool of the real ``backend``; skipped with the reason where it cannot run, failed
    instead when ``AGENTRL_REQUIRE_SANDBOX=1`` (CI), so sandbox tests never pass by skipping."""
    try:
        if backend == "docker":
            build_image(log=lambda _: None)
        return open_pool(backend, limits, warm=warm)
    except (SandboxUnavailable, RuntimeError) as exc:
        if os.environ.get("AGENTRL_REQUIRE_SANDBOX") == "1":
            pytest.fail(f"{backend} sandbox required but unavailable: {exc}")
        pytest.skip(f"{backend} sandbox unavailable: {exc}")

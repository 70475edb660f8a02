"""Answer extraction and checking with math-verify, under a timeout that works anywhere.

math-verify's own timeouts use ``signal.alarm``, which fails off the main thread (and the
rollout steps environments in worker threads). So its timeouts are switched off and checks
run in a long-lived child process (``python -m agentrl_envs.verify_worker``, JSON lines over
pipes; a plain subprocess, so it never re-imports the caller's ``__main__``). A check that
outlives ``timeout_s`` kills the child (the next check starts a new one) and counts as
incorrect with status ``"timeout"``. Checks are gold first: ``verify(parse(gold), parse(answer))``.
"""

from __future__ import annotations

import atexit
import json
import re
import select
import subprocess
import sys
import threading
from typing import Any

_ANSWER_IS = re.compile(r"answer is[:\s]*\$?\s*([-+]?[\d,]*\.?\d+(?:/\d+)?)", re.IGNORECASE)
_AFTER_HASHES = re.compile(r"####\s*([^\n]+)")
_GSM8K_FINAL = re.compile(r"####\s*(.+?)\s*$", re.DOTALL)
_BOXED = "\\boxed{"


def gold_answer(text: Any) -> str | None:
    """The final answer in a dataset's gold field: after ``####`` (GSM8K), inside ``\\boxed{}``
    (MATH), or the whole text. None when there is no answer."""
    if text is None:
        return None
    text = str(text).strip()
    match = _GSM8K_FINAL.search(text)
    if match:
        return match.group(1).replace(",", "").strip() or None
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed.strip() or None
    return text or None


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` with balanced braces, or None."""
    start = text.rfind(_BOXED)
    if start < 0:
        return None
    depth, i = 1, start + len(_BOXED)
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return None


def extract_answer(text: str) -> str | None:
    """The final answer in model text: the last ``\\boxed{}``, else what follows the last
    ``####``, else the number after the last "answer is"."""
    boxed = last_boxed(text)
    if boxed is not None and boxed.strip():
        return boxed.strip()
    hashes = _AFTER_HASHES.findall(text)
    if hashes and hashes[-1].strip():
        return hashes[-1].strip().rstrip(".")
    said = _ANSWER_IS.findall(text)
    return said[-1].replace(",", "") if said else None


def _normalise(answer: str) -> str:
    return answer.strip().replace(",", "").removeprefix("$").rstrip(".").strip()


class MathGrader:
    """Checks answers against gold answers with math-verify in a killable child process."""

    def __init__(self, timeout_s: float = 5.0):
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._child: subprocess.Popen[str] | None = None

    def check(self, gold: str, answer: str | None) -> tuple[bool, str]:
        """``(correct, status)`` with status ``"ok"``, ``"no_answer"``, ``"timeout"`` or ``"error"``."""
        if answer is None or not answer.strip():
            return False, "no_answer"
        if _normalise(gold) == _normalise(answer):  # identical text needs no parser
            return True, "ok"
        with self._lock:
            child = self._ensure_child()
            assert child.stdin is not None and child.stdout is not None
            try:
                child.stdin.write(json.dumps([gold, answer]) + "\n")
                child.stdin.flush()
            except BrokenPipeError:
                self._kill()
                return False, "error"
            ready, _, _ = select.select([child.stdout], [], [], self.timeout_s)
            if not ready:
                self._kill()
                return False, "timeout"
            line = child.stdout.readline()
        if not line:
            self.close()
            return False, "error"
        result = json.loads(line)
        return (result, "ok") if isinstance(result, bool) else (False, "error")

    def _ensure_child(self) -> subprocess.Popen[str]:
        if self._child is None or self._child.poll() is not None:
            self._child = subprocess.Popen(
                [sys.executable, "-m", "agentrl_envs.verify_worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                bufsize=1,
            )
        return self._child

    def _kill(self) -> None:
        if self._child is not None:
            self._child.kill()
            self._child.wait(timeout=5)
            for stream in (self._child.stdin, self._child.stdout):
                if stream is not None:
                    stream.close()
        self._child = None

    def close(self) -> None:
        with self._lock:
            self._kill()


_shared: MathGrader | None = None


def shared_grader(timeout_s: float = 5.0) -> MathGrader:
    """One grader per process (one child), shared by every environment instance."""
    global _shared
    if _shared is None:
        _shared = MathGrader(timeout_s)
        atexit.register(_shared.close)
    _shared.timeout_s = timeout_s
    return _shared

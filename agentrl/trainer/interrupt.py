"""Ctrl-C during training: the step in progress finishes, is checkpointed, and the run stops
with the line that resumes it; a second Ctrl-C aborts at once.

Owns ``StopAfterStep``, a context manager around the training loop that takes SIGINT while it
is active (only in the main thread, and only where SIGINT still raises ``KeyboardInterrupt``,
so a host application's own handler is left alone) and ``Interrupted``, the exception the loop
raises once the step is saved. Nothing else in agentrl handles SIGINT for training; rollout
workers ignore it (their learner stops them).
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType, TracebackType


class Interrupted(KeyboardInterrupt):
    """The run stopped at a step boundary on Ctrl-C; the message says how to resume it."""


class StopAfterStep:
    """While active, the first SIGINT sets ``requested`` (and says so on stderr); the second
    raises ``KeyboardInterrupt`` where the program is."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: object = None

    def __enter__(self) -> StopAfterStep:
        if threading.current_thread() is threading.main_thread() and (
            signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]
            self._previous = None

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(
            "\nagentrl: Ctrl-C: stopping once this step is trained and saved (Ctrl-C again to abort now)",
            file=sys.stderr,
            flush=True,
        )

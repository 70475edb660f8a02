"""Ctrl-C (or SIGTERM, as a scheduler sends it) during training: the step in progress finishes,
is checkpointed, and the run stops with the line that resumes it; a second signal aborts at
once, saying where a resume would start.

Owns ``StopAfterStep``, a context manager around the training loop that takes SIGINT and SIGTERM
while it is active (only in the main thread, and only where the signal still has Python's own
behaviour: ``KeyboardInterrupt`` for SIGINT, the default for SIGTERM, so a host application's own
handler is left alone) and ``Interrupted``, the exception the loop raises once the step is saved;
and ``term_as_interrupt``, SIGTERM as Ctrl-C for a command that has something to clean up on the
way out (``agentrl eval``'s merged LoRA model). Nothing else in agentrl handles these signals;
rollout workers ignore SIGINT (their learner stops them).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType, TracebackType


class Interrupted(KeyboardInterrupt):
    """The run stopped at a step boundary on Ctrl-C; the message says how to resume it."""


class StopAfterStep:
    """While active, the first SIGINT or SIGTERM sets ``requested`` (and says so on stderr); the
    second raises ``KeyboardInterrupt`` where the program is, with ``resume_hint()`` in it."""

    def __init__(self, resume_hint: Callable[[], str] = lambda: "") -> None:
        self.requested = False
        self.resume_hint = resume_hint
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopAfterStep:
        if threading.current_thread() is threading.main_thread():
            for signum, untouched in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL)):
                if signal.getsignal(signum) is untouched:
                    self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)  # type: ignore[arg-type]
        self._previous = {}

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        if self.requested:
            hint = self.resume_hint()
            raise KeyboardInterrupt(
                f"aborted on a second {name}; the step in progress was not saved" + (f"; {hint}" if hint else "")
            )
        self.requested = True
        print(
            f"\nagentrl: {name}: stopping once this step is trained and saved ({name} again to abort now)",
            file=sys.stderr,
            flush=True,
        )


@contextlib.contextmanager
def term_as_interrupt() -> Iterator[None]:
    """While active, SIGTERM raises ``KeyboardInterrupt`` as Ctrl-C does, so ``finally`` blocks and
    context managers clean up; as ``StopAfterStep``, only in the main thread and only where SIGTERM
    still has its default behaviour."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

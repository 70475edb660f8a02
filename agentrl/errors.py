"""User-facing errors.

An ``AgentRLError`` is a mistake a user can make (a bad config value, an unknown
environment, a directory that is not a model). The CLI prints its message as one line and
exits with status 2; it never shows a traceback for these. Bugs stay ordinary exceptions. An
``AgentRLWarning`` is the same kind of message for something that does not stop the command.
"""

import difflib
from collections.abc import Iterable


class AgentRLError(Exception):
    """A problem the user can fix; the message says what to do, on one line."""


class AgentRLWarning(UserWarning):
    """Something the user should know that does not stop the command; the CLI shows it as one line."""


class ConfigError(AgentRLError, ValueError):
    """A configuration value is unknown or out of range."""


class UnknownNameError(AgentRLError, KeyError):
    """A registry lookup failed; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ModelLoadError(AgentRLError):
    """A model directory or name could not be loaded."""


class CheckpointError(AgentRLError):
    """A checkpoint could not be written or read."""


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message``, for one-line errors that wrap another exception."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def count(n: int, noun: str) -> str:
    """``1 step``, ``2 steps``: a number and its noun, for a message."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def did_you_mean(name: object, known: Iterable[str]) -> str:
    """`` (did you mean 'grpo'?)`` for a name close to one of ``known``, else nothing."""
    by_lower = {str(k).lower(): str(k) for k in known}  # GRPO -> grpo
    close = difflib.get_close_matches(str(name).lower(), list(by_lower), n=1, cutoff=0.6)
    return f" (did you mean {by_lower[close[0]]!r}?)" if close else ""

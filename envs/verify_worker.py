"""The math-verify child process of ``agentrl_envs.grading``: one JSON line in
(``[gold, answer]``), one out (``true`` / ``false``, or an error string)."""

from __future__ import annotations

import json
import logging
import sys


def main() -> None:
    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # the parent owns the timeout
    for line in sys.stdin:
        gold, answer = json.loads(line)
        try:
            result: object = bool(
                verify(
                    parse(gold, parsing_timeout=None),
                    parse(answer, parsing_timeout=None),
                    timeout_seconds=None,
                )  # type: ignore[arg-type]
            )
        except Exception as exc:
            result = f"{type(exc).__name__}: {exc}"
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()

"""Evaluation metrics over finished episodes.

Owns the definitions the ``eval`` command prints. Each counts episodes (the first sample of
each), so a template fallback that splits an episode never counts it twice:

- ``accuracy``: fraction of episodes whose ``correct`` is true (reward > 0 when an
  environment reports no ``correct`` component);
- ``pass@k``: the unbiased estimator ``1 - C(n - c, k) / C(n, k)`` per group of ``n``
  samples with ``c`` correct, averaged over groups, for k = 1 and k = group size;
- ``mean_reward``, ``mean_turns``;
- ``tool_error_rate``: failed tool-call attempts over all attempts (a malformed call, an
  unknown tool, bad arguments, or a tool that returned an error, timed out or was unavailable);
- ``tool_service_failure_rate``: tool calls that failed on their service's side (it could not
  be reached, timed out, answered 5xx, 4xx or unreadably; a sandbox that could not start), over
  all tool calls run; ``service_failures`` splits them by service and kind (``{service: {kind:
  calls}}``). A model's own bad call never counts here. ``service_failure_problem`` is the one
  rule the trainer stops on and ``agentrl eval`` fails on;
- ``tool_error_rate_by_kind``: the same failures split by kind (a parse error such as
  ``bad_args``, or the tool's status: ``error``, ``timeout``, ``unavailable``), over all attempts;
- ``mean_tool_seconds``: seconds spent in tools per episode (for ``python``: sandbox time);
- ``components``: the mean of every reward component an environment reports besides
  ``correct`` (``search_qa``: ``f1``, ``searches``), over all episodes (0 where one is missing);
- ``truncated_rate`` and ``error_rate`` (episodes ended by an environment exception);
- ``turn_length_rate``: turns cut by their token limit (``sampling.max_new_tokens``, or what is
  left of the episode's budget), over all turns.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from math import comb
from typing import Any

from agentrl.types import Trajectory


def is_correct(trajectory: Trajectory) -> bool:
    return bool(trajectory.correct) if trajectory.correct is not None else trajectory.reward > 0


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of ``k`` draws without replacement from ``n`` samples,
    ``c`` of them correct, is correct."""
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def summarize(trajectories: Iterable[Trajectory]) -> dict[str, Any]:
    episodes = [t for t in trajectories if t.sample_index == 0]
    if not episodes:
        return {"episodes": 0}
    groups: dict[str, list[bool]] = defaultdict(list)
    for t in episodes:
        groups[t.group_id].append(is_correct(t))
    k_max = min(len(g) for g in groups.values())
    attempts = sum(t.info.get("call_attempts", 0) for t in episodes)
    calls = sum(t.tool_calls for t in episodes)
    turns = sum(t.num_turns for t in episodes)
    n = len(episodes)
    metrics: dict[str, Any] = {
        "episodes": n,
        "groups": len(groups),
        "accuracy": sum(map(is_correct, episodes)) / n,
        "pass@1": _mean_pass(groups, 1),
        "mean_reward": sum(t.reward for t in episodes) / n,
        "mean_turns": sum(t.num_turns for t in episodes) / n,
        "tool_calls": sum(t.tool_calls for t in episodes),
        "tool_error_rate": sum(t.tool_errors for t in episodes) / attempts if attempts else 0.0,
        "tool_service_failure_rate": _rate(sum(t.tool_service_failures for t in episodes), calls),
        "truncated_rate": sum(t.truncated for t in episodes) / n,
        "turn_length_rate": _rate(sum(t.info.get("turns_cut", 0) for t in episodes), turns),
        "error_rate": sum(t.error is not None for t in episodes) / n,
        "mean_sampled_tokens": sum(t.num_sampled_tokens for t in episodes) / n,
    }
    kinds: dict[str, int] = defaultdict(int)
    for t in episodes:
        for kind, count in (t.info.get("tool_errors_by_kind") or {}).items():
            kinds[kind] += count
    metrics["tool_error_rate_by_kind"] = {k: kinds[k] / attempts for k in sorted(kinds)} if attempts else {}
    failures: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for t in episodes:
        for service, by_kind in (t.info.get("service_failures") or {}).items():
            for kind, count in by_kind.items():
                failures[service][kind] += count
    metrics["service_failures"] = {service: dict(sorted(kinds.items())) for service, kinds in sorted(failures.items())}
    metrics["mean_tool_seconds"] = sum(t.info.get("tool_seconds", 0.0) for t in episodes) / n
    if k_max > 1:
        metrics[f"pass@{k_max}"] = _mean_pass(groups, k_max)
    keys = sorted({key for t in episodes for key in t.reward_components} - {"correct"})
    metrics["components"] = {k: sum(t.reward_components.get(k, 0.0) for t in episodes) / n for k in keys}
    return metrics


def service_failure_problem(metrics: dict[str, Any], limit: float, option: str) -> str | None:
    """One line when more than ``limit`` of the tool calls in ``metrics`` (``summarize``'s) failed
    on their service's side, naming each service and its failures by kind; None otherwise."""
    rate = metrics.get("tool_service_failure_rate", 0.0)
    if rate <= limit:
        return None
    services = "; ".join(
        f"{service}: " + ", ".join(f"{count} {kind}" for kind, count in kinds.items())
        for service, kinds in metrics.get("service_failures", {}).items()
    )
    calls = metrics.get("tool_calls", 0)
    return f"{rate:.0%} of {calls} tool calls failed on the service's side ({services}; {option}={limit:g})"


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _mean_pass(groups: dict[str, list[bool]], k: int) -> float:
    return sum(pass_at_k(len(g), sum(g), k) for g in groups.values()) / len(groups)

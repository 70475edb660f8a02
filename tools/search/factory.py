"""One retriever per process and target: ``open_retriever("local", corpus=...)`` or
``open_retriever("http://host:port")``.

Owns the choice between the in-process and the HTTP retriever and the per-process cache that
makes every episode of a run share one index (or one connection pool). The first opening of a
target runs its ``check``, so an unreachable server is a one-line ``RetrieverUnavailable``
before any episode runs. Knows nothing of environments.
"""

from __future__ import annotations

import functools

from agentrl.errors import ConfigError
from agentrl_tools.search.base import Retriever


@functools.cache
def open_retriever(
    target: str,
    *,
    corpus: str | None = None,
    cache_dir: str | None = None,
    timeout_s: float = 5.0,
    retries: int = 2,
    max_concurrent_requests: int = 8,
) -> Retriever:
    """The process's retriever for ``target`` (``local`` or an ``http(s)://`` URL), checked."""
    retriever: Retriever
    if target == "local":
        if corpus is None:
            raise ConfigError("the local retriever needs a corpus JSONL file")
        from agentrl_tools.search.local import LocalRetriever

        retriever = LocalRetriever(corpus, cache_dir=cache_dir)
    elif target.startswith(("http://", "https://")):
        from agentrl_tools.search.client import HttpRetriever

        retriever = HttpRetriever(
            target, timeout_s=timeout_s, retries=retries, max_concurrent_requests=max_concurrent_requests
        )
    else:
        raise ConfigError(f"retriever={target!r}: expected 'local' or an http:// URL of `agentrl serve retriever`")
    retriever.check()
    return retriever

"""``agentrl serve retriever``: BM25 over a JSONL corpus behind Search-R1's ``/retrieve`` API.

Owns the command line of the services and their start-up: the index is built (or found up to
date) here, once, before uvicorn starts, so a bad corpus is one line and exit 2, and with
``--workers N`` every worker only memory-maps the finished index. Prints one line when the
server answers ``/health``. The server itself is ``agentrl_tools.search.server``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from agentrl.errors import AgentRLError


def register(commands: Any) -> None:
    serve = commands.add_parser("serve", help="run a service that environments talk to")
    sub = serve.add_subparsers(dest="serve_command", required=True, metavar="SERVICE")
    retriever = sub.add_parser(
        "retriever",
        help="BM25 search over a JSONL corpus, speaking Search-R1's /retrieve API",
        description="Serve BM25 search over a JSONL corpus at POST /retrieve (Search-R1's API); GET /health "
        "says when it is ready. The index is built once, next to the corpus or in --cache-dir.",
    )
    retriever.add_argument(
        "--corpus",
        required=True,
        metavar="FILE",
        help='JSONL: {"id", "contents"} or {"id", "title", "text"} per line',
    )
    retriever.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    retriever.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")
    retriever.add_argument("--workers", type=int, default=1, help="server processes (default: %(default)s)")
    retriever.add_argument(
        "--cache-dir", metavar="DIR", help="where the index goes (default: beside the corpus, if writable)"
    )
    retriever.set_defaults(run=_retriever)


def _retriever(args: argparse.Namespace) -> int:
    from agentrl_tools.search.index import ensure_index
    from agentrl_tools.search.server import CACHE_DIR_ENV, CORPUS_ENV

    if args.workers < 1:
        raise AgentRLError(f"--workers must be at least 1, got {args.workers}")
    if not 0 < args.port < 65536:
        raise AgentRLError(f"--port must be between 1 and 65535, got {args.port}")
    folder = ensure_index(args.corpus, args.cache_dir)  # before the workers, which only load it
    documents = json.loads((folder / "meta.json").read_text())["documents"]
    _check_port(args.host, args.port)

    import uvicorn

    os.environ[CORPUS_ENV] = str(Path(args.corpus).resolve())
    if args.cache_dir:
        os.environ[CACHE_DIR_ENV] = str(Path(args.cache_dir).resolve())
    url = f"http://{_bracketed(args.host)}:{args.port}"
    threading.Thread(target=_announce, args=(url, documents), daemon=True).start()
    uvicorn.run(
        "agentrl_tools.search.server:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
    )
    return 0


def _check_port(host: str, port: int) -> None:
    """A one-line error now for an address uvicorn could not listen on."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            sock.bind(address)
    except OSError as exc:
        raise AgentRLError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port or --host"
        ) from None


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _announce(url: str, documents: int) -> None:
    """Print the ready line once ``/health`` answers 200 (every worker's index is a quick load)."""
    import httpx

    local = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
    host = url.split("//", 1)[1].rsplit(":", 1)[0].strip("[]")
    probe = f"http://{_bracketed(local.get(host, host))}:{url.rsplit(':', 1)[1]}/health"
    while True:
        try:
            if httpx.get(probe, timeout=2.0).status_code == 200:
                print(f"agentrl: retriever serving {documents} documents at {url}", flush=True)
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)

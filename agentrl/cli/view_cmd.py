"""``agentrl view DIR [DIR ...]``: a local web page of the episodes of runs and evaluations.

Serves, on this machine only unless ``--host`` says otherwise, the curves of each run (the
panels ``agentrl plot`` draws; a click on a point lists that step's episodes), a table of every
episode of every folder given, filtered and sorted on the server, one episode as a conversation
with its token stream shaded by a per-token quantity (logprob, entropy, advantage, ratio,
weight, mask, version, behaviour logprob), and two episodes of the same task side by side. Each
folder (a run's runs/<name>, or an evaluation's --output folder) is a source named by its
folder's name. A folder with no episode store is one line of error. Ctrl-C stops the server.
docs/view.md describes the page.
"""

from __future__ import annotations

import argparse
import socket
import warnings
from typing import Any

from agentrl.errors import AgentRLError, AgentRLWarning


def register(commands: Any) -> None:
    p = commands.add_parser("view", help="a local web page of the episodes and curves of runs", description=__doc__)
    p.add_argument("dirs", nargs="+", metavar="DIR", help="run or eval folders (each a source, named by its folder)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8765, help="port to listen on (0: any free port)")
    p.set_defaults(run=run)


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port``; one line of error when it cannot be had."""
    if not 0 <= port <= 65535:
        raise AgentRLError(f"--port {port}: a port is 0 to 65535")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise AgentRLError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port") from None


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from agentrl.view import make_app

    app = make_app(args.dirs)
    sock = listen(args.host, args.port)
    host, port = sock.getsockname()[:2]
    everywhere = host in ("0.0.0.0", "::")
    shown = socket.gethostname() if everywhere else host  # 0.0.0.0 is no address to open
    url = f"http://{f'[{shown}]' if ':' in shown else shown}:{port}/"
    if everywhere:
        warnings.warn(
            f"--host {args.host} serves every network interface, with no login: anyone who can reach this machine "
            "can read these episodes; on a shared network prefer the default and an SSH tunnel (docs/view.md)",
            AgentRLWarning,
            stacklevel=2,
        )
    sources = app.state.catalog.sources
    episodes = len(app.state.catalog.table())
    names = ", ".join(s.name for s in sources)
    print(f"agentrl view: {episodes:,} episodes of {names} at {url} (Ctrl-C stops it)", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shut down on Ctrl-C, then raises it again for its caller
        pass
    finally:
        sock.close()
    print("agentrl view: stopped", flush=True)
    return 0

"""``agentrl train --nproc N``: the run's learner ranks, started by torchrun's own launcher.

Owns turning the launch flags into torch's elastic launch (``torch.distributed.launcher``: one
agent per node, torchrun's static rendezvous at ``--master-addr:--master-port``, this machine as
node ``--node-rank`` of ``--nnodes``) and its failures into one line: a rank that dies (the agent
stops the others at once), a node that does not join within ``--join-timeout``. Each rank runs
``python -m agentrl train`` with this command's arguments; ``agentrl.trainer.ranks`` decides what
each rank does. Must not build models or touch the run directory.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import uuid
from collections.abc import Sequence
from typing import Any

from agentrl.errors import AgentRLError

_RESUME = "agentrl train --resume RUN_DIR continues from the last checkpoint"
LAUNCH_FLAGS = ("--nproc", "--nnodes", "--node-rank", "--master-addr", "--master-port", "--join-timeout")


class LaunchError(AgentRLError):
    """A rank died, or the rendezvous of the run's nodes failed."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("several processes and nodes (learner.backend=deepspeed; docs/distributed.md)")
    g.add_argument(
        "--nproc",
        type=int,
        metavar="N",
        help="ranks on this machine, launched through torchrun: learner ranks and rollout worker ranks "
        "(default: 1 + asynchronous.workers when either asks for ranks)",
    )
    g.add_argument("--nnodes", type=int, default=1, metavar="M", help="machines in the run (default 1)")
    g.add_argument("--node-rank", type=int, default=0, metavar="R", help="this machine's index, 0..M-1 (default 0)")
    g.add_argument("--master-addr", default="127.0.0.1", help="address of node 0, where ranks meet (default local)")
    g.add_argument(
        "--master-port", type=int, help="port on node 0 (default: a free one when --nnodes is 1, else 29500)"
    )
    g.add_argument(
        "--join-timeout",
        type=float,
        default=600.0,
        metavar="S",
        help="seconds to wait for every node to join before stopping (default 600)",
    )


def under_torchrun() -> bool:
    """Whether this process is one of a launched run's ranks."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def check(args: argparse.Namespace) -> None:
    """The launch flags' values, each refused in one line."""
    if args.nproc is not None and args.nproc < 1:
        raise AgentRLError(f"--nproc must be at least 1, got {args.nproc}")
    if args.nnodes < 1:
        raise AgentRLError(f"--nnodes must be at least 1, got {args.nnodes}")
    if not 0 <= args.node_rank < args.nnodes:
        raise AgentRLError(
            f"--node-rank must be in 0..{args.nnodes - 1} (--nnodes {args.nnodes}), got {args.node_rank}"
        )
    if args.join_timeout <= 0:
        raise AgentRLError(f"--join-timeout must be positive, got {args.join_timeout:g}")


def launch(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Run ``agentrl train <argv>`` as ``--nproc`` ranks on this node (of ``--nnodes``); returns 0
    once every rank finished, or raises ``LaunchError`` naming the first rank that failed."""
    import torch.distributed as dist
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous.api import RendezvousError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    nproc = args.nproc or 1
    port = args.master_port or (_free_port() if args.nnodes == 1 else 29500)
    endpoint = f"{args.master_addr}:{port}"
    config = LaunchConfig(
        min_nodes=args.nnodes,
        max_nodes=args.nnodes,
        nproc_per_node=nproc,
        run_id=f"agentrl-{uuid.uuid4().hex[:8]}" if args.nnodes == 1 else "agentrl",
        rdzv_backend="static",
        rdzv_endpoint=endpoint,
        rdzv_configs={"rank": args.node_rank, "timeout": max(1, round(args.join_timeout))},
        max_restarts=0,
        monitor_interval=0.5,
        start_method="spawn",
    )
    if nproc > 1 and "OMP_NUM_THREADS" not in os.environ:  # the ranks share this machine's cores
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    try:
        elastic_launch(config, sys.executable)("-m", "agentrl", "train", *argv)
    except ChildFailedError as exc:
        raise LaunchError(_failure_line(exc)) from None
    except SignalException as exc:  # the launcher was interrupted or terminated; it stopped the ranks
        if exc.sigval == signal.SIGINT:
            raise KeyboardInterrupt from None
        raise LaunchError(f"stopped by {exc.sigval.name}; the ranks were stopped ({_RESUME})") from None
    except (RendezvousError, dist.DistError) as exc:
        raise LaunchError(_rendezvous_line(args, endpoint, exc)) from None
    return 0


def _failure_line(exc: Any) -> str:
    """One line naming the rank that failed first. A rank killed by a signal the launcher did not
    send (it stops the others with SIGTERM) goes before one that exited on its own, which may only
    have noticed that a peer was gone."""
    rank, failure = min(
        exc.failures.items(),
        key=lambda item: (item[1].exitcode >= 0 or item[1].exitcode == -signal.SIGTERM, item[1].timestamp),
    )
    code = failure.exitcode
    if code < 0:
        try:
            how = f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"was killed by signal {-code}"
    else:
        how = f"exited with code {code}"
    return f"rank {rank} (pid {failure.pid}) {how}; the other ranks were stopped ({_RESUME})"


def _rendezvous_line(args: argparse.Namespace, endpoint: str, exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    timed_out = "timed out" in text or "timeout" in text.lower() or type(exc).__name__ == "DistStoreError"
    if not timed_out:  # node 0 could not open it (a port in use), or an address that does not resolve
        return f"node {args.node_rank} of {args.nnodes}: the rendezvous at {endpoint} failed: {text}"
    return (
        f"node {args.node_rank} of {args.nnodes}: not every node joined the rendezvous at {endpoint} within "
        f"{args.join_timeout:g} s (--join-timeout); start agentrl train with the same --nnodes, --master-addr and "
        f"--master-port on every node ({type(exc).__name__})"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rank_argv(argv: Sequence[str], name: str | None) -> list[str]:
    """The ``agentrl train`` arguments each rank gets: ``argv`` without the launch flags, with the
    run's name fixed (a default name holds the time, which would differ between ranks)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        flag = arg.split("=", 1)[0]
        if flag in LAUNCH_FLAGS:
            skip = "=" not in arg
            continue
        if arg == "--overwrite":  # done once, by the launcher
            continue
        out.append(arg)
    return [*out, "--name", name] if name else out

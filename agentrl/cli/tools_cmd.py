"""``agentrl tools list``, ``agentrl sandbox build`` and ``agentrl sandbox check``."""

from __future__ import annotations

import argparse
from typing import Any

from agentrl.cli.listing import print_registry
from agentrl.entry_points import describe
from agentrl.errors import AgentRLError


def register(commands: Any) -> None:
    tools = commands.add_parser("tools", help="list installed tools")
    sub = tools.add_subparsers(dest="tools_command", required=True, metavar="ACTION")
    sub.add_parser("list", help="name, description and providing package of every tool").set_defaults(run=_list)
    sandbox = commands.add_parser("sandbox", help="build and check the sandbox that runs model-written code")
    actions = sandbox.add_subparsers(dest="sandbox_command", required=True, metavar="ACTION")
    build = actions.add_parser("build", help="build the Docker image offline from Debian packages (root, debootstrap)")
    build.set_defaults(run=_build)
    check = actions.add_parser("check", help="start a sandbox and run one call in it")
    check.add_argument("--backend", default="auto", help="auto, docker or bwrap (default: auto)")
    check.set_defaults(run=_check)


def _list(args: argparse.Namespace) -> int:
    from agentrl_tools.registry import entries, load

    return print_registry(entries(), lambda name: describe(load(name)))


def _build(args: argparse.Namespace) -> int:
    from agentrl_tools.sandbox.image import build_image

    try:
        print(f"built {build_image()}")
    except RuntimeError as exc:
        raise AgentRLError(str(exc)) from None
    return 0


_PROBE = """
import os, sys
disk = os.statvfs(".")
seccomp = next((line.split()[1] for line in open("/proc/self/status") if line.startswith("Seccomp:")), "0")
print(sys.version.split()[0], os.getcwd(), disk.f_blocks * disk.f_frsize >> 20, disk.f_files, seccomp)
"""


def _check(args: argparse.Namespace) -> int:
    from agentrl_tools.sandbox.backends import BACKENDS, open_pool
    from agentrl_tools.sandbox.session import Limits, PythonSession

    if args.backend not in BACKENDS:
        raise AgentRLError(f"--backend must be one of {', '.join(BACKENDS)}, got {args.backend!r}")
    limits = Limits()
    pool = open_pool(args.backend, limits)
    session = PythonSession(pool)
    try:
        result = session.run(_PROBE)
    finally:
        session.close()
        pool.close()
    if result.status != "ok":
        raise AgentRLError(f"the {pool.backend.name} sandbox failed a call: {result.message or result.stderr}")
    version, workdir, disk_mb, inodes, seccomp = result.stdout.split()
    print(f"{pool.backend.name} sandbox: Python {version}, a call took {result.seconds * 1000:.0f} ms")
    print(
        f"  work dir {workdir}: {disk_mb} MB, {inodes} inodes; seccomp filter {'on' if seccomp == '2' else 'OFF'}; "
        f"limits: memory {limits.memory_mb} MB, {limits.processes} tasks, {limits.cpus:g} CPU, "
        f"{limits.timeout_s:g} s per call (docs/sandbox.md)"
    )
    return 0

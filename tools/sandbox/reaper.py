"""The run's reaper: a process outside the run and outside every sandbox that removes, when the
run ends however it ends, whatever sandboxes the run left.

Owns ``ensure`` (start this process's reaper, once) and the reaper's own ``main``. The reaper
blocks on its stdin, a pipe whose only writer is the run: the pipe closes when the run exits,
raises, is interrupted or is killed with SIGKILL. Then it destroys the run's sandbox cgroups
(every process in them killed: ``cgroups.Tree.remove_run``), unmounts their work dirs
(``workdir.remove_run``) and removes the Docker containers
labelled with the run as their owner. It runs in a session of its own and ignores SIGINT,
SIGHUP and SIGTERM, so a Ctrl-C or a signal to the run's process group leaves it to do its
work. Sandboxed code cannot reach it: it is not in any sandbox's namespaces. If it is killed
too, the next run's backends remove what is left (``remove_orphans``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import subprocess
import sys

from agentrl_tools.sandbox.owner import Owner

log = logging.getLogger("agentrl.sandbox")
_LABEL, _OWNER = "agentrl.sandbox", "agentrl.owner"


def ensure() -> subprocess.Popen | None:
    """This process's reaper, started on first use; None (logged) when it cannot start. A
    forked child gets a reaper of its own: the parent's watches the parent."""
    return _start(os.getpid())


@functools.cache
def _start(pid: int) -> subprocess.Popen | None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    for key in ("DOCKER_HOST", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY", "HOME"):
        if key in os.environ:
            env[key] = os.environ[key]
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "agentrl_tools.sandbox.reaper", str(Owner.this_process())],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    except OSError as exc:
        log.warning("sandbox: no reaper (%s); a killed run's sandboxes are removed by the next run", exc)
        return None


def remove_containers(owner: Owner) -> int:
    """Remove the Docker containers labelled with ``owner``; how many."""
    try:
        import docker

        client = docker.from_env(timeout=10)
        containers = client.containers.list(all=True, filters={"label": f"{_OWNER}={owner}"}, ignore_removed=True)
    except Exception:  # no SDK or no daemon: nothing of this run's can be there
        return 0
    for container in containers:
        with contextlib.suppress(Exception):
            container.remove(force=True)
    return len(containers)


def remove_bwrap_sandboxes(owner: Owner) -> None:
    """Destroy the cgroups of ``owner``'s bwrap sandboxes (every process in them killed), then
    unmount their work dirs."""
    from agentrl_tools.sandbox import workdir
    from agentrl_tools.sandbox.cgroups import PREFIX, CgroupUnavailable, Tree

    with contextlib.suppress(CgroupUnavailable, OSError):
        Tree.find().remove_run(owner)
    workdir.remove_run(owner, PREFIX)


def main(argv: list[str]) -> int:
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    owner = Owner.parse(argv[0]) if argv else None
    if owner is None:
        print("usage: python -m agentrl_tools.sandbox.reaper HOST:PID:START", file=sys.stderr)
        return 2
    with contextlib.suppress(OSError):
        while os.read(0, 4096):  # the run never writes: this returns when its end of the pipe closes
            pass
    remove_bwrap_sandboxes(owner)
    remove_containers(owner)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

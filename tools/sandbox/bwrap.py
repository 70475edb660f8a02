"""The bubblewrap backend: a sandbox of Linux namespaces, for machines without a Docker daemon.

Owns the launcher and the ``bwrap`` command line. Every limit on the sandbox as a whole is set
from outside it, before it starts:

- the host makes a cgroup for the sandbox (``cgroups.py``: memory, tasks, CPU) and the launcher
  (``/bin/sh`` as root) writes its own pid into it, so everything the sandbox ever starts is
  inside; ``kill`` destroys the group, which nothing inside can leave or undo;
- the launcher runs in a mount namespace of its own (``unshare --mount``) and mounts there a
  tmpfs of ``disk_mb`` and ``inodes`` over ``/tmp``; that tmpfs is the sandbox's work dir and
  the only writable place (``/``, ``/usr`` and ``/dev`` are read-only). The host never sees the
  mount, and it goes away with the sandbox's last process;
- it then drops to a user of the sandbox's own (``owner.sandbox_uid``, with ``setpriv``) and
  runs ``bwrap``: new user, PID, network,
  IPC, UTS and cgroup namespaces (``--unshare-all``: only a loopback interface), the host's
  ``/usr`` read-only (the interpreter is the host's ``/usr/bin/python3``, standard library
  only), a fresh ``/proc``, a minimal ``/dev``, no environment variables but ``PATH``,
  ``HOME`` and ``MALLOC_ARENA_MAX`` (bwrap itself starts with an empty environment too: its
  ``/proc/1/environ`` is visible inside), and the seccomp filter of ``seccomp.py``.

``--die-with-parent`` stays as a second line; the run's reaper (``reaper.py``) destroys the
cgroups of a run that was killed. Needs root (cgroups and the mount), util-linux (``unshare``,
``setpriv``, ``mount``) and x86-64 or aarch64 (the filter's tables); without them the backend
refuses to start, in one line, rather than run a sandbox without its limits. Must not know
about tools or environments.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
from pathlib import Path

from agentrl_tools.sandbox import cgroups, reaper, seccomp
from agentrl_tools.sandbox.channel import Channel, ProcessChannel
from agentrl_tools.sandbox.owner import Owner, sandbox_uid
from agentrl_tools.sandbox.session import Limits, SandboxUnavailable

WORKDIR = "/tmp"
OWN_TASKS = 2  # the outer bwrap process and bwrap's pid 1 share the sandbox's cgroup
_ENV = {"PATH": "/usr/bin:/bin"}
# $1: the sandbox's user id; $2: tmpfs options; then cgroup.procs files up to "--"; then the
# command. Joins the cgroups first, so that everything after (the mount, bwrap, the sandbox)
# is inside them.
LAUNCH = """uid=$1; opts=$2; shift 2
while [ "$1" != -- ]; do echo $$ > "$1" || exit 111; shift; done; shift
mount -t tmpfs -o "$opts" agentrl-sandbox /tmp || exit 112
exec setpriv --reuid="$uid" --regid="$uid" --clear-groups -- "$@"
"""


class BwrapBackend:
    name = "bwrap"
    workdir = WORKDIR

    def __init__(self, limits: Limits, python: str = "/usr/bin/python3", bwrap: str | None = None):
        self.limits, self.python = limits, python
        found = bwrap or shutil.which("bwrap")
        if found is None:
            raise SandboxUnavailable("bubblewrap is not installed (apt install bubblewrap)")
        if not Path(python).exists():
            raise SandboxUnavailable(f"{python} does not exist; the bwrap sandbox runs the host's system Python")
        if os.geteuid() != 0:
            raise SandboxUnavailable(
                "the bwrap sandbox needs root: the host sets its limits as a whole (cgroups) and mounts its "
                "work dir (size and inodes); run as root or use the docker backend"
            )
        self.tools = {tool: shutil.which(tool, path=_ENV["PATH"]) for tool in ("unshare", "setpriv", "mount")}
        missing = [tool for tool, path in self.tools.items() if path is None]
        if missing:
            raise SandboxUnavailable(
                f"the bwrap sandbox needs util-linux's {', '.join(missing)} (apt install util-linux)"
            )
        if not seccomp.supported():
            raise SandboxUnavailable(f"the bwrap sandbox has no seccomp filter for {platform.machine()}")
        try:
            self.tree = cgroups.Tree.find()
        except cgroups.CgroupUnavailable as exc:
            raise SandboxUnavailable(f"the bwrap sandbox cannot limit itself as a whole: {exc}") from None
        self.bwrap, self.filter, self.owner = found, seccomp.bpf_program(), Owner.this_process()
        self.removed_orphans = self.tree.remove_orphans()
        reaper.ensure()

    def command(self, args: list[str], filter_fd: int) -> list[str]:
        """The ``bwrap`` command line, run as the sandbox's user in the launcher's mount namespace."""
        argv = [self.bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--ro-bind", "/usr", "/usr"]
        for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            target = Path("/", name)
            if target.is_symlink():  # merged /usr: /lib -> usr/lib
                argv += ["--symlink", os.readlink(target), f"/{name}"]
            elif target.is_dir():
                argv += ["--ro-bind", str(target), f"/{name}"]
        argv += ["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev"]
        argv += ["--bind", WORKDIR, WORKDIR, "--chdir", WORKDIR]  # the launcher's tmpfs
        argv += ["--remount-ro", "/"]  # bwrap's root is a writable tmpfs until this
        argv += ["--seccomp", str(filter_fd)]
        argv += ["--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", WORKDIR]
        argv += ["--setenv", "MALLOC_ARENA_MAX", "2"]  # few malloc arenas: threads fit the memory rlimit
        return [*argv, self.python, *args]

    def launcher(self, group: cgroups.Group, command: list[str]) -> list[str]:
        """Joins ``group``, mounts the work dir, drops to a user of its own and runs ``command``."""
        limits, uid = self.limits, sandbox_uid()
        tmpfs = f"size={limits.disk_mb}m,nr_inodes={limits.inodes},mode=0700,uid={uid},gid={uid},nosuid,nodev"
        procs = [str(path) for path in group.procs_files]
        script = ["/bin/sh", "-c", LAUNCH, "agentrl-sandbox", str(uid), tmpfs, *procs, "--", *command]
        return [str(self.tools["unshare"]), "--mount", "--propagation", "private", "--", *script]

    def start(self, args: list[str]) -> Channel:
        group, filter_fd = self._prepare()
        try:
            argv = self.launcher(group, self.command(args, filter_fd))
            limits = self.limits
            return ProcessChannel(
                argv, group.destroy, limits.max_frame_bytes, limits.max_call_bytes, pass_fds=(filter_fd,), env=_ENV
            )
        except OSError as exc:
            group.destroy()
            raise SandboxUnavailable(f"bwrap could not start: {exc}") from None
        finally:
            os.close(filter_fd)

    def check(self) -> None:
        """Start one sandbox that runs ``true``; a one-line ``SandboxUnavailable`` if it cannot."""
        group, filter_fd = self._prepare()
        try:
            argv = self.launcher(group, [*self.command([], filter_fd)[:-1], "/usr/bin/true"])
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30, pass_fds=(filter_fd,), env=_ENV)
        finally:
            os.close(filter_fd)
            group.destroy()
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
            raise SandboxUnavailable(f"bwrap cannot create a sandbox here: {reason}")

    def _prepare(self) -> tuple[cgroups.Group, int]:
        """A new cgroup with the limits, and a pipe holding the seccomp filter for bwrap to read."""
        limits = self.limits
        quota = cgroups.Quota(limits.memory_mb << 20, limits.processes + OWN_TASKS, limits.cpus)
        try:
            group = self.tree.make(self.owner, quota)
        except OSError as exc:
            raise SandboxUnavailable(f"cannot make the sandbox's cgroup: {exc.strerror}") from None
        read, write = os.pipe()
        with contextlib.closing(os.fdopen(write, "wb")) as out:
            out.write(self.filter)  # a few hundred bytes: the pipe holds it all
        return group, read

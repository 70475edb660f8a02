"""The bubblewrap backend: a sandbox of Linux namespaces, for machines without a Docker daemon.

Owns the ``bwrap`` command line and the start of a sandbox. Every limit on the sandbox as a
whole is set from outside it, before it runs anything of its own:

- the host makes a cgroup for the sandbox (``cgroups.py``: memory, tasks, CPU) and mounts its
  work dir (``workdir.py``: a tmpfs of ``disk_mb`` and ``inodes``), the only writable place
  (``/``, ``/usr`` and ``/dev`` are read-only);
- it starts ``bwrap`` as a user of the sandbox's own (``owner.sandbox_uid``, with ``setpriv``):
  new user, PID, network, IPC, UTS and cgroup namespaces (``--unshare-all``: only a loopback
  interface), the host's ``/usr`` read-only (the interpreter is the host's ``/usr/bin/python3``,
  standard library only), a fresh ``/proc``, a minimal ``/dev``, the work dir bound as ``/tmp``,
  no environment variables but ``PATH``, ``HOME`` and ``MALLOC_ARENA_MAX`` (bwrap itself starts
  with an empty environment too: its ``/proc/1/environ`` is visible inside), and the seccomp
  filter of ``seccomp.py``;
- bwrap stops before it runs the sandbox's command (``--block-fd``) and says the pid of the
  sandbox's first process (``--info-fd``); the host moves both bwrap processes into the cgroup
  and only then lets it go on, so everything the sandbox ever starts is inside. ``kill``
  destroys the group, which nothing inside can leave or undo, and removes the work dir.

``--die-with-parent`` stays as a second line; the run's reaper (``reaper.py``) destroys the
cgroups and work dirs of a run that was killed. Needs root (cgroups and the mount), util-linux's
``setpriv`` and x86-64 or aarch64 (the filter's tables); without them the backend refuses to
start, in one line, rather than run a sandbox without its limits. Must not know about tools or
environments.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import select
import shutil
import subprocess
import time
from pathlib import Path

from agentrl_tools.sandbox import cgroups, reaper, seccomp, workdir
from agentrl_tools.sandbox.channel import Channel, ProcessChannel
from agentrl_tools.sandbox.owner import Owner, sandbox_uid
from agentrl_tools.sandbox.session import Limits, SandboxUnavailable
from agentrl_tools.sandbox.workdir import WorkDir

WORKDIR = "/tmp"
OWN_TASKS = 2  # the outer bwrap process and bwrap's pid 1 share the sandbox's cgroup
_ENV = {"PATH": "/usr/bin:/bin"}


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
        setpriv = shutil.which("setpriv", path=_ENV["PATH"])
        if setpriv is None:
            raise SandboxUnavailable("the bwrap sandbox needs util-linux's setpriv (apt install util-linux)")
        self.setpriv = setpriv
        if not seccomp.supported():
            raise SandboxUnavailable(f"the bwrap sandbox has no seccomp filter for {platform.machine()}")
        try:
            self.tree = cgroups.Tree.find()
        except cgroups.CgroupUnavailable as exc:
            raise SandboxUnavailable(f"the bwrap sandbox cannot limit itself as a whole: {exc}") from None
        self.bwrap, self.filter, self.owner = found, seccomp.bpf_program(), Owner.this_process()
        self.removed_orphans = self.tree.remove_orphans() + workdir.remove_orphans(cgroups.PREFIX)
        reaper.ensure()

    def command(self, args: list[str], work: WorkDir, fds: _Fds) -> list[str]:
        """The ``bwrap`` command line: it stops before running ``args`` until the host has moved it
        into the sandbox's cgroup."""
        argv = [self.bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--ro-bind", "/usr", "/usr"]
        for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            target = Path("/", name)
            if target.is_symlink():  # merged /usr: /lib -> usr/lib
                argv += ["--symlink", os.readlink(target), f"/{name}"]
            elif target.is_dir():
                argv += ["--ro-bind", str(target), f"/{name}"]
        argv += ["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev"]
        argv += ["--bind", str(work.path), WORKDIR, "--chdir", WORKDIR]
        argv += ["--remount-ro", "/"]  # bwrap's root is a writable tmpfs until this
        argv += ["--seccomp", str(fds.filter), "--info-fd", str(fds.info_w), "--block-fd", str(fds.block_r)]
        argv += ["--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", WORKDIR]
        argv += ["--setenv", "MALLOC_ARENA_MAX", "2"]  # few malloc arenas: threads fit the memory rlimit
        return [*argv, self.python, *args]

    def start(self, args: list[str]) -> Channel:
        limits = self.limits
        with self._prepared() as (group, work, fds, uid):
            argv = self._as_user(uid, self.command(args, work, fds))

            def teardown() -> None:
                group.destroy()
                work.remove()

            try:
                channel = ProcessChannel(
                    argv, teardown, limits.max_frame_bytes, limits.max_call_bytes, pass_fds=fds.passed, env=_ENV
                )
            except OSError as exc:
                raise SandboxUnavailable(f"bwrap could not start: {exc}") from None
            fds.close_passed()
            try:
                self._join(group, channel.process.pid, fds)
            except SandboxUnavailable:
                channel.kill()
                raise
            return channel

    def check(self) -> None:
        """Start one sandbox that runs ``true``; a one-line ``SandboxUnavailable`` if it cannot."""
        with self._prepared() as (group, work, fds, uid):
            argv = self._as_user(uid, [*self.command([], work, fds)[:-1], "/usr/bin/true"])
            try:
                process = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, pass_fds=fds.passed, env=_ENV)
            except OSError as exc:
                raise SandboxUnavailable(f"bwrap could not start: {exc}") from None
            fds.close_passed()
            try:
                with contextlib.suppress(SandboxUnavailable):  # then its exit status and stderr say why
                    self._join(group, process.pid, fds)
                _, stderr = process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise SandboxUnavailable("bwrap did not finish a sandbox running true in 30 s") from None
            finally:
                group.destroy()
                work.remove()
        if process.returncode != 0:
            reason = (stderr.strip().splitlines() or [f"exit status {process.returncode}"])[-1]
            raise SandboxUnavailable(f"bwrap cannot create a sandbox here: {reason}")

    def _as_user(self, uid: int, command: list[str]) -> list[str]:
        return [self.setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--", *command]

    def _join(self, group: cgroups.Group, pid: int, fds: _Fds) -> None:
        """Moves bwrap (``pid``) and the sandbox's first process into ``group``, then lets the
        sandbox run its command."""
        try:
            child = _child_pid(fds.info_r, self.limits.start_timeout_s)
            group.join((pid, child))
            os.write(fds.block_w, b"\0")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SandboxUnavailable(f"bwrap could not start: {exc}") from None

    @contextlib.contextmanager
    def _prepared(self):
        """A new cgroup with the limits, a work dir, a user id and the descriptors bwrap reads
        (the seccomp filter, the block) and writes (the info); all but the group and work dir
        (which the sandbox's teardown removes) are closed after, and those too on an error."""
        limits, uid = self.limits, sandbox_uid()
        quota = cgroups.Quota(limits.memory_mb << 20, limits.processes + OWN_TASKS, limits.cpus)
        try:
            group = self.tree.make(self.owner, quota)
        except OSError as exc:
            raise SandboxUnavailable(f"cannot make the sandbox's cgroup: {exc.strerror}") from None
        fds = None
        try:
            work = workdir.make(group.name, uid, limits.disk_mb, limits.inodes)
        except OSError as exc:
            group.destroy()
            raise SandboxUnavailable(f"cannot mount the sandbox's work dir: {exc.strerror}") from None
        try:
            fds = _Fds.open(self.filter)
            yield group, work, fds, uid
        except BaseException:
            group.destroy()
            work.remove()
            raise
        finally:
            if fds is not None:
                fds.close_all()


class _Fds:
    """The pipes between the host and a starting bwrap: the seccomp filter (bwrap reads it),
    ``--info-fd`` (bwrap writes the sandbox's pid) and ``--block-fd`` (the host writes: go on)."""

    def __init__(self) -> None:
        self.filter, filter_w = os.pipe()
        self.info_r, self.info_w = os.pipe()
        self.block_r, self.block_w = os.pipe()
        self._open = {self.filter, self.info_r, self.info_w, self.block_r, self.block_w}
        self._filter_w = filter_w

    @classmethod
    def open(cls, program: bytes) -> _Fds:
        fds = cls()
        with contextlib.closing(os.fdopen(fds._filter_w, "wb")) as out:
            out.write(program)  # a few hundred bytes: the pipe holds it all
        return fds

    @property
    def passed(self) -> tuple[int, int, int]:
        return (self.filter, self.info_w, self.block_r)

    def close_passed(self) -> None:
        """bwrap has its copies: the host's go, so bwrap's end of the info pipe is the only one."""
        self._close(self.passed)

    def close_all(self) -> None:
        self._close(tuple(self._open))

    def _close(self, fds: tuple[int, ...]) -> None:
        for fd in fds:
            if fd in self._open:
                self._open.discard(fd)
                os.close(fd)


def _child_pid(fd: int, timeout_s: float) -> int:
    """The sandbox's first process, from what bwrap writes to ``--info-fd`` (JSON, then EOF)."""
    deadline, data = time.monotonic() + timeout_s, b""
    while True:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise TimeoutError(f"bwrap said nothing in {timeout_s:g} s")
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
        if len(data) > 65536:
            raise ValueError("bwrap's info is too long")
    if not data:
        raise ValueError("bwrap exited before the sandbox was set up")
    pid = json.loads(data)["child-pid"]
    if not isinstance(pid, int) or pid <= 0:
        raise ValueError(f"bwrap said its child is {pid!r}")
    return pid

"""What the host looks like from outside a sandbox, before and after an attack.

``HostState.now()`` records what an attack could leave behind on the host: processes of the
sandboxes' users (both backends run each sandbox as a user of its own, from
``owner.SANDBOX_UIDS``), sandbox containers, mounts,
agentrl's sandbox cgroups, files the sandbox user owns in the host's shared temporary
directories, the host's anonymous and shared memory (what processes and tmpfs files hold),
used disk and the size of Docker's per-container files (its logs among them).
``assert_back_to(before)`` waits a few seconds for teardown to finish and then fails naming
whatever is still there. ``MemorySampler`` records, while an attack runs, the most memory the
sandbox user's processes held at once (the sum of their proportional set sizes, so pages
shared after a fork count once) plus what tmpfs and shared memory grew by: a limit is checked
where it must hold, on the host. (MemAvailable is no measure here: on these VMs it moves by
hundreds of MB while anonymous memory does not.)
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from agentrl_tools.sandbox import workdir
from agentrl_tools.sandbox.owner import SANDBOX_UIDS


def sandbox_user(uid: int) -> bool:
    return uid in SANDBOX_UIDS or uid == 65534  # nobody: what sandboxes ran as before


SHARED_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run")
DOCKER_CONTAINERS = Path("/var/lib/docker/containers")
MEMORY_SLACK = 64 << 20  # the test process's own heap and allocator noise between two readings
DISK_SLACK = 8 << 20


def meminfo(*keys: str) -> int:
    """The sum of ``keys`` of /proc/meminfo, in bytes."""
    values = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, _, rest = line.partition(":")
        values[name] = int(rest.split()[0]) << 10
    return sum(values[key] for key in keys)


def held_memory() -> int:
    """Memory that processes and tmpfs files hold: anonymous pages and shared memory."""
    return meminfo("AnonPages", "Shmem")


def proportional_size(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) << 10
    except OSError:
        pass
    return 0


def sandbox_processes() -> dict[int, str]:
    """pid -> command of every host process whose real uid is a sandbox's."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
            state = next(line for line in status.splitlines() if line.startswith("State:")).split()[1]
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120]
        except (OSError, StopIteration, ValueError):
            continue
        if sandbox_user(uid) and state != "Z":
            found[int(entry.name)] = command
    return found


def sandbox_containers() -> set[str]:
    if shutil.which("docker") is None:
        return set()
    listed = ["docker", "ps", "-aq", "--no-trunc", "--filter", "label=agentrl.sandbox"]
    done = subprocess.run(listed, capture_output=True, text=True)
    return set(done.stdout.split()) if done.returncode == 0 else set()


def mounts() -> set[str]:
    return {line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()}


def sandbox_cgroups() -> set[str]:
    """Every cgroup directory agentrl made for a sandbox, in any hierarchy."""
    return {str(path) for path in Path("/sys/fs/cgroup").glob("**/agentrl-sandbox.*") if path.is_dir()}


def sandbox_files() -> set[str]:
    """Files of a sandbox user in the host's shared directories, and the bwrap work dirs."""
    found = {str(path) for path in workdir.ROOT.glob("*")}
    for top in SHARED_DIRS:
        for path in Path(top).glob("*"):
            try:
                if sandbox_user(path.lstat().st_uid):
                    found.add(str(path))
            except OSError:
                continue
    return found


def dir_bytes(path: Path) -> int:
    total = 0
    if path.is_dir():
        for item in path.rglob("*"):
            try:
                total += item.lstat().st_size
            except OSError:
                continue
    return total


@dataclass
class HostState:
    processes: dict[int, str]
    containers: set[str]
    mounts: set[str]
    cgroups: set[str]
    files: set[str]
    memory: int
    disk_used: int
    docker_bytes: int

    @classmethod
    def now(cls) -> HostState:
        return cls(
            sandbox_processes(),
            sandbox_containers(),
            mounts(),
            sandbox_cgroups(),
            sandbox_files(),
            held_memory(),
            shutil.disk_usage("/").used,
            dir_bytes(DOCKER_CONTAINERS),
        )

    def left_over(self, before: HostState) -> list[str]:
        """What is on the host now that was not there ``before``, one line each."""
        problems = []
        new = {pid: cmd for pid, cmd in self.processes.items() if pid not in before.processes}
        if new:
            problems.append(f"sandbox-user processes left: {new}")
        if self.containers - before.containers:
            problems.append(f"containers left: {sorted(self.containers - before.containers)}")
        if self.mounts - before.mounts:
            problems.append(f"mounts left: {sorted(self.mounts - before.mounts)}")
        if self.cgroups - before.cgroups:
            problems.append(f"cgroups left: {sorted(self.cgroups - before.cgroups)}")
        if self.files - before.files:
            problems.append(f"files of the sandbox user left: {sorted(self.files - before.files)}")
        if self.memory > before.memory + MEMORY_SLACK:
            problems.append(f"host memory not back: {(self.memory - before.memory) >> 20} MB more held")
        if self.disk_used > before.disk_used + DISK_SLACK:
            problems.append(f"host disk not back: {(self.disk_used - before.disk_used) >> 20} MB more")
        if self.docker_bytes > before.docker_bytes + (1 << 20):
            problems.append(f"Docker's container files grew by {(self.docker_bytes - before.docker_bytes) >> 10} KB")
        return problems

    def assert_back_to(self, before: HostState, wait_s: float = 10.0) -> None:
        del self  # the state is read again until it is clean or the wait is over
        deadline = time.monotonic() + wait_s
        while (problems := HostState.now().left_over(before)) and time.monotonic() < deadline:
            time.sleep(0.25)
        assert not problems, "; ".join(problems)


class MemorySampler:
    """Samples, every 10 ms in a thread, the memory the sandbox user's processes that were not
    running at the start hold (the sum of their PSS) plus the growth of the host's shared
    memory (tmpfs files); ``peak_use`` is the largest sample."""

    def __init__(self) -> None:
        self.existing = set(sandbox_processes())
        self.shared = meminfo("Shmem")
        self.peak_use = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            held = sum(proportional_size(pid) for pid in sandbox_processes() if pid not in self.existing)
            self.peak_use = max(self.peak_use, held + max(0, meminfo("Shmem") - self.shared))
            time.sleep(0.01)

"""The bwrap sandbox's work dir as the host mounts it: a size and an inode limit that hold, only
the sandbox's user may enter it, and what a dead run left is unmounted by the next run. Real
tmpfs mounts (root, as CI runs)."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from pathlib import Path

import pytest

from agentrl_tools.sandbox import workdir
from agentrl_tools.sandbox.cgroups import PREFIX
from agentrl_tools.sandbox.owner import Owner, sandbox_uid


@pytest.fixture(autouse=True)
def root_only():
    if os.geteuid() != 0:
        if os.environ.get("AGENTRL_REQUIRE_SANDBOX") == "1":
            pytest.fail("the work dir tests need root (the bwrap backend does)")
        pytest.skip("mounting a tmpfs needs root")


def dead_owner() -> Owner:
    """This process's pid with another start time: a run that died and whose pid was reused."""
    return Owner(Owner.this_process().host, os.getpid(), "1")


def mounted(path: Path) -> bool:
    return any(line.split()[4] == str(path) for line in Path("/proc/self/mountinfo").read_text().splitlines())


def test_the_size_and_inode_limits_hold_and_remove_unmounts():
    uid = sandbox_uid()
    work = workdir.make(f"{PREFIX}{Owner.this_process().dirname}.test-limits", uid, 1, 64)
    try:
        for path in (work.home, work.path):
            stat = path.stat()
            assert (stat.st_uid, stat.st_gid, stat.st_mode & 0o777) == (uid, uid, 0o700)
        with pytest.raises(OSError) as full:
            (work.path / "big").write_bytes(b"x" * (2 << 20))
        assert full.value.errno == errno.ENOSPC
        (work.path / "big").unlink()
        with pytest.raises(OSError) as out_of_inodes:
            for n in range(100):
                (work.path / f"f{n}").touch()
        assert out_of_inodes.value.errno == errno.ENOSPC
        assert 50 <= len(list(work.path.iterdir())) < 64
    finally:
        work.remove()
    assert not work.home.exists() and not mounted(work.path)


def test_a_work_dir_opened_to_everyone_inside_stays_closed_on_the_host():
    """Code in the sandbox may ``chmod 777`` its /tmp; the directory above it keeps every other
    host user out."""
    uid = sandbox_uid()
    work = workdir.make(f"{PREFIX}{Owner.this_process().dirname}.test-chmod", uid, 1, 64)
    try:
        os.chmod(work.path, 0o777)  # as the sandbox's user could
        probe = "import os, sys; os.listdir(sys.argv[1])"
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        probing = [*as_nobody, "/usr/bin/python3", "-c", probe, str(work.path)]
        done = subprocess.run(probing, capture_output=True, text=True)
        assert done.returncode != 0 and "PermissionError" in done.stderr, done.stderr
    finally:
        work.remove()


def test_removing_a_work_dir_still_open_detaches_it():
    work = workdir.make(f"{PREFIX}{Owner.this_process().dirname}.test-open", sandbox_uid(), 1, 64)
    with open(work.path / "held", "w") as held:
        work.remove()
        held.write("still writable until closed")
    assert not work.home.exists() and not mounted(work.path)


def test_a_dead_runs_work_dirs_are_removed_and_a_live_runs_stay():
    orphan = workdir.make(f"{PREFIX}{dead_owner().dirname}.s900", sandbox_uid(), 1, 64)
    mine = workdir.make(f"{PREFIX}{Owner.this_process().dirname}.s901", sandbox_uid(), 1, 64)
    try:
        assert workdir.remove_orphans(PREFIX) >= 1
        assert not orphan.home.exists() and not mounted(orphan.path)
        assert mine.path.exists() and mounted(mine.path)
        workdir.remove_run(Owner.this_process(), PREFIX)
        assert not mine.home.exists() and not mounted(mine.path)
    finally:
        orphan.remove()
        mine.remove()


def naming(path: Path) -> subprocess.Popen:
    """A process, as a sandbox's user, whose command line names ``path`` (as bwrap's does)."""
    uid = sandbox_uid()
    command = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "sh", "-c", "sleep 300", str(path)]
    proc = subprocess.Popen(command)
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    deadline = time.monotonic() + 10
    while str(path).encode() not in cmdline.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.01)  # until it has exec'd: before, its command line is the forked test's (a loaded machine)
    return proc


def test_a_process_that_names_a_dead_runs_work_dir_is_killed_with_it():
    """A bwrap the run started and never moved into its cgroup (the run was killed in between)
    is in no sandbox cgroup: the reaper (``remove_run``) and the next run (``remove_orphans``)
    find it by the work dir on its command line."""
    orphan = workdir.make(f"{PREFIX}{dead_owner().dirname}.s902", sandbox_uid(), 1, 64)
    stray = naming(orphan.path)
    try:
        assert workdir.remove_orphans(PREFIX) >= 1
        assert stray.wait(timeout=5) == -9 and not orphan.home.exists()
    finally:
        stray.kill()
        orphan.remove()
    mine = Owner.this_process()
    stray = naming(workdir.ROOT / f"{PREFIX}{mine.dirname}.s903" / "work")  # its dir already removed
    try:
        workdir.remove_run(mine, PREFIX)
        assert stray.wait(timeout=5) == -9
    finally:
        stray.kill()

"""Per-sandbox cgroups: limits that hold for a group of processes as a whole, a kill nothing
in the group escapes, and the groups of a run that died found and removed. Real cgroups where
this process may write them (CI runs as root), and the v2 file layout on a stand-in tree."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from agentrl_tools.sandbox import cgroups
from agentrl_tools.sandbox.cgroups import Group, Quota, Tree
from agentrl_tools.sandbox.owner import Owner

MB = 1 << 20
# joins the groups named on the command line, then runs the Python code in $CODE
JOIN = 'for f; do echo $$ > "$f"; done; exec python3 -c "$CODE"'


@pytest.fixture
def tree() -> Tree:
    try:
        return Tree.find()
    except cgroups.CgroupUnavailable as exc:
        if os.environ.get("AGENTRL_REQUIRE_SANDBOX") == "1":
            pytest.fail(f"cgroups required but unavailable: {exc}")
        pytest.skip(str(exc))


def start_in(group: Group, code: str) -> subprocess.Popen:
    argv = ["sh", "-c", JOIN, "join", *map(str, group.procs_files)]
    return subprocess.Popen(argv, env={"PATH": "/usr/bin:/bin", "CODE": code}, stdout=subprocess.PIPE, text=True)


def wait_for(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_tasks_are_limited_for_the_group_and_destroy_kills_them_all(tree):
    group = tree.make(Owner.this_process(), Quota(256 * MB, 12, 1.0))
    code = (
        "import os, time\nmade = 0\nfor _ in range(40):\n    try:\n        if os.fork() == 0:\n"
        "            os.setsid()\n            time.sleep(300)\n        made += 1\n    except OSError:\n        pass\n"
        "print(made, flush=True)\ntime.sleep(300)"
    )
    process = start_in(group, code)
    assert process.stdout is not None
    assert int(process.stdout.readline()) == 11  # 12 tasks, the parent included
    assert len(group.pids()) == 12
    assert group.destroy()
    assert process.wait(timeout=5) == -9
    assert not any(path.exists() for path in group.dirs)


def test_memory_is_limited_for_the_group(tree):
    group = tree.make(Owner.this_process(), Quota(96 * MB, 32, 1.0))
    code = (
        "import os, time\nfor _ in range(3):\n    if os.fork() == 0:\n        block = bytearray(64 << 20)\n"
        "        block[::4096] = b'x' * (len(block) // 4096)\n        time.sleep(300)\n"
        "time.sleep(2)\nprint(len([p for p in os.listdir('/proc') if p.isdigit()]), flush=True)\ntime.sleep(300)"
    )
    process = start_in(group, code)
    assert process.stdout is not None
    process.stdout.readline()
    usage = Path(group.dirs[0], "memory.max_usage_in_bytes" if tree.version == 1 else "memory.peak")
    if usage.exists():
        assert int(usage.read_text()) <= 96 * MB
    assert len(group.pids()) < 4  # three children of 64 MB each cannot all live in 96 MB
    group.destroy()
    process.wait(timeout=5)


def test_cpu_is_limited_for_the_group(tree):
    group = tree.make(Owner.this_process(), Quota(256 * MB, 32, 0.5))
    code = (
        "import os, resource, time\nstart = time.monotonic()\nfor _ in range(2):\n    if os.fork() == 0:\n"
        "        end = time.monotonic() + 1.0\n        while time.monotonic() < end:\n            pass\n"
        "        os._exit(0)\nfor _ in range(2):\n    os.wait()\nused = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print((used.ru_utime + used.ru_stime) / (time.monotonic() - start), flush=True)"
    )
    process = start_in(group, code)
    assert process.stdout is not None
    assert float(process.stdout.readline()) < 0.5 * 1.25 + 0.05
    process.wait(timeout=5)
    group.destroy()


def dead_owner() -> Owner:
    """This process's pid with another start time: a run that died and whose pid was reused."""
    return Owner(Owner.this_process().host, os.getpid(), "1")


def test_a_dead_runs_groups_are_removed_with_what_runs_in_them(tree):
    orphan = tree.make(dead_owner(), Quota(64 * MB, 8, 1.0))
    mine = tree.make(Owner.this_process(), Quota(64 * MB, 8, 1.0))
    process = start_in(orphan, "import time\ntime.sleep(300)")
    wait_for(lambda: len(orphan.pids()) == 1)
    assert tree.remove_orphans() >= 1
    assert process.wait(timeout=5) == -9
    assert not any(path.exists() for path in orphan.dirs)
    assert all(path.exists() for path in mine.dirs)  # a live run's group stays
    tree.remove_run(Owner.this_process())
    assert not any(path.exists() for path in mine.dirs)


@pytest.fixture
def v2_tree(tmp_path, monkeypatch) -> Path:
    """A stand-in cgroup2 mount: mountinfo and /proc/self/cgroup point at ``tmp_path``."""
    root = tmp_path / "cgroup2"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (root / "cgroup.subtree_control").write_text("")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(f"30 23 0:26 / {root} rw,nosuid - cgroup2 cgroup2 rw\n")
    own = tmp_path / "cgroup"
    own.write_text("0::/user.slice\n")
    monkeypatch.setattr(cgroups, "_MOUNTINFO", mountinfo)
    monkeypatch.setattr(cgroups, "_OWN", own)
    return root


def test_v2_groups_get_memory_swap_tasks_and_cpu_limits(v2_tree):
    tree = Tree.find()
    assert (tree.version, tree.parents, tree.freezer_parent) == (2, (v2_tree,), None)
    assert (v2_tree / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    group = tree.make(Owner.this_process(), Quota(300 * MB, 40, 1.5))
    path = group.dirs[0]
    assert path.parent == v2_tree and path.name.startswith(f"agentrl-sandbox.{Owner.this_process().dirname}.s")
    written = {name: (path / name).read_text() for name in ("memory.max", "pids.max", "cpu.max")}
    assert written == {"memory.max": str(300 * MB), "pids.max": "40", "cpu.max": "150000 100000"}
    assert group.procs_files == [path / "cgroup.procs"]
    (path / "memory.swap.max").write_text("max")  # with swap accounting, the kernel makes this file
    tree._limit(group, Quota(300 * MB, 40, 1.5))
    assert (path / "memory.swap.max").read_text() == "0"


V2_ROOT = Path("/sys/fs/cgroup/unified")


@pytest.mark.skipif(
    not (V2_ROOT / "cgroup.procs").exists() or os.geteuid() != 0, reason="needs a cgroup2 mount and root"
)
def test_a_v2_group_is_killed_through_cgroup_kill():
    """The v2 kill on a real cgroup2 hierarchy (one without controllers, as hybrid machines have)."""
    path = V2_ROOT / f"agentrl-sandbox.test-{os.getpid()}"
    path.mkdir()
    group = Group([path], 2)
    process = start_in(group, "import os, time\nos.fork()\nos.fork()\ntime.sleep(300)")
    wait_for(lambda: len(group.pids()) == 4)
    assert group.destroy()
    assert process.wait(timeout=5) == -9 and not path.exists()

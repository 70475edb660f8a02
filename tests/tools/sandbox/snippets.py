"""Attack code shared by the attack tests: what a hostile program runs inside a sandbox."""

from __future__ import annotations

WRITE_EVERY_FD = """
import os
def to_every_fd(data):
    for fd in range(3, 64):
        try:
            os.write(fd, data)
        except OSError:
            pass
"""


def memory_across_children(children: int, blocks: int, block_mb: int) -> str:
    """``children`` forked processes, each touching up to ``blocks`` x ``block_mb`` MB and holding
    it for a second, so that what they hold is held at once."""
    return f"""
import os, time
children = []
for _ in range({children}):
    pid = os.fork()
    if pid == 0:
        held = []
        try:
            for _ in range({blocks}):
                block = bytearray({block_mb} << 20)
                block[::4096] = b"x" * len(range(0, len(block), 4096))  # touch every page
                held.append(block)
        except MemoryError:
            pass
        time.sleep(1.0)
        os._exit(0)
    children.append(pid)
for pid in children:
    os.waitpid(pid, 0)
"""

"""The seccomp filter, checked without a kernel: its syscall tables against the kernel headers
installed on this host, and its BPF program run by a small classic-BPF interpreter on every
case that matters (each denied call, calls Python needs, clone's namespace flags, clone3, socket
families, another ABI). The attack suite checks the same calls against the real kernel."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest

from agentrl_tools.sandbox import seccomp

HEADERS = {
    "x86_64": Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
    "aarch64": Path("/usr/include/asm-generic/unistd.h"),
}
ALLOW, KILL = 0x7FFF0000, 0x80000000
EPERM, ENOSYS = 0x00050000 | 1, 0x00050000 | 38


def header_numbers(machine: str) -> dict[str, int]:
    header = HEADERS[machine]
    if not header.exists():
        pytest.skip(f"{header} is not installed (linux-libc-dev)")
    text = header.read_text()
    numbers = {m[1]: int(m[2]) for m in re.finditer(r"#define __NR_(\w+)\s+(\d+)", text)}
    numbers |= {m[1]: int(m[2]) for m in re.finditer(r"#define __NR3264_(\w+)\s+(\d+)", text) if m[1] not in numbers}
    return numbers


@pytest.mark.parametrize("machine", sorted(seccomp.ARCHES))
def test_syscall_tables_match_the_kernel_headers(machine):
    ours = seccomp.ARCHES[machine][2]
    theirs = header_numbers(machine)
    assert {name: theirs.get(name) for name in ours} == ours
    absent = [name for name in seccomp.DENIED if name not in ours]
    assert all(name not in theirs for name in absent), "a denied call the table leaves out exists on this ABI"


def run_filter(program: bytes, nr: int, arch: int, args: tuple[int, ...] = ()) -> int:
    """What a classic-BPF seccomp ``program`` returns for one system call."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, *(list(args) + [0] * 6)[:6])
    instructions = [struct.unpack("=HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = instructions[pc]
        if code == 0x20:  # BPF_LD | BPF_W | BPF_ABS
            acc = struct.unpack_from("=I", data, k)[0]
            pc += 1
        elif code == 0x06:  # BPF_RET | BPF_K
            return k
        elif code in (0x15, 0x35, 0x45):  # JEQ, JGE, JSET with K
            taken = acc == k if code == 0x15 else acc >= k if code == 0x35 else bool(acc & k)
            pc += 1 + (jt if taken else jf)
        else:
            raise AssertionError(f"unexpected BPF instruction {code:#x}")


@pytest.mark.parametrize("machine", sorted(seccomp.ARCHES))
def test_the_filter_refuses_what_it_lists_and_allows_the_rest(machine):
    arch, _, numbers = seccomp.ARCHES[machine]
    program = seccomp.bpf_program(machine)
    for name in seccomp.DENIED:
        if name in numbers:
            assert run_filter(program, numbers[name], arch) == EPERM, name
    allowed = {"x86_64": (0, 1, 2, 9, 257, 231, 262), "aarch64": (63, 64, 56, 222, 94, 79)}[machine]
    for nr in allowed:  # read, write, mmap, openat, exit_group, fstat...
        assert run_filter(program, nr, arch) == ALLOW, nr
    assert run_filter(program, numbers["clone3"], arch) == ENOSYS
    sigchld = 17
    assert run_filter(program, numbers["clone"], arch, (sigchld,)) == ALLOW  # fork
    assert run_filter(program, numbers["clone"], arch, (0x003D0F00,)) == ALLOW  # a thread
    for flag in seccomp.NAMESPACE_FLAGS:
        assert run_filter(program, numbers["clone"], arch, (flag | sigchld,)) == EPERM, hex(flag)
    for call in ("socket", "socketpair"):
        for family in range(64):
            expected = ALLOW if family in seccomp.SOCKET_FAMILIES else EPERM
            assert run_filter(program, numbers[call], arch, (family, 1, 0)) == expected, (call, family)
    other_arch = next(a for a, _, _ in seccomp.ARCHES.values() if a != arch)
    assert run_filter(program, 0, other_arch) == KILL
    assert run_filter(program, 0, 0x40000003) == KILL  # 32-bit x86
    if machine == "x86_64":
        assert run_filter(program, 0x40000000 | 1, arch) == KILL  # x32


def docker_refuses(profile: dict, name: str, args: tuple[int, ...] = ()) -> int | None:
    """The errno Docker's profile answers ``name(args)`` with, or None when it allows it."""
    for rule in profile["syscalls"]:
        if name not in rule["names"]:
            continue
        conditions = rule.get("args") or []
        matched = True
        for cond in conditions:
            value = args[cond["index"]] if cond["index"] < len(args) else 0
            op = cond["op"]
            matched &= {
                "SCMP_CMP_EQ": value == cond["value"],
                "SCMP_CMP_GE": value >= cond["value"],
                "SCMP_CMP_MASKED_EQ": (value & cond["value"]) == cond.get("valueTwo", 0),
            }[op]
        if matched:
            return rule["errnoRet"]
    return None


@pytest.mark.parametrize("machine", sorted(seccomp.ARCHES))
def test_the_docker_profile_refuses_the_same(machine):
    profile = json.loads(seccomp.docker_profile(machine))
    _, scmp_arch, numbers = seccomp.ARCHES[machine]
    assert profile["defaultAction"] == "SCMP_ACT_ALLOW" and profile["architectures"] == [scmp_arch]
    for name in seccomp.DENIED:
        assert docker_refuses(profile, name) == (1 if name in numbers else None), name
    assert docker_refuses(profile, "read") is None
    assert docker_refuses(profile, "clone3") == 38
    assert docker_refuses(profile, "clone", (17,)) is None
    for flag in seccomp.NAMESPACE_FLAGS:
        assert docker_refuses(profile, "clone", (flag | 17,)) == 1
    for family in range(64):
        expected = None if family in seccomp.SOCKET_FAMILIES else 1
        assert docker_refuses(profile, "socket", (family,)) == expected, family
        assert docker_refuses(profile, "socketpair", (family,)) == expected, family

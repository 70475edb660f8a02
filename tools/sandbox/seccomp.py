"""The system calls model-written code may not make, as a seccomp filter for each backend.

Owns ``DENIED`` (the calls, grouped by why), the classic-BPF program that bwrap loads
(``bpf_program``: ``--seccomp FD``) and the JSON profile Docker takes (``docker_profile``),
both built from the same lists, for x86-64 and aarch64. What they refuse:

- tracing and reading other processes (ptrace, process_vm_readv/writev, kcmp): nothing
  inside can take the parent-death signal from the sandbox's pid 1, or read the interpreter;
- new namespaces and mounts (unshare, setns, clone with a namespace flag, mount and the new
  mount API, pivot_root, chroot): the sandbox's view of the system is the one it was given;
- kernel keys, BPF, perf events, userfaultfd and io_uring: large kernel attack surface that
  Python code has no use for;
- modules, kexec, reboot, swap, clocks, host names, quotas, the kernel log and the rest of
  the system administrator's calls;
- IPC objects that live outside the work dir (POSIX message queues, System V messages,
  semaphores and shared memory): they would hold kernel memory that no file limit counts;
- sockets of any family but UNIX: the sandbox has no network to use them on, AF_VSOCK reaches
  the hypervisor from inside any network namespace, the buffers of TCP and UDP sockets on the
  sandbox's own loopback are not charged to its memory limit on cgroup v1 (a sandbox held 1.1
  GB that way against a 512 MB limit), and AF_ALG, netlink and the rest are attack surface.

A refused call fails with ``EPERM``; ``clone3`` with ``ENOSYS`` (its flags are in memory a
filter cannot read), so the C library falls back to ``clone``, whose flags it can. A call
made through another ABI (32-bit x86, x32) ends the process. The filter is a deny list: a
system call newer than these tables is allowed. Knows nothing of sandboxes' other settings.
"""

from __future__ import annotations

import json
import platform
import struct

TRACING = ("ptrace", "process_vm_readv", "process_vm_writev", "kcmp")
NAMESPACES = (
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
)
KERNEL_SURFACE = (
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
)
ADMINISTRATION = (
    "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "get_kernel_syms",
    "query_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "quotactl_fd",
    "syslog",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "sethostname",
    "setdomainname",
    "vhangup",
    "personality",
    "lookup_dcookie",
    "fanotify_init",
    "name_to_handle_at",
    "open_by_handle_at",
    "iopl",
    "ioperm",
    "uselib",
    "ustat",
    "sysfs",
    "_sysctl",
    "nfsservctl",
    "mbind",
    "set_mempolicy",
    "get_mempolicy",
    "move_pages",
)
IPC = (
    "mq_open",
    "mq_unlink",
    "mq_timedsend",
    "mq_timedreceive",
    "mq_notify",
    "mq_getsetattr",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "semget",
    "semop",
    "semtimedop",
    "semctl",
    "shmget",
    "shmat",
    "shmdt",
    "shmctl",
)
DENIED = TRACING + NAMESPACES + KERNEL_SURFACE + ADMINISTRATION + IPC
SOCKET_FAMILIES = (1,)  # AF_UNIX
NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
EPERM, ENOSYS = 1, 38

# System call numbers, from the kernel's uapi headers (asm/unistd_64.h, asm-generic/unistd.h).
_X86_64 = {
    "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312, "unshare": 272,
    "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "open_tree": 428,
    "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
    "keyctl": 250, "add_key": 248, "request_key": 249, "bpf": 321, "perf_event_open": 298,
    "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "init_module": 175, "finit_module": 313, "delete_module": 176, "create_module": 174,
    "get_kernel_syms": 177, "query_module": 178, "kexec_load": 246, "kexec_file_load": 320, "reboot": 169,
    "swapon": 167, "swapoff": 168, "acct": 163, "quotactl": 179, "quotactl_fd": 443, "syslog": 103,
    "settimeofday": 164, "clock_settime": 227, "clock_adjtime": 305, "sethostname": 170,
    "setdomainname": 171, "vhangup": 153, "personality": 135, "lookup_dcookie": 212, "fanotify_init": 300,
    "name_to_handle_at": 303, "open_by_handle_at": 304, "iopl": 172, "ioperm": 173, "uselib": 134,
    "ustat": 136, "sysfs": 139, "_sysctl": 156, "nfsservctl": 180, "mbind": 237, "set_mempolicy": 238,
    "get_mempolicy": 239, "move_pages": 279, "mq_open": 240, "mq_unlink": 241, "mq_timedsend": 242,
    "mq_timedreceive": 243, "mq_notify": 244, "mq_getsetattr": 245, "msgget": 68, "msgsnd": 69,
    "msgrcv": 70, "msgctl": 71, "semget": 64, "semop": 65, "semtimedop": 220, "semctl": 66, "shmget": 29,
    "shmat": 30, "shmdt": 67, "shmctl": 31, "clone": 56, "clone3": 435, "socket": 41, "socketpair": 53,
}  # fmt: skip
_AARCH64 = {
    "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "kcmp": 272, "unshare": 97,
    "setns": 268, "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51, "open_tree": 428,
    "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
    "keyctl": 219, "add_key": 217, "request_key": 218, "bpf": 280, "perf_event_open": 241,
    "userfaultfd": 282, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "init_module": 105, "finit_module": 273, "delete_module": 106, "kexec_load": 104,
    "kexec_file_load": 294, "reboot": 142, "swapon": 224, "swapoff": 225, "acct": 89, "quotactl": 60,
    "quotactl_fd": 443, "syslog": 116, "settimeofday": 170, "clock_settime": 112, "clock_adjtime": 266,
    "sethostname": 161, "setdomainname": 162, "vhangup": 58, "personality": 92, "lookup_dcookie": 18,
    "fanotify_init": 262, "name_to_handle_at": 264, "open_by_handle_at": 265, "nfsservctl": 42,
    "mbind": 235, "set_mempolicy": 237, "get_mempolicy": 236, "move_pages": 239, "mq_open": 180,
    "mq_unlink": 181, "mq_timedsend": 182, "mq_timedreceive": 183, "mq_notify": 184, "mq_getsetattr": 185,
    "msgget": 186, "msgsnd": 189, "msgrcv": 188, "msgctl": 187, "semget": 190, "semop": 193,
    "semtimedop": 192, "semctl": 191, "shmget": 194, "shmat": 196, "shmdt": 197, "shmctl": 195,
    "clone": 220, "clone3": 435, "socket": 198, "socketpair": 199,
}  # fmt: skip
# machine -> (AUDIT_ARCH_* of seccomp_data.arch, Docker's name of the ABI, numbers)
ARCHES = {
    "x86_64": (0xC000003E, "SCMP_ARCH_X86_64", _X86_64),
    "aarch64": (0xC00000B7, "SCMP_ARCH_AARCH64", _AARCH64),
}
_X32_BIT = 0x40000000  # x86-64's x32 ABI: the same numbers with this bit set

# classic BPF, as linux/filter.h and linux/seccomp.h define it
_LD_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_KILL_PROCESS, _ALLOW, _ERRNO = 0x80000000, 0x7FFF0000, 0x00050000
_NR, _ARCH, _ARG0 = 0, 4, 16  # offsets in struct seccomp_data (arg0's low 32 bits, little-endian)


def supported(machine: str | None = None) -> bool:
    return (machine or platform.machine()) in ARCHES


def bpf_program(machine: str | None = None) -> bytes:
    """The filter as an array of ``struct sock_filter``, what ``bwrap --seccomp`` reads."""
    machine = machine or platform.machine()
    arch, _, numbers = ARCHES[machine]
    program: list = [(_LD_ABS, 0, 0, _ARCH), (_JEQ, 0, "kill", arch), (_LD_ABS, 0, 0, _NR)]
    if machine == "x86_64":
        program.append((_JGE, "kill", 0, _X32_BIT))
    program += [(_JEQ, "deny", 0, number) for number in sorted({numbers[n] for n in DENIED if n in numbers})]
    program += [
        (_JEQ, "enosys", 0, numbers["clone3"]),
        (_JEQ, "socket", 0, numbers["socket"]),
        (_JEQ, "socket", 0, numbers["socketpair"]),
        (_JEQ, "clone", 0, numbers["clone"]),
        _ret(_ALLOW),
        "clone",
        (_LD_ABS, 0, 0, _ARG0),
        (_JSET, "deny", 0, sum(NAMESPACE_FLAGS)),
        _ret(_ALLOW),
        "socket",
        (_LD_ABS, 0, 0, _ARG0),
        *[(_JEQ, "allow_family", 0, family) for family in SOCKET_FAMILIES],
        "deny",
        _ret(_ERRNO | EPERM),
        "allow_family",
        _ret(_ALLOW),
        "enosys",
        _ret(_ERRNO | ENOSYS),
        "kill",
        _ret(_KILL_PROCESS),
    ]
    return _assemble(program)


def docker_profile(machine: str | None = None) -> str:
    """Docker's ``seccomp=`` security option: the same denials as ``bpf_program``."""
    _, scmp_arch, numbers = ARCHES[machine or platform.machine()]
    names = [name for name in DENIED if name in numbers]
    rules: list[dict] = [{"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM}]
    rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS})
    for flag in NAMESPACE_FLAGS:
        masked = {"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}
        rules.append({"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM, "args": [masked]})
    # a family outside SOCKET_FAMILIES: one rule per value below the largest allowed, one for all above
    top = max(SOCKET_FAMILIES)
    refused = [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"} for v in range(top) if v not in SOCKET_FAMILIES]
    refused.append({"index": 0, "value": top + 1, "op": "SCMP_CMP_GE"})
    for condition in refused:
        rules.append(
            {"names": ["socket", "socketpair"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM, "args": [condition]}
        )
    return json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "architectures": [scmp_arch], "syscalls": rules})


def _ret(value: int) -> tuple[int, int, int, int]:
    return (_RET, 0, 0, value)


def _assemble(program: list) -> bytes:
    """Instructions ``(code, jt, jf, k)`` whose jump targets may be label names, and the labels
    (strings) themselves, as BPF bytes; a jump counts the instructions it skips."""
    labels: dict[str, int] = {}
    instructions: list[tuple[int, int | str, int | str, int]] = []
    for item in program:
        if isinstance(item, str):
            labels[item] = len(instructions)
        else:
            instructions.append(item)

    def offset(target: int | str, at: int) -> int:
        jump = target if isinstance(target, int) else labels[target] - at - 1
        assert 0 <= jump <= 255, f"BPF jumps go forward, at most 255: {target} from {at}"
        return jump

    out = b""
    for at, (code, jt, jf, k) in enumerate(instructions):
        out += struct.pack("=HBBI", code, offset(jt, at), offset(jf, at), k)
    return out

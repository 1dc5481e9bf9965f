"""A unit's seccomp settings applied to a process started here, as systemd 252 applies them.

systemd is not PID 1 where the tests run, so ``systemctl start`` cannot show that the service works inside
its sandbox.  The parts of the sandbox that can break a working program are its seccomp filters, and those
need no systemd: this module reads a unit's ``SystemCallFilter=`` (groups expanded by ``systemd-analyze
syscall-filter``, lines combined in order, ``@default`` first for an allow list, as systemd does),
``SystemCallErrorNumber=``, ``MemoryDenyWriteExecute=``, ``RestrictAddressFamilies=``, ``NoNewPrivileges=``
and ``LimitCORE=``, and builds the same filters with libseccomp (the library systemd uses) for a
``subprocess`` ``preexec_fn``.  tests/test_lockdown_files.py runs ``scanstation serve`` under them and
imports and OCRs pages through it.

Not emulated: the mount namespace (ProtectSystem=, PrivateTmp=, ...), the device and IP cgroup filters,
capabilities.  Those refuse access to paths, devices and addresses the unit names on purpose.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import functools
import re
import resource
import subprocess
from collections.abc import Callable

_ALLOW = 0x7FFF0000
_SCMP_CMP_EQ = 4
_SCMP_CMP_GT = 6
_SCMP_CMP_MASKED_EQ = 7
_PROT_WRITE, _PROT_EXEC = 0x2, 0x4
_SHM_EXEC = 0o100000
_PR_SET_NO_NEW_PRIVS = 38
_FAMILIES = {"AF_UNIX": 1, "AF_LOCAL": 1, "AF_INET": 2, "AF_INET6": 10, "AF_NETLINK": 16, "AF_PACKET": 17}
_AF_MAX = 64  # above every family Linux knows (46 in 6.x); systemd refuses any higher one too


def _errno_action(number: int) -> int:
    return 0x00050000 | (number & 0xFFFF)


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


@functools.cache
def group_members(group: str) -> frozenset[str]:
    """A syscall group's names, nested groups expanded (``systemd-analyze syscall-filter``)."""
    out = subprocess.run(["systemd-analyze", "syscall-filter", group], capture_output=True, text=True, check=True,
                         timeout=60).stdout
    names: set[str] = set()
    for line in out.splitlines()[1:]:
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        names |= group_members(item) if item.startswith("@") else {item}
    return frozenset(names)


def _expand(items: list[str]) -> set[str]:
    names: set[str] = set()
    for item in items:
        names |= group_members(item) if item.startswith("@") else {item}
    return names


@dataclasses.dataclass(frozen=True)
class UnitSandbox:
    allowed_syscalls: frozenset[str] | None  # None: no SystemCallFilter
    error_number: int | None  # None: a refused syscall kills the process (systemd's default)
    deny_write_execute: bool
    address_families: frozenset[int] | None  # None: no RestrictAddressFamilies
    no_new_privileges: bool
    core_limit_zero: bool

    @classmethod
    def from_unit(cls, text: str) -> UnitSandbox:
        settings: list[tuple[str, str]] = []
        for line in text.splitlines():
            m = re.match(r"^\s*([A-Za-z]+)\s*=\s*(.*?)\s*$", line)
            if m:
                settings.append((m.group(1), m.group(2)))
        allowed: set[str] | None = None
        error_number: int | None = None
        families: set[int] | None = None
        for key, value in settings:
            if key == "SystemCallFilter":
                invert = value.startswith("~")
                items = value.lstrip("~").split()
                if allowed is None:
                    if invert:
                        raise ValueError("a deny-list SystemCallFilter is not emulated (the station's is an allow "
                                         "list)")
                    allowed = set(group_members("@default"))  # as systemd: an allow list starts with @default
                if invert:
                    allowed -= _expand(items)
                else:
                    allowed |= _expand(items)
            elif key == "SystemCallErrorNumber":
                error_number = int(value) if value.isdigit() else getattr(errno, value)
            elif key == "RestrictAddressFamilies":
                if value.startswith("~"):
                    raise ValueError("a deny-list RestrictAddressFamilies is not emulated")
                families = {_FAMILIES[f] for f in value.split()}
        flags = dict(settings)
        return cls(
            frozenset(allowed) if allowed is not None else None,
            error_number,
            flags.get("MemoryDenyWriteExecute") == "yes",
            frozenset(families) if families is not None else None,
            flags.get("NoNewPrivileges") == "yes",
            flags.get("LimitCORE") == "0",
        )

    def preexec(self) -> Callable[[], None]:
        """A ``preexec_fn``: the filters are built in the parent (nothing to import or resolve after fork) and
        loaded in the child just before ``execve``; the allow list last, since ``seccomp`` itself is not in it."""
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_rule_add_array.restype = ctypes.c_int
        lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                               ctypes.POINTER(_ArgCmp)]
        lib.seccomp_load.restype = ctypes.c_int
        lib.seccomp_load.argtypes = [ctypes.c_void_p]
        libc = ctypes.CDLL(None, use_errno=True)

        def rule(ctx: int, action: int, name: str, *cmps: tuple[int, int, int, int]) -> None:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr < 0:
                return  # not a syscall of this architecture (chown32, ...)
            array = (_ArgCmp * max(1, len(cmps)))(*[_ArgCmp(*c) for c in cmps])
            rc = lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), array)
            if rc < 0:
                raise OSError(-rc, f"seccomp_rule_add({name}): {rc}")

        filters = []
        if self.deny_write_execute:  # systemd's seccomp_memory_deny_write_execute()
            ctx = lib.seccomp_init(_ALLOW)
            rule(ctx, _errno_action(errno.EPERM), "mmap", (2, _SCMP_CMP_MASKED_EQ, _PROT_EXEC | _PROT_WRITE,
                                                          _PROT_EXEC | _PROT_WRITE))
            for name in ("mprotect", "pkey_mprotect"):
                rule(ctx, _errno_action(errno.EPERM), name, (2, _SCMP_CMP_MASKED_EQ, _PROT_EXEC, _PROT_EXEC))
            rule(ctx, _errno_action(errno.EPERM), "shmat", (2, _SCMP_CMP_MASKED_EQ, _SHM_EXEC, _SHM_EXEC))
            filters.append(ctx)
        if self.address_families is not None:  # systemd's seccomp_restrict_address_families(), allow-list case
            ctx = lib.seccomp_init(_ALLOW)
            for family in range(_AF_MAX + 1):
                if family not in self.address_families:
                    rule(ctx, _errno_action(errno.EAFNOSUPPORT), "socket", (0, _SCMP_CMP_EQ, family, 0))
            rule(ctx, _errno_action(errno.EAFNOSUPPORT), "socket", (0, _SCMP_CMP_GT, _AF_MAX, 0))
            filters.append(ctx)
        if self.allowed_syscalls is not None:
            # systemd's default for a refused call is to kill; SystemCallErrorNumber= makes it fail instead
            ctx = lib.seccomp_init(_errno_action(self.error_number) if self.error_number is not None else 0)
            for name in sorted(self.allowed_syscalls):
                rule(ctx, _ALLOW, name)
            filters.append(ctx)
        no_new_privs = self.no_new_privileges or bool(filters)  # seccomp needs it without CAP_SYS_ADMIN
        core = self.core_limit_zero

        def in_child() -> None:
            if core:
                resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            if no_new_privs and libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
            for f in filters:
                rc = lib.seccomp_load(f)
                if rc < 0:
                    raise OSError(-rc, "seccomp_load")

        return in_child

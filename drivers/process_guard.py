"""Core dumps off, in the station's processes and in every child they start.

A core file of a station process holds whatever was in its memory: the station secret, the batch keys,
the pages.  So every process that holds or may hold any of them calls :func:`no_core_dumps` first thing,
and every child gets the same treatment:

* ``RLIMIT_CORE`` = 0 (soft and hard).  The limit is inherited across ``fork`` and ``execve``, so a parent
  that set it covers the programs it runs (tesseract, pdftoppm, gs) from their first instruction.
  :func:`child_preexec` sets it again in a child before ``execve`` when the parent has not (a test, a
  developer shell).
* ``prctl(PR_SET_DUMPABLE, 0)``.  Needed because a ``core_pattern`` that is a pipe
  (``|/usr/lib/systemd/systemd-coredump ...``, apport) ignores ``RLIMIT_CORE``: the kernel hands the
  helper the memory anyway and the helper decides.  A process that is not dumpable is never dumped,
  whatever the pattern (with ``fs.suid_dumpable`` = 0, the default), and it cannot be ptrace-attached
  by other processes of the same user either.  The flag is inherited by ``fork`` but reset by
  ``execve`` of an ordinary binary, so every Python child sets it again in its own entry point (the OCR
  pool's initializer, the tesseract worker, the SANE worker, the decoder of untrusted files).

Linux only (the station is); elsewhere the ``prctl`` half is skipped.
"""

from __future__ import annotations

import ctypes
import os
import resource
from collections.abc import Callable

PR_SET_PDEATHSIG = 1
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4

_libc: ctypes.CDLL | None
try:
    # CDLL(None): the symbols already loaded (libc among them); ctypes.util.find_library would run
    # ldconfig or a compiler, at a cost of a tenth of a second at every start.
    _libc = ctypes.CDLL(None, use_errno=True)
    _prctl: Callable[..., int] | None = _libc.prctl
except (OSError, AttributeError):  # not Linux
    _libc = None
    _prctl = None


def _call_prctl(option: int, arg: int = 0) -> int:
    if _prctl is None:
        return -1
    result = int(_prctl(ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0),
                        ctypes.c_ulong(0)))
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl({option}) failed: {os.strerror(errno)}")
    return result


def no_core_dumps() -> None:
    """Make this process undumpable: RLIMIT_CORE 0 (inherited by its children) and PR_SET_DUMPABLE 0."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _call_prctl(PR_SET_DUMPABLE, 0)


def is_dumpable() -> bool:
    """Whether this process could still be dumped or traced (PR_GET_DUMPABLE); True where unknown."""
    return _prctl is None or _call_prctl(PR_GET_DUMPABLE) != 0


def core_limit_is_zero() -> bool:
    return resource.getrlimit(resource.RLIMIT_CORE) == (0, 0)


def _preexec_no_core_dumps() -> None:
    # Runs in the child between fork and exec: one system call, no imports, no locks.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def child_preexec() -> Callable[[], None] | None:
    """A ``preexec_fn`` for ``subprocess`` that sets RLIMIT_CORE 0 in the child, or None if not needed.

    None when this process already has RLIMIT_CORE (0, 0), which the child inherits: then subprocess
    keeps its fast spawn path (a ``preexec_fn`` forces a full fork and is best avoided in threaded
    programs).  ``PR_SET_DUMPABLE`` is not set here: ``execve`` resets it for an ordinary binary.
    """
    return None if core_limit_is_zero() else _preexec_no_core_dumps


def worker_initializer(*then: Callable[[], object]) -> None:
    """Initializer for ``multiprocessing`` / ``concurrent.futures`` workers: core dumps off, then ``then``."""
    no_core_dumps()
    for call in then:
        call()


def die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when its parent (thread) ends; exit at once if the parent is already gone."""
    import signal

    _call_prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
    if os.getppid() != parent_pid:
        os._exit(1)


def limit_resources(*, memory_bytes: int | None = None, cpu_seconds: int | None = None) -> None:
    """Lower this process's address space and CPU time (inherited by the programs it runs)."""
    if memory_bytes is not None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    if cpu_seconds is not None:
        # The soft limit sends SIGXCPU; the hard one, a little later, SIGKILL (if SIGXCPU is ignored).
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))

"""Crash-safe file writes: temp file in the same directory, fsync, rename, fsync the directory."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

# Every temp file this module creates starts with this prefix, so leftovers of a process killed
# mid-write can be recognised and removed at startup (see remove_stale_temps).
TEMP_PREFIX = ".tmp-"


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries to disk, making a rename or unlink inside it durable.

    POSIX only promises that a rename survives a power cut once the directory itself is fsynced.
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(path: Path, mode: int = 0o700) -> None:
    """Create ``path`` and missing parents durably (each new entry's parent directory is fsynced).

    Existing directories are left as they are (their mode is not changed).
    """
    missing: list[Path] = []
    current = path
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            # mkdir's mode is filtered by the umask, which can only remove bits: never wider than asked.
            os.mkdir(directory, mode)
        except FileExistsError:
            if not directory.is_dir():
                raise
            continue
        fsync_dir(directory.parent)


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def atomic_write(path: Path, data: bytes | bytearray | memoryview, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` so that, whatever happens, ``path`` is absent, old or complete.

    The data goes to ``.tmp-<random>`` in the same directory (same filesystem, so the rename is
    atomic), is fsynced, renamed over ``path``, and the directory is fsynced so the rename survives a
    power cut.  A kill -9 at any moment leaves at worst a stale temp file, never a partial ``path``.
    The parent directory must exist.
    """
    directory = path.parent
    # O_EXCL + random name: never follow or reuse somebody else's file; created with ``mode`` directly
    # so the content is never readable by others, not even briefly.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    while True:
        tmp = directory / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        try:
            fd = os.open(tmp, flags, mode)
            break
        except FileExistsError:
            continue
    try:
        try:
            # The umask may have narrowed the mode at creation; make it exactly what was asked.
            os.fchmod(fd, mode)
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def is_temp_name(name: str) -> bool:
    """True if ``name`` is a temp file name made by :func:`atomic_write`."""
    return name.startswith(TEMP_PREFIX)


def remove_stale_temps(directory: Path, *, recursive: bool = False) -> int:
    """Remove temp files left by writers killed mid-write; return how many were removed.

    Only call this when no writer can be active in ``directory`` (at startup, under the station
    lock): a live writer's temp file looks exactly like a stale one.
    """
    removed = 0
    if not directory.is_dir():
        return 0
    dirs_touched: set[Path] = set()
    for entry in _iter_entries(directory, recursive):
        if is_temp_name(entry.name) and not entry.is_dir(follow_symlinks=False):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed += 1
                dirs_touched.add(Path(entry.path).parent)
    for touched in dirs_touched:
        fsync_dir(touched)
    return removed


def _iter_entries(directory: Path, recursive: bool) -> list[os.DirEntry[str]]:
    entries: list[os.DirEntry[str]] = []
    with os.scandir(directory) as it:
        for entry in it:
            entries.append(entry)
            if recursive and entry.is_dir(follow_symlinks=False):
                entries.extend(_iter_entries(Path(entry.path), recursive))
    return entries

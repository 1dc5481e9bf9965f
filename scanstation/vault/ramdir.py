"""Private RAM-backed working directory for plaintext temp files (page images, OCR text, PDFs)."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
import tempfile
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from scanstation.errors import ScanStationError, StateError

DEFAULT_PREFIX = "scanstation"
# Filesystems whose contents live only in memory.  tmpfs pages can still be swapped out: the station's
# swap must be encrypted or disabled (a deployment requirement, not something this module can check).
RAM_FILESYSTEMS = frozenset({"tmpfs", "ramfs"})
MOUNTS_FILE = Path("/proc/self/mounts")
_DIR_MODE = 0o700


def _unescape_mount_field(field: str) -> str:
    # /proc/mounts escapes space, tab, newline and backslash as \040, \011, \012, \134.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def filesystem_type(path: Path, *, mounts_file: Path = MOUNTS_FILE) -> str:
    """Type of the filesystem holding ``path`` (e.g. ``tmpfs``, ``ext4``), from the mount table.

    ``os.statvfs`` does not expose the filesystem type in Python, so the mount table is read and the
    longest mount point containing the resolved path wins (later entries win ties: they are mounted
    over earlier ones).  Raises ScanStationError if the mount table cannot be read.
    """
    resolved = os.path.realpath(path)
    try:
        lines = mounts_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise ScanStationError(
            f"cannot read the mount table {mounts_file} to check that {path} is in RAM: {e.strerror}"
        ) from e
    best_len = -1
    best_type = ""
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point = _unescape_mount_field(fields[1])
        inside = resolved == mount_point or resolved.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= best_len:
            best_len = len(mount_point)
            best_type = fields[2]
    if best_len < 0:
        raise ScanStationError(f"no mount table entry covers {path}; cannot check that it is in RAM")
    return best_type


def is_ram_backed(path: Path, *, mounts_file: Path = MOUNTS_FILE) -> bool:
    """True if ``path`` lies on tmpfs or ramfs."""
    return filesystem_type(path, mounts_file=mounts_file) in RAM_FILESYSTEMS


def candidate_bases(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Where a RamDir may be created, in order of preference: /dev/shm, then $XDG_RUNTIME_DIR."""
    env = os.environ if environ is None else environ
    bases = [Path("/dev/shm")]
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if runtime:
        bases.append(Path(runtime))
    return bases


def _dir_name_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(prefix)}-(\d+)-[0-9a-f]{{12}}$")


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _remove_if_owner(path: Path, owner_pid: int) -> None:
    # Runs from the finalizer, also at interpreter exit, so it must not raise.  A forked child inherits
    # the finalizer; when that child exits it must not delete the directory its parent still uses.
    if os.getpid() == owner_pid:
        _remove_tree(path)


class RamDir:
    """A private (mode 0700) directory on tmpfs/ramfs, removed on close, at exit, or by sweep_stale.

    The directory is named ``<prefix>-<pid>-<random>`` so that a later process can tell leftovers of
    a killed process from directories still in use (after a power loss there are none: RAM is gone).
    There is deliberately no fallback to a disk directory: plaintext must never reach persistent
    storage, so if no RAM filesystem is usable the station refuses to start.
    """

    def __init__(self, prefix: str = DEFAULT_PREFIX, *, bases: Sequence[Path] | None = None) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", prefix):
            raise ValueError(f"RamDir prefix must be a simple name, got {prefix!r}")
        self._prefix = prefix
        tried: list[str] = []
        base = None
        for candidate in candidate_bases() if bases is None else bases:
            problem = self._unusable_reason(candidate)
            if problem is None:
                base = candidate
                break
            tried.append(f"{candidate}: {problem}")
        if base is None:
            raise ScanStationError(
                "no private RAM-backed directory is available for temporary plaintext files "
                f"({'; '.join(tried) or 'no candidate directories'}). Mount a tmpfs at /dev/shm, or set "
                "XDG_RUNTIME_DIR to a tmpfs directory; the station will not write plaintext to disk."
            )
        self._path = self._create(base)
        self._finalizer = weakref.finalize(self, _remove_if_owner, self._path, os.getpid())

    @staticmethod
    def _unusable_reason(candidate: Path) -> str | None:
        if not candidate.is_dir():
            return "does not exist"
        fstype = filesystem_type(candidate)
        if fstype not in RAM_FILESYSTEMS:
            return f"is on {fstype or 'an unknown filesystem'}, not tmpfs/ramfs"
        if not os.access(candidate, os.W_OK | os.X_OK):
            return "is not writable"
        return None

    def _create(self, base: Path) -> Path:
        while True:
            path = base / f"{self._prefix}-{os.getpid()}-{secrets.token_hex(6)}"
            try:
                # /dev/shm is world-writable: mkdir (not makedirs, not exist_ok) with a random name
                # fails rather than adopting a directory somebody else planted.
                os.mkdir(path, _DIR_MODE)
                break
            except FileExistsError:
                continue
        os.chmod(path, _DIR_MODE)
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or stat.S_IMODE(st.st_mode) != _DIR_MODE:
            _remove_tree(path)
            raise ScanStationError(f"could not create a private directory at {path}")
        return path

    @property
    def path(self) -> Path:
        """The directory (do not use after close)."""
        return self._path

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def new_file(self, suffix: str = "", *, prefix: str = "f-") -> Path:
        """Create an empty file (mode 0600) with a unique name in the directory and return its path.

        The file is created (O_EXCL), not just named, so the name cannot be taken twice; tools may
        overwrite it.  The caller removes it as soon as it is no longer needed.
        """
        if self.closed:
            raise StateError(f"RAM directory {self._path} is already closed")
        if "/" in suffix or "/" in prefix:
            raise ValueError("suffix and prefix must not contain '/'")
        while True:
            path = self._path / f"{prefix}{secrets.token_hex(8)}{suffix}"
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            except FileExistsError:
                continue
            os.close(fd)
            return path

    def close(self) -> None:
        """Remove the directory and everything in it (idempotent)."""
        self._finalizer()

    def __enter__(self) -> RamDir:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"RamDir({str(self._path)!r}, {state})"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, belongs to somebody else
    return True


def sweep_stale(prefix: str = DEFAULT_PREFIX, *, bases: Sequence[Path] | None = None) -> list[Path]:
    """Remove RamDirs of processes that no longer exist; call once at startup.

    Only directories owned by this user, named ``<prefix>-<pid>-<random>`` with a dead pid, are
    removed.  A reused pid makes a dead process look alive: its directory is then kept (safe side)
    and swept on a later start.  Returns the removed paths.
    """
    pattern = _dir_name_pattern(prefix)
    removed: list[Path] = []
    for base in candidate_bases() if bases is None else bases:
        if not base.is_dir():
            continue
        with os.scandir(base) as it:
            entries = list(it)
        for entry in entries:
            match = pattern.match(entry.name)
            if match is None or not entry.is_dir(follow_symlinks=False):
                continue
            if entry.stat(follow_symlinks=False).st_uid != os.geteuid():
                continue
            if _pid_alive(int(match.group(1))):
                continue
            _remove_tree(Path(entry.path))
            removed.append(Path(entry.path))
    return removed


_TEMP_ENV_VARS = ("TMPDIR", "TMP", "TEMP")


def set_process_tempdir(target: RamDir | Path) -> Callable[[], None]:
    """Send every temp file of this process and its children to ``target``; returns a restore function.

    Why: pytesseract (``NamedTemporaryFile`` for the page image it hands to tesseract), Pillow,
    pikepdf and others create temp files through :mod:`tempfile` with no directory argument, which
    means ``tempfile.gettempdir()`` - normally /tmp on disk.  ``tempfile.tempdir`` is set directly
    because gettempdir() caches its first answer, so changing the environment alone would be ignored
    once anything has asked.  TMPDIR/TMP/TEMP are set for child processes (tesseract, ghostscript),
    which pick their own temp directory from the environment.  If the RamDir is closed while still
    selected, temp file creation fails loudly instead of falling back to disk.
    """
    path = target.path if isinstance(target, RamDir) else Path(target)
    saved_tempdir = tempfile.tempdir
    saved_env = {name: os.environ.get(name) for name in _TEMP_ENV_VARS}
    tempfile.tempdir = str(path)
    for name in _TEMP_ENV_VARS:
        os.environ[name] = str(path)

    def restore() -> None:
        tempfile.tempdir = saved_tempdir
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    return restore

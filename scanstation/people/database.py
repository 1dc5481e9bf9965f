"""people.db: one connection, one writer lock, durable commits, numbered migrations, private file modes.

The file holds password hashes and wrapped keys: nothing in it opens anything without a password or the
recovery code, but each row is what an attacker would start guessing from, so the file is created 0600
inside a directory only its owner can enter (0700), and deleted rows are overwritten (secure_delete).
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from batchformat.atomic import ensure_dir
from scanstation.errors import ConfigError, ScanStationError
from scanstation.people.schema import MIGRATIONS
from scanstation.sqlite_files import immediate_transaction, run_migrations, schema_version

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def to_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def from_text(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _private_directory(directory: Path) -> None:
    """Create the directory 0700, or refuse one that others may enter (never chmod what we did not make)."""
    ensure_dir(directory, 0o700)
    mode = stat.S_IMODE(directory.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"{directory}: the directory of people.db is open to other users (mode {mode:o}); "
            f"run: chmod 700 {directory}"
        )


def _private_file(path: Path) -> None:
    """Create the file 0600 before SQLite opens it; its -wal and -shm files inherit the mode."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != 0o600:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists() and stat.S_IMODE(side.stat().st_mode) != 0o600:
            os.chmod(side, 0o600)


class PeopleDatabase:
    """The one connection to people.db that accounts, the throttle and the key slots share."""

    def __init__(self, path: Path, *, clock: Clock = utc_now) -> None:
        self.path = path
        self.clock = clock
        self._lock = threading.RLock()
        _private_directory(path.parent)
        _private_file(path)
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.row_factory = sqlite3.Row
            # WAL: readers beside the one writer; FULL: a committed password change survives a power cut.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            # A replaced hash or a dropped key slot is overwritten, not just unlinked from the b-tree.
            self._db.execute("PRAGMA secure_delete=ON")
        except sqlite3.Error as e:
            raise ScanStationError(f"{path}: cannot open the people database: {e}") from e
        self._migrate()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def now(self) -> datetime:
        return self.clock()

    def _migrate(self) -> None:
        with self._lock:
            version = schema_version(self._db, self.path, "people database", len(MIGRATIONS))
            run_migrations(self._db, MIGRATIONS, version)

    def write(self) -> AbstractContextManager[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE … COMMIT, rolled back on any error)."""
        return immediate_transaction(self._db, self._lock)

    def read(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, args))

    def read_one(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        rows = self.read(sql, args)
        return rows[0] if rows else None

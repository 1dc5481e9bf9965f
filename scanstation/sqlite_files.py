"""What the station's three SQLite files share: one write transaction and numbered migrations.

station.db (SQLCipher), people.db and audit.db each keep their own connection and lock; these two
helpers are the part that is the same for all of them, so that a fix to either lands everywhere.
Works on any DB-API connection of the sqlite3 family (``sqlite3`` and ``sqlcipher3``) opened with
``isolation_level=None`` (transactions are explicit).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from scanstation.errors import ScanStationError


@contextmanager
def immediate_transaction(db: Any, lock: threading.RLock | threading.Lock) -> Iterator[Any]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` under ``lock`` (the one writer), rolled back on any error."""
    with lock:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def schema_version(db: Any, path: Path, what: str, known: int) -> int:
    """``PRAGMA user_version``; a newer database than this software knows is refused, naming the file."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > known:
        raise ScanStationError(f"{path}: {what} schema {version} is newer than this software ({known}); "
                               "install the newer ScanStation")
    return version


def run_migrations(db: Any, migrations: Sequence[str], start: int) -> None:
    """Run ``migrations[start:]`` in order, each in its own transaction that also records its number.

    Never edit a shipped migration: append one, so every station's database converges on one schema.
    """
    for i in range(start, len(migrations)):
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in migrations[i].split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version={i + 1}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

"""The database connection every repository shares: one writer lock, durable commits, migrations."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scanstation.domain import BatchState, check_transition
from scanstation.errors import ScanStationError
from scanstation.store.schema import MIGRATIONS

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


GENESIS_HASH = "0" * 64


@dataclass(frozen=True, slots=True)
class StoredObject:
    id: str
    kind: str
    sha256: str
    ct_sha256: str
    size: int


class StoreConnection:
    """One connection and one lock (one writer), migrations, and the audit append every write shares."""

    def __init__(self, path: Path, clock: Clock = utc_now) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        except sqlite3.Error as e:
            raise ScanStationError(f"{path}: cannot open the station database: {e}") from e
        self._db.row_factory = sqlite3.Row
        # WAL lets readers (UI, status) run beside the writer; FULL makes every commit durable, so
        # an acknowledged page survives a power cut.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        # Deleted rows (destroyed batch keys above all) are overwritten, not just unlinked from the b-tree.
        self._db.execute("PRAGMA secure_delete=ON")
        self._migrate()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _migrate(self) -> None:
        with self._lock:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise ScanStationError(
                    f"{self.path}: database schema {version} is newer than this software "
                    f"({len(MIGRATIONS)}); install the newer ScanStation"
                )
            for i in range(version, len(MIGRATIONS)):
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for stmt in MIGRATIONS[i].split(";"):
                        if stmt.strip():
                            self._db.execute(stmt)
                    self._db.execute(f"PRAGMA user_version={i + 1}")
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _now(self) -> str:
        return self._clock().isoformat(timespec="milliseconds")

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, args))

    def _audit(self, db: sqlite3.Connection, actor: str, action: str, subject: str, detail: dict[str, Any]) -> None:
        row = db.execute("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        prev = row[0] if row else GENESIS_HASH
        ts = self._now()
        body = json.dumps(detail, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        digest = hashlib.sha256("\x1f".join([prev, ts, actor, action, subject, body]).encode()).hexdigest()
        db.execute(
            "INSERT INTO audit (ts, actor, action, subject, detail, prev_hash, hash) VALUES (?,?,?,?,?,?,?)",
            (ts, actor, action, subject, body, prev, digest),
        )

    # ------------------------------------------------------------------ writes more than one aggregate shares
    def _insert_object(self, db: sqlite3.Connection, obj: StoredObject) -> None:
        db.execute(
            "INSERT INTO objects (id, kind, sha256, ct_sha256, size, created_at) VALUES (?,?,?,?,?,?)",
            (obj.id, obj.kind, obj.sha256, obj.ct_sha256, obj.size, self._now()),
        )

    def _move_batch(self, db: sqlite3.Connection, row: sqlite3.Row, target: BatchState, actor: str) -> None:
        """One state-machine edge inside the caller's transaction: checked, written, audited."""
        current = BatchState(row["state"])
        check_transition(current, target)
        db.execute("UPDATE batches SET state=?, updated_at=? WHERE id=?", (target.value, self._now(), row["id"]))
        self._audit(db, actor, "batch.state", row["name"], {"from": current.value, "to": target.value})

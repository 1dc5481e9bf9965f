"""Batches, their state machine transitions and their wrapped keys."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from scanstation.domain import CAPTURE_STATES, Batch, BatchState
from scanstation.errors import StateError
from scanstation.store.connection import StoreConnection, StoredObject


class BatchRepository(StoreConnection):
    """Batches and batch keys."""

    @staticmethod
    def _batch(r: sqlite3.Row) -> Batch:
        return Batch(
            r["id"], r["name"], r["unit"], r["operator"], BatchState(r["state"]), r["created_at"], r["updated_at"],
            r["uid"],
        )

    def batch(self, name: str) -> Batch | None:
        rows = self._read("SELECT * FROM batches WHERE name=?", (name,))
        return self._batch(rows[0]) if rows else None

    def batch_by_id(self, batch_id: int) -> Batch:
        return self._batch(self._read("SELECT * FROM batches WHERE id=?", (batch_id,))[0])

    def batches(self) -> list[Batch]:
        return [self._batch(r) for r in self._read("SELECT * FROM batches ORDER BY id")]

    def open_batch(self, name: str, unit: str, operator: str) -> Batch:
        """The batch called ``name``, created in SCANNING if new; refuses a batch past scanning."""
        with self._write() as db:
            row = db.execute("SELECT * FROM batches WHERE name=?", (name,)).fetchone()
            if row is None:
                now = self._now()
                db.execute(
                    "INSERT INTO batches (name, unit, operator, state, created_at, updated_at) VALUES (?,?,?,?,?,?)",
                    (name, unit, operator, BatchState.SCANNING.value, now, now),
                )
                row = db.execute("SELECT * FROM batches WHERE name=?", (name,)).fetchone()
                self._audit(db, operator, "batch.create", name, {"unit": unit}, batch_id=row["id"])
        batch = self._batch(row)
        if batch.state not in CAPTURE_STATES:
            raise StateError(f"batch '{name}' is {batch.state.value}; pages can only be added while it is scanning "
                             "or returned for rescans")
        return batch

    def set_batch_state(self, batch_id: int, target: BatchState, actor: str) -> Batch:
        with self._write() as db:
            row = db.execute("SELECT * FROM batches WHERE id=?", (batch_id,)).fetchone()
            self._move_batch(db, row, target, actor)
        return self.batch_by_id(batch_id)

    def record_signoff(self, batch_id: int, sheet: StoredObject, detail: dict[str, object], actor: str) -> Batch:
        """The unit head's sign-off in one commit: the signed sheet listed, then verified -> signed -> sealed
        (each edge checked and audited), so a signed batch is never committed without its package."""
        with self._write() as db:
            self._insert_object(db, sheet)
            row = db.execute("SELECT * FROM batches WHERE id=?", (batch_id,)).fetchone()
            self._move_batch(db, row, BatchState.SIGNED, actor)
            self._audit(db, actor, "batch.signoff", row["name"], {"sheet": sheet.id, **detail}, batch_id=batch_id)
            row = db.execute("SELECT * FROM batches WHERE id=?", (batch_id,)).fetchone()
            self._move_batch(db, row, BatchState.SEALED, actor)
        return self.batch_by_id(batch_id)

    def ensure_batch_uid(self, batch_id: int, make_uid: Callable[[], str]) -> str:
        """The batch's global id, assigned once (kept across re-seals so the portal can dedup)."""
        with self._write() as db:
            row = db.execute("SELECT uid FROM batches WHERE id=?", (batch_id,)).fetchone()
            if row["uid"]:
                return str(row["uid"])
            uid = make_uid()
            db.execute("UPDATE batches SET uid=? WHERE id=?", (uid, batch_id))
            return uid

    def batch_key(self, batch_id: int) -> tuple[str, bytes] | None:
        """(recipient, wrapped identity) of a batch, or None if it has none (yet, or any more)."""
        rows = self._read("SELECT recipient, wrapped FROM batch_keys WHERE batch_id=?", (batch_id,))
        return (rows[0]["recipient"], bytes(rows[0]["wrapped"])) if rows else None

    def batch_keys(self) -> list[tuple[int, str, bytes]]:
        return [(r[0], r[1], bytes(r[2])) for r in self._read("SELECT batch_id, recipient, wrapped FROM batch_keys")]

    def add_batch_key(self, batch_id: int, recipient: str, wrapped: bytes) -> tuple[str, bytes]:
        """Record a new batch key unless one exists; returns the one that is recorded (first wins)."""
        with self._write() as db:
            db.execute(
                "INSERT OR IGNORE INTO batch_keys (batch_id, recipient, wrapped, created_at) VALUES (?,?,?,?)",
                (batch_id, recipient, wrapped, self._now()),
            )
            row = db.execute("SELECT recipient, wrapped FROM batch_keys WHERE batch_id=?", (batch_id,)).fetchone()
        self._batch_recipients[batch_id] = str(row["recipient"])
        return row["recipient"], bytes(row["wrapped"])

    def destroy_batch_key(self, batch_id: int, actor: str) -> bool:
        """Delete a batch key for good: secure_delete zeroes the row, a TRUNCATE checkpoint empties the WAL."""
        with self._write() as db:
            gone = db.execute("DELETE FROM batch_keys WHERE batch_id=?", (batch_id,)).rowcount > 0
            if gone:
                name = db.execute("SELECT name FROM batches WHERE id=?", (batch_id,)).fetchone()["name"]
                self._audit(db, actor, "batch.key_destroyed", name, {}, batch_id=batch_id)
        self._batch_recipients.pop(batch_id, None)
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return gone

"""The vault objects the store knows of."""

from __future__ import annotations

from scanstation.domain import BatchState
from scanstation.errors import ScanStationError
from scanstation.store.connection import StoreConnection, StoredObject


class ObjectRepository(StoreConnection):
    """Vault object rows."""

    def object(self, obj_id: str) -> StoredObject:
        rows = self._read("SELECT * FROM objects WHERE id=?", (obj_id,))
        if not rows:
            raise ScanStationError(f"vault object {obj_id} is not recorded in the database")
        r = rows[0]
        return StoredObject(r["id"], r["kind"], r["sha256"], r["ct_sha256"], r["size"])

    def objects(self) -> list[StoredObject]:
        return [
            StoredObject(r["id"], r["kind"], r["sha256"], r["ct_sha256"], r["size"])
            for r in self._read("SELECT * FROM objects ORDER BY created_at, id")
        ]

    def object_ids(self) -> set[str]:
        return {r[0] for r in self._read("SELECT id FROM objects")}

    def mark_destroyed(self, object_ids: list[str], reason: str, actor: str, *, batch_id: int | None = None,
                       subject: str = "vault") -> None:
        """Record objects as destroyed on purpose (before their files are deleted, so a crash in between leaves
        an intent that :meth:`destroyed_object_ids` lists and the next start finishes).  Their rows stay: page
        rows still name them, and vault checks must not report them missing."""
        if not object_ids:
            return
        with self._write() as db:
            now = self._now()
            for oid in object_ids:
                db.execute("UPDATE objects SET destroyed_at=?, destroyed_reason=? WHERE id=? AND destroyed_at IS NULL",
                           (now, reason, oid))
            self._audit(db, actor, "vault.destroy", subject, {"reason": reason, "count": len(object_ids),
                                                              "objects": object_ids}, batch_id=batch_id)

    def destroyed_object_ids(self, *, unpurged: bool = False) -> set[str]:
        """Objects destroyed on purpose before any purge (sealed batches' raw captures); ``unpurged``: only
        those of batches not purged yet (the ones whose files a crash may have left: the purge removed the rest)."""
        if not unpurged:
            return {r[0] for r in self._read("SELECT id FROM objects WHERE destroyed_at IS NOT NULL")}
        return {r[0] for r in self._read(
            "SELECT o.id FROM objects o JOIN pages p ON p.raw_object = o.id JOIN batches b ON b.id = p.batch_id "
            "WHERE o.destroyed_at IS NOT NULL AND b.state != ?", (BatchState.PURGED.value,))}

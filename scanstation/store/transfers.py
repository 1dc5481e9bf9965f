"""Sealed packages, the upload queue, receipts and purges."""

from __future__ import annotations

import sqlite3
from typing import Any

from scanstation.domain import BatchState
from scanstation.store.connection import StoreConnection, StoredObject


class TransferRepository(StoreConnection):
    """Packages, uploads, receipts, purges."""

    def set_package(self, batch_id: int, package_id: str, file: str, sha256: str, size: int,
                    manifest: StoredObject, actor: str) -> None:
        """Record a sealed package and its manifest (a vault object) in one commit."""
        with self._write() as db:
            self._insert_object(db, manifest)
            db.execute(
                "INSERT OR REPLACE INTO packages (batch_id, package_id, file, manifest_object, sha256, size, "
                "created_at) VALUES (?,?,?,?,?,?,?)",
                (batch_id, package_id, file, manifest.id, sha256, size, self._now()),
            )
            name = db.execute("SELECT name FROM batches WHERE id=?", (batch_id,)).fetchone()["name"]
            self._audit(db, actor, "batch.sealed", name, {"package_id": package_id, "sha256": sha256, "size": size},
                        batch_id=batch_id)

    def package_files(self) -> set[str]:
        return {r[0] for r in self._read("SELECT file FROM packages")}

    def package(self, batch_id: int) -> sqlite3.Row | None:
        rows = self._read("SELECT * FROM packages WHERE batch_id=?", (batch_id,))
        return rows[0] if rows else None

    def drop_package(self, batch_id: int) -> None:
        with self._write() as db:
            db.execute("DELETE FROM packages WHERE batch_id=?", (batch_id,))
            db.execute("DELETE FROM uploads WHERE batch_id=?", (batch_id,))

    def upload(self, batch_id: int) -> sqlite3.Row | None:
        rows = self._read("SELECT * FROM uploads WHERE batch_id=?", (batch_id,))
        return rows[0] if rows else None

    def uploads(self) -> list[sqlite3.Row]:
        return self._read(
            "SELECT u.*, b.name AS batch_name FROM uploads u JOIN batches b ON b.id=u.batch_id ORDER BY u.batch_id"
        )

    def enqueue_upload(self, batch_id: int, size: int, actor: str) -> None:
        with self._write() as db:
            now = self._now()
            db.execute(
                "INSERT OR IGNORE INTO uploads (batch_id, state, size, created_at, updated_at) VALUES (?,?,?,?,?)",
                (batch_id, "queued", size, now, now),
            )

    _UPLOAD_FIELDS = frozenset(
        {"state", "url", "confirmed_offset", "attempts", "last_error", "receipt", "receipt_id", "received_at",
         "purge_after", "expires"}
    )

    def update_upload(self, batch_id: int, *, audit: tuple[str, str, dict[str, Any]] | None = None,
                      **fields: Any) -> None:
        """Change upload fields (names checked against a fixed list) and optionally audit, in one commit."""
        bad = set(fields) - self._UPLOAD_FIELDS
        if bad:
            raise ValueError(f"unknown upload fields {sorted(bad)}")
        sets = ", ".join(f"{k}=?" for k in fields)
        with self._write() as db:
            db.execute(
                f"UPDATE uploads SET {sets}, updated_at=? WHERE batch_id=?",
                (*fields.values(), self._now(), batch_id),
            )
            if audit is not None:
                name = db.execute("SELECT name FROM batches WHERE id=?", (batch_id,)).fetchone()["name"]
                self._audit(db, audit[0], audit[1], name, audit[2], batch_id=batch_id)

    def purged_object_ids(self) -> set[str]:
        """Objects of purged batches: deleted from the vault on purpose, still named by page rows."""
        ids: set[str] = set()
        rows = self._read(
            "SELECT id FROM batches WHERE state=? "
            "UNION SELECT batch_id FROM uploads WHERE state IN ('purging', 'purged')",
            (BatchState.PURGED.value,),
        )
        for (batch_id,) in rows:  # a purge cut short counts too: it is finished at the next run
            ids.update(self.batch_object_ids(batch_id))
        return ids

    def record_receipt(self, batch_id: int, *, receipt: bytes, receipt_id: str, received_at: str,
                       purge_after: str, package_sha256: str, actor: str) -> None:
        """Store a verified receipt and move the batch to UPLOADED in one commit (no half-received state)."""
        with self._write() as db:
            row = db.execute("SELECT id, name, state FROM batches WHERE id=?", (batch_id,)).fetchone()
            db.execute(
                "UPDATE uploads SET state='received', receipt=?, receipt_id=?, received_at=?, purge_after=?, "
                "last_error='', updated_at=? WHERE batch_id=?",
                (receipt, receipt_id, received_at, purge_after, self._now(), batch_id),
            )
            self._audit(db, actor, "upload.receipt", row["name"],
                        {"receipt_id": receipt_id, "package_sha256": package_sha256}, batch_id=batch_id)
            if BatchState(row["state"]) is not BatchState.UPLOADED:
                self._move_batch(db, row, BatchState.UPLOADED, actor)

    def record_purged(self, batch_id: int, *, objects_removed: int, actor: str) -> None:
        """The last step of a purge: the batch's index data blanked, upload and batch state, in one commit.

        A purged batch leaves no index data behind: its documents' employee code, name, rank, ACR period
        label and typed reasons and its pages' labels, source keys (import keys name files) and OCR errors are
        blanked (each file keeps its period's dates and a keyed digest of its code, for the duplicate check);
        ``secure_delete`` zeroes the old cells, and a TRUNCATE checkpoint empties the WAL that still held
        them (encrypted, but under the store key, which outlives the batch).  What stays: states, hashes,
        object ids, the receipt - what proves the batch was delivered, nothing about whom it concerned.
        """
        with self._write() as db:
            row = db.execute("SELECT id, name, state FROM batches WHERE id=?", (batch_id,)).fetchone()
            # What stays of an ACR file for the duplicate check at entry (docs/roster.md): its period's dates and
            # a keyed digest of its code (store.employee_digest), never the code, the name or a typed reason.
            for doc_id, code in db.execute("SELECT id, employee_code FROM documents WHERE batch_id=? AND "
                                           "employee_code != ''", (batch_id,)).fetchall():
                db.execute("UPDATE documents SET employee_digest=? WHERE id=?", (self.employee_digest(code), doc_id))
            db.execute("UPDATE documents SET employee_code='', employee_name='', rank='', acr_period='', "
                       "not_in_roster='', duplicate_reason='' WHERE batch_id=?", (batch_id,))
            db.execute("UPDATE pages SET source_key='purged:' || id, label='', ocr_error='' WHERE batch_id=?",
                       (batch_id,))
            db.execute("UPDATE uploads SET state='purged', updated_at=? WHERE batch_id=?", (self._now(), batch_id))
            self._audit(db, actor, "batch.purged", row["name"], {"objects_removed": objects_removed},
                        batch_id=batch_id)
            if BatchState(row["state"]) is not BatchState.PURGED:
                self._move_batch(db, row, BatchState.PURGED, actor)
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def set_package_objects(self, batch_id: int, objects: list[tuple[int, str, StoredObject]],
                            actor: str) -> list[str]:
        """Record the objects made for a batch's package - ``(page id, role, object)``, role ``image`` or ``raw``
        (one-page PDF/As) - in place of those of an earlier seal, in one commit; returns the replaced object
        ids (to delete from the vault afterwards)."""
        with self._write() as db:
            old = [str(r[0]) for r in db.execute("SELECT object_id FROM package_objects WHERE batch_id=?",
                                                 (batch_id,)).fetchall()]
            db.execute("DELETE FROM package_objects WHERE batch_id=?", (batch_id,))
            for oid in old:
                db.execute("DELETE FROM objects WHERE id=?", (oid,))
            for page_id, role, obj in objects:
                self._insert_object(db, obj)
                db.execute("INSERT INTO package_objects (batch_id, page_id, role, object_id) VALUES (?,?,?,?)",
                           (batch_id, page_id, role, obj.id))
            if old or objects:
                name = db.execute("SELECT name FROM batches WHERE id=?", (batch_id,)).fetchone()["name"]
                self._audit(db, actor, "batch.package_pages", name,
                            {"objects": len(objects), "replaced": len(old)}, batch_id=batch_id)
        return old

    def package_objects(self, batch_id: int) -> dict[tuple[int, str], str]:
        """(page id, role) -> object id of the objects made for the batch's package (:meth:`set_package_objects`)."""
        return {(int(r[0]), str(r[1])): str(r[2]) for r in self._read(
            "SELECT page_id, role, object_id FROM package_objects WHERE batch_id=?", (batch_id,))}

    def batch_object_ids(self, batch_id: int) -> list[str]:
        """Every vault object that belongs to a batch (pages' images, compact pages and OCR, the package's page
        PDFs, documents' PDFs, the manifest)."""
        ids: list[str] = []
        for r in self._read(
            "SELECT raw_object, image_object, compact_object, ocr_object, ocr_pdf_object FROM pages "
            "WHERE batch_id=? ORDER BY seq",
            (batch_id,),
        ):
            ids.extend(x for x in r if x)
        for r in self._read("SELECT object_id FROM package_objects WHERE batch_id=? ORDER BY page_id, role",
                            (batch_id,)):
            ids.append(r[0])
        for r in self._read("SELECT pdf_object FROM documents WHERE batch_id=? ORDER BY seq", (batch_id,)):
            if r[0]:
                ids.append(r[0])
        for r in self._read("SELECT manifest_object FROM packages WHERE batch_id=?", (batch_id,)):
            if r[0]:
                ids.append(r[0])
        return ids

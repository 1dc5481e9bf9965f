"""ACR files (documents): their index and their assembled PDF."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from scanstation.domain import Document
from scanstation.errors import StateError
from scanstation.store.connection import StoreConnection, StoredObject

# The flags an index check raises on an ACR file (the index owns them: a new index replaces them).
INDEX_FLAGS = frozenset({"not_in_roster", "duplicate", "bad_period"})


class DocumentRepository(StoreConnection):
    """Documents of a batch."""

    @staticmethod
    def _document(r: sqlite3.Row) -> Document:
        return Document(
            r["id"], r["batch_id"], r["seq"], r["employee_code"], r["employee_name"], r["rank"], r["acr_period"],
            r["period_start"], r["period_end"], r["not_in_roster"], list(json.loads(r["flags"] or "[]")),
            r["indexed_by"], r["removed"], r["duplicate_reason"],
        )

    def add_document(
        self,
        batch_id: int,
        actor: str,
        employee_code: str = "",
        employee_name: str = "",
        rank: str = "",
        acr_period: str = "",
        *,
        period_start: str | None = None,
        period_end: str | None = None,
        not_in_roster: str = "",
        flags: Sequence[str] = (),
        duplicate_reason: str = "",
    ) -> Document:
        """A new ACR file at the end of the batch.  The index fields are sealed in the audit entry; the
        detail keeps only the file flags (names such as "duplicate", no personal data)."""
        with self._write() as db:
            seq = db.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM documents WHERE batch_id=?", (batch_id,)
            ).fetchone()[0]
            cur = db.execute(
                "INSERT INTO documents (batch_id, seq, employee_code, employee_name, rank, acr_period, period_start,"
                " period_end, not_in_roster, flags, indexed_by, duplicate_reason) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (batch_id, seq, employee_code, employee_name, rank, acr_period, period_start, period_end,
                 not_in_roster, json.dumps(sorted(set(flags))), actor if employee_code else "", duplicate_reason),
            )
            doc_id = cur.lastrowid
            self._audit(
                db,
                actor,
                "document.create",
                f"document:{doc_id}",
                {"batch_id": batch_id, "seq": seq, "flags": sorted(set(flags))},
                personal={"employee_code": employee_code, "employee_name": employee_name, "rank": rank,
                          "acr_period": acr_period, "not_in_roster": not_in_roster,
                          "duplicate_reason": duplicate_reason},
                batch_id=batch_id,
            )
        return self.document(int(doc_id or 0))

    def set_document_index(
        self,
        doc_id: int,
        actor: str,
        *,
        employee_code: str,
        employee_name: str,
        rank: str,
        acr_period: str,
        period_start: str | None,
        period_end: str | None,
        not_in_roster: str,
        flags: Sequence[str],
        duplicate_reason: str = "",
    ) -> Document:
        """Set (or correct) an ACR file's index as checked by :func:`scanstation.roster.index_check.check_index`.

        Only the index's own flags (``not_in_roster``, ``duplicate``, ``bad_period``) are replaced by
        ``flags``; any other flag on the file stays.  Audited with the old and new index sealed to the batch
        key (personal), the flags in the detail.
        """
        with self._write() as db:
            row = db.execute("SELECT * FROM documents WHERE id=?", (doc_id,)).fetchone()
            if row is None:
                raise StateError(f"no ACR file with id {doc_id}")
            kept = [f for f in json.loads(row["flags"] or "[]") if f not in INDEX_FLAGS]
            new_flags = sorted(set(kept) | set(flags))
            db.execute(
                "UPDATE documents SET employee_code=?, employee_name=?, rank=?, acr_period=?, period_start=?,"
                " period_end=?, not_in_roster=?, flags=?, indexed_by=?, duplicate_reason=? WHERE id=?",
                (employee_code, employee_name, rank, acr_period, period_start, period_end, not_in_roster,
                 json.dumps(new_flags), actor, duplicate_reason, doc_id),
            )
            self._audit(
                db, actor, "document.index", f"document:{doc_id}",
                {"batch_id": row["batch_id"], "seq": row["seq"], "flags": new_flags},
                personal={"from": {k: row[k] for k in ("employee_code", "employee_name", "rank", "acr_period",
                                                        "not_in_roster")},
                          "to": {"employee_code": employee_code, "employee_name": employee_name, "rank": rank,
                                 "acr_period": acr_period, "not_in_roster": not_in_roster,
                                 "duplicate_reason": duplicate_reason}},
                batch_id=row["batch_id"],
            )
        return self.document(doc_id)

    def employee_documents(self, employee_code: str) -> list[sqlite3.Row]:
        """Every live (not removed) ACR file of an employee in any batch, with the batch's name and state: what a
        duplicate check compares against.  A purged batch's files are found by the keyed digest of the code
        that the purge left in its place (their label is blanked; their period's dates stay)."""
        return self._read(
            "SELECT d.id, d.seq, d.batch_id, d.acr_period, d.period_start, d.period_end, b.name AS batch,"
            " b.state AS batch_state FROM documents d JOIN batches b ON b.id = d.batch_id"
            " WHERE (d.employee_code=? OR d.employee_digest=?) AND d.removed='' ORDER BY d.batch_id, d.seq",
            (employee_code, self.employee_digest(employee_code)),
        )

    def find_document(self, batch_id: int, employee_code: str, acr_period: str) -> Document | None:
        rows = self._read(
            "SELECT * FROM documents WHERE batch_id=? AND employee_code=? AND acr_period=? AND removed=''"
            " ORDER BY seq LIMIT 1",
            (batch_id, employee_code, acr_period),
        )
        return self._document(rows[0]) if rows else None

    def document(self, doc_id: int) -> Document:
        return self._document(self._read("SELECT * FROM documents WHERE id=?", (doc_id,))[0])

    def documents(self, batch_id: int) -> list[Document]:
        return [
            self._document(r) for r in self._read("SELECT * FROM documents WHERE batch_id=? ORDER BY seq", (batch_id,))
        ]

    def document_pdf(self, doc_id: int) -> str | None:
        rows = self._read("SELECT pdf_object FROM documents WHERE id=?", (doc_id,))
        return rows[0][0] if rows else None

    def set_document_pdf(self, doc_id: int, obj: StoredObject, actor: str) -> str | None:
        """Record the document's new PDF; returns the id of the PDF it replaces (to delete afterwards)."""
        with self._write() as db:
            self._insert_object(db, obj)
            old, batch_id = db.execute("SELECT pdf_object, batch_id FROM documents WHERE id=?", (doc_id,)).fetchone()
            db.execute("UPDATE documents SET pdf_object=? WHERE id=?", (obj.id, doc_id))
            if old:
                db.execute("DELETE FROM objects WHERE id=?", (old,))
            self._audit(db, actor, "document.pdf", f"document:{doc_id}", {"object": obj.id, "sha256": obj.sha256},
                        batch_id=batch_id)
        return str(old) if old else None

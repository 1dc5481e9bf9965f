"""ACR files (documents): their index and their assembled PDF."""

from __future__ import annotations

import sqlite3

from scanstation.domain import Document
from scanstation.store.connection import StoreConnection, StoredObject


class DocumentRepository(StoreConnection):
    """Documents of a batch."""

    @staticmethod
    def _document(r: sqlite3.Row) -> Document:
        return Document(
            r["id"], r["batch_id"], r["seq"], r["employee_code"], r["employee_name"], r["rank"], r["acr_period"]
        )

    def add_document(
        self,
        batch_id: int,
        actor: str,
        employee_code: str = "",
        employee_name: str = "",
        rank: str = "",
        acr_period: str = "",
    ) -> Document:
        with self._write() as db:
            seq = db.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM documents WHERE batch_id=?", (batch_id,)
            ).fetchone()[0]
            cur = db.execute(
                "INSERT INTO documents (batch_id, seq, employee_code, employee_name, rank, acr_period)"
                " VALUES (?,?,?,?,?,?)",
                (batch_id, seq, employee_code, employee_name, rank, acr_period),
            )
            doc_id = cur.lastrowid
            self._audit(
                db,
                actor,
                "document.create",
                f"document:{doc_id}",
                {"batch_id": batch_id, "seq": seq},
                personal={"employee_code": employee_code, "employee_name": employee_name, "rank": rank,
                          "acr_period": acr_period},
                batch_id=batch_id,
            )
        return self.document(int(doc_id or 0))

    def find_document(self, batch_id: int, employee_code: str, acr_period: str) -> Document | None:
        rows = self._read(
            "SELECT * FROM documents WHERE batch_id=? AND employee_code=? AND acr_period=? ORDER BY seq LIMIT 1",
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

"""Verification's queries: page verdicts, pages served, flag verdicts, assembly fixes, returns, close/approve.

Every write is one transaction with its audit entry; reasons and index fields go in the entry's sealed
personal fields (free text may name a person), the verdict, page ids and positions in its detail.  The
rules (who may, in which state, what approval needs) are in :mod:`scanstation.verify.core`.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from scanstation.domain import BatchState, OcrState, Page
from scanstation.errors import StateError
from scanstation.store.connection import StoreConnection


@dataclass(frozen=True, slots=True)
class Verdict:
    verdict: str
    reason: str
    given_by: str
    given_at: str


@dataclass(frozen=True, slots=True)
class DocumentRow:
    """An ACR file as verification sees it (the index columns and H1's validation columns)."""

    id: int
    batch_id: int
    seq: int
    employee_code: str
    employee_name: str
    rank: str
    acr_period: str
    flags: list[str]
    not_in_roster: str
    removed: str


def _batch_row(db: sqlite3.Connection, batch_id: int) -> sqlite3.Row:
    row = db.execute("SELECT * FROM batches WHERE id=?", (batch_id,)).fetchone()
    if row is None:
        raise StateError(f"batch #{batch_id} does not exist")
    return row


def _stale_pdf(db: sqlite3.Connection, doc_id: int) -> None:
    """The file's assembled PDF no longer matches its pages: seal builds it again.  The old object stays
    listed (and in the vault, encrypted to the batch key) until the batch is purged."""
    db.execute("UPDATE documents SET pdf_object=NULL WHERE id=?", (doc_id,))


class VerificationRepository(StoreConnection):
    """Verdicts, views, returns and the page moves of verification."""

    # ------------------------------------------------------------------ reads
    def page_by_seq(self, batch_id: int, seq: int) -> Page:
        rows = self._read("SELECT id FROM pages WHERE batch_id=? AND seq=?", (batch_id, seq))
        if not rows:
            name = self._read("SELECT name FROM batches WHERE id=?", (batch_id,))
            raise StateError(f"no page {seq} in batch '{name[0][0] if name else batch_id}'")
        return self.page(int(rows[0][0]))  # type: ignore[attr-defined]

    def page_verdicts(self, batch_id: int) -> dict[int, Verdict]:
        return {int(r[0]): Verdict(r[1], r[2], r[3], r[4]) for r in self._read(
            """SELECT v.page_id, v.verdict, v.reason, v.given_by, v.given_at FROM page_verdicts v
               JOIN pages p ON p.id = v.page_id WHERE p.batch_id=?""", (batch_id,))}

    def pages_seen(self, batch_id: int, person: str) -> dict[int, str]:
        """Page id -> how it was served to ``person`` ("screen" or "script"), for the pages of a batch."""
        return {int(r[0]): str(r[1]) for r in self._read(
            """SELECT w.page_id, w.how FROM page_views w JOIN pages p ON p.id = w.page_id
               WHERE p.batch_id=? AND w.person=?""", (batch_id, person))}

    def verified_by(self, batch_id: int) -> set[str]:
        """Everyone who gave a page or flag verdict in the batch (the sign-off's four-eyes rule)."""
        names = {str(r[0]) for r in self._read(
            "SELECT DISTINCT v.given_by FROM page_verdicts v JOIN pages p ON p.id = v.page_id WHERE p.batch_id=?",
            (batch_id,))}
        subjects = tuple(f"document:{d}" for d in self._document_ids(batch_id))
        if subjects:
            marks = ",".join("?" * len(subjects))
            names |= {str(r[0]) for r in self._read(
                f"SELECT DISTINCT given_by FROM flag_verdicts WHERE subject IN ({marks})", subjects)}
        return names

    def _document_ids(self, batch_id: int) -> list[int]:
        return [int(r[0]) for r in self._read("SELECT id FROM documents WHERE batch_id=?", (batch_id,))]

    @staticmethod
    def _document_row(r: sqlite3.Row) -> DocumentRow:
        return DocumentRow(r["id"], r["batch_id"], r["seq"], r["employee_code"], r["employee_name"], r["rank"],
                           r["acr_period"], json.loads(r["flags"] or "[]"), r["not_in_roster"], r["removed"])

    def document_rows(self, batch_id: int, *, include_removed: bool = False) -> list[DocumentRow]:
        where = "" if include_removed else " AND removed = ''"
        return [self._document_row(r) for r in self._read(
            f"SELECT * FROM documents WHERE batch_id=?{where} ORDER BY seq", (batch_id,))]

    def document_row(self, doc_id: int) -> DocumentRow:
        rows = self._read("SELECT * FROM documents WHERE id=?", (doc_id,))
        if not rows:
            raise StateError(f"no ACR file with id {doc_id}")
        return self._document_row(rows[0])

    def flag_verdicts(self, doc_id: int) -> dict[str, Verdict]:
        return {str(r[0]): Verdict(r[1], r[2], r[3], r[4]) for r in self._read(
            "SELECT flag, verdict, reason, given_by, given_at FROM flag_verdicts WHERE subject=?",
            (f"document:{doc_id}",))}

    def batch_returns(self, batch_id: int) -> list[dict[str, Any]]:
        return [dict(r) for r in self._read(
            "SELECT returned_by, returned_at, reason, closed_at FROM batch_returns WHERE batch_id=? ORDER BY id",
            (batch_id,))]

    def batch_marks(self, batch_id: int) -> dict[str, Any]:
        """Who closed and approved the batch last, and when."""
        r = self._read("SELECT closed_by, closed_at, approved_by, approved_at FROM batches WHERE id=?", (batch_id,))
        return dict(r[0]) if r else {}

    # ------------------------------------------------------------------ batch moves
    def close_batch(self, batch_id: int, actor: str) -> None:
        """SCANNING/RETURNED -> CLOSED, recording who closed; closes the open return record."""
        with self._write() as db:
            row = _batch_row(db, batch_id)
            self._move_batch(db, row, BatchState.CLOSED, actor)
            now = self._now()
            db.execute("UPDATE batches SET closed_by=?, closed_at=?, approved_by='', approved_at=NULL WHERE id=?",
                       (actor, now, batch_id))
            reopened = db.execute("UPDATE batch_returns SET closed_at=? WHERE batch_id=? AND closed_at IS NULL",
                                  (now, batch_id)).rowcount
            self._audit(db, actor, "batch.close", row["name"], {"after_return": bool(reopened)}, batch_id=batch_id)

    def return_batch(self, batch_id: int, actor: str, reason: str) -> None:
        with self._write() as db:
            row = _batch_row(db, batch_id)
            self._move_batch(db, row, BatchState.RETURNED, actor)
            db.execute("INSERT INTO batch_returns (batch_id, returned_by, returned_at, reason) VALUES (?,?,?,?)",
                       (batch_id, actor, self._now(), reason))
            db.execute("UPDATE batches SET approved_by='', approved_at=NULL WHERE id=?", (batch_id,))
            self._audit(db, actor, "batch.return", row["name"], {"from": row["state"]}, personal={"reason": reason},
                        batch_id=batch_id)

    def approve_batch(self, batch_id: int, actor: str, summary: dict[str, Any]) -> None:
        with self._write() as db:
            row = _batch_row(db, batch_id)
            self._move_batch(db, row, BatchState.VERIFIED, actor)
            db.execute("UPDATE batches SET approved_by=?, approved_at=? WHERE id=?", (actor, self._now(), batch_id))
            self._audit(db, actor, "batch.approve", row["name"], summary, batch_id=batch_id)

    def start_verification(self, db: sqlite3.Connection, batch_id: int, actor: str) -> None:
        """Inside a verification write: CLOSED (first action) or VERIFIED/SIGNED (changed after approval) ->
        IN_VERIFICATION; refuses any other state but IN_VERIFICATION."""
        row = _batch_row(db, batch_id)
        state = BatchState(row["state"])
        if state is BatchState.IN_VERIFICATION:
            return
        if state not in (BatchState.CLOSED, BatchState.VERIFIED, BatchState.SIGNED):
            raise StateError(f"batch '{row['name']}' is {state.value}: pages are verified once it is closed "
                             "(scanstation batch close) and until it is sealed")
        self._move_batch(db, row, BatchState.IN_VERIFICATION, actor)
        db.execute("UPDATE batches SET approved_by='', approved_at=NULL WHERE id=?", (batch_id,))

    # ------------------------------------------------------------------ page verdicts and views
    def record_page_view(self, page_id: int, person: str, how: str = "screen") -> bool:
        """Note that the page was served to ``person`` (first time only); True when it is new."""
        with self._write() as db:
            return db.execute("INSERT OR IGNORE INTO page_views (page_id, person, first_at, how) VALUES (?,?,?,?)",
                              (page_id, person, self._now(), how)).rowcount > 0

    def set_page_verdict(self, page: Page, verdict: str, reason: str, actor: str, *, rotation: int | None,
                         delete: bool, restore: bool, via: str) -> None:
        """Record a page's verdict and its effect (turn, delete, restore) in one audited transaction.

        ``via``: "screen" or "script"; a scripted verdict also records the page as served to ``actor``
        (how = "script"), and its audit entry says so.
        """
        with self._write() as db:
            self.start_verification(db, page.batch_id, actor)
            now = self._now()
            db.execute("""INSERT INTO page_verdicts (page_id, verdict, reason, given_by, given_at) VALUES (?,?,?,?,?)
                          ON CONFLICT(page_id) DO UPDATE SET verdict=excluded.verdict, reason=excluded.reason,
                          given_by=excluded.given_by, given_at=excluded.given_at""",
                       (page.id, verdict, reason, actor, now))
            detail: dict[str, Any] = {"seq": page.seq, "verdict": verdict, "via": via}
            if via == "script":
                db.execute("INSERT OR IGNORE INTO page_views (page_id, person, first_at, how) VALUES (?,?,?,?)",
                           (page.id, actor, now, "script"))
                detail["note"] = "scripted QC from a shell; audited as such (the page was not shown)"
            if rotation is not None and rotation != page.rotation:
                # Read again, turned: the old text layer was read from the page the wrong way round.
                requeue = page.ocr_state in (OcrState.DONE, OcrState.FAILED)
                db.execute("UPDATE pages SET rotation=?, ocr_state=CASE WHEN ? THEN ? ELSE ocr_state END,"
                           " ocr_attempts=CASE WHEN ? THEN 0 ELSE ocr_attempts END WHERE id=?",
                           (rotation, requeue, OcrState.PENDING.value, requeue, page.id))
                detail.update({"rotation_from": page.rotation, "rotation": rotation, "ocr_again": requeue})
            if page.document_id is not None and (rotation not in (None, page.rotation) or delete
                                                 or (restore and page.deleted_reason)):
                _stale_pdf(db, page.document_id)
            if delete:
                db.execute("UPDATE pages SET deleted_reason=? WHERE id=?", (reason, page.id))
                detail["deleted"] = True
            elif restore and page.deleted_reason:
                db.execute("UPDATE pages SET deleted_reason='' WHERE id=?", (page.id,))
                detail["restored"] = True
            self._audit(db, actor, "page.verdict", f"page:{page.id}", detail,
                        personal={"reason": reason} if reason else None, batch_id=page.batch_id)

    def set_flag_verdict(self, doc_id: int, flag: str, verdict: str, reason: str, actor: str) -> None:
        with self._write() as db:
            batch_id = int(db.execute("SELECT batch_id FROM documents WHERE id=?", (doc_id,)).fetchone()[0])
            self.start_verification(db, batch_id, actor)
            db.execute("""INSERT INTO flag_verdicts (subject, flag, verdict, reason, given_by, given_at)
                          VALUES (?,?,?,?,?,?) ON CONFLICT(subject, flag) DO UPDATE SET verdict=excluded.verdict,
                          reason=excluded.reason, given_by=excluded.given_by, given_at=excluded.given_at""",
                       (f"document:{doc_id}", flag, verdict, reason, actor, self._now()))
            self._audit(db, actor, "document.flag_verdict", f"document:{doc_id}", {"flag": flag, "verdict": verdict},
                        personal={"reason": reason} if reason else None, batch_id=batch_id)

    def clear_flag_verdicts(self, doc_id: int, actor: str) -> int:
        """A re-indexed file's flags are judged again (they may be new ones)."""
        with self._write() as db:
            n = db.execute("DELETE FROM flag_verdicts WHERE subject=?", (f"document:{doc_id}",)).rowcount
            if n:
                batch_id = int(db.execute("SELECT batch_id FROM documents WHERE id=?", (doc_id,)).fetchone()[0])
                self._audit(db, actor, "document.flag_verdicts_cleared", f"document:{doc_id}", {"count": n},
                            batch_id=batch_id)
        return n

    def mark_verifying(self, batch_id: int, actor: str) -> None:
        """The first verification action that is not a verdict (H1's re-index): CLOSED -> IN_VERIFICATION."""
        with self._write() as db:
            self.start_verification(db, batch_id, actor)

    # ------------------------------------------------------------------ assembly fixes
    @staticmethod
    def _renumber(db: sqlite3.Connection, doc_id: int, order: list[int]) -> None:
        for position, pid in enumerate(order, start=1):
            db.execute("UPDATE pages SET document_id=?, position=? WHERE id=?", (doc_id, position, pid))
        _stale_pdf(db, doc_id)

    @staticmethod
    def _doc_order(db: sqlite3.Connection, doc_id: int, *, without: int | None = None) -> list[int]:
        """The file's page ids in reading order (removed pages too: they keep their place, unpackaged)."""
        return [int(r[0]) for r in db.execute(
            "SELECT id FROM pages WHERE document_id=? ORDER BY position, seq", (doc_id,)) if r[0] != without]

    def _check_doc(self, db: sqlite3.Connection, doc_id: int, batch_id: int) -> sqlite3.Row:
        row = db.execute("SELECT * FROM documents WHERE id=?", (doc_id,)).fetchone()
        if row is None or row["batch_id"] != batch_id:
            raise StateError(f"ACR file {doc_id} is not part of this batch")
        if row["removed"]:
            raise StateError(f"ACR file {row['seq']} was removed ({row['removed']})")
        return row

    def place_page(self, page: Page, doc_id: int, position: int, actor: str, *, action: str,
                   verifying: bool, only_unfiled: bool = False) -> None:
        """Put ``page`` into ACR file ``doc_id`` at ``position`` (1 = first; past the end = last); the pages
        after it, and those of the file it left, are numbered again.  ``verifying``: a supervisor's fix
        (moves CLOSED to IN_VERIFICATION); else the operator's (an inserted rescan, batch in capture).
        ``only_unfiled``: refused if the page is in an ACR file by now (checked inside the transaction: a
        page filed by someone else since the caller read it is never moved out of that file silently)."""
        if position < 1:
            raise StateError(f"position {position}: positions start at 1")
        with self._write() as db:
            if only_unfiled:
                now = db.execute("SELECT document_id FROM pages WHERE id=?", (page.id,)).fetchone()
                if now is None or now["document_id"] is not None:
                    raise StateError(f"page {page.seq} was filed into an ACR file meanwhile: it is not filed again")
            if verifying:
                self.start_verification(db, page.batch_id, actor)
            self._check_doc(db, doc_id, page.batch_id)
            order = self._doc_order(db, doc_id, without=page.id)
            order.insert(min(position - 1, len(order)), page.id)
            self._renumber(db, doc_id, order)
            if page.document_id is not None and page.document_id != doc_id:
                self._renumber(db, page.document_id, self._doc_order(db, page.document_id))
            self._audit(db, actor, action, f"page:{page.id}",
                        {"seq": page.seq, "from_document": page.document_id, "from_position": page.position,
                         "document": doc_id, "position": order.index(page.id) + 1}, batch_id=page.batch_id)

    def replace_page(self, old: Page, new: Page, actor: str) -> None:
        """The rescan ``new`` takes ``old``'s ACR file and position; ``old`` is kept, replaced (never packaged)."""
        if old.batch_id != new.batch_id or old.id == new.id:
            raise StateError("a page can only be replaced by another page of the same batch")
        if old.replaced_by is not None:
            raise StateError(f"page {old.seq} was already replaced")
        with self._write() as db:
            if old.document_id is not None:
                order = self._doc_order(db, old.document_id, without=new.id)
                order.insert(order.index(old.id) + 1, new.id)
                self._renumber(db, old.document_id, order)
            else:
                db.execute("UPDATE pages SET document_id=NULL, position=NULL WHERE id=?", (new.id,))
            if new.document_id is not None and new.document_id != old.document_id:
                self._renumber(db, new.document_id, self._doc_order(db, new.document_id))
            db.execute("UPDATE pages SET replaced_by=? WHERE id=?", (new.id, old.id))
            self._audit(db, actor, "page.replace", f"page:{old.id}",
                        {"seq": old.seq, "replaced_by": new.id, "new_seq": new.seq, "document": old.document_id},
                        batch_id=old.batch_id)

    def split_document(self, doc_id: int, at: Page, actor: str) -> int:
        """Pages from ``at`` on go to a new ACR file with the same index (to be re-indexed); its id."""
        with self._write() as db:
            self.start_verification(db, at.batch_id, actor)
            row = self._check_doc(db, doc_id, at.batch_id)
            if at.document_id != doc_id:
                raise StateError(f"page {at.seq} is not in ACR file {row['seq']}")
            order = self._doc_order(db, doc_id)
            cut = order.index(at.id)
            if cut == 0:
                raise StateError(f"page {at.seq} is the first page of ACR file {row['seq']}: nothing to split off")
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM documents WHERE batch_id=?",
                             (at.batch_id,)).fetchone()[0]
            cur = db.execute(
                """INSERT INTO documents (batch_id, seq, employee_code, employee_name, rank, acr_period, period_start,
                   period_end, not_in_roster, flags, indexed_by) SELECT batch_id, ?, employee_code, employee_name,
                   rank, acr_period, period_start, period_end, not_in_roster, flags, indexed_by
                   FROM documents WHERE id=?""", (seq, doc_id))
            new_id = int(cur.lastrowid or 0)
            self._renumber(db, doc_id, order[:cut])
            self._renumber(db, new_id, order[cut:])
            self._audit(db, actor, "document.split", f"document:{doc_id}",
                        {"at_seq": at.seq, "new_document": new_id, "new_seq": seq, "pages_moved": len(order) - cut},
                        batch_id=at.batch_id)
        return new_id

    def merge_documents(self, doc_id: int, into: int, batch_id: int, actor: str) -> None:
        """The pages of ``doc_id`` follow those of ``into``; ``doc_id`` is marked removed (kept, empty)."""
        if doc_id == into:
            raise StateError("an ACR file cannot be merged into itself")
        with self._write() as db:
            self.start_verification(db, batch_id, actor)
            self._check_doc(db, doc_id, batch_id)
            target = self._check_doc(db, into, batch_id)
            moved = self._doc_order(db, doc_id)
            self._renumber(db, into, self._doc_order(db, into) + moved)
            db.execute("UPDATE documents SET removed=? WHERE id=?", (f"merged into ACR file {target['seq']}", doc_id))
            _stale_pdf(db, doc_id)
            self._audit(db, actor, "document.merge", f"document:{doc_id}", {"into": into, "pages_moved": len(moved)},
                        batch_id=batch_id)

"""Pages: capture, processing results, flags and OCR state."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from scanstation.domain import BatchState, OcrState, Page, PageState, Side
from scanstation.errors import ScanStationError
from scanstation.store.connection import StoreConnection, StoredObject

# The flag of a page one of whose vault objects cannot be read (undecryptable, wrong hash, missing).
DAMAGED_FLAG = "damaged"
# Batches whose pages may still need their compact page made (from sealing on, every page has one).
_BEFORE_SEAL = (BatchState.SCANNING, BatchState.CLOSED, BatchState.IN_VERIFICATION, BatchState.RETURNED,
                BatchState.VERIFIED, BatchState.SIGNED)


def _batch_of(db: sqlite3.Connection, page_id: int) -> int:
    return int(db.execute("SELECT batch_id FROM pages WHERE id=?", (page_id,)).fetchone()[0])


class PageRepository(StoreConnection):
    """Pages of a batch."""

    @staticmethod
    def _page(r: sqlite3.Row) -> Page:
        return Page(
            id=r["id"],
            batch_id=r["batch_id"],
            seq=r["seq"],
            source_key=r["source_key"],
            side=Side(r["side"]),
            device=r["device"],
            captured_at=r["captured_at"],
            width=r["width"],
            height=r["height"],
            dpi=r["dpi"],
            mode=r["mode"],
            raw_object=r["raw_object"],
            raw_sha256=r["raw_sha256"],
            state=PageState(r["state"]),
            ocr_state=OcrState(r["ocr_state"]),
            document_id=r["document_id"],
            position=r["position"],
            image_object=r["image_object"],
            image_sha256=r["image_sha256"],
            compact_object=r["compact_object"],
            compact_sha256=r["compact_sha256"],
            ocr_object=r["ocr_object"],
            ocr_sha256=r["ocr_sha256"],
            ocr_attempts=r["ocr_attempts"],
            ocr_error=r["ocr_error"],
            analysis=json.loads(r["analysis"]),
            flags=json.loads(r["flags"]),
            rotation=r["rotation"],
            deleted_reason=r["deleted_reason"],
            replaced_by=r["replaced_by"],
        )

    _PAGE_SELECT = """
        SELECT p.*, ro.sha256 AS raw_sha256, io.sha256 AS image_sha256, oo.sha256 AS ocr_sha256,
               co.sha256 AS compact_sha256
        FROM pages p JOIN objects ro ON ro.id = p.raw_object
        LEFT JOIN objects io ON io.id = p.image_object
        LEFT JOIN objects co ON co.id = p.compact_object
        LEFT JOIN objects oo ON oo.id = p.ocr_object
    """

    def page(self, page_id: int) -> Page:
        rows = self._read(self._PAGE_SELECT + " WHERE p.id=?", (page_id,))
        if not rows:
            raise ScanStationError(f"page {page_id} does not exist")
        return self._page(rows[0])

    def captured_by(self, batch_id: int) -> dict[int, str]:
        """Page id -> the person who captured it (the four-eyes rules; an operator's view of their own pages)."""
        return {int(r[0]): str(r[1]) for r in self._read("SELECT id, captured_by FROM pages WHERE batch_id=?",
                                                          (batch_id,))}

    def pages(self, batch_id: int | None = None) -> list[Page]:
        if batch_id is None:
            return [self._page(r) for r in self._read(self._PAGE_SELECT + " ORDER BY p.batch_id, p.seq")]
        return [
            self._page(r) for r in self._read(self._PAGE_SELECT + " WHERE p.batch_id=? ORDER BY p.seq", (batch_id,))
        ]

    def document_pages(self, doc_id: int, *, include_removed: bool = False) -> list[Page]:
        """The ACR file's pages in reading order: its live pages only (what the PDF and the package hold),
        or with ``include_removed`` also those deleted in verification or replaced by a rescan."""
        live = "" if include_removed else " AND p.deleted_reason = '' AND p.replaced_by IS NULL"
        return [
            self._page(r)
            for r in self._read(self._PAGE_SELECT + f" WHERE p.document_id=?{live} ORDER BY p.position, p.seq",
                                (doc_id,))
        ]

    def has_source_key(self, batch_id: int, source_key: str) -> bool:
        return bool(self._read("SELECT 1 FROM pages WHERE batch_id=? AND source_key=?", (batch_id, source_key)))

    def add_page(
        self,
        *,
        batch_id: int,
        source_key: str,
        label: str,
        side: Side,
        device: str,
        width: int,
        height: int,
        dpi: int,
        mode: str,
        raw: StoredObject,
        document_id: int | None,
        actor: str,
        ocr_state: OcrState,
    ) -> Page | None:
        """Record a captured page (its raw object already in the vault).  None if the key is known."""
        with self._write() as db:
            if db.execute("SELECT 1 FROM pages WHERE batch_id=? AND source_key=?", (batch_id, source_key)).fetchone():
                return None
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM pages WHERE batch_id=?", (batch_id,)).fetchone()[0]
            position = None
            if document_id is not None:
                position = db.execute(
                    "SELECT COALESCE(MAX(position), 0) + 1 FROM pages WHERE document_id=?", (document_id,)
                ).fetchone()[0]
            self._insert_object(db, raw)
            cur = db.execute(
                """INSERT INTO pages (batch_id, seq, source_key, label, side, device, captured_at, width, height, dpi,
                   mode, raw_object, state, ocr_state, document_id, position, captured_by)
                   VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                (
                    batch_id,
                    seq,
                    source_key,
                    label,
                    side.value,
                    device,
                    self._now(),
                    width,
                    height,
                    dpi,
                    mode,
                    raw.id,
                    PageState.CAPTURED.value,
                    ocr_state.value,
                    document_id,
                    position,
                    actor,
                ),
            )
            page_id = int(cur.lastrowid or 0)
            self._audit(
                db,
                actor,
                "page.capture",
                f"page:{page_id}",
                {"batch_id": batch_id, "seq": seq, "device": device, "raw_sha256": raw.sha256},
                personal={"source_key": source_key, "label": label},  # an import's label is its file name
                batch_id=batch_id,
            )
        return self.page(page_id)

    def set_processed(
        self, page_id: int, image: StoredObject, analysis: dict[str, Any], flags: list[str], ocr_state: OcrState,
        compact: StoredObject | None = None,
    ) -> None:
        """Record a page's cleaning: the lossless cleaned image (and a compact encoding made with it, in the same
        commit; the station makes its compact pages after OCR instead, see set_compact)."""
        with self._write() as db:
            self._insert_object(db, image)
            if compact is not None:
                self._insert_object(db, compact)
            # flags set at capture (e.g. a damaged separator sheet) survive the analysis
            before = json.loads(db.execute("SELECT flags FROM pages WHERE id=?", (page_id,)).fetchone()[0])
            flags = before + [f for f in flags if f not in before]
            db.execute(
                "UPDATE pages SET state=?, image_object=?, compact_object=?, analysis=?, flags=?, ocr_state=? "
                "WHERE id=?",
                (
                    PageState.PROCESSED.value,
                    image.id,
                    compact.id if compact is not None else None,
                    json.dumps(analysis, sort_keys=True),
                    json.dumps(flags),
                    ocr_state.value,
                    page_id,
                ),
            )
            self._audit(
                db, "station", "page.process", f"page:{page_id}",
                {"image_sha256": image.sha256, "compact_sha256": compact.sha256 if compact else None, "flags": flags},
                batch_id=_batch_of(db, page_id),
            )

    def set_compact(self, page_id: int, compact: StoredObject, actor: str = "station",
                    info: dict[str, Any] | None = None) -> str | None:
        """Give a processed page its compact encoding (made after its OCR, or late: the page was cleaned before
        issue 16); ``info`` (method, bytes, layers) goes into its analysis under ``compact``.  Returns the id of
        the one it replaces, if any (to delete from the vault afterwards)."""
        with self._write() as db:
            self._insert_object(db, compact)
            old, analysis = db.execute("SELECT compact_object, analysis FROM pages WHERE id=?", (page_id,)).fetchone()
            if info is not None:
                analysis = json.dumps({**json.loads(analysis or "{}"), "compact": info}, sort_keys=True)
            db.execute("UPDATE pages SET compact_object=?, analysis=? WHERE id=?", (compact.id, analysis, page_id))
            if old:
                db.execute("DELETE FROM objects WHERE id=?", (old,))
            self._audit(db, actor, "page.compact", f"page:{page_id}", {"compact_sha256": compact.sha256},
                        batch_id=_batch_of(db, page_id))
        return str(old) if old else None

    def add_flag(self, page_id: int, flag: str, evidence: dict[str, Any] | None = None, actor: str = "station") -> bool:
        """Add a flag (and its evidence under analysis.quality) unless present; True if added."""
        with self._write() as db:
            row = db.execute("SELECT flags, analysis FROM pages WHERE id=?", (page_id,)).fetchone()
            flags = json.loads(row[0])
            if flag in flags:
                return False
            flags.append(flag)
            analysis = json.loads(row[1])
            if evidence is not None:
                analysis.setdefault("quality", []).append(evidence)
            db.execute("UPDATE pages SET flags=?, analysis=? WHERE id=?",
                       (json.dumps(flags), json.dumps(analysis, sort_keys=True), page_id))
            self._audit(db, actor, "page.flag", f"page:{page_id}", {"flag": flag}, batch_id=_batch_of(db, page_id))
        return True

    def page_lengths(self, batch_id: int) -> list[tuple[int, int, int]]:
        """(page id, captured height in pixels, dpi) for every page of a batch, in capture order."""
        return [(r[0], r[1], r[2]) for r in self._read(
            "SELECT id, height, dpi FROM pages WHERE batch_id=? ORDER BY seq", (batch_id,))]

    def set_ocr_done(self, page_id: int, text: StoredObject, text_pdf: StoredObject, detail: dict[str, Any],
                     rotation: int | None = None) -> bool:
        """Record a page's OCR result; False (nothing recorded) when it was read at another ``rotation`` than
        the page has now (a supervisor turned it meanwhile: it is read again, turned)."""
        with self._write() as db:
            if rotation is not None:
                now = db.execute("SELECT rotation FROM pages WHERE id=?", (page_id,)).fetchone()[0]
                if int(now) != rotation:
                    return False
            self._insert_object(db, text)
            self._insert_object(db, text_pdf)
            flags = json.loads(db.execute("SELECT flags FROM pages WHERE id=?", (page_id,)).fetchone()[0])
            flags = [f for f in flags if f != "ocr_failed"]
            db.execute(
                """UPDATE pages SET ocr_state=?, ocr_object=?, ocr_pdf_object=?, ocr_attempts=ocr_attempts+1,
                   ocr_error='', flags=? WHERE id=?""",
                (OcrState.DONE.value, text.id, text_pdf.id, json.dumps(flags), page_id),
            )
            self._audit(db, "station", "page.ocr", f"page:{page_id}", {"text_sha256": text.sha256, **detail},
                        batch_id=_batch_of(db, page_id))
        return True

    def set_ocr_failed(self, page_id: int, error: str, final: bool) -> None:
        with self._write() as db:
            flags = json.loads(db.execute("SELECT flags FROM pages WHERE id=?", (page_id,)).fetchone()[0])
            if final and "ocr_failed" not in flags:
                flags.append("ocr_failed")
            db.execute(
                "UPDATE pages SET ocr_state=?, ocr_attempts=ocr_attempts+1, ocr_error=?, flags=? WHERE id=?",
                ((OcrState.FAILED if final else OcrState.PENDING).value, error[:500], json.dumps(flags), page_id),
            )
            self._audit(db, "station", "page.ocr_failed", f"page:{page_id}", {"error": error[:200], "final": final},
                        batch_id=_batch_of(db, page_id))

    def retry_ocr(self, page_ids: list[int], actor: str) -> int:
        with self._write() as db:
            n = 0
            for pid in page_ids:
                n += db.execute(
                    "UPDATE pages SET ocr_state=?, ocr_attempts=0 WHERE id=? AND ocr_state=?",
                    (OcrState.PENDING.value, pid, OcrState.FAILED.value),
                ).rowcount
            self._audit(db, actor, "page.ocr_retry", "pages", {"pages": page_ids})
        return n

    def ocr_pdf_object(self, page_id: int) -> str | None:
        rows = self._read("SELECT ocr_pdf_object FROM pages WHERE id=?", (page_id,))
        return rows[0][0] if rows else None

    def mark_damaged(self, page_id: int, kind: str, object_id: str | None, reason: str, actor: str = "station") -> bool:
        """Flag a page ``damaged`` (one of its vault objects cannot be read): it must be rescanned.

        The reason is kept under ``analysis.damage``; OCR still waiting for the page fails for good (it
        cannot be read either).  True if the page was not flagged before.
        """
        with self._write() as db:
            row = db.execute("SELECT flags, analysis, ocr_state, ocr_error FROM pages WHERE id=?",
                             (page_id,)).fetchone()
            if row is None:
                raise ScanStationError(f"page {page_id} does not exist")
            flags = json.loads(row[0])
            added = DAMAGED_FLAG not in flags
            if added:
                flags.append(DAMAGED_FLAG)
            analysis = json.loads(row[1])
            analysis["damage"] = {
                "code": DAMAGED_FLAG,
                "object_kind": kind,
                "object": object_id,
                "reason": reason[:300],
                "message_en": f"damaged - rescan: the page's {kind} object cannot be read from the vault",
            }
            ocr_state, ocr_error = OcrState(row[2]), row[3]
            if ocr_state is OcrState.PENDING:  # final: no OCR attempt can read the page any more
                ocr_state, ocr_error = OcrState.FAILED, f"damaged - rescan: {reason}"[:500]
            db.execute(
                "UPDATE pages SET flags=?, analysis=?, ocr_state=?, ocr_error=? WHERE id=?",
                (json.dumps(flags), json.dumps(analysis, sort_keys=True), ocr_state.value, ocr_error, page_id),
            )
            self._audit(db, actor, "page.damaged", f"page:{page_id}",
                        {"object_kind": kind, "object": object_id, "reason": reason[:200]},
                        batch_id=_batch_of(db, page_id))
        return added

    def damaged_pages(self, batch_id: int | None = None) -> list[Page]:
        """Pages flagged ``damaged`` (of one batch, if given): each needs a rescan."""
        return [p for p in self.pages(batch_id) if DAMAGED_FLAG in p.flags]

    def page_of_object(self, object_id: str) -> tuple[int, str] | None:
        """(page id, object kind) of the page that refers to a vault object, or None."""
        rows = self._read(
            """SELECT id, CASE ? WHEN raw_object THEN 'raw' WHEN image_object THEN 'image'
               WHEN compact_object THEN 'compact' WHEN ocr_object THEN 'ocr_text' ELSE 'ocr_pdf' END
               FROM pages WHERE ? IN (raw_object, image_object, compact_object, ocr_object, ocr_pdf_object)
               LIMIT 1""",
            (object_id, object_id),
        )
        return (rows[0][0], rows[0][1]) if rows else None

    def pages_to_process(self) -> list[int]:
        """Captured pages still to be cleaned (a page flagged damaged waits for its rescan instead)."""
        return [r[0] for r in self._read("SELECT id FROM pages WHERE state=? AND flags NOT LIKE ? ORDER BY id",
                                         (PageState.CAPTURED.value, f'%"{DAMAGED_FLAG}"%'))]

    def pages_to_compact(self) -> list[tuple[int, int]]:
        """(page id, batch id) of live cleaned pages without a compact page in batches not yet sealed, oldest
        first: those a stop left to the compact worker (a sealed batch's pages all have theirs)."""
        return [(r[0], r[1]) for r in self._read(
            "SELECT p.id, p.batch_id FROM pages p JOIN batches b ON b.id = p.batch_id WHERE p.state=? "
            "AND p.compact_object IS NULL AND p.image_object IS NOT NULL AND p.deleted_reason='' "
            "AND p.replaced_by IS NULL AND b.state IN (?, ?, ?, ?, ?, ?) ORDER BY p.id",
            (PageState.PROCESSED.value, *(s.value for s in _BEFORE_SEAL)))]

    def pages_to_ocr(self, batch_id: int | None = None) -> list[int]:
        """Cleaned pages still waiting for OCR (of one batch, if given), oldest first."""
        where, args = ("AND batch_id=?", (batch_id,)) if batch_id is not None else ("", ())
        return [
            r[0]
            for r in self._read(
                f"SELECT id FROM pages WHERE state=? AND ocr_state=? {where} ORDER BY id",
                (PageState.PROCESSED.value, OcrState.PENDING.value, *args),
            )
        ]

    def counts(self, batch_id: int | None = None) -> dict[str, int]:
        where, args = ("WHERE batch_id=?", (batch_id,)) if batch_id is not None else ("", ())
        out: dict[str, int] = {"pages": 0}
        for r in self._read(f"SELECT state, ocr_state, COUNT(*) FROM pages {where} GROUP BY state, ocr_state", args):
            out["pages"] += r[2]
            out[f"state_{r[0]}"] = out.get(f"state_{r[0]}", 0) + r[2]
            out[f"ocr_{r[1]}"] = out.get(f"ocr_{r[1]}", 0) + r[2]
        return out

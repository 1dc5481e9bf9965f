"""SQLite store of batches, documents, pages, vault objects and the hash-chained audit trail (one writer)."""

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

from scanstation.domain import Batch, BatchState, Document, OcrState, Page, PageState, Side, check_transition
from scanstation.errors import ScanStationError, StateError

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


# Each entry runs once, in order; PRAGMA user_version records how many have run.  Never edit a
# shipped entry: append a new one, so every station's database converges on the same schema.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE batches (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        unit TEXT NOT NULL,
        operator TEXT NOT NULL,
        state TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE documents (
        id INTEGER PRIMARY KEY,
        batch_id INTEGER NOT NULL REFERENCES batches(id),
        seq INTEGER NOT NULL,
        employee_code TEXT NOT NULL DEFAULT '',
        employee_name TEXT NOT NULL DEFAULT '',
        rank TEXT NOT NULL DEFAULT '',
        acr_period TEXT NOT NULL DEFAULT '',
        pdf_object TEXT,
        UNIQUE (batch_id, seq)
    );
    CREATE TABLE objects (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        ct_sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE pages (
        id INTEGER PRIMARY KEY,
        batch_id INTEGER NOT NULL REFERENCES batches(id),
        seq INTEGER NOT NULL,
        source_key TEXT NOT NULL,
        label TEXT NOT NULL DEFAULT '',
        side TEXT NOT NULL,
        device TEXT NOT NULL,
        captured_at TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        dpi INTEGER NOT NULL,
        mode TEXT NOT NULL,
        raw_object TEXT NOT NULL REFERENCES objects(id),
        state TEXT NOT NULL,
        ocr_state TEXT NOT NULL,
        document_id INTEGER REFERENCES documents(id),
        position INTEGER,
        image_object TEXT REFERENCES objects(id),
        ocr_object TEXT REFERENCES objects(id),
        ocr_pdf_object TEXT REFERENCES objects(id),
        ocr_attempts INTEGER NOT NULL DEFAULT 0,
        ocr_error TEXT NOT NULL DEFAULT '',
        analysis TEXT NOT NULL DEFAULT '{}',
        flags TEXT NOT NULL DEFAULT '[]',
        UNIQUE (batch_id, source_key),
        UNIQUE (batch_id, seq)
    );
    CREATE INDEX pages_state ON pages (state, ocr_state);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        detail TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    """,
    # 2: issue 6 - per-batch keys (crypto-shredding), sealed packages, the upload queue.
    """
    ALTER TABLE batches ADD COLUMN uid TEXT;
    CREATE TABLE batch_keys (
        batch_id INTEGER PRIMARY KEY REFERENCES batches(id),
        recipient TEXT NOT NULL,
        wrapped BLOB NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE packages (
        batch_id INTEGER PRIMARY KEY REFERENCES batches(id),
        package_id TEXT NOT NULL,
        file TEXT NOT NULL,
        manifest_object TEXT REFERENCES objects(id),
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE uploads (
        batch_id INTEGER PRIMARY KEY REFERENCES batches(id),
        state TEXT NOT NULL,
        url TEXT,
        confirmed_offset INTEGER NOT NULL DEFAULT 0,
        size INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT NOT NULL DEFAULT '',
        receipt BLOB,
        receipt_id TEXT,
        received_at TEXT,
        purge_after TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # 3: the server's Upload-Expires for the upload URL (station clock, ISO 8601), kept across restarts.
    """
    ALTER TABLE uploads ADD COLUMN expires TEXT;
    """,
]

GENESIS_HASH = "0" * 64


@dataclass(frozen=True, slots=True)
class StoredObject:
    id: str
    kind: str
    sha256: str
    ct_sha256: str
    size: int


class Store:
    """The station's database.  All writes pass through one lock and one connection (one writer)."""

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

    # ------------------------------------------------------------------ plumbing
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

    # ------------------------------------------------------------------ audit
    def audit(self, actor: str, action: str, subject: str, detail: dict[str, Any] | None = None) -> None:
        with self._write() as db:
            self._audit(db, actor, action, subject, detail or {})

    def verify_audit_chain(self) -> list[str]:
        """Problems found re-computing the hash chain (empty when intact)."""
        problems = []
        prev = GENESIS_HASH
        for r in self._read("SELECT * FROM audit ORDER BY id"):
            expect = hashlib.sha256(
                "\x1f".join([prev, r["ts"], r["actor"], r["action"], r["subject"], r["detail"]]).encode()
            ).hexdigest()
            if r["prev_hash"] != prev or r["hash"] != expect:
                problems.append(f"audit entry {r['id']} ({r['action']}) does not chain to its predecessor")
            prev = r["hash"]
        return problems

    def audit_head(self) -> str:
        rows = self._read("SELECT hash FROM audit ORDER BY id DESC LIMIT 1")
        return rows[0][0] if rows else GENESIS_HASH

    # ------------------------------------------------------------------ batches
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
                self._audit(db, operator, "batch.create", name, {"unit": unit})
                row = db.execute("SELECT * FROM batches WHERE name=?", (name,)).fetchone()
        batch = self._batch(row)
        if batch.state is not BatchState.SCANNING:
            raise StateError(f"batch '{name}' is {batch.state.value}; pages can only be added while scanning")
        return batch

    def set_batch_state(self, batch_id: int, target: BatchState, actor: str) -> Batch:
        with self._write() as db:
            row = db.execute("SELECT * FROM batches WHERE id=?", (batch_id,)).fetchone()
            self._move_batch(db, row, target, actor)
        return self.batch_by_id(batch_id)

    def _move_batch(self, db: sqlite3.Connection, row: sqlite3.Row, target: BatchState, actor: str) -> None:
        """One state-machine edge inside the caller's transaction: checked, written, audited."""
        current = BatchState(row["state"])
        check_transition(current, target)
        db.execute("UPDATE batches SET state=?, updated_at=? WHERE id=?", (target.value, self._now(), row["id"]))
        self._audit(db, actor, "batch.state", row["name"], {"from": current.value, "to": target.value})

    def ensure_batch_uid(self, batch_id: int, make_uid: Callable[[], str]) -> str:
        """The batch's global id, assigned once (kept across re-seals so the portal can dedup)."""
        with self._write() as db:
            row = db.execute("SELECT uid FROM batches WHERE id=?", (batch_id,)).fetchone()
            if row["uid"]:
                return str(row["uid"])
            uid = make_uid()
            db.execute("UPDATE batches SET uid=? WHERE id=?", (uid, batch_id))
            return uid

    # ------------------------------------------------------------------ batch keys
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
        return row["recipient"], bytes(row["wrapped"])

    def destroy_batch_key(self, batch_id: int, actor: str) -> bool:
        """Delete a batch key for good: secure_delete zeroes the row, a TRUNCATE checkpoint empties the WAL."""
        with self._write() as db:
            gone = db.execute("DELETE FROM batch_keys WHERE batch_id=?", (batch_id,)).rowcount > 0
            if gone:
                name = db.execute("SELECT name FROM batches WHERE id=?", (batch_id,)).fetchone()["name"]
                self._audit(db, actor, "batch.key_destroyed", name, {})
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return gone

    # ------------------------------------------------------------------ packages and uploads
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
            self._audit(db, actor, "batch.sealed", name, {"package_id": package_id, "sha256": sha256, "size": size})

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
                self._audit(db, audit[0], audit[1], name, audit[2])

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
                        {"receipt_id": receipt_id, "package_sha256": package_sha256})
            if BatchState(row["state"]) is not BatchState.UPLOADED:
                self._move_batch(db, row, BatchState.UPLOADED, actor)

    def record_purged(self, batch_id: int, *, objects_removed: int, actor: str) -> None:
        """The last step of a purge: upload and batch state in one commit."""
        with self._write() as db:
            row = db.execute("SELECT id, name, state FROM batches WHERE id=?", (batch_id,)).fetchone()
            db.execute("UPDATE uploads SET state='purged', updated_at=? WHERE batch_id=?", (self._now(), batch_id))
            self._audit(db, actor, "batch.purged", row["name"], {"objects_removed": objects_removed})
            if BatchState(row["state"]) is not BatchState.PURGED:
                self._move_batch(db, row, BatchState.PURGED, actor)

    def batch_object_ids(self, batch_id: int) -> list[str]:
        """Every vault object that belongs to a batch (pages' images and OCR, documents' PDFs)."""
        ids: list[str] = []
        for r in self._read(
            "SELECT raw_object, image_object, ocr_object, ocr_pdf_object FROM pages WHERE batch_id=? ORDER BY seq",
            (batch_id,),
        ):
            ids.extend(x for x in r if x)
        for r in self._read("SELECT pdf_object FROM documents WHERE batch_id=? ORDER BY seq", (batch_id,)):
            if r[0]:
                ids.append(r[0])
        for r in self._read("SELECT manifest_object FROM packages WHERE batch_id=?", (batch_id,)):
            if r[0]:
                ids.append(r[0])
        return ids

    # ------------------------------------------------------------------ documents
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
                {"batch_id": batch_id, "seq": seq, "employee_code": employee_code, "acr_period": acr_period},
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
            old = db.execute("SELECT pdf_object FROM documents WHERE id=?", (doc_id,)).fetchone()[0]
            db.execute("UPDATE documents SET pdf_object=? WHERE id=?", (obj.id, doc_id))
            if old:
                db.execute("DELETE FROM objects WHERE id=?", (old,))
            self._audit(db, actor, "document.pdf", f"document:{doc_id}", {"object": obj.id, "sha256": obj.sha256})
        return str(old) if old else None

    # ------------------------------------------------------------------ objects
    def _insert_object(self, db: sqlite3.Connection, obj: StoredObject) -> None:
        db.execute(
            "INSERT INTO objects (id, kind, sha256, ct_sha256, size, created_at) VALUES (?,?,?,?,?,?)",
            (obj.id, obj.kind, obj.sha256, obj.ct_sha256, obj.size, self._now()),
        )

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

    # ------------------------------------------------------------------ pages
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
            ocr_object=r["ocr_object"],
            ocr_sha256=r["ocr_sha256"],
            ocr_attempts=r["ocr_attempts"],
            ocr_error=r["ocr_error"],
            analysis=json.loads(r["analysis"]),
            flags=json.loads(r["flags"]),
        )

    _PAGE_SELECT = """
        SELECT p.*, ro.sha256 AS raw_sha256, io.sha256 AS image_sha256, oo.sha256 AS ocr_sha256
        FROM pages p JOIN objects ro ON ro.id = p.raw_object
        LEFT JOIN objects io ON io.id = p.image_object
        LEFT JOIN objects oo ON oo.id = p.ocr_object
    """

    def page(self, page_id: int) -> Page:
        rows = self._read(self._PAGE_SELECT + " WHERE p.id=?", (page_id,))
        if not rows:
            raise ScanStationError(f"page {page_id} does not exist")
        return self._page(rows[0])

    def pages(self, batch_id: int | None = None) -> list[Page]:
        if batch_id is None:
            return [self._page(r) for r in self._read(self._PAGE_SELECT + " ORDER BY p.batch_id, p.seq")]
        return [
            self._page(r) for r in self._read(self._PAGE_SELECT + " WHERE p.batch_id=? ORDER BY p.seq", (batch_id,))
        ]

    def document_pages(self, doc_id: int) -> list[Page]:
        return [
            self._page(r)
            for r in self._read(self._PAGE_SELECT + " WHERE p.document_id=? ORDER BY p.position, p.seq", (doc_id,))
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
                   mode, raw_object, state, ocr_state, document_id, position)
                   VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
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
                ),
            )
            page_id = int(cur.lastrowid or 0)
            self._audit(
                db,
                actor,
                "page.capture",
                f"page:{page_id}",
                {
                    "batch_id": batch_id,
                    "seq": seq,
                    "source_key": source_key,
                    "device": device,
                    "raw_sha256": raw.sha256,
                },
            )
        return self.page(page_id)

    def set_processed(
        self, page_id: int, image: StoredObject, analysis: dict[str, Any], flags: list[str], ocr_state: OcrState
    ) -> None:
        with self._write() as db:
            self._insert_object(db, image)
            # flags set at capture (e.g. a damaged separator sheet) survive the analysis
            before = json.loads(db.execute("SELECT flags FROM pages WHERE id=?", (page_id,)).fetchone()[0])
            flags = before + [f for f in flags if f not in before]
            db.execute(
                "UPDATE pages SET state=?, image_object=?, analysis=?, flags=?, ocr_state=? WHERE id=?",
                (
                    PageState.PROCESSED.value,
                    image.id,
                    json.dumps(analysis, sort_keys=True),
                    json.dumps(flags),
                    ocr_state.value,
                    page_id,
                ),
            )
            self._audit(
                db, "station", "page.process", f"page:{page_id}", {"image_sha256": image.sha256, "flags": flags}
            )

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
            self._audit(db, actor, "page.flag", f"page:{page_id}", {"flag": flag})
        return True

    def page_lengths(self, batch_id: int) -> list[tuple[int, int, int]]:
        """(page id, captured height in pixels, dpi) for every page of a batch, in capture order."""
        return [(r[0], r[1], r[2]) for r in self._read(
            "SELECT id, height, dpi FROM pages WHERE batch_id=? ORDER BY seq", (batch_id,))]

    def set_ocr_done(self, page_id: int, text: StoredObject, text_pdf: StoredObject, detail: dict[str, Any]) -> None:
        with self._write() as db:
            self._insert_object(db, text)
            self._insert_object(db, text_pdf)
            flags = json.loads(db.execute("SELECT flags FROM pages WHERE id=?", (page_id,)).fetchone()[0])
            flags = [f for f in flags if f != "ocr_failed"]
            db.execute(
                """UPDATE pages SET ocr_state=?, ocr_object=?, ocr_pdf_object=?, ocr_attempts=ocr_attempts+1,
                   ocr_error='', flags=? WHERE id=?""",
                (OcrState.DONE.value, text.id, text_pdf.id, json.dumps(flags), page_id),
            )
            self._audit(db, "station", "page.ocr", f"page:{page_id}", {"text_sha256": text.sha256, **detail})

    def set_ocr_failed(self, page_id: int, error: str, final: bool) -> None:
        with self._write() as db:
            flags = json.loads(db.execute("SELECT flags FROM pages WHERE id=?", (page_id,)).fetchone()[0])
            if final and "ocr_failed" not in flags:
                flags.append("ocr_failed")
            db.execute(
                "UPDATE pages SET ocr_state=?, ocr_attempts=ocr_attempts+1, ocr_error=?, flags=? WHERE id=?",
                ((OcrState.FAILED if final else OcrState.PENDING).value, error[:500], json.dumps(flags), page_id),
            )
            self._audit(db, "station", "page.ocr_failed", f"page:{page_id}", {"error": error[:200], "final": final})

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

    def pages_to_process(self) -> list[int]:
        return [r[0] for r in self._read("SELECT id FROM pages WHERE state=? ORDER BY id", (PageState.CAPTURED.value,))]

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

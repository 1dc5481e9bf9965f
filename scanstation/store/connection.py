"""The database connection every repository shares: SQLCipher, one writer lock, durable commits, migrations.

station.db is a SQLCipher database (AES-256, HMAC-SHA512 per page) under :attr:`StationKey.store_key`:
without an unlocked station nothing in it - employee codes and names, ACR periods, source keys and
file names, batch keys - is readable from the disk.  A wave-1 plaintext station.db is encrypted in
place the first time it is opened with a key (:func:`encrypt_plaintext_database`).

Audit entries are not kept here: every write appends one through the injected
:class:`~scanstation.audit.sink.AuditSink` (the station's audit trail, audit.db) *inside* the write
transaction, before its COMMIT.  The sink commits its own database before it returns, so a crash
leaves at most an entry for an action that did not complete, never an action without an entry.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlcipher3

from scanstation.audit.sink import AuditSink
from scanstation.domain import BatchState, check_transition
from scanstation.errors import ScanStationError, UnlockError
from scanstation.sqlite_files import immediate_transaction, run_migrations, schema_version
from scanstation.store.schema import MIGRATIONS

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every plaintext SQLite database
KEY_BYTES = 32


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class StoredObject:
    id: str
    kind: str
    sha256: str
    ct_sha256: str
    size: int


def _raw_key(key: bytes) -> str:
    """SQLCipher's raw-key literal: the 32 bytes are the AES key as they are (no PBKDF2 stretching)."""
    if len(key) != KEY_BYTES:
        raise ValueError(f"the station database key must be {KEY_BYTES} bytes, not {len(key)}")
    return f"x'{key.hex()}'"


def _connect(path: Path) -> Any:
    try:
        db = sqlcipher3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
    except sqlcipher3.Error as e:
        raise ScanStationError(f"{path}: cannot open the station database: {e}") from e
    # A wrong key is reported by the exception below; SQLCipher's own log would repeat it on stderr.
    db.execute("PRAGMA cipher_log_level = NONE")
    return db


def _open_keyed(path: Path, key: bytes) -> Any:
    """A connection to the encrypted database at ``path``; UnlockError if ``key`` does not open it."""
    db = _connect(path)
    db.execute(f'PRAGMA key = "{_raw_key(key)}"')
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()  # reads (and authenticates) page 1
    except sqlcipher3.DatabaseError as e:
        db.close()
        raise UnlockError(
            f"{path}: the station database does not open with this station's key (a different station "
            "identity was unlocked, or the file is damaged); unlock with this station's own identity or "
            "restore station.db from its backup"
        ) from e
    return db


def is_plaintext_database(path: Path) -> bool:
    """True if ``path`` is an unencrypted SQLite database (a wave-1 station.db)."""
    try:
        with path.open("rb") as f:
            return f.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except FileNotFoundError:
        return False


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_private(path: Path) -> None:
    """An empty file, mode 0600 (SQLite treats it as a new database and gives its -wal/-shm the same mode)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _restrict(path: Path) -> None:
    """Mode 0600 for the database and its -wal/-shm (wave 1 created them 0644)."""
    for f in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            if f.stat().st_mode & 0o077:
                os.chmod(f, 0o600)


def _shred(path: Path) -> None:
    """Overwrite a file with zeros, sync it, then unlink it (best effort: see encrypt_plaintext_database)."""
    try:
        size = path.stat().st_size
        with path.open("r+b") as f:
            chunk = b"\0" * (1 << 20)
            left = size
            while left > 0:
                left -= f.write(chunk[: min(left, len(chunk))])
            f.flush()
            os.fsync(f.fileno())
    except FileNotFoundError:
        return
    path.unlink(missing_ok=True)
    _fsync_path(path.parent)


def encrypt_plaintext_database(path: Path, key: bytes) -> bool:
    """Encrypt a wave-1 plaintext station.db in place under ``key``; False if it was not plaintext.

    The plaintext database is checkpointed (its WAL emptied into it), exported with ``sqlcipher_export``
    into ``station.db.encrypting`` (0600; the schema version copied), which is fsynced and renamed over
    station.db (atomic; the directory fsynced).  The old file is kept as a hard link until the rename is
    durable, then overwritten with zeros, fsynced and unlinked.  A crash at any point leaves either the
    plaintext database (encrypted again at the next open) or the encrypted one (and a leftover plaintext
    link, shredded at the next open).

    Honestly: overwriting cannot promise the plaintext is gone from an SSD (the flash translation layer
    writes elsewhere and keeps the old blocks until it erases them) nor from a copy-on-write or journalling
    file system; the same is true of the old WAL file's blocks.  Only an encrypted disk (or a secure erase
    of the disk) covers those copies.
    """
    tmp = path.with_name(path.name + ".encrypting")
    old = path.with_name(path.name + ".plaintext")
    if not is_plaintext_database(path):
        if old.exists():  # a migration cut short after its rename: finish it
            _shred(old)
        return False
    for leftover in (tmp, tmp.with_name(tmp.name + "-journal"), old):
        leftover.unlink(missing_ok=True)  # a migration cut short before its rename: start again
    src = _connect(path)
    try:
        version = int(src.execute("PRAGMA user_version").fetchone()[0])
        src.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        src.execute("PRAGMA journal_mode=DELETE")  # no -wal left beside the file we replace
        _create_private(tmp)
        src.execute("ATTACH DATABASE ? AS encrypted KEY ?", (str(tmp), _raw_key(key)))
        src.execute("SELECT sqlcipher_export('encrypted')")
        src.execute(f"PRAGMA encrypted.user_version = {version}")
        src.execute("DETACH DATABASE encrypted")
    finally:
        src.close()
    _fsync_path(tmp)
    for suffix in ("-wal", "-shm"):  # a WAL of the plaintext file must never be replayed into the new one
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    os.link(path, old)
    os.replace(tmp, path)
    _fsync_path(path.parent)
    _shred(old)
    log.info("%s: encrypted the wave-1 plaintext station database (schema %d)", path, version)
    return True


class StoreConnection:
    """One SQLCipher connection and one lock (one writer), migrations, and the audit sink every write uses."""

    def __init__(self, path: Path, *, key: bytes, audit: AuditSink, clock: Clock = utc_now,
                 close_audit: bool = False) -> None:
        """``key``: the 32-byte SQLCipher key (:attr:`StationKey.store_key`); ``audit``: where every write's
        entry goes; ``close_audit``: the store owns the sink and closes it (its ``close()``) with itself."""
        self.path = path
        self._clock = clock
        self._audit_sink = audit
        self._close_audit = close_audit
        self._lock = threading.RLock()
        _raw_key(key)  # the length check, before anything touches the file
        # Keys the digest that stands for an employee code once a batch is purged (the register of ACRs filed,
        # for duplicate checks: :meth:`employee_digest`); derived, so the store key itself is not kept.
        self._digest_key = hmac.new(key, b"scanstation/acr-register/v1", hashlib.sha256).digest()
        if is_plaintext_database(path):  # wave 1: the entry first, like every other change
            audit.append("station", "store.encrypt", path.name, {"from": "plaintext"})
        encrypt_plaintext_database(path, key)
        _create_private(path)
        _restrict(path)
        db = _open_keyed(path, key)
        # typed as the standard module's connection: sqlcipher3 is its API-identical fork
        self._db: sqlite3.Connection = db
        self._db.row_factory = sqlcipher3.Row
        # WAL lets readers (UI, status) run beside the writer; FULL makes every commit durable, so
        # an acknowledged page survives a power cut.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        # Deleted rows (destroyed batch keys, purged index data) are overwritten, not just unlinked from the
        # b-tree: the store key lives as long as the station, so what is deleted must not stay decryptable.
        self._db.execute("PRAGMA secure_delete=ON")
        self._migrate()
        # batch id -> public recipient, for the audit sink's look-ups: read without the store's lock, so the
        # sink can ask from any thread (even while another holds the lock) without a lock-order deadlock.
        self._batch_recipients: dict[int, str] = {
            int(r[0]): str(r[1]) for r in self._db.execute("SELECT batch_id, recipient FROM batch_keys")
        }

    def close(self) -> None:
        with self._lock:
            self._db.close()
        close = getattr(self._audit_sink, "close", None) if self._close_audit else None
        if close is not None:
            close()

    def employee_digest(self, employee_code: str) -> str:
        """An employee code as a purged batch remembers it: HMAC-SHA256 under a key derived from the store key,
        so a purged ACR file still counts as filed (duplicates) without its code being kept."""
        return hmac.new(self._digest_key, employee_code.encode("utf-8"), hashlib.sha256).hexdigest()

    def batch_recipient(self, batch_id: int) -> str | None:
        """The ``age1…`` recipient of a batch's live key, or None (none yet, or destroyed); takes no lock."""
        return self._batch_recipients.get(batch_id)

    def _migrate(self) -> None:
        with self._lock:
            version = schema_version(self._db, self.path, "database", len(MIGRATIONS))
            if version < len(MIGRATIONS):
                self._note_legacy_audit()
            run_migrations(self._db, MIGRATIONS, version)

    def _note_legacy_audit(self) -> None:
        """Before a pending migration drops wave 1's hash-chained ``audit`` table: its size and head hash
        go into the new trail, so the old chain (kept in backups) can still be tied to this station."""
        exists = self._db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='audit'").fetchone()
        if not exists:
            return
        row = self._db.execute("SELECT COUNT(*), MAX(id) FROM audit").fetchone()
        if not row[0]:
            return
        head = self._db.execute("SELECT hash, ts FROM audit WHERE id=?", (row[1],)).fetchone()
        self._audit_sink.append("station", "audit.legacy_chain_dropped", self.path.name,
                                {"entries": int(row[0]), "head_hash": str(head[0]), "head_ts": str(head[1])})

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        return immediate_transaction(self._db, self._lock)

    def _now(self) -> str:
        return self._clock().isoformat(timespec="milliseconds")

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, args))

    def _audit(self, db: sqlite3.Connection, actor: str, action: str, subject: str, detail: Mapping[str, Any], *,
               personal: Mapping[str, Any] | None = None, batch_id: int | None = None) -> None:
        """Append the entry for the write under way in ``db`` (inside ``with self._write() as db``, before the
        block ends).

        The sink commits the entry to its own database before it returns, and the store commits after
        that: a crash leaves at most an entry for an action that did not complete, never an action
        without an entry.  A failing sink raises, so the store change rolls back.  ``detail`` holds no
        personal data; employee fields, file names, source keys and labels go in ``personal``.
        """
        self._audit_sink.append(actor, action, subject, detail, personal=personal, batch_id=batch_id)

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
        self._audit(db, actor, "batch.state", row["name"], {"from": current.value, "to": target.value},
                    batch_id=row["id"])

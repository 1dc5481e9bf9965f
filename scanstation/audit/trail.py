"""The audit trail: every action a leaf of an RFC 6962 Merkle tree, with signed checkpoints (audit.db).

Storage.  audit.db is its own SQLite file (mode 0600, WAL, ``synchronous=FULL``), plaintext apart from
each entry's ``sealed`` column: the entry's personal fields, age-encrypted to its batch's recipient
(so purging the batch shreds them) or, without a batch, to the station recipient.  ``entries`` holds
every field of an entry and its leaf hash (:mod:`scanstation.audit.entries` defines the leaf bytes);
``checkpoints`` holds every signed tree head: size, root and the C2SP signed-note text.  An append is
committed durably before :meth:`AuditTrail.append` returns, so an action is never done without its
entry (a crash can leave an entry for an action that did not complete).

Checkpoints.  With a signer attached (the station is unlocked), a checkpoint is signed whenever 100 or
more entries are not yet covered by one, when the signer is attached and entries are pending (those
appended while locked: sign-in failures), and on demand (:meth:`AuditTrail.checkpoint`, at every seal).
The origin and key name are ``scanstation/<station id>``.  Before signing, the trail checks that the
log still extends its latest stored checkpoint (its signature by this key, and the root at its size),
and, when the service gives it one, the last checkpoint it kept outside audit.db: it never signs over a
rewritten or cut-back history.

What :meth:`AuditTrail.verify` catches, and what it cannot.

* An edited field of an entry (without re-hashing): its stored leaf hash no longer matches the leaf
  recomputed from its fields; that entry is named.
* A deleted entry or a reordering of entries: the sequence numbers are in the leaves, so a gap or a
  moved entry fails at the first affected seq.
* A rewrite with re-hashing (fields edited, leaf hashes and even the stored roots recomputed) by
  someone without the station's signing key: the roots no longer match the signed checkpoints, or
  the edited checkpoint notes no longer verify.  The first entry that can be named is the first one
  after the last checkpoint that still holds: a checkpoint vouches for its whole range, not for single
  entries, so the altered entry is somewhere in that range (at most ~100 entries).
* A truncated tail: caught whenever a stored checkpoint covers more entries than remain.
* Entries after the latest checkpoint are covered by no signature yet: someone with write access to
  audit.db can rewrite or drop them (they are signed at the next unlock, the next seal, or at 100).
* Entries *and* checkpoints cut back together: audit.db alone then looks like an older, intact log,
  and no check on the station's disk alone can tell.  Two places outside audit.db keep a later
  checkpoint: the service keeps the latest checkpoint note it signed in people.db (it registers
  :meth:`AuditTrail.add_checkpoint_listener` and passes the note back as ``known_checkpoint`` to
  :meth:`~AuditTrail.verify` and :meth:`~AuditTrail.attach_signer`), which catches a cut of audit.db
  alone; and the portal keeps the last checkpoint it acknowledged and refuses a package whose log is
  not an extension of it, which catches a cut of the whole data directory once a package was uploaded.
"""

from __future__ import annotations

import base64
import logging
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyrage
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pyrage import x25519

from batchformat import (
    Checkpoint,
    FormatError,
    MerkleTree,
    SignedCheckpoint,
    VerifierKey,
    canonical_json,
    leaf_hash,
    open_checkpoint,
    parse_checkpoint,
    parse_note,
    sign_checkpoint,
    verify_consistency,
)
from scanstation.audit.entries import AuditEntry, jsonable, parse_detail, stored_leaf_bytes
from scanstation.audit.sink import AuditSink
from scanstation.errors import AuditIntegrityError, ScanStationError
from scanstation.sqlite_files import immediate_transaction, run_migrations, schema_version

Clock = Callable[[], datetime]

log = logging.getLogger(__name__)

CHECKPOINT_INTERVAL = 100

_SCHEMA = """
CREATE TABLE entries (
    seq       INTEGER PRIMARY KEY,
    ts        TEXT NOT NULL,
    actor     TEXT NOT NULL,
    role      TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    detail    TEXT NOT NULL,
    sealed    TEXT,
    batch_id  INTEGER,
    leaf_hash BLOB NOT NULL
);
CREATE INDEX entries_batch ON entries (batch_id);
CREATE INDEX entries_subject ON entries (subject);
CREATE TABLE checkpoints (
    size      INTEGER PRIMARY KEY,
    root      BLOB NOT NULL,
    note      TEXT NOT NULL,
    signed_at TEXT NOT NULL
)
"""
_SCHEMA_VERSION = 1


def utc_now() -> datetime:
    return datetime.now(UTC)


class AuditVerificationError(AuditIntegrityError):
    """The audit trail failed verification at entry ``seq`` (``action`` when the entry exists).

    ``seq`` is the first entry that can be named as bad (see :mod:`scanstation.audit.trail` for what a
    checkpoint can and cannot pin down); ``problem`` says what failed.
    """

    def __init__(self, seq: int | None, action: str | None, problem: str) -> None:
        where = "audit trail" if seq is None else f"audit entry seq {seq} ({action or 'missing'})"
        super().__init__(f"{where}: {problem}")
        self.seq = seq
        self.action = action
        self.problem = problem

    def __reduce__(self) -> tuple[type, tuple[int | None, str | None, str]]:
        return (type(self), (self.seq, self.action, self.problem))


@dataclass(frozen=True)
class AuditReport:
    """An intact trail: how much was checked."""

    entries: int
    checkpoints: int
    signed_size: int          # entries covered by the latest checkpoint
    unsigned: int             # entries after it (covered by no signature yet)
    root: bytes               # the current tree head
    known_size: int | None    # size of the checkpoint kept outside audit.db that was checked, if any


@dataclass(frozen=True)
class _Row:
    entry: AuditEntry
    leaf: bytes


class AuditTrail(AuditSink):
    """The station's audit trail on ``path`` (audit.db); implements :class:`~scanstation.audit.sink.AuditSink`."""

    def __init__(
        self,
        path: Path,
        *,
        station_id: str,
        role_of: Callable[[str], str],
        batch_recipient: Callable[[int], x25519.Recipient | None],
        station_recipient: x25519.Recipient,
        clock: Clock = utc_now,
    ) -> None:
        self.path = Path(path)
        self.origin = f"scanstation/{station_id}"
        self._role_of = role_of
        self._batch_recipient = batch_recipient
        self._station_recipient = station_recipient
        self._clock = clock
        self._lock = threading.RLock()
        self._signer: Ed25519PrivateKey | None = None
        self._known: SignedCheckpoint | None = None
        self._listeners: list[Callable[[SignedCheckpoint], None]] = []
        self._problem: str | None = None   # why the last signing was refused (automatic signing stops)
        self._db = self._connect()
        self._tree = MerkleTree()
        self._latest: SignedCheckpoint | None = None
        self._reload()

    # ------------------------------------------------------------------ storage
    def _connect(self) -> sqlite3.Connection:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
                    os.fchmod(fd, 0o600)
            finally:
                os.close(fd)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        except (OSError, sqlite3.Error) as e:
            raise ScanStationError(f"{self.path}: cannot open the audit trail: {e}") from e
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        try:
            run_migrations(db, [_SCHEMA], schema_version(db, self.path, "audit trail", _SCHEMA_VERSION))
        except BaseException:
            db.close()
            raise
        return db

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        return immediate_transaction(self._db, self._lock)

    def _reload(self) -> None:
        """The in-memory tree and latest checkpoint from audit.db (at open, or if the file changed size)."""
        with self._lock:
            self._tree = MerkleTree(bytes(r[0]) for r in self._db.execute("SELECT leaf_hash FROM entries ORDER BY seq"))
            row = self._db.execute("SELECT size, root, note FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
            self._latest = None
            if row is not None:
                try:
                    self._latest = _stored_checkpoint(row)
                except FormatError:
                    self._latest = None  # unreadable: verify() names it; signing refuses (see _check_before_signing)

    def close(self) -> None:
        with self._lock:
            self._signer = None
            self._db.close()

    def _now(self) -> str:
        return self._clock().isoformat(timespec="milliseconds")

    # ------------------------------------------------------------------ AuditSink
    def append(
        self,
        actor: str,
        action: str,
        subject: str,
        detail: Mapping[str, Any],
        *,
        personal: Mapping[str, Any] | None = None,
        batch_id: int | None = None,
    ) -> int:
        """Record one action; committed durably (FULL synchronous) before this returns its seq."""
        role = self._role_of(actor)
        detail_obj = jsonable(dict(detail), "detail")
        sealed = self._seal(personal, batch_id) if personal else None
        with self._lock:
            with self._write() as db:
                count, top = db.execute("SELECT COUNT(*), MAX(seq) FROM entries").fetchone()
                if count != self._tree.size:
                    self._reload()  # another writer, or a changed file: never hash onto a stale tree
                seq = 0 if top is None else top + 1
                entry = AuditEntry(seq=seq, ts=self._now(), actor=actor, role=role, action=action,
                                   subject=subject, detail=detail_obj, sealed=sealed, batch_id=batch_id)
                leaf = entry.leaf_hash()
                db.execute(
                    "INSERT INTO entries (seq, ts, actor, role, action, subject, detail, sealed, batch_id, leaf_hash)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (seq, entry.ts, actor, role, action, subject, entry.detail_text(), sealed, batch_id, leaf),
                )
            self._tree.append(leaf)
            if (self._signer is not None and self._problem is None
                    and self._tree.size - self.signed_size >= CHECKPOINT_INTERVAL):
                try:
                    self._sign()
                except AuditIntegrityError as e:
                    # The entry is committed; the action may go on.  Signing stays refused (checkpoint()
                    # and so every seal raise) until a person has looked: `scanstation audit verify`.
                    self._problem = str(e)
                    log.error("audit checkpoint refused: %s", e)
            return seq

    def _seal(self, personal: Mapping[str, Any], batch_id: int | None) -> str:
        """Personal fields age-encrypted to the batch's recipient, else (no batch, or none known) the station's."""
        recipient = self._batch_recipient(batch_id) if batch_id is not None else None
        plaintext = canonical_json(jsonable(dict(personal), "personal"))
        ciphertext = pyrage.encrypt(plaintext, [recipient or self._station_recipient])
        return base64.b64encode(ciphertext).decode("ascii")

    # ------------------------------------------------------------------ checkpoints
    @property
    def size(self) -> int:
        with self._lock:
            return self._tree.size

    @property
    def signed_size(self) -> int:
        """Entries covered by the latest checkpoint (0 when none was signed)."""
        latest = self._latest
        return 0 if latest is None else latest.size

    def root(self, size: int | None = None) -> bytes:
        with self._lock:
            return self._tree.root(size)

    def add_checkpoint_listener(self, listener: Callable[[SignedCheckpoint], None]) -> None:
        """Call ``listener`` with every new checkpoint (the service keeps the latest one in people.db)."""
        with self._lock:
            self._listeners.append(listener)

    def attach_signer(self, key: Ed25519PrivateKey | None, *, known_checkpoint: str | None = None) -> None:
        """Unlocked: checkpoints can be signed, and pending entries are signed now.  None: locked.

        ``known_checkpoint`` is the latest checkpoint note kept outside audit.db (people.db): from now on
        the trail signs nothing unless its log extends it.  A log that does not extend what was signed
        before does not make this raise (the unlock goes on and appends keep being written): signing is
        refused, :attr:`signing_refused` says why, and :meth:`checkpoint` (every seal) raises.
        """
        with self._lock:
            self._signer = key
            if key is None:
                return
            try:
                if known_checkpoint is not None:
                    try:
                        self._known = open_checkpoint(known_checkpoint, self._verifier(key.public_key()),
                                                      origin=self.origin)
                    except FormatError as e:
                        raise AuditVerificationError(None, None, "the checkpoint kept outside audit.db does not "
                                                     f"verify, refusing to sign: {e}") from None
                self._check_before_signing(key)
                self._problem = None
                if self._tree.size > self.signed_size:
                    self._sign()
            except AuditIntegrityError as e:
                self._problem = str(e)
                log.error("audit checkpoint refused: %s", e)

    def checkpoint(self) -> SignedCheckpoint | None:
        """Sign the current tree head now (every seal); the latest one if nothing was added; None when locked."""
        with self._lock:
            if self._signer is None:
                return None
            if self._latest is not None and self._latest.size == self._tree.size:
                return self._latest
            return self._sign()

    @property
    def signing_refused(self) -> str | None:
        """Why the trail refused to sign (a rewritten or cut-back log was found), or None."""
        return self._problem

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        with self._lock:
            return self._latest

    def checkpoints(self) -> list[SignedCheckpoint]:
        with self._lock:
            rows = list(self._db.execute("SELECT size, root, note FROM checkpoints ORDER BY size"))
        return [_stored_checkpoint(r) for r in rows]

    def _verifier(self, public_key: Ed25519PublicKey) -> VerifierKey:
        return VerifierKey.from_public_key(self.origin, public_key)

    def _check_before_signing(self, key: Ed25519PrivateKey) -> None:
        """Never sign a head inconsistent with what was signed before (the latest stored or known checkpoint)."""
        verifier = self._verifier(key.public_key())
        row = self._db.execute("SELECT size, root, note FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
        earlier = []
        if row is not None:
            try:
                stored = open_checkpoint(row["note"], verifier, origin=self.origin)
            except FormatError as e:
                raise AuditVerificationError(None, None, f"the latest checkpoint (size {row['size']}) "
                                             f"does not verify, refusing to sign: {e}") from None
            earlier.append(("latest stored", stored))
        if self._known is not None:
            earlier.append(("kept outside audit.db", self._known))
        for what, cp in earlier:
            if cp.size > self._tree.size:
                raise AuditVerificationError(self._tree.size, None, f"the {what} checkpoint covers {cp.size} "
                                             "entries; the log was cut back. Refusing to sign")
            if self._tree.root(cp.size) != cp.root:
                raise AuditVerificationError(None, None, f"the log no longer matches the {what} checkpoint "
                                             f"(size {cp.size}); refusing to sign. Run `scanstation audit verify`")

    def _sign(self) -> SignedCheckpoint:
        key = self._signer
        assert key is not None
        try:
            self._check_before_signing(key)
        except AuditIntegrityError as e:
            self._problem = str(e)
            raise
        self._problem = None
        cp = Checkpoint(self.origin, self._tree.size, self._tree.root())
        signed = sign_checkpoint(cp, self.origin, key)
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO checkpoints (size, root, note, signed_at) VALUES (?,?,?,?)",
                       (cp.size, cp.root, signed.note, self._now()))
        self._latest = signed
        for listener in list(self._listeners):
            listener(signed)
        return signed

    # ------------------------------------------------------------------ proofs
    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 9162 consistency proof between two sizes of this log (for packages and the portal)."""
        with self._lock:
            return self._tree.consistency_proof(old_size, new_size)

    def inclusion_proof(self, seq: int, size: int | None = None) -> list[bytes]:
        with self._lock:
            return self._tree.inclusion_proof(seq, size)

    # ------------------------------------------------------------------ reading
    def entries(
        self,
        *,
        batch_id: int | None = None,
        subject: str | None = None,
        since: int = 0,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        """Entries in seq order (for ``audit show``), optionally one batch's or one subject's."""
        sql = "SELECT * FROM entries WHERE seq >= ?"
        args: list[Any] = [since]
        if batch_id is not None:
            sql += " AND batch_id = ?"
            args.append(batch_id)
        if subject is not None:
            sql += " AND subject = ?"
            args.append(subject)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self._lock:
            rows = list(self._db.execute(sql, args))
        return [_entry_of(r) for r in rows]

    @staticmethod
    def open_personal(entry: AuditEntry, identities: Sequence[x25519.Identity]) -> dict[str, Any] | None:
        """The personal fields of ``entry``, or None (none recorded, or the batch was purged / no key)."""
        ciphertext = entry.sealed_bytes()
        if ciphertext is None or not identities:
            return None
        try:
            value = parse_detail(pyrage.decrypt(ciphertext, list(identities)).decode("utf-8"))
        except (pyrage.DecryptError, UnicodeDecodeError, ValueError):
            return None
        return value

    # ------------------------------------------------------------------ verification
    def verify(self, public_key: Ed25519PublicKey, *, known_checkpoint: str | None = None) -> AuditReport:
        """Re-check everything from audit.db: every entry against its leaf, the tree, every checkpoint's
        signature and root, the consistency between consecutive checkpoints and, with
        ``known_checkpoint`` (a note kept outside audit.db), that the log extends it.

        Raises :class:`AuditVerificationError` (an AuditIntegrityError) naming the first bad entry.
        """
        verifier = self._verifier(public_key)
        with self._lock:
            self._db.execute("BEGIN")  # one snapshot of both tables
            try:
                rows = list(self._db.execute("SELECT * FROM entries ORDER BY seq"))
                cps = list(self._db.execute("SELECT size, root, note FROM checkpoints ORDER BY size"))
            finally:
                self._db.execute("COMMIT")
        return _verify(rows, cps, verifier, self.origin, known_checkpoint)


# --------------------------------------------------------------------------------------------------
# helpers


def _stored_checkpoint(row: sqlite3.Row) -> SignedCheckpoint:
    cp = parse_checkpoint(parse_note(row["note"]).text)
    return SignedCheckpoint(cp, row["note"])


def _entry_of(row: sqlite3.Row) -> AuditEntry:
    return AuditEntry(seq=row["seq"], ts=row["ts"], actor=row["actor"], role=row["role"], action=row["action"],
                      subject=row["subject"], detail=parse_detail(row["detail"]), sealed=row["sealed"],
                      batch_id=row["batch_id"])


def _verify(rows: list[sqlite3.Row], cps: list[sqlite3.Row], verifier: VerifierKey, origin: str,
            known_note: str | None) -> AuditReport:
    tree = MerkleTree()
    actions: list[str] = []
    good: SignedCheckpoint | None = None   # the latest checkpoint that held so far
    pending = list(cps)

    def fail_range(problem: str) -> AuditVerificationError:
        first = 0 if good is None else good.size
        action = actions[first] if first < len(actions) else None
        return AuditVerificationError(first, action, problem)

    def check_checkpoint(row: sqlite3.Row) -> None:
        nonlocal good
        size = row["size"]
        try:
            signed = open_checkpoint(row["note"], verifier, origin=origin)
        except FormatError as e:
            raise fail_range(f"the checkpoint of size {size} fails: {e}") from None
        if signed.size != size or signed.root != bytes(row["root"]):
            raise fail_range(f"the checkpoint row of size {size} differs from its signed note")
        if tree.root() != signed.root:
            raise fail_range(f"entries seq {0 if good is None else good.size}..{size - 1} do not match the signed "
                             f"checkpoint of size {size} (rewritten and re-hashed: the altered entry is in this "
                             "range)")
        if good is not None and good.size > 0:
            try:
                verify_consistency(good.size, size, good.root, signed.root, tree.consistency_proof(good.size, size))
            except FormatError as e:
                raise fail_range(f"checkpoints {good.size} and {size} are not consistent: {e}") from None
        good = signed

    while pending and pending[0]["size"] == 0:
        check_checkpoint(pending.pop(0))
    for row in rows:
        seq = tree.size
        if row["seq"] != seq:
            raise AuditVerificationError(seq, None, f"missing: the next stored entry is seq {row['seq']} "
                                         f"({row['action']})")
        actions.append(row["action"])
        try:
            entry = _entry_of(row)
            leaf = leaf_hash(stored_leaf_bytes(entry, row["detail"]))
        except (ValueError, TypeError, FormatError) as e:
            raise AuditVerificationError(seq, row["action"], f"unreadable stored fields ({e})") from None
        if bytes(row["leaf_hash"] or b"") != leaf:
            raise AuditVerificationError(seq, row["action"], "its stored fields do not match its leaf hash "
                                         "(the entry was edited, moved or replaced)")
        tree.append(leaf)
        while pending and pending[0]["size"] == tree.size:
            check_checkpoint(pending.pop(0))
    if pending:
        size = pending[0]["size"]
        raise AuditVerificationError(tree.size, None, f"the log ends at {tree.size} entries but a checkpoint "
                                     f"covers {size}: entries from seq {tree.size} on were removed")
    known_size = None
    if known_note is not None:
        try:
            known = open_checkpoint(known_note, verifier, origin=origin)
        except FormatError as e:
            raise AuditVerificationError(None, None, f"the checkpoint kept outside audit.db fails: {e}") from None
        known_size = known.size
        if known.size > tree.size:
            raise AuditVerificationError(tree.size, None, f"the log ends at {tree.size} entries but the checkpoint "
                                         f"kept outside audit.db covers {known.size}: the log was cut back")
        if tree.root(known.size) != known.root:
            held = [r["size"] for r in cps if r["size"] <= known.size]
            first = max(held, default=0)
            raise AuditVerificationError(first, actions[first] if first < len(actions) else None,
                                         f"entries up to seq {known.size - 1} do not match the checkpoint kept "
                                         "outside audit.db (rewritten)")
    signed_size = 0 if good is None else good.size
    return AuditReport(entries=tree.size, checkpoints=len(cps), signed_size=signed_size,
                       unsigned=tree.size - signed_size, root=tree.root(), known_size=known_size)

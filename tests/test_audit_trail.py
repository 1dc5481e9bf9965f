"""scanstation.audit: the Merkle audit trail (audit.db), its signed checkpoints, and the mutation sweep of
issue 13: every single-entry edit, deletion, reorder, tail truncation and rewrite-with-rehash of audit.db
is caught by verify; the untouched log passes; a cut of entries *and* checkpoints is caught only against a
checkpoint kept outside audit.db (people.db, the portal)."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import shutil
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pyrage import x25519

from batchformat import (
    MerkleTree,
    VerifierKey,
    canonical_json,
    open_checkpoint,
    sign_checkpoint,
    verify_consistency,
    verify_inclusion,
)
from scanstation.audit.entries import AuditEntry, stored_leaf_bytes
from scanstation.audit.sink import AuditSink
from scanstation.audit.trail import AuditReport, AuditTrail, AuditVerificationError
from scanstation.errors import AuditIntegrityError

STATION = "ST-07"
ORIGIN = f"scanstation/{STATION}"
ROLES = {"asha": "operator", "vikram": "supervisor", "meera": "unit_head", "root": "admin"}


class Keys:
    def __init__(self) -> None:
        self.station = x25519.Identity.generate()
        self.batches: dict[int, x25519.Identity] = {1: x25519.Identity.generate(), 2: x25519.Identity.generate()}
        self.signer = Ed25519PrivateKey.generate()

    def batch_recipient(self, batch_id: int) -> x25519.Recipient | None:
        identity = self.batches.get(batch_id)
        return identity.to_public() if identity is not None else None


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1500)
        return self.now


@pytest.fixture
def keys() -> Keys:
    return Keys()


def open_trail(path: Path, keys: Keys) -> AuditTrail:
    return AuditTrail(path, station_id=STATION, role_of=lambda actor: ROLES.get(actor, "system"),
                      batch_recipient=keys.batch_recipient, station_recipient=keys.station.to_public(),
                      clock=FakeClock())


@pytest.fixture
def trail(tmp_path: Path, keys: Keys) -> Iterator[AuditTrail]:
    t = open_trail(tmp_path / "audit.db", keys)
    yield t
    t.close()


def add_entries(trail: AuditTrail, count: int, start: int = 0) -> None:
    """A realistic mix: sign-ins, scans with personal fields sealed to a batch, views, a float, unicode."""
    for i in range(start, start + count):
        kind = i % 5
        if kind == 0:
            trail.append("asha", "session.sign_in", "asha", {"ok": True})
        elif kind == 1:
            trail.append("asha", "page.scan", f"page:{i}", {"sheet": i, "confidence": 91.5},
                         personal={"employee_code": f"EMP{i:05d}", "name": "सुनीता देवी"}, batch_id=1 + i % 2)
        elif kind == 2:
            trail.append("vikram", "page.view", f"page:{i - 1}", {}, batch_id=1)
        elif kind == 3:
            trail.append("root", "user.add", "user:nina", {"role": "operator"}, personal={"name": "Nina"})
        else:
            trail.append("meera", "batch.sealed", f"B-{i}", {"package_id": f"p{i}", "documents": [1, 2, 3]},
                         batch_id=2)


def verifier(keys: Keys) -> VerifierKey:
    return VerifierKey.from_public_key(ORIGIN, keys.signer.public_key())


# --------------------------------------------------------------------------------------------------
# storage and entries


def test_is_an_audit_sink(trail: AuditTrail) -> None:
    sink: AuditSink = trail
    assert sink.append("asha", "session.sign_in", "asha", {}) == 0
    assert sink.append("asha", "session.sign_out", "asha", {}) == 1


def test_file_mode_wal_full_and_durable(tmp_path: Path, keys: Keys) -> None:
    path = tmp_path / "audit.db"
    t = open_trail(path, keys)
    add_entries(t, 7)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert t._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    # a second, independent connection sees every committed entry at once (committed before append returned)
    other = sqlite3.connect(path)
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert other.execute("SELECT COUNT(*) FROM entries").fetchone()[0] == 7
    other.close()
    t.close()
    again = open_trail(path, keys)
    assert again.size == 7 and [e.seq for e in again.entries()] == list(range(7))
    assert again.append("asha", "x", "y", {}) == 7
    again.close()


def test_existing_file_is_tightened_to_0600(tmp_path: Path, keys: Keys) -> None:
    path = tmp_path / "audit.db"
    path.touch(mode=0o644)
    path.chmod(0o644)
    open_trail(path, keys).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_leaf_bytes_are_canonical_json_of_every_field(trail: AuditTrail) -> None:
    trail.append("asha", "page.scan", "page:1", {"sheet": 1, "confidence": 91.5, "name\u0301": "e\u0301"}, batch_id=1)
    entry = trail.entries()[0]
    assert entry.role == "operator" and entry.batch_id == 1 and entry.sealed is None
    assert entry.detail == {"sheet": 1, "confidence": "91.5", "nam\u00e9": "\u00e9"}  # float -> repr, NFC
    expected = {"action": "page.scan", "actor": "asha", "batch": 1, "detail": entry.detail, "role": "operator",
                "sealed": None, "seq": 0, "subject": "page:1", "ts": entry.ts}
    assert entry.leaf_bytes() == json.dumps(expected, sort_keys=True, separators=(",", ":"),
                                            ensure_ascii=False).encode()
    assert entry.leaf_hash() == hashlib.sha256(b"\x00" + entry.leaf_bytes()).digest()
    stored = trail._db.execute("SELECT leaf_hash FROM entries WHERE seq=0").fetchone()[0]
    assert stored == entry.leaf_hash()
    assert entry.ts.startswith("2025-03-01T09:00:01.500")


def test_stored_leaf_bytes_are_the_canonical_leaf(trail: AuditTrail) -> None:
    add_entries(trail, 40)
    trail.append("asha", "x", "s\u00e9 \"q\" \\ \u2028", {"n": None, "l": [1, "\u0000", {"b": False}]}, batch_id=0)
    for row in trail._db.execute("SELECT * FROM entries"):
        entry = AuditEntry(seq=row["seq"], ts=row["ts"], actor=row["actor"], role=row["role"], action=row["action"],
                           subject=row["subject"], detail=json.loads(row["detail"]), sealed=row["sealed"],
                           batch_id=row["batch_id"])
        assert stored_leaf_bytes(entry, row["detail"]) == entry.leaf_bytes() == canonical_json(entry.leaf_object())


def test_non_json_detail_is_a_programming_error(trail: AuditTrail) -> None:
    with pytest.raises(TypeError, match=r"detail\.when"):
        trail.append("asha", "x", "y", {"when": datetime.now(UTC)})
    assert trail.size == 0


def test_personal_fields_are_sealed_to_the_batch_or_the_station(tmp_path: Path, trail: AuditTrail,
                                                                keys: Keys) -> None:
    trail.append("asha", "page.scan", "page:1", {}, personal={"employee_code": "EMP77123"}, batch_id=1)
    trail.append("root", "user.add", "user:x", {}, personal={"name": "Kavitha Raman"})
    trail.append("asha", "page.scan", "page:2", {}, personal={"employee_code": "EMP77999"}, batch_id=99)  # no key
    e1, e2, e3 = trail.entries()
    assert AuditTrail.open_personal(e1, [keys.batches[1]]) == {"employee_code": "EMP77123"}
    assert AuditTrail.open_personal(e1, [keys.station]) is None          # only the batch key opens it
    assert AuditTrail.open_personal(e2, [keys.station]) == {"name": "Kavitha Raman"}
    assert AuditTrail.open_personal(e3, [keys.station]) == {"employee_code": "EMP77999"}
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("audit.db*"))
    for secret in (b"EMP77123", b"Kavitha", b"EMP77999"):
        assert secret not in raw
    # purge shreds: without the batch identity the sealed fields are gone, the log still verifies
    del keys.batches[1]
    assert AuditTrail.open_personal(e1, [keys.station]) is None
    trail.attach_signer(keys.signer)
    assert trail.verify(keys.signer.public_key()).entries == 3


def test_entries_filters(trail: AuditTrail) -> None:
    add_entries(trail, 30)
    assert {e.batch_id for e in trail.entries(batch_id=2)} == {2}
    assert [e.subject for e in trail.entries(subject="user:nina")] == ["user:nina"] * 6
    assert [e.seq for e in trail.entries(since=25, limit=3)] == [25, 26, 27]


def test_concurrent_appends(trail: AuditTrail, keys: Keys) -> None:
    trail.attach_signer(keys.signer)
    seqs: list[int] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        for i in range(60):
            s = trail.append("asha", "page.view", f"page:{n}:{i}", {"i": i})
            with lock:
                seqs.append(s)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(seqs) == list(range(240))
    assert [c.size for c in trail.checkpoints()] == [100, 200]
    assert trail.verify(keys.signer.public_key()).entries == 240


# --------------------------------------------------------------------------------------------------
# checkpoints


def test_checkpoints_every_100_on_attach_and_on_demand(trail: AuditTrail, keys: Keys) -> None:
    add_entries(trail, 130)                           # locked: nothing signed
    assert trail.checkpoint() is None and trail.checkpoints() == []
    trail.attach_signer(keys.signer)                  # unlock: the pending entries are signed at once
    assert [c.size for c in trail.checkpoints()] == [130]
    add_entries(trail, 99, start=130)
    assert [c.size for c in trail.checkpoints()] == [130]
    add_entries(trail, 1, start=229)                  # the 100th unsigned entry
    assert [c.size for c in trail.checkpoints()] == [130, 230]
    add_entries(trail, 7, start=230)
    sealed = trail.checkpoint()                       # at a seal
    assert sealed is not None and sealed.size == 237
    assert trail.checkpoint() == sealed               # nothing new: the same checkpoint
    trail.attach_signer(None)                         # lock
    add_entries(trail, 3, start=237)
    assert trail.checkpoint() is None and trail.latest_checkpoint() == sealed


def test_checkpoint_notes_proofs_and_roots(trail: AuditTrail, keys: Keys) -> None:
    trail.attach_signer(keys.signer)
    add_entries(trail, 250)
    final = trail.checkpoint()
    assert final is not None
    cps = trail.checkpoints()
    assert [c.size for c in cps] == [100, 200, 250]
    leaves = [e.leaf_hash() for e in trail.entries()]
    tree = MerkleTree(leaves)
    for cp in cps:
        opened = open_checkpoint(cp.note, verifier(keys), origin=ORIGIN)
        assert opened.root == tree.root(cp.size)
        assert cp.note.split("\n")[:2] == [ORIGIN, str(cp.size)]
        assert f"\n\n\u2014 {ORIGIN} " in cp.note
    for old, new in itertools.pairwise(cps):
        verify_consistency(old.size, new.size, old.root, new.root, trail.consistency_proof(old.size, new.size))
    verify_inclusion(17, 250, leaves[17], trail.inclusion_proof(17, 250), final.root)
    report = trail.verify(keys.signer.public_key())
    assert report == AuditReport(entries=250, checkpoints=3, signed_size=250, unsigned=0, root=final.root,
                                 known_size=None)


def test_listener_gets_every_checkpoint(trail: AuditTrail, keys: Keys) -> None:
    seen: list[int] = []
    trail.add_checkpoint_listener(lambda cp: seen.append(cp.size))
    trail.attach_signer(keys.signer)
    add_entries(trail, 205)
    trail.checkpoint()
    assert seen == [100, 200, 205]


def test_verify_reports_the_unsigned_tail(trail: AuditTrail, keys: Keys) -> None:
    trail.attach_signer(keys.signer)
    add_entries(trail, 142)
    report = trail.verify(keys.signer.public_key())
    assert (report.entries, report.signed_size, report.unsigned) == (142, 100, 42)


def test_wrong_public_key_fails(trail: AuditTrail, keys: Keys) -> None:
    trail.attach_signer(keys.signer)
    add_entries(trail, 120)
    with pytest.raises(AuditIntegrityError, match="no signature by the key"):
        trail.verify(Ed25519PrivateKey.generate().public_key())


# --------------------------------------------------------------------------------------------------
# the mutation sweep


SIZE = 250
FIELDS = ("ts", "actor", "role", "action", "subject", "detail", "sealed", "batch_id", "leaf_hash")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Keys]:
    """A closed audit.db of 250 entries: checkpoints at 100 and 200, and at 250 (a seal)."""
    keys = Keys()
    path = tmp_path_factory.mktemp("sweep") / "audit.db"
    t = open_trail(path, keys)
    t.attach_signer(keys.signer)
    add_entries(t, SIZE)
    t.checkpoint()
    assert [c.size for c in t.checkpoints()] == [100, 200, 250]
    t.close()
    return path, keys


def tampered(pristine: tuple[Path, Keys], work: Path, change: Callable[[sqlite3.Connection], None]) -> AuditTrail:
    src, keys = pristine
    shutil.copyfile(src, work)
    db = sqlite3.connect(work, isolation_level=None)
    db.execute("BEGIN")
    change(db)
    db.execute("COMMIT")
    db.close()
    return open_trail(work, keys)


class Bench:
    """One working copy of the pristine audit.db, one AuditTrail open on it, and a second sqlite3
    connection that tampers with it; before each mutation the pristine pages are restored into the
    working copy (sqlite3 backup), so thousands of mutations need no new files or trails."""

    def __init__(self, pristine: tuple[Path, Keys], work: Path) -> None:
        src, self.keys = pristine
        shutil.copyfile(src, work)
        self.saved = sqlite3.connect(":memory:")
        source = sqlite3.connect(src)
        source.backup(self.saved)
        source.close()
        self.db = sqlite3.connect(work, isolation_level=None)
        self.db.execute("PRAGMA synchronous=OFF")
        self.trail = open_trail(work, self.keys)

    def check(self, change: Callable[[sqlite3.Connection], Any], first: int | tuple[int, int],
              what: str) -> AuditVerificationError:
        self.saved.backup(self.db)
        self.db.execute("BEGIN")
        change(self.db)
        self.db.execute("COMMIT")
        with pytest.raises(AuditVerificationError) as info:
            self.trail.verify(self.keys.signer.public_key())
        return named(info.value, first, what)

    def close(self) -> None:
        self.trail.close()
        self.db.close()
        self.saved.close()


@pytest.fixture
def bench(pristine: tuple[Path, Keys], tmp_path: Path) -> Iterator[Bench]:
    b = Bench(pristine, tmp_path / "work.db")
    yield b
    b.close()


def expect_caught(trail: AuditTrail, keys: Keys, first: int | tuple[int, int], what: str) -> AuditVerificationError:
    try:
        with pytest.raises(AuditVerificationError) as info:
            trail.verify(keys.signer.public_key())
    finally:
        trail.close()
    return named(info.value, first, what)


def named(err: AuditVerificationError, first: int | tuple[int, int], what: str) -> AuditVerificationError:
    assert isinstance(err, AuditIntegrityError) and err.exit_code == 25
    if isinstance(first, int):
        assert err.seq == first, f"{what}: named seq {err.seq}, expected {first}: {err}"
    else:
        assert err.seq is not None and first[0] <= err.seq <= first[1], f"{what}: {err}"
    assert f"seq {err.seq}" in str(err)
    return err


def other_value(column: str, value: Any) -> Any:
    if column == "leaf_hash":
        return hashlib.sha256(bytes(value)).digest()
    if column == "batch_id":
        return 99 if value is None else None
    if column == "sealed":
        return base64.b64encode(b"forged").decode() if value is None else None
    if column == "detail":
        return canonical_json({**json.loads(value), "forged": True}).decode()
    if column == "ts":
        return value.replace("2025", "2024")
    return value + "x"


def sql(statement: str, *args: Any) -> Callable[[sqlite3.Connection], Any]:
    return lambda db: db.execute(statement, args)


def test_untouched_log_passes(pristine: tuple[Path, Keys], tmp_path: Path) -> None:
    t = tampered(pristine, tmp_path / "a.db", lambda db: None)
    report = t.verify(pristine[1].signer.public_key())
    t.close()
    assert (report.entries, report.checkpoints, report.unsigned) == (SIZE, 3, 0)


def test_sweep_every_field_of_every_entry(pristine: tuple[Path, Keys], bench: Bench) -> None:
    rows = {r[0]: r for r in sqlite3.connect(pristine[0]).execute(f"SELECT seq, {', '.join(FIELDS)} FROM entries")}
    caught = 0
    for seq in range(SIZE):
        for i, column in enumerate(FIELDS):
            new = other_value(column, rows[seq][i + 1])

            def change(db: sqlite3.Connection, column: str = column, new: Any = new, seq: int = seq) -> None:
                db.execute(f"UPDATE entries SET {column}=? WHERE seq=?", (new, seq))

            err = bench.check(change, seq, f"{column} of {seq}")
            assert err.action == rows[seq][FIELDS.index("action") + 1] or column == "action"
            caught += 1
    assert caught == SIZE * len(FIELDS)


def test_sweep_delete_swap_truncate(bench: Bench) -> None:
    cols = ", ".join(FIELDS)
    for seq in range(SIZE):
        bench.check(sql("DELETE FROM entries WHERE seq=?", seq), seq, f"delete {seq}")
        bench.check(sql("DELETE FROM entries WHERE seq>=?", seq), seq, f"truncate {seq}")
        if seq + 1 < SIZE:
            def swap(db: sqlite3.Connection, s: int = seq) -> None:
                a = db.execute(f"SELECT {cols} FROM entries WHERE seq=?", (s,)).fetchone()
                b = db.execute(f"SELECT {cols} FROM entries WHERE seq=?", (s + 1,)).fetchone()
                sets = ", ".join(f"{c}=?" for c in FIELDS)
                db.execute(f"UPDATE entries SET {sets} WHERE seq=?", (*b, s))
                db.execute(f"UPDATE entries SET {sets} WHERE seq=?", (*a, s + 1))

            bench.check(swap, seq, f"swap {seq}")
        # moving an entry to the end by renumbering it
        bench.check(sql("UPDATE entries SET seq=? WHERE seq=?", 1000 + seq, seq), seq, f"renumber {seq}")


def rewrite_with_rehash(db: sqlite3.Connection, seq: int, resign: Ed25519PrivateKey | None) -> None:
    """What an attacker with write access but without the station key can do: edit entry ``seq``, recompute
    its leaf hash, the roots of every later checkpoint and (``resign``) sign those with a key of their own."""
    row = db.execute("SELECT * FROM entries WHERE seq=?", (seq,)).fetchone()
    names = [d[0] for d in db.execute("SELECT * FROM entries LIMIT 0").description]
    r = dict(zip(names, row, strict=True))
    entry = AuditEntry(seq=seq, ts=r["ts"], actor="mallory", role=r["role"], action=r["action"],
                       subject=r["subject"], detail=json.loads(r["detail"]), sealed=r["sealed"],
                       batch_id=r["batch_id"])
    db.execute("UPDATE entries SET actor=?, leaf_hash=? WHERE seq=?", ("mallory", entry.leaf_hash(), seq))
    tree = MerkleTree(bytes(x[0]) for x in db.execute("SELECT leaf_hash FROM entries ORDER BY seq"))
    for (size,) in list(db.execute("SELECT size FROM checkpoints WHERE size > ?", (seq,))):
        root = tree.root(size)
        db.execute("UPDATE checkpoints SET root=? WHERE size=?", (root, size))
        if resign is not None:
            from batchformat import Checkpoint

            note = sign_checkpoint(Checkpoint(ORIGIN, size, root), ORIGIN, resign).note
            db.execute("UPDATE checkpoints SET note=? WHERE size=?", (note, size))


def covering_range(seq: int) -> tuple[int, int]:
    """The entries a checkpoint vouches for together: the one covering ``seq`` and the one before it."""
    for start, end in ((0, 100), (100, 200), (200, 250)):
        if start <= seq < end:
            return start, seq
    raise AssertionError(seq)


def test_sweep_rewrite_with_rehash(bench: Bench) -> None:
    forger = Ed25519PrivateKey.generate()
    for seq in range(SIZE):
        err = bench.check(partial(rewrite_with_rehash, seq=seq, resign=None), covering_range(seq), f"rehash {seq}")
        assert "differs from its signed note" in err.problem
        err = bench.check(partial(rewrite_with_rehash, seq=seq, resign=forger), covering_range(seq),
                          f"rehash and re-sign {seq}")
        assert "no signature by the key" in err.problem


def test_sweep_checkpoint_tampering(bench: Bench) -> None:
    bench.check(lambda db: db.execute("UPDATE checkpoints SET note=replace(note, '\n200\n', '\n199\n')"),
                (100, 100), "edited note")
    bench.check(lambda db: db.execute("UPDATE checkpoints SET size=size+1 WHERE size=200"), (100, 100),
                "renumbered checkpoint")


# --------------------------------------------------------------------------------------------------
# what only a checkpoint kept outside audit.db can catch


def test_cutting_entries_and_checkpoints_needs_the_kept_checkpoint(pristine: tuple[Path, Keys],
                                                                   tmp_path: Path) -> None:
    keys = pristine[1]
    kept = sqlite3.connect(pristine[0]).execute("SELECT note FROM checkpoints WHERE size=250").fetchone()[0]

    def cut(db: sqlite3.Connection) -> None:
        db.execute("DELETE FROM entries WHERE seq >= 180")
        db.execute("DELETE FROM checkpoints WHERE size > 180")

    t = tampered(pristine, tmp_path / "w.db", cut)
    report = t.verify(keys.signer.public_key())       # audit.db alone looks like an older, intact log
    assert (report.entries, report.signed_size) == (180, 100)
    with pytest.raises(AuditVerificationError, match="cut back") as info:
        t.verify(keys.signer.public_key(), known_checkpoint=kept)
    assert info.value.seq == 180
    # and the service, given the kept note at unlock, refuses to sign over the cut
    t.attach_signer(keys.signer, known_checkpoint=kept)
    assert "cut back" in (t.signing_refused or "")
    with pytest.raises(AuditIntegrityError, match="cut back"):
        t.checkpoint()
    t.close()

    def cut_and_regrow(db: sqlite3.Connection) -> None:
        cut(db)
        db.execute("UPDATE entries SET actor='mallory' WHERE seq=150")  # and no checkpoint above 100 remains

    t = tampered(pristine, tmp_path / "w2.db", cut_and_regrow)
    with pytest.raises(AuditVerificationError):
        t.verify(keys.signer.public_key(), known_checkpoint=kept)
    t.close()


def test_kept_checkpoint_passes_on_an_intact_log(pristine: tuple[Path, Keys], tmp_path: Path) -> None:
    keys = pristine[1]
    kept = sqlite3.connect(pristine[0]).execute("SELECT note FROM checkpoints WHERE size=200").fetchone()[0]
    t = tampered(pristine, tmp_path / "w.db", lambda db: None)
    assert t.verify(keys.signer.public_key(), known_checkpoint=kept).known_size == 200
    t.close()


def test_never_signs_over_a_rewritten_history(tmp_path: Path, keys: Keys) -> None:
    path = tmp_path / "audit.db"
    t = open_trail(path, keys)
    t.attach_signer(keys.signer)
    add_entries(t, 120)
    t.close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    rewrite_with_rehash(db, 40, None)
    db.execute("COMMIT")
    db.close()
    t = open_trail(path, keys)
    t.attach_signer(keys.signer)            # 20 pending entries: signing is refused, the problem is kept
    assert "refusing to sign" in (t.signing_refused or "")
    add_entries(t, 90, start=120)           # appends keep working (the entries are still written) ...
    assert t.size == 210 and [c.size for c in t.checkpoints()] == [100]
    with pytest.raises(AuditIntegrityError, match="refusing to sign"):
        t.checkpoint()                      # ... but a seal cannot get a checkpoint
    t.close()

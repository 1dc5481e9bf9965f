"""Personal data at rest (issue 13, scope 5): station.db is SQLCipher under a key derived from the station secret.

Without an unlock nothing of a batch's index - employee code, name, rank, ACR period, source keys and file
names - is readable from any file of the data directory; with the key everything reads back; a wrong key
is a clear UnlockError; a wave-1 plaintext station.db is encrypted in place; a purged batch leaves no index
data behind, not even in the database's free space (checked by decrypting every page of the file).
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from PIL import Image
from pyrage import x25519

from drivers.base import CapturedPage
from scanstation.config import Config, load_config
from scanstation.domain import BatchState, OcrState, Side
from scanstation.errors import UnlockError
from scanstation.facade import Station, open_store
from scanstation.store.connection import is_plaintext_database
from scanstation.store.database import Store, StoredObject
from scanstation.store.schema import MIGRATIONS
from scanstation.vault.identity import StationKey

from .recording_sink import RecordingSink

CODE, NAME, RANK, PERIOD = "EMP4471902", "Ramesh Kumar Verma", "Sub-Inspector", "2019-20-ACR"
FILE = "verma_ramesh_acr_scan.tif"
SECRETS = [CODE, NAME, RANK, PERIOD, FILE, "verma_ramesh"]
KEY = bytes(range(32))


def _leaks(data_dir: Path, needles: list[str]) -> list[str]:
    """``file: needle`` for every needle found (UTF-8, UTF-16) in the raw bytes of any file under data_dir."""
    found = []
    for f in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        raw = f.read_bytes()
        for n in needles:
            if any(enc in raw for enc in (n.encode(), n.encode("utf-16-le"), n.encode("utf-16-be"))):
                found.append(f"{f.relative_to(data_dir)}: {n}")
    return found


def _decrypted_pages(path: Path, key: bytes) -> bytes:
    """Every page of a SQLCipher 4 file decrypted (AES-256-CBC, raw key, 4096-byte pages, 80 reserved bytes:
    IV then HMAC): live rows *and* free space, which a SELECT would never show."""
    data = path.read_bytes()
    size, reserve = 4096, 80
    out = []
    for i in range(len(data) // size):
        page = data[i * size:(i + 1) * size]
        dec = Cipher(algorithms.AES(key), modes.CBC(page[size - reserve:size - reserve + 16])).decryptor()
        out.append(dec.update(page[16 if i == 0 else 0:size - reserve]) + dec.finalize())
    return b"".join(out)


def _page(i: int, key: str, label: str) -> CapturedPage:
    return CapturedPage(image=Image.new("L", (64, 80), 200 + i), dpi=100, device="import", side="import",
                        sheet=i, source_key=key, label=label)


def _station_config(root: Path) -> Config:
    """A station's configuration written directly (no CLI: the station's files are what is under test)."""
    portal = x25519.Identity.generate().to_public()
    path, data_dir = root / "station.toml", root / "data"
    path.write_text(f'[station]\nid = "st-rest"\nunit = "Test Unit"\ndata_dir = "{data_dir}"\n'
                    f'[keys]\nportal_recipient = "{portal}"\n[ocr]\nenabled = false\n')
    return load_config(path)


def test_nothing_personal_on_disk_without_the_key(tmp_path: Path) -> None:
    config = _station_config(tmp_path)
    key = StationKey(x25519.Identity.generate())
    with Station(config, key) as station:
        doc = station.open_document("B-AT-REST", CODE, NAME, RANK, PERIOD)
        batch = station.store.batch("B-AT-REST")
        assert batch is not None
        for i in (1, 2):
            page = station.add_page(batch, _page(i, f"file:{FILE}:{i}", f"{FILE} page {i}"), document=doc)
            assert page is not None
        assert station.wait_idle(include_ocr=False, timeout=60)
    data_dir = config.data_dir
    names = {p.name for p in data_dir.iterdir()}
    assert "station.db" in names
    assert not is_plaintext_database(data_dir / "station.db")
    assert _leaks(data_dir, SECRETS) == []
    assert os.stat(data_dir).st_mode & 0o777 == 0o700
    for f in ("station.db", "station.db-wal", "station.db-shm", "audit.db", "people.db"):
        if (data_dir / f).exists():
            assert os.stat(data_dir / f).st_mode & 0o077 == 0, f
    # with the key everything reads back
    store = open_store(config, key)
    try:
        b = store.batch("B-AT-REST")
        assert b is not None
        [d] = store.documents(b.id)
        assert (d.employee_code, d.employee_name, d.rank, d.acr_period) == (CODE, NAME, RANK, PERIOD)
        assert [p.source_key for p in store.pages(b.id)] == [f"file:{FILE}:1", f"file:{FILE}:2"]
    finally:
        store.close()
    # another station's key does not open it, and says so
    other = StationKey(x25519.Identity.generate())
    with pytest.raises(UnlockError, match="does not open with this station's key"):
        open_store(config, other)


def test_wrong_key_is_a_clear_error(tmp_path: Path) -> None:
    Store(tmp_path / "station.db", key=KEY, audit=RecordingSink()).close()
    with pytest.raises(UnlockError, match="does not open with this station's key"):
        Store(tmp_path / "station.db", key=bytes(32), audit=RecordingSink())
    with pytest.raises(ValueError, match="32 bytes"):
        Store(tmp_path / "station.db", key=b"short", audit=RecordingSink())


def _wave1_database(path: Path) -> None:
    """A wave-1 station.db: plaintext, 0644, schema 3, the hash-chained audit table with personal details."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    for i, migration in enumerate(MIGRATIONS[:3]):
        db.executescript(migration)
        db.execute(f"PRAGMA user_version={i + 1}")
    db.execute("INSERT INTO batches (name, unit, operator, state, created_at, updated_at) "
               "VALUES ('W1', 'Unit', 'op', 'scanning', 't', 't')")
    db.execute("INSERT INTO documents (batch_id, seq, employee_code, employee_name, rank, acr_period) "
               "VALUES (1, 1, ?, ?, ?, ?)", (CODE, NAME, RANK, PERIOD))
    db.execute("INSERT INTO objects (id, kind, sha256, ct_sha256, size, created_at) "
               "VALUES ('o1', 'raw', 'a', 'b', 1, 't')")
    db.execute("INSERT INTO pages (batch_id, seq, source_key, label, side, device, captured_at, width, height, dpi, "
               "mode, raw_object, state, ocr_state) VALUES (1, 1, ?, ?, 'import', 'import', 't', 1, 1, 1, 'L', "
               "'o1', 'captured', 'pending')", (f"file:{FILE}:1", FILE))
    db.execute("INSERT INTO audit (ts, actor, action, subject, detail, prev_hash, hash) VALUES "
               "('t', 'op', 'document.create', 'document:1', ?, ?, ?)",
               (json.dumps({"employee_code": CODE, "acr_period": PERIOD}), "0" * 64, "f" * 64))
    db.close()
    os.chmod(path, 0o644)


def test_wave1_plaintext_database_is_encrypted_in_place(tmp_path: Path) -> None:
    path = tmp_path / "station.db"
    _wave1_database(path)
    assert is_plaintext_database(path) and CODE.encode() in path.read_bytes()
    (tmp_path / "station.db.encrypting").write_bytes(b"left by a migration cut short")
    sink = RecordingSink()
    store = Store(path, key=KEY, audit=sink)
    try:
        [doc] = store.documents(1)
        assert (doc.employee_code, doc.employee_name, doc.acr_period) == (CODE, NAME, PERIOD)
        assert store.pages(1)[0].source_key == f"file:{FILE}:1"
    finally:
        store.close()
    assert not is_plaintext_database(path)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("station.db")) == ["station.db"]
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert _leaks(tmp_path, SECRETS) == []
    # the entry before the change; the old chain's size and head recorded before its table is dropped
    assert sink.actions() == ["store.encrypt", "audit.legacy_chain_dropped"]
    assert sink.entries[1].detail == {"entries": 1, "head_hash": "f" * 64, "head_ts": "t"}
    db = Store(path, key=KEY, audit=sink)  # opens again: nothing more to migrate
    db.close()
    assert len(sink.entries) == 2
    decrypted = _decrypted_pages(path, KEY)
    assert b"document.create" not in decrypted  # the dropped audit table's pages were zeroed (secure_delete)


def test_purge_leaves_no_index_data(tmp_path: Path) -> None:
    path = tmp_path / "station.db"
    sink = RecordingSink()
    store = Store(path, key=KEY, audit=sink)
    kept_code = "KEPT000111"
    for name, code in (("P1", CODE), ("P2", kept_code)):
        b = store.open_batch(name, "Unit", "op")
        doc = store.add_document(b.id, "op", code, NAME if name == "P1" else "Kept Person", RANK, PERIOD)
        for i in (1, 2):
            store.add_page(batch_id=b.id, source_key=f"file:{FILE if name == 'P1' else 'kept'}:{i}:{name}",
                           label=f"{FILE} page {i}" if name == "P1" else "kept", side=Side.FRONT, device="import",
                           width=1, height=1, dpi=1, mode="L",
                           raw=StoredObject(f"{name}-{i}", "raw", "a" * 64, "b" * 64, 1), document_id=doc.id,
                           actor="op", ocr_state=OcrState.PENDING)
        store.add_batch_key(b.id, "age1recipient", b"wrapped-" + name.encode())
    p1 = store.batch("P1")
    assert p1 is not None
    for state in (BatchState.CLOSED, BatchState.IN_VERIFICATION, BatchState.VERIFIED, BatchState.SEALED,
                  BatchState.UPLOADING, BatchState.UPLOADED):
        store.set_batch_state(p1.id, state, "op")
    store.enqueue_upload(p1.id, 1, "op")
    store.destroy_batch_key(p1.id, "op")
    store.record_purged(p1.id, objects_removed=4, actor="op")
    assert store.batch_by_id(p1.id).state is BatchState.PURGED
    [doc] = store.documents(p1.id)
    assert (doc.employee_code, doc.employee_name, doc.rank, doc.acr_period) == ("", "", "", "")
    pages = store.pages(p1.id)
    assert len(pages) == 2 and all(FILE not in p.source_key for p in pages)
    assert store.batch_key(p1.id) is None and store.batch_recipient(p1.id) is None
    p2 = store.batch("P2")
    assert p2 is not None and store.documents(p2.id)[0].employee_code == kept_code
    store.close()
    assert not (tmp_path / "station.db-wal").exists() or (tmp_path / "station.db-wal").stat().st_size == 0
    # even with the key, nothing of P1's index is left anywhere in the file (live rows or free space)
    decrypted = _decrypted_pages(path, KEY)
    assert kept_code.encode() in decrypted and b"Kept Person" in decrypted  # the check can see what is there
    for needle in (CODE, NAME, FILE, "wrapped-P1"):
        assert needle.encode() not in decrypted, needle

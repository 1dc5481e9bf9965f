"""Store: schema migrations, batch state machine, idempotent page capture, audit chain."""

import sqlite3
from pathlib import Path

import pytest

from scanstation.domain import BATCH_TRANSITIONS, BatchState, OcrState, Side, check_transition
from scanstation.errors import StateError
from scanstation.store.database import Store, StoredObject
from scanstation.store.schema import MIGRATIONS


def _obj(i: int) -> StoredObject:
    return StoredObject(f"{i:032x}", "raw", "a" * 64, "b" * 64, 10)


def _add(store: Store, batch_id: int, key: str, i: int):  # type: ignore[no-untyped-def]
    return store.add_page(batch_id=batch_id, source_key=key, label=key, side=Side.FRONT, device="test:0",
                          width=10, height=10, dpi=300, mode="L", raw=_obj(i), document_id=None, actor="op",
                          ocr_state=OcrState.PENDING)


def test_pragmas_and_migrations(tmp_path: Path) -> None:
    s = Store(tmp_path / "db.sqlite")
    s.close()
    db = sqlite3.connect(tmp_path / "db.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    db.close()
    Store(tmp_path / "db.sqlite").close()  # re-open: no migration runs twice


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "db.sqlite")
    db.execute(f"PRAGMA user_version={len(MIGRATIONS) + 5}")
    db.close()
    with pytest.raises(Exception, match="newer than this software"):
        Store(tmp_path / "db.sqlite")


def test_state_machine_edges() -> None:
    check_transition(BatchState.SCANNING, BatchState.VERIFIED)
    check_transition(BatchState.VERIFIED, BatchState.SCANNING)  # returned for rescan
    with pytest.raises(StateError):
        check_transition(BatchState.SCANNING, BatchState.UPLOADED)
    with pytest.raises(StateError):
        check_transition(BatchState.PURGED, BatchState.SCANNING)
    assert all(s in BATCH_TRANSITIONS for s in BatchState)


def test_batch_lifecycle_and_duplicate_pages(tmp_path: Path) -> None:
    s = Store(tmp_path / "db.sqlite")
    b = s.open_batch("B1", "Unit", "op")
    assert _add(s, b.id, "k1", 1).seq == 1
    assert _add(s, b.id, "k2", 2).seq == 2
    assert _add(s, b.id, "k1", 3) is None  # same source key: refused, no duplicate
    assert [p.seq for p in s.pages(b.id)] == [1, 2]
    s.set_batch_state(b.id, BatchState.VERIFIED, "sup")
    with pytest.raises(StateError, match="only be added while scanning"):
        s.open_batch("B1", "Unit", "op")
    s.set_batch_state(b.id, BatchState.SCANNING, "sup")
    assert s.open_batch("B1", "Unit", "op").state is BatchState.SCANNING
    assert s.verify_audit_chain() == []


def test_audit_chain_detects_tampering(tmp_path: Path) -> None:
    s = Store(tmp_path / "db.sqlite")
    b = s.open_batch("B1", "Unit", "op")
    _add(s, b.id, "k1", 1)
    s.audit("op", "x", "y", {"n": 1})
    s.close()
    db = sqlite3.connect(tmp_path / "db.sqlite")
    db.execute("UPDATE audit SET actor='someone-else' WHERE id=2")
    db.commit()
    db.close()
    s = Store(tmp_path / "db.sqlite")
    problems = s.verify_audit_chain()
    assert problems and "entry 2" in problems[0]

"""Store: schema migrations, batch state machine, idempotent page capture, audit entries through the sink."""

import os
from pathlib import Path

import pytest
import sqlcipher3
from pyrage import x25519

from scanstation.audit.trail import AuditTrail
from scanstation.domain import BATCH_TRANSITIONS, BatchState, OcrState, Side, check_transition
from scanstation.errors import StateError
from scanstation.store.database import Store, StoredObject
from scanstation.store.schema import MIGRATIONS

from .recording_sink import RecordingSink

KEY = bytes(range(32))


def _store(path: Path, sink: RecordingSink | None = None) -> Store:
    return Store(path, key=KEY, audit=sink if sink is not None else RecordingSink())


def _keyed(path: Path) -> sqlcipher3.Connection:
    db = sqlcipher3.connect(path)
    db.execute(f"PRAGMA key = \"x'{KEY.hex()}'\"")
    return db


def _obj(i: int) -> StoredObject:
    return StoredObject(f"{i:032x}", "raw", "a" * 64, "b" * 64, 10)


def _add(store: Store, batch_id: int, key: str, i: int):  # type: ignore[no-untyped-def]
    return store.add_page(batch_id=batch_id, source_key=key, label=key, side=Side.FRONT, device="test:0",
                          width=10, height=10, dpi=300, mode="L", raw=_obj(i), document_id=None, actor="op",
                          ocr_state=OcrState.PENDING)


def test_pragmas_and_migrations(tmp_path: Path) -> None:
    s = _store(tmp_path / "db.sqlite")
    s.close()
    db = _keyed(tmp_path / "db.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    db.close()
    _store(tmp_path / "db.sqlite").close()  # re-open: no migration runs twice
    assert os.stat(tmp_path / "db.sqlite").st_mode & 0o777 == 0o600


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = _keyed(tmp_path / "db.sqlite")
    db.execute(f"PRAGMA user_version={len(MIGRATIONS) + 5}")
    db.close()
    with pytest.raises(Exception, match="newer than this software"):
        _store(tmp_path / "db.sqlite")


def test_state_machine_edges() -> None:
    check_transition(BatchState.SCANNING, BatchState.CLOSED)
    check_transition(BatchState.CLOSED, BatchState.IN_VERIFICATION)
    check_transition(BatchState.IN_VERIFICATION, BatchState.VERIFIED)
    check_transition(BatchState.VERIFIED, BatchState.RETURNED)  # returned for rescan
    check_transition(BatchState.RETURNED, BatchState.CLOSED)
    check_transition(BatchState.SEALED, BatchState.RETURNED)  # unseal
    for unverified in (BatchState.SCANNING, BatchState.CLOSED, BatchState.IN_VERIFICATION, BatchState.RETURNED):
        with pytest.raises(StateError):  # nothing reaches sealed without verification
            check_transition(unverified, BatchState.SEALED)
    with pytest.raises(StateError):
        check_transition(BatchState.SCANNING, BatchState.VERIFIED)
    with pytest.raises(StateError):
        check_transition(BatchState.SCANNING, BatchState.UPLOADED)
    with pytest.raises(StateError):
        check_transition(BatchState.PURGED, BatchState.SCANNING)
    assert all(s in BATCH_TRANSITIONS for s in BatchState)


def test_batch_lifecycle_and_duplicate_pages(tmp_path: Path) -> None:
    station = x25519.Identity.generate()
    trail = AuditTrail(tmp_path / "audit.db", station_id="t", role_of=lambda actor: "operator",
                       batch_recipient=lambda batch_id: None, station_recipient=station.to_public())
    s = Store(tmp_path / "db.sqlite", key=KEY, audit=trail)
    b = s.open_batch("B1", "Unit", "op")
    assert _add(s, b.id, "k1", 1).seq == 1
    assert _add(s, b.id, "k2", 2).seq == 2
    assert _add(s, b.id, "k1", 3) is None  # same source key: refused, no duplicate
    assert [p.seq for p in s.pages(b.id)] == [1, 2]
    s.set_batch_state(b.id, BatchState.CLOSED, "op")
    with pytest.raises(StateError, match="only be added while it is scanning"):
        s.open_batch("B1", "Unit", "op")
    s.set_batch_state(b.id, BatchState.RETURNED, "sup")
    assert s.open_batch("B1", "Unit", "op").state is BatchState.RETURNED  # rescans go in
    # every change has its entry in the trail, in order, tied to the batch; the refused duplicate has none
    entries = trail.entries()
    assert [e.action for e in entries] == ["batch.create", "page.capture", "page.capture", "batch.state",
                                           "batch.state"]
    assert {e.batch_id for e in entries} == {b.id}
    # source keys and labels (file names, for imports) are personal: sealed, never in the plain detail
    captures = [e for e in entries if e.action == "page.capture"]
    assert [AuditTrail.open_personal(e, [station]) for e in captures] == [
        {"source_key": "k1", "label": "k1"}, {"source_key": "k2", "label": "k2"}]
    assert all("k1" not in str(e.detail) and "k2" not in str(e.detail) for e in entries)
    s.close()
    trail.close()


def test_store_keeps_no_audit_table(tmp_path: Path) -> None:
    s = _store(tmp_path / "db.sqlite")
    s.close()
    db = _keyed(tmp_path / "db.sqlite")
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    db.close()
    assert "audit" not in tables


def test_entry_comes_first_a_failing_sink_undoes_the_change(tmp_path: Path) -> None:
    """The sink is called inside the write transaction: if it cannot record the entry, nothing changes."""
    sink = RecordingSink()
    s = _store(tmp_path / "db.sqlite", sink)
    b = s.open_batch("B1", "Unit", "op")
    sink.fail_on = "page.capture"
    with pytest.raises(OSError, match=r"refuses page\.capture"):
        _add(s, b.id, "k1", 1)
    assert s.pages(b.id) == [] and s.object_ids() == set()
    sink.fail_on = "document.create"
    with pytest.raises(OSError):
        s.add_document(b.id, "op", "E1", "Name", "SI", "2023")
    assert s.documents(b.id) == []
    sink.fail_on = None
    assert _add(s, b.id, "k1", 1).seq == 1
    assert sink.actions() == ["batch.create", "page.capture"]


def _kind(i: int, kind: str) -> StoredObject:
    return StoredObject(f"{i:032x}", kind, "c" * 64, "d" * 64, 10)


def test_compact_page_destroyed_raw_and_package_objects(tmp_path: Path) -> None:
    """Migration 8: the cleaned image and its compact encoding are recorded in one commit; a raw capture marked
    destroyed keeps its row (pages still name it); the package's page PDFs are replaced at every seal and
    belong to the batch (purged with it)."""
    sink = RecordingSink()
    s = _store(tmp_path / "db.sqlite", sink)
    b = s.open_batch("B1", "Unit", "op")
    page = _add(s, b.id, "k1", 1)
    assert page.compact_object is None
    s.set_processed(page.id, _kind(2, "image"), {}, [], OcrState.PENDING, compact=_kind(3, "compact"))
    page = s.page(page.id)
    assert (page.image_object, page.compact_object, page.compact_sha256) == (f"{2:032x}", f"{3:032x}", "c" * 64)
    assert s.page_of_object(f"{3:032x}") == (page.id, "compact")
    # a page cleaned before issue 16 gets its compact page late; the one replaced is named for deletion
    assert s.set_compact(page.id, _kind(4, "compact"), "station") == f"{3:032x}"
    assert f"{3:032x}" not in s.object_ids() and s.page(page.id).compact_object == f"{4:032x}"

    s.mark_destroyed([page.raw_object], "sealed", "station", batch_id=b.id)
    assert s.destroyed_object_ids() == s.destroyed_object_ids(unpurged=True) == {page.raw_object}
    assert s.page(page.id).raw_object == page.raw_object  # the row stays: the page still names it
    assert sink.actions()[-1] == "vault.destroy"

    assert s.set_package_objects(b.id, [(page.id, "image", _kind(5, "page_pdf"))], "sup") == []
    assert s.package_objects(b.id) == {(page.id, "image"): f"{5:032x}"}
    assert s.set_package_objects(b.id, [(page.id, "image", _kind(6, "page_pdf"))], "sup") == [f"{5:032x}"]
    assert f"{5:032x}" not in s.object_ids()
    assert set(s.batch_object_ids(b.id)) == {page.raw_object, f"{2:032x}", f"{4:032x}", f"{6:032x}"}
    s.close()

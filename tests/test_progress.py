"""Progress against the roster (issue 14, scope 7): the dashboard's numbers on a real SQLCipher store with a
roster, ACR files in batches in several states, page verdicts, flags; and the ``progress`` service operation
(who may read it, what it returns) on a station made by the real CLI."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from scanstation.domain import BatchState, OcrState, Side
from scanstation.errors import StateError
from scanstation.reports.progress import Transition, compute_progress, financial_year, years_of
from scanstation.store.database import Store, StoredObject

from .recording_sink import RecordingSink

KEY = bytes(range(32))
TODAY = date(2026, 12, 3)


class Clock:
    """The store's clock, moved by the test (captured_at, verdict times fall on chosen days)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _roster(store: Store, tmp: Path, codes: list[str], inactive: list[str] = ()) -> None:  # type: ignore[assignment]
    """The roster through the real import; people in ``inactive`` were in an earlier export, not the latest."""
    from scanstation.roster.imports import import_roster

    for n, rows in enumerate((codes, [c for c in codes if c not in inactive])):
        path = tmp / f"roster{n}.csv"
        path.write_text("Employee Code,Name (Hindi),Name (English)\n"
                        + "".join(f"{c},नाम,Name {c}\n" for c in rows), encoding="utf-8")
        import_roster(store, path, "sup")


_n = iter(range(1, 10_000))


def _page(store: Store, batch_id: int, doc_id: int, who: str, flags: list[str] = ()) -> int:  # type: ignore[assignment]
    i = next(_n)
    page = store.add_page(batch_id=batch_id, source_key=f"k{i}", label="", side=Side.FRONT, device="test:0",
                          width=10, height=10, dpi=300, mode="L",
                          raw=StoredObject(f"{i:032x}", "raw", "a" * 64, "b" * 64, 10), document_id=doc_id,
                          actor=who, ocr_state=OcrState.PENDING)
    assert page is not None
    with store._write() as db:
        db.execute("UPDATE pages SET captured_by=?, flags=? WHERE id=?", (who, json.dumps(list(flags)), page.id))
    return page.id


def _file(store: Store, batch_id: int, who: str, code: str, period: str, pages: int = 2, *,
          dates: tuple[str, str] | None = None, file_flags: list[str] = (),  # type: ignore[assignment]
          not_in_roster: str = "", page_flags: list[str] = ()) -> int:  # type: ignore[assignment]
    doc = store.add_document(batch_id, who, employee_code=code, acr_period=period)
    with store._write() as db:
        db.execute("UPDATE documents SET period_start=?, period_end=?, flags=?, not_in_roster=? WHERE id=?",
                   (dates[0] if dates else None, dates[1] if dates else None, json.dumps(list(file_flags)),
                    not_in_roster, doc.id))
    for i in range(pages):
        _page(store, batch_id, doc.id, who, page_flags if i == 0 else [])
    return doc.id


def _verdict(store: Store, page_id: int, verdict: str, who: str, at: str) -> None:
    with store._write() as db:
        db.execute("INSERT INTO page_verdicts (page_id, verdict, reason, given_by, given_at) VALUES (?,?,?,?,?)",
                   (page_id, verdict, "", who, at))


def _move(store: Store, batch_id: int, *states: BatchState) -> None:
    for s in states:
        store.set_batch_state(batch_id, s, "sup")


@pytest.fixture
def store(tmp_path: Path) -> Any:
    clock = Clock()
    sink = RecordingSink()
    s = Store(tmp_path / "station.db", key=KEY, audit=sink, clock=clock)
    s.clock, s.sink, s.tmp = clock, sink, tmp_path  # type: ignore[attr-defined]
    yield s
    s.close()


def test_financial_years_and_matching() -> None:
    fy = financial_year("2019-20")
    assert (fy.start, fy.end) == (date(2019, 4, 1), date(2019 + 1, 3, 31))
    assert financial_year("1999-00").end == date(2000, 3, 31)
    assert financial_year("2019-2020").label == "2019-20"
    for bad in ("2019", "2019-21", "19-20", "2019/20"):
        with pytest.raises(StateError, match="financial year"):
            financial_year(bad)
    years = [financial_year("2019-20"), financial_year("2020-21")]
    assert [y.label for y in years_of("2019-20", None, None, years)] == ["2019-20"]
    assert years_of("2018-19", None, None, years) == []  # a year, but not planned
    # a part-year file (transfer in October 2019 to June 2020) spans both planned years
    assert [y.label for y in years_of("", "2019-10-01", "2020-06-30", years)] == ["2019-20", "2020-21"]
    assert [y.label for y in years_of("", "2020-01-01", "2020-03-31", years)] == ["2019-20"]


def test_progress_counts_stages_per_period_operator_day_and_flags(store: Any) -> None:
    _roster(store, store.tmp, ["E1", "E2", "E3", "E4", "E5", "GONE"], inactive=["GONE"])
    periods = ["2019-20", "2020-21"]  # expected: 5 active people × 2 years = 10

    # batch A (op1): scanning — E1 2019-20, E2 2019-20 (blank page flagged), an empty index (no page yet)
    a = store.open_batch("A", "Unit", "op1")
    _file(store, a.id, "op1", "E1", "2019-20")
    _file(store, a.id, "op1", "E2", "2019-20", page_flags=["blank"])
    store.add_document(a.id, "op1", employee_code="E3", acr_period="2019-20")  # indexed, nothing scanned
    # batch B (op2), scanned a day later: verified — E3 2019-20; E1 again as two part-year files of 2020-21
    store.clock.now = datetime(2026, 12, 2, 11, 0, tzinfo=UTC)
    b = store.open_batch("B", "Unit", "op2")
    _file(store, b.id, "op2", "E3", "2019-20", page_flags=["quality"])
    _file(store, b.id, "op2", "E1", "", dates=("2020-04-01", "2020-09-30"))
    _file(store, b.id, "op2", "E1", "", dates=("2020-10-01", "2021-03-31"), page_flags=["blank"])
    for p in store.pages(b.id):
        _verdict(store, p.id, "ok", "sup2", "2026-12-02T15:00:00+00:00")
    _move(store, b.id, BatchState.CLOSED, BatchState.IN_VERIFICATION, BatchState.VERIFIED)
    # batch C (op1), today: uploaded — E4 2020-21; a file not in the roster; a duplicate-flagged file of another
    # year (outside the plan)
    store.clock.now = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    c = store.open_batch("C", "Unit", "op1")
    _file(store, c.id, "op1", "E4", "2020-21")
    _file(store, c.id, "op1", "X99", "2020-21", not_in_roster="joined last week", file_flags=["not_in_roster"])
    _file(store, c.id, "op1", "E5", "2017-18", file_flags=["duplicate"], page_flags=["blank"])
    rescan = store.pages(c.id)[0].id
    _verdict(store, rescan, "rescan", "sup2", "2026-12-03T09:30:00+00:00")
    _move(store, c.id, BatchState.CLOSED, BatchState.IN_VERIFICATION, BatchState.VERIFIED, BatchState.SIGNED,
          BatchState.SEALED, BatchState.UPLOADING, BatchState.UPLOADED)
    # batch D (op2): signed — E5 2020-21
    d = store.open_batch("D", "Unit", "op2")
    _file(store, d.id, "op2", "E5", "2020-21", pages=1)
    _move(store, d.id, BatchState.CLOSED, BatchState.IN_VERIFICATION, BatchState.VERIFIED, BatchState.SIGNED)

    transitions = [Transition("2026-12-02T16:00:00+00:00", "B", "verified"),
                   Transition("2026-12-03T10:00:00+00:00", "C", "verified"),
                   Transition("2026-12-03T10:05:00+00:00", "C", "signed"),
                   Transition("2026-12-03T10:10:00+00:00", "C", "uploaded"),
                   Transition("2026-12-03T11:00:00+00:00", "D", "verified"),
                   Transition("2026-12-03T11:05:00+00:00", "D", "signed")]
    result = compute_progress(store, periods=periods, transitions=transitions, today=TODAY, days=3,
                              personal=True)

    assert result.expected == 10
    # planned cells reached: (E1,19-20) scanned, (E2,19-20) scanned, (E3,19-20) verified, (E1,20-21) verified
    # (two part-year files count once), (E4,20-21) uploaded, (E5,20-21) signed
    assert result.stages == {"scanned": 6, "verified": 4, "signed": 2, "uploaded": 1}
    assert result.by_period["2019-20"] == {"expected": 5, "scanned": 3, "verified": 1, "signed": 0, "uploaded": 0}
    assert result.by_period["2020-21"] == {"expected": 5, "scanned": 3, "verified": 3, "signed": 2, "uploaded": 1}
    assert result.outside_plan == 2  # X99 (not in roster) and E5 2017-18 (a year not planned)
    assert result.batches == {"scanning": 1, "verified": 1, "uploaded": 1, "signed": 1}

    ops = {r["operator"]: r for r in result.by_operator}
    assert ops["op1"] == {"operator": "op1", "files": 5, "pages": 10, "rescans": 1, "deleted": 0}
    assert ops["op2"] == {"operator": "op2", "files": 4, "pages": 7, "rescans": 0, "deleted": 0}

    days = {r["day"]: r for r in result.by_day}
    assert list(days) == ["2026-12-01", "2026-12-02", "2026-12-03"]
    assert (days["2026-12-01"]["files_scanned"], days["2026-12-01"]["pages_captured"]) == (2, 4)
    assert (days["2026-12-02"]["files_scanned"], days["2026-12-02"]["pages_captured"]) == (3, 6)
    assert days["2026-12-02"]["pages_verdicts"] == 6
    assert days["2026-12-02"]["verified"] == 3  # batch B's three files
    assert days["2026-12-03"]["pages_verdicts"] == 1
    assert (days["2026-12-03"]["verified"], days["2026-12-03"]["signed"], days["2026-12-03"]["uploaded"]) == (4, 4, 3)

    flags = [(f["flag"], f["count"], f["kind"]) for f in result.top_flags]
    assert flags[0] == ("blank", 3, "page")
    assert set(flags[1:]) == {("quality", 1, "page"), ("not_in_roster", 1, "file"), ("duplicate", 1, "file")}

    missing = {(m["employee_code"], m["period"]) for m in result.missing}
    assert missing == {("E4", "2019-20"), ("E5", "2019-20"), ("E2", "2020-21"), ("E3", "2020-21")}
    assert compute_progress(store, periods=periods, today=TODAY).missing == []  # not personal: no codes


def test_progress_without_roster_or_periods(store: Any) -> None:
    a = store.open_batch("A", "Unit", "op1")
    _file(store, a.id, "op1", "E1", "2019-20")
    result = compute_progress(store, periods=[], today=TODAY, days=1)
    assert result.expected == 0 and result.stages == {"scanned": 0, "verified": 0, "signed": 0, "uploaded": 0}
    assert result.outside_plan == 1
    with pytest.raises(StateError, match="2019"):
        compute_progress(store, periods=["2019"], today=TODAY)


@pytest.mark.usefixtures("cheap_argon2")  # its service signs in here, at the test stations' cost
def test_progress_operation_for_supervisor_and_unit_head_only(tmp_path: Path) -> None:
    from scanstation.config import load_config
    from scanstation.errors import PermissionDenied
    from scanstation.people.roles import Role
    from scanstation.service.client import LocalConnection
    from scanstation.service.core import StationService

    from .stationkit import PASSWORD, make_station

    st = make_station(tmp_path / "st", extra_config='\n[roster]\nperiods = ["2019-20", "2020-21"]\n')
    roster = tmp_path / "roster.csv"
    roster.write_text("Employee Code,Name (English)\nE1,Ram Kumar\nE2,Sita Devi\nE3,Anil Sharma\n", encoding="utf-8")
    st.run("roster", "import", str(roster), check=True)
    with StationService(load_config(st.config)) as service:
        admin = service.sign_in("admin", PASSWORD)
        service.add_person(admin, "op2", Role.OPERATOR, PASSWORD)
        conn = LocalConnection(service, owns_service=False)
        conn.token = service.sign_in("sup", PASSWORD).token
        conn.call("unlock", password=PASSWORD)
        result = conn.call("progress", days=7)
        assert set(result) >= {"expected", "stages", "by_day", "by_operator", "top_flags", "periods", "today"}
        assert result["periods"] == ["2019-20", "2020-21"] and result["expected"] == 6
        assert len(result["missing"]) == 6  # a supervisor sees which files are missing
        assert len(result["by_day"]) == 7 and result["by_day"][-1]["day"] == result["today"]
        with pytest.raises(StateError, match="days"):
            conn.call("progress", days=0)
        conn.token = service.sign_in("head", PASSWORD).token
        assert conn.call("progress")["expected"] == result["expected"]
        for who in ("op", "admin"):
            conn.token = service.sign_in(who, PASSWORD).token
            with pytest.raises(PermissionDenied, match="view pages"):
                conn.call("progress")
        reads = [e for e in service.audit.entries() if e.action == "progress.read"]
        assert [e.actor for e in reads] == ["sup", "head"]


def test_purged_files_stay_uploaded(store: Any) -> None:
    """A batch uploaded, then purged after the retention period: the purge blanks the files' codes and period
    labels (keeping their dates and a keyed digest of the code), and the dashboard's numbers stay."""
    _roster(store, store.tmp, ["E1", "E2", "E3"])
    periods = ["2019-20", "2020-21"]
    p = store.open_batch("P", "Unit", "op1")
    _file(store, p.id, "op1", "E1", "2019-20", dates=("2019-04-01", "2020-03-31"), page_flags=["blank"])
    _file(store, p.id, "op1", "E2", "2020-04-01..2020-09-30", dates=("2020-04-01", "2020-09-30"))
    _file(store, p.id, "op1", "X99", "2019-20", dates=("2019-04-01", "2020-03-31"), not_in_roster="joined late",
          file_flags=["not_in_roster"])
    _file(store, p.id, "op1", "E3", "2017-18", dates=("2017-04-01", "2018-03-31"))  # a year not planned
    _move(store, p.id, BatchState.CLOSED, BatchState.IN_VERIFICATION, BatchState.VERIFIED, BatchState.SIGNED,
          BatchState.SEALED, BatchState.UPLOADING, BatchState.UPLOADED)
    s = store.open_batch("S", "Unit", "op2")
    _file(store, s.id, "op2", "E3", "2019-20", dates=("2019-04-01", "2020-03-31"))
    transitions = [Transition("2026-12-01T12:00:00+00:00", "P", "uploaded")]

    def numbers() -> dict[str, Any]:
        result = compute_progress(store, periods=periods, transitions=transitions, today=TODAY, days=3,
                                  personal=True)
        return {k: v for k, v in result.as_dict().items() if k != "batches"}

    before = numbers()
    assert before["stages"] == {"scanned": 3, "verified": 2, "signed": 2, "uploaded": 2}
    assert before["outside_plan"] == 2
    store.record_purged(p.id, objects_removed=0, actor="station")
    assert {d.employee_code for d in store.documents(p.id)} == {""}  # the codes are gone
    after = numbers()
    assert after == before
    assert {(m["employee_code"], m["period"]) for m in after["missing"]} == {
        ("E2", "2019-20"), ("E1", "2020-21"), ("E3", "2020-21")}
    assert compute_progress(store, periods=periods, today=TODAY).batches == {"purged": 1, "scanning": 1}


@pytest.mark.usefixtures("cheap_argon2")  # its service signs in here, at the test stations' cost
def test_progress_operation_reads_only_recent_batches_audit(tmp_path: Path, monkeypatch: Any) -> None:
    """The per-day state moves come from the ``batch.state`` entries of the batches that moved within the days
    shown, read by batch: never the whole audit trail."""
    from datetime import timedelta

    from scanstation.config import load_config
    from scanstation.people.roles import Action
    from scanstation.service.client import LocalConnection
    from scanstation.service.core import StationService

    from .stationkit import PASSWORD, make_station

    st = make_station(tmp_path / "st", extra_config='\n[roster]\nperiods = ["2019-20"]\n')
    roster = tmp_path / "roster.csv"
    roster.write_text("Employee Code,Name (English)\nE1,Ram Kumar\nE2,Sita Devi\n", encoding="utf-8")
    st.run("roster", "import", str(roster), check=True)
    with StationService(load_config(st.config)) as service:
        sup = service.sign_in("sup", PASSWORD)
        service.unlock(sup, PASSWORD)
        db = service.station(sup, Action.VIEW_PAGE).store
        old = db.open_batch("OLD", "Unit", "op")
        _file(db, old.id, "op", "E1", "2019-20")
        new = db.open_batch("NEW", "Unit", "op")
        _file(db, new.id, "op", "E2", "2019-20")
        for b in (old, new):
            _move(db, b.id, BatchState.CLOSED, BatchState.IN_VERIFICATION, BatchState.VERIFIED)
        long_ago = (datetime.now(UTC) - timedelta(days=40)).isoformat(timespec="milliseconds")
        with db._write() as w:  # OLD last moved forty days ago
            w.execute("UPDATE batches SET updated_at=? WHERE id=?", (long_ago, old.id))

        reads: list[dict[str, Any]] = []
        entries = service.audit.entries

        def spy(**kw: Any) -> Any:
            reads.append(kw)
            return entries(**kw)

        monkeypatch.setattr(service.audit, "entries", spy)
        conn = LocalConnection(service, owns_service=False)
        conn.token = sup.token
        result = conn.call("progress", days=7)
        assert reads and all(r.get("batch_id") is not None for r in reads)  # never the whole trail
        assert {r["batch_id"] for r in reads} == {new.id}
        assert result["by_day"][-1]["verified"] == 1  # NEW's file, verified today

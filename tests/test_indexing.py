"""Indexing against the roster (issue 14, scope 2): ACR periods, the index check (not in roster, implausible
periods, duplicates across batches), `scan|import --employee --period` through the real CLI with its exit
codes, cover sheets found mid-import flagged instead of refused, and the service operations."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from scanstation.capture.cover_sheets import CoverInfo, render_cover_sheet
from scanstation.errors import DuplicateAcr, NotInRoster, PermissionDenied, StateError
from scanstation.ocr.index_suggestions import suggest_index
from scanstation.roster.index_check import check_index
from scanstation.roster.indexing import check_entry, reindex_document
from scanstation.roster.periods import check_plausible, financial_years, parse_period
from scanstation.roster.reader import RosterRow
from scanstation.roster.suggest import roster_candidates
from scanstation.store.database import Store

from .recording_sink import RecordingSink
from .sane_env import sane_test_env
from .stationkit import PASSWORD, StationEnv, make_station

# sign-ins and unlocks of the services these tests run in this process at the test stations' argon2id cost
pytestmark = pytest.mark.usefixtures("cheap_argon2")

KEY = bytes(range(32))
TODAY = date(2026, 12, 3)
STAFF = [
    RosterRow(2, "UP-12-004512", "रमेश कुमार", "Ramesh Kumar", "Sub-Inspector", "Lines", date(1980, 8, 15),
              date(2005, 7, 1)),
    RosterRow(3, "UP-12-004513", "सुनीता शर्मा", "Sunita Sharma", "Constable", "Kotwali", None, date(2018, 10, 1)),
    RosterRow(4, "UP-12-004514", "", "Mohammad Irfan", "Head Constable", "Lines", None, None),
]


# ------------------------------------------------------------------------------------------------ periods
@pytest.mark.parametrize(("text", "label", "start", "end"), [
    ("2019-20", "2019-20", date(2019, 4, 1), date(2020, 3, 31)),
    ("2019-2020", "2019-20", date(2019, 4, 1), date(2020, 3, 31)),
    ("FY 2019/20", "2019-20", date(2019, 4, 1), date(2020, 3, 31)),
    ("1999-00", "1999-00", date(1999, 4, 1), date(2000, 3, 31)),
    ("२०१९-२०", "2019-20", date(2019, 4, 1), date(2020, 3, 31)),
    ("2019-04-01..2019-09-30", "2019-04-01..2019-09-30", date(2019, 4, 1), date(2019, 9, 30)),
    ("01.04.2019-30.09.2019", "2019-04-01..2019-09-30", date(2019, 4, 1), date(2019, 9, 30)),
    ("01/10/2019..31/03/2020", "2019-10-01..2020-03-31", date(2019, 10, 1), date(2020, 3, 31)),
    ("01-04-2019 to 31-03-2020", "2019-20", date(2019, 4, 1), date(2020, 3, 31)),  # a whole year as dates
])
def test_period_spellings(text: str, label: str, start: date, end: date) -> None:
    p = parse_period(text)
    assert (p.label, p.start, p.end) == (label, start, end)
    assert parse_period(p.label) == p  # the label is canonical


@pytest.mark.parametrize("text", ["", "2019", "2019-21", "2019-2021", "19-20", "2019-13-01..2019-12-31",
                                  "31.02.2019-30.09.2019", "last year"])
def test_not_periods(text: str) -> None:
    with pytest.raises(StateError, match="ACR period"):
        parse_period(text)


@pytest.mark.parametrize(("text", "joined", "reason"), [
    ("2026-27", None, "has not ended yet"),
    ("2026-04-01..2026-12-31", None, "has not ended yet"),
    ("2019-10-01..2019-04-01", None, "ends before it starts"),
    ("2019-04-01..2020-09-30", None, "longer than a year"),
    ("1948-49", None, "before 1950"),
    ("2004-05", date(2005, 7, 1), "before the employee joined"),
])
def test_implausible_periods(text: str, joined: date | None, reason: str) -> None:
    with pytest.raises(StateError, match=reason):
        check_plausible(parse_period(text), today=TODAY, joined=joined)


def test_plausible_periods() -> None:
    check_plausible(parse_period("2025-26"), today=TODAY)
    check_plausible(parse_period("2005-06"), today=TODAY, joined=date(2005, 7, 1))  # joined mid-year
    check_plausible(parse_period("2020-02-29..2021-02-28"), today=TODAY)  # 366 days
    assert [p.label for p in financial_years("2017-18..2019-20")] == ["2017-18", "2018-19", "2019-20"]
    with pytest.raises(StateError, match="last year is before"):
        financial_years("2019-20..2017-18")


# ------------------------------------------------------------------------------------------------ the check
@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = Store(tmp_path / "station.db", key=KEY, audit=RecordingSink())
    s.replace_roster(STAFF, "sup", file_sha256="0" * 64)
    yield s
    s.close()


def _file(store: Any, batch: str, code: str, period: str, **reasons: Any) -> Any:
    check, continued = check_entry(store, batch, employee_code=code, period=period, today=TODAY, **reasons)
    if continued is not None:
        return continued
    b = store.open_batch(batch, "Unit", "op")
    f = check.index_fields()
    return store.add_document(b.id, "op", f["employee_code"], f["employee_name"], f["rank"], f["acr_period"],
                              period_start=f["period_start"], period_end=f["period_end"],
                              not_in_roster=f["not_in_roster"], flags=f["flags"],
                              duplicate_reason=f["duplicate_reason"])


def test_code_not_in_roster(store: Any) -> None:
    with pytest.raises(NotInRoster, match=r"employee code X-1 is not in the roster .*3 active people") as e:
        check_index(store, employee_code="x-1", period="2019-20", today=TODAY)
    assert e.value.exit_code == 27
    check = check_index(store, employee_code="X-1", period="2019-20", not_in_roster="transferred in", today=TODAY)
    assert check.flags == ["not_in_roster"] and check.employee is None and check.not_in_roster == "transferred in"
    with pytest.raises(StateError, match="reason must not be empty"):
        check_index(store, employee_code="X-1", period="2019-20", not_in_roster="  ", today=TODAY)
    found = check_index(store, employee_code=" up-12-004512 ", period="2019-2020", not_in_roster="why", today=TODAY)
    assert found.not_in_roster == ""  # the code is in the roster: no reason kept, no flag
    assert found.employee.name_en == "Ramesh Kumar" and found.flags == [] and found.period.label == "2019-20"
    assert found.employee_name == "रमेश कुमार / Ramesh Kumar" and found.rank == "Sub-Inspector"


def test_empty_roster_refuses_everything_and_says_so(tmp_path: Path) -> None:
    s = Store(tmp_path / "empty.db", key=KEY, audit=RecordingSink())
    try:
        with pytest.raises(NotInRoster, match="no roster has been imported"):
            check_index(s, employee_code="E1", period="2019-20", today=TODAY)
    finally:
        s.close()


def test_period_checked_against_joining(store: Any) -> None:
    with pytest.raises(StateError, match="before the employee joined"):
        check_index(store, employee_code="UP-12-004513", period="2017-18", today=TODAY)
    check_index(store, employee_code="UP-12-004513", period="2018-19", today=TODAY)  # joined October 2018


def test_duplicates_across_batches_are_named(store: Any) -> None:
    first = _file(store, "B1", "UP-12-004512", "2019-20")
    store.set_batch_state(store.batch("B1").id, _closed(), "op")
    b2 = store.open_batch("B2", "Unit", "op")
    with pytest.raises(DuplicateAcr) as e:
        check_index(store, employee_code="UP-12-004512", period="2019-10-01..2020-01-31", batch_id=b2.id,
                    today=TODAY)
    assert e.value.exit_code == 28
    assert "batch B1, ACR file 1 (2019-20, batch closed)" in e.value.message
    check_index(store, employee_code="UP-12-004512", period="2020-21", batch_id=b2.id, today=TODAY)  # adjacent
    dup = _file(store, "B2", "UP-12-004512", "2019-10-01..2020-01-31", duplicate_reason="two reporting officers")
    assert dup.flags == ["duplicate"] and dup.duplicate_reason == "two reporting officers"
    # now each is a duplicate of the other; in the same batch the message says "this batch"
    with pytest.raises(DuplicateAcr, match=r"batch B1, ACR file 1 .*; this batch, ACR file 1 \(2019-10-01..2020-01-31"):
        check_index(store, employee_code="UP-12-004512", period="2019-06-01..2019-11-30", batch_id=b2.id,
                    today=TODAY)
    # a file removed by a merge no longer counts
    with store._write() as db:
        db.execute("UPDATE documents SET removed='merged' WHERE id IN (?, ?)", (first.id, dup.id))
    check_index(store, employee_code="UP-12-004512", period="2019-20", batch_id=b2.id, today=TODAY)


def test_a_purged_file_still_counts_without_its_code(store: Any) -> None:
    """A purge blanks the index (code, name, period label, reasons) but the ACR stays filed for the duplicate
    check: its period's dates and a keyed digest of its code remain."""
    doc = _file(store, "B1", "UP-12-004512", "2019-20")
    nir = _file(store, "B1", "X-77", "2020-21", not_in_roster="typed by the operator: Shri Anand")
    b1 = store.batch("B1")
    with store._write() as db:  # the receipt's path to "uploaded" is the upload queue's; here the state is set
        db.execute("UPDATE batches SET state='uploaded' WHERE id=?", (b1.id,))
    store.record_purged(b1.id, objects_removed=0, actor="station")
    purged = store.document(doc.id)
    assert (purged.employee_code, purged.employee_name, purged.acr_period) == ("", "", "")
    assert store.document(nir.id).not_in_roster == ""
    assert "UP-12-004512" not in json.dumps([dict(r) for r in store._read("SELECT * FROM documents")])
    with pytest.raises(DuplicateAcr, match=r"batch B1, ACR file 1 \(2019-04-01..2020-03-31, batch purged\)"):
        check_index(store, employee_code="UP-12-004512", period="2019-10-01..2019-12-31", today=TODAY)
    check_index(store, employee_code="UP-12-004513", period="2019-20", today=TODAY)  # someone else: no match


def _closed() -> Any:
    from scanstation.domain import BatchState

    return BatchState.CLOSED


def test_same_file_in_the_same_batch_is_continued(store: Any) -> None:
    first = _file(store, "B1", "UP-12-004512", "2019-20")
    again = _file(store, "B1", "up-12-004512", "2019-2020")
    assert again.id == first.id and again.flags == []


def test_cover_sheet_is_flagged_not_refused(store: Any) -> None:
    _file(store, "B1", "UP-12-004512", "2019-20")
    check, _ = check_entry(store, "B2", employee_code="ZZ-9", period="2019-20", today=TODAY, refuse=False)
    assert check.flags == ["not_in_roster"] and "not in the roster" in check.problem
    check, _ = check_entry(store, "B2", employee_code="UP-12-004512", period="2019-20", today=TODAY, refuse=False)
    assert check.flags == ["duplicate"] and "batch B1, ACR file 1" in check.problem
    check, _ = check_entry(store, "B2", employee_code="UP-12-004512", period="2030-31", today=TODAY, refuse=False)
    assert check.flags == ["bad_period"] and check.index_fields()["period_start"] == "2030-04-01"
    check, _ = check_entry(store, "B2", employee_code="UP-12-004512", period="whenever", today=TODAY, refuse=False)
    assert check.flags == ["bad_period"] and check.index_fields()["period_start"] is None


def test_reindex_replaces_index_flags_only_and_seals_the_index(store: Any) -> None:
    doc = _file(store, "B1", "X-1", "2019-20", not_in_roster="new joiner")
    with store._write() as db:
        db.execute("UPDATE documents SET flags=? WHERE id=?", (json.dumps(["not_in_roster", "other"]), doc.id))
    check = reindex_document(store, doc.id, "sup", employee_code="UP-12-004514", period="2020-21", today=TODAY)
    again = store.document(doc.id)
    assert (again.employee_code, again.acr_period, again.not_in_roster) == ("UP-12-004514", "2020-21", "")
    assert again.flags == ["other"] and again.indexed_by == "sup" and again.employee_name == "Mohammad Irfan"
    assert (again.period_start, again.period_end) == ("2020-04-01", "2021-03-31") and check.flags == []
    entry = [e for e in store._audit_sink.entries if e.action == "document.index"][-1]
    assert entry.detail == {"batch_id": again.batch_id, "seq": again.seq, "flags": ["other"]}
    assert entry.personal["from"]["employee_code"] == "X-1" and entry.personal["to"]["employee_code"] == "UP-12-004514"
    with pytest.raises(NotInRoster):
        reindex_document(store, doc.id, "sup", employee_code="NOPE", period="2020-21", today=TODAY)


def test_ocr_suggestions_matched_against_the_roster(store: Any) -> None:
    text = ("वार्षिक गोपनीय प्रतिवेदन / Annual Confidential Report\n"
            "Employee Code: UP-12-0O4512\n"  # an OCR slip: O for 0
            "Name / नाम: Ramesh Kumar\n"
            "नाम: रमेश कुमार\n"
            "Rank / पद: Sub-Inspector\n"
            "For the year 2019-20\n")
    result = roster_candidates(store, suggest_index([text, text]))
    assert result["needs_confirmation"] is True
    assert result["candidates"][0]["employee_code"] == "UP-12-004512", result
    assert result["period"] == "2019-20"


# ------------------------------------------------------------------------------------------------ the CLI
ROSTER_CSV = ("Employee Code,Name (Hindi),Name (English),Rank,Unit,DOB,DOJ\n"
              "UP-12-004512,रमेश कुमार,Ramesh Kumar,Sub-Inspector,Lines,15-08-1980,01/07/2005\n"
              "UP-12-004513,सुनीता शर्मा,Sunita Sharma,Constable,Kotwali,1990-01-02,2018-10-01\n")


def _page(path: Path, text: str) -> Path:
    im = Image.new("L", (1240, 1754), 255)
    ImageDraw.Draw(im).text((200, 200), text, fill=0)
    im.save(path, dpi=(150, 150))
    return path


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> StationEnv:
    root = tmp_path_factory.mktemp("indexing")
    st = make_station(root / "st", extra_env=sane_test_env(root))
    (root / "roster.csv").write_text(ROSTER_CSV, encoding="utf-8")
    st.run("roster", "import", str(root / "roster.csv"), check=True)
    return st


def _documents(st: StationEnv) -> dict[str, list[Any]]:
    from scanstation.facade import open_store

    config, key = st.unlock()
    store = open_store(config, key)
    try:
        return {b.name: store.documents(b.id) for b in store.batches()}
    finally:
        store.close()


def _audit(st: StationEnv, action: str) -> list[tuple[str, dict[str, Any]]]:
    """(subject, detail) of the audit trail's entries of one action (audit.db is plaintext; personal fields in it
    are sealed)."""
    import sqlite3

    db = sqlite3.connect(f"file:{st.data_dir / 'audit.db'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT subject, detail FROM entries WHERE action = ? ORDER BY seq", (action,)).fetchall()
    finally:
        db.close()
    return [(subject, json.loads(detail)) for subject, detail in rows]


def test_cli_refuses_unknown_code_and_captures_nothing(station: StationEnv, tmp_path: Path) -> None:
    page = _page(tmp_path / "p.png", "page one")
    proc = station.run("import", "--batch", "IDX-A", "--employee", "X-999", "--period", "2019-20", "--no-wait",
                       str(page))
    assert proc.returncode == 27, proc.stderr
    assert "employee code X-999 is not in the roster" in proc.stderr and "--not-in-roster" in proc.stderr
    assert "acknowledged" not in proc.stdout and "IDX-A" not in _documents(station)
    refusals = _audit(station, "index.refused")
    assert refusals[-1][0] == "IDX-A" and refusals[-1][1] == {"error": "NotInRoster"}  # the code itself sealed
    # the SANE scanner is not even started for a refused index
    proc = station.run("scan", "--device", "pnm:0", "--option", f"filename={page}", "--batch", "IDX-A",
                       "--employee", "X-999", "--period", "2019-20", "--no-wait")
    assert proc.returncode == 27 and "acknowledged" not in proc.stdout
    proc = station.run("import", "--batch", "IDX-A", "--employee", "X-999", "--period", "2019-20",
                       "--not-in-roster", "transferred in last week", "--name", "New Person", "--no-wait", str(page))
    assert proc.returncode == 0, proc.stderr
    assert "flag 'not_in_roster'" in proc.stderr
    [doc] = _documents(station)["IDX-A"]
    assert (doc.employee_code, doc.flags, doc.not_in_roster, doc.employee_name) == (
        "X-999", ["not_in_roster"], "transferred in last week", "New Person")


def test_cli_period_and_option_errors(station: StationEnv, tmp_path: Path) -> None:
    page = _page(tmp_path / "p.png", "page")
    cases = [
        (["--employee", "UP-12-004512", "--period", "2030-31"], 7, "has not ended yet"),
        (["--employee", "UP-12-004513", "--period", "2016-17"], 7, "before the employee joined (2018-10-01"),
        (["--employee", "UP-12-004512", "--period", "sometime"], 7, "is not a financial year"),
        (["--employee", "UP-12-004512"], 3, "give --period"),
        (["--period", "2019-20"], 3, "give --employee CODE too"),
    ]
    for extra, code, text in cases:
        proc = station.run("import", "--batch", "IDX-P", *extra, "--no-wait", str(page))
        assert proc.returncode == code and text in proc.stderr, (extra, proc.returncode, proc.stderr)
    assert "IDX-P" not in _documents(station)


def test_cli_duplicate_across_batches(station: StationEnv, tmp_path: Path) -> None:
    first = _page(tmp_path / "a.png", "ACR of Ramesh 2019-20")
    station.run("import", "--batch", "IDX-D1", "--employee", "up-12-004512", "--period", "2019-2020", "--no-wait",
                str(first), check=True)
    # more pages of the same file in the same batch: continued, not a duplicate
    second = _page(tmp_path / "b.png", "second page")
    station.run("import", "--batch", "IDX-D1", "--employee", "UP-12-004512", "--period", "2019-20", "--no-wait",
                str(second), check=True)
    third = _page(tmp_path / "c.png", "part year")
    proc = station.run("import", "--batch", "IDX-D2", "--employee", "UP-12-004512", "--period",
                       "01.10.2019-31.01.2020", "--no-wait", str(third))
    assert proc.returncode == 28, proc.stderr
    assert "batch IDX-D1, ACR file 1 (2019-20, batch scanning)" in proc.stderr
    assert _audit(station, "index.refused")[-1] == ("IDX-D2", {"error": "DuplicateAcr"})
    proc = station.run("import", "--batch", "IDX-D2", "--employee", "UP-12-004512", "--period",
                       "01.10.2019-31.01.2020", "--duplicate-reason", "second reporting officer", "--no-wait",
                       str(third))
    assert proc.returncode == 0, proc.stderr
    docs = _documents(station)
    [d1] = docs["IDX-D1"]
    [d2] = docs["IDX-D2"]
    assert d1.flags == [] and d1.employee_name == "रमेश कुमार / Ramesh Kumar" and d1.rank == "Sub-Inspector"
    assert (d2.acr_period, d2.flags, d2.duplicate_reason) == ("2019-10-01..2020-01-31", ["duplicate"],
                                                              "second reporting officer")
    assert (d2.period_start, d2.period_end) == ("2019-10-01", "2020-01-31")


def test_cover_sheets_mid_import_are_flagged_not_refused(station: StationEnv, tmp_path: Path) -> None:
    """A stack with three cover sheets: a known code, an unknown one, and a duplicate of another batch's file.
    Every file is created (the paper is already in the feeder); two are flagged, and the CLI says so."""
    station.run("import", "--batch", "IDX-C0", "--employee", "UP-12-004513", "--period", "2020-21", "--no-wait",
                str(_page(tmp_path / "x.png", "earlier")), check=True)
    files = []
    for i, (code, period) in enumerate([("UP-12-004512", "2021-22"), ("ZZ-404", "2021-22"),
                                        ("UP-12-004513", "2020-21")]):
        cover = tmp_path / f"{i}-cover.png"
        render_cover_sheet(CoverInfo(code, period, "Test Unit")).save(cover, dpi=(300, 300))
        files += [str(cover), str(_page(tmp_path / f"{i}-page.png", f"ACR page {i}"))]
    proc = station.run("import", "--batch", "IDX-C1", "--no-wait", *files)
    assert proc.returncode == 0, proc.stderr
    assert "3 page(s) acknowledged" in proc.stdout
    assert "ZZ-404 2021-22 flagged not_in_roster" in proc.stderr
    assert "UP-12-004513 2020-21 flagged duplicate" in proc.stderr and "batch IDX-C0, ACR file 1" in proc.stderr
    docs = _documents(station)["IDX-C1"]
    assert [(d.employee_code, d.flags) for d in docs] == [
        ("UP-12-004512", []), ("ZZ-404", ["not_in_roster"]), ("UP-12-004513", ["duplicate"])]
    assert docs[0].employee_name == "रमेश कुमार / Ramesh Kumar" and docs[1].not_in_roster.startswith("cover sheet")
    status = json.loads(station.run("status", "--batch", "IDX-C1", "--json", check=True).stdout)
    assert [d["flags"] for d in status["batches"][0]["documents"]] == [[], ["not_in_roster"], ["duplicate"]]


# ------------------------------------------------------------------------------------------------ service ops
def test_service_operations(station: StationEnv, tmp_path: Path) -> None:
    from scanstation.config import load_config
    from scanstation.service.client import LocalConnection
    from scanstation.service.core import StationService

    conn = LocalConnection(StationService(load_config(station.config)))
    try:
        conn.token = conn.call("sign_in", name="sup", password=PASSWORD)["token"]
        conn.call("unlock", password=PASSWORD)
        sup = conn.token
        found = conn.call("roster_search", query="Rmesh Kumar", limit=3)
        assert found[0]["employee_code"] == "UP-12-004512" and found[0]["name_hi"] == "रमेश कुमार"
        assert {"employee_code", "name_hi", "name_en", "rank", "unit", "score"} <= set(found[0])
        with pytest.raises(StateError, match="limit"):
            conn.call("roster_search", query="x", limit=0)
        conn.token = conn.call("sign_in", name="op", password=PASSWORD)["token"]
        op = conn.token
        assert conn.call("roster_search", query="सुनीता")[0]["employee_code"] == "UP-12-004513"
        answer = conn.call("index_check", batch="SVC-1", employee_code="nobody", period="2019-20")
        assert answer["ok"] is False and answer["refused"] == "not_in_roster" and "NOBODY" in answer["message"]
        answer = conn.call("index_check", batch="SVC-1", employee_code="UP-12-004513", period="2019-20")
        assert answer["ok"] is True and answer["employee"]["name_en"] == "Sunita Sharma" and answer["flags"] == []
        assert conn.call("index_check", batch="SVC-1", employee_code="UP-12-004513",
                         period="2030-31")["refused"] == "bad_period"
        made = conn.call("index_document", batch="SVC-1", employee_code="UP-12-004513", period="2019-20")
        doc = made["document"]
        assert doc["employee_code"] == "UP-12-004513" and doc["period_start"] == "2019-04-01"
        with pytest.raises(DuplicateAcr, match="batch SVC-1, ACR file 1"):
            conn.call("index_document", batch="SVC-2", employee_code="UP-12-004513", period="2019-10-01..2019-12-31")
        # the operator confirms / corrects the index of their own file
        again = conn.call("index_document", batch="SVC-1", document_id=doc["id"], employee_code="UP-12-004512",
                          period="2022-23")
        assert again["document"]["id"] == doc["id"] and again["document"]["employee_name"].endswith("Ramesh Kumar")
        sug = conn.call("index_suggestions", batch="SVC-1", document_id=doc["id"])
        assert sug["needs_confirmation"] is True and sug["pages_read"] == 0 and sug["candidates"] == []
        # someone else's batch: the operator's own-batch rule refuses
        conn.token = sup
        conn.call("index_document", batch="SVC-SUP", employee_code="UP-12-004512", period="2023-24")
        conn.token = op
        with pytest.raises(PermissionDenied):
            conn.call("index_check", batch="SVC-SUP", employee_code="UP-12-004512", period="2024-25")
        conn.token = conn.call("sign_in", name="admin", password=PASSWORD)["token"]
        with pytest.raises(PermissionDenied, match="may not search the roster"):
            conn.call("roster_search", query="Ramesh")
    finally:
        conn.close()


# ------------------------------------------------------------------------------------ scan first, index after
def _form_page(path: Path, lines: list[str]) -> Path:
    """A page whose printed index OCR can read (a large font, 150 dpi)."""
    from PIL import ImageFont

    im = Image.new("L", (1240, 1754), 255)
    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=36)
    for i, line in enumerate(lines):
        draw.text((120, 150 + 70 * i), line, fill=0, font=font)
    im.save(path, dpi=(150, 150))
    return path


def _unfiled_batch(st: StationEnv, tmp_path: Path, batch: str, n: int, *, first: list[str] | None = None) -> None:
    """``n`` pages imported into ``batch`` with no ACR file (no cover sheet, no --employee), cleaned and read."""
    files = [str(_form_page(tmp_path / f"{batch}-{i}.png", first if i == 0 and first else [f"{batch} page {i + 1}"]))
             for i in range(n)]
    proc = st.run("import", "--batch", batch, *files)
    assert proc.returncode == 0, proc.stderr


def test_pages_scanned_first_are_filed_by_the_index_after(station: StationEnv, tmp_path: Path) -> None:
    """Pages imported without an ACR file: index_suggestions reads the first of them, index_document with
    ``pages`` creates the file and files them at its end; a page that cannot be filed (filed already,
    deleted, another batch's seq, a batch not in capture) is refused by name and nothing is created."""
    from scanstation.config import load_config
    from scanstation.service.client import LocalConnection
    from scanstation.service.core import StationService

    _unfiled_batch(station, tmp_path, "FILE-A", 3, first=[
        "Annual Confidential Report", "Employee Code: UP-12-004513", "Name: Sunita Sharma",
        "Rank: Constable", "For the year 2022-23"])
    _unfiled_batch(station, tmp_path, "FILE-B", 4)
    _unfiled_batch(station, tmp_path, "FILE-C", 1)
    conn = LocalConnection(StationService(load_config(station.config)))
    try:
        conn.token = conn.call("sign_in", name="sup", password=PASSWORD)["token"]  # who imported: indexes too
        conn.call("unlock", password=PASSWORD)
        sup = conn.token
        sup2 = conn.call("sign_in", name="sup2", password=PASSWORD)["token"]

        def detail(batch: str) -> dict[str, Any]:
            return dict(conn.call("batch_detail", batch=batch))

        assert [p["document_id"] for p in detail("FILE-A")["pages"]] == [None, None, None]
        assert all(p["ocr"] == "done" for p in detail("FILE-A")["pages"])
        # suggestions from the unfiled pages' text (the first three read), never applied
        sug = conn.call("index_suggestions", batch="FILE-A", seqs=[3, 1, 2])
        assert sug["needs_confirmation"] is True and sug["pages_read"] == 3
        assert sug["candidates"][0]["employee_code"] == "UP-12-004513" and sug["period"] == "2022-23", sug
        assert detail("FILE-A")["documents"] == []

        # (an employee and period no other test of this module's station files)
        index: dict[str, Any] = {"employee_code": "UP-12-004513", "period": "2022-23"}
        # refusals, each naming the page, each before anything is created
        for batch, seqs, text in (("FILE-A", [1, 4], "no page 4 in batch 'FILE-A'"),  # FILE-B's seq 4
                                  ("FILE-A", [1, 0], "list of page numbers"),
                                  ("NO-SUCH", [1], "no batch called 'NO-SUCH'")):
            with pytest.raises(StateError, match=text):
                conn.call("index_document", batch=batch, pages=seqs, **index)
            with pytest.raises(StateError, match=text):
                conn.call("index_suggestions", batch=batch, seqs=seqs)
        with pytest.raises(StateError, match="without 'document_id'"):
            conn.call("index_document", batch="FILE-A", pages=[1], document_id=1, **index)
        assert detail("FILE-A")["documents"] == []

        made = conn.call("index_document", batch="FILE-A", pages=[2, 1], **index)
        assert made["pages_filed"] == [1, 2] and made["document"]["employee_code"] == "UP-12-004513"
        doc_id = made["document"]["id"]
        pages = {p["seq"]: p for p in detail("FILE-A")["pages"]}
        assert [(pages[s]["document_id"], pages[s]["position"]) for s in (1, 2, 3)] == [(doc_id, 1), (doc_id, 2),
                                                                                       (None, None)]
        files = _audit(station, "page.file")
        assert [(d["seq"], d["document"], d["from_document"]) for _s, d in files[-2:]] == [(1, doc_id, None),
                                                                                          (2, doc_id, None)]
        # a filed page is refused by name, and no second file is created for the other
        for seqs in ([3, 1], [2]):
            with pytest.raises(StateError, match=r"page [12] of batch 'FILE-A' is already in ACR file 1"):
                conn.call("index_document", batch="FILE-A", pages=seqs, **index)
        with pytest.raises(StateError, match="page 1 of batch 'FILE-A' is already in ACR file 1"):
            conn.call("index_suggestions", batch="FILE-A", seqs=[1])
        assert len(detail("FILE-A")["documents"]) == 1
        # the same employee and period again: the file is continued, page 3 goes at its end
        again = conn.call("index_document", batch="FILE-A", pages=[3], **index)
        assert again["document"]["id"] == doc_id and again["pages_filed"] == [3]
        assert {p["seq"]: p["position"] for p in detail("FILE-A")["pages"]} == {1: 1, 2: 2, 3: 3}
        # a roster refusal files nothing either (the batch's pages stay unfiled)
        with pytest.raises(NotInRoster):
            conn.call("index_document", batch="FILE-B", pages=[1], employee_code="NOBODY", period="2019-20")
        assert detail("FILE-B")["documents"] == [] and {p["document_id"] for p in detail("FILE-B")["pages"]} == {None}

        # a batch out of capture: refused, nothing created
        conn.call("close_batch", batch="FILE-C")
        with pytest.raises(StateError, match="batch 'FILE-C' is closed: pages are filed into ACR files while"):
            conn.call("index_document", batch="FILE-C", pages=[1], employee_code="UP-12-004513", period="2019-20")
        # deleted in verification, the batch back in capture: the page is not filed
        conn.token = sup2
        conn.call("review", batch="FILE-C", seq=1, verdict="delete", reason="a blank sheet")
        conn.call("return_batch", batch="FILE-C", reason="see page 1")
        conn.token = sup
        with pytest.raises(StateError, match="page 1 of batch 'FILE-C' was deleted"):
            conn.call("index_document", batch="FILE-C", pages=[1], employee_code="UP-12-004513", period="2019-20")
        with pytest.raises(StateError, match="page 1 of batch 'FILE-C' was deleted"):
            conn.call("index_suggestions", batch="FILE-C", seqs=[1])
        assert detail("FILE-C")["documents"] == []
    finally:
        conn.close()

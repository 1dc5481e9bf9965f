"""The roster (issue 14, scope 1): the HR portal's staff list read from real CSV and XLSX files, every bad row
named and nothing imported, re-imports in one transaction, encryption at rest, name search across scripts,
and `scanstation roster import|search|show` through the real CLI."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from datetime import date, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from scanstation.errors import RosterError
from scanstation.roster import reader
from scanstation.roster.reader import HEADER_SYNONYMS, parse_date, read_roster
from scanstation.roster.search import RosterIndex, phonetic_key
from scanstation.store.database import Store
from scanstation.store.roster import RosterPerson
from scanstation_tools.synth_people import synthetic_employee

from .recording_sink import RecordingSink
from .stationkit import StationEnv, make_station

KEY = bytes(range(32))
TODAY = date(2026, 12, 3)
ROOT = Path(__file__).resolve().parent.parent
HEADER = "Employee Code,Name (Hindi),Name (English),Rank,Unit,DOB,DOJ\n"
ROWS = ("UP-12-004512,रमेश कुमार,Ramesh Kumar,Sub-Inspector,Reserve Police Lines,15-08-1980,01/07/2005\n"
        "UP-12-004513,सुनीता शर्मा,Sunita Sharma,Constable,Thana Kotwali,1990-01-02,2012-03-04\n")


def _write(path: Path, text: str, *, bom: bool = False) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def _xlsx(path: Path, rows: list[list[Any]], *, title: str | None = None) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    if title:
        sheet.append([title])
        sheet.append([])
    for r in rows:
        sheet.append(r)
    book.save(path)
    return path


def _problems(e: pytest.ExceptionInfo[RosterError]) -> list[str]:
    return [line.strip() for line in e.value.message.splitlines()[1:]]


# ------------------------------------------------------------------------------------------------ reading files
@pytest.mark.parametrize("bom", [False, True])
def test_csv_with_and_without_bom(tmp_path: Path, bom: bool) -> None:
    roster = read_roster(_write(tmp_path / "r.csv", HEADER + ROWS, bom=bom), today=TODAY)
    assert [r.employee_code for r in roster.rows] == ["UP-12-004512", "UP-12-004513"]
    first = roster.rows[0]
    assert (first.name_hi, first.name_en, first.rank) == ("रमेश कुमार", "Ramesh Kumar", "Sub-Inspector")
    assert (first.birth_date, first.joining_date) == (date(1980, 8, 15), date(2005, 7, 1))
    assert roster.rows[1].birth_date == date(1990, 1, 2)
    assert roster.columns["employee_code"] == "Employee Code"  # the BOM is not part of the first header
    assert roster.sha256 == hashlib.sha256((tmp_path / "r.csv").read_bytes()).hexdigest()


@pytest.mark.parametrize("sep", [";", "\t"])
def test_semicolon_and_tab_exports(tmp_path: Path, sep: str) -> None:
    text = (HEADER + ROWS).replace(",", sep)
    roster = read_roster(_write(tmp_path / "r.csv", text), today=TODAY)
    assert [r.name_en for r in roster.rows] == ["Ramesh Kumar", "Sunita Sharma"]


def test_hindi_headers_and_a_name_column_routed_by_script(tmp_path: Path) -> None:
    text = ("कर्मचारी कोड,नाम,पद,इकाई,जन्म तिथि,नियुक्ति तिथि,Mobile\n"
            "a-1,रमेश कुमार,उप निरीक्षक,पुलिस लाइन्स,15.08.1980,01-Jul-2005,9999999999\n"
            "A-2,Sunita Sharma,Constable,Kotwali,,,\n")
    roster = read_roster(_write(tmp_path / "r.csv", text), today=TODAY)
    a1, a2 = roster.rows
    assert a1.employee_code == "A-1"  # codes are kept upper-case
    assert (a1.name_hi, a1.name_en) == ("रमेश कुमार", "")
    assert (a2.name_hi, a2.name_en) == ("", "Sunita Sharma")
    assert a1.joining_date == date(2005, 7, 1) and a2.birth_date is None
    assert roster.ignored == ["Mobile"]


def test_xlsx_with_a_title_row_excel_dates_and_numeric_codes(tmp_path: Path) -> None:
    path = _xlsx(tmp_path / "r.xlsx", [
        ["EmpID", "Name in Hindi", "Name in English", "Designation", "Office", "Date of Birth", "Date of Joining"],
        [104512, "रमेश कुमार", "Ramesh Kumar", "SI", "Lines", datetime(1980, 8, 15), datetime(2005, 7, 1)],
        ["UP-7", "सुनीता", None, "HC", "Kotwali", "02/01/1990", 40969],  # 40969: Excel's serial for 2012-03-01
    ], title="District Police - staff list as on 01-12-2026")
    roster = read_roster(path, today=TODAY)
    assert [r.employee_code for r in roster.rows] == ["104512", "UP-7"]
    assert roster.rows[0].birth_date == date(1980, 8, 15)
    assert roster.rows[1].birth_date == date(1990, 1, 2) and roster.rows[1].joining_date == date(2012, 3, 1)
    assert [r.row for r in roster.rows] == [4, 5]  # the spreadsheet's own row numbers (title, blank, header)


def test_every_bad_row_is_named_with_column_and_reason(tmp_path: Path) -> None:
    text = ("Emp Code,Name,Rank,Unit,DOB,DOJ\n"
            "E1,Asha Verma,SI,U,31-02-1980,\n"                    # 2: no such date
            ",Ravi,SI,U,,\n"                                       # 3: code missing
            "E1,Second Asha,SI,U,,\n"                              # 4: duplicate of row 2
            "E4,Bad\x07Name,SI,U,,\n"                              # 5: control character
            "E5," + "A" * 130 + ",SI,U,,\n"                        # 6: overlong
            "E6,Late Joiner,SI,U,01-01-1990,01-01-1985\n"          # 7: joined before birth
            "E7,Future,SI,U,01-01-1990,01-01-2030\n"               # 8: joined in the future
            "E8,Old,SI,U,01-01-1900,\n"                            # 9: implausible birth
            "E9,Short Year,SI,U,01-01-85,\n"                       # 10: two-digit year
            "E10,Child,SI,U,01-01-2000,01-01-2010\n"               # 11: joined at 10
            "E 11,OK Person,SI,U,,\n"                              # 12: fine ("E 11")
            "E/12$,Symbol,SI,U,,\n"                                # 13: bad character in code
            ",,,,,\n")                                             # 14: empty: skipped
    with pytest.raises(RosterError) as e:
        read_roster(_write(tmp_path / "bad.csv", text), today=TODAY)
    assert str(tmp_path / "bad.csv") in e.value.message and "nothing was imported" in e.value.message
    problems = _problems(e)
    by_row = {int(m.group(1)): p for p in problems if (m := re.match(r"row (\d+)", p))}
    assert sorted(by_row) == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13], problems
    assert "column 'DOB'" in by_row[2] and "bad date" in by_row[2]
    assert "employee code missing" in by_row[3]
    assert "duplicate employee code E1 (also in row 2)" in by_row[4]
    assert "control" in by_row[5] and "column 'Name'" in by_row[5]
    assert "longer than 120" in by_row[6]
    assert "not after the date of birth" in by_row[7]
    assert "in the future" in by_row[8]
    assert "implausible date of birth" in by_row[9]
    assert "two-digit year" in by_row[10]
    assert "before the age of 16" in by_row[11]
    assert "letters, digits" in by_row[13]
    assert "Asha Verma" not in e.value.message  # names are never quoted back


@pytest.mark.parametrize(("content", "expected"), [
    (b"", "empty"),
    (b"   \n\n", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "old Excel .xls"),
    (b"%PDF-1.7\n", "PDF"),
    ("Name,Rank\nरमेश,SI\n".encode(), "no employee code column"),
    (b"Employee Code,Rank\nE1,SI\n", "no name column"),
    (b"Employee Code,Name\n", "no people"),
    ("Employee Code,Name\nE1,é\n".encode("latin-1"), "not UTF-8"),
    (b"Employee Code,EmpID,Name\nE1,E2,x\n", "both look like the employee code column"),
])
def test_files_that_are_not_a_roster(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "roster.csv"
    path.write_bytes(content)
    with pytest.raises(RosterError, match=re.escape(expected)) as e:
        read_roster(path, today=TODAY)
    assert str(path) in e.value.message


def test_truncated_and_damaged_xlsx(tmp_path: Path) -> None:
    good = _xlsx(tmp_path / "good.xlsx", [["Employee Code", "Name"], ["E1", "Asha"]]).read_bytes()
    for name, data in (("cut.xlsx", good[: len(good) // 2]), ("flipped.xlsx", good[:400] + bytes(200) + good[600:])):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(RosterError, match="not a readable XLSX") as e:
            read_roster(path, today=TODAY)
        assert str(path) in e.value.message
    buf = io.BytesIO()  # a zip that is no workbook
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("hello.txt", "not a workbook")
    (tmp_path / "zip.xlsx").write_bytes(buf.getvalue())
    with pytest.raises(RosterError, match="not a readable XLSX workbook"):
        read_roster(tmp_path / "zip.xlsx", today=TODAY)


def test_size_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "r.csv", HEADER + ROWS * 50)
    with pytest.raises(RosterError, match="more than a staff list can be"):
        read_roster(path, today=TODAY, max_bytes=1024)
    # a workbook whose members unpack to more than the limit (a zip bomb) is refused before openpyxl opens it
    monkeypatch.setattr(reader, "MAX_XLSX_UNPACKED", 4096)
    xlsx = _xlsx(tmp_path / "r.xlsx", [["Employee Code", "Name"], *[[f"E{i}", "Asha Verma"] for i in range(300)]])
    with pytest.raises(RosterError, match="unpacks to"):
        read_roster(xlsx, today=TODAY)
    monkeypatch.setattr(reader, "MAX_ROWS", 20)
    with pytest.raises(RosterError, match="more than 20 rows"):
        read_roster(_write(tmp_path / "long.csv", "Employee Code,Name\n" + "".join(f"E{i},X\n" for i in range(40))),
                    today=TODAY)


def test_dates() -> None:
    assert parse_date("15-08-1980") == parse_date("15/08/1980") == parse_date("15.08.1980") == date(1980, 8, 15)
    assert parse_date("1980-08-15") == parse_date("15-Aug-1980") == parse_date("15 August 1980") == date(1980, 8, 15)
    assert parse_date("१५-०८-१९८०") == date(1980, 8, 15)
    assert parse_date(29448) == date(1980, 8, 15)  # Excel serial
    for bad in ("1980", "15-13-1980", "15-08-80", "yesterday", "31-Foo-1980"):
        with pytest.raises(ValueError):
            parse_date(bad)


def test_every_header_synonym_is_documented() -> None:
    doc = (ROOT / "docs" / "roster.md").read_text(encoding="utf-8")
    missing = [s for names in HEADER_SYNONYMS.values() for s in names if f"`{s}`" not in doc]
    assert not missing, f"docs/roster.md does not list these headers: {missing}"


# ------------------------------------------------------------------------------------------------ the store
@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = Store(tmp_path / "station.db", key=KEY, audit=RecordingSink())
    yield s
    s.close()


def test_reimport_adds_updates_and_deactivates_in_one_transaction(store: Any, tmp_path: Path) -> None:
    first = read_roster(_write(tmp_path / "a.csv", HEADER + ROWS + "E3,,Gone Soon,SI,U,,\n"), today=TODAY)
    r1 = store.replace_roster(first.rows, "sup", file_sha256=first.sha256)
    assert (r1.added, r1.updated, r1.deactivated, r1.unchanged) == (3, 0, 0, 0)
    changed = ROWS.replace("Constable", "Head Constable") + "E4,,New Person,SI,U,,\n"
    second = read_roster(_write(tmp_path / "b.csv", HEADER + changed), today=TODAY)
    r2 = store.replace_roster(second.rows, "head", file_sha256=second.sha256)
    assert (r2.added, r2.updated, r2.deactivated, r2.unchanged) == (1, 1, 1, 1)
    gone = store.roster_person("E3")
    assert gone is not None and not gone.active  # kept: their ACR files are still scanned after a transfer
    assert store.roster_person("UP-12-004513").rank == "Head Constable"
    summary = store.roster_summary()
    assert (summary["active"], summary["inactive"], summary["imports"]) == (3, 1, 2)
    assert summary["last_import"]["file_sha256"] == second.sha256
    # back in a later export: active again, counted as updated
    r3 = store.replace_roster(first.rows, "sup", file_sha256=first.sha256)
    assert store.roster_person("E3").active and r3.updated >= 1 and r3.deactivated == 1  # E4 left
    entries = [e for e in store._audit_sink.entries if e.action == "roster.import"]
    assert [e.detail["added"] for e in entries] == [3, 1, 0]
    assert entries[1].detail == {"rows": 3, "added": 1, "updated": 1, "deactivated": 1, "unchanged": 1,
                                 "sha256": second.sha256}
    assert all(not e.personal for e in entries)


def test_a_failing_import_changes_nothing(store: Any, tmp_path: Path) -> None:
    roster = read_roster(_write(tmp_path / "a.csv", HEADER + ROWS), today=TODAY)
    store.replace_roster(roster.rows, "sup", file_sha256=roster.sha256)
    store._audit_sink.fail_on = "roster.import"  # the audit entry cannot be written: the transaction rolls back
    other = read_roster(_write(tmp_path / "b.csv", HEADER + "E9,,Someone Else,SI,U,,\n"), today=TODAY)
    with pytest.raises(OSError):
        store.replace_roster(other.rows, "sup", file_sha256=other.sha256)
    assert [p.employee_code for p in store.roster_people(active_only=True)] == ["UP-12-004512", "UP-12-004513"]
    assert store.roster_summary()["imports"] == 1


# ------------------------------------------------------------------------------------------------ name search
def _people() -> list[RosterPerson]:
    rows = [("E1", "रमेश कुमार", ""), ("E2", "सुरेश कुमार", "Suresh Kumar"), ("E3", "", "Ramesh Chandra"),
            ("E4", "राकेश शर्मा", ""), ("E5", "महेश कुमार यादव", ""), ("E6", "लक्ष्मण सिंह", ""),
            ("E7", "कृष्णा देवी", ""), ("E8", "", "Mohammad Irfan"), ("E9", "ज्ञानेंद्र प्रताप", ""),
            ("UP-12-004512", "सिद्धार्थ", "")]
    return [RosterPerson(c, hi, en, "SI", "U", None, None, True) for c, hi, en in rows]


@pytest.mark.parametrize(("query", "code"), [
    ("Ramesh Kumar", "E1"),       # Latin finds Devanagari
    ("Rmesh Kumar", "E1"),        # a typo
    ("Ramesh Kumaar", "E1"),      # a transliteration variant
    ("Kumar Ramesh", "E1"),       # word order
    ("रमेस कुमार", "E1"),          # a Devanagari typo (स for श)
    ("Laxman Singh", "E6"),
    ("Lakshman Sing", "E6"),
    ("Krishna Devi", "E7"),
    ("मोहम्मद इरफ़ान", "E8"),       # Devanagari finds Latin
    ("Gyanendra Pratap", "E9"),
    ("Siddharth", "UP-12-004512"),
    ("Mahesh Yadav", "E5"),        # a middle name left out
    ("E2", "E2"),
    ("up-12-004512", "UP-12-004512"),
    ("UP-12-04512", "UP-12-004512"),  # a code typo
])
def test_search_finds_across_scripts_and_typos(query: str, code: str) -> None:
    matches = RosterIndex(_people()).search(query)
    assert matches and matches[0].person.employee_code == code, [(m.person.employee_code, m.score) for m in matches]


def test_search_does_not_offer_unrelated_people() -> None:
    index = RosterIndex(_people())
    assert index.search("Venkatesh Iyer") == []
    assert index.search("Z99") == []
    assert phonetic_key("रमेश कुमार") == phonetic_key("Ramesh Kumar")


def _synthetic_roster(n: int) -> list[Any]:
    seen: dict[str, Any] = {}
    seed = 0
    while len(seen) < n:
        e = synthetic_employee(seed)
        seed += 1
        seen.setdefault(e.employee_code, e)
    return list(seen.values())


def test_search_quality_on_a_synthetic_roster() -> None:
    """Each synthetic person's English name (and the same with a letter dropped) finds a person of their Hindi
    name among the first results, out of 1,000 people."""
    staff = _synthetic_roster(1000)
    index = RosterIndex([RosterPerson(e.employee_code, e.name_hi, "", e.rank, e.unit, None, None, True)
                         for e in staff])
    missed = []
    for e in staff[:150]:
        typo = e.name[:3] + e.name[4:]
        for query in (e.name, typo):
            found = index.search(query, limit=10)
            if not any(m.person.name_hi == e.name_hi for m in found):
                missed.append(query)
    assert len(missed) <= 3, missed  # 300 queries


# ------------------------------------------------------------------------------------------------ the CLI
def _roster_csv(path: Path, staff: list[Any]) -> Path:
    lines = ["\ufeffEmployee Code,नाम (हिंदी),Name (English),पद,Unit,जन्म तिथि,DOJ"]
    for e in staff:
        lines.append(f"{e.employee_code},{e.name_hi},{e.name},{e.rank_hi},{e.unit},{e.date_of_birth:%d-%m-%Y},"
                     f"{e.date_of_joining:%d/%m/%Y}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> StationEnv:
    return make_station(tmp_path_factory.mktemp("roster") / "st")


def test_cli_imports_1000_devanagari_names_encrypted_at_rest(station: StationEnv, tmp_path: Path) -> None:
    staff = _synthetic_roster(1000)
    path = _roster_csv(tmp_path / "staff.csv", staff)
    proc = station.run("roster", "import", str(path), check=True)
    assert "1000 people (added 1000" in proc.stdout
    shown = json.loads(station.run("roster", "show", "--json", check=True).stdout)
    assert shown["active"] == 1000 and shown["last_import"]["file_sha256"] == hashlib.sha256(
        path.read_bytes()).hexdigest()
    found = json.loads(station.run("roster", "search", staff[7].name, "--json", check=True).stdout)
    assert any(r["name_hi"] == staff[7].name_hi for r in found)
    # at rest: no name, code or date of the file in any file of the data directory (SQLCipher, audit trail)
    needles = [e.name_hi for e in staff[:50]] + [e.name for e in staff[:50]] + [e.employee_code for e in staff[:50]]
    leaks = []
    for f in sorted(p for p in station.data_dir.rglob("*") if p.is_file()):
        raw = f.read_bytes()
        leaks += [f"{f.name}: {n}" for n in needles if n.encode() in raw]
    assert not leaks, leaks[:5]


def test_cli_bad_file_imports_nothing_and_says_why(station: StationEnv, tmp_path: Path) -> None:
    before = json.loads(station.run("roster", "show", "--json", check=True).stdout)
    bad = _write(tmp_path / "bad.csv", "Employee Code,Name,DOB\nX1,Asha,31-02-1980\n,Ravi,\nX3,Ok,\n")
    proc = station.run("roster", "import", str(bad))
    assert proc.returncode == 26, proc.stderr
    assert "row 2, column 'DOB'" in proc.stderr and "row 3, column 'Employee Code'" in proc.stderr
    assert "nothing was imported" in proc.stderr
    after = json.loads(station.run("roster", "show", "--json", check=True).stdout)
    assert after == before
    proc = station.run("roster", "import", str(tmp_path / "missing.csv"))
    assert proc.returncode == 26 and "missing.csv: no such file" in proc.stderr


@pytest.mark.parametrize(("user", "command"), [("op", "import"), ("admin", "import"), ("admin", "search")])
def test_cli_who_may_touch_the_roster(station: StationEnv, tmp_path: Path, user: str, command: str) -> None:
    args = ["roster", command, str(_write(tmp_path / "r.csv", HEADER + ROWS)) if command == "import" else "Ramesh"]
    proc = station.run(*args, "--user", user)
    assert proc.returncode in (22, 24), proc.stderr  # refused by the matrix (or, for op in-process, locked)
    if user == "admin":
        assert proc.returncode == 22 and "admin (admin) may not" in proc.stderr


def test_cli_through_the_running_service(station: StationEnv, tmp_path: Path) -> None:
    """With `scanstation serve` running (unlocked by the unit head): the supervisor's import of an XLSX runs inside
    the service, and the operator - who can never unlock - searches the roster through it."""
    path = _xlsx(tmp_path / "staff.xlsx", [["EmpID", "नाम", "Name (English)", "पद"],
                                           ["SVC-1", "रमेश कुमार", "Ramesh Kumar", "उप निरीक्षक"],
                                           ["SVC-2", "सुनीता शर्मा", "Sunita Sharma", "आरक्षी"]])
    # The module's station is shared, and pytest-xdist may run this test before or after the 1,000-name import
    # (or on another worker): what was in the roster before is read, not assumed.
    before = json.loads(station.run("roster", "show", "--json", check=True).stdout)
    earlier = before["active"] + before["inactive"]
    with station.serve(unlock_as="head"):
        proc = station.run("roster", "import", str(path), check=True)
        assert "2 people (added 2" in proc.stdout
        assert f"no longer in the export and marked inactive {before['active']}" in proc.stdout
        found = json.loads(station.run("roster", "search", "Sunita Sharma", "--json", "--user", "op",
                                       check=True).stdout)
        assert found[0]["employee_code"] == "SVC-2" and found[0]["name_hi"] == "सुनीता शर्मा"
        assert "inactive" in station.run("roster", "show", "--user", "op", check=True).stdout
        refused = station.run("roster", "import", str(path), "--user", "op")
        assert refused.returncode == 22 and "op (operator) may not import the roster" in refused.stderr
        # the admin sees the counts (no personal data) but may not search names
        shown = json.loads(station.run("roster", "show", "--json", "--user", "admin", check=True).stdout)
        assert (shown["active"], shown["inactive"]) == (2, earlier)
        refused = station.run("roster", "search", "Sunita", "--user", "admin")
        assert refused.returncode == 22 and "admin (admin) may not search the roster" in refused.stderr

"""Cover sheets from the roster (issue 14, scope 2): `scanstation cover-sheets --roster FILE` on a machine with no
station at all, one sheet per (employee, period), names printed in Devanagari and English but never in the QR
code; and the printed PDF scanned back into a station opens prefilled ACR files."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import openpyxl
import pikepdf
import pytesseract
import pytest
from PIL import Image

from scanstation.capture.cover_sheets import CoverInfo, detect_cover_sheet, inspect_cover_sheet
from scanstation.cleanup.arrays import to_gray

from .stationkit import REPO, StationEnv, make_station

ROSTER = ("\ufeffEmployee Code,Name (Hindi),Name (English),Rank,Unit,DOJ\n"
          "UP-12-004512,रमेश कुमार,Ramesh Kumar,Sub-Inspector,Lines,01/07/2005\n"
          "UP-12-004513,सुनीता शर्मा,Sunita Sharma,Constable,Kotwali,01-10-2018\n"
          "UP-12-004514,,Mohammad Irfan,Head Constable,Lines,\n")


def _cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI with no station configured: no SCANSTATION_* variables, no config file."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SCANSTATION_")}
    base["PYTHONPATH"] = str(REPO)
    base.update(env or {})
    return subprocess.run([sys.executable, "-m", "scanstation.cli.main", *args], env=base, cwd=cwd, text=True,
                          capture_output=True, timeout=300)


def _pages(pdf: Path) -> list[Image.Image]:
    with pikepdf.open(pdf) as doc:
        return [pikepdf.PdfImage(next(iter(p.get_images().values()))).as_pil_image()  # type: ignore[arg-type]
                for p in doc.pages]


def test_sheets_from_a_roster_file_without_any_station(tmp_path: Path) -> None:
    (tmp_path / "roster.csv").write_text(ROSTER, encoding="utf-8")
    proc = _cli(tmp_path, "cover-sheets", "--roster", "roster.csv", "--all", "--periods", "2017-18..2019-20",
                "--unit", "Reserve Police Lines", "-o", "sheets.pdf")
    assert proc.returncode == 0, proc.stderr
    # 3 people x 3 years, less Sunita's 2017-18 (she joined in October 2018)
    assert "8 separator sheet(s) written to sheets.pdf (1 left out" in proc.stdout
    pages = _pages(tmp_path / "sheets.pdf")
    found = [inspect_cover_sheet(to_gray(p), 300) for p in pages]
    assert [(f.info.employee_code, f.info.acr_period) for f in found if f.info] == [
        ("UP-12-004512", "2017-18"), ("UP-12-004512", "2018-19"), ("UP-12-004512", "2019-20"),
        ("UP-12-004513", "2018-19"), ("UP-12-004513", "2019-20"),
        ("UP-12-004514", "2017-18"), ("UP-12-004514", "2018-19"), ("UP-12-004514", "2019-20")]
    assert all(f.info and f.info.unit == "Reserve Police Lines" for f in found)
    # no name in any QR code; the names and rank are printed for the people handling the paper
    assert not any("Ramesh" in t or "रमेश" in t for f in found for t in f.payloads)
    printed = pytesseract.image_to_string(pages[0].convert("L"), lang="eng")
    assert "Ramesh Kumar" in printed and "Sub-Inspector" in printed and "UP-12-004512" in printed


def test_xlsx_roster_chosen_employees_and_a_part_year(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["EmpID", "नाम", "पद"])
    sheet.append(["UP-1", "रमेश कुमार", "उप निरीक्षक"])
    sheet.append(["UP-2", "Sunita Sharma", "Constable"])
    book.save(tmp_path / "r.xlsx")
    proc = _cli(tmp_path, "cover-sheets", "--roster", "r.xlsx", "--employee", "up-2", "--period",
                "01.04.2019-30.09.2019", "--period", "2020-21", "-o", "s.pdf")
    assert proc.returncode == 0, proc.stderr
    infos = [detect_cover_sheet(to_gray(p), 300) for p in _pages(tmp_path / "s.pdf")]
    assert infos == [CoverInfo("UP-2", "2019-04-01..2019-09-30", "Unit 1"), CoverInfo("UP-2", "2020-21", "Unit 1")]


def test_bad_requests(tmp_path: Path) -> None:
    (tmp_path / "roster.csv").write_text(ROSTER, encoding="utf-8")
    (tmp_path / "bad.csv").write_text("Employee Code,Name\n,Nameless\n", encoding="utf-8")
    cases = [
        (["--roster", "roster.csv", "--employee", "NOPE-1", "--period", "2019-20"], 26, "no employee with code NOPE-1"),
        (["--roster", "bad.csv", "--all", "--period", "2019-20"], 26, "row 2, column 'Employee Code'"),
        (["--roster", "roster.csv", "--all", "--period", "2030-31"], 7, "has not ended yet"),
        (["--roster", "roster.csv", "--all"], 7, "no ACR periods"),
        (["--roster", "roster.csv", "--period", "2019-20"], 3, "--employee CODE (repeatable) or --all"),
        (["--roster", "roster.csv", "--all", "--periods", "2019-20..2017-18"], 3, "last year is before the first"),
        (["--roster", "roster.csv", "--sheet", "E1:2019-20", "--all"], 3, "either --sheet"),
        (["--sheet", "E1:2019-20", "--all"], 3, "go with --roster"),
        (["--sheet", "E1:whenever"], 3, "is not a financial year"),
        (["--roster", "missing.csv", "--all", "--period", "2019-20"], 26, "missing.csv: no such file"),
    ]
    for args, code, text in cases:
        proc = _cli(tmp_path, "cover-sheets", *args, "-o", "x.pdf")
        assert proc.returncode == code and text in proc.stderr, (args, proc.returncode, proc.stderr)
    assert not (tmp_path / "x.pdf").exists()


def test_configured_periods_and_the_sheet_form(tmp_path: Path) -> None:
    (tmp_path / "roster.csv").write_text(ROSTER, encoding="utf-8")
    config = tmp_path / "station.toml"
    config.write_text('[station]\nunit = "Kotwali"\n[roster]\nperiods = ["2019-20", "2020-21"]\n', encoding="utf-8")
    proc = _cli(tmp_path, "cover-sheets", "--roster", "roster.csv", "--employee", "UP-12-004514", "-o", "a.pdf",
                env={"SCANSTATION_CONFIG": str(config)})
    assert proc.returncode == 0, proc.stderr
    infos = [detect_cover_sheet(to_gray(p), 300) for p in _pages(tmp_path / "a.pdf")]
    assert infos == [CoverInfo("UP-12-004514", "2019-20", "Kotwali"), CoverInfo("UP-12-004514", "2020-21", "Kotwali")]
    proc = _cli(tmp_path, "cover-sheets", "--sheet", "E1:2019-2020:Asha Verma", "-o", "b.pdf")
    assert proc.returncode == 0, proc.stderr
    [info] = [detect_cover_sheet(to_gray(p), 300) for p in _pages(tmp_path / "b.pdf")]
    assert info == CoverInfo("E1", "2019-20", "Unit 1")  # the period in its canonical form


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> StationEnv:
    return make_station(tmp_path_factory.mktemp("coversheets") / "st")


def test_printed_sheets_scanned_back_open_prefilled_files(station: StationEnv, tmp_path: Path) -> None:
    """The sheets PDF, printed and put in front of each ACR file, imported as a PDF: each sheet opens an ACR file
    with the roster's name and rank; the sheets are not stored as pages."""
    roster = tmp_path / "roster.csv"
    roster.write_text(ROSTER, encoding="utf-8")
    station.run("roster", "import", str(roster), check=True)
    proc = _cli(tmp_path, "cover-sheets", "--roster", "roster.csv", "--employee", "UP-12-004512", "--employee",
                "UP-12-004514", "--period", "2019-20", "--unit", "Test Unit", "-o", "sheets.pdf")
    assert proc.returncode == 0, proc.stderr
    sheets = pikepdf.open(tmp_path / "sheets.pdf")
    stack = pikepdf.new()
    page = Image.new("L", (1240, 1754), 255)
    for i, sheet in enumerate(sheets.pages):  # sheet, then one ACR page behind it
        stack.pages.append(sheet)
        buf = io.BytesIO()
        page.save(buf, format="PDF", resolution=150.0)
        with pikepdf.open(io.BytesIO(buf.getvalue())) as one:
            stack.pages.append(one.pages[0])
        assert i < 2
    stack.save(tmp_path / "stack.pdf")
    proc = station.run("import", "--batch", "CS-1", "--no-wait", str(tmp_path / "stack.pdf"))
    assert proc.returncode == 0, proc.stderr
    assert "2 page(s) acknowledged" in proc.stdout

    from scanstation.facade import open_store

    config, key = station.unlock()
    store = open_store(config, key)
    try:
        docs = store.documents(store.batch("CS-1").id)
        assert [(d.employee_code, d.acr_period, d.employee_name, d.rank, d.flags) for d in docs] == [
            ("UP-12-004512", "2019-20", "रमेश कुमार / Ramesh Kumar", "Sub-Inspector", []),
            ("UP-12-004514", "2019-20", "Mohammad Irfan", "Head Constable", [])]
        assert [len(store.document_pages(d.id)) for d in docs] == [1, 1]
    finally:
        store.close()

"""The operator's screen (issue 14, item 4), driven offscreen against a real station service and real scanners.

The kiosk window talks to a :class:`~scanstation.service.core.StationService` in this process (a
LocalConnection) on a station made by the real CLI.  Pages come from SANE's virtual back ends
(tests/sane_env.py): ``pnm`` scans whatever PNM file its ``filename`` option names, one sheet per scan
like a flatbed, so the test puts QR cover sheets (rendered by :func:`render_cover_sheet`) and pages "on
the glass" one after the other; ``test`` feeds ten sheets and jams on the fourth when told to.  The
roster is imported with the real CLI, so the cover sheets' ACR files come up with the roster's names.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PIL import Image, ImageDraw

from scanstation.capture.cover_sheets import CoverInfo, render_cover_sheet
from scanstation.config import load_config
from scanstation.service.client import LocalConnection
from scanstation.service.core import StationService

from .sane_env import sane_test_env
from .stationkit import PASSWORD, StationEnv, make_station

WAIT = 120_000  # ms: SANE workers, cleaning and a shared machine
ROSTER = ("Employee Code,Name (Hindi),Name (English),Rank,Unit\n"
          "EMP-1001,आशा वर्मा,Asha Verma,Inspector,Test Unit\n"
          "EMP-1002,राहुल सिंह,Rahul Singh,Sub-Inspector,Test Unit\n"
          # the synthetic employee of seed 77 (scanstation_tools/synth.py): their ACR form prints this index
          "MC-31-397966,अनीता द्विवेदी,Anita Dwivedi,Constable,Test Unit\n")


def _profiles(glass: Path) -> str:
    return f"""
[profiles.glass]
description = "the SANE pnm back end: one sheet per scan, like a flatbed"
source = "flatbed"
mode = "gray"
resolution = 300
page_size = "max"
options = ["filename={glass}"]

[profiles.feeder-jams]
description = "the SANE test back end's feeder, jamming on the 4th sheet"
source = "adf"
mode = "gray"
resolution = 75
separators = false
options = ["page4:read-return-value=SANE_STATUS_JAMMED"]
"""


def _station(root: Path, *, ocr: bool) -> StationEnv:
    # ocr = false: the OCR is off (the screen's tests do not need it; it would only slow them down)
    st = make_station(root / "st", extra_env=sane_test_env(root),
                      extra_config=("" if ocr else "enabled = false\n") + _profiles(root / "glass.pnm"))
    roster = root / "roster.csv"
    roster.write_text(ROSTER, encoding="utf-8")
    st.run("roster", "import", str(roster), check=True)
    return st


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> StationEnv:
    return _station(tmp_path_factory.mktemp("operator"), ocr=False)


@pytest.fixture(scope="module")
def ocr_station(tmp_path_factory: pytest.TempPathFactory) -> StationEnv:
    """A station that reads its pages (OCR in English, the station's default): for the index suggestions."""
    return _station(tmp_path_factory.mktemp("operator-ocr"), ocr=True)


def _service(station: StationEnv, monkeypatch: pytest.MonkeyPatch) -> StationService:
    for key, value in sane_test_env(station.root.parent).items():
        monkeypatch.setenv(key, value)  # inherited by the SANE worker processes
    svc = StationService(load_config(station.config))
    head = svc.sign_in("head", PASSWORD)
    svc.unlock(head, PASSWORD)
    return svc


@pytest.fixture
def service(station: StationEnv, monkeypatch: pytest.MonkeyPatch) -> Iterator[StationService]:
    yield _service(station, monkeypatch)


@pytest.fixture
def ocr_service(ocr_station: StationEnv, monkeypatch: pytest.MonkeyPatch) -> Iterator[StationService]:
    yield _service(ocr_station, monkeypatch)


@pytest.fixture
def window(station: StationEnv, service: StationService, qtbot: Any) -> Any:
    """The kiosk, signed in as the operator, on the Scan tab."""
    return _window(station, service, qtbot)


@pytest.fixture
def ocr_window(ocr_station: StationEnv, ocr_service: StationService, qtbot: Any) -> Any:
    return _window(ocr_station, ocr_service, qtbot)


def _window(station: StationEnv, service: StationService, qtbot: Any) -> Any:
    from ui.service_link import ServiceLink
    from ui.shell import StationWindow

    link = ServiceLink(LocalConnection(service), in_process=True)  # closes the service with the window
    win = StationWindow(load_config(station.config), link=link)
    qtbot.addWidget(win)
    win.resize(1366, 768)
    win.show()
    win.sign_in.name.setText("op")
    win.sign_in.password.setText(PASSWORD)
    win.sign_in.button.click()
    qtbot.waitUntil(lambda: win.stack.currentWidget() is win.work, timeout=WAIT)
    assert win.tabs.currentWidget() is win.operator
    screen = win.operator
    qtbot.waitUntil(lambda: screen.scanner.findData("pnm:0") >= 0 and screen.profile.count() >= 3, timeout=WAIT)
    return win


def _press(qtbot: Any, widget: Any, key: Any) -> None:
    from ui.qt import Qt

    qtbot.keyClick(widget, getattr(Qt.Key, key))


def _press_ctrl(qtbot: Any, widget: Any, key: str) -> None:
    from ui.qt import Qt

    qtbot.keyClick(widget, getattr(Qt.Key, key), Qt.KeyboardModifier.ControlModifier)


def _press_ctrl_r(qtbot: Any, widget: Any) -> None:
    _press_ctrl(qtbot, widget, "Key_R")


def _on_glass(path: Path, image: Image.Image) -> None:
    """Put a sheet on the pnm back end's glass (a binary PGM it reads at the next scan)."""
    image.convert("L").save(path, format="PPM")


def _page(text: str) -> Image.Image:
    img = Image.new("L", (2480, 3508), 255)
    draw = ImageDraw.Draw(img)
    for i in range(30):
        draw.text((200, 300 + 90 * i), f"{text} line {i}: annual confidential report", fill=0)
    return img


def _scan_and_wait(qtbot: Any, screen: Any) -> None:
    _press(qtbot, screen, "Key_F5")
    qtbot.waitUntil(lambda: screen.job is not None and screen.job_state == "running", timeout=WAIT)
    qtbot.waitUntil(lambda: screen.job_state in ("idle", "waiting"), timeout=WAIT)


def _connect(service: StationService, name: str) -> LocalConnection:
    conn = LocalConnection(service, owns_service=False)
    conn.token = conn.call("sign_in", name=name, password=PASSWORD)["token"]
    return conn


def test_cover_sheets_split_files_prefilled_one_key_each(window: Any, station: StationEnv, qtbot: Any,
                                                         service: StationService) -> None:
    screen = window.operator
    glass = station.root.parent / "glass.pnm"
    screen.scanner.setCurrentIndex(screen.scanner.findData("pnm:0"))
    screen.profile.setCurrentIndex(screen.profile.findData("glass"))
    assert "cover sheets ✓" in screen.profile_note.text() and "never dropped" in screen.profile_note.text()
    screen.batch_name.setText("OPUI1")

    for code, period, name in (("EMP-1001", "2019-20", "Asha Verma"), ("EMP-1002", "2020-21", "Rahul Singh")):
        _on_glass(glass, render_cover_sheet(CoverInfo(code, period, "Test Unit", "")))
        _scan_and_wait(qtbot, screen)
        # the cover sheet opened a new ACR file, prefilled from the sheet and the roster
        qtbot.waitUntil(lambda: bool(screen.to_confirm), timeout=WAIT)
        assert screen.index.code.text() == code and screen.index.period.text() == period
        assert name in screen.index.name.text()
        assert "cover sheet" in screen.index.title.text()
        _on_glass(glass, _page(f"{code} page"))
        _scan_and_wait(qtbot, screen)
        # one keystroke: Enter confirms the file
        _press(qtbot, screen, "Key_Return")
        qtbot.waitUntil(lambda: not screen.to_confirm, timeout=WAIT)
        assert "confirmed" in screen.message.text(), screen.message.text()

    assert sorted(screen.tiles) == [1, 2]  # two pages; the cover sheets were not stored as pages
    sup = _connect(service, "sup")
    qtbot.waitUntil(lambda: all(p["state"] == "processed" for p in screen.pages.values()), timeout=WAIT)
    # thumbnails replace the drawn tiles once the pages are cleaned (H2's page_thumbnail)
    qtbot.waitUntil(lambda: all(p.get("thumb") == "shown" for p in screen.pages.values()), timeout=WAIT)

    # F9: the batch goes to the supervisor; the files are split and indexed as the sheets said
    _press(qtbot, screen, "Key_F9")
    qtbot.waitUntil(lambda: screen.job is None and screen.batch == "", timeout=WAIT)  # closed, scan left
    detail = sup.call("batch_detail", batch="OPUI1")
    assert detail["state"] == "closed"
    files = sorted(detail["documents"], key=lambda d: d["seq"])
    assert [(d["employee_code"], d["acr_period"]) for d in files] == [("EMP-1001", "2019-20"),
                                                                     ("EMP-1002", "2020-21")]
    assert "Asha Verma" in files[0]["employee_name"] or "आशा" in files[0]["employee_name"]
    by_file = {p["seq"]: p["document_id"] for p in detail["pages"]}
    assert by_file == {1: files[0]["id"], 2: files[1]["id"]}

    # the supervisor asks for a rescan and returns the batch: it is on the operator's list
    sup.call("review", batch="OPUI1", seq=2, verdict="rescan", reason="illegible")
    sup.call("return_batch", batch="OPUI1", reason="page 2 is illegible")
    _press_ctrl_r(qtbot, screen)
    qtbot.waitUntil(lambda: screen.rescans.count() == 1, timeout=WAIT)
    assert "OPUI1" in screen.rescans.item(0).text() and "illegible" in screen.rescans.item(0).text()
    qtbot.waitUntil(lambda: screen.resume_list.findData("OPUI1") >= 0, timeout=WAIT)
    assert "returned" in screen.resume_list.itemText(screen.resume_list.findData("OPUI1"))

    # Enter on the rescan, the page back on the glass, F5: the new page takes page 2's place
    screen.rescans.setCurrentRow(0)
    screen.rescans.setFocus()
    _press(qtbot, screen.rescans, "Key_Return")
    assert screen.replace_seq == 2 and screen.batch_name.text() == "OPUI1", screen.message.text()
    _on_glass(glass, _page("EMP-1002 page, again"))
    _scan_and_wait(qtbot, screen)
    # the rescan is done once the service has put page 3 in page 2's place: the list empties
    qtbot.waitUntil(lambda: screen.replace_seq is None and screen.rescans.count() == 0, timeout=WAIT)
    # the resumed batch shows the operator's earlier pages first, then the new one
    assert sorted(screen.tiles) == [1, 2, 3]
    assert [seq for seq, p in sorted(screen.pages.items()) if p.get("earlier")] == [1, 2]
    pages = {p["seq"]: p for p in sup.call("batch_detail", batch="OPUI1")["pages"]}
    assert pages[3]["document_id"] == files[1]["id"]


def test_jam_shown_in_both_languages_and_resumed(window: Any, qtbot: Any) -> None:
    screen = window.operator
    qtbot.waitUntil(lambda: screen.scanner.findData("test:0") >= 0, timeout=WAIT)
    screen.scanner.setCurrentIndex(screen.scanner.findData("test:0"))
    screen.profile.setCurrentIndex(screen.profile.findData("feeder-jams"))
    screen.batch_name.setText("OPUI2")
    _scan_and_wait(qtbot, screen)
    assert screen.job_state == "waiting"
    assert screen.prompt.isVisible()
    assert "कागज़ फँस गया है" in screen.prompt.hindi.text()  # Hindi ...
    assert "Paper jam" in screen.prompt.english.text()  # ... and English
    assert "3 page(s) of this run kept" in screen.prompt.detail.text()
    assert sorted(screen.tiles) == [1, 2, 3]
    # fixed: Enter continues (the Continue button has the focus; Enter anywhere on the screen does too)
    _press(qtbot, screen, "Key_Return")
    qtbot.waitUntil(lambda: not screen.prompt.isVisible(), timeout=WAIT)
    qtbot.waitUntil(lambda: screen.job_state == "idle", timeout=WAIT)
    assert sorted(screen.tiles) == list(range(1, 14))  # the kept three, then the feeder's ten
    assert "Scan more" in screen.scan_button.text()
    _press(qtbot, screen, "Key_F8")
    qtbot.waitUntil(lambda: screen.job is None, timeout=WAIT)
    assert "stopped" in screen.message.text()


def test_an_acr_file_indexed_by_hand_with_roster_search(window: Any, station: StationEnv, qtbot: Any,
                                                        service: StationService) -> None:
    """No cover sheet: Ctrl+F, a name typed in Latin finds the roster's Devanagari entry, Enter, period,
    Enter; the next page scanned goes into that ACR file."""
    screen = window.operator
    glass = station.root.parent / "glass.pnm"
    screen.scanner.setCurrentIndex(screen.scanner.findData("pnm:0"))
    screen.profile.setCurrentIndex(screen.profile.findData("glass"))
    screen.batch_name.setText("OPUI3")
    _press_ctrl(qtbot, screen, "Key_F")
    assert screen.index.search.hasFocus() or window.focusWidget() is screen.index.search
    qtbot.keyClicks(screen.index.search, "Rahul")
    qtbot.waitUntil(lambda: screen.index.results.count() >= 1, timeout=WAIT)
    assert "EMP-1002" in screen.index.results.item(0).text() and "राहुल" in screen.index.results.item(0).text()
    _press(qtbot, screen.index.search, "Key_Return")  # the first result
    assert screen.index.code.text() == "EMP-1002"
    from ui.qt import QApplication

    QApplication.clipboard().setText("EMP-9999")  # no clipboard on the kiosk: paste does nothing
    screen.index.code.setFocus()
    _press_ctrl(qtbot, screen.index.code, "Key_V")
    assert screen.index.code.text() == "EMP-1002"
    qtbot.keyClicks(screen.index.period, "2021-22")
    _press(qtbot, screen.index.period, "Key_Return")
    qtbot.waitUntil(lambda: screen.next_document is not None, timeout=WAIT)
    file_id = screen.next_document
    _on_glass(glass, _page("EMP-1002 2021-22 page"))
    _scan_and_wait(qtbot, screen)
    assert screen.pages[1]["document_id"] == file_id
    sup = _connect(service, "sup")
    docs = sup.call("batch_detail", batch="OPUI3")["documents"]
    assert [(d["id"], d["employee_code"], d["acr_period"]) for d in docs] == [(file_id, "EMP-1002", "2021-22")]


def test_ocr_suggestions_offered_for_confirmation_never_applied(ocr_window: Any, ocr_station: StationEnv,
                                                                qtbot: Any, ocr_service: StationService) -> None:
    """An ACR file no cover sheet opened: once its page is read (OCR), the roster person the printed index
    names is offered in the search list, marked as a suggestion from the page text, the period only as the
    field's hint; nothing is indexed until the operator picks it, types the period and presses Enter."""
    from scanstation_tools.synth import PageSpec, render_acr_page

    window, station, service = ocr_window, ocr_station, ocr_service
    screen = window.operator
    glass = station.root.parent / "glass.pnm"
    page = render_acr_page(PageSpec(seed=77, page_no=1))  # printed: employee code, name, rank, year
    code, period = page.fields["employee_code"], page.fields["acr_period"]
    assert code == "MC-31-397966"  # the roster's entry above
    # an ACR file waiting for its index (no cover sheet, no employee yet): the pages scanned go into it
    waiting = service._station.open_document("OPUI4", "", operator="op")
    screen.next_document, screen.next_document_batch = waiting.id, "OPUI4"
    screen.scanner.setCurrentIndex(screen.scanner.findData("pnm:0"))
    screen.profile.setCurrentIndex(screen.profile.findData("glass"))
    screen.batch_name.setText("OPUI4")
    _on_glass(glass, page.image)
    _scan_and_wait(qtbot, screen)
    assert screen.pages[1]["document_id"] == waiting.id
    qtbot.waitUntil(lambda: screen.pages[1].get("ocr") == "done", timeout=WAIT)
    qtbot.waitUntil(lambda: screen.index.results.count() >= 1, timeout=WAIT)
    first = screen.index.results.item(0).text()
    assert code in first and "Anita Dwivedi" in first, first
    assert "suggested from the page text" in first and "पृष्ठ के पाठ से सुझाव" in first
    # offered, not applied: the fields stay empty, the period is only the field's hint
    assert screen.index.code.text() == "" and screen.index.period.text() == ""
    assert period in screen.index.period.placeholderText()
    sup = _connect(service, "sup")

    def files() -> list[dict[str, Any]]:
        return list(sup.call("batch_detail", batch="OPUI4")["documents"])

    assert [(d["id"], d["employee_code"]) for d in files()] == [(waiting.id, "")]
    # Enter on the suggestion fills the code as a search result does; still nothing indexed
    screen.index.results.setCurrentRow(0)
    screen.index.results.setFocus()
    _press(qtbot, screen.index.results, "Key_Return")
    assert screen.index.code.text() == code and "Anita Dwivedi" in screen.index.name.text()
    assert [(d["id"], d["employee_code"]) for d in files()] == [(waiting.id, "")]
    # the operator confirms: the file holding the page is indexed (in place, no new file)
    qtbot.keyClicks(screen.index.period, period)
    _press(qtbot, screen.index.period, "Key_Return")
    qtbot.waitUntil(lambda: "confirmed" in screen.message.text(), timeout=WAIT)
    assert [(d["id"], d["employee_code"], d["acr_period"]) for d in files()] == [(waiting.id, code, period)]
    assert screen.index.code.text() == "" and screen.index.results.count() == 0  # the panel is free again

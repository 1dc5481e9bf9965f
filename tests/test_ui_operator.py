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

# sign-ins and unlocks of the services these tests run in this process at the test stations' argon2id cost
pytestmark = pytest.mark.usefixtures("cheap_argon2")

WAIT = 120_000  # ms: SANE workers, cleaning and a shared machine
ROSTER = ("Employee Code,Name (Hindi),Name (English),Rank,Unit\n"
          "EMP-1001,आशा वर्मा,Asha Verma,Inspector,Test Unit\n"
          "EMP-1002,राहुल सिंह,Rahul Singh,Sub-Inspector,Test Unit\n"
          # the synthetic employee of seed 77 (scanstation_tools/synth.py): their ACR form prints this index
          "MC-31-397966,अनीता द्विवेदी,Anita Dwivedi,Constable,Test Unit\n"
          # seed 79's: scanned with no ACR file at all, then indexed from the suggestion
          "MC-12-742087,सुरेश अंसारी,Suresh Ansari,Constable,Test Unit\n")


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

    def run_ended() -> None:
        # an assertion, so that a timeout says how the scan ended (failed, stopped) and what the screen said
        assert screen.job_state in ("idle", "waiting"), (screen.job_state, screen.job, screen.message.text())

    qtbot.waitUntil(run_ended, timeout=WAIT)


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


def test_a_job_the_screen_left_is_never_followed_again(window: Any, station: StationEnv, qtbot: Any,
                                                       service: StationService) -> None:
    """Closing a batch stops its scan, and the lists are asked again at once; the calls run side by side,
    so the list of the operator's live scans may be answered before the stop: it must not bring the stopped
    scan back, whose replayed pages would then pass for a rescan (page 1 "replacing" page 2 in CI)."""
    screen = window.operator
    glass = station.root.parent / "glass.pnm"
    screen.scanner.setCurrentIndex(screen.scanner.findData("pnm:0"))
    screen.profile.setCurrentIndex(screen.profile.findData("glass"))
    screen.batch_name.setText("OPUI9")
    _on_glass(glass, _page("left"))
    _scan_and_wait(qtbot, screen)
    left, asked_at = screen.job, screen._job_epoch
    op = _connect(service, "op")
    live = op.call("scan_jobs")
    assert [j["job"] for j in live] == [left]  # what the list said before the stop
    screen.scanner.setCurrentIndex(screen.scanner.findData("test:0"))  # another scanner: F5 leaves this scan
    screen._detach()
    screen._jobs(live, asked_at)  # the answer asked for before the stop, arriving after it
    assert screen.job is None
    screen._jobs(live, screen._job_epoch)  # nor an answer asked for after it that still lists it
    assert screen.job is None
    # a page of an earlier run is never taken for the rescan asked for
    screen.replace_seq = 2
    screen._event({"kind": "page", "seq": 1, "state": "processed"})
    assert screen.replace_seq == 2 and not screen._replacing
    # a scan followed again (the kiosk restarted while it ran) replays its runs' pages: the rescan is chosen again
    screen._jobs([{"job": "another", "batch": "OPUI9"}], screen._job_epoch)
    assert screen.job == "another" and screen.replace_seq is None and "again" in screen.message.text()
    screen._detach()


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


def test_pages_scanned_first_are_filed_by_the_index_typed_after(window: Any, station: StationEnv, qtbot: Any,
                                                                service: StationService) -> None:
    """No cover sheet and no index first: the pages scanned wait in no ACR file, the panel says how many (in
    Hindi and English); the operator types a roster code and the period, Enter, and the pages are filed in
    one new ACR file of that employee, in the order scanned."""
    screen = window.operator
    glass = station.root.parent / "glass.pnm"
    screen.scanner.setCurrentIndex(screen.scanner.findData("pnm:0"))
    screen.profile.setCurrentIndex(screen.profile.findData("glass"))
    screen.batch_name.setText("OPUI5")
    assert not screen.index.unfiled_note.isVisible()
    for i in (1, 2):
        _on_glass(glass, _page(f"unfiled page {i}"))
        _scan_and_wait(qtbot, screen)  # the second F5 is "scan more" into the same batch
    qtbot.waitUntil(lambda: sorted(screen.tiles) == [1, 2], timeout=WAIT)
    assert screen.unfiled == {1, 2} and all(p["document_id"] is None for p in screen.pages.values())
    note = screen.index.unfiled_note
    assert note.isVisible() and "2 page(s) have no ACR file yet" in note.text(), note.text()
    assert "2 पन्नों की अभी कोई ACR फ़ाइल नहीं" in note.text()
    screen.index.code.setFocus()
    qtbot.keyClicks(screen.index.code, "EMP-1001")
    qtbot.keyClicks(screen.index.period, "2022-23")
    _press(qtbot, screen.index.period, "Key_Return")
    qtbot.waitUntil(lambda: "confirmed" in screen.message.text(), timeout=WAIT)
    assert "2 page(s) filed" in screen.message.text(), screen.message.text()
    assert screen.unfiled == set() and not note.isVisible() and screen.next_document is None
    sup = _connect(service, "sup")
    detail = sup.call("batch_detail", batch="OPUI5")
    [doc] = detail["documents"]
    assert (doc["employee_code"], doc["acr_period"]) == ("EMP-1001", "2022-23") and "Asha Verma" in doc["employee_name"]
    assert [(p["seq"], p["document_id"], p["position"]) for p in detail["pages"]] == [(1, doc["id"], 1),
                                                                                      (2, doc["id"], 2)]
    assert {p["document_id"] for p in screen.pages.values()} == {doc["id"]}

    # a page filed from elsewhere meanwhile (the supervisor, here): the screen's Enter is refused naming it,
    # and the page leaves the count
    _on_glass(glass, _page("unfiled page 3"))
    _scan_and_wait(qtbot, screen)
    qtbot.waitUntil(lambda: screen.unfiled == {3}, timeout=WAIT)
    assert sup.call("index_document", batch="OPUI5", pages=[3], employee_code="EMP-1002",
                    period="2022-23")["pages_filed"] == [3]
    qtbot.keyClicks(screen.index.code, "EMP-1001")
    qtbot.keyClicks(screen.index.period, "2022-23")
    _press(qtbot, screen.index.period, "Key_Return")
    qtbot.waitUntil(lambda: not screen.unfiled, timeout=WAIT)
    assert "page 3 of batch 'OPUI5' is already in ACR file 2" in screen.message.text(), screen.message.text()
    assert not note.isVisible() and len(sup.call("batch_detail", batch="OPUI5")["documents"]) == 2


def test_unfiled_page_read_suggests_its_person_pick_then_enter_files_it(
        ocr_window: Any, ocr_station: StationEnv, qtbot: Any, ocr_service: StationService) -> None:
    """A synthetic ACR form page (seed 79, whose employee is in the roster) scanned with no ACR file at all:
    once it is read, its person is offered as a suggestion from the page text, the period as a hint; the
    pick only fills the code; the period typed and Enter file the page into a new ACR file of that person."""
    from scanstation_tools.synth import PageSpec, render_acr_page

    window, station, service = ocr_window, ocr_station, ocr_service
    screen = window.operator
    glass = station.root.parent / "glass.pnm"
    page = render_acr_page(PageSpec(seed=79, page_no=1))
    code, period = page.fields["employee_code"], page.fields["acr_period"]
    assert code == "MC-12-742087"  # the roster's entry above
    screen.scanner.setCurrentIndex(screen.scanner.findData("pnm:0"))
    screen.profile.setCurrentIndex(screen.profile.findData("glass"))
    screen.batch_name.setText("OPUI6")
    _on_glass(glass, page.image)
    _scan_and_wait(qtbot, screen)
    qtbot.waitUntil(lambda: 1 in screen.pages, timeout=WAIT)
    assert screen.pages[1]["document_id"] is None and screen.unfiled == {1}
    assert "1 page(s) have no ACR file yet" in screen.index.unfiled_note.text()
    qtbot.waitUntil(lambda: screen.pages[1].get("ocr") == "done", timeout=WAIT)
    qtbot.waitUntil(lambda: screen.index.results.count() >= 1, timeout=WAIT)
    first = screen.index.results.item(0).text()
    assert code in first and "Suresh Ansari" in first and "suggested from the page text" in first, first
    assert screen.index.code.text() == "" and screen.index.period.text() == ""  # offered, not applied
    assert period in screen.index.period.placeholderText()
    sup = _connect(service, "sup")
    assert sup.call("batch_detail", batch="OPUI6")["documents"] == []
    screen.index.results.setCurrentRow(0)
    screen.index.results.setFocus()
    _press(qtbot, screen.index.results, "Key_Return")
    assert screen.index.code.text() == code and screen.index.document_id is None
    assert sup.call("batch_detail", batch="OPUI6")["documents"] == []  # the pick indexed nothing
    assert screen.index.unfiled_note.isVisible()  # Enter still files the unfiled page
    qtbot.keyClicks(screen.index.period, period)
    _press(qtbot, screen.index.period, "Key_Return")
    qtbot.waitUntil(lambda: "confirmed" in screen.message.text(), timeout=WAIT)
    detail = sup.call("batch_detail", batch="OPUI6")
    [doc] = detail["documents"]
    assert (doc["employee_code"], doc["acr_period"]) == (code, period)
    assert [(p["seq"], p["document_id"]) for p in detail["pages"]] == [(1, doc["id"])]
    assert screen.unfiled == set() and screen.index.results.count() == 0

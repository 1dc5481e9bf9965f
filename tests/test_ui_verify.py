"""The supervisor's screen (issue 14, scope 6) driven by keys, offscreen, against a real station service.

A station made by the real CLI: a roster imported, batch V1 imported as ``sup`` (three ACR files: two from
the roster, one "not in roster"), closed by ``sup``; ``sup2`` verifies in a :class:`ui.verify.VerifyScreen`
on a :class:`~scanstation.service.core.StationService` in this process (LocalConnection).  Every action
goes through a key press: OK and next, rotate, rescan and delete with a reason, reorder, move to another
file, split, merge, re-index, the file's flags, approve — which stays refused until every page was shown.
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

from scanstation.config import load_config
from scanstation.errors import VerificationIncomplete
from scanstation.service.client import LocalConnection
from scanstation.service.core import StationService
from scanstation_tools.synth import PageSpec, render_acr_page

from .pagekit import acr_page_files
from .stationkit import PASSWORD, StationEnv, make_station

# sign-ins and unlocks of the services these tests run in this process at the test stations' argon2id cost
pytestmark = pytest.mark.usefixtures("cheap_argon2")

WAIT = 60_000
ROSTER = """Employee Code,Name (Hindi),Name (English),Rank,Unit
E1,राम कुमार,Ram Kumar,Constable,Test Unit
E2,सीता देवी,Sita Devi,Head Constable,Test Unit
E3,अनिल शर्मा,Anil Sharma,Sub-Inspector,Test Unit
"""


def _pages(tmp: Path, seed: int, n: int) -> list[str]:
    return acr_page_files(tmp, seed, n, prefix="s")


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> StationEnv:
    root = tmp_path_factory.mktemp("verify")
    st = make_station(root / "st", extra_config='\n[roster]\nperiods = ["2019-20", "2020-21"]\n')
    (root / "roster.csv").write_text(ROSTER, encoding="utf-8")
    st.run("roster", "import", str(root / "roster.csv"), check=True)
    st.run("import", "--batch", "V1", "--employee", "E1", "--period", "2019-20", *_pages(root, 1, 3), check=True)
    st.run("import", "--batch", "V1", "--employee", "E2", "--period", "2019-20", *_pages(root, 2, 2), check=True)
    st.run("import", "--batch", "V1", "--employee", "X9", "--period", "2020-21", "--not-in-roster",
           "joined last week", "--name", "New Person", *_pages(root, 3, 1), check=True)
    st.run("batch", "close", "--batch", "V1", check=True)
    return st


@pytest.fixture
def screen(station: StationEnv, qtbot: Any) -> Iterator[Any]:
    from ui.service_link import ServiceLink
    from ui.verify import VerifyScreen

    service = StationService(load_config(station.config))
    link = ServiceLink(LocalConnection(service), in_process=True)
    link.token = link.call("sign_in", name="sup2", password=PASSWORD)["token"]
    link.call("unlock", password=PASSWORD)
    widget = VerifyScreen(link)
    qtbot.addWidget(widget)
    widget.resize(1366, 700)
    widget.show()
    yield widget
    widget.cache.wait()
    from ui.qt import QThreadPool

    QThreadPool.globalInstance().waitForDone(30_000)
    link.close()


def key(qtbot: Any, widget: Any, k: Any, mods: Any = None) -> None:
    from ui.qt import Qt

    qtbot.keyClick(widget, k, mods if mods is not None else Qt.KeyboardModifier.NoModifier)


def settle(qtbot: Any, screen: Any) -> None:
    """Wait until the calls made so far were answered and the detail reloaded."""
    from ui.qt import QThreadPool

    def idle() -> bool:
        return QThreadPool.globalInstance().activeThreadCount() == 0 and not screen._detail_pending \
            and not screen._changes
    qtbot.waitUntil(idle, timeout=WAIT)
    screen.load_detail()
    qtbot.waitUntil(idle, timeout=WAIT)


def shown_full(screen: Any) -> bool:
    page = screen.view.page
    return page is not None and page.key[0] == "full" and page.key[2] == screen.seq


def page(screen: Any, seq: int) -> dict[str, Any]:
    return screen._pages_by_seq()[seq]


def test_every_action_by_key_and_approval_only_after_every_page_was_shown(screen: Any, qtbot: Any) -> None:
    from ui.qt import QApplication, Qt

    K, M = Qt.Key, Qt.KeyboardModifier
    screen.refresh()
    qtbot.waitUntil(lambda: screen.queue.rowCount() > 0, timeout=WAIT)
    assert screen.queue.item(0, 0).text() == "V1"
    key(qtbot, screen.queue, K.Key_Return)
    qtbot.waitUntil(lambda: bool(screen.detail), timeout=WAIT)
    assert screen.stack.currentWidget() is screen.batch_page
    assert screen.detail["total"] == 6 and screen.tree.topLevelItemCount() == 3
    assert not screen.approve_button.isEnabled()
    assert "pages seen 0 / 6" in screen.seen_label.text()
    first = screen.seq
    qtbot.waitUntil(lambda: shown_full(screen), timeout=WAIT)
    settle(qtbot, screen)
    assert page(screen, first)["seen_by_me"] and screen.detail["seen"] == 1

    # the help overlay lists the keys, in Hindi and English
    key(qtbot, screen, K.Key_F1)
    assert screen.help.isVisible()
    from ui.qt import QLabel

    help_text = " ".join(w.text() for w in screen.help.findChildren(QLabel))
    for words in ("OK and next page", "ठीक, अगला पृष्ठ", "rescan", "rotate left", "re-index", "approve", "Alt+↑"):
        assert words in help_text
    key(qtbot, screen, K.Key_Escape)
    assert not screen.help.isVisible() and screen.stack.currentWidget() is screen.batch_page

    # no clipboard: the OCR text cannot be selected or copied
    QApplication.clipboard().clear()
    assert screen.ocr.textInteractionFlags() == Qt.TextInteractionFlag.NoTextInteraction
    assert screen.ocr.contextMenuPolicy() == Qt.ContextMenuPolicy.NoContextMenu
    key(qtbot, screen.ocr, K.Key_A, M.ControlModifier)
    key(qtbot, screen.ocr, K.Key_C, M.ControlModifier)
    assert QApplication.clipboard().text() == ""

    # Enter: OK and next
    key(qtbot, screen, K.Key_Return)
    second = screen.seq
    assert second != first
    settle(qtbot, screen)
    assert page(screen, first)["verdict"] == "ok"

    # ] and [: exact quarter turns
    key(qtbot, screen, K.Key_BracketRight)
    settle(qtbot, screen)
    assert page(screen, second)["rotation"] == 90
    key(qtbot, screen, K.Key_BracketLeft)
    key(qtbot, screen, K.Key_BracketLeft)
    settle(qtbot, screen)
    assert page(screen, second)["rotation"] == 270
    qtbot.waitUntil(lambda: shown_full(screen) and screen.view.page.key[3] == 270, timeout=WAIT)

    # R: rescan, with a reason picked from the configured list (its number)
    key(qtbot, screen, K.Key_R)
    assert screen.reason_panel.isVisible() and screen.reason_panel.list.count() >= 5
    key(qtbot, screen.reason_panel.text, K.Key_1)
    key(qtbot, screen.reason_panel.text, K.Key_Return)
    settle(qtbot, screen)
    assert page(screen, second)["verdict"] == "rescan"
    assert page(screen, second)["reason"] == screen.reasons[0]
    assert any("rescan" in b for b in screen.detail["blockers"])

    # Delete: a reason is required; free text is accepted
    third = screen.seq
    key(qtbot, screen, K.Key_Delete)
    key(qtbot, screen.reason_panel.text, K.Key_Return)
    assert screen.reason_panel.isVisible() and "required" in screen.reason_panel.message.text()
    qtbot.keyClicks(screen.reason_panel.text, "ink blot, second copy")
    key(qtbot, screen.reason_panel.text, K.Key_Return)
    settle(qtbot, screen)
    assert page(screen, third)["deleted"] == "ink blot, second copy"
    assert screen.detail["total"] == 5
    # OK on a deleted page restores it
    screen.go_to(third)
    key(qtbot, screen, K.Key_Return)
    settle(qtbot, screen)
    assert page(screen, third)["deleted"] == "" and screen.detail["total"] == 6

    docs = [int(d["id"]) for d in screen.detail["documents"]]
    doc_a, doc_b, doc_c = docs

    def file_seqs(doc_id: int) -> list[int]:
        return [int(p["seq"]) for p in screen.detail["pages"] if p["document_id"] == doc_id
                and not p["replaced_by"]]

    # Alt+Up: reorder within the file
    a_pages = file_seqs(doc_a)
    screen.go_to(a_pages[2])
    key(qtbot, screen, K.Key_Up, M.AltModifier)
    settle(qtbot, screen)
    assert file_seqs(doc_a) == [a_pages[0], a_pages[2], a_pages[1]]
    key(qtbot, screen, K.Key_Down, M.AltModifier)
    settle(qtbot, screen)
    assert file_seqs(doc_a) == a_pages

    # Alt+PageDown: the page goes to the start of the next file; M: back to file 1 (chosen from the list)
    moving = a_pages[2]
    screen.go_to(moving)
    key(qtbot, screen, K.Key_PageDown, M.AltModifier)
    settle(qtbot, screen)
    assert file_seqs(doc_b)[0] == moving and moving not in file_seqs(doc_a)
    key(qtbot, screen, K.Key_M)
    assert screen.choice_panel.isVisible() and screen.choice_panel.list.count() == 3
    key(qtbot, screen.choice_panel.list, K.Key_1)
    key(qtbot, screen.choice_panel.list, K.Key_Return)
    settle(qtbot, screen)
    assert file_seqs(doc_a) == a_pages

    # a drop on the thumbnails asks the service to move (here: before the first page of file 1)
    screen.tree.move_requested.emit(a_pages[1], doc_a, a_pages[0])
    settle(qtbot, screen)
    assert file_seqs(doc_a) == [a_pages[1], a_pages[0], a_pages[2]]
    screen.tree.move_requested.emit(a_pages[1], doc_a, a_pages[2])
    settle(qtbot, screen)
    assert file_seqs(doc_a) == a_pages

    # S: split file 1 at its second page; PageUp/PageDown walk between files; J merges it back
    screen.go_to(a_pages[1])
    key(qtbot, screen, K.Key_S)
    settle(qtbot, screen)
    assert len(screen.detail["documents"]) == 4
    new_doc = int(screen.current_doc()["id"])
    assert new_doc not in docs and file_seqs(new_doc) == a_pages[1:]
    starts = screen._file_starts()  # the new file is read last: PageUp goes to the file before it
    assert starts[-1] == a_pages[1]
    key(qtbot, screen, K.Key_PageUp)
    assert screen.seq == starts[-2]
    key(qtbot, screen, K.Key_PageDown)
    assert screen.seq == a_pages[1]
    key(qtbot, screen, K.Key_Home)
    assert screen.seq == a_pages[0]
    key(qtbot, screen, K.Key_End)
    assert screen.seq == screen.order[-1]
    key(qtbot, screen, K.Key_J)  # merge it back: into file 1, picked from the list
    assert screen.choice_panel.isVisible() and screen.choice_panel.list.count() == 3
    key(qtbot, screen.choice_panel.list, K.Key_1)
    key(qtbot, screen.choice_panel.list, K.Key_Return)
    settle(qtbot, screen)
    assert [int(d["id"]) for d in screen.detail["documents"]] == docs
    assert file_seqs(doc_a) == a_pages

    # I: re-index file 2 (E2 -> E3, validated against the roster again); a code not in the roster is refused
    screen.go_to(file_seqs(doc_b)[0])
    key(qtbot, screen, K.Key_I)
    assert screen.index_panel.isVisible() and screen.index_panel.code.text() == "E2"
    screen.index_panel.code.setText("NOBODY")
    key(qtbot, screen.index_panel.code, K.Key_Return)
    qtbot.waitUntil(lambda: "NOBODY" in screen.message.text(), timeout=WAIT)
    key(qtbot, screen, K.Key_I)
    screen.index_panel.code.setText("E3")
    key(qtbot, screen.index_panel.period, K.Key_Return)
    settle(qtbot, screen)
    assert screen.current_doc()["employee_code"] == "E3"

    # F: accept the flags of the file not in the roster
    screen.go_to(file_seqs(doc_c)[0])
    assert any("not in roster" in screen.flags.item(r, 0).text() for r in range(screen.flags.rowCount()))
    key(qtbot, screen, K.Key_F)
    settle(qtbot, screen)
    assert screen.current_doc()["flag_verdicts"]["not_in_roster"]["verdict"] == "accepted"

    # every page gets a verdict without being shown (the service's own review op): approval still refused
    link = screen.link
    for p in screen.detail["pages"]:
        if not p["replaced_by"]:
            link.call("review", batch="V1", seq=int(p["seq"]), verdict="ok")
    settle(qtbot, screen)
    assert screen.detail["seen"] < screen.detail["total"]
    assert not screen.approve_button.isEnabled()
    assert any("not yet shown to sup2" in b for b in screen.detail["blockers"]), screen.detail["blockers"]
    with pytest.raises(VerificationIncomplete):
        link.call("approve", batch="V1")
    key(qtbot, screen, K.Key_A)
    assert "not yet" in screen.message.text()

    # Home, then → through every page: each is shown, so each is seen; then A approves
    key(qtbot, screen, K.Key_Home)
    for _ in range(len(screen.order)):
        qtbot.waitUntil(lambda: shown_full(screen), timeout=WAIT)
        key(qtbot, screen, K.Key_Right)
    settle(qtbot, screen)
    assert screen.detail["seen"] == screen.detail["total"] == 6, screen.detail["blockers"]

    def ready() -> bool:  # the turned page is read again by OCR before approval
        if not screen._detail_pending:
            screen.load_detail()
        return bool(screen.detail.get("can_approve"))
    qtbot.waitUntil(ready, timeout=WAIT * 3)
    assert screen.approve_button.isEnabled()
    key(qtbot, screen, K.Key_A)
    qtbot.waitUntil(lambda: screen.stack.currentWidget() is screen.queue_page, timeout=WAIT)
    assert "approved" in screen.queue_message.text()
    assert link.call("batch_detail", batch="V1")["state"] == "verified"


def test_zoom_and_pan_on_a_300_dpi_page(qtbot: Any) -> None:
    import io

    from ui.page_view import ACTUAL, DOUBLE, FIT_WIDTH, PageView, decode_page

    buf = io.BytesIO()
    render_acr_page(PageSpec(seed=7, page_no=1, dpi=300)).image.save(buf, format="PNG")
    view = PageView()
    qtbot.addWidget(view)
    view.resize(800, 600)
    view.show()
    page = decode_page(("full", "B", 1, 0, view.fit_width()), buf.getvalue(), view.fit_width(), keep_full=True)
    assert page.full is not None and page.full.width() >= 2400  # A4 at 300 dpi
    assert page.fitted.width() == view.fit_width()  # scaled off the UI thread, smooth transform
    view.show_page(page)
    assert view.item.pixmap().width() == view.fit_width() and view.transform().m11() == 1.0
    assert view.horizontalScrollBar().maximum() == 0  # fit-width: nothing to pan sideways
    view.set_zoom(ACTUAL)
    assert view.item.pixmap().width() == page.full.width() and view.transform().m11() == 1.0
    view.pan(300, 500)
    assert view.horizontalScrollBar().value() > 0 and view.verticalScrollBar().value() > 0
    view.set_zoom(DOUBLE)
    assert view.transform().m11() == 2.0
    view.set_zoom(FIT_WIDTH)
    assert view.item.pixmap().width() == view.fit_width()
    # a preview (no full image yet) at 100 % is scaled to the page's real size
    preview = decode_page(("preview", "B", 1, 0, 400), buf.getvalue(), 400, keep_full=False,
                          source_width=page.full.width())
    view.show_page(preview)
    view.set_zoom(ACTUAL)
    assert abs(view.transform().m11() * preview.fitted.width() - page.full.width()) < 1
    with pytest.raises(ValueError, match="not a readable PNG"):
        decode_page(("full", "B", 2, 0, 400), b"not a png", 400, keep_full=True)


def test_the_help_lists_every_action() -> None:
    from ui.verify import KEYMAP, help_rows

    actions = {a for _k, _m, a, _h, _e in KEYMAP}
    for needed in ("ok_next", "rescan", "delete", "rotate_left", "rotate_right", "next", "previous", "first",
                   "last", "next_file", "previous_file", "fit_width", "zoom_100", "zoom_200", "move_up",
                   "move_down", "move_to", "split", "merge", "reindex", "accept_flags", "approve", "return_batch",
                   "help"):
        assert needed in actions
    rows = dict(help_rows())
    assert rows["Enter"].startswith("ठीक") and rows["["].endswith("rotate left 90°")


def test_signal_emit_keeps_its_references() -> None:
    """PySide6 6.12.0 on Python 3.11 drops a reference to True on every SignalInstance.emit(): the kiosk
    emits on every service call and page paint, so a working day ended in a "bool_dealloc" abort.
    pyproject.toml excludes that version; this catches it if it comes back."""
    import sys

    from ui.qt import QObject, Signal

    class Relay(QObject):
        done = Signal(object)

    relay = Relay()
    relay.done.connect(lambda _v: None)
    before = sys.getrefcount(True)
    for i in range(200):
        relay.done.emit(i)
    assert sys.getrefcount(True) - before > -100


def test_flags_show_their_measured_values() -> None:
    from ui.verify import flag_rows

    page = {"flags": ["blank", "orientation_uncertain", "low_resolution"],
            "analysis": {"blank": {"blank": True, "ink_mm2": 0.4, "components": 2},
                         "orientation": {"rotation": 180, "confidence": 0.41}, "skew": 0.7,
                         "quality": [{"code": "low_resolution", "message_en": "about 150 dpi, below 200",
                                      "message_hi": "लगभग 150 dpi", "value": 150.0, "threshold": 200.0}]}}
    doc = {"flags": ["duplicate"], "not_in_roster": "joined last week",
           "flag_verdicts": {"duplicate": {"verdict": "accepted"}}}
    rows = {label: (value, message) for label, value, message in flag_rows(page, doc)}
    assert rows["खाली पृष्ठ / blank page"][0] == "ink 0.4 mm², 2 marks"
    assert rows["दिशा अनिश्चित / orientation uncertain"][0] == "confidence 0.41, turned 180°"
    assert rows["कम रिज़ॉल्यूशन / low resolution"] == ("150.0 (limit 200.0)", "लगभग 150 dpi / about 150 dpi, below 200")
    assert rows["तिरछापन / skew"][0] == "0.7° (corrected)"
    assert rows["दोहराव / duplicate ACR"][0] == "file: accepted"
    assert rows["रोस्टर में नहीं / not in roster"][0] == "file: no verdict yet — joined last week"


def test_every_page_quality_flag_has_a_name_on_the_screens() -> None:
    from ui.dashboard import FLAG_LABELS
    from ui.verify_side import FLAG_NAMES

    from .test_quality import CODES

    assert not CODES - set(FLAG_NAMES), sorted(CODES - set(FLAG_NAMES))
    assert not CODES - set(FLAG_LABELS), sorted(CODES - set(FLAG_LABELS))

"""The kiosk cannot leak a page and cannot be left (issue 17, scope 3).

* the watermark (station, person, time) is painted over every view of a page: the page view, the assembly
  tree's thumbnails, the operator's tiles; grabbed offscreen and read back with tesseract;
* no file dialog, print or clipboard in ``ui/``'s sources (their syntax trees), and the application-wide lock
  of :func:`ui.no_clipboard.lock_down` at work;
* the kiosk window refuses close, the close/quit keys and minimising, and ends only by ``end_session``;
* the UI under **cage** (wlroots' headless back end, Qt's wayland platform) started as the kiosk session
  starts it: kiosk-session, as an unprivileged account that cannot read the station's data but is in the
  socket's client group, execs cage with ``scanstation start`` (the console script) on a production station,
  a client of ``scanstation serve`` over its socket: full screen (the window's size is the output's, measured
  on grim's screenshot), still there after every way of closing it, the watermark on the compositor's output
  over a page, the idle lock, nothing written into the account's home, and SIGTERM ending the session
  cleanly with exit code 0.

Everything talks to a real station service; nothing is mocked.
"""

from __future__ import annotations

import ast
import dataclasses
import grp
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from scanstation.config import load_config
from scanstation.service.client import LocalConnection, RemoteConnection
from scanstation.service.core import StationService

from .stationkit import PASSWORD, REPO, StationEnv, make_station

# sign-ins and unlocks of the services these tests run in this process at the test stations' argon2id cost
pytestmark = pytest.mark.usefixtures("cheap_argon2")

STATION_ID = "KIOSK-7"  # what the service's status names, and the watermark must show
BATCH = "KIOSK-1"
WAIT = 30_000
UI = REPO / "ui"


# ---------------------------------------------------------------------------------------------- helpers
def white_page_png(width: int = 1240, height: int = 1754) -> bytes:
    """A page with nothing on it but a frame: whatever is not white on the screen over it was painted there."""
    import io

    from PIL import Image, ImageDraw

    image = Image.new("L", (width, height), 255)
    ImageDraw.Draw(image).rectangle((20, 20, width - 21, height - 21), outline=0, width=4)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def grabbed(widget: Any) -> Any:
    """The widget as it paints (its paint events, watermark included), as a Pillow RGB image."""
    from PIL import Image

    from ui.qt import QImage

    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    data = bytes(image.constBits())[: image.sizeInBytes()]
    return Image.frombuffer("RGB", (image.width(), image.height()), data, "raw", "RGB", image.bytesPerLine(), 1)


def watermark_pixels(image: Any) -> float:
    """The share of pixels in the watermark's colour (a reddish grey: red clearly above green and blue) —
    on a white page, a grey background or a white tile nothing else in the kiosk is that colour."""
    rgb = image.convert("RGB")
    count = sum(1 for r, g, b in rgb.getdata() if r - g > 12 and r - b > 12 and r < 250)
    return count / max(1, rgb.width * rgb.height)


def read_watermark(image: Any) -> str:
    """tesseract on the image turned so that the watermark's diagonal lines run level."""
    import pytesseract
    from PIL import Image

    from ui.watermark import ANGLE

    level = image.convert("L").rotate(-ANGLE, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    level = level.resize((level.width * 2, level.height * 2))
    return str(pytesseract.image_to_string(level, config="--psm 11"))


def ocr(path: Path) -> str:
    import pytesseract
    from PIL import Image

    with Image.open(path) as image:
        return str(pytesseract.image_to_string(image.convert("L")))


class Clock:
    """An injected wall clock for the watermark's minute."""

    def __init__(self, start: datetime) -> None:
        self.at = start
        self.started = time.monotonic()
        self.running = False

    def __call__(self) -> datetime:
        if self.running:
            return self.at + timedelta(seconds=time.monotonic() - self.started)
        return self.at


# ---------------------------------------------------------------------------------------------- the watermark
def test_the_page_view_paints_the_watermark_over_the_page_and_its_minute_moves_on(qtbot: Any) -> None:
    from ui.page_view import PageView, decode_page
    from ui.watermark import Watermark

    clock = Clock(datetime(2031, 7, 14, 9, 41, 59, 700_000))
    mark = Watermark(now=clock)
    mark.set_identity(STATION_ID, "sup2", "supervisor")
    view = PageView(mark)
    qtbot.addWidget(view)
    view.resize(700, 600)
    view.show()
    view.show_page(decode_page(("page",), white_page_png(), view.fit_width(), keep_full=True))
    qtbot.waitExposed(view)
    shot = grabbed(view)
    inner = shot.crop((40, 40, view.viewport().width() - 40, shot.height - 40))  # on the white page
    share = watermark_pixels(inner)
    assert 0.01 < share < 0.4, f"{share:.3f} of the page's pixels are the watermark's"
    text = read_watermark(inner)
    assert STATION_ID in text and "sup2 (supervisor)" in text and "2031-07-14 09:41" in text, text
    # at the next minute the view repaints with it, by itself (the watermark's own timer)
    clock.running = True
    qtbot.waitUntil(lambda: "09:42" in mark.text(), timeout=5000)
    qtbot.wait(100)
    assert "2031-07-14 09:42" in mark.text()
    assert grabbed(view).tobytes() != shot.tobytes()  # repainted with the new minute


def test_thumbnails_and_tiles_carry_the_watermark_and_a_drag_carries_no_picture(qtbot: Any) -> None:
    from ui.operator_tiles import THUMB_SIZE, tiles_view
    from ui.qt import QIcon, QImage, QListWidgetItem, QPixmap
    from ui.thumbnails import PAGE_MIME, ROLE_SEQ, AssemblyTree
    from ui.watermark import Watermark

    mark = Watermark()
    mark.set_identity(STATION_ID, "op", "operator")
    white = QImage(THUMB_SIZE, QImage.Format.Format_RGB888)
    white.fill(0xFFFFFF)

    tiles = tiles_view(mark)
    qtbot.addWidget(tiles)
    tiles.resize(600, 400)
    for seq in (1, 2, 3):
        tiles.addItem(QListWidgetItem(QIcon(QPixmap.fromImage(white)), f"{seq}"))
    tiles.show()
    qtbot.waitExposed(tiles)
    rect = tiles.visualItemRect(tiles.item(0))
    icon = grabbed(tiles.viewport()).crop((rect.x() + 30, rect.y() + 10, rect.x() + 30 + 100, rect.y() + 150))
    assert watermark_pixels(icon) > 0.01, "no watermark over the operator's tile"

    tree = AssemblyTree(mark)
    qtbot.addWidget(tree)
    tree.resize(300, 500)
    tree.populate({"documents": [{"id": 1, "seq": 1}],
                   "pages": [{"seq": s, "document_id": 1} for s in (1, 2)]})
    for seq in (1, 2):
        tree.set_thumbnail(seq, white)
    tree.show()
    qtbot.waitExposed(tree)
    assert watermark_pixels(grabbed(tree.viewport())) > 0.005, "no watermark over the verification thumbnails"
    item = tree._pages[1]
    assert item.data(0, ROLE_SEQ) == 1
    dragged = tree.mimeData([item])
    assert dragged.formats() == [PAGE_MIME] and bytes(dragged.data(PAGE_MIME).data()) == b"1"
    assert not dragged.hasImage()


# ------------------------------------------------------------------------------------ no way out in the sources
FORBIDDEN = {
    "QFileDialog": "a file dialog", "QPrinter": "printing", "QPrintDialog": "printing",
    "QPrintPreviewDialog": "printing", "QPrintPreviewWidget": "printing", "QPageSetupDialog": "printing",
    "QPrinterInfo": "printing", "QPdfWriter": "writing a PDF", "QDesktopServices": "opening other programs",
    "QProcess": "starting programs", "QClipboard": "the clipboard", "clipboard": "the clipboard",
}
FORBIDDEN_MODULES = {"PySide6.QtPrintSupport": "printing", "subprocess": "starting programs",
                     "webbrowser": "opening other programs", "pty": "a terminal"}
CLIPBOARD_ALLOWED = {"no_clipboard.py": {"QClipboard", "clipboard"}, "qt.py": {"QClipboard"}}


def forbidden_uses(source: str, filename: str) -> list[str]:
    """What a ui/ module's syntax tree names that the kiosk must not have (comments and text don't count)."""
    allowed = CLIPBOARD_ALLOWED.get(filename, set())
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        names: list[str] = []
        if isinstance(node, ast.Name):
            names = [node.id]
        elif isinstance(node, ast.Attribute):
            names = [node.attr]
        elif isinstance(node, ast.alias):
            names = [node.name.split(".")[-1], node.asname or ""]
            if node.name in FORBIDDEN_MODULES or node.name.split(".")[0] in FORBIDDEN_MODULES:
                found.append(f"{filename}:{getattr(node, 'lineno', '?')}: import {node.name} "
                             f"({FORBIDDEN_MODULES.get(node.name) or FORBIDDEN_MODULES[node.name.split('.')[0]]})")
        elif isinstance(node, ast.ImportFrom) and node.module and (
                node.module in FORBIDDEN_MODULES or node.module.split(".")[0] in ("subprocess", "pty")):
            found.append(f"{filename}:{node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                "system", "popen", "execv", "execvp", "execl", "spawnv", "startfile") and \
                isinstance(node.func.value, ast.Name) and node.func.value.id == "os":
            found.append(f"{filename}:{node.lineno}: os.{node.func.attr} (starting programs)")
        for name in names:
            if name in FORBIDDEN and name not in allowed:
                found.append(f"{filename}:{getattr(node, 'lineno', '?')}: {name} ({FORBIDDEN[name]})")
    return found


def test_no_file_dialog_print_clipboard_or_program_anywhere_in_the_ui() -> None:
    sources = sorted(UI.glob("*.py"))
    assert len(sources) > 20, sources
    found = [f for path in sources for f in forbidden_uses(path.read_text(encoding="utf-8"), path.name)]
    assert not found, "\n".join(found)


def test_the_source_check_finds_each_way_out() -> None:
    planted = {
        "QFileDialog.getOpenFileName(None)": "file dialog",
        "from PySide6.QtPrintSupport import QPrintDialog": "printing",
        "QApplication.clipboard().setText('x')": "clipboard",
        "app.clipboard()": "clipboard",
        "from .qt import QClipboard": "clipboard",
        "import subprocess": "starting programs",
        "os.system('sh')": "starting programs",
        "QDesktopServices.openUrl(url)": "other programs",
    }
    for line, what in planted.items():
        found = forbidden_uses(line, "screen.py")
        assert found and what in " ".join(found), (line, found)
    assert forbidden_uses("app.clipboard().clear()", "no_clipboard.py") == []
    assert forbidden_uses("app.clipboard().clear()", "qt.py")  # the shim may import it, not use it


# ---------------------------------------------------------------------------------------------- the window
@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> StationEnv:
    """A station named KIOSK-7 with one closed batch that ``sup`` scanned (so ``sup2`` may verify it)."""
    st = make_station(tmp_path_factory.mktemp("kiosk") / "st", init_args=("--station-id", STATION_ID),
                      extra_config="enabled = false\n")  # [ocr]: the page needs no reading here
    page = st.root / "page.png"
    page.write_bytes(white_page_png(827, 1169))
    st.run("import", "--batch", BATCH, str(page), check=True)
    st.run("batch", "close", "--batch", BATCH, check=True)
    return st


@pytest.fixture
def window(station: StationEnv, qtbot: Any) -> Iterator[Any]:
    """A kiosk window on an in-process service, shown as the kiosk (show_kiosk), ended at the test's end."""
    from ui.service_link import ServiceLink
    from ui.shell import StationWindow

    config = load_config(station.config)
    w = StationWindow(config, link=ServiceLink(LocalConnection(StationService(config)), in_process=True))
    w.show_kiosk()
    qtbot.waitExposed(w)
    yield w
    w.end_session()


def test_the_kiosk_window_cannot_be_closed_minimised_or_quit(window: Any, qtbot: Any) -> None:
    from PySide6.QtTest import QTest

    from ui.qt import QApplication, QCloseEvent, QKeySequence, QShortcut, Qt

    screen = QApplication.primaryScreen().geometry()

    def covers() -> bool:  # offscreen's screen is 800x800, less than the work screen's minimum width: at least
        g = window.geometry()  # the whole screen (under cage below: exactly the output)
        return g.topLeft() == screen.topLeft() and g.width() >= screen.width() and g.height() >= screen.height()

    assert window.isFullScreen() and covers()
    hits: list[str] = []
    shortcuts = []
    for keys in ("Alt+F4", "Ctrl+Q", "Ctrl+W"):  # as if some widget bound them: they must never fire
        sc = QShortcut(QKeySequence(keys), window)
        sc.setContext(Qt.ShortcutContext.ApplicationShortcut)
        sc.activated.connect(lambda k=keys: hits.append(k))
        shortcuts.append(sc)
    control = QShortcut(QKeySequence("Ctrl+E"), window)  # a key that is not a way out does reach shortcuts
    control.setContext(Qt.ShortcutContext.ApplicationShortcut)
    control.activated.connect(lambda: hits.append("Ctrl+E"))

    assert window.close() is False  # close() from the code
    QApplication.sendEvent(window.windowHandle(), QCloseEvent())  # what the compositor's close request delivers
    handle = window.windowHandle()
    Mod = Qt.KeyboardModifier
    for key, mods in ((Qt.Key.Key_F4, Mod.AltModifier), (Qt.Key.Key_Q, Mod.ControlModifier),
                      (Qt.Key.Key_W, Mod.ControlModifier), (Qt.Key.Key_E, Mod.ControlModifier)):
        QTest.keyClick(handle, key, mods)  # through the window system's key path, shortcuts included
    window.showMinimized()
    qtbot.waitUntil(lambda: window.isFullScreen() and not window.isMinimized(), timeout=5000)
    qtbot.wait(100)
    assert window.isVisible() and covers()
    assert hits == ["Ctrl+E"], hits
    window.end_session()  # the one way: the application ends (SIGTERM at shutdown)
    assert not window.isVisible()
    assert window.link.token is None


def test_no_clipboard_no_context_menu_no_middle_click_paste(window: Any, qtbot: Any) -> None:
    from PySide6.QtTest import QTest

    from ui.qt import QApplication, QKeySequence, QPoint, Qt

    clipboard = QApplication.clipboard()
    field = window.sign_in.name  # a field no_clipboard() was never applied to: the application lock covers it
    field.setText("asha verma EMP-1001")
    field.setFocus()
    field.selectAll()
    QTest.keySequence(field, QKeySequence(QKeySequence.StandardKey.Copy))
    QTest.keySequence(field, QKeySequence(QKeySequence.StandardKey.Cut))
    qtbot.wait(50)
    assert clipboard.text() == "" and field.text() == "asha verma EMP-1001"
    clipboard.setText("pasted from elsewhere")  # however text lands there, it is wiped at once
    qtbot.waitUntil(lambda: clipboard.text() == "", timeout=2000)
    field.clear()
    QTest.keySequence(field, QKeySequence(QKeySequence.StandardKey.Paste))
    QTest.mouseClick(field, Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier, QPoint(5, 5))
    assert field.text() == ""
    from PySide6.QtGui import QContextMenuEvent

    QApplication.sendEvent(field, QContextMenuEvent(QContextMenuEvent.Reason.Mouse, QPoint(5, 5)))
    qtbot.wait(50)
    assert QApplication.activePopupWidget() is None  # QLineEdit's own menu (Copy, Paste, ...) never opened
    window.end_session()
    clipboard.setText("after the kiosk")  # the lock goes with the window (tests share the process)
    qtbot.wait(50)
    assert clipboard.text() == "after the kiosk"
    clipboard.clear()


def test_the_watermark_names_the_station_and_person_the_service_reports(window: Any, qtbot: Any) -> None:
    window.sign_in.name.setText("sup2")
    window.sign_in.password.setText(PASSWORD)
    window.sign_in.button.click()
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.unlock, timeout=WAIT)  # locked every morning
    window.unlock.password.setText(PASSWORD)
    window.unlock.button.click()
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.work, timeout=WAIT)
    status = window.link.call("status")
    assert status["station"] == STATION_ID
    assert window.watermark.text().startswith(f"ScanStation {STATION_ID} · sup2 (supervisor) · ")
    # the rest of the work screen carries it too (fainter): the header and the batch list, no page there
    qtbot.wait(200)
    assert watermark_pixels(grabbed(window)) > 0.003
    window.tabs.setCurrentWidget(window.verify)
    screen = window.verify
    qtbot.waitUntil(lambda: any(r.get("name") == BATCH for r in getattr(screen, "queue_rows", [])), timeout=WAIT)
    screen.open_batch(BATCH)
    qtbot.waitUntil(lambda: screen.view.page is not None and screen.view.page.full is not None, timeout=WAIT)
    qtbot.wait(200)
    assert watermark_pixels(grabbed(screen.view.viewport())) > 0.01
    window.sign_out_button.click()
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.sign_in, timeout=WAIT)
    assert "sup2" not in window.watermark.text()  # nobody's name stays once they are gone
    qtbot.wait(200)
    assert watermark_pixels(grabbed(window)) == 0  # and the sign-in screen has no watermark (nobody to name)


def test_a_tripped_device_guard_clears_the_screen_and_shows_its_notice(window: Any, qtbot: Any) -> None:
    """The service's own device guard (scanstation/guard/) fed one udev event of a USB stick, as its monitor
    would: the station locks and every session ends; the kiosk leaves the page within its poll, and the
    next person signed in gets the full-screen notice; a supervisor's unlock clears it."""
    from scanstation.guard import DeviceGuard
    from ui.guard_notice import GUARD_TITLE
    from ui.shell import GUARD_POLL_MS

    service = window.link.connection.service
    guard = DeviceGuard(service)
    service.guard = guard
    window.sign_in.name.setText("sup2")
    window.sign_in.password.setText(PASSWORD)
    window.sign_in.button.click()
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.unlock, timeout=WAIT)
    window.unlock.password.setText(PASSWORD)
    window.unlock.button.click()
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.work, timeout=WAIT)
    why = guard.handle("add", "/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0", "usb", "usb_interface",
                       {"INTERFACE": "8/6/80", "PRODUCT": "781/5567/100", "ID_VENDOR": "SanDisk",
                        "ID_MODEL": "Cruzer Blade"})
    assert why and "mass storage" in why
    started = time.monotonic()
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.sign_in, timeout=GUARD_POLL_MS + WAIT)
    assert time.monotonic() - started < GUARD_POLL_MS / 1000 + 5  # by the poll, not by someone's next key
    window.sign_in.name.setText("sup2")
    window.sign_in.password.setText(PASSWORD)
    window.sign_in.button.click()
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.guard_notice, timeout=WAIT)
    assert window.guard_notice.title.text() == GUARD_TITLE
    assert "USB mass storage (class 08)" in window.guard_notice.devices.text()
    assert "0781:5567" in window.guard_notice.devices.text()
    assert window.guard_notice.geometry() == window.stack.geometry()  # the whole window, nothing else on it
    window.guard_notice.go_button.click()  # a supervisor: on to the unlock, which clears the trip
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.unlock, timeout=WAIT)
    qtbot.wait(1100)  # the ended session counted nothing, but be kind to the sign-in throttle
    window.unlock.password.setText(PASSWORD)
    window.unlock.button.click()
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.work, timeout=WAIT)
    assert guard.state()["state"] != "tripped"
    qtbot.wait(GUARD_POLL_MS + 500)
    assert window.stack.currentWidget() is window.work  # cleared: the poll leaves the work alone


# ---------------------------------------------------------------------------------------------- under cage
# The kiosk is started as its session starts it: kiosk-session (the installed script itself) runs as the
# kiosk's unprivileged account and execs cage with `scanstation start`, the console script.  Checks that need
# the window itself (its geometry, a close() from code, keys through the window system, the idle lock) run
# inside that process: Python's site module imports a `sitecustomize` from PYTHONPATH at start-up (nothing in
# ScanStation knows of it), whose thread waits for `scanstation start`'s QApplication and then posts one event
# to the UI thread that runs the checks there, each written as one JSON line to report.jsonl; grim (a client of
# the same compositor) takes the screenshots.  After "ready" it returns to the application's own event loop,
# which runs until the test's SIGTERM ends it.  (cage 0.1.4 offers no virtual keyboard or pointer protocol,
# so nothing outside the process could type into the window.)
PROBE = r'''
import json, os, sys, threading, time
from pathlib import Path

_keep = []


def _say(event, **data):
    with (Path(os.environ["KIOSK_PROBE_OUT"]) / "report.jsonl").open("a") as f:
        f.write(json.dumps({"event": event, **data}) + "\n")


def _attach():
    app = None
    while app is None:  # until `scanstation start` has made its QApplication
        widgets = sys.modules.get("PySide6.QtWidgets")
        try:
            app = widgets.QApplication.instance() if widgets is not None else None
        except AttributeError:  # the module is still being imported
            app = None
        time.sleep(0.05)
    from PySide6.QtCore import QCoreApplication, QEvent, QObject

    class Kick(QObject):
        def event(self, e):
            if e.type() == QEvent.Type.User:
                try:
                    _drive(app)
                except SystemExit:
                    raise
                except BaseException as err:
                    _say("timeout", what=f"the probe failed: {err!r}")
                return True
            return super().event(e)

    kick = Kick()
    kick.moveToThread(app.thread())  # its events are delivered on the UI thread
    _keep.append(kick)
    QCoreApplication.postEvent(kick, QEvent(QEvent.Type.User))


def _drive(app):
    import subprocess

    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication
    from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
    from PySide6.QtCore import QPoint, Qt

    out = Path(os.environ["KIOSK_PROBE_OUT"])
    say = _say

    def pump(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)

    def until(cond, what, timeout=60):
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end:
                say("timeout", what=what)
                raise RuntimeError(what)
            pump(0.05)

    def grim(name):
        subprocess.run(["grim", str(out / name)], check=True, timeout=30)

    def size(r):
        return [r.width(), r.height()]

    def the_window():
        found = [w for w in app.topLevelWidgets() if type(w).__name__ == "StationWindow"]
        return found[0] if found else None

    until(lambda: the_window() is not None, "the kiosk window")
    window = the_window()
    try:
        (Path(os.environ["KIOSK_DATA_DIR"]) / "station.pub").exists()
        data = "readable"
    except PermissionError:
        data = "PermissionError"
    say("started", pid=os.getpid(), uid=os.getuid(), gid=os.getgid(), groups=sorted(os.getgroups()),
        argv=sys.argv, platform=app.platformName(), in_process=window.link.in_process, data_dir=data,
        env={k: os.environ.get(k) for k in ("HOME", "XDG_RUNTIME_DIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME",
                                              "XDG_DATA_HOME", "XDG_STATE_HOME", "QT_QPA_PLATFORM",
                                              "QT_WAYLAND_DISABLE_WINDOWDECORATION", "SCANSTATION_CONFIG")})
    # however the application's loop ends (SIGTERM below), the window's session was signed out first
    app.aboutToQuit.connect(lambda: say("ended", visible=window.isVisible(), signed_out=window.link.token is None))

    until(lambda: window.isVisible() and window.windowHandle() is not None and window.windowHandle().isExposed(),
          "the window on the screen")
    pump(1.0)
    say("shown", screen=size(app.primaryScreen().geometry()), window=size(window.geometry()),
        fullscreen=window.isFullScreen(), state=int(window.windowState().value))
    grim("sign-in.png")

    hits = []
    keep = []
    for keys in ("Alt+F4", "Ctrl+Q", "Ctrl+W"):
        sc = QShortcut(QKeySequence(keys), window)
        sc.setContext(Qt.ShortcutContext.ApplicationShortcut)
        sc.activated.connect(lambda k=keys: hits.append(k))
        keep.append(sc)
    closed = window.close()
    QApplication.sendEvent(window.windowHandle(), QCloseEvent())
    M = Qt.KeyboardModifier
    for key, mods in ((Qt.Key.Key_F4, M.AltModifier), (Qt.Key.Key_Q, M.ControlModifier),
                      (Qt.Key.Key_W, M.ControlModifier)):
        QTest.keyClick(window.windowHandle(), key, mods)
    window.showMinimized()
    pump(1.5)
    say("after-close", close_returned=closed, visible=window.isVisible(), fullscreen=window.isFullScreen(),
        minimized=window.isMinimized(), hits=hits, window=size(window.geometry()),
        state=int(window.windowState().value))
    grim("after-close.png")
    for sc in keep:
        sc.setEnabled(False)

    window.sign_in.name.setText("sup2")
    window.sign_in.password.setText(os.environ["KIOSK_PASSWORD"])
    window.sign_in.button.click()
    until(lambda: window.stack.currentWidget() is window.work, "the work screen")
    window.tabs.setCurrentWidget(window.verify)
    screen = window.verify
    until(lambda: any(r.get("name") == os.environ["KIOSK_BATCH"] for r in getattr(screen, "queue_rows", [])),
          "the queue")
    screen.open_batch(os.environ["KIOSK_BATCH"])
    until(lambda: screen.view.page is not None and screen.view.page.full is not None, "the page")
    pump(1.0)
    viewport = screen.view.viewport()
    corner = viewport.mapTo(window, QPoint(0, 0))
    say("page", rect=[corner.x(), corner.y(), viewport.width(), viewport.height()], text=window.watermark.text())
    grim("verify.png")

    window.idle_ms = 800  # the configuration's idle time is minutes (and the service's too): a short one
    window.idle_timer.start(window.idle_ms)
    started = time.monotonic()
    until(lambda: window.stack.currentWidget() is window.lock_screen, "the idle lock", timeout=30)
    say("locked", after_s=round(time.monotonic() - started, 2))
    pump(0.8)
    grim("lock.png")
    window.idle_ms = 600_000
    window.lock_screen.password.setText(os.environ["KIOSK_PASSWORD"])
    window.lock_screen.button.click()
    until(lambda: window.stack.currentWidget() is window.work, "the resumed session")
    say("ready", token=window.link.token is not None)


if os.environ.get("KIOSK_PROBE_OUT"):
    threading.Thread(target=_attach, daemon=True, name="kiosk-probe").start()
'''


def _kiosk_user() -> tuple[list[str], int, int]:
    """How to run as the kiosk's unprivileged account: cage refuses to run as root (it drops privileges and
    checks it cannot regain them), and the account must not be able to read the station's data.  As root:
    nobody, whose only group (nogroup) is made the socket's client group below, as the kiosk's only group is
    scanstation-kiosk on a station.  Otherwise ourselves (then the data directory is ours: readable)."""
    if os.geteuid() != 0:
        return [], os.getuid(), os.getgid()
    if shutil.which("setpriv") is None:
        pytest.skip("running as root and setpriv (util-linux) is missing: cage refuses to run as root")
    uid, gid = 65534, 65534
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups"], uid, gid


def _python_for(become: list[str]) -> tuple[str, list[str]]:
    """A Python the kiosk's user can run, and the paths it needs: this one when it may, else the system's
    (of the same version) with this environment's packages on its path (e.g. a Python under /root, 0700).
    Production's is /opt/scanstation/venv, built from that same /usr/bin/python3."""
    probe = [*become, "sh", "-c", 'exec "$0" -c pass', sys.executable]  # as cage will: exec'd by a child
    if not become or subprocess.run(probe, capture_output=True, timeout=60, check=False).returncode == 0:
        return sys.executable, []
    import sysconfig

    system = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    if not os.access(system, os.X_OK):
        pytest.skip(f"the kiosk's user cannot run {sys.executable}, and there is no {system}")
    paths = sysconfig.get_paths()
    return system, sorted({paths["purelib"], paths["platlib"]})


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory the kiosk's user may read (pytest's own are 0700 and root's)."""
    path = Path(tempfile.mkdtemp(prefix="scanstation-kiosk-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_the_kiosk_under_cage(station: StationEnv, public_dir: Path) -> None:
    for tool in ("cage", "grim"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian packages cage and grim; installer/setup.sh --dev)")
    import PySide6

    plugin = Path(PySide6.__file__).resolve().parent / "Qt" / "plugins" / "platforms" / "libqwayland.so"
    if shutil.which("ldd") and plugin.exists():
        links = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, timeout=60, check=False).stdout
        missing = sorted({line.split("=>")[0].strip() for line in links.splitlines() if "not found" in line})
        assert not missing, f"Qt's wayland plugin cannot load: {missing} missing (Debian: libwayland-cursor0 ...)"
    start = Path(sys.executable).parent / "scanstation"  # the console script `pip install` made
    if not start.exists():
        pytest.skip(f"{start}: no scanstation console script in this environment")
    become, uid, gid = _kiosk_user()
    python, site = _python_for(become)
    run_dir, shots, home, xdg, bin_dir, probe = (public_dir / n for n in ("run", "shots", "home", "xdg", "bin",
                                                                          "probe"))
    for d in (run_dir, shots, home, xdg, bin_dir, probe):
        d.mkdir(mode=0o755)
    # the kiosk's home is writable, so that anything written there would show (kiosk-session sends the caches
    # and the rest to the runtime directory); the runtime directory is the account's, 0700, as logind's is
    for d in (shots, home, xdg):
        os.chown(d, uid, gid)
    xdg.chmod(0o700)
    (probe / "sitecustomize.py").write_text(PROBE)
    (probe / "sitecustomize.py").chmod(0o644)
    # the station's configuration as the kiosk reads it: the socket in a directory it may reach (as
    # /run/scanstation), its group allowed to connect (as scanstation-kiosk).  The station is a production
    # one (make_station's default), so `start` neither offers the demo nor may run the service itself.
    config = public_dir / "station.toml"
    config.write_text(station.config.read_text() + f'\n[service]\nsocket = "{run_dir / "station.sock"}"\n'
                      f'client_group = "{grp.getgrgid(gid).gr_name}"\n')
    config.chmod(0o644)
    assert load_config(config).station.mode == "production"
    # the data directory is the service's (0700; here root's, under pytest's 0700 directories)
    assert station.data_dir.stat().st_mode & 0o077 == 0 and station.data_dir.stat().st_uid != uid
    served = dataclasses.replace(station, config=config, env={**station.env, "SCANSTATION_CONFIG": str(config)})
    exit_file = shots / "exit-code"
    # kiosk-session ends in `exec cage -d -- /usr/bin/scanstation start`; this cage, first on PATH, runs the
    # real one with two differences: the output turned by 180° (-r -r; grim turns its picture back upright)
    # and this environment's console script in place of the installed /usr/bin/scanstation, its exit code kept
    # (cage 0.1.4 does not pass it on).  Unturned, wlroots 0.15's scene tries to scan the full-screen window's
    # buffer out directly; the headless back end refuses that ("Basic output test failed for HEADLESS-1") and
    # the output keeps its first frame.  A turned output composites every frame.  (A station's DRM output falls
    # back to compositing by itself.)
    import shlex

    cage_shim = bin_dir / "cage"
    cage_shim.write_text(
        "#!/bin/sh\n"
        '[ "$*" = "-d -- /usr/bin/scanstation start" ] || { echo "kiosk-session ran: cage $*" >&2; exit 97; }\n'
        f"exec {shutil.which('cage')} -d -r -r -- sh -c '\"$@\"; echo \"$?\" > \"$0\"' "
        f"{shlex.quote(str(exit_file))} {shlex.quote(python)} {shlex.quote(str(start))} start\n")
    cage_shim.chmod(0o755)
    # what systemd and pam_systemd give the session (scanstation-kiosk.service); kiosk-session adds the rest
    env = {"PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}", "HOME": str(home),
           "XDG_RUNTIME_DIR": str(xdg), "LANG": "C.UTF-8", "SCANSTATION_CONFIG": str(config),
           "SCANSTATION_SOCKET": str(run_dir / "station.sock"),
           # the headless back end and the pixman renderer: no display, no GPU here
           "WLR_BACKENDS": "headless", "WLR_RENDERER": "pixman",
           # this environment's packages for the system's Python, and the probe (sitecustomize)
           "PYTHONPATH": os.pathsep.join([str(probe), str(REPO), *site]), "PYTHONDONTWRITEBYTECODE": "1",
           "KIOSK_PROBE_OUT": str(shots), "KIOSK_DATA_DIR": str(station.data_dir),
           "KIOSK_PASSWORD": PASSWORD, "KIOSK_BATCH": BATCH}
    report = shots / "report.jsonl"

    def events() -> dict[str, dict[str, Any]]:
        if not report.exists():
            return {}
        return {e["event"]: e for e in map(json.loads, report.read_text().splitlines())}

    with served.serve(unlock_as="head"):
        log = public_dir / "cage.log"
        with log.open("wb") as out:
            cage = subprocess.Popen([*become, str(SESSION)], env=env, cwd=str(public_dir), stdout=out,
                                    stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 150
            while "ready" not in events():
                seen = events()
                assert "timeout" not in seen, f"{seen['timeout']}; {log.read_text(errors='replace')[-3000:]}"
                assert cage.poll() is None, f"cage exited {cage.returncode}: {log.read_text(errors='replace')[-3000:]}"
                assert time.monotonic() < deadline, f"{list(seen)}; {log.read_text(errors='replace')[-3000:]}"
                time.sleep(0.2)
            os.kill(int(events()["started"]["pid"]), signal.SIGTERM)  # as systemd stops the kiosk
            cage.wait(timeout=60)
        finally:
            if cage.poll() is None:
                cage.kill()
                cage.wait(timeout=10)
        seen = events()
        # SIGTERM: the session was signed out in the service, and the process ended with 0
        admin = RemoteConnection(load_config(config).socket_path)
        admin.token = admin.call("sign_in", name="admin", password=PASSWORD)["token"]
        trail = admin.call("audit_show")
        admin.close()
    cage_log = log.read_text(errors="replace")
    keep = os.environ.get("SCANSTATION_KIOSK_SHOTS")  # to look at them: a directory to copy the screenshots to
    if keep:
        shutil.copytree(shots, keep, dirs_exist_ok=True)
    from PIL import Image

    started, shown, after = seen["started"], seen["shown"], seen["after-close"]
    # the console script, as the unprivileged account, on Wayland, a client of the service over its socket
    assert started["argv"] == [str(start), "start"], started
    assert started["platform"] == "wayland" and started["uid"] == uid and started["gid"] == gid, started
    assert not started["in_process"], started
    if become:  # it could not read the station's data, and `start` went on to the window all the same
        assert started["data_dir"] == "PermissionError" and started["groups"] in ([], [gid]), started
    # kiosk-session's environment reached the UI: nothing of the account's written outside the runtime directory
    runtime = started["env"]["XDG_RUNTIME_DIR"]
    assert runtime == str(xdg) and started["env"]["QT_QPA_PLATFORM"] == "wayland", started["env"]
    for name in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME"):
        assert (started["env"][name] or "").startswith(runtime + "/"), (name, started["env"])
    assert sorted(p.relative_to(home).as_posix() for p in home.rglob("*")) == [], "the kiosk wrote into its home"
    # full screen: the window is the output's size, as Qt and as the compositor's own picture say
    with Image.open(shots / "sign-in.png") as image:
        output = list(image.size)
    # (cage reports the window maximised, not "full screen": it sizes every window to the output itself)
    assert shown["screen"] == output and shown["window"] == output, (shown, output)
    # every way of closing it: still there, still full screen, the compositor still shows the sign-in screen
    assert after["close_returned"] is False and after["visible"], after
    assert not after["minimized"] and after["hits"] == [] and after["window"] == output, after
    assert "Sign in" in ocr(shots / "after-close.png")
    # the watermark over the page, on the compositor's output
    x, y, w, h = seen["page"]["rect"]
    with Image.open(shots / "verify.png") as image:
        page = image.convert("RGB").crop((x + 30, y + 30, x + w - 40, y + h - 30))
    assert watermark_pixels(page) > 0.01, seen["page"]
    text = read_watermark(page)
    assert STATION_ID in text or "sup2 (supervisor)" in text, text
    # the idle lock
    assert seen["locked"]["after_s"] < 10, seen["locked"]
    assert "Screen locked" in ocr(shots / "lock.png")
    # SIGTERM: signed out first, then `scanstation start` exited 0
    assert seen.get("ended", {}).get("signed_out"), (seen.get("ended"), cage_log[-2000:])
    assert exit_file.read_text().strip() == "0", cage_log[-2000:]
    assert any(e["action"] == "signout" and e["actor"] == "sup2" for e in trail)


# ---------------------------------------------------------------------------------------------- the session's files
SYSTEM = REPO / "installer" / "system"
KIOSK_UNIT = "scanstation-kiosk.service"
SESSION = SYSTEM / "opt" / "scanstation" / "libexec" / "kiosk-session"


def _unit_settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_the_kiosk_unit_is_cages_login_session_on_tty1_and_verifies() -> None:
    unit = _unit_settings((SYSTEM / "lib" / "systemd" / "system" / KIOSK_UNIT).read_text(encoding="utf-8"))
    expected = {"User": "kiosk", "PAMName": "login", "TTYPath": "/dev/tty1", "StandardInput": "tty",
                "Restart": "always", "UtmpIdentifier": "tty1", "ExecStart": "/opt/scanstation/libexec/kiosk-session"}
    for key, value in expected.items():
        assert unit.get(key) == [value], (key, unit.get(key))
    assert "getty@tty1.service" in " ".join(unit["Conflicts"])
    after = " ".join(unit["After"]).split()
    assert "scanstation.service" in after and "systemd-user-sessions.service" in after
    checks = pytest.importorskip("scanstation.lockdown.checks", reason="the lockdown checks (helper C) are absent")
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    problems = checks.check_units_verify(SYSTEM, [KIOSK_UNIT], provided=["/usr/bin/scanstation", "/usr/bin/cage"])
    assert not problems, "\n".join(map(str, problems))


def test_kiosk_session_starts_cage_without_vt_switching_on_wayland(public_dir: Path) -> None:
    """The script itself, run with a recording ``cage`` first on PATH (the real /usr/bin/scanstation it
    names exists only on an installed station; test_the_kiosk_under_cage runs the real cage)."""
    assert os.access(SESSION, os.X_OK), f"{SESSION} must be executable (the package installs it 0755)"
    assert subprocess.run(["sh", "-n", str(SESSION)], check=False).returncode == 0
    bin_dir = public_dir / "bin"
    bin_dir.mkdir()
    record = public_dir / "cage.txt"
    fake = bin_dir / "cage"
    fake.write_text(f'#!/bin/sh\n{{ echo "args $*"; env; }} > "{record}"\n')
    fake.chmod(0o755)
    import socket as sock

    listening = sock.socket(sock.AF_UNIX, sock.SOCK_STREAM)
    listening.bind(str(public_dir / "station.sock"))  # the service's socket is there: no wait
    try:
        env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "SCANSTATION_SOCKET": str(public_dir / "station.sock")}
        done = subprocess.run([str(SESSION)], env=env, capture_output=True, text=True, timeout=30, check=False)
    finally:
        listening.close()
    assert done.returncode == 0, done.stderr
    lines = record.read_text().splitlines()
    assert lines[0] == "args -d -- /usr/bin/scanstation start", lines[0]  # no -s: no VT switching
    seen = dict(line.split("=", 1) for line in lines[1:] if "=" in line)
    assert seen["QT_QPA_PLATFORM"] == "wayland" and seen["QT_WAYLAND_DISABLE_WINDOWDECORATION"] == "1"
    assert seen["SCANSTATION_CONFIG"] == "/etc/scanstation/station.toml"
    runtime = Path(seen["XDG_RUNTIME_DIR"])  # made by the script: none was given
    assert runtime.is_dir() and runtime.stat().st_uid == os.getuid() and runtime.stat().st_mode & 0o077 == 0
    # the caches (fontconfig, Qt, Mesa), configuration, data and state of the session go under it, not home
    for name in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME"):
        where = Path(seen[name])
        assert where.parent == runtime and where.is_dir() and where.stat().st_mode & 0o077 == 0, (name, where)
    shutil.rmtree(runtime)

"""Qt's xcb platform plugin loads: `scanstation start` on a real X display must not abort with "Could not
load the Qt platform plugin xcb" (issue 13, item 8).  installer/setup.sh installs the libraries the plugin
links (libxcb-icccm4, libxcb-keysyms1, libxcb-cursor0 ...); these tests catch one going missing.

The other UI tests run offscreen, which needs none of them; here Qt runs on a real (virtual) X server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PySide6 = pytest.importorskip("PySide6")
QT_DIR = Path(PySide6.__file__).resolve().parent / "Qt"
XCB_BINARIES = [
    QT_DIR / "plugins" / "platforms" / "libqxcb.so",
    QT_DIR / "lib" / "libQt6XcbQpa.so.6",
    *sorted((QT_DIR / "plugins" / "xcbglintegrations").glob("*.so")),
]
WIDTH, HEIGHT = 1366, 768  # the kiosk screen of the acceptance check


def test_every_library_of_the_xcb_plugin_is_installed() -> None:
    if shutil.which("ldd") is None:
        pytest.skip("ldd is not installed")
    present = [p for p in XCB_BINARIES if p.exists()]
    if not present:
        pytest.skip(f"this PySide6 has no xcb plugin under {QT_DIR}")
    out = subprocess.run(["ldd", *map(str, present)], capture_output=True, text=True, timeout=60,
                         check=False).stdout
    missing = sorted({line.split("=>")[0].strip() for line in out.splitlines() if "not found" in line})
    assert not missing, f"libraries of Qt's xcb plugin missing (add their packages to installer/setup.sh): {missing}"


def _setup_packages() -> set[str]:
    text = (Path(__file__).resolve().parent.parent / "installer" / "setup.sh").read_text(encoding="utf-8")
    body = text.split("PKGS=(", 1)[1].split(")", 1)[0]
    return {word for line in body.splitlines() for word in line.split("#", 1)[0].split()}


def test_setup_sh_names_the_package_of_every_x_library_the_plugin_links() -> None:
    """Removing one from setup.sh must fail here, even on a machine that happens to have it installed."""
    if shutil.which("ldd") is None or shutil.which("dpkg") is None:
        pytest.skip("needs ldd and dpkg (Debian)")
    present = [p for p in XCB_BINARIES if p.exists()]
    if not present:
        pytest.skip(f"this PySide6 has no xcb plugin under {QT_DIR}")
    out = subprocess.run(["ldd", *map(str, present)], capture_output=True, text=True, timeout=60,
                         check=False).stdout
    x_libs = sorted({line.split("=>")[0].strip() for line in out.splitlines()
                     if line.strip().startswith(("libxcb", "libX11-xcb", "libxkbcommon"))})
    assert x_libs, out
    packages = _setup_packages()
    owners = subprocess.run(["dpkg", "-S", *(f"*/{lib}" for lib in x_libs)], capture_output=True, text=True,
                            timeout=120, check=False).stdout
    package_of = {}  # "libxcb-icccm4:amd64, other: /usr/lib/x86_64-linux-gnu/libxcb-icccm.so.4"
    for line in owners.splitlines():
        names, _, path = line.partition(": ")
        package_of[Path(path.strip()).name] = names.split(",")[0].split(":")[0].strip()
    unnamed = {lib: package_of.get(lib, "(not installed)") for lib in x_libs
               if package_of.get(lib) not in packages}
    assert not unnamed, f"installer/setup.sh does not name the package of: {unnamed}"



def _stop(proc: subprocess.Popen[bytes], grace: float) -> None:
    """Ask ``proc`` to end (SIGTERM), allow it ``grace`` seconds, then kill it."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)

@pytest.fixture
def xvfb_display(tmp_path: Path) -> Iterator[str]:
    """A fresh Xvfb at 1366x768 on a display number it picks itself; its name, e.g. ':5'."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("Xvfb is not installed (Debian package xvfb; bash installer/setup.sh --dev installs it)")
    log = tmp_path / "xvfb.log"
    read_fd, write_fd = os.pipe()
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            [xvfb, "-displayfd", str(write_fd), "-screen", "0", f"{WIDTH}x{HEIGHT}x24", "-nolisten", "tcp"],
            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=log_file,
        )
    os.close(write_fd)
    try:
        with os.fdopen(read_fd, "rb") as pipe:
            number = pipe.readline().strip()  # written once the server accepts connections
        if not number:
            proc.kill()
            proc.wait(timeout=10)
            pytest.fail(f"Xvfb did not start: {log.read_text(errors='replace').strip()[-2000:]}")
        yield f":{number.decode()}"
    finally:
        if proc.poll() is None:
            _stop(proc, 10)


# A QApplication and a full-screen window on xcb; prints what the screen and the window measure.  With no
# window manager (a kiosk X session has none; nor has Xvfb here) showFullScreen() alone leaves the window
# at its default 640x480: nothing acts on _NET_WM_STATE_FULLSCREEN.  Giving it the screen's geometry first
# fills the screen with or without one; the kiosk window must do the same.
PROGRAM = """
import sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QWidget

app = QApplication(sys.argv)
window = QWidget()
window.setWindowTitle("ScanStation xcb check")
window.setGeometry(app.primaryScreen().geometry())
window.showFullScreen()
QTimer.singleShot(500, app.quit)
code = app.exec()
screen = app.primaryScreen().geometry()
print("platform", app.platformName())
print("screen", screen.width(), screen.height())
print("window", window.width(), window.height(), window.isFullScreen())
sys.exit(code)
"""


def test_a_full_screen_window_opens_on_xcb(xvfb_display: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QT_", "WAYLAND_"))}
    env.update({"DISPLAY": xvfb_display, "QT_QPA_PLATFORM": "xcb"})  # no offscreen fallback
    done = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    output = done.stdout + done.stderr
    assert "Could not load the Qt platform plugin" not in output, output
    assert done.returncode == 0, output
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    assert lines.get("platform") == "xcb", output
    assert lines.get("screen") == f"{WIDTH} {HEIGHT}", output
    assert lines.get("window") == f"{WIDTH} {HEIGHT} True", output


# Grabs the whole X screen into a PNG (a separate client of the same display, as a camera over the kiosk).
GRAB = """
import sys
from PySide6.QtGui import QGuiApplication

app = QGuiApplication(sys.argv)
sys.exit(0 if app.primaryScreen().grabWindow(0).save(sys.argv[1]) else 1)
"""


def _station_windows(display: str) -> list[tuple[int, int, int, int]]:
    """(width, height, x, y) of the top-level windows called ScanStation… on ``display``."""
    import re

    tree = subprocess.run(["xwininfo", "-root", "-tree", "-display", display], capture_output=True, text=True,
                          timeout=30, check=False).stdout
    found = []
    for line in tree.splitlines():
        m = re.search(r'"ScanStation[^"]*".*?\s(\d+)x(\d+)\+(-?\d+)\+(-?\d+)', line)
        if m:
            found.append((int(m[1]), int(m[2]), int(m[3]), int(m[4])))
    return found


def test_scanstation_start_shows_the_sign_in_screen_filling_the_screen(xvfb_display: str, tmp_path: Path) -> None:
    """The acceptance check of issue 13: ``scanstation start`` on an X display (Xvfb, 1366x768, Qt's xcb
    platform) opens the kiosk on its sign-in screen, and the window fills the screen.  (Without a service a
    production kiosk waits for one instead: tests/test_ui_service_link.py.)"""
    if shutil.which("xwininfo") is None:
        pytest.skip("xwininfo is not installed (Debian package x11-utils)")
    from .stationkit import REPO, make_station

    st = make_station(tmp_path / "st")
    # a production station (make_station's default) and its service, as on a station: the kiosk is its client
    with st.serve(unlock_as="head"):
        env = {k: v for k, v in st.env.items() if not k.startswith(("QT_", "WAYLAND_"))}
        env.update({"DISPLAY": xvfb_display, "QT_QPA_PLATFORM": "xcb"})
        log = tmp_path / "start.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "scanstation.cli.main", "start"], env=env, cwd=REPO,
                                    stdout=out, stderr=subprocess.STDOUT)
        try:
            import time

            deadline = time.monotonic() + 90
            windows: list[tuple[int, int, int, int]] = []
            while (WIDTH, HEIGHT, 0, 0) not in windows:
                assert proc.poll() is None, f"scanstation start exited {proc.returncode}: {log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, f"no full-screen ScanStation window: {windows}; {log.read_text()}"
                time.sleep(0.3)
                windows = _station_windows(xvfb_display)
            time.sleep(1.5)  # let it paint
            shot = tmp_path / "screen.png"
            grab = subprocess.run([sys.executable, "-c", GRAB, str(shot)], env=env, capture_output=True, text=True,
                                  timeout=60, check=False)
            assert grab.returncode == 0, grab.stderr
            from PIL import Image

            with Image.open(shot) as image:
                assert image.size == (WIDTH, HEIGHT)
                assert image.getextrema() != ((239, 239), (239, 239), (239, 239), (255, 255))  # not a blank screen
            if shutil.which("tesseract") is None:
                return
            text = subprocess.run(["tesseract", str(shot), "-", "-l", "eng"], capture_output=True, text=True,
                                  timeout=120, check=False).stdout
            assert "Sign in" in text and "Password" in text, text  # the sign-in screen, not the batch list
            assert "Batch" not in text, text
        finally:
            _stop(proc, 30)

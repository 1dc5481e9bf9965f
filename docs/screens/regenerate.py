"""Regenerate the kiosk screenshots in docs/screens/ (issue 13, item 8): a real X server, a real station.

    .venv/bin/python docs/screens/regenerate.py [OUTDIR]

Starts Xvfb at 1366x768 (the kiosk screen of the acceptance check), founds a throw-away station with the
test people of tests/stationkit.py (admin, head, sup, op; no real data: one synthetic page), starts its
``scanstation serve`` (locked: the kiosk is its client over the socket, as in production), and drives
the kiosk window on Qt's xcb platform (``QT_QPA_PLATFORM=xcb``, not offscreen) through sign-in, unlock,
the batch list, the lock screen, the admin's accounts and the audit viewer, grabbing the whole X screen
each time: sign-in.png, unlock.png, home.png, lock.png, accounts.png, audit.png.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT = 1366, 768


def start_xvfb() -> tuple[subprocess.Popen[bytes], str]:
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        raise SystemExit("Xvfb is not installed (Debian package xvfb)")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen([xvfb, "-displayfd", str(write_fd), "-screen", "0", f"{WIDTH}x{HEIGHT}x24",
                             "-nolisten", "tcp"], pass_fds=(write_fd,), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        number = pipe.readline().strip()
    if not number:
        proc.kill()
        raise SystemExit("Xvfb did not start")
    return proc, f":{number.decode()}"


def parent(out: Path) -> int:
    sys.path.insert(0, str(REPO))
    from tests.stationkit import make_station

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="scanstation-screens-") as tmp:
        st = make_station(Path(tmp) / "st")
        page = Path(tmp) / "page.png"
        from scanstation_tools.synth import PageSpec, render_acr_page

        render_acr_page(PageSpec(seed=7, dpi=100)).image.save(page)
        st.run("import", "--batch", "DEMO-0001", str(page), "--no-wait", check=True)
        xvfb, display = start_xvfb()
        try:
            env = {k: v for k, v in st.env.items() if not k.startswith(("QT_", "WAYLAND_"))}
            env.update({"DISPLAY": display, "QT_QPA_PLATFORM": "xcb"})
            with st.serve(unlock_as=None):  # as in production: the kiosk is a client of 'scanstation serve'
                return subprocess.run([sys.executable, __file__, "--child", str(out)], env=env,
                                      cwd=REPO, timeout=600, check=False).returncode
        finally:
            xvfb.terminate()
            xvfb.wait(10)


def child(out: Path) -> int:
    sys.path.insert(0, str(REPO))
    from scanstation.config import load_config
    from tests.stationkit import PASSWORD
    from ui.qt import QApplication
    from ui.shell import StationWindow
    from ui.widgets import kiosk_style

    app = QApplication(sys.argv)
    kiosk_style(app)
    assert app.platformName() == "xcb", app.platformName()
    window = StationWindow(load_config(Path(os.environ["SCANSTATION_CONFIG"])))
    assert not window.link.in_process, "scanstation serve is not answering"
    window.show_kiosk()

    def until(cond: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 60
        while not cond():
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for {what}")
            app.processEvents()
            time.sleep(0.02)

    def settle() -> None:
        end = time.monotonic() + 0.6
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.02)

    def shot(name: str) -> None:
        settle()
        screen = app.primaryScreen()
        assert screen.geometry().width() == WIDTH and window.width() == WIDTH, (screen.geometry(), window.size())
        image = screen.grabWindow(0)  # the whole X screen, as a person at the kiosk sees it
        assert image.save(str(out / name)), name
        print(f"wrote {out / name}")

    def sign_in(name: str) -> None:
        until(lambda: window.stack.currentWidget() is window.sign_in, "the sign-in screen")
        window.sign_in.name.setText(name)
        window.sign_in.password.setText(PASSWORD)
        window.sign_in.button.click()

    window.sign_in.name.setText("sup")
    window.sign_in.password.setText(PASSWORD)
    shot("sign-in.png")
    window.sign_in.button.click()
    until(lambda: window.stack.currentWidget() is window.unlock, "the unlock screen")
    shot("unlock.png")
    window.unlock.password.setText(PASSWORD)
    window.unlock.button.click()
    until(lambda: window.table.rowCount() == 1, "the batch list")
    shot("home.png")
    window.lock_button.click()
    until(lambda: window.stack.currentWidget() is window.lock_screen, "the lock screen")
    shot("lock.png")
    window.lock_screen.password.setText(PASSWORD)
    window.lock_screen.button.click()
    until(lambda: window.stack.currentWidget() is window.work, "the resumed session")
    window.tabs.setCurrentWidget(window.audit)
    until(lambda: window.audit.table.rowCount() > 0, "the audit entries")
    window.audit.verify_button.click()
    until(lambda: "Intact" in window.audit.result.text(), "the audit verification")
    shot("audit.png")
    window.sign_out_button.click()
    sign_in("admin")
    until(lambda: window.accounts.table.rowCount() >= 4, "the accounts")
    window.accounts.new_name.setText("new-operator")
    shot("accounts.png")
    window.close()
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.exit(child(Path(sys.argv[2])))
    sys.exit(parent(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent))

"""Regenerate the kiosk screenshots in docs/screens/ (issue 13, item 8): a real X server, a real station.

    .venv/bin/python docs/screens/regenerate.py [OUTDIR]

Starts Xvfb at 1366x768 (the kiosk screen of the acceptance check), founds a throw-away station with the
test people of tests/stationkit.py (admin, head, sup, op; no real data: one synthetic page), starts its
``scanstation serve`` (locked: the kiosk is its client over the socket, as in production), and drives
the kiosk window on Qt's xcb platform (``QT_QPA_PLATFORM=xcb``, not offscreen) through sign-in, unlock,
the batch list, the lock screen, the admin's accounts and the audit viewer, grabbing the whole X screen
each time: sign-in.png, unlock.png, home.png, lock.png, accounts.png, audit.png.

operator.png, operator-jam.png (issue 14): the operator's scanning screen.  The station has a two-person
roster and two scan profiles over SANE's virtual back ends (tests/sane_env.py): ``pnm`` scans the file
put "on the glass" (a QR cover sheet, then a page), ``test`` feeds sheets and jams on the fourth:
operator.png shows the ACR file a cover sheet opened (prefilled from the roster, waiting for Enter) beside
the page tiles, operator-jam.png the jam prompt in Hindi and English.

supervisor.png, supervisor-keys.png, dashboard.png (issue 14): the supervisor verifying a closed batch page
by page (and the key help over it), the unit head's progress dashboard; see supervisor_screens.py.

Every role's screen is here: the operator (operator.png, operator-jam.png), the supervisor (home.png, audit.png,
supervisor.png, supervisor-keys.png), the unit head (dashboard.png, signoff*.png) and the admin (accounts.png),
each with the kiosk's watermark (issue 17: station id, person, minute; ui/watermark.py) over the pages and,
fainter, over the rest of the work screen.  The window is shown as the kiosk (``show_kiosk``: it cannot be
closed, so the run ends it with ``end_session``).

signoff.png, signoff-wrong-pin.png, signoff-done.png (issue 15): the unit head's sign-off of the verified
batch with a DSC token (a SoftHSM2 token made for the run): the summary with the PIN typed, a wrong PIN
answered with what the token reports, and the batch signed off and sealed; see signoff_screens.py.
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
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import signoff_screens  # noqa: E402  (beside this file: the unit head's sign-off screens)
import supervisor_screens  # noqa: E402  (beside this file: the supervisor's and dashboard screens)

WIDTH, HEIGHT = 1366, 768


# The operator screen's scanners (SANE's virtual back ends) and roster: synthetic, no real person.
OPERATOR_PROFILES = """
[profiles.flatbed-gray-300]
description = "flatbed, grey, 300 dpi, QR cover sheets"
source = "flatbed"
mode = "gray"
resolution = 300
page_size = "max"
options = ["filename={glass}"]

[profiles.adf-gray-150]
description = "document feeder, grey, 150 dpi"
source = "adf"
mode = "gray"
resolution = 150
separators = false
options = ["test-picture=Grid", "page4:read-return-value=SANE_STATUS_JAMMED"]
"""
ROSTER = ("Employee Code,Name (Hindi),Name (English),Rank,Unit\n"
          "EMP-1001,आशा वर्मा,Asha Verma,Inspector,Test Unit\n"
          "EMP-1002,राहुल सिंह,Rahul Singh,Sub-Inspector,Test Unit\n")


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
        from tests.sane_env import sane_test_env

        glass = Path(tmp) / "glass.pnm"
        token_env, signoff_config, bind_certificate = signoff_screens.token_setup(Path(tmp))
        st = make_station(Path(tmp) / "st", signoff=True,
                          extra_env={**sane_test_env(Path(tmp)), "SCREENS_GLASS": str(glass), **token_env},
                          extra_config=OPERATOR_PROFILES.format(glass=glass) + supervisor_screens.CONFIG
                          + signoff_config)
        bind_certificate(st)
        roster = Path(tmp) / "roster.csv"
        roster.write_text(ROSTER + supervisor_screens.ROSTER_MORE, encoding="utf-8")
        st.run("roster", "import", str(roster), check=True)
        page = Path(tmp) / "page.png"
        from scanstation_tools.synth import PageSpec, render_acr_page

        render_acr_page(PageSpec(seed=7, dpi=100)).image.save(page)
        st.run("import", "--batch", "DEMO-0001", str(page), "--no-wait", check=True)
        supervisor_screens.prepare(st, Path(tmp))
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
    from ui.service_link import ServiceLink
    from ui.shell import StationWindow
    from ui.widgets import kiosk_style

    app = QApplication(sys.argv)
    kiosk_style(app)
    assert app.platformName() == "xcb", app.platformName()
    config = load_config(Path(os.environ["SCANSTATION_CONFIG"]))

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

    def shot(name: str, shown: Any = None) -> None:
        settle()
        shown = window if shown is None else shown
        screen = app.primaryScreen()
        assert screen.geometry().width() == WIDTH and shown.width() == WIDTH, (screen.geometry(), shown.size())
        image = screen.grabWindow(0)  # the whole X screen, as a person at the kiosk sees it
        assert image.save(str(out / name)), name
        print(f"wrote {out / name}")

    # First the screen a production kiosk shows while its station service does not answer (a socket no
    # service listens on), then the kiosk of the running service.
    with tempfile.TemporaryDirectory(prefix="scanstation-no-service-") as nowhere:
        waiting = StationWindow(config, link=ServiceLink.waiting_for(Path(nowhere) / "service.sock"))
        waiting.show_kiosk()
        until(lambda: waiting.stack.currentWidget() is waiting.service_wait, "the service-wait screen")
        shot("service-wait.png", waiting)
        waiting.end_session()
    window = StationWindow(config)
    assert not window.link.in_process, "scanstation serve is not answering"
    window.show_kiosk()

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
    until(lambda: window.table.rowCount() >= 1, "the batch list")
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
    window.sign_out_button.click()
    operator_screen(window, sign_in, until, shot)
    supervisor_screens.screens(window, sign_in, until, shot)
    signoff_screens.screens(window, sign_in, until, shot)
    window.end_session()  # the kiosk window refuses close(): the application ends it (signs out, closes)
    return 0


def operator_screen(window: Any, sign_in: Callable[[str], None], until: Callable[[Callable[[], bool], str], None],
                    shot: Callable[[str], None]) -> None:
    """The operator at work: a cover sheet and a page on the glass, then the feeder jams (operator.png)."""
    from PIL import Image

    from scanstation.capture.cover_sheets import CoverInfo, render_cover_sheet
    from scanstation_tools.synth import PageSpec, render_acr_page

    glass = Path(os.environ["SCREENS_GLASS"])
    sign_in("op")
    screen = window.operator
    until(lambda: window.tabs.currentWidget() is screen, "the operator's screen")
    until(lambda: screen.scanner.findData("pnm:0") >= 0 and screen.scanner.findData("test:0") >= 0
          and screen.profile.count() >= 3, "the scanners and profiles")
    screen.batch_name.setText("ACR-2026-014")

    def scan(device: str, profile: str, sheet: Image.Image | None) -> None:
        if sheet is not None:
            sheet.convert("L").save(glass, format="PPM")
        screen.scanner.setCurrentIndex(screen.scanner.findData(device))
        screen.profile.setCurrentIndex(screen.profile.findData(profile))
        before = screen.since
        screen.scan()
        until(lambda: screen.job is not None and screen.since > before
              and screen.job_state in ("idle", "waiting"), f"a scan from {device}")

    page = render_acr_page(PageSpec(seed=11, dpi=300)).image  # a synthetic ACR page (no real person)
    scan("pnm:0", "flatbed-gray-300", render_cover_sheet(CoverInfo("EMP-1001", "2019-20", "Test Unit", "")))
    scan("pnm:0", "flatbed-gray-300", page)
    until(lambda: screen.pages.get(1, {}).get("thumb") == "shown", "the first page's thumbnail")
    shot("operator.png")
    scan("test:0", "adf-gray-150", None)
    until(lambda: screen.prompt.isVisible(), "the jam prompt")
    until(lambda: len(screen.tiles) >= 4, "the page tiles")
    shot("operator-jam.png")
    screen.stop()
    window.sign_out_button.click()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.exit(child(Path(sys.argv[2])))
    sys.exit(parent(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent))

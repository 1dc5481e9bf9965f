"""The station window starts offscreen on the sign-in screen and, once a supervisor has signed in and
unlocked, lists the batches it reads through the station service (the window holds no key)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from scanstation.config import load_config

from .stationkit import PASSWORD, make_station


def test_station_window_lists_batches(tmp_path: Path) -> None:
    pytest.importorskip("PySide6")
    from ui.app import StationWindow
    from ui.qt import QApplication

    st = make_station(tmp_path / "st", init_args=("--training",))  # a production kiosk never runs the service
    good = tmp_path / "p.png"
    from scanstation_tools.synth import PageSpec, render_acr_page

    render_acr_page(PageSpec(seed=3, dpi=100)).image.save(good)
    st.run("import", "--batch", "UI-1", str(good), "--no-wait", check=True)
    app = QApplication.instance() or QApplication([])
    win = StationWindow(load_config(st.config))  # no service runs: one in this process (development)
    assert win.link.in_process
    win.resize(1000, 400)
    win.show()
    assert win.stack.currentWidget() is win.sign_in

    def until(cond: object, what: str) -> None:
        deadline = time.monotonic() + 60
        while not cond():  # type: ignore[operator]
            assert time.monotonic() < deadline, what
            app.processEvents()
            time.sleep(0.01)

    win.sign_in.name.setText("sup")
    win.sign_in.password.setText(PASSWORD)
    win.sign_in.button.click()
    until(lambda: win.stack.currentWidget() is win.unlock, "the unlock screen")
    win.unlock.password.setText(PASSWORD)
    win.unlock.button.click()
    until(lambda: win.table.rowCount() == 1, "the batch list")
    assert [win.table.item(0, c).text() for c in (0, 2)] == ["UI-1", "1"]  # type: ignore[union-attr]
    shot = tmp_path / "window.png"
    assert win.grab().save(str(shot))
    assert shot.stat().st_size > 1000
    win.close()

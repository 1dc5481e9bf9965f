"""The station window starts offscreen and shows the batches from the store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from scanstation.config import load_config

from .stationkit import make_station


def test_station_window_lists_batches(tmp_path: Path) -> None:
    pytest.importorskip("PySide6")
    from ui.app import StationWindow
    from ui.qt import QApplication

    st = make_station(tmp_path / "st")
    good = tmp_path / "p.png"
    from scanstation_tools.synth import PageSpec, render_acr_page

    render_acr_page(PageSpec(seed=3, dpi=100)).image.save(good)
    st.run("import", "--batch", "UI-1", str(good), "--no-wait", check=True)
    app = QApplication.instance() or QApplication([])
    win = StationWindow(load_config(st.config), key=st.unlock()[1])  # station.db is encrypted
    win.resize(1000, 400)
    win.show()
    app.processEvents()
    assert win.table.rowCount() == 1
    assert win.table.item(0, 0).text() == "UI-1"
    assert win.table.item(0, 2).text() == "1"
    shot = tmp_path / "window.png"
    assert win.grab().save(str(shot))
    assert shot.stat().st_size > 1000
    win.close()

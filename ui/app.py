"""``scanstation start`` opens the kiosk (entry point ``scanstation.start: window`` = :func:`run_ui`).

The kiosk is a client of the station service (:mod:`ui.service_link`): it starts on the sign-in screen,
full screen, and moves through the screens of :mod:`ui.shell`.  The UI knows nothing of the developer tools:
a demo button exists only when the caller hands in the action it runs (``start`` does so for a demo or
training station when the tools are installed, never for production).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from scanstation.config import Config

from .batches import COLUMNS, upload_cell
from .qt import QApplication
from .shell import StationWindow
from .widgets import kiosk_style

__all__ = ["COLUMNS", "StationWindow", "run_ui", "upload_cell"]


def run_ui(config: Config, demo_action: Callable[[], object] | None = None) -> int:
    app = QApplication.instance() or QApplication(sys.argv)
    assert isinstance(app, QApplication)
    kiosk_style(app)
    window = StationWindow(config, demo_action)
    window.show_kiosk()
    return int(app.exec())

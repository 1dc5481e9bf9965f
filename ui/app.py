"""``scanstation start`` opens the kiosk (entry point ``scanstation.start: window`` = :func:`run_ui`).

The kiosk is a client of the station service (:mod:`ui.service_link`): it starts on the sign-in screen,
full screen, and moves through the screens of :mod:`ui.shell`.  The UI knows nothing of the developer tools:
a demo button exists only when the caller hands in the action it runs (``start`` does so for a demo or
training station when the tools are installed, never for production).

The window cannot be closed from the screen; the application ends when the system says so.  SIGTERM (systemd
stopping ``scanstation-kiosk.service`` at shutdown), SIGHUP (the terminal gone) and SIGINT end the session
cleanly: the person is signed out, calls under way finish, the connection closes, the process exits 0.
Python runs a signal handler only when the interpreter next gets control, and Qt's event loop is C++; so the
signal's number is written to a socket (``signal.set_wakeup_fd``) that a QSocketNotifier watches, which
wakes the loop at once, and the handler then queues :meth:`~ui.shell.StationWindow.end_session`.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

from scanstation.config import Config

from .batches import COLUMNS, upload_cell
from .qt import QApplication, QSocketNotifier, QTimer
from .shell import StationWindow
from .widgets import kiosk_style

__all__ = ["COLUMNS", "ENDING_SIGNALS", "StationWindow", "end_on_signals", "make_kiosk", "run_ui", "upload_cell"]

ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def end_on_signals(app: QApplication, window: StationWindow) -> Callable[[], None]:
    """SIGTERM, SIGHUP, SIGINT: the window's session ends, then the event loop.  Returns the undo."""
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    notifier = QSocketNotifier(reader.fileno(), QSocketNotifier.Type.Read, app)

    def drain() -> None:  # Python code runs here, and with it the handler below, at once
        with contextlib.suppress(OSError):
            reader.recv(64)

    def finish() -> None:
        window.end_session()
        app.quit()

    def ending(_signum: int, _frame: Any) -> None:
        QTimer.singleShot(0, finish)  # not inside the handler: it may interrupt any line of the UI's code

    notifier.activated.connect(drain)
    previous = {sig: signal.signal(sig, ending) for sig in ENDING_SIGNALS}
    # The sockets must live as long as the handlers: a collected socket closes its descriptor, and the next
    # signal's wake-up would go nowhere (EBADF).  The application holds them.
    _KEEP[id(app)] = (reader, writer, notifier)

    def undo() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(previous_fd)
        notifier.setEnabled(False)
        _KEEP.pop(id(app), None)
        reader.close()
        writer.close()

    return undo


_KEEP: dict[int, tuple[socket.socket, socket.socket, QSocketNotifier]] = {}


def make_kiosk(config: Config, demo_action: Callable[[], object] | None = None) -> tuple[QApplication, StationWindow]:
    """The application and its kiosk window, shown full screen, ending on SIGTERM (what :func:`run_ui` runs)."""
    app = QApplication.instance() or QApplication(sys.argv)
    assert isinstance(app, QApplication)
    kiosk_style(app)
    window = StationWindow(config, demo_action)
    end_on_signals(app, window)
    app.aboutToQuit.connect(window.end_session)  # however the loop ends, the session is signed out first
    window.show_kiosk()
    return app, window


def run_ui(config: Config, demo_action: Callable[[], object] | None = None) -> int:
    app, _window = make_kiosk(config, demo_action)
    return int(app.exec())

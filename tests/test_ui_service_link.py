"""A production kiosk never runs the station service in its own process (issue 17).

With no service answering on the socket, :func:`ui.service_link.open_link` used to start a
:class:`~scanstation.service.core.StationService` inside the UI's process, which would then hold the station's
keys in the kiosk account's memory once someone unlocked.  On a production station the window now shows
"the station service is not running — waiting for it" instead, tries the socket again every few seconds,
and goes on to sign-in when ``scanstation serve`` answers (started late here, for real).  A training
station keeps the in-process service (development, the demo).

Everything talks to a real station service; nothing is mocked.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from scanstation.config import load_config
from scanstation.errors import StateError
from scanstation.service.client import RemoteConnection, service_running

from .stationkit import PASSWORD, StationEnv, make_station

# sign-ins and unlocks of the services these tests run in this process at the test stations' argon2id cost
pytestmark = pytest.mark.usefixtures("cheap_argon2")

WAIT = 30_000  # ms: argon2 and `scanstation serve` starting take a moment on a shared machine


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> StationEnv:
    """A production station (init's default mode)."""
    return make_station(tmp_path_factory.mktemp("link") / "st")


def open_station_files(data_dir: Path) -> list[str]:
    """The files of the station's data directory this process has open: a service in this process would
    hold its people database, audit trail and store open; a client holds none."""
    inside = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith(str(data_dir.resolve()) + os.sep):
            inside.append(target)
    return inside


@pytest.fixture
def window_for(qtbot: Any) -> Iterator[Any]:
    """A factory of kiosk windows (shown with show_kiosk, as ``scanstation start`` shows them); each ended
    at the test's end: a kiosk window refuses qtbot's close."""
    from ui.shell import StationWindow

    made: list[StationWindow] = []

    def make(config: Any) -> StationWindow:
        window = StationWindow(config)
        made.append(window)
        window.show_kiosk()
        qtbot.waitExposed(window)
        return window

    yield make
    for window in made:
        window.end_session()


def test_a_production_kiosk_waits_for_a_service_that_starts_late(station: StationEnv, window_for: Any,
                                                                  qtbot: Any) -> None:
    from ui.shell import SERVICE_NOT_RUNNING, SERVICE_RETRY_MS

    config = load_config(station.config)
    assert config.station.mode == "production"
    assert not service_running(config.socket_path)
    window = window_for(config)
    # no service in this process: no connection, nothing of the station's opened, calls refused plainly
    assert window.link.waiting and not window.link.in_process and window.link.connection is None
    assert window.stack.currentWidget() is window.service_wait
    assert window.service_wait.title.text() == SERVICE_NOT_RUNNING
    assert "The station service is not running" in SERVICE_NOT_RUNNING and "station admin" in SERVICE_NOT_RUNNING
    assert open_station_files(station.data_dir) == []
    with pytest.raises(StateError, match="not running"):
        window.link.call("status")
    # still a kiosk while it waits: the window cannot be closed, and it fills the screen
    qtbot.waitUntil(window.isFullScreen, timeout=5000)  # (offscreen settles it a moment after showing)
    assert window.close() is False and window.isVisible()
    qtbot.waitUntil(window.isFullScreen, timeout=5000)
    # it keeps trying (the "last tried" time moves on with each try) and keeps waiting
    first = window.service_wait.tried.text()
    qtbot.waitUntil(lambda: window.service_wait.tried.text() != first, timeout=3 * SERVICE_RETRY_MS)
    assert window.stack.currentWidget() is window.service_wait and window.link.waiting
    assert open_station_files(station.data_dir) == []

    with station.serve(unlock_as="head"):  # the service starts late, and the unit head unlocks the station
        up = time.monotonic()
        qtbot.waitUntil(lambda: window.stack.currentWidget() is window.sign_in, timeout=SERVICE_RETRY_MS + WAIT)
        assert time.monotonic() - up < SERVICE_RETRY_MS / 1000 + 5  # within a try or two of the service answering
        assert not window.link.waiting and not window.link.in_process
        assert isinstance(window.link.connection, RemoteConnection)
        # on to work, over the socket
        window.sign_in.name.setText("sup2")
        window.sign_in.password.setText(PASSWORD)
        window.sign_in.button.click()
        qtbot.waitUntil(lambda: window.stack.currentWidget() is window.work, timeout=WAIT)
        assert window.link.call("status")["signed_in"] == "sup2"
        assert window.notice.text() == ""  # no "development mode" banner: the service is the real one
        assert open_station_files(station.data_dir) == []
        window.end_session()  # signs sup2 out in the service
        assert window.link.token is None


def test_a_training_station_keeps_the_in_process_service(station: StationEnv, window_for: Any, qtbot: Any,
                                                         tmp_path: Path) -> None:
    from ui.service_link import open_link

    training = tmp_path / "training.toml"
    text = station.config.read_text()
    assert 'mode = "production"' in text
    training.write_text(text.replace('mode = "production"', 'mode = "training"', 1))
    config = load_config(training)
    assert config.station.mode == "training" and not service_running(config.socket_path)
    link = open_link(config)
    try:
        assert link.in_process and not link.waiting
        assert link.call("sign_in", name="sup2", password=PASSWORD)["token"]
    finally:
        link.close()
    window = window_for(config)
    assert window.link.in_process and window.stack.currentWidget() is window.sign_in
    assert "development mode" in window.notice.text()


def test_the_kiosk_waits_again_when_the_service_goes_and_takes_the_next_one(station: StationEnv, window_for: Any,
                                                                             qtbot: Any) -> None:
    # systemd restarts a crashed service (Restart=on-failure) and an admin may restart it: the kiosk's socket
    # is then dead for good.  The window must not stay on a page with a dead link: it signs the person out
    # (the sessions died with the service), waits, and connects to the next service.
    from ui.shell import SERVICE_RETRY_MS

    config = load_config(station.config)
    with station.serve(unlock_as="head"):
        window = window_for(config)
        assert not window.link.waiting
        window.sign_in.name.setText("sup2")
        window.sign_in.password.setText(PASSWORD)
        window.sign_in.button.click()
        qtbot.waitUntil(lambda: window.stack.currentWidget() is window.work, timeout=WAIT)
        first = window.link.connection
    # the service is gone: the next call (the guard's poll every few seconds) finds it so
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.service_wait, timeout=WAIT)
    assert window.link.waiting and window.person is None and window.link.token is None
    from ui.watermark import UNKNOWN

    assert window.watermark.person == UNKNOWN  # nobody's name left on the screen
    with pytest.raises(StateError, match="not running"):
        window.link.call("status")
    with station.serve(unlock_as="head"):
        qtbot.waitUntil(lambda: window.stack.currentWidget() is window.sign_in, timeout=SERVICE_RETRY_MS + WAIT)
        assert isinstance(window.link.connection, RemoteConnection) and window.link.connection is not first
        window.sign_in.name.setText("sup2")
        window.sign_in.password.setText(PASSWORD)
        window.sign_in.button.click()
        qtbot.waitUntil(lambda: window.stack.currentWidget() is window.work, timeout=WAIT)
        assert window.link.call("status")["signed_in"] == "sup2"
        window.end_session()

"""The kiosk shell, every screen driven offscreen against a real station service (issue 13, item 8).

The window talks to a :class:`~scanstation.service.core.StationService` in this process (a LocalConnection,
as on a developer machine) on a station made by the real CLI, and in the last test to ``scanstation serve``
over its socket (a RemoteConnection, as in production).  Sign-in, unlock, the idle lock and the accounts
all go through the service's operations: nothing here is a mock.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from scanstation.config import load_config
from scanstation.errors import SignInError
from scanstation.people.roles import Role
from scanstation.service.client import LocalConnection
from scanstation.service.core import StationService

from .stationkit import PASSWORD, StationEnv, make_station

# sign-ins and unlocks of the services these tests run in this process at the test stations' argon2id cost
pytestmark = pytest.mark.usefixtures("cheap_argon2")

CLERK_PASSWORD = "another clerk's own words 77"
WAIT = 30_000  # ms: argon2 and opening the station take a moment on a shared machine


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> StationEnv:
    st = make_station(tmp_path_factory.mktemp("kiosk") / "st")
    with StationService(load_config(st.config)) as service:
        admin = service.sign_in("admin", PASSWORD)
        service.add_person(admin, "clerk", Role.OPERATOR, CLERK_PASSWORD)  # a password nobody else has
        service.add_person(admin, "typo", Role.OPERATOR, PASSWORD)  # the one who gets the password wrong
    return st


@pytest.fixture
def kiosk(station: StationEnv, qtbot: Any) -> Iterator[Any]:
    """A factory of kiosk windows on a fresh in-process service (locked, as every morning)."""
    from ui.service_link import ServiceLink
    from ui.shell import StationWindow

    def make(idle_ms: int | None = None) -> StationWindow:
        config = load_config(station.config)
        link = ServiceLink(LocalConnection(StationService(config)), in_process=True)
        window = StationWindow(config, link=link, idle_ms=idle_ms)
        qtbot.addWidget(window)  # closed (signed out, service closed) at the end of the test
        window.resize(1366, 768)
        window.show()
        return window

    yield make


def sign_in(qtbot: Any, window: Any, name: str, password: str = PASSWORD) -> None:
    assert window.stack.currentWidget() is window.sign_in
    window.sign_in.name.setText(name)
    window.sign_in.password.setText(password)
    window.sign_in.button.click()


def wait_for(qtbot: Any, window: Any, page: Any) -> None:
    try:
        qtbot.waitUntil(lambda: window.stack.currentWidget() is page, timeout=WAIT)
    except Exception as e:
        current = window.stack.currentWidget()
        message = getattr(current, "message", None)
        raise AssertionError(f"still on {type(current).__name__}: {message.text() if message else ''}") from e


def unlock(qtbot: Any, window: Any, password: str = PASSWORD) -> None:
    wait_for(qtbot, window, window.unlock)
    window.unlock.password.setText(password)
    window.unlock.button.click()


def test_sign_in_screen_is_bilingual_and_shows_the_services_refusals(kiosk: Any, qtbot: Any) -> None:
    from ui.qt import QLabel, QPushButton

    window = kiosk()
    texts = [w.text() for w in window.sign_in.findChildren(QLabel) + window.sign_in.findChildren(QPushButton)]
    for text in ("नाम / Name", "पासवर्ड / Password", "प्रवेश करें / Sign in"):
        assert text in texts, texts
    sign_in(qtbot, window, "typo", "not the right password at all")
    qtbot.waitUntil(lambda: "wrong" in window.sign_in.message.text(), timeout=WAIT)
    assert window.sign_in.message.text().startswith("नाम या पासवर्ड गलत है / "), window.sign_in.message.text()
    assert window.sign_in.password.text() == ""  # never left in the field
    sign_in(qtbot, window, "typo", "again not the right one")  # the service now slows this account down
    qtbot.waitUntil(lambda: "सेकंड रुकें" in window.sign_in.message.text(), timeout=WAIT)
    assert "wait" in window.sign_in.message.text()
    assert window.stack.currentWidget() is window.sign_in


def test_operator_sees_the_station_locked_message(kiosk: Any, qtbot: Any) -> None:
    from ui.unlock import LOCKED_FOR_OPERATOR

    window = kiosk()
    sign_in(qtbot, window, "op")
    wait_for(qtbot, window, window.station_locked)
    assert window.station_locked.title.text() == LOCKED_FOR_OPERATOR
    assert "स्टेशन बंद है" in LOCKED_FOR_OPERATOR and "a supervisor must unlock it" in LOCKED_FOR_OPERATOR
    window.station_locked.sign_out.click()
    wait_for(qtbot, window, window.sign_in)


def test_supervisor_unlocks_then_locks_the_station_at_the_end_of_the_day(kiosk: Any, qtbot: Any) -> None:
    window = kiosk()
    sign_in(qtbot, window, "sup")
    wait_for(qtbot, window, window.unlock)
    assert "Unlock the station" in window.unlock.button.text()
    assert window.unlock.recovery_toggle.isHidden()  # the recovery code is the unit head's
    unlock(qtbot, window, "this is not my password")
    qtbot.waitUntil(lambda: window.unlock.message.text().startswith(("प्रवेश", "त्रुटि", "नाम")), timeout=WAIT)
    assert window.stack.currentWidget() is window.unlock
    qtbot.wait(1500)  # the failed unlock counted as a failed sign-in: the service asks for a second's wait
    unlock(qtbot, window)
    wait_for(qtbot, window, window.work)
    assert window.link.call("status")["locked"] is False
    tabs = window.tabs
    assert tabs.isTabVisible(tabs.indexOf(window.batches)) and tabs.isTabVisible(tabs.indexOf(window.audit))
    assert not tabs.isTabVisible(tabs.indexOf(window.accounts))
    qtbot.waitUntil(lambda: "no batches yet" in window.batches.empty.text(), timeout=WAIT)
    assert window.end_of_day_button.isVisibleTo(window)
    window.end_of_day_button.click()
    wait_for(qtbot, window, window.sign_in)
    assert "locked for the day" in window.sign_in.message.text()
    sign_in(qtbot, window, "sup")  # the keys are gone: the next sign-in is asked to unlock again
    wait_for(qtbot, window, window.unlock)


def test_unit_head_may_unlock_with_the_recovery_code(kiosk: Any, qtbot: Any, station: StationEnv) -> None:
    window = kiosk()
    sign_in(qtbot, window, "head")
    wait_for(qtbot, window, window.unlock)
    assert not window.unlock.recovery_toggle.isHidden()
    window.unlock.recovery_toggle.click()
    window.unlock.recovery_code.setText(station.recovery_code)
    window.unlock.recovery_button.click()
    wait_for(qtbot, window, window.work)
    entries = window.link.call("audit_show")
    assert any(e["action"] == "unlock.recovery" and e["actor"] == "head" for e in entries)


def test_idle_locks_the_screen_and_only_the_same_person_resumes(kiosk: Any, qtbot: Any) -> None:
    window = kiosk(idle_ms=600_000)
    sign_in(qtbot, window, "sup")
    unlock(qtbot, window)
    wait_for(qtbot, window, window.work)
    window.idle_ms = 400  # the session idle time, injected (the configuration's is minutes)
    window.idle_timer.start(window.idle_ms)
    wait_for(qtbot, window, window.lock_screen)  # nobody touched the kiosk for 0.4 s
    locked = window.lock_screen.locked_token
    assert locked and "sup" in window.lock_screen.who.text()
    qtbot.waitUntil(lambda: _session_locked(window, locked), timeout=WAIT)
    # another person's password does not open sup's session
    window.lock_screen.password.setText(CLERK_PASSWORD)
    window.lock_screen.button.click()
    qtbot.waitUntil(lambda: "wrong" in window.lock_screen.message.text(), timeout=WAIT)
    assert window.stack.currentWidget() is window.lock_screen
    qtbot.wait(1500)  # that counted as a failed sign-in for sup: the service asks for a second's wait
    window.lock_screen.password.setText(PASSWORD)
    window.lock_screen.button.click()
    wait_for(qtbot, window, window.work)
    assert window.link.token == locked  # the same session goes on
    # the Lock button; then someone else signs in with their own name and sup's locked session ends
    window.idle_ms = 600_000
    window.lock_button.click()
    wait_for(qtbot, window, window.lock_screen)
    qtbot.waitUntil(lambda: _session_locked(window, locked), timeout=WAIT)
    window.lock_screen.other.click()
    wait_for(qtbot, window, window.sign_in)
    sign_in(qtbot, window, "clerk", CLERK_PASSWORD)
    wait_for(qtbot, window, window.work)  # the station is unlocked (sup did): the operator works
    assert "clerk" in window.who.text()
    assert not window.end_of_day_button.isVisibleTo(window)
    qtbot.waitUntil(lambda: _session_gone(window, locked), timeout=WAIT)


def _session_locked(window: Any, token: str) -> bool:
    service = window.link.connection.service
    try:
        service.caller(token)
    except SignInError as e:
        return "locked" in e.message
    return False


def _session_gone(window: Any, token: str) -> bool:
    service = window.link.connection.service
    try:
        service.caller(token)
    except SignInError as e:
        return "no such session" in e.message
    return False


def test_admin_manages_accounts_and_sees_no_batches(kiosk: Any, qtbot: Any) -> None:
    window = kiosk()
    sign_in(qtbot, window, "admin")
    wait_for(qtbot, window, window.work)  # the admin needs no unlock: accounts live in people.db
    tabs = window.tabs
    assert not tabs.isTabVisible(tabs.indexOf(window.batches))
    assert tabs.currentWidget() is window.accounts
    accounts = window.accounts
    qtbot.waitUntil(lambda: {"admin", "head", "sup", "op"} <= _names(accounts), timeout=WAIT)
    accounts.new_name.setText("newop")
    accounts.new_role.setCurrentIndex(accounts.new_role.findData("operator"))
    accounts.new_password.setText("a first password 4 newop")
    accounts.new_repeat.setText("a first password 4 newop!")
    accounts.add_button.click()
    assert "differ" in accounts.message.text()
    accounts.new_password.setText("a first password 4 newop")
    accounts.new_repeat.setText("a first password 4 newop")
    accounts.add_button.click()
    qtbot.waitUntil(lambda: "newop" in _names(accounts), timeout=WAIT)
    assert "added newop" in accounts.message.text()
    assert any(p["name"] == "newop" and p["role"] == "operator" for p in window.link.call("users_list"))
    # a password the service's policy refuses: its message is shown
    accounts.new_name.setText("weak")
    accounts.new_password.setText("short")
    accounts.new_repeat.setText("short")
    accounts.add_button.click()
    qtbot.waitUntil(lambda: "पासवर्ड स्वीकार नहीं" in accounts.message.text(), timeout=WAIT)
    assert "weak" not in _names(accounts)
    # disable, then reset the password
    accounts.select("newop")
    accounts.disable_button.click()
    qtbot.waitUntil(lambda: _row_of(accounts, "newop").endswith("disabled"), timeout=WAIT)
    accounts.select("newop")
    accounts.reset_password.setText("a second password 4 newop")
    accounts.reset_repeat.setText("a second password 4 newop")
    accounts.reset_button.click()
    qtbot.waitUntil(lambda: "password reset" in accounts.message.text(), timeout=WAIT)
    window.sign_out_button.click()
    wait_for(qtbot, window, window.sign_in)
    sign_in(qtbot, window, "newop", "a second password 4 newop")
    qtbot.waitUntil(lambda: "खाता बंद है" in window.sign_in.message.text(), timeout=WAIT)
    assert "disabled" in window.sign_in.message.text()


def _names(accounts: Any) -> set[str]:
    return {accounts.table.item(r, 0).text() for r in range(accounts.table.rowCount())}


def _row_of(accounts: Any, name: str) -> str:
    for r in range(accounts.table.rowCount()):
        if accounts.table.item(r, 0).text() == name:
            return accounts.table.item(r, 2).text()
    return ""


def test_audit_viewer_shows_entries_and_the_trail_intact(kiosk: Any, qtbot: Any) -> None:
    window = kiosk()
    sign_in(qtbot, window, "head")
    unlock(qtbot, window)
    wait_for(qtbot, window, window.work)
    window.tabs.setCurrentWidget(window.audit)
    audit = window.audit
    qtbot.waitUntil(lambda: audit.table.rowCount() > 0, timeout=WAIT)
    actions = {audit.table.item(r, 4).text() for r in range(audit.table.rowCount())}
    assert {"signin", "unlock", "user.add"} <= actions, actions
    audit.verify_button.click()
    qtbot.waitUntil(lambda: "Intact" in audit.result.text(), timeout=WAIT)
    assert "अक्षुण्ण" in audit.result.text()


def test_the_kiosk_is_a_client_of_the_running_service(station: StationEnv, qtbot: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``scanstation serve`` running, the window talks to it over the socket and holds no key."""
    from ui.shell import StationWindow

    good = station.root / "page.png"
    from scanstation_tools.synth import PageSpec, render_acr_page

    render_acr_page(PageSpec(seed=5, dpi=100)).image.save(good)
    station.run("import", "--batch", "KIOSK-1", str(good), "--no-wait", check=True)
    with station.serve(unlock_as="head"):
        window = StationWindow(load_config(station.config))
        qtbot.addWidget(window)
        assert not window.link.in_process
        assert not hasattr(window.link.connection, "service")
        window.show()
        sign_in(qtbot, window, "op")
        wait_for(qtbot, window, window.work)  # unlocked by the unit head in the service
        assert window.tabs.currentWidget() is window.operator  # an operator starts on the Scan tab (issue 14)
        window.tabs.setCurrentWidget(window.batches)
        qtbot.waitUntil(lambda: window.table.rowCount() == 1, timeout=WAIT)
        assert [window.table.item(0, c).text() for c in (0, 2)] == ["KIOSK-1", "1"]  # type: ignore[union-attr]
        window.close()

"""The kiosk's shell: one full-screen window that moves between its screens as the station service answers.

    sign-in ──► (station locked?) ──► supervisor / unit head: start-of-day unlock ──► work
                                 └──► operator: "station locked — a supervisor must unlock it"
            ──► (unlocked, or the admin) ──────────────────────────────────────────► work
    work: scan (operators, supervisors), batches (operators, supervisors, unit heads), verification
          (supervisors), progress (supervisors, unit heads), accounts (admin), audit trail (supervisors,
          unit heads, admin);
          buttons: Lock, End of day: lock the station, Sign out
    idle for the session's idle time, or Lock ──► lock screen ──► the same person's password ──► back
                                                            └──► someone else signs in (their own session)

Shown as the kiosk (:meth:`StationWindow.show_kiosk`, as ``scanstation start`` does) the window cannot be
closed or left: a close request (the compositor's, a window manager's Alt+F4, ``close()``) is refused, and so
are minimising, Alt+F4 / Ctrl+Q / Ctrl+W (eaten before any widget or shortcut sees them), the clipboard,
context menus and drops from other programs (:func:`ui.no_clipboard.lock_down`).  Only
:meth:`StationWindow.end_session` (the application ending: SIGTERM from systemd at shutdown, see
:mod:`ui.app`) closes it.  Every page and thumbnail on the screen carries the watermark of
:mod:`ui.watermark`, with the station and the person from the service's ``status``.

A production station's kiosk never runs the station service itself: when no service answers at start
(it starts late, or not at all), the window shows "the station service is not running — waiting for it"
(:class:`ServiceWaitScreen`, full screen like every screen, no way out either) and tries the socket again every
:data:`SERVICE_RETRY_MS` until the service answers; then the sign-in screen.

Every call goes through a :class:`~ui.service_link.ServiceLink`, off the UI thread.  The idle time is
``config.service.idle_minutes`` (at most 15) unless a test injects ``idle_ms``; any key, click or touch
restarts it, and at most once a minute such activity is reported to the service (``whoami``) so that the
service's own idle limit follows the person at the kiosk, not the kiosk's polling.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from scanstation.config import Config

from .accounts import AccountsScreen
from .audit_view import AuditScreen
from .background import run_in_background
from .batches import BatchesScreen
from .dashboard import DashboardScreen
from .guard_notice import GuardNotice
from .lock_screen import LockScreen
from .no_clipboard import lock_down
from .operator import OperatorScreen
from .qt import (
    QApplication,
    QEvent,
    QHBoxLayout,
    QKeyEvent,
    QKeySequence,
    QLabel,
    QMainWindow,
    QObject,
    QStackedWidget,
    Qt,
    QTabWidget,
    QThreadPool,
    QTimer,
    QVBoxLayout,
    QWidget,
    qt_alive,
)
from .service_link import ServiceLink, open_link
from .sign_in import SignInScreen
from .signoff import SignoffScreen
from .unlock import StationLockedScreen, UnlockScreen
from .verify import VerifyScreen
from .watermark import Watermark, WatermarkOverlay
from .widgets import CENTER, bi, button, describe_error, heading

REFRESH_MS = 3000
HEARTBEAT_MS = 60_000
# While someone works, the service's status (a passive call) every 2 s: when the device guard trips, the
# service ends every session, and this finds out (session lost: back to sign-in) within 2 s, so a page on
# the screen does not stay there until the next key.
GUARD_POLL_MS = 2000
# A production kiosk with no service to talk to tries its socket again this often: the service starting late
# (at 7 a.m. after a slow boot, or once the admin has started it) is answered within a few seconds.
SERVICE_RETRY_MS = 3000
SERVICE_NOT_RUNNING = bi("स्टेशन सेवा नहीं चल रही है — प्रतीक्षा की जा रही है… (स्टेशन व्यवस्थापक को बताएँ)",
                         "The station service is not running — waiting for it… (tell the station admin)")
MAY_UNLOCK = ("supervisor", "unit-head")
MAY_LOCK_STATION = ("supervisor", "unit-head", "admin")
MAY_READ_AUDIT = ("supervisor", "unit-head", "admin")
MAY_SCAN = ("operator", "supervisor")  # the permission matrix's SCAN cell
MAY_VERIFY = ("supervisor",)  # the first pair of eyes (ui/verify.py)
MAY_SEE_PROGRESS = ("supervisor", "unit-head")  # the dashboard (ui/dashboard.py; service op progress)
MAY_SIGN_OFF = ("unit-head",)  # ui/signoff.py; the service checks it again (scanstation.people.roles)
ACTIVITY = frozenset({QEvent.Type.KeyPress, QEvent.Type.MouseButtonPress, QEvent.Type.Wheel,
                      QEvent.Type.TouchBegin, QEvent.Type.MouseMove})
# Keys that close or quit a window in desktop conventions.  Qt binds none of them by itself, and no window
# manager runs under cage; they are eaten all the same, so that no widget, shortcut or future menu can bind one.
Ctrl, Alt = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.AltModifier
WAY_OUT_KEYS = frozenset({(Qt.Key.Key_F4, Alt), (Qt.Key.Key_F4, Ctrl), (Qt.Key.Key_Q, Ctrl), (Qt.Key.Key_W, Ctrl),
                          (Qt.Key.Key_F4, Ctrl | Alt), (Qt.Key.Key_Q, Ctrl | Qt.KeyboardModifier.ShiftModifier)})
WAY_OUT_STANDARD = (QKeySequence.StandardKey.Quit, QKeySequence.StandardKey.Close)


class _ActivityFilter(QObject):
    def __init__(self, on_activity: Callable[[], None]) -> None:
        super().__init__()
        self._on_activity = on_activity

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in ACTIVITY:
            self._on_activity()
        return False


class _NoWayOut(QObject):
    """Eats the close and quit keys (:data:`WAY_OUT_KEYS`) application-wide, before shortcuts see them."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in (QEvent.Type.KeyPress, QEvent.Type.ShortcutOverride, QEvent.Type.KeyRelease) \
                and isinstance(event, QKeyEvent) and way_out(event):
            event.accept()
            return True
        return False


def way_out(event: QKeyEvent) -> bool:
    mods = event.modifiers() & (Ctrl | Alt | Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.MetaModifier)
    return (Qt.Key(event.key()), mods) in WAY_OUT_KEYS or any(event.matches(k) for k in WAY_OUT_STANDARD)


class ServiceWaitScreen(QWidget):
    """A production kiosk whose station service does not answer: nothing to sign in to, nothing to do but
    wait for it (and tell the admin).  The window keeps trying (:data:`SERVICE_RETRY_MS`); the last try's
    time shows that it does."""

    def __init__(self) -> None:
        super().__init__()
        outer = QVBoxLayout(self)
        outer.addStretch(2)
        self.title = heading(SERVICE_NOT_RUNNING, 24)
        outer.addWidget(self.title)
        self.tried = QLabel("")
        self.tried.setAlignment(CENTER)
        outer.addWidget(self.tried)
        outer.addStretch(3)

    def tried_at(self, when: datetime) -> None:
        self.tried.setText(bi(f"अंतिम प्रयास {when:%H:%M:%S}", f"last tried at {when:%H:%M:%S}"))


class StationWindow(QMainWindow):
    def __init__(self, config: Config, demo_action: Callable[[], object] | None = None, *,
                 link: ServiceLink | None = None, idle_ms: int | None = None) -> None:
        """``link``: the station service (default: :func:`~ui.service_link.open_link`, the running service;
        without one, on a production station a link that waits for it, elsewhere an in-process service for
        development); ``idle_ms``: the lock-screen idle time
        (default: the session idle time of the configuration); ``demo_action``: see :mod:`ui.batches`."""
        super().__init__()
        # first: the window's own calls below (setWindowTitle) already deliver change events
        self.kiosk = False  # show_kiosk(): the window can then be neither closed nor left
        self._ending = False  # end_session(): the application itself is ending; closing is allowed
        self.config = config
        self.link = link if link is not None else open_link(config)
        self.link.session_lost = self._session_lost
        self.link.service_lost = self._service_lost
        self.person: dict[str, Any] | None = None
        self.title = f"ScanStation · {config.station.unit}"
        mode = "" if config.station.mode == "production" else f" · {config.station.mode}"
        self.setWindowTitle(f"ScanStation — {config.station.unit} ({config.station.id})")
        self._no_way_out = _NoWayOut()
        self._unlock_clipboard: Callable[[], None] | None = None
        # one watermark for every view of a page: station and person from the service's status, the minute
        self.watermark = Watermark()

        self.stack = QStackedWidget()
        self.service_wait = ServiceWaitScreen()
        self.sign_in = SignInScreen(self.link, self.title + mode)
        self.unlock = UnlockScreen(self.link)
        self.station_locked = StationLockedScreen()
        self.guard_notice = GuardNotice()
        self.lock_screen = LockScreen(self.link)
        self.batches = BatchesScreen(self.link, demo_action)
        self.operator = OperatorScreen(self.link, watermark=self.watermark)
        self.accounts = AccountsScreen(self.link)
        self.audit = AuditScreen(self.link)
        self.verify = VerifyScreen(self.link, self.watermark)
        self.dashboard = DashboardScreen(self.link)
        self.signoff = SignoffScreen(self.link)
        self.work = self._work_page(mode)
        # the faint watermark over the rest of the work screen (lists, dashboard, accounts, audit trail); the
        # page views paint the full one themselves
        self.work_watermark = WatermarkOverlay(self.watermark, self.work,
                                               [self.verify.view, self.verify.tree, self.operator.tiles_view])
        for page in (self.service_wait, self.sign_in, self.unlock, self.station_locked, self.guard_notice,
                     self.work, self.lock_screen):
            self.stack.addWidget(page)
        self.setCentralWidget(self.stack)

        # compatibility with the window before the shell: the batch table and the demo button
        self.table = self.batches.table
        self.demo_button = self.batches.demo_button
        self.demo_action = demo_action

        self.sign_in.signed_in.connect(self._signed_in)
        self.unlock.unlocked.connect(self._enter_work)
        self.unlock.sign_out_requested.connect(self.sign_out)
        self.station_locked.check_again.connect(self._check_station)
        self.station_locked.sign_out_requested.connect(self.sign_out)
        self.guard_notice.go_on.connect(self._past_guard_notice)
        self.guard_notice.check_again.connect(self._check_station)
        self.guard_notice.sign_out_requested.connect(self.sign_out)
        self.lock_screen.resumed.connect(self._resumed)
        self.lock_screen.someone_else.connect(self._someone_else)

        self.idle_ms = idle_ms if idle_ms is not None else int(config.service.idle_minutes * 60_000)
        self.idle_timer = QTimer(self)
        self.idle_timer.setSingleShot(True)
        self.idle_timer.timeout.connect(self.lock)
        self.refresh_timer = QTimer(self)
        self.refresh_timer.timeout.connect(self.batches.refresh)
        self._active = False
        self.heartbeat = QTimer(self)
        self.heartbeat.timeout.connect(self._heartbeat)
        self.guard_poll = QTimer(self)
        self.guard_poll.timeout.connect(self._poll_guard)
        self._filter = _ActivityFilter(self._activity)
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self._filter)
        self._locked_token: str | None = None  # the session left locked when someone else signs in
        self._guard_since: Any = None  # the device guard's trip shown on the notice (its "since")
        self._guard_seen: Any = None  # ... and the one the admin went past
        self.screen_locked = False  # answers to calls made before the lock must not uncover the screen
        self.service_retry = QTimer(self)
        self.service_retry.timeout.connect(self._try_service)
        self._trying = False  # one try at the socket at a time (a full backlog makes one last up to 2 s)
        if self.link.waiting:
            self._wait_for_service()
        else:
            self.show_sign_in()

    # ------------------------------------------------------------------ layout of the work page
    def _work_page(self, mode: str) -> QWidget:
        page = QWidget()
        outer = QVBoxLayout(page)
        bar = QHBoxLayout()
        self.header = QLabel(f"<h2>{self.title}{mode}</h2>")
        bar.addWidget(self.header)
        bar.addStretch(1)
        self.who = QLabel("")
        bar.addWidget(self.who)
        outer.addLayout(bar)
        bar = QHBoxLayout()
        bar.addStretch(1)
        self.lock_button = button(bi("स्क्रीन बंद करें", "Lock"))
        self.end_of_day_button = button(bi("दिन समाप्त: स्टेशन बंद करें", "End of day: lock the station"))
        self.sign_out_button = button(bi("बाहर निकलें", "Sign out"))
        for b in (self.lock_button, self.end_of_day_button, self.sign_out_button):
            bar.addWidget(b)
        outer.addLayout(bar)
        self.notice = QLabel("")
        self.notice.setStyleSheet("color: #8a4b00;")
        self.notice.setWordWrap(True)
        outer.addWidget(self.notice)
        if self.link.in_process:
            self.notice.setText(bi("विकास मोड: स्टेशन सेवा इसी प्रक्रिया में चल रही है",
                                   "development mode: no station service was running, so it runs inside this "
                                   "window's process (production runs 'scanstation serve' separately)"))
        self.tabs = QTabWidget()
        self.tabs.addTab(self.operator, bi("स्कैन", "Scan"))
        self.tabs.addTab(self.batches, bi("बैच", "Batches"))
        self.tabs.addTab(self.accounts, bi("खाते", "Accounts"))
        self.tabs.addTab(self.verify, bi("सत्यापन", "Verification"))
        self.tabs.addTab(self.signoff, bi("साइन-ऑफ़", "Sign-off"))
        self.tabs.addTab(self.dashboard, bi("प्रगति", "Progress"))
        self.tabs.addTab(self.audit, bi("ऑडिट", "Audit"))
        self.tabs.currentChanged.connect(self._tab_shown)
        outer.addWidget(self.tabs, 1)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        outer.addWidget(self.message)
        self.lock_button.clicked.connect(self.lock)
        self.end_of_day_button.clicked.connect(self.lock_station)
        self.sign_out_button.clicked.connect(self.sign_out)
        return page

    # ------------------------------------------------------------------ no service yet (production)
    def _wait_for_service(self) -> None:
        self.service_wait.tried_at(datetime.now())  # open_link has just tried
        self.stack.setCurrentWidget(self.service_wait)
        self.service_retry.start(SERVICE_RETRY_MS)

    def _try_service(self) -> None:
        if self._trying or self._ending:
            return
        self._trying = True
        run_in_background(self.link.connect, self._service_tried, self._service_try_failed)

    def _service_tried(self, connected: bool) -> None:
        self._trying = False
        if self._ending or not qt_alive(self.service_wait):
            return  # a try still under way when the window went (closed, deleted): nothing left to show
        if connected:
            self.service_retry.stop()
            self.show_sign_in()
        else:
            self.service_wait.tried_at(datetime.now())

    def _service_lost(self, _err: BaseException) -> None:
        """The service stopped under a running kiosk (a crash that systemd restarts, an admin's restart):
        whoever was signed in is signed out with it (its sessions lived in the service), the page views go,
        and the window waits for the service as at a late start."""
        if self._ending or not qt_alive(self.stack) or self.stack.currentWidget() is self.service_wait:
            return
        self.show_sign_in()
        self._wait_for_service()

    def _service_try_failed(self, _err: BaseException) -> None:
        # e.g. the socket's directory not readable yet while the service sets it up: the next try
        self._service_tried(False)

    # ------------------------------------------------------------------ moving between screens
    def show_sign_in(self, note: str = "") -> None:
        self.person = None
        self.screen_locked = False
        self.link.token = None
        self.watermark.clear_identity()
        self.idle_timer.stop()
        self.refresh_timer.stop()
        self.heartbeat.stop()
        self.guard_poll.stop()
        self.operator.reset()
        self.sign_in.reset(note)
        self.stack.setCurrentWidget(self.sign_in)

    def _signed_in(self, person: dict[str, Any]) -> None:
        self.person = person
        self.idle_timer.start(self.idle_ms)
        self.heartbeat.start(HEARTBEAT_MS)
        old, self._locked_token = self._locked_token, None
        if old is not None and old != self.link.token:  # "someone else" at the lock screen: end that session
            self.link.submit("end_locked_session", {"token": old}, lambda _r: None, lambda _e: None)
        self._check_station()

    def _check_station(self) -> None:
        self.link.submit("status", {}, self._status, self._call_failed)

    def _status(self, status: Any) -> None:
        if self.person is None or self.screen_locked:
            return
        role = str(self.person["role"])
        # the watermark names what the service says: its station id, the session's person and role
        self.watermark.set_identity(str(status.get("station") or ""),
                                    str(status.get("signed_in") or self.person["name"]),
                                    str(status.get("role") or role))
        guard = status.get("guard") or {}
        if isinstance(guard, dict) and guard.get("state") == "tripped" \
                and not (role == "admin" and guard.get("since") == self._guard_seen):
            self._guard_since = guard.get("since")
            self.guard_poll.stop()
            self.guard_notice.prepare(str(self.person["name"]), role, guard)
            self.stack.setCurrentWidget(self.guard_notice)  # full screen, before anything else
            return
        if not status.get("locked") or role == "admin":
            self._enter_work()
        elif role in MAY_UNLOCK:
            self.unlock.prepare(str(self.person["name"]), role)
            self.stack.setCurrentWidget(self.unlock)
        else:
            self.station_locked.prepare(str(self.person["name"]), role)
            self.stack.setCurrentWidget(self.station_locked)

    def _past_guard_notice(self) -> None:
        """The notice's button: a supervisor or unit head to the unlock (which clears the trip), the admin on."""
        if self.person is None:
            return
        name, role = str(self.person["name"]), str(self.person["role"])
        if role in MAY_UNLOCK:
            self.unlock.prepare(name, role)
            self.stack.setCurrentWidget(self.unlock)
        elif role == "admin":
            self._guard_seen = self._guard_since  # seen: not shown again until another trip
            self._enter_work()

    def _poll_guard(self) -> None:
        if self.person is not None and not self.screen_locked and self.stack.currentWidget() is self.work:
            self.link.submit("status", {}, self._guard_polled, lambda _e: None)  # a lost session: session_lost

    def _guard_polled(self, status: Any) -> None:
        guard = status.get("guard") if isinstance(status, dict) else None
        if isinstance(guard, dict) and guard.get("state") == "tripped" and self.person is not None \
                and not self.screen_locked and self.stack.currentWidget() is self.work:
            self._status(status)  # (an admin's session is not ended by the guard: the notice all the same)

    def _enter_work(self) -> None:
        if self.person is None or self.screen_locked:
            return
        name, role = str(self.person["name"]), str(self.person["role"])
        self.who.setText(f"{bi('प्रवेश', 'signed in')}: {name} ({role})")
        self.tabs.setTabVisible(self.tabs.indexOf(self.batches), role != "admin")  # the admin sees no batch
        self.tabs.setTabVisible(self.tabs.indexOf(self.accounts), role == "admin")
        self.tabs.setTabVisible(self.tabs.indexOf(self.operator), role in MAY_SCAN)
        self.tabs.setTabVisible(self.tabs.indexOf(self.audit), role in MAY_READ_AUDIT)
        self.tabs.setTabVisible(self.tabs.indexOf(self.verify), role in MAY_VERIFY)
        self.tabs.setTabVisible(self.tabs.indexOf(self.dashboard), role in MAY_SEE_PROGRESS)
        self.tabs.setTabVisible(self.tabs.indexOf(self.signoff), role in MAY_SIGN_OFF)
        self.end_of_day_button.setVisible(role in MAY_LOCK_STATION)
        self.message.setText("")
        self.tabs.setCurrentWidget(self.accounts if role == "admin" else self.operator if role == "operator"
                                   else self.signoff if role in MAY_SIGN_OFF else self.batches)
        self.stack.setCurrentWidget(self.work)
        self.guard_poll.start(GUARD_POLL_MS)
        self._tab_shown(self.tabs.currentIndex())

    def _tab_shown(self, _index: int) -> None:
        if self.stack.currentWidget() is not self.work or self.person is None:
            return
        current = self.tabs.currentWidget()
        if current is self.operator:
            self.operator.shown()
        else:
            self.operator.hidden()
        if current is self.batches:
            self.batches.refresh()
            self.refresh_timer.start(REFRESH_MS)
        else:
            self.refresh_timer.stop()
            if current is self.accounts:
                self.accounts.refresh()
            elif current is self.audit:
                self.audit.refresh()
            elif current is self.verify:
                self.verify.refresh()
                self.verify.setFocus()  # the screen's keys work at once
            elif current is self.dashboard:
                self.dashboard.refresh()
            elif current is self.signoff:
                self.signoff.shown()
                self.signoff.setFocus()

    # ------------------------------------------------------------------ idle, lock screen, resume
    def _activity(self) -> None:
        if self.person is not None and not self.screen_locked:
            self._active = True
            self.idle_timer.start(self.idle_ms)

    def _heartbeat(self) -> None:
        if self._active and self.person is not None and not self.screen_locked:
            self._active = False
            self.link.submit("whoami", {}, lambda _r: None, lambda _e: None)

    def lock(self) -> None:
        """Cover everything; only the same person's password (or someone else signing in) goes on."""
        if self.person is None or self.screen_locked:
            return
        self.screen_locked = True
        self.idle_timer.stop()
        self.refresh_timer.stop()
        self.heartbeat.stop()
        self.guard_poll.stop()
        self.operator.hidden()  # the scan goes on in the service; its events wait for the person's return
        self.lock_screen.prepare(str(self.person["name"]), self.link.token)
        self.stack.setCurrentWidget(self.lock_screen)
        self.link.submit("lock_session", {}, lambda _r: None, self._lock_failed)

    def _lock_failed(self, err: BaseException) -> None:
        # the session had already ended (idle in the service): nothing to resume
        if self.screen_locked and self.stack.currentWidget() is self.lock_screen:
            self.show_sign_in(describe_error(err))

    def _resumed(self) -> None:
        self.screen_locked = False
        self.idle_timer.start(self.idle_ms)
        self.heartbeat.start(HEARTBEAT_MS)
        self._check_station()

    def _someone_else(self) -> None:
        token = self.lock_screen.locked_token
        self.show_sign_in(bi("अपने नाम से प्रवेश करें; बंद सत्र समाप्त हो जाएगा",
                             "sign in with your own name; the locked session will be ended"))
        self._locked_token = token

    # ------------------------------------------------------------------ sign out, end of day
    def sign_out(self) -> None:
        if self.link.token is not None:
            self.link.submit("sign_out", {}, lambda _r: None, lambda _e: None)
        self.show_sign_in()

    def lock_station(self) -> None:
        """End of day: the service wipes the keys from memory; then this person is signed out."""
        self.end_of_day_button.setEnabled(False)
        self.link.submit("lock", {}, self._station_locked_for_the_day, self._call_failed)

    def _station_locked_for_the_day(self, _result: Any) -> None:
        self.end_of_day_button.setEnabled(True)
        self.link.submit("sign_out", {}, lambda _r: None, lambda _e: None)
        self.show_sign_in(bi("स्टेशन दिन भर के लिए बंद कर दिया गया", "the station is locked for the day"))

    def _call_failed(self, err: BaseException) -> None:
        self.end_of_day_button.setEnabled(True)
        self.message.setText(describe_error(err))
        if self.stack.currentWidget() is self.station_locked:
            self.station_locked.message.setText(describe_error(err))

    def _session_lost(self, err: BaseException) -> None:
        if self.screen_locked or self.stack.currentWidget() is self.sign_in:
            return
        self.show_sign_in(describe_error(err))

    # ------------------------------------------------------------------ the window itself
    def show_kiosk(self) -> None:
        """Fill the primary screen, for good: from now on the window refuses to close (until
        :meth:`end_session`), to be minimised or to leave full screen, and the application has no clipboard,
        no context menu, no drop from elsewhere and no close or quit key.

        With no window manager (Xvfb) ``showFullScreen`` alone leaves the window at 640x480, so the geometry is
        set first (not on Wayland: there the compositor gives the window the whole output)."""
        self.kiosk = True
        # no title bar, so no close or minimise button, whatever the compositor or window manager would draw
        self.setWindowFlag(Qt.WindowType.FramelessWindowHint, True)
        self.setWindowFlag(Qt.WindowType.WindowMinimizeButtonHint, False)
        self.setWindowFlag(Qt.WindowType.WindowCloseButtonHint, False)
        app = QApplication.instance()
        if isinstance(app, QApplication):
            app.installEventFilter(self._no_way_out)
            if self._unlock_clipboard is None:
                self._unlock_clipboard = lock_down(app)
        self._fill_screen()

    def _fill_screen(self) -> None:
        screen = QApplication.primaryScreen()
        # On Wayland the compositor sizes the window (cage: to the whole output), and a geometry set by the
        # client first leaves cage showing nothing at all (measured: grim's picture stays black).
        if screen is not None and QApplication.platformName() != "wayland":
            self.setGeometry(screen.geometry())
        self.showFullScreen()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() != QEvent.Type.WindowStateChange or not self.kiosk:
            return
        QTimer.singleShot(0, self, self._keep_full_screen)  # once the change has settled (the size comes after)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        if self.kiosk:
            QTimer.singleShot(0, self, self._keep_full_screen)

    def _keep_full_screen(self) -> None:
        """Minimised, or smaller than the screen (showNormal, a window manager): full screen again.  A compositor
        may well report the window maximised rather than full screen while it gives it the whole output: that
        is left alone, or each report would start another round."""
        if self._ending:
            return
        if self.windowState() & Qt.WindowState.WindowMinimized or not self._covers_screen():
            self._fill_screen()

    def _covers_screen(self) -> bool:
        screen = QApplication.primaryScreen()
        if screen is None:
            return True
        return self.geometry().contains(screen.geometry())

    def end_session(self) -> None:
        """The application ends (a system shutdown: SIGTERM from systemd; see :mod:`ui.app`): the window closes
        after signing the person out.  The only way the kiosk window closes."""
        if self._ending:
            return  # already ended (SIGTERM, then the event loop's own end)
        self._ending = True
        self.close()

    def closeEvent(self, event: Any) -> None:
        if self.kiosk and not self._ending:
            event.ignore()  # the compositor's close, Alt+F4 under a window manager, close(): the kiosk stays
            return
        self.operator.reset()  # no more polls of the scan; answers still under way are then ignored
        self.service_retry.stop()
        self.idle_timer.stop()
        self.refresh_timer.stop()
        self.heartbeat.stop()
        self.guard_poll.stop()
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self._filter)
            app.removeEventFilter(self._no_way_out)
        if self._unlock_clipboard is not None:
            self._unlock_clipboard()
            self._unlock_clipboard = None
        QThreadPool.globalInstance().waitForDone(10_000)  # calls under way finish before the link closes
        self.verify.cache.wait(10_000)  # and the page images being fetched
        if self.link.token is not None:
            with contextlib.suppress(Exception):  # closing: the session ends with the service anyway
                self.link.call("sign_out")
            self.link.token = None
        self.link.close()
        super().closeEvent(event)

"""The kiosk's one line to the station service: every screen calls the service through a :class:`ServiceLink`.

The kiosk is a *client*: it never holds a key, opens no store and reads no vault.  In production the
station service runs as its own process and system user (``scanstation serve``; the installer's systemd
unit) and the kiosk reaches it over its Unix socket (:class:`~scanstation.service.client.RemoteConnection`).
Only when no service answers on the configured socket on a training or demo station (a developer's
machine, the demo station, the tests) does :func:`open_link` run a
:class:`~scanstation.service.core.StationService` inside the UI's process
(:class:`~scanstation.service.client.LocalConnection`): the same operations, permission checks and audit
entries, but then this process holds the keys once someone unlocks; the window says so.  A production
station never does: the kiosk's account must never hold the station's keys, so there the link starts
*waiting* (no connection) and :meth:`ServiceLink.connect` is tried again until the service answers
(the window shows "the station service is not running" meanwhile: :mod:`ui.shell`).

Calls go off the UI thread (:meth:`ServiceLink.submit`, the :mod:`ui.background` pattern) and are
serialised on the one connection: a socket carries one request at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scanstation.config import Config
from scanstation.errors import SignInError, StateError
from scanstation.service.client import LocalConnection, RemoteConnection, ServiceConnection, service_running
from scanstation.service.wire import WireError

from .background import run_in_background
from .qt import QObject, Signal

NO_SESSION_OPS = frozenset({"sign_in", "resume"})


def session_over(err: BaseException) -> bool:
    """Whether a call failed because the session behind the token has ended (not a wrong password)."""
    return isinstance(err, SignInError) and "session" in err.message


class EventRelay(QObject):
    """Carries an operation's progress events from the background thread to the UI thread (a queued signal)."""

    arrived = Signal(str, object)

    def __init__(self, handler: Callable[[str, dict[str, Any]], None]) -> None:
        super().__init__()
        self.arrived.connect(handler)


class ServiceLink:
    """A ServiceConnection, the session token of whoever is signed in at the kiosk, and a lock.

    ``connection`` None: waiting for the service on ``socket_path`` (a production station whose service is
    not running yet, :meth:`waiting_for`); every call then fails until :meth:`connect` succeeds."""

    def __init__(self, connection: ServiceConnection | None, *, in_process: bool,
                 socket_path: Path | None = None) -> None:
        self.connection = connection
        self.in_process = in_process
        self.socket_path = socket_path
        self.token: str | None = None
        # told (on the UI thread) when a call finds the signed-in session over: idle, 12 h, locked elsewhere
        self.session_lost: Callable[[BaseException], None] | None = None
        # told (on the UI thread) when a call finds the service gone (stopped, restarted, crashed): the link
        # is waiting again, and :meth:`connect` makes the next connection when the service answers
        self.service_lost: Callable[[BaseException], None] | None = None
        self._lock = threading.Lock()

    @classmethod
    def waiting_for(cls, socket_path: Path) -> ServiceLink:
        """A link with no connection yet: the service on ``socket_path`` is to be waited for, never replaced."""
        return cls(None, in_process=False, socket_path=socket_path)

    @property
    def waiting(self) -> bool:
        return self.connection is None

    def connect(self) -> bool:
        """Whether the link is connected now: if it waits, one try at the service's socket.  Blocking (a
        connect on a Unix socket; at most the probe's 2 s when the service's backlog is full): from a
        background thread."""
        with self._lock:
            if self.connection is not None:
                return True
            if self.socket_path is None or not service_running(self.socket_path):
                return False
            try:
                self.connection = RemoteConnection(self.socket_path)
            except StateError:
                return False  # it went away between the probe and the connect: the next try
            return True

    def call(self, op: str, on_event: Callable[[str, dict[str, Any]], None] | None = None, **args: Any) -> Any:
        """One operation, blocking: only ever from a background thread (or a test)."""
        with self._lock:
            if self.connection is None:
                raise StateError("the station service is not running")
            self.connection.token = self.token
            try:
                return self.connection.call(op, on_event, **args)
            except WireError:
                if self.in_process or self.socket_path is None:
                    raise
                # The service went away (systemd restarts it after a crash; an admin restarts it): this socket
                # is dead for good, and every session it knew died with it.  Wait for the next service.
                self.connection.close()
                self.connection = None
                self.token = None
                raise

    def submit(self, op: str, args: dict[str, Any], on_done: Callable[[Any], None],
               on_failed: Callable[[BaseException], None],
               on_event: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        """Run ``op`` in the background; ``on_done(result)`` or ``on_failed(error)`` run on the UI thread, and so
        does ``on_event(kind, data)`` for each progress event the operation sends before its answer."""
        token = self.token
        relay = EventRelay(on_event) if on_event is not None else None

        def failed(err: BaseException) -> None:
            on_failed(err)
            if isinstance(err, WireError) and self.waiting and self.service_lost is not None:
                self.service_lost(err)
                return
            if session_over(err) and op not in NO_SESSION_OPS and token == self.token \
                    and self.session_lost is not None:
                self.session_lost(err)

        emit = relay.arrived.emit if relay is not None else None
        run_in_background(lambda: self.call(op, emit, **args), on_done, failed, keep=relay)

    def close(self) -> None:
        with self._lock:
            if self.connection is not None:
                self.connection.close()


def open_link(config: Config) -> ServiceLink:
    """The running station service when one answers on ``config.socket_path``.  Otherwise, on a production
    station, a link that waits for it (:meth:`ServiceLink.waiting_for`): a service inside the kiosk's process
    would hold the station's keys in the kiosk account's memory.  On a training or demo station (development,
    the demo, the tests) a service in this process instead."""
    if service_running(config.socket_path):
        return ServiceLink(RemoteConnection(config.socket_path), in_process=False, socket_path=config.socket_path)
    if config.station.mode == "production":
        return ServiceLink.waiting_for(config.socket_path)
    from scanstation.service.core import StationService

    return ServiceLink(LocalConnection(StationService(config)), in_process=True)

"""Talking to the station service: over its socket when it runs, in this process when it does not.

Both kinds of :class:`ServiceConnection` run the same operation table
(:data:`scanstation.service.server.OPERATIONS`) against a :class:`StationService`, so the CLI and the
kiosk see the same answers, refusals and audit entries whichever way they reach it.  The remote kind
imports nothing heavy (no OpenCV, no store): the kiosk UI uses it.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from scanstation.errors import ScanStationError, StateError
from scanstation.service.wire import WireError, error_from_payload, recv_message, send_message

EventSink = Callable[[str, dict[str, Any]], None]


class ServiceConnection(Protocol):
    token: str | None

    def call(self, op: str, on_event: EventSink | None = None, **args: Any) -> Any: ...

    def close(self) -> None: ...


class RemoteConnection:
    """One socket connection to ``scanstation serve``; calls are serialised on it."""

    def __init__(self, path: Path, timeout: float | None = 600.0) -> None:
        self.path = path
        self.token: str | None = None
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(str(path))
        except OSError as e:
            self._sock.close()
            raise StateError(f"{path}: no station service answers here ({e.strerror})") from e

    def call(self, op: str, on_event: EventSink | None = None, **args: Any) -> Any:
        try:
            send_message(self._sock, {"op": op, "token": self.token, "args": args})
            while True:
                reply, blobs = recv_message(self._sock)
                if "event" in reply:
                    if on_event is not None:
                        on_event(str(reply["event"]), reply.get("data") or {})
                    continue
                if reply.get("ok") is True:
                    result = reply.get("result")
                    if isinstance(result, dict) and result.get("blob") == 0 and blobs:
                        return blobs[0]
                    return result
                raise error_from_payload(reply.get("error"))
        except TimeoutError as e:
            raise WireError(f"the station service did not answer {op} in time") from e
        except OSError as e:
            raise WireError(f"lost the connection to the station service during {op}: {e}") from e

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> RemoteConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalConnection:
    """The same operations against a StationService in this process (no service running)."""

    def __init__(self, service: Any, *, owns_service: bool = True) -> None:
        self.service = service
        self.token: str | None = None
        self._owns = owns_service

    def call(self, op: str, on_event: EventSink | None = None, **args: Any) -> Any:
        from scanstation.service.server import OPERATIONS, PASSIVE_OPERATIONS

        if op not in OPERATIONS:
            raise StateError(f"unknown operation {op!r}")
        handler, needs_session = OPERATIONS[op]
        caller = None
        if needs_session:
            if not self.token:
                raise ScanStationError("sign in first")
            caller = self.service.caller(self.token, passive=op in PASSIVE_OPERATIONS)
        return handler(self.service, caller, args, on_event or (lambda kind, data: None))

    def close(self) -> None:
        if self._owns:
            self.service.close()


def service_running(path: Path) -> bool:
    """Whether a station service answers on ``path`` (a stale socket file does not count)."""
    if not path.exists():
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(2)
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()

"""Who is calling: the enrolled station behind a request, or the 401/403 that ends it.

With TLS the caller is the station whose *current* client certificate the connection presented (the TLS
layer has already verified it against the portal's station CA; here its serial and SHA-256 must be the
enrolled ones, and the station not revoked).  Without TLS (loopback tests only) the caller is the one
station named by ``--dev-station``, which must be enrolled too.  Nothing but ``/health`` is served
to anyone else, so no byte of an unknown caller is ever stored.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

import anyio.to_thread
from cryptography import x509
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from .db import Station
from .transport import PEER_CERT

CALLER = "scanstation.station"
log = logging.getLogger("receiver.auth")
OPEN_PATHS = frozenset({"/health"})


class CallerRefused(Exception):
    def __init__(self, status: int, check: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.check = check
        self.reason = reason


def caller(scope: Scope) -> Station:
    """The authenticated station of a request (set by StationAuthMiddleware)."""
    station = scope.get("state", {}).get(CALLER)
    if not isinstance(station, Station):  # never reached behind the middleware
        raise RuntimeError("request without an authenticated station")
    return station


def identify_by_certificate(der: bytes | None, by_serial: Callable[[str], Station | None]) -> Station:
    if not der:
        raise CallerRefused(401, "client_certificate", "a client certificate issued by this portal's station CA "
                                                       "is required (enrol the station: scanstation enrol)")
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        raise CallerRefused(401, "client_certificate", "the client certificate cannot be parsed") from None
    serial = format(cert.serial_number, "x")
    station = by_serial(serial)
    if station is None or station.cert_sha256 != hashlib.sha256(der).hexdigest():
        cns = [a.value for a in cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)]
        cn = cns[0] if cns and isinstance(cns[0], str) else "?"
        raise CallerRefused(403, "station_unknown", f"client certificate serial {serial} (CN {cn}) "
                                                    "is not the current certificate of an enrolled station")
    return _not_revoked(station)


def identify_dev_station(station_id: str, by_id: Callable[[str], Station | None]) -> Station:
    station = by_id(station_id)
    if station is None:
        raise CallerRefused(403, "station_unknown", f"--dev-station {station_id!r} is not an enrolled station "
                                                    "(scanstation-receiver enrol)")
    return _not_revoked(station)


def _not_revoked(station: Station) -> Station:
    if station.revoked:
        raise CallerRefused(403, "station_revoked", f"station {station.station_id!r} has been revoked")
    return station


class StationAuthMiddleware:
    def __init__(self, app: ASGIApp, identify: Callable[[dict[str, Any]], Station]) -> None:
        """``identify(scope_state) -> Station`` raises CallerRefused; it runs in a worker thread (database)."""
        self.app = app
        self.identify = identify

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        try:
            state[CALLER] = await anyio.to_thread.run_sync(self.identify, state)
        except CallerRefused as e:
            client = scope.get("client")
            log.warning("%s %s from %s refused: %s: %s", scope["method"], scope["path"],
                        f"{client[0]}:{client[1]}" if client else "?", e.check, e.reason)
            response = JSONResponse({"error": e.reason, "check": e.check}, status_code=e.status,
                                    headers={"Connection": "close"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def peer_certificate(state: dict[str, Any]) -> bytes | None:
    value = state.get(PEER_CERT)
    return value if isinstance(value, bytes) else None

"""uvicorn's h11 protocol with two things the receiver needs from the connection itself.

1. The TLS peer certificate.  uvicorn does not put it into the ASGI scope (no ``extensions["tls"]``), so
   each connection copies the verified client certificate (DER) into the per-request ``scope["state"]``
   under :data:`PEER_CERT`; the app identifies the station from it (receiver.auth).
2. A request-head deadline against slowloris.  uvicorn only times out idle keep-alive connections, and
   any byte received re-arms nothing but cancels that timer: a head trickled one line at a time would
   hold a connection (and its memory) forever.  Here a head must be complete ``head_timeout`` seconds
   after the connection opens or after its first byte arrives; otherwise the connection is closed.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import logging
import ssl
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

PEER_CERT = "scanstation.peer_cert_der"
log = logging.getLogger("receiver.transport")


class ReceiverH11Protocol(H11Protocol):
    head_timeout: float = 10.0  # set by :func:`protocol_class`

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        # app_state is copied into every request's scope["state"]; this protocol object is this connection's
        self.app_state = {**self.app_state, PEER_CERT: der}
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and self.conn.their_state is h11.IDLE:
            self._arm_head_timer()  # the first byte of the next request on a kept-alive connection
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._cancel_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            log.warning("%s: request head not complete within %.0f s; connection closed",
                        f"{self.client[0]}:{self.client[1]}" if self.client else "client", self.head_timeout)
            self.transport.close()


def send_tls_alerts_on_handshake_failure() -> None:
    """Make asyncio send the TLS alert when a handshake fails (a client certificate of another CA).

    CPython's asyncio SSL protocol (3.11-3.13) closes the connection on a failed handshake without
    flushing the alert OpenSSL wrote.  With TLS 1.3 the client has finished its side of the handshake by
    then, so it sees only "connection closed without response" and cannot tell its certificate was
    refused; with the alert it gets "unknown ca" / "certificate unknown" and can say so.  The patch
    only adds the flush before the unchanged error path.
    """
    cls: Any = asyncio.sslproto.SSLProtocol
    if getattr(cls, "_scanstation_alert_patch", False):
        return
    original = cls._do_handshake

    def _do_handshake(self: Any) -> None:
        try:
            self._sslobj.do_handshake()
        except asyncio.sslproto.SSLAgainErrors:
            self._process_outgoing()
        except ssl.SSLError as exc:
            try:
                self._process_outgoing()  # the alert, before the transport is closed
            except Exception:  # never worse than before: close as asyncio does
                log.debug("could not send the TLS alert", exc_info=True)
            self._on_handshake_complete(exc)
        else:
            self._on_handshake_complete(None)

    if not hasattr(cls, "_process_outgoing") or not hasattr(asyncio.sslproto, "SSLAgainErrors"):
        return  # another asyncio: leave it alone
    cls._do_handshake = _do_handshake
    cls._scanstation_alert_patch = True
    cls._scanstation_original_do_handshake = original


def protocol_class(head_timeout: float) -> type[ReceiverH11Protocol]:
    """The protocol class for ``uvicorn.run(http=...)`` with this head deadline."""
    return type("ConfiguredReceiverH11Protocol", (ReceiverH11Protocol,), {"head_timeout": head_timeout})

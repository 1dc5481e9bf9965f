"""The station service's wire format on its Unix socket: framed JSON messages with binary attachments.

A message is a 4-byte big-endian length and that many bytes of UTF-8 JSON (an object); if the object
has ``"blobs": n``, n frames of raw bytes follow (page images travel this way, never as files).
Limits keep a hostile or broken peer from making either side allocate without bound.

Requests:  ``{"op": NAME, "token": SESSION-or-null, "args": {...}}``
Replies:   zero or more ``{"event": KIND, "data": {...}}`` (progress, acknowledged pages), then one
           ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": {"type", "exit_code", "message"}}``.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

from scanstation.errors import ScanStationError

MAX_HEADER = 4 * 1024 * 1024  # a JSON message (status of a big batch is the largest)
MAX_BLOB = 512 * 1024 * 1024  # a page image or PDF
MAX_BLOBS = 64
_LEN = struct.Struct(">I")


class WireError(ScanStationError):
    """The peer broke the protocol (closed early, oversized or malformed frames)."""


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise WireError("the station service connection closed in the middle of a message" if buf
                            else "the station service connection closed")
        buf += chunk
    return bytes(buf)


def send_message(sock: socket.socket, message: dict[str, Any], blobs: list[bytes] | None = None) -> None:
    blobs = blobs or []
    if blobs:
        message = {**message, "blobs": len(blobs)}
    body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if len(body) > MAX_HEADER:
        raise WireError(f"message of {len(body)} bytes is larger than the protocol allows")
    head = _LEN.pack(len(body)) + body
    if sum(len(b) for b in blobs) < (1 << 20):
        sock.sendall(head + b"".join(_LEN.pack(len(b)) + b for b in blobs))
        return
    sock.sendall(head)
    for blob in blobs:  # large attachments: no copy into one buffer
        sock.sendall(_LEN.pack(len(blob)))
        sock.sendall(blob)


def recv_message(sock: socket.socket) -> tuple[dict[str, Any], list[bytes]]:
    (n,) = _LEN.unpack(_recv_exact(sock, _LEN.size))
    if n > MAX_HEADER:
        raise WireError(f"peer sent a {n}-byte message header; the limit is {MAX_HEADER}")
    try:
        message = json.loads(_recv_exact(sock, n).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WireError(f"peer sent a message that is not JSON: {e}") from e
    if not isinstance(message, dict):
        raise WireError("peer sent a message that is not a JSON object")
    count = message.pop("blobs", 0)
    if not isinstance(count, int) or not 0 <= count <= MAX_BLOBS:
        raise WireError(f"peer announced {count!r} attachments; the limit is {MAX_BLOBS}")
    blobs = []
    for _ in range(count):
        (size,) = _LEN.unpack(_recv_exact(sock, _LEN.size))
        if size > MAX_BLOB:
            raise WireError(f"peer sent a {size}-byte attachment; the limit is {MAX_BLOB}")
        blobs.append(_recv_exact(sock, size))
    return message, blobs


def error_payload(err: ScanStationError) -> dict[str, Any]:
    return {"type": type(err).__name__, "exit_code": err.exit_code, "message": err.message}


def error_from_payload(payload: Any) -> ScanStationError:
    """The station error class named by the service (by name, among the known ones), else the root."""
    from scanstation import errors

    if not isinstance(payload, dict):
        return WireError("the station service replied with a malformed error")
    message = str(payload.get("message", "station service error"))
    cls = getattr(errors, str(payload.get("type", "")), None)
    if isinstance(cls, type) and issubclass(cls, ScanStationError) and cls.__init__ is ScanStationError.__init__:
        return cls(message)
    err = ScanStationError(message)
    code = payload.get("exit_code")
    if isinstance(code, int) and 1 <= code <= 125:
        err.exit_code = code
    return err

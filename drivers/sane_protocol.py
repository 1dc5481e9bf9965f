"""The pipe protocol between the SANE driver (parent) and its worker process (child); both sides import it.

Parent -> child, one line each on the child's stdin: the request (one JSON object: ``{"command": "list"}``,
``{"command": "capabilities", "device": ...}`` or ``{"command": "scan", "device": ..., "settings": ...}``),
then, during a scan, "next" or "cancel" after every page.  The child scans sheet N+1 only after the parent
has persisted page N and said "next"; a sheet is never pulled through the feeder while the station could
still lose the previous one.  Closing stdin means "cancel".

Child -> parent, one frame per message on the child's stdout:
    4-byte big-endian header length | UTF-8 JSON header | header["nbytes"] bytes of payload (pages only)
JSON plus raw bytes rather than pickle: the child runs vendor code, and unpickling its output would let a
compromised back end run code in the parent.  Headers carry ``type`` ("devices", "capabilities", "page",
"done", "cancelled", "error"); an error's SANE ``status`` is a ``drivers.sane_status.Status`` code.
"""

from __future__ import annotations

import json
import struct
from typing import IO, Any

MAX_HEADER_BYTES = 1 << 20
MAX_PAYLOAD_BYTES = 1 << 31  # a 1200 dpi A4 colour page is ~420 MB; anything above 2 GiB is a broken child


class ProtocolError(Exception):
    """The other side sent something that is not a well-formed frame."""


def write_frame(stream: IO[bytes], header: dict[str, Any], payload: bytes = b"") -> None:
    header = {**header, "nbytes": len(payload)}
    encoded = json.dumps(header).encode("utf-8")
    stream.write(struct.pack(">I", len(encoded)) + encoded)
    if payload:
        stream.write(payload)
    stream.flush()


def read_frame(stream: IO[bytes]) -> tuple[dict[str, Any], bytes] | None:
    """The next frame, or None at a clean end of stream (between frames)."""
    prefix = _read_exact(stream, 4, allow_eof=True)
    if prefix is None:
        return None
    (length,) = struct.unpack(">I", prefix)
    if length > MAX_HEADER_BYTES:
        raise ProtocolError(f"frame header of {length} bytes")
    raw = _read_exact(stream, length, allow_eof=False)
    assert raw is not None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"bad frame header: {exc}") from exc
    if not isinstance(header, dict):
        raise ProtocolError("frame header is not an object")
    nbytes = header.get("nbytes", 0)
    if not isinstance(nbytes, int) or not 0 <= nbytes <= MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"bad payload size {nbytes!r}")
    payload = _read_exact(stream, nbytes, allow_eof=False) if nbytes else b""
    assert payload is not None
    return header, payload


def _read_exact(stream: IO[bytes], n: int, *, allow_eof: bool) -> bytes | None:
    chunks: list[bytes] = []
    remaining = n
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            if allow_eof and remaining == n:
                return None
            raise ProtocolError(f"stream ended inside a frame ({n - remaining} of {n} bytes)")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)

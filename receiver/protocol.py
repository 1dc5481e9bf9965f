"""Parsing and checking of tus request headers; every refusal says which header and why.

Hostile input is expected here: all numbers are bounded decimal strings, metadata is size-limited
and strictly base64/UTF-8, and nothing from a header reaches a file name.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import re

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,checksum,termination,expiration"
CHECKSUM_ALGORITHMS = "sha256"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"

MAX_METADATA_HEADER = 4096
MAX_METADATA_PAIRS = 32
MAX_METADATA_VALUE = 512
REQUIRED_METADATA = ("batch_uid", "package_sha256", "station_id")

_DIGITS = re.compile(r"^[0-9]{1,19}$")
_META_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class BadRequest(Exception):
    """Maps to an HTTP error: ``status`` and a reason that names the header."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def parse_non_negative(name: str, value: str | None) -> int:
    if value is None:
        raise BadRequest(400, f"{name} header is missing")
    if not _DIGITS.match(value.strip()):
        raise BadRequest(400, f"{name} must be a non-negative decimal integer (at most 19 digits)")
    return int(value.strip())


def parse_metadata(header: str | None) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64(value)`` pairs; required keys present and sane."""
    if header is None:
        raise BadRequest(400, "Upload-Metadata header is missing (needs batch_uid, package_sha256, station_id)")
    if len(header) > MAX_METADATA_HEADER:
        raise BadRequest(400, f"Upload-Metadata is longer than {MAX_METADATA_HEADER} bytes")
    out: dict[str, str] = {}
    pairs = [p.strip() for p in header.split(",")] if header.strip() else []
    if len(pairs) > MAX_METADATA_PAIRS:
        raise BadRequest(400, f"Upload-Metadata has more than {MAX_METADATA_PAIRS} pairs")
    for pair in pairs:
        parts = pair.split(" ")
        if len(parts) > 2 or not _META_KEY.match(parts[0]):
            raise BadRequest(400, f"Upload-Metadata: malformed pair {pair[:80]!r} (expected 'key base64value')")
        key = parts[0]
        if key in out:
            raise BadRequest(400, f"Upload-Metadata: key {key!r} given twice")
        try:
            raw = base64.b64decode(parts[1], validate=True) if len(parts) == 2 else b""
            value = raw.decode("utf-8")
        except (binascii.Error, ValueError):
            raise BadRequest(400, f"Upload-Metadata: value of {key!r} is not base64-encoded UTF-8") from None
        if len(value) > MAX_METADATA_VALUE or any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise BadRequest(400, f"Upload-Metadata: value of {key!r} is too long or has control characters")
        out[key] = value
    for key in REQUIRED_METADATA:
        if not out.get(key):
            raise BadRequest(400, f"Upload-Metadata: {key} is required")
    if not _HEX64.match(out["package_sha256"]):
        raise BadRequest(400, "Upload-Metadata: package_sha256 must be 64 lowercase hex digits")
    for key in ("batch_uid", "station_id"):
        if len(out[key]) > 128:
            raise BadRequest(400, f"Upload-Metadata: {key} is longer than 128 characters")
    return out


def parse_checksum(header: str | None) -> bytes | None:
    """``Upload-Checksum: sha256 <base64 digest>``; other algorithms are refused (400, per tus)."""
    if header is None:
        return None
    parts = header.strip().split(" ")
    if len(parts) != 2:
        raise BadRequest(400, "Upload-Checksum must be '<algorithm> <base64 digest>'")
    if parts[0].lower() != "sha256":
        raise BadRequest(400, f"Upload-Checksum algorithm {parts[0][:20]!r} is not supported (use sha256)")
    try:
        digest = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 32:
        raise BadRequest(400, "Upload-Checksum digest is not a base64 SHA-256 (32 bytes)")
    return digest


def http_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)

"""One HTTP exchange with a tus server, made safely, and the strict checks on its reply.

The tus client (scanstation/upload/tus_client.py) decides *what* to send; this module sends it and
distrusts the answer:

* ``TusHttp.request`` sets explicit ``(connect, read)`` timeouts, ``allow_redirects=False`` and TLS
  verification (``verify=ca_bundle`` or requests' default; never ``False``, even if a caller's session
  says so, because a per-request ``verify`` wins over the session's), presents the station's client
  certificate (``cert``) when it has one, refuses redirects and oversized or too many reply headers, and
  reads at most a bounded excerpt of any body;
* the portal refusing that certificate (a TLS alert such as certificate_required or unknown_ca) is
  ``PortalRejected`` with a message naming the station's enrolment;
* a failure worth retrying (connection error, timeout, 5xx, 408, 423, 429) is ``Transient``; a reply
  that breaks the protocol (missing or wrong ``Tus-Resumable``, an offset that is not a plain integer, an
  unverifiable certificate) is ``PortalRejected``;
* ``encode_metadata`` builds the ``Upload-Metadata`` header.

File contents are never logged or put into messages.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import re
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import NoReturn
from urllib.parse import urlsplit

import requests

from scanstation.errors import PortalRejected
from scanstation.upload.tus_pacing import BodyCancelled, ChunkBody

TUS_VERSION = "1.0.0"
CHECKSUM_ALGORITHM = "sha256"

# Transient replies: the same request may succeed later.  409 is only transient on PATCH (our offset
# was stale, e.g. the server was still writing the remains of a cut request when we asked with HEAD).
TRANSIENT_STATUSES = frozenset({408, 423, 429})
GONE_STATUSES = frozenset({404, 410})
CHECKSUM_MISMATCH = 460
_INT_RE = re.compile(r"[0-9]{1,19}")  # ASCII digits only: int() would accept "+5", " 5", "5_0", "５"
_METADATA_KEY_RE = re.compile(r"[!-~]+")  # visible ASCII; spaces and commas are separators
_BODY_EXCERPT_BYTES = 1024  # what an error reply may contribute to a message
_BODY_DRAIN_BYTES = 64 * 1024  # read this much of a reply so the connection can be reused, no more


class Transient(Exception):
    """A failure worth retrying; ``cause`` is a short description for logs and the final UploadError."""

    def __init__(self, cause: str, retry_after: float | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.retry_after = retry_after


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    excerpt: str  # printable start of the body, for error messages


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of ``url``, lower-cased, with the scheme's default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = {"http": 80, "https": 443}.get(scheme, -1)
    return scheme, (parts.hostname or "").lower(), port


def printable(raw: bytes | str, limit: int = 200) -> str:
    """At most ``limit`` characters of a server-supplied value, safe to put into a message or log."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = "".join(ch if ch.isprintable() else "?" for ch in text[:limit])
    return text + ("…" if len(raw) > limit else "")


def _walk_causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps: requests and urllib3 nest causes in args as well as __cause__."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend(a for a in current.args if isinstance(a, BaseException))
        for nested in (current.__cause__, current.__context__, getattr(current, "reason", None)):
            if isinstance(nested, BaseException):
                stack.append(nested)


# TLS alerts a server sends when it does not accept the client's certificate (or wanted one and got none).
_CLIENT_CERT_ALERTS = (
    "CERTIFICATE_REQUIRED", "BAD_CERTIFICATE", "UNKNOWN_CA", "CERTIFICATE_REVOKED", "CERTIFICATE_EXPIRED",
    "CERTIFICATE_UNKNOWN", "ACCESS_DENIED", "UNSUPPORTED_CERTIFICATE",
)


def client_certificate_refusal(exc: BaseException) -> str | None:
    """A message naming enrolment if ``exc`` is the portal refusing the station's TLS client certificate."""
    for cause in _walk_causes(exc):
        if isinstance(cause, ssl.SSLError) and not isinstance(cause, ssl.SSLCertVerificationError):
            reason = str(getattr(cause, "reason", "") or cause).upper()
            if any(alert in reason for alert in _CLIENT_CERT_ALERTS):
                return (f"the portal refused the station's TLS client certificate ({getattr(cause, 'reason', cause)})"
                        ": the station is not enrolled there, or its certificate expired or was revoked; enrol it "
                        "(scanstation enrol --out FILE, then scanstation enrol --install CERT with the portal's "
                        "answer)")
    return None


def dropped_after_handshake_hint(exc: BaseException, cert: tuple[str, str] | None) -> str:
    """A hint for a connection dropped without a reply while a client certificate was presented.

    With TLS 1.3 the server checks the client's certificate after the client has finished its handshake, and a
    server on asyncio (uvicorn) drops the connection without sending the TLS alert: the station sees only "closed
    without response".  That is also what a flaky link looks like, so it stays worth retrying; the hint says what
    to check when it keeps happening.
    """
    if cert is None:
        return ""
    for cause in _walk_causes(exc):
        if isinstance(cause, http.client.RemoteDisconnected | ConnectionResetError | ssl.SSLEOFError):
            return ("; if this keeps happening, the portal may be refusing the station's TLS client certificate "
                    "(check the enrolment: scanstation enrol --status)")
    return ""


def encode_metadata(metadata: Mapping[str, str]) -> str:
    """The ``Upload-Metadata`` header value: ``key base64(value)`` pairs joined by commas."""
    pairs = []
    for key, value in metadata.items():
        if not _METADATA_KEY_RE.fullmatch(key) or "," in key:
            raise ValueError(f"tus metadata key {key!r} must be non-empty visible ASCII without commas")
        encoded = base64.b64encode(value.encode("utf-8")).decode("ascii")
        pairs.append(f"{key} {encoded}" if encoded else key)
    return ",".join(pairs)


class TusHttp:
    """Sends single tus requests through one ``requests.Session`` (not closed here: its owner closes it)."""

    def __init__(
        self,
        session: requests.Session,
        *,
        verify: str | bool,
        timeout: tuple[float, float],
        max_header_bytes: int,
        max_headers: int,
        cert: tuple[str, str] | None = None,
    ) -> None:
        self._session = session
        self._verify = verify
        self._cert = cert  # (certificate file, key file): the station's TLS client certificate, or None
        self._timeout = timeout
        self._max_header_bytes = max_header_bytes
        self._max_headers = max_headers

    def request(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, body: ChunkBody | None = None
    ) -> Reply:
        all_headers = {"Tus-Resumable": TUS_VERSION, **(headers or {})}
        if body is None and method in ("POST", "PATCH"):
            all_headers["Content-Length"] = "0"
        try:
            response = self._session.request(
                method,
                url,
                headers=all_headers,
                data=body,
                timeout=self._timeout,
                allow_redirects=False,
                verify=self._verify,
                cert=self._cert,
                stream=True,
            )
        except BodyCancelled:
            raise
        except requests.exceptions.RequestException as exc:
            self._classify_failure(method, url, exc)
        try:
            self._check_headers(method, url, response)
            excerpt = self._drain(response)
            return Reply(response.status_code, response.headers, excerpt)
        finally:
            response.close()

    def _classify_failure(self, method: str, url: str, exc: requests.exceptions.RequestException) -> NoReturn:
        causes = list(_walk_causes(exc))
        refusal = client_certificate_refusal(exc)
        if refusal is not None:
            raise PortalRejected(f"{method} {url}: {refusal}") from None
        for cause in causes:
            if isinstance(cause, ssl.SSLCertVerificationError):
                raise PortalRejected(
                    f"{method} {url}: the server's TLS certificate did not verify"
                    f"{' against ' + str(self._verify) if isinstance(self._verify, str) else ''} ({cause})"
                ) from None
            if isinstance(cause, http.client.LineTooLong) or (
                isinstance(cause, http.client.HTTPException) and "more than" in str(cause)
            ):
                raise PortalRejected(f"{method} {url}: reply headers too large or too many ({cause})") from None
        if isinstance(exc, requests.exceptions.ContentDecodingError | requests.exceptions.InvalidURL):
            raise PortalRejected(f"{method} {url}: {exc}") from None
        if isinstance(exc, requests.exceptions.Timeout):
            raise Transient(f"{method} timed out ({type(exc).__name__})") from None
        raise Transient(f"{method} failed: {type(exc).__name__}: {printable(str(exc), 300)}"
                        f"{dropped_after_handshake_hint(exc, self._cert)}") from None

    def _check_headers(self, method: str, url: str, response: requests.Response) -> None:
        raw_headers = getattr(response.raw, "headers", None)
        items = list(raw_headers.items()) if raw_headers is not None else list(response.headers.items())
        if len(items) > self._max_headers:
            raise PortalRejected(f"{method} {url}: reply has {len(items)} headers (limit {self._max_headers})")
        for name, value in items:
            if len(name) + len(value) > self._max_header_bytes:
                raise PortalRejected(
                    f"{method} {url}: reply header {printable(name, 60)!r} is {len(value)} bytes "
                    f"(limit {self._max_header_bytes})"
                )
        if 300 <= response.status_code < 400:
            target = response.headers.get("Location", "(no Location)")
            raise PortalRejected(
                f"{method} {url}: redirect {response.status_code} to {printable(target)!r} refused "
                "(the portal must answer directly)"
            )

    def _drain(self, response: requests.Response) -> str:
        """Read a bounded amount of the body: an excerpt for messages, the rest so keep-alive works."""
        if response.request is not None and response.request.method == "HEAD":
            return ""
        received = bytearray()
        total = 0
        try:
            for part in response.iter_content(8192):
                if len(received) < _BODY_EXCERPT_BYTES:
                    received += part[: _BODY_EXCERPT_BYTES - len(received)]
                total += len(part)
                if total > _BODY_DRAIN_BYTES:
                    break  # a huge body: stop; closing the response drops the connection
        except (requests.exceptions.RequestException, OSError, http.client.HTTPException):
            pass  # the status and headers are what matter; a broken body only costs the excerpt
        return printable(bytes(received).strip())


# ---------------------------------------------------------------------------------------------- reply checks


def raise_transient(reply: Reply) -> None:
    """``Transient`` (with the server's Retry-After, if a plain number) for 5xx, 408, 423 and 429."""
    if reply.status >= 500 or reply.status in TRANSIENT_STATUSES:
        retry_after = None
        value = reply.headers.get("Retry-After", "").strip()
        if _INT_RE.fullmatch(value):
            retry_after = float(value)
        detail = f": {reply.excerpt}" if reply.excerpt else ""
        raise Transient(f"server answered {reply.status}{detail}", retry_after)


def reject_status(method: str, url: str, reply: Reply) -> NoReturn:
    """An unexpected status: ``Transient`` if it is one, ``PortalRejected`` otherwise."""
    raise_transient(reply)
    detail = f": {reply.excerpt}" if reply.excerpt else ""
    raise PortalRejected(f"{method} {url}: server refused with {reply.status}{detail}{enrolment_hint(reply.status)}")


def enrolment_hint(status: int) -> str:
    """For 401/403: the portal identifies stations by their client certificate, so say how to check it."""
    if status in (401, 403):
        return " (the portal did not accept this station: check its enrolment with scanstation enrol --status)"
    return ""


def require_tus_resumable(method: str, url: str, reply: Reply) -> None:
    value = reply.headers.get("Tus-Resumable")
    if value is None:
        raise PortalRejected(f"{method} {url}: reply without Tus-Resumable; not a tus {TUS_VERSION} server")
    if value.strip() != TUS_VERSION:
        raise PortalRejected(f"{method} {url}: reply has Tus-Resumable {printable(value)!r}, not {TUS_VERSION}")


def parse_int(method: str, url: str, name: str, value: str) -> int:
    """A header's non-negative integer (plain ASCII digits), or ``PortalRejected``."""
    stripped = value.strip()
    if not _INT_RE.fullmatch(stripped):
        raise PortalRejected(f"{method} {url}: {name} {printable(value)!r} is not a non-negative integer")
    return int(stripped)


def reply_expiry(method: str, url: str, reply: Reply) -> datetime | None:
    """The reply's ``Upload-Expires`` on the station's clock, or None if the server sent none."""
    value = reply.headers.get("Upload-Expires")
    if value is None:
        return None
    try:
        expiry = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        raise PortalRejected(f"{method} {url}: Upload-Expires {printable(value)!r} is not an HTTP date") from None
    if expiry.tzinfo is None:
        expiry = expiry.replace(tzinfo=UTC)
    # Upload-Expires is on the server's clock; an offline station's clock may be hours off.  Rebase it
    # on ours through the reply's Date, so a skewed clock neither expires live uploads nor keeps dead ones.
    with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError):
        server_now = parsedate_to_datetime(reply.headers.get("Date", ""))
        if server_now.tzinfo is None:
            server_now = server_now.replace(tzinfo=UTC)
        expiry = datetime.now(UTC) + (expiry - server_now)
    return expiry

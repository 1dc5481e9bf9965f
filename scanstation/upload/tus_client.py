"""A tus 1.0.0 client on ``requests``: core, creation, checksum (sha256), termination, expiration.

Why not tuspy: it has no per-call timeouts, no injectable session, verifies TLS only as a bool (no CA
bundle), defaults to a sha1 checksum, has no bandwidth cap and trusts whatever the server replies.
This client is written for a link that drops and a portal we do not fully trust:

* every request has explicit ``(connect, read)`` timeouts, ``allow_redirects=False`` and TLS
  verification (``verify=ca_bundle`` or requests' default; never ``False``, even if a caller's session
  says so, because a per-request ``verify`` wins over the session's);
* every PATCH carries one chunk with ``Upload-Checksum: sha256 <base64>``, streamed through a token
  bucket when a bandwidth cap is set;
* replies are validated strictly (status, ``Tus-Resumable``, integer offsets that match what was sent,
  ``Location`` on the endpoint's own origin, header sizes); anything odd is ``PortalRejected``;
* transient failures (connection errors, timeouts, 5xx, 408, 423, 429, a 409 offset conflict on PATCH,
  a 460 checksum mismatch) are retried with exponential backoff and jitter, re-learning the true
  offset with HEAD before resending; ``UploadError`` once ``RetryPolicy.max_attempts`` is used up
  without progress.

The caller persists the upload URL (``on_created``) and the confirmed offset (``on_progress``); after a
station crash ``upload(url=...)`` resumes from the server's ``Upload-Offset``.  File contents are never
logged or put into messages.  One ``TusClient`` runs one upload at a time (``requests.Session`` is not
documented as thread-safe); use one client per worker thread.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import logging
import random
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, BinaryIO, NoReturn
from urllib.parse import urljoin, urlsplit

import requests

from scanstation.errors import PortalRejected, ScanCancelled, UploadError

log = logging.getLogger(__name__)

TUS_VERSION = "1.0.0"
CHECKSUM_ALGORITHM = "sha256"

# Transient replies: the same request may succeed later.  409 is only transient on PATCH (our offset
# was stale, e.g. the server was still writing the remains of a cut request when we asked with HEAD).
_TRANSIENT_STATUSES = frozenset({408, 423, 429})
_GONE_STATUSES = frozenset({404, 410})
_CHECKSUM_MISMATCH = 460
_INT_RE = re.compile(r"[0-9]{1,19}")  # ASCII digits only: int() would accept "+5", " 5", "5_0", "５"
_METADATA_KEY_RE = re.compile(r"[!-~]+")  # visible ASCII; spaces and commas are separators
_BODY_EXCERPT_BYTES = 1024  # what an error reply may contribute to a message
_BODY_DRAIN_BYTES = 64 * 1024  # read this much of a reply so the connection can be reused, no more
_EXPIRY_MARGIN_SECONDS = 5.0  # an upload this close to its expiry is treated as gone


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: delay n = min(max_delay, base_delay * 2**(n-1)) * (1 - jitter*U[0,1)).

    ``max_attempts`` counts tries of one step without progress (the first try included); any confirmed
    progress of an upload resets the count.
    """

    max_attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be >= 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("RetryPolicy delays must be >= 0")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("RetryPolicy.jitter must be within [0, 1]")

    def delay(self, failures: int, rng: random.Random) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure (1-based)."""
        exponent = min(max(failures - 1, 0), 62)  # 2**62 * base is past any max_delay; avoids overflow
        raw = min(self.max_delay, self.base_delay * (2.0**exponent))
        return raw * (1.0 - self.jitter * rng.random())


@dataclass(frozen=True)
class Progress:
    """A confirmed state of an upload: ``offset`` bytes are on the server (acknowledged, so durable)."""

    url: str
    offset: int
    size: int
    bytes_per_second: float
    # the server's Upload-Expires, if it sent one, rebased on the station's clock through the reply's Date;
    # persist it and pass it back to upload(expires=...) to skip a resume that cannot succeed
    expires: datetime | None = None


class UploadCancelled(ScanCancelled):
    """``upload()`` stopped because the caller's cancel event was set; the upload can be resumed."""


class _Transient(Exception):
    """A failure worth retrying; ``cause`` is a short description for logs and the final UploadError."""

    def __init__(self, cause: str, retry_after: float | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.retry_after = retry_after


class _Gone(Exception):
    """The upload resource no longer exists (404/410, or past its Upload-Expires)."""


class _Cancelled(Exception):
    """Raised inside the PATCH body iterator to abort a request mid-body."""


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: Mapping[str, str]
    excerpt: str  # printable start of the body, for error messages


class _TokenBucket:
    """Paces bytes to ``rate`` per second, with a burst of at most ``capacity`` bytes.

    Uses the real clock and ``time.sleep`` (not the client's injectable backoff sleep): pacing is
    about the wire, and a test that fakes backoff delays still wants a real cap.
    """

    def __init__(self, rate: int, capacity: int) -> None:
        self._rate = float(rate)
        self._capacity = float(capacity)
        self._tokens = 0.0  # start empty: the cap holds from the first byte
        self._stamp = time.monotonic()

    def take(self, n: int) -> None:
        while True:
            now = time.monotonic()
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            if self._tokens >= n:
                self._tokens -= n
                return
            time.sleep((n - self._tokens) / self._rate)


class _ChunkBody:
    """A PATCH body that requests sends with a Content-Length (it has ``__len__``), block by block.

    Iterating is what lets the bandwidth cap pace a 4 MiB chunk instead of bursting it, and lets a
    cancel abort the request mid-body.  A fresh instance is made for every attempt.
    """

    def __init__(self, data: bytes, block: int, bucket: _TokenBucket | None, cancel: threading.Event | None) -> None:
        self._data = memoryview(data)
        self._block = block
        self._bucket = bucket
        self._cancel = cancel

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[bytes]:
        for start in range(0, len(self._data), self._block):
            if self._cancel is not None and self._cancel.is_set():
                raise _Cancelled()
            piece = self._data[start : start + self._block]
            if self._bucket is not None:
                self._bucket.take(len(piece))
            yield bytes(piece)  # a small copy; requests' typing (and some adapters) want bytes


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = {"http": 80, "https": 443}.get(scheme, -1)
    return scheme, (parts.hostname or "").lower(), port


def _printable(raw: bytes | str, limit: int = 200) -> str:
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


def encode_metadata(metadata: Mapping[str, str]) -> str:
    """The ``Upload-Metadata`` header value: ``key base64(value)`` pairs joined by commas."""
    pairs = []
    for key, value in metadata.items():
        if not _METADATA_KEY_RE.fullmatch(key) or "," in key:
            raise ValueError(f"tus metadata key {key!r} must be non-empty visible ASCII without commas")
        encoded = base64.b64encode(value.encode("utf-8")).decode("ascii")
        pairs.append(f"{key} {encoded}" if encoded else key)
    return ",".join(pairs)


class TusClient:
    """Uploads to one tus endpoint (the creation URL, e.g. ``https://portal.example/files/``)."""

    def __init__(
        self,
        endpoint: str,
        *,
        session: requests.Session | None = None,
        ca_bundle: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        chunk_bytes: int = 4 * 1024 * 1024,
        max_bytes_per_second: int = 0,
        retry: RetryPolicy = RetryPolicy(),  # frozen dataclass: safe as a shared default
        max_header_bytes: int = 8192,
        max_headers: int = 64,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        scheme, host, _port = _origin(endpoint)
        if scheme not in ("http", "https") or not host:
            raise ValueError(f"tus endpoint {endpoint!r} must be an absolute http(s) URL")
        if urlsplit(endpoint).username is not None:
            raise ValueError(f"tus endpoint {endpoint!r} must not carry credentials")
        if chunk_bytes < 1:
            raise ValueError("chunk_bytes must be >= 1")
        if max_bytes_per_second < 0:
            raise ValueError("max_bytes_per_second must be >= 0 (0 = unlimited)")
        if connect_timeout <= 0 or read_timeout <= 0:
            raise ValueError("timeouts must be > 0")
        self.endpoint = endpoint
        self._origin = _origin(endpoint)
        self._session = session if session is not None else requests.Session()
        self._own_session = session is None
        self._verify: str | bool = ca_bundle if ca_bundle else True
        self._timeout = (connect_timeout, read_timeout)
        self._chunk_bytes = chunk_bytes
        self._rate = max_bytes_per_second
        self._retry = retry
        self._max_header_bytes = max_header_bytes
        self._max_headers = max_headers
        self._sleep = sleep
        self._real_sleep = sleep is time.sleep
        self._rng = rng if rng is not None else random.Random()
        self._expires: dict[str, datetime] = {}  # what servers told us, per upload URL

    # ------------------------------------------------------------------ public API

    def close(self) -> None:
        """Close the session if this client created it."""
        if self._own_session:
            self._session.close()

    def __enter__(self) -> TusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def server_info(self) -> dict[str, Any]:
        """OPTIONS on the endpoint: ``versions``, ``extensions``, ``max_size`` (or None), ``checksum_algorithms``."""
        reply = self._retrying("OPTIONS", self.endpoint, lambda: self._settled("OPTIONS", self.endpoint))
        if reply.status not in (200, 204):
            self._reject_status("OPTIONS", self.endpoint, reply)
        url = self.endpoint

        def listing(name: str) -> list[str]:
            return [v.strip() for v in reply.headers.get(name, "").split(",") if v.strip()]

        versions = listing("Tus-Version")
        if TUS_VERSION not in versions:
            raise PortalRejected(f"OPTIONS {url}: server does not offer tus {TUS_VERSION} (Tus-Version: {versions})")
        max_size = None
        if "Tus-Max-Size" in reply.headers:
            max_size = self._parse_int("OPTIONS", url, "Tus-Max-Size", reply.headers["Tus-Max-Size"])
        return {
            "versions": versions,
            "extensions": listing("Tus-Extension"),
            "max_size": max_size,
            "checksum_algorithms": [a.lower() for a in listing("Tus-Checksum-Algorithm")],
        }

    def create(self, size: int, metadata: Mapping[str, str]) -> str:
        """POST a new upload of ``size`` bytes; returns its absolute URL (same origin as the endpoint)."""
        if size < 0:
            raise ValueError("upload size must be >= 0")
        headers = {"Upload-Length": str(size)}
        if metadata:
            headers["Upload-Metadata"] = encode_metadata(metadata)
        url = self.endpoint
        reply = self._retrying("POST", url, lambda: self._settled("POST", url, headers=headers))
        if reply.status != 201:
            self._reject_status("POST", url, reply)
        self._require_tus_resumable("POST", url, reply)
        location = reply.headers.get("Location")
        if not location:
            raise PortalRejected(f"POST {url}: 201 reply without a Location header")
        upload_url = urljoin(url, location.strip())
        if _origin(upload_url) != self._origin or urlsplit(upload_url).username is not None:
            raise PortalRejected(
                f"POST {url}: Location {_printable(location)!r} points outside the endpoint's origin "
                f"{self._origin[0]}://{self._origin[1]}:{self._origin[2]}; refused"
            )
        if urlsplit(upload_url).fragment:
            raise PortalRejected(f"POST {url}: Location {_printable(location)!r} carries a fragment; refused")
        self._note_expiry("POST", upload_url, reply)
        log.info("tus upload created: %s (%d bytes)", upload_url, size)
        return upload_url

    def offset(self, url: str) -> tuple[int, int | None]:
        """HEAD an upload: (Upload-Offset, Upload-Length or None).  UploadError if it is gone (404/410)."""
        try:
            return self._retrying("HEAD", url, lambda: self._head(url))
        except _Gone as exc:
            raise UploadError(f"HEAD {url}: upload no longer exists on the server ({exc})") from None

    def upload(
        self,
        source: Path | BinaryIO,
        size: int,
        *,
        url: str | None = None,
        metadata: Mapping[str, str] = {},  # read only, never mutated
        on_created: Callable[[str], None] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        cancel: threading.Event | None = None,
        expires: datetime | None = None,
    ) -> str:
        """Upload ``size`` bytes of ``source``; returns the upload URL once the server's offset == size.

        ``url``: an upload created earlier (persisted by the caller) to resume; it is HEADed and resumed
        from the server's offset, or created anew (``on_created`` again) if it is gone, expired (per
        ``expires`` or a previous reply) or not on this endpoint's origin.  ``on_progress`` runs after
        every acknowledged chunk and whenever HEAD shows confirmed progress.  ``source`` may be a path
        or a seekable binary file (read from the needed offset; not closed).
        """
        if size < 0:
            raise ValueError("upload size must be >= 0")
        if expires is not None and url is not None:
            self._expires.setdefault(url, expires)
        if isinstance(source, Path):
            with source.open("rb") as handle:
                return self._upload(handle, str(source), size, url, metadata, on_created, on_progress, cancel)
        return self._upload(source, "<stream>", size, url, metadata, on_created, on_progress, cancel)

    def terminate(self, url: str) -> None:
        """DELETE an upload (termination extension).  An upload that is already gone counts as done."""
        self._check_same_origin("DELETE", url)
        reply = self._retrying("DELETE", url, lambda: self._settled("DELETE", url))
        if reply.status in _GONE_STATUSES:
            return
        if reply.status != 204:
            self._reject_status("DELETE", url, reply)
        self._require_tus_resumable("DELETE", url, reply)
        self._expires.pop(url, None)

    # ------------------------------------------------------------------ the upload loop

    def _upload(
        self,
        handle: BinaryIO,
        source_name: str,
        size: int,
        url: str | None,
        metadata: Mapping[str, str],
        on_created: Callable[[str], None] | None,
        on_progress: Callable[[Progress], None] | None,
        cancel: threading.Event | None,
    ) -> str:
        started = time.monotonic()
        sent_this_call = 0  # bytes acknowledged in this call, for bytes_per_second
        bucket = _TokenBucket(self._rate, max(16 * 1024, self._rate // 20)) if self._rate else None
        # urllib3 sends a request body under the *connect* timeout, and Python's sendall() must finish a
        # whole block within it: 64 KiB blocks keep a 5 s connect timeout workable down to ~13 KB/s links.
        block = min(64 * 1024, max(1024, self._rate // 50)) if self._rate else 64 * 1024
        recreations = 0

        def fresh_upload() -> str:
            nonlocal recreations
            recreations += 1
            if recreations > self._retry.max_attempts:
                raise UploadError(f"POST {self.endpoint}: uploads kept disappearing; gave up after {recreations - 1}")
            new_url = self.create(size, metadata)
            if on_created is not None:
                on_created(new_url)
            return new_url

        reported = False

        def report(current_url: str, confirmed: int) -> None:
            nonlocal reported
            reported = True
            if on_progress is not None:
                elapsed = max(time.monotonic() - started, 1e-6)
                rate = sent_this_call / elapsed
                on_progress(Progress(current_url, confirmed, size, rate, self._expires.get(current_url)))

        if url is not None and _origin(url) != self._origin:
            log.warning("stored upload URL %s is not on endpoint %s; creating a new upload", url, self.endpoint)
            url = None
        if url is None:
            self._check_cancel(cancel, self.endpoint, 0)
            url = fresh_upload()
            offset, floor, sent_max, needs_head = 0, 0, 0, False
            report(url, 0)
        else:
            offset, floor, sent_max, needs_head = 0, 0, size, True
        failures = 0
        last_cause = ""

        while True:
            self._check_cancel(cancel, url, offset)
            try:
                if self._expired(url):
                    raise _Gone("past its Upload-Expires")
                if needs_head:
                    server_offset, server_length = self._head(url)
                    if server_length is not None and server_length != size:
                        raise PortalRejected(
                            f"HEAD {url}: Upload-Length {server_length} disagrees with ours ({size})"
                        )
                    if server_offset > size:
                        raise PortalRejected(f"HEAD {url}: Upload-Offset {server_offset} beyond the size {size}")
                    if server_offset < floor:
                        raise PortalRejected(
                            f"HEAD {url}: Upload-Offset went backwards ({server_offset} < {floor} already acknowledged)"
                        )
                    if server_offset > sent_max:
                        raise PortalRejected(
                            f"HEAD {url}: Upload-Offset {server_offset} is beyond what was sent ({sent_max})"
                        )
                    needs_head = False
                    progressed = server_offset > floor
                    if progressed:
                        failures = 0  # a cut request still delivered bytes: the link works
                    offset = floor = server_offset
                    if progressed or not reported:
                        report(url, offset)
                if offset >= size:
                    return url
                length = min(self._chunk_bytes, size - offset)
                handle.seek(offset)
                data = handle.read(length)
                if len(data) != length:
                    raise UploadError(
                        f"{source_name}: read {len(data)} bytes at offset {offset}, expected {length} "
                        f"(source shorter than the declared size {size}); upload {url} left resumable"
                    )
                sent_max = max(sent_max, offset + length)
                offset = self._patch(url, offset, data, block, bucket, cancel)
                floor = offset
                sent_this_call += length
                failures = 0
                report(url, offset)
            except _Gone as exc:
                log.warning("tus upload %s is gone (%s); creating a new one", url, exc)
                self._expires.pop(url, None)
                url = fresh_upload()
                offset, floor, sent_max, needs_head = 0, 0, 0, False
                report(url, 0)
            except _Cancelled:
                raise UploadCancelled(f"upload to {url} cancelled at confirmed offset {floor} of {size}") from None
            except _Transient as exc:
                failures += 1
                last_cause = exc.cause
                if failures >= self._retry.max_attempts:
                    raise UploadError(
                        f"upload to {url} failed at offset {floor} of {size} after {failures} attempts without "
                        f"progress; last error: {last_cause}"
                    ) from None
                delay = self._backoff(failures, exc.retry_after)
                log.warning(
                    "tus upload %s: %s; retry %d/%d in %.1f s (confirmed offset %d of %d)",
                    url, last_cause, failures, self._retry.max_attempts - 1, delay, floor, size,
                )
                self._wait(delay, cancel, url, floor)
                needs_head = True

    def _check_cancel(self, cancel: threading.Event | None, url: str, offset: int) -> None:
        if cancel is not None and cancel.is_set():
            raise UploadCancelled(f"upload to {url} cancelled at confirmed offset {offset}")

    def _wait(self, delay: float, cancel: threading.Event | None, url: str, offset: int) -> None:
        # With the real clock a cancel interrupts the wait; an injected sleep (tests) is called as is.
        if cancel is not None and self._real_sleep:
            cancel.wait(delay)
        else:
            self._sleep(delay)
        self._check_cancel(cancel, url, offset)

    def _backoff(self, failures: int, retry_after: float | None) -> float:
        delay = self._retry.delay(failures, self._rng)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self._retry.max_delay))
        return delay

    def _expired(self, url: str) -> bool:
        expiry = self._expires.get(url)
        return expiry is not None and expiry.timestamp() - time.time() < _EXPIRY_MARGIN_SECONDS

    def _retrying(self, method: str, url: str, step: Callable[[], Any]) -> Any:
        """Run one idempotent-enough step with backoff on transient failures."""
        failures = 0
        while True:
            try:
                return step()
            except _Transient as exc:
                failures += 1
                if failures >= self._retry.max_attempts:
                    raise UploadError(
                        f"{method} {url} failed after {failures} attempts; last error: {exc.cause}"
                    ) from None
                delay = self._backoff(failures, exc.retry_after)
                log.warning("%s %s: %s; retry %d in %.1f s", method, url, exc.cause, failures, delay)
                self._sleep(delay)

    # ------------------------------------------------------------------ single requests

    def _head(self, url: str) -> tuple[int, int | None]:
        self._check_same_origin("HEAD", url)
        reply = self._request("HEAD", url)
        if reply.status in _GONE_STATUSES:
            raise _Gone(f"HEAD answered {reply.status}")
        self._raise_transient(reply)
        if reply.status not in (200, 204):
            self._reject_status("HEAD", url, reply)
        self._require_tus_resumable("HEAD", url, reply)
        if "Upload-Offset" not in reply.headers:
            raise PortalRejected(f"HEAD {url}: reply without Upload-Offset")
        offset = self._parse_int("HEAD", url, "Upload-Offset", reply.headers["Upload-Offset"])
        length = None
        if "Upload-Length" in reply.headers:
            length = self._parse_int("HEAD", url, "Upload-Length", reply.headers["Upload-Length"])
            if offset > length:
                raise PortalRejected(f"HEAD {url}: Upload-Offset {offset} beyond Upload-Length {length}")
        self._note_expiry("HEAD", url, reply)
        return offset, length

    def _patch(
        self,
        url: str,
        offset: int,
        data: bytes,
        block: int,
        bucket: _TokenBucket | None,
        cancel: threading.Event | None,
    ) -> int:
        self._check_same_origin("PATCH", url)
        digest = base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")
        headers = {
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
            "Upload-Checksum": f"{CHECKSUM_ALGORITHM} {digest}",
        }
        body = _ChunkBody(data, block, bucket, cancel)
        reply = self._request("PATCH", url, headers=headers, body=body)
        if reply.status in _GONE_STATUSES:
            raise _Gone(f"PATCH answered {reply.status}")
        if reply.status == _CHECKSUM_MISMATCH:
            raise _Transient(f"PATCH at offset {offset}: checksum mismatch (460), chunk resent")
        if reply.status == 409:
            raise _Transient(f"PATCH at offset {offset}: offset conflict (409), re-reading the offset")
        self._raise_transient(reply)
        if reply.status != 204:
            self._reject_status("PATCH", url, reply)
        self._require_tus_resumable("PATCH", url, reply)
        if "Upload-Offset" not in reply.headers:
            raise PortalRejected(f"PATCH {url}: 204 reply without Upload-Offset")
        new_offset = self._parse_int("PATCH", url, "Upload-Offset", reply.headers["Upload-Offset"])
        if new_offset != offset + len(data):
            raise PortalRejected(
                f"PATCH {url}: server acknowledged offset {new_offset}, but {len(data)} bytes were sent "
                f"at offset {offset} (expected {offset + len(data)})"
            )
        self._note_expiry("PATCH", url, reply)
        return new_offset

    def _settled(self, method: str, url: str, *, headers: Mapping[str, str] | None = None) -> _Reply:
        """A request whose transient statuses (5xx, 408, 423, 429) raise ``_Transient`` for ``_retrying``."""
        reply = self._request(method, url, headers=headers)
        self._raise_transient(reply)
        return reply

    def _request(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, body: _ChunkBody | None = None
    ) -> _Reply:
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
                stream=True,
            )
        except _Cancelled:
            raise
        except requests.exceptions.RequestException as exc:
            self._classify_failure(method, url, exc)
        try:
            self._check_headers(method, url, response)
            excerpt = self._drain(response)
            return _Reply(response.status_code, response.headers, excerpt)
        finally:
            response.close()

    def _classify_failure(self, method: str, url: str, exc: requests.exceptions.RequestException) -> NoReturn:
        causes = list(_walk_causes(exc))
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
            raise _Transient(f"{method} timed out ({type(exc).__name__})") from None
        raise _Transient(f"{method} failed: {type(exc).__name__}: {_printable(str(exc), 300)}") from None

    def _check_headers(self, method: str, url: str, response: requests.Response) -> None:
        raw_headers = getattr(response.raw, "headers", None)
        items = list(raw_headers.items()) if raw_headers is not None else list(response.headers.items())
        if len(items) > self._max_headers:
            raise PortalRejected(f"{method} {url}: reply has {len(items)} headers (limit {self._max_headers})")
        for name, value in items:
            if len(name) + len(value) > self._max_header_bytes:
                raise PortalRejected(
                    f"{method} {url}: reply header {_printable(name, 60)!r} is {len(value)} bytes "
                    f"(limit {self._max_header_bytes})"
                )
        if 300 <= response.status_code < 400:
            target = response.headers.get("Location", "(no Location)")
            raise PortalRejected(
                f"{method} {url}: redirect {response.status_code} to {_printable(target)!r} refused "
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
        return _printable(bytes(received).strip())

    # ------------------------------------------------------------------ reply checks

    def _raise_transient(self, reply: _Reply) -> None:
        if reply.status >= 500 or reply.status in _TRANSIENT_STATUSES:
            retry_after = None
            value = reply.headers.get("Retry-After", "").strip()
            if _INT_RE.fullmatch(value):
                retry_after = float(value)
            detail = f": {reply.excerpt}" if reply.excerpt else ""
            raise _Transient(f"server answered {reply.status}{detail}", retry_after)

    def _reject_status(self, method: str, url: str, reply: _Reply) -> NoReturn:
        self._raise_transient(reply)
        detail = f": {reply.excerpt}" if reply.excerpt else ""
        raise PortalRejected(f"{method} {url}: server refused with {reply.status}{detail}")

    def _require_tus_resumable(self, method: str, url: str, reply: _Reply) -> None:
        value = reply.headers.get("Tus-Resumable")
        if value is None:
            raise PortalRejected(f"{method} {url}: reply without Tus-Resumable; not a tus {TUS_VERSION} server")
        if value.strip() != TUS_VERSION:
            raise PortalRejected(f"{method} {url}: reply has Tus-Resumable {_printable(value)!r}, not {TUS_VERSION}")

    def _parse_int(self, method: str, url: str, name: str, value: str) -> int:
        stripped = value.strip()
        if not _INT_RE.fullmatch(stripped):
            raise PortalRejected(f"{method} {url}: {name} {_printable(value)!r} is not a non-negative integer")
        return int(stripped)

    def _note_expiry(self, method: str, url: str, reply: _Reply) -> None:
        value = reply.headers.get("Upload-Expires")
        if value is None:
            return
        try:
            expiry = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            raise PortalRejected(f"{method} {url}: Upload-Expires {_printable(value)!r} is not an HTTP date") from None
        if expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=UTC)
        # Upload-Expires is on the server's clock; an offline station's clock may be hours off.  Rebase it
        # on ours through the reply's Date, so a skewed clock neither expires live uploads nor keeps dead ones.
        with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError):
            server_now = parsedate_to_datetime(reply.headers.get("Date", ""))
            if server_now.tzinfo is None:
                server_now = server_now.replace(tzinfo=UTC)
            expiry = datetime.now(UTC) + (expiry - server_now)
        self._expires[url] = expiry

    def _check_same_origin(self, method: str, url: str) -> None:
        if _origin(url) != self._origin:
            raise PortalRejected(f"{method} {url}: not on the endpoint's origin ({self.endpoint}); refused")

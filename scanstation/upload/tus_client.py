"""A tus 1.0.0 client on ``requests``: core, creation, checksum (sha256), termination, expiration.

Why not tuspy: it has no per-call timeouts, no injectable session, verifies TLS only as a bool (no CA
bundle), defaults to a sha1 checksum, has no bandwidth cap and trusts whatever the server replies.
This client is written for a link that drops and a portal we do not fully trust:

* every request has explicit ``(connect, read)`` timeouts, ``allow_redirects=False`` and TLS
  verification (``verify=ca_bundle`` or requests' default; never ``False``, even if a caller's session
  says so, because a per-request ``verify`` wins over the session's), and the station's TLS client
  certificate when given (``client_cert``: its enrolment, scanstation/enrolment/): scanstation/upload/tus_http.py;
* every PATCH carries one chunk with ``Upload-Checksum: sha256 <base64>``, streamed through a token
  bucket when a bandwidth cap is set (scanstation/upload/tus_pacing.py);
* replies are validated strictly (status, ``Tus-Resumable``, integer offsets that match what was sent,
  ``Location`` on the endpoint's own origin, header sizes); anything odd is ``PortalRejected``;
* transient failures (connection errors, timeouts, 5xx, 408, 423, 429, a 409 offset conflict on PATCH,
  a 460 checksum mismatch) are retried with exponential backoff and jitter (``RetryPolicy``), re-learning
  the true offset with HEAD before resending; ``UploadError`` once ``RetryPolicy.max_attempts`` is used up
  without progress.

The caller persists the upload URL (``on_created``) and the confirmed offset (``on_progress``); after a
station crash ``upload(url=...)`` resumes from the server's ``Upload-Offset``.  File contents are never
logged or put into messages.  One ``TusClient`` runs one upload at a time (``requests.Session`` is not
documented as thread-safe); use one client per worker thread.

This module is the client's protocol logic: what to send next, and what a reply means for the upload
(resume, recreate, retry, give up).  ``RetryPolicy`` and ``encode_metadata`` live in tus_pacing and
tus_http and are re-exported here, so ``from scanstation.upload.tus_client import ...`` is the one import.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urljoin, urlsplit

import requests

from scanstation.errors import PortalRejected, ScanCancelled, UploadError
from scanstation.upload.tus_http import (
    CHECKSUM_ALGORITHM,
    CHECKSUM_MISMATCH,
    GONE_STATUSES,
    TUS_VERSION,
    Reply,
    Transient,
    TusHttp,
    encode_metadata,
    origin,
    parse_int,
    printable,
    raise_transient,
    reject_status,
    reply_expiry,
    require_tus_resumable,
)
from scanstation.upload.tus_pacing import BodyCancelled, ChunkBody, RetryPolicy, TokenBucket

__all__ = [
    "CHECKSUM_ALGORITHM",
    "TUS_VERSION",
    "Progress",
    "RetryPolicy",
    "TusClient",
    "UploadCancelled",
    "encode_metadata",
]

log = logging.getLogger(__name__)

_EXPIRY_MARGIN_SECONDS = 5.0  # an upload this close to its expiry is treated as gone
_DEFAULT_RETRY = RetryPolicy()  # frozen dataclass: safe as a shared default


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


class _Gone(Exception):
    """The upload resource no longer exists (404/410, or past its Upload-Expires)."""


class TusClient:
    """Uploads to one tus endpoint (the creation URL, e.g. ``https://portal.example/files/``)."""

    def __init__(
        self,
        endpoint: str,
        *,
        session: requests.Session | None = None,
        ca_bundle: str | None = None,
        client_cert: tuple[str, str] | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        chunk_bytes: int = 4 * 1024 * 1024,
        max_bytes_per_second: int = 0,
        retry: RetryPolicy = _DEFAULT_RETRY,
        max_header_bytes: int = 8192,
        max_headers: int = 64,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        scheme, host, _port = origin(endpoint)
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
        self._origin = origin(endpoint)
        self._session = session if session is not None else requests.Session()
        self._own_session = session is None
        self._http = TusHttp(
            self._session,
            verify=ca_bundle if ca_bundle else True,
            timeout=(connect_timeout, read_timeout),
            max_header_bytes=max_header_bytes,
            max_headers=max_headers,
            cert=client_cert,
        )
        self._chunk_bytes = chunk_bytes
        self._rate = max_bytes_per_second
        self._retry = retry
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
            reject_status("OPTIONS", self.endpoint, reply)
        url = self.endpoint

        def listing(name: str) -> list[str]:
            return [v.strip() for v in reply.headers.get(name, "").split(",") if v.strip()]

        versions = listing("Tus-Version")
        if TUS_VERSION not in versions:
            raise PortalRejected(f"OPTIONS {url}: server does not offer tus {TUS_VERSION} (Tus-Version: {versions})")
        max_size = None
        if "Tus-Max-Size" in reply.headers:
            max_size = parse_int("OPTIONS", url, "Tus-Max-Size", reply.headers["Tus-Max-Size"])
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
            reject_status("POST", url, reply)
        require_tus_resumable("POST", url, reply)
        location = reply.headers.get("Location")
        if not location:
            raise PortalRejected(f"POST {url}: 201 reply without a Location header")
        upload_url = urljoin(url, location.strip())
        if origin(upload_url) != self._origin or urlsplit(upload_url).username is not None:
            raise PortalRejected(
                f"POST {url}: Location {printable(location)!r} points outside the endpoint's origin "
                f"{self._origin[0]}://{self._origin[1]}:{self._origin[2]}; refused"
            )
        if urlsplit(upload_url).fragment:
            raise PortalRejected(f"POST {url}: Location {printable(location)!r} carries a fragment; refused")
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
        if reply.status in GONE_STATUSES:
            return
        if reply.status != 204:
            reject_status("DELETE", url, reply)
        require_tus_resumable("DELETE", url, reply)
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
        bucket = TokenBucket(self._rate, max(16 * 1024, self._rate // 20)) if self._rate else None
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

        if url is not None and origin(url) != self._origin:
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
            except BodyCancelled:
                raise UploadCancelled(f"upload to {url} cancelled at confirmed offset {floor} of {size}") from None
            except Transient as exc:
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
            except Transient as exc:
                failures += 1
                if failures >= self._retry.max_attempts:
                    raise UploadError(
                        f"{method} {url} failed after {failures} attempts; last error: {exc.cause}"
                    ) from None
                delay = self._backoff(failures, exc.retry_after)
                log.warning("%s %s: %s; retry %d in %.1f s", method, url, exc.cause, failures, delay)
                self._sleep(delay)

    # ------------------------------------------------------------------ single requests (through tus_http)

    def _head(self, url: str) -> tuple[int, int | None]:
        self._check_same_origin("HEAD", url)
        reply = self._http.request("HEAD", url)
        if reply.status in GONE_STATUSES:
            raise _Gone(f"HEAD answered {reply.status}")
        raise_transient(reply)
        if reply.status not in (200, 204):
            reject_status("HEAD", url, reply)
        require_tus_resumable("HEAD", url, reply)
        if "Upload-Offset" not in reply.headers:
            raise PortalRejected(f"HEAD {url}: reply without Upload-Offset")
        offset = parse_int("HEAD", url, "Upload-Offset", reply.headers["Upload-Offset"])
        length = None
        if "Upload-Length" in reply.headers:
            length = parse_int("HEAD", url, "Upload-Length", reply.headers["Upload-Length"])
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
        bucket: TokenBucket | None,
        cancel: threading.Event | None,
    ) -> int:
        self._check_same_origin("PATCH", url)
        digest = base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")
        headers = {
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
            "Upload-Checksum": f"{CHECKSUM_ALGORITHM} {digest}",
        }
        body = ChunkBody(data, block, bucket, cancel)
        reply = self._http.request("PATCH", url, headers=headers, body=body)
        if reply.status in GONE_STATUSES:
            raise _Gone(f"PATCH answered {reply.status}")
        if reply.status == CHECKSUM_MISMATCH:
            raise Transient(f"PATCH at offset {offset}: checksum mismatch (460), chunk resent")
        if reply.status == 409:
            raise Transient(f"PATCH at offset {offset}: offset conflict (409), re-reading the offset")
        raise_transient(reply)
        if reply.status != 204:
            reject_status("PATCH", url, reply)
        require_tus_resumable("PATCH", url, reply)
        if "Upload-Offset" not in reply.headers:
            raise PortalRejected(f"PATCH {url}: 204 reply without Upload-Offset")
        new_offset = parse_int("PATCH", url, "Upload-Offset", reply.headers["Upload-Offset"])
        if new_offset != offset + len(data):
            raise PortalRejected(
                f"PATCH {url}: server acknowledged offset {new_offset}, but {len(data)} bytes were sent "
                f"at offset {offset} (expected {offset + len(data)})"
            )
        self._note_expiry("PATCH", url, reply)
        return new_offset

    def _settled(self, method: str, url: str, *, headers: Mapping[str, str] | None = None) -> Reply:
        """A request whose transient statuses (5xx, 408, 423, 429) raise ``Transient`` for ``_retrying``."""
        reply = self._http.request(method, url, headers=headers)
        raise_transient(reply)
        return reply

    def _note_expiry(self, method: str, url: str, reply: Reply) -> None:
        expiry = reply_expiry(method, url, reply)
        if expiry is not None:
            self._expires[url] = expiry

    def _check_same_origin(self, method: str, url: str) -> None:
        if origin(url) != self._origin:
            raise PortalRejected(f"{method} {url}: not on the endpoint's origin ({self.endpoint}); refused")

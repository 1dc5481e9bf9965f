"""The receiver's ASGI application: tus 1.0.0 uploads, verification, receipts (see docs/portal-api.md).

Durability rule: an offset is acknowledged (HEAD, PATCH reply) only after the bytes are fsynced and
the offset is committed to the database.  The database offset is the truth; bytes past it in the
partial file (a crash between write and commit, a chunk that failed its checksum) are cut off before
the next write and at start-up, so a kill -9 at any moment leaves a consistent, resumable upload.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import StationAuthMiddleware, caller, identify_by_certificate, identify_dev_station, peer_certificate
from .db import Database, Station, Upload
from .ingest import Ingestor, Outcome
from .keys import load_identities, load_or_create_receipt_key
from .protocol import (
    CHECKSUM_ALGORITHMS,
    OFFSET_CONTENT_TYPE,
    TUS_EXTENSIONS,
    TUS_VERSION,
    BadRequest,
    http_date,
    parse_checksum,
    parse_metadata,
    parse_non_negative,
)
from .storage import UPLOAD_ID, DataDir

log = logging.getLogger("receiver")
T = TypeVar("T")

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# A second PATCH for the same upload waits this long for the first (e.g. a request the client gave up
# on but whose connection is still draining) before getting 423.
LOCK_WAIT_SECONDS = 10.0
DISK_RESERVE_BYTES = 64 * 1024 * 1024
MAX_HEADER_BYTES = 16 * 1024
MAX_HEADER_COUNT = 100
# Per-station caps (defaults; see ReceiverConfig): a station, or a stolen client certificate, cannot fill
# the portal's disk or its upload table.
MAX_OPEN_UPLOADS = 16
MAX_RESERVED_BYTES = 8 * 1024**3


@dataclass(frozen=True)
class ReceiverConfig:
    data_dir: Path
    identity_file: Path
    database_url: str | None = None
    # Serving HTTPS with client certificates from the station CA (the production way); otherwise
    # ``dev_station`` names the one enrolled station every request is taken to come from (loopback tests).
    tls: bool = False
    dev_station: str | None = None
    # PEM trust roots for the unit head's CMS signature; given (or production), every package needs one.
    trust_roots_file: Path | None = None
    production: bool = False
    max_size: int = 2 * 1024**3
    expiration_hours: float = 24.0
    # How long the final PATCH waits for verification before answering (then: poll the receipt, 202).
    verify_wait_seconds: float = 25.0
    max_open_uploads: int = MAX_OPEN_UPLOADS
    max_reserved_bytes: int = MAX_RESERVED_BYTES
    # A PATCH whose body sends nothing for this long is cut off (slowloris on the body; heads: transport.py).
    body_timeout_seconds: float = 30.0

    @property
    def expiration_seconds(self) -> float:
        return self.expiration_hours * 3600.0


def error(status: int, reason: str, *, check: str | None = None, headers: dict[str, str] | None = None) -> Response:
    body: dict[str, str] = {"error": reason}
    if check:
        body["check"] = check
    return JSONResponse(body, status_code=status, headers=headers)


class TusResumableMiddleware:
    """Every response carries ``Tus-Resumable: 1.0.0`` (tus core requires it, errors included).

    It also refuses oversized request heads (431): h11's own limit only applies while a head is
    incomplete, so a large head arriving in one read would otherwise get through.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = sum(len(k) + len(v) + 4 for k, v in scope["headers"])
        if head > MAX_HEADER_BYTES or len(scope["headers"]) > MAX_HEADER_COUNT:
            scope = {**scope, "headers": []}
            response = error(431, f"request headers too large (limit {MAX_HEADER_BYTES} bytes, "
                                  f"{MAX_HEADER_COUNT} headers)")
            response.headers["Tus-Resumable"] = TUS_VERSION
            await response(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"tus-resumable"]
                headers.append((b"tus-resumable", TUS_VERSION.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_header)


class Receiver:
    def __init__(self, config: ReceiverConfig) -> None:
        self.config = config
        self.data = DataDir(config.data_dir)
        identities = load_identities(config.identity_file)
        receipt_key = load_or_create_receipt_key(config.data_dir)
        if config.production and (not config.tls or config.trust_roots_file is None or config.dev_station):
            raise ValueError("production mode needs TLS with client certificates and --trust-roots, "
                             "and no --dev-station")
        if config.tls == (config.dev_station is not None):
            raise ValueError("either TLS with client certificates or --dev-station (plain-HTTP loopback tests)")
        trust_roots = None
        if config.trust_roots_file is not None:
            from .unithead import load_trust_roots  # pyHanko loads slowly; only when the portal checks sign-offs

            trust_roots = load_trust_roots(config.trust_roots_file)
        self.db = Database(database_url(config))
        self.ingestor = Ingestor(self.db, self.data, identities, receipt_key, trust_roots,
                                 require_unit_head=trust_roots is not None or config.production)
        self._locks: dict[str, asyncio.Lock] = {}
        self._station_locks: dict[str, asyncio.Lock] = {}
        self._tasks: dict[str, asyncio.Task[Outcome]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(partial(fn, *args))

    # ------------------------------------------------------------------ lifecycle

    @asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        complete = await self._run(self._recover)
        for upload_id in complete:
            self._start_ingest(upload_id)
        self._sweeper = asyncio.create_task(self._sweep_forever())
        try:
            yield
        finally:
            self._sweeper.cancel()
            for task in list(self._tasks.values()):
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(task), timeout=30)
            self.db.close()

    def _recover(self) -> list[str]:
        """Make disk and database agree after a crash; return complete uploads still to be ingested."""
        self.data.clear_staging()
        for orphan in self.data.orphan_parts(self.db.all_upload_ids()):
            log.info("removing orphan partial file %s", orphan.name)
            orphan.unlink(missing_ok=True)
        complete = []
        for upload in self.db.uploads_in_state("receiving", "verifying"):
            size = self.data.part_size(upload.id)
            if size is None or size < upload.offset:
                if upload.offset == 0 and size is None:
                    self.data.create_part(upload.id)
                    continue
                # acknowledged bytes are gone (disk replaced?): the client must start again
                log.error("upload %s: partial file lost or short; marking it expired", upload.id)
                self.db.set_state(upload.id, "expired", reason="partial file lost")
                self.data.delete_part(upload.id)
                continue
            self.data.truncate_part(upload.id, upload.offset)
            if upload.complete:
                complete.append(upload.id)
        return complete

    async def _sweep_forever(self) -> None:
        interval = min(60.0, max(0.5, self.config.expiration_seconds / 4))
        while True:
            await asyncio.sleep(interval)
            try:
                for upload in await self._run(self.db.expired_uploads, time.time()):
                    lock = self._lock(upload.id)
                    if lock.locked():
                        continue
                    async with lock:
                        await self._run(self._expire, upload.id)
                self._prune_locks()
            except Exception:
                log.exception("expiration sweep failed")

    def _prune_locks(self) -> None:
        """Forget the lock objects nobody holds or waits for (one per upload ever seen would only grow)."""
        for table in (self._locks, self._station_locks):
            for key, lock in list(table.items()):
                if not lock.locked():
                    del table[key]

    def _expire(self, upload_id: str) -> None:
        self.db.set_state(upload_id, "expired", reason="upload expired")
        self.data.delete_part(upload_id)
        log.info("upload %s expired and was removed", upload_id)

    def _lock(self, upload_id: str) -> asyncio.Lock:
        return self._locks.setdefault(upload_id, asyncio.Lock())

    def _start_ingest(self, upload_id: str) -> asyncio.Task[Outcome]:
        task = self._tasks.get(upload_id)
        if task is None or task.done():
            task = asyncio.create_task(self._run(self.ingestor.ingest, upload_id))
            self._tasks[upload_id] = task
            task.add_done_callback(partial(self._forget_task, upload_id))
        return task

    def _forget_task(self, upload_id: str, task: asyncio.Task[Outcome]) -> None:
        if self._tasks.get(upload_id) is task:
            del self._tasks[upload_id]

    # ------------------------------------------------------------------ helpers

    def _expires_headers(self, upload: Upload) -> dict[str, str]:
        if upload.state == "receiving" and not upload.complete:
            return {"Upload-Expires": http_date(upload.expires_at)}
        return {}

    async def _load(self, request: Request, *, locked: bool = False) -> Upload | Response:
        """The upload named in the path, or the error response (404 unknown, 410 expired).

        Another station's upload is unknown (404) to the caller: upload state and receipts are the sender's.

        ``locked``: the caller holds the upload's lock; otherwise an upload that a PATCH is writing
        is not expired from under it (the PATCH extends the expiry when it ends).
        """
        upload_id = request.path_params["upload_id"]
        if not UPLOAD_ID.match(upload_id):
            return error(404, "unknown upload (ids are 32 lowercase hex digits)")
        upload = await self._run(self.db.get_upload, upload_id)
        if upload is None or upload.state == "terminated" or upload.station_id != caller(request.scope).station_id:
            return error(404, f"unknown upload {upload_id}")
        if upload.state == "expired":
            return error(410, f"upload {upload_id} expired; create a new upload")
        if (upload.state == "receiving" and not upload.complete and upload.expires_at < time.time()
                and (locked or not self._lock(upload_id).locked())):
            await self._run(self._expire, upload_id)
            return error(410, f"upload {upload_id} expired; create a new upload")
        return upload

    @staticmethod
    def _require_tus(request: Request) -> Response | None:
        if request.headers.get("tus-resumable") != TUS_VERSION:
            return error(412, "Tus-Resumable: 1.0.0 is required", headers={"Tus-Version": TUS_VERSION})
        return None

    # ------------------------------------------------------------------ endpoints

    async def health(self, _request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def options(self, _request: Request) -> Response:
        return Response(status_code=204, headers={
            "Tus-Version": TUS_VERSION, "Tus-Extension": TUS_EXTENSIONS,
            "Tus-Checksum-Algorithm": CHECKSUM_ALGORITHMS, "Tus-Max-Size": str(self.config.max_size)})

    async def create(self, request: Request) -> Response:
        if (bad := self._require_tus(request)) is not None:
            return bad
        try:
            if "upload-defer-length" in request.headers:
                raise BadRequest(400, "Upload-Defer-Length is not supported; send Upload-Length")
            length = parse_non_negative("Upload-Length", request.headers.get("upload-length"))
            meta = parse_metadata(request.headers.get("upload-metadata"))
        except BadRequest as e:
            return error(e.status, e.reason)
        if length > self.config.max_size:
            return error(413, f"Upload-Length {length} exceeds Tus-Max-Size {self.config.max_size}")
        if length == 0:
            return error(400, "Upload-Length 0: an empty upload cannot be a package")
        station = caller(request.scope)
        if meta["station_id"] != station.station_id:
            return error(403, f"Upload-Metadata station_id {meta['station_id']!r} is not the calling station "
                              f"{station.station_id!r}", check="station_mismatch")
        other = await self._run(self.db.package_by_batch, meta["batch_uid"])
        if other is not None and other.station_id != station.station_id:
            return error(409, f"batch uid {meta['batch_uid']!r} belongs to another station", check="batch_foreign")
        if other is not None and other.package_sha256 != meta["package_sha256"]:
            return error(409, f"batch {meta['batch_uid']!r} was already received as a different package "
                              f"({other.package_sha256}); a re-sealed batch needs a new batch uid",
                         check="batch_conflict")
        if shutil.disk_usage(self.data.uploads).free < length + DISK_RESERVE_BYTES:
            return error(507, "not enough disk space on the receiver for this upload")
        # count and create under the station's lock: concurrent creations cannot slip past the caps together
        async with self._station_locks.setdefault(station.station_id, asyncio.Lock()):
            open_uploads = await self._run(self.db.open_uploads, station.station_id)
            if open_uploads.count >= self.config.max_open_uploads:
                return error(429, f"station {station.station_id!r} has {open_uploads.count} open uploads (limit "
                                  f"{self.config.max_open_uploads}); finish or terminate one first",
                             check="open_uploads", headers={"Retry-After": "60"})
            if open_uploads.reserved_bytes + length > self.config.max_reserved_bytes:
                return error(413, f"station {station.station_id!r} has {open_uploads.reserved_bytes} bytes in open "
                                  f"uploads; {length} more exceed its limit of {self.config.max_reserved_bytes}",
                             check="reserved_bytes")
            upload_id = secrets.token_hex(16)
            expires = time.time() + self.config.expiration_seconds
            await self._run(self.data.create_part, upload_id)
            await self._run(self.db.create_upload, upload_id, length, request.headers["upload-metadata"], meta,
                            expires)
        location = f"{str(request.base_url).rstrip('/')}/files/{upload_id}"
        log.info("upload %s created: %d bytes, batch %s", upload_id, length, meta["batch_uid"])
        return Response(status_code=201, headers={"Location": location, "Upload-Expires": http_date(expires),
                                                  "Upload-Offset": "0"})

    async def head(self, request: Request) -> Response:
        if (bad := self._require_tus(request)) is not None:
            return Response(status_code=bad.status_code, headers={"Tus-Version": TUS_VERSION})
        loaded = await self._load(request)
        if isinstance(loaded, Response):
            return Response(status_code=loaded.status_code, headers={"Cache-Control": "no-store"})
        return Response(status_code=200, headers={
            "Upload-Offset": str(loaded.offset), "Upload-Length": str(loaded.length),
            "Upload-Metadata": loaded.metadata_header, "Cache-Control": "no-store",
            **self._expires_headers(loaded)})

    async def patch(self, request: Request) -> Response:
        if (bad := self._require_tus(request)) is not None:
            return bad
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != OFFSET_CONTENT_TYPE:
            return error(415, f"Content-Type must be {OFFSET_CONTENT_TYPE}")
        try:
            offset = parse_non_negative("Upload-Offset", request.headers.get("upload-offset"))
            expected_digest = parse_checksum(request.headers.get("upload-checksum"))
            content_length = (parse_non_negative("Content-Length", request.headers["content-length"])
                              if "content-length" in request.headers else None)
        except BadRequest as e:
            return error(e.status, e.reason)
        upload_id = request.path_params["upload_id"]
        if not await self._owned(request, upload_id):  # another station's upload: not even its lock
            return error(404, f"unknown upload {upload_id}")
        lock = self._lock(upload_id) if UPLOAD_ID.match(upload_id) else asyncio.Lock()
        try:
            await asyncio.wait_for(lock.acquire(), timeout=LOCK_WAIT_SECONDS)
        except TimeoutError:
            return error(423, "another request is writing to this upload; retry after HEAD")
        try:
            result = await self._patch_locked(request, offset, expected_digest, content_length)
        finally:
            lock.release()
        if isinstance(result, Response):
            return result
        upload, new_offset = result
        headers = {"Upload-Offset": str(new_offset)}
        if new_offset == upload.length:
            task = self._start_ingest(upload.id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), timeout=self.config.verify_wait_seconds)
        else:
            headers["Upload-Expires"] = http_date(time.time() + self.config.expiration_seconds)
        return Response(status_code=204, headers=headers)

    async def _owned(self, request: Request, upload_id: str) -> bool:
        if not UPLOAD_ID.match(upload_id):
            return True  # _load answers 404 for it
        upload = await self._run(self.db.get_upload, upload_id)
        return upload is None or upload.station_id == caller(request.scope).station_id

    async def _patch_locked(self, request: Request, offset: int, expected_digest: bytes | None,
                            content_length: int | None) -> Response | tuple[Upload, int]:
        loaded = await self._load(request, locked=True)
        if isinstance(loaded, Response):
            return loaded
        upload = loaded
        if offset != upload.offset:
            return error(409, f"Upload-Offset {offset} does not match the upload's offset {upload.offset}",
                         headers={"Upload-Offset": str(upload.offset)})
        remaining = upload.length - upload.offset
        if content_length is not None and content_length > remaining:
            return error(413, f"chunk of {content_length} bytes goes past Upload-Length {upload.length}")
        if upload.state != "receiving" or remaining == 0:
            if content_length:
                return error(409, "upload is already complete", headers={"Upload-Offset": str(upload.offset)})
            return upload, upload.offset
        await self._run(self.data.truncate_part, upload.id, offset)
        written, status = await self._receive_chunk(request, upload, remaining, expected_digest)
        if status is not None:
            await self._run(self.data.truncate_part, upload.id, offset)  # discard the chunk
            return status
        new_offset = offset + written
        if written:
            await self._run(self.db.set_offset, upload.id, new_offset, time.time() + self.config.expiration_seconds)
        return upload, new_offset

    async def _receive_chunk(self, request: Request, upload: Upload, remaining: int,
                             expected_digest: bytes | None) -> tuple[int, Response | None]:
        """Append the body to the partial file, fsynced; (bytes kept, error response if discarded)."""
        path = self.data.part_path(upload.id)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW)
        hasher = hashlib.sha256()
        written = 0
        try:
            try:
                stream = request.stream().__aiter__()
                while True:
                    try:
                        async with asyncio.timeout(self.config.body_timeout_seconds):
                            chunk = await anext(stream)
                    except StopAsyncIteration:
                        break
                    except TimeoutError:
                        log.warning("upload %s: no body bytes for %.0f s; chunk discarded", upload.id,
                                    self.config.body_timeout_seconds)
                        return 0, error(408, f"no request body bytes for {self.config.body_timeout_seconds:.0f} s; "
                                             "the chunk was discarded", check="body_timeout",
                                        headers={"Connection": "close", "Upload-Offset": str(upload.offset)})
                    if written + len(chunk) > remaining:
                        return 0, error(413, f"chunk goes past Upload-Length {upload.length}")
                    view = memoryview(chunk)
                    while view:  # small writes into the page cache; the fsync below is the slow part
                        view = view[os.write(fd, view):]
                    hasher.update(chunk)
                    written += len(chunk)
            except ClientDisconnect:
                if expected_digest is not None:
                    # an unverifiable partial chunk is never kept
                    return 0, error(400, "client disconnected before the chunk was complete")
                log.info("upload %s: client disconnected after %d bytes; keeping them", upload.id, written)
            if expected_digest is not None and hasher.digest() != expected_digest:
                log.warning("upload %s: checksum mismatch at offset %d; chunk discarded", upload.id, upload.offset)
                return 0, error(460, "Upload-Checksum mismatch: the chunk was discarded, resend it",
                                check="checksum", headers={"Upload-Offset": str(upload.offset)})
            await self._run(os.fsync, fd)
        finally:
            os.close(fd)
        return written, None

    async def delete(self, request: Request) -> Response:
        if (bad := self._require_tus(request)) is not None:
            return bad
        upload_id = request.path_params["upload_id"]
        if not UPLOAD_ID.match(upload_id):
            return error(404, "unknown upload")
        async with self._lock(upload_id):
            loaded = await self._load(request, locked=True)
            if isinstance(loaded, Response):
                return loaded
            if loaded.state == "verifying" or upload_id in self._tasks:
                return error(409, "the upload is being verified; it cannot be terminated now")
            await self._run(self._terminate, loaded)
        return Response(status_code=204)

    def _terminate(self, upload: Upload) -> None:
        # terminating an accepted upload forgets the upload, never the stored package or its receipt
        self.db.set_state(upload.id, "terminated", check=upload.refusal_check, reason=upload.refusal_reason)
        self.data.delete_part(upload.id)
        log.info("upload %s terminated", upload.id)

    async def receipt_for_upload(self, request: Request) -> Response:
        loaded = await self._load(request)
        if isinstance(loaded, Response):
            return loaded
        upload = loaded
        if upload.state == "accepted":
            accepted = await self._run(self.db.package_by_sha256, upload.package_sha256)
            if accepted is not None:
                return Response(accepted.receipt, media_type="application/json",
                                headers={"Cache-Control": "no-store"})
        if upload.state == "refused":
            return error(422, upload.refusal_reason or "package refused", check=upload.refusal_check)
        if not upload.complete:
            return error(409, f"upload incomplete: {upload.offset} of {upload.length} bytes received",
                         headers={"Upload-Offset": str(upload.offset)})
        self._start_ingest(upload.id)  # (re)start if a crash or an internal error interrupted it
        return JSONResponse({"status": "verifying"}, status_code=202, headers={"Retry-After": "1"})

    async def receipt_by_hash(self, request: Request) -> Response:
        sha = request.path_params["package_sha256"]
        if not _SHA256.match(sha):
            return error(400, "package_sha256 must be 64 lowercase hex digits")
        accepted = await self._run(self.db.package_by_sha256, sha)
        if accepted is None or accepted.station_id != caller(request.scope).station_id:
            return error(404, f"no package with sha256 {sha} has been received")
        return Response(accepted.receipt, media_type="application/json", headers={"Cache-Control": "no-store"})


def database_url(config: ReceiverConfig) -> str:
    return config.database_url or f"sqlite:///{config.data_dir / 'receiver.db'}"


def create_app(config: ReceiverConfig) -> Starlette:
    receiver = Receiver(config)
    db = receiver.db

    def identify(state: dict[str, Any]) -> Station:
        if config.dev_station is not None:
            return identify_dev_station(config.dev_station, db.station)
        return identify_by_certificate(peer_certificate(state), db.station_by_serial)

    routes = [
        Route("/health", receiver.health, methods=["GET"]),
        Route("/files/", receiver.options, methods=["OPTIONS"]),
        Route("/files", receiver.options, methods=["OPTIONS"]),
        Route("/files/", receiver.create, methods=["POST"]),
        Route("/files", receiver.create, methods=["POST"]),
        Route("/files/{upload_id}", receiver.head, methods=["HEAD"]),
        Route("/files/{upload_id}", receiver.patch, methods=["PATCH"]),
        Route("/files/{upload_id}", receiver.delete, methods=["DELETE"]),
        Route("/files/{upload_id}/receipt", receiver.receipt_for_upload, methods=["GET"]),
        Route("/receipts/{package_sha256}", receiver.receipt_by_hash, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=receiver.lifespan)
    app.add_middleware(StationAuthMiddleware, identify=identify)
    app.add_middleware(TusResumableMiddleware)  # added last: outermost, so refusals carry Tus-Resumable too
    app.state.receiver = receiver
    return app

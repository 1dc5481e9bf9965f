"""The upload queue: sealed packages to the portal over tus, receipts checked, local copies purged.

State of each upload lives in SQLite (table ``uploads``), written after every acknowledged chunk, so a
station killed mid-upload resumes from the portal's offset at the next run.  Upload states::

    queued -> uploading -> received -> purged
                 |  ^
                 v  |
              retrying          (transient: network, 5xx, timeouts; tried again)
                 |
                 v
               failed           (for good: portal refused, hostile reply, bad receipt, attempts used up;
                                 the batch goes back to SEALED and stays until a person acts)

Every request to an https portal presents the station's TLS client certificate (its enrolment,
scanstation/enrolment/); a station without one uploads nothing and its batches stay queued.

Nothing is purged without a receipt that verifies against the configured portal key and matches the
sealed manifest document by document.  Purge destroys the vault objects, the package file and the
batch key (scanstation.vault.batch_keys), after ``upload.retention_hours``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

from batchformat import verify_receipt
from scanstation.domain import BatchState
from scanstation.enrolment.client_tls import client_credentials
from scanstation.enrolment.files import EnrolmentFiles
from scanstation.errors import FormatError, PortalRejected, ReceiptInvalid, ScanStationError, StateError, UploadError
from scanstation.seal.sealing import existing_package, package_manifest
from scanstation.upload.portal_key import load_portal_key
from scanstation.upload.tus_client import Progress, RetryPolicy, TusClient
from scanstation.upload.tus_http import client_certificate_refusal, dropped_after_handshake_hint, enrolment_hint

if TYPE_CHECKING:
    from scanstation.config import Config
    from scanstation.facade import Station
    from scanstation.store.database import Store

log = logging.getLogger(__name__)

ACTIVE_STATES = ("queued", "uploading", "retrying")
MAX_REPLY_BYTES = 1024 * 1024  # receipts and error bodies; anything bigger is hostile
RECEIPT_WAIT_SECONDS = 600.0  # the portal verifies a package after its last byte; this long at most


@dataclass(frozen=True)
class Outcome:
    batch: str
    state: str  # received | retrying | failed | purged
    detail: str = ""
    receipt_id: str = ""
    error: type[ScanStationError | FormatError] | None = None  # what kind of failure, for the CLI's exit code


def _utc_now() -> datetime:
    return datetime.now(UTC)


class UploadQueue:
    """Drives the uploads of one station; ``session_factory`` and ``sleep`` are injectable for tests."""

    def __init__(
        self,
        station: Station,
        *,
        session_factory: Callable[[], requests.Session] = requests.Session,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = _utc_now,
        retry: RetryPolicy | None = None,
        events: Callable[[str, dict[str, Any]], None] | None = None,
        config: Config | None = None,
    ) -> None:
        self.station = station
        self.store = station.store
        # ``config`` overrides the station's portal/upload settings (the demo's local receiver).
        self.config = config or station.config
        self._session_factory = session_factory
        self._sleep = sleep
        self._clock = clock
        self._retry = retry or RetryPolicy()
        self._events = events or (lambda kind, data: None)
        self._rng = random.Random()

    # ------------------------------------------------------------------ set-up checks
    def _portal(self) -> tuple[str, Any]:
        portal = self.config.portal
        if not portal.url:
            raise StateError(f"{self.config.source}: portal.url is not set (scanstation init --portal-url URL)")
        if not portal.receipt_key:
            raise StateError(
                f"{self.config.source}: portal.receipt_key is not set (scanstation init --portal-receipt-key FILE)"
            )
        return portal.url, load_portal_key(portal.receipt_key.encode("ascii"), f"{self.config.source}: "
                                               "portal.receipt_key")

    def _client_cert(self, base: str) -> tuple[str, str] | None:
        """The station's TLS client certificate and key (RAM files) for an https portal; None for plain http
        (allowed only on loopback, for the demo and the tests).  EnrolmentError when the station has none."""
        if urlsplit(base).scheme != "https":
            return None
        files = EnrolmentFiles(self.station.config.data_dir)
        return client_credentials(files, self.station.key, self.station.ramdir).for_requests

    # ------------------------------------------------------------------ queue
    def enqueue(self, name: str, actor: str) -> None:
        """Queue a sealed batch (again, if its last upload failed for good: a person asked for it)."""
        batch = self.store.batch(name)
        if batch is None:
            raise StateError(f"there is no batch '{name}'")
        row = self.store.upload(batch.id)
        if row is not None and row["state"] != "failed":
            return  # queued already, under way, or received (send() answers from the record)
        pkg = existing_package(self.station, batch)
        if pkg is None:
            raise StateError(
                f"batch '{name}' is {batch.state.value}, not sealed (run 'scanstation seal --batch {name}')"
            )
        if row is None:
            self.store.enqueue_upload(batch.id, pkg.size, actor)
            self.store.audit(actor, "upload.queued", name, {"package_sha256": pkg.sha256, "size": pkg.size},
                             batch_id=batch.id)
        else:
            self.store.update_upload(batch.id, state="queued", attempts=0, last_error="",
                                     audit=(actor, "upload.requeued", {"previous_error": row["last_error"]}))

    def pending_batches(self) -> list[str]:
        return [r["batch_name"] for r in self.store.uploads() if r["state"] in ACTIVE_STATES]

    def run(self, name: str | None = None, *, actor: str = "station", cancel: threading.Event | None = None,
            on_outcome: Callable[[Outcome], None] | None = None) -> list[Outcome]:
        """Upload ``name`` (or every queued batch) until received or failed for good; then purge what is due."""
        if name is not None:
            self.enqueue(name, actor)
            names = [name]
        else:
            names = self.pending_batches()
        outcomes = []
        for batch_name in names:
            outcome = self._until_settled(batch_name, actor, cancel)
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
        self.purge_due(actor)
        return outcomes

    def _until_settled(self, name: str, actor: str, cancel: threading.Event | None) -> Outcome:
        failures = 0
        while True:
            outcome = self.send(name, actor, cancel)
            if outcome.state != "retrying":
                return outcome
            failures += 1
            delay = self._retry.delay(failures, self._rng)
            log.warning("upload of %s will be retried in %.1f s: %s", name, delay, outcome.detail)
            if cancel is not None and cancel.wait(delay):
                return outcome
            if cancel is None:
                self._sleep(delay)

    # ------------------------------------------------------------------ one attempt
    def send(self, name: str, actor: str, cancel: threading.Event | None = None) -> Outcome:
        """One attempt at getting batch ``name`` to the portal and its receipt verified."""
        base, portal_key = self._portal()
        batch = self.store.batch(name)
        if batch is None:
            raise StateError(f"there is no batch '{name}'")
        row = self.store.upload(batch.id)
        if row is None:
            raise StateError(f"batch '{name}' is not queued for upload")
        if row["state"] in ("received", "purged"):
            return Outcome(name, row["state"], "already received", row["receipt_id"] or "")
        if row["state"] == "failed":
            return Outcome(name, "failed", row["last_error"], error=UploadError)
        # Before anything changes: an https portal needs the station's client certificate, and a station that
        # is not enrolled keeps its batch queued as it is (EnrolmentError, exit 32, says how to enrol).
        client_cert = self._client_cert(base)
        pkg = existing_package(self.station, batch)
        assert pkg is not None
        manifest = package_manifest(self.station, batch.id)
        if batch.state is BatchState.SEALED:
            self.store.set_batch_state(batch.id, BatchState.UPLOADING, actor)
        attempts = row["attempts"] + 1
        self.store.update_upload(batch.id, state="uploading", attempts=attempts,
                                 audit=(actor, "upload.attempt", {"attempt": attempts, "resume_url": row["url"]}))
        session = self._session_factory()
        try:
            receipt_data = self._fetch_receipt(session, f"{base}receipts/{pkg.sha256}", wait=False, cert=client_cert)
            if receipt_data is None:
                client = TusClient(
                    base + "files/", session=session, ca_bundle=self.config.portal.ca_bundle or None,
                    client_cert=client_cert,
                    connect_timeout=self.config.portal.connect_timeout, read_timeout=self.config.portal.read_timeout,
                    chunk_bytes=self.config.upload.chunk_bytes,
                    max_bytes_per_second=self.config.upload.max_bytes_per_second, retry=self._retry,
                    sleep=self._sleep,
                )

                def created(url: str) -> None:
                    self.store.update_upload(batch.id, url=url, confirmed_offset=0, expires=None,
                                             audit=(actor, "upload.created", {"url": url}))

                def progress(p: Progress) -> None:
                    # The expiry goes with the offset: a resume after a restart that the server has
                    # expired meanwhile starts a new upload at once instead of asking for the old one.
                    expiry = p.expires.isoformat(timespec="seconds") if p.expires is not None else None
                    self.store.update_upload(batch.id, confirmed_offset=p.offset, expires=expiry)
                    self._events("upload_progress", {"batch": name, "offset": p.offset, "size": p.size,
                                                     "bytes_per_second": p.bytes_per_second})

                url = client.upload(
                    pkg.path, pkg.size, url=row["url"], expires=_parse_time(row["expires"]),
                    metadata={"filename": pkg.path.name, "batch_uid": pkg.batch_uid,
                              "package_sha256": pkg.sha256, "station_id": self.config.station.id},
                    on_created=created, on_progress=progress, cancel=cancel,
                )
                receipt_data = self._fetch_receipt(session, url.rstrip("/") + "/receipt", wait=True,
                                                   cert=client_cert)
                if receipt_data is None:
                    raise UploadError(f"{url}/receipt: the portal has the package but no receipt for it")
            receipt = verify_receipt(receipt_data, portal_key, package_sha256=pkg.sha256, manifest=manifest)
        except (PortalRejected, ReceiptInvalid) as e:
            return self._failed(batch.id, name, actor, e)
        except UploadError as e:
            if attempts >= self.config.upload.max_attempts:
                return self._failed(batch.id, name, actor, e)
            self.store.update_upload(batch.id, state="retrying", last_error=e.message,
                                     audit=(actor, "upload.retry", {"error": e.message}))
            return Outcome(name, "retrying", e.message, error=type(e))
        finally:
            session.close()
        now = self._clock()
        purge_after = now + timedelta(hours=self.config.upload.retention_hours)
        self.store.record_receipt(
            batch.id, receipt=receipt_data, receipt_id=receipt["receipt_id"],
            received_at=now.isoformat(timespec="seconds"), purge_after=purge_after.isoformat(timespec="seconds"),
            package_sha256=pkg.sha256, actor=actor,
        )
        self._events("upload_received", {"batch": name, "receipt_id": receipt["receipt_id"]})
        return Outcome(name, "received", receipt_id=receipt["receipt_id"])

    def _failed(self, batch_id: int, name: str, actor: str, e: ScanStationError | FormatError) -> Outcome:
        self.store.update_upload(batch_id, state="failed", last_error=e.message,
                                 audit=(actor, "upload.failed", {"error": e.message, "kind": type(e).__name__}))
        if self.store.batch_by_id(batch_id).state is BatchState.UPLOADING:
            self.store.set_batch_state(batch_id, BatchState.SEALED, actor)
        self._events("upload_failed", {"batch": name, "error": e.message})
        return Outcome(name, "failed", e.message, error=type(e))

    # ------------------------------------------------------------------ receipts
    def _fetch_receipt(self, session: requests.Session, url: str, *, wait: bool,
                       cert: tuple[str, str] | None) -> bytes | None:
        """GET a receipt: bytes on 200, None on 404 (none yet), waiting through 202 when ``wait``."""
        deadline = time.monotonic() + RECEIPT_WAIT_SECONDS
        delay = 0.2
        while True:
            status, body = self._get(session, url, cert)
            if status == 200:
                return body
            if status == 404:
                return None
            if status == 202 and wait and time.monotonic() < deadline:
                self._sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if status == 202:
                if not wait:
                    return None
                raise UploadError(f"{url}: the portal is still verifying after {RECEIPT_WAIT_SECONDS:g} s")
            reason = _reason(body)
            if status in (401, 403):
                raise PortalRejected(f"{url}: the portal refused this station ({status}): {reason}"
                                     f"{enrolment_hint(status)}")
            if status in (409, 410, 422):
                raise PortalRejected(f"{url}: the portal refused the package ({status}): {reason}")
            if status >= 500 or status in (408, 423, 429):
                raise UploadError(f"{url}: the portal answered {status}: {reason}")
            raise PortalRejected(f"{url}: unexpected reply {status} to a receipt request: {reason}")

    def _get(self, session: requests.Session, url: str, cert: tuple[str, str] | None) -> tuple[int, bytes]:
        try:
            with session.get(
                url, timeout=(self.config.portal.connect_timeout, self.config.portal.read_timeout),
                verify=self.config.portal.ca_bundle or True, cert=cert, allow_redirects=False, stream=True,
                headers={"Accept": "application/json", "Tus-Resumable": "1.0.0"},
            ) as reply:
                if 300 <= reply.status_code < 400:
                    raise PortalRejected(
                        f"{url}: the portal redirected to {reply.headers.get('Location', '?')!r}; redirects are refused"
                    )
                body = b""
                for chunk in reply.iter_content(65536):
                    body += chunk
                    if len(body) > MAX_REPLY_BYTES:
                        raise PortalRejected(f"{url}: reply larger than {MAX_REPLY_BYTES} bytes refused")
                return reply.status_code, body
        except requests.RequestException as e:
            refusal = client_certificate_refusal(e)
            if refusal is not None:
                raise PortalRejected(f"{url}: {refusal}") from None
            if isinstance(e, requests.exceptions.SSLError):
                raise PortalRejected(f"{url}: TLS verification failed ({e}); check portal.ca_bundle") from None
            raise UploadError(f"{url}: {type(e).__name__}: {e}{dropped_after_handshake_hint(e, cert)}") from None

    # ------------------------------------------------------------------ purge
    def purge_due(self, actor: str = "station", now: datetime | None = None) -> list[str]:
        """Destroy local copies of received batches whose retention has passed; return their names."""
        now = now or self._clock()
        purged = []
        for row in self.store.uploads():
            if row["state"] not in ("received", "purging") or not row["purge_after"]:
                continue
            if datetime.fromisoformat(row["purge_after"]) > now:
                continue
            self.purge(row["batch_id"], actor)
            purged.append(row["batch_name"])
        return purged

    def purge(self, batch_id: int, actor: str) -> None:
        """Objects, package file and batch key go; the receipt, hashes and audit trail stay.

        Order matters for crashes: the batch key goes last but one, the state last, so a purge cut
        short is simply done again at the next run (every step is idempotent).
        """
        row = self.store.upload(batch_id)
        if row is None or row["state"] not in ("received", "purging") or not row["receipt"]:
            raise StateError(f"batch #{batch_id} has no verified receipt; it cannot be purged")
        batch = self.store.batch_by_id(batch_id)
        self.store.update_upload(batch_id, state="purging")
        removed = 0
        for oid in self.store.batch_object_ids(batch_id):
            removed += self.station.vault.delete(oid)
        pkg_row = self.store.package(batch_id)
        if pkg_row is not None:
            with contextlib.suppress(FileNotFoundError):
                (self.config.outbox_dir / pkg_row["file"]).unlink()
        self.station.batch_keys.destroy(batch_id, actor)
        self.store.record_purged(batch_id, objects_removed=removed, actor=actor)
        log.info("purged batch %s (%d objects)", batch.name, removed)


def _parse_time(value: str | None) -> datetime | None:
    """A time this module stored (ISO 8601 with offset); None for none or for one that does not parse
    (then the server is simply asked again)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        log.warning("ignoring a stored upload expiry that is not a time: %r", value)
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _reason(body: bytes) -> str:
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        data = json.loads(body.decode("utf-8"))
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            return data["error"][:500]
    text = body[:200].decode("utf-8", "replace").strip()
    return text or "(no reason given)"


def uploads_report_from_store(store: Store) -> list[dict[str, Any]]:
    """The queue as plain data (for `scanstation uploads --json` and the UI)."""
    out = []
    for r in store.uploads():
        out.append({
            "batch": r["batch_name"], "state": r["state"], "size": r["size"], "confirmed_offset": r["confirmed_offset"],
            "attempts": r["attempts"], "last_error": r["last_error"], "receipt_id": r["receipt_id"],
            "received_at": r["received_at"], "purge_after": r["purge_after"], "url": r["url"],
            "expires": r["expires"],
        })
    return out


class BackgroundUploader:
    """A daemon thread that keeps the queue moving while the station runs (the UI's uploader).

    It works through queued and retrying batches, sleeping ``interval`` seconds between rounds, and
    purges what is due.  State is all in SQLite, so stopping it (or the station dying) loses nothing: the
    next station start picks the queue up where it was.  Progress and results arrive through the queue's
    ``events`` callback (on this thread; the UI marshals them to its own).
    """

    def __init__(self, queue: UploadQueue, *, interval: float = 30.0, actor: str = "station") -> None:
        self.queue = queue
        self.interval = interval
        self.actor = actor
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="uploader", daemon=True)

    def start(self) -> BackgroundUploader:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the current chunk (the tus client checks the cancel event between chunks)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                for name in self.queue.pending_batches():
                    if self._stop.is_set():
                        break
                    outcome = self.queue.send(name, self.actor, cancel=self._stop)
                    if outcome.state == "retrying":
                        log.warning("upload of %s: %s (will retry)", name, outcome.detail)
                self.queue.purge_due(self.actor)
            except ScanStationError as e:
                log.warning("uploader: %s", e.message)
            except Exception:  # keep the thread alive: the next round may succeed
                log.exception("uploader: unexpected error")
            self._wake.wait(self.interval)
            self._wake.clear()

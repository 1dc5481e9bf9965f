"""The station facade: capture into the vault, background cleaning and OCR, recovery after a crash.

:class:`Station` owns the open store, vault, keys and RAM directory of one data directory, and the
threads that move a page along (analysis threads, the OCR feeder).  The capture session itself is in
:mod:`scanstation.capture.session`, each step's work in its own package (cleanup, ocr, pdf, vault,
store); what stays here (~500 lines) is the wiring and the life cycle, which share the station's locks
and queues.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyrage import x25519

from batchformat import atomic
from drivers.base import CancelToken, CapturedPage, Driver, ScanSettings
from scanstation import __version__
from scanstation.audit.sink import AuditSink
from scanstation.audit.trail import AuditTrail
from scanstation.config import Config
from scanstation.domain import Batch, Document, OcrState, Page, PageState, Side
from scanstation.errors import OcrError, ScanStationError, StateError, VaultIntegrityError
from scanstation.store.database import Store, StoredObject
from scanstation.store.pages import DAMAGED_FLAG
from scanstation.vault.batch_keys import BatchKeys
from scanstation.vault.identity import StationKey, parse_recipient
from scanstation.vault.objects import ObjectRef, Vault
from scanstation.vault.ramdir import RamDir, set_process_tempdir, sweep_stale

if TYPE_CHECKING:
    from PIL import Image

    from scanstation.capture.session import CaptureReport
    from scanstation.pdf.page_encoding import CompactPage

log = logging.getLogger(__name__)

EventSink = Callable[[str, dict[str, Any]], None]


def _stored(ref: ObjectRef, kind: str) -> StoredObject:
    return StoredObject(ref.id, kind, ref.sha256, ref.ct_sha256, ref.size)


class StationLock:
    """One station process per data directory: the single-writer rule for the database and vault."""

    def __init__(self, data_dir: Path) -> None:
        self._fd = os.open(data_dir / "station.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            os.close(self._fd)
            raise StateError(f"{data_dir}: another ScanStation process is using this data directory") from e

    def release(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)


def _role_of(actor: str) -> str:
    # TODO(issue 13, architect): the person's role from people.db (People.get(actor).role) once the service
    # routes every call; until then only the station itself is known.
    return "station" if actor == "station" else "unknown"


def _batch_recipient_of(store: Callable[[], Store | None]) -> Callable[[int], x25519.Recipient | None]:
    """A batch's live-key recipient, or None (no key yet, or destroyed by a purge).

    For the audit trail, which seals an entry's personal fields to it: it never creates a key and takes
    no lock (the trail is called from inside the store's write transactions, on any thread).
    """

    def recipient(batch_id: int) -> x25519.Recipient | None:
        s = store()
        text = s.batch_recipient(batch_id) if s is not None else None
        return parse_recipient(text) if text else None

    return recipient


def _open_audit(config: Config, key: StationKey, batch_recipient: Callable[[int], x25519.Recipient | None], *,
                sign: bool = True) -> AuditTrail:
    """The station's audit trail (data_dir/audit.db), which the store and the capture write through.

    Personal fields of a batch's entries are sealed to ``batch_recipient(batch_id)``, so purging the
    batch shreds them.  ``sign``: attach the station's signing key (checkpoints every 100 entries).
    Used when no service hands the station its trail (tests, a developer shell, read-only commands).
    """
    trail = AuditTrail(config.data_dir / "audit.db", station_id=config.station.id, role_of=_role_of,
                       batch_recipient=batch_recipient, station_recipient=key.as_recipient())
    if sign:
        trail.attach_signer(key.signing_key)
    return trail


def open_store(config: Config, key: StationKey, audit: AuditSink | None = None) -> Store:
    """The database alone, without the station lock (read-mostly commands such as status).

    station.db is encrypted (SQLCipher), so even a read needs the unlocked station key.  ``audit``: the
    trail to write through (the service's); without it one is opened (and closed with the store).
    """
    db = config.data_dir / "station.db"
    if not db.exists():
        raise StateError(f"{config.data_dir}: no station here yet (run 'scanstation init')")
    if audit is not None:
        return Store(db, key=key.store_key, audit=audit)
    stores: list[Store] = []
    # no signer: a read-only command signs no checkpoint (the station or the service does)
    audit = _open_audit(config, key, _batch_recipient_of(lambda: stores[0] if stores else None), sign=False)
    try:
        stores.append(Store(db, key=key.store_key, audit=audit, close_audit=True))
    except BaseException:
        audit.close()
        raise
    return stores[0]


class Station:
    """Everything between a driver's page callback and the encrypted vault.

    Capture is on the caller's thread and only encodes, encrypts and records the raw page (that is
    the acknowledgement).  Cleaning runs on analysis threads; OCR runs in worker processes fed from
    the database, never more than a few pages in flight, so memory stays flat however far OCR lags.
    """

    def __init__(
        self,
        config: Config,
        key: StationKey,
        *,
        audit: AuditSink | None = None,
        events: EventSink | None = None,
        ocr_pool_factory: Callable[[Path], Any] | None = None,
    ) -> None:
        """``audit``: the trail to write entries through (the service's, which it keeps open and closes);
        without it the station opens data_dir/audit.db itself (and closes it in :meth:`close`)."""
        self.config = config
        self.key = key
        self.events: EventSink = events or (lambda kind, data: None)
        data_dir = config.data_dir
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(data_dir, 0o700)  # wave 1 may have made it 0755: nothing in it is for other users
        self._lock = StationLock(data_dir)
        try:
            if not config.keys.portal_recipient:
                raise StateError(f"{config.source}: keys.portal_recipient is not set (run 'scanstation init')")
            recipients = [parse_recipient(config.keys.portal_recipient), parse_recipient(key.recipient)]
            sweep_stale("scanstation")  # RAM dirs of station processes that died (kill -9, power loss)
            self.ramdir = RamDir(prefix="scanstation")
            # pytesseract, Pillow plugins and anything else using tempfile now write only to tmpfs
            self._restore_tempdir = set_process_tempdir(self.ramdir)
            # The trail first (the store writes its entries through it); it asks for batch recipients
            # only once the store exists.
            self._owns_audit = audit is None
            self.audit: AuditSink = audit if audit is not None else _open_audit(
                config, key, _batch_recipient_of(lambda: getattr(self, "store", None)))
            self.store = Store(data_dir / "station.db", key=key.store_key, audit=self.audit)
            self.batch_keys = BatchKeys(self.store, key)
            self.vault = Vault(data_dir / "vault", recipients, key, self.batch_keys.identities)
        except BaseException:
            close_audit = getattr(getattr(self, "audit", None), "close", None)
            if audit is None and close_audit is not None:
                close_audit()
            self._lock.release()
            raise
        self._ocr_pool_factory = ocr_pool_factory
        self._ocr_pool: Any = None
        self._process_q: queue.Queue[tuple[int, Image.Image | None] | None] = queue.Queue()
        # Pages queued for or in cleaning: page id -> batch id (a batch can be waited for on its own).
        self._busy: dict[int, int] = {}
        self._busy_cv = threading.Condition()
        # Cleaned pages whose compact page is still to be made: page id -> batch id (under _busy_cv).  Made by the
        # compact worker when cleaning and OCR have room (see _compact_loop); one at a time (_compact_lock).
        self._compacting: dict[int, int] = {}
        self._compact_lock = threading.Lock()
        self._ocr_inflight: dict[int, Future[Any]] = {}
        self._ocr_wake = threading.Event()
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []
        # Objects this process writes are newer than this (quarantine never touches them).
        self._started_at = time.time()
        self._recover()
        for i in range(config.pipeline.analysis_workers):
            t = threading.Thread(target=self._process_loop, name=f"analysis-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        if config.ocr.enabled:
            t = threading.Thread(target=self._ocr_feeder, name="ocr-feeder", daemon=True)
            t.start()
            self._threads.append(t)
        t = threading.Thread(target=self._compact_loop, name="compact", daemon=True)
        t.start()
        self._threads.append(t)

    # ------------------------------------------------------------------ life cycle
    def _recover(self) -> None:
        """Undo what a crash can leave (temp files), report unlisted objects; re-queue unfinished pages.

        Vault objects the store does not list are never deleted here: a crash between an object's write
        and its commit leaves one, but so can a restore or a copied file, and only a person can tell.
        They are counted in the audit entry and logged; ``scanstation vault quarantine`` moves them aside.
        """
        stale = self.vault.remove_stale_temps()
        unlisted = self.vault.unlisted(self.store.object_ids())
        if unlisted:
            log.warning(
                "%d vault object(s) are not listed in the station database (left by a crash between writing "
                "and recording them, or put there from outside); kept. 'scanstation verify-vault' lists them, "
                "'scanstation vault quarantine' moves them aside", len(unlisted))
        stale += self._sweep_outbox()
        # Objects recorded as destroyed (a sealed batch's raw captures) whose deletion a crash cut short.
        for oid in self.store.destroyed_object_ids(unpurged=True):
            self.vault.delete(oid)
        pending = self.store.pages_to_process()
        ocr_pending = len(self.store.pages_to_ocr())
        self.store.audit(
            "station",
            "station.start",
            self.config.station.id,
            {
                "version": __version__,
                "stale_temps": stale,
                "unlisted_objects": len(unlisted),
                "pages_to_process": len(pending),
                "pages_to_ocr": ocr_pending,
            },
        )
        for page_id in pending:
            self._enqueue(page_id, self.store.page(page_id).batch_id, None)
        # Cleaned pages a stop left without their compact page (the worker waits for OCR): made again by it.
        with self._busy_cv:
            self._compacting.update(self.store.pages_to_compact())

    def _sweep_outbox(self) -> int:
        """Packages a crash left unrecorded (killed between writing and committing a seal) and temp files."""
        outbox = self.config.outbox_dir
        if not outbox.is_dir():
            return 0
        removed = atomic.remove_stale_temps(outbox)
        known = self.store.package_files()
        for f in outbox.iterdir():
            if f.is_file() and f.suffix == ".pkg" and f.name not in known:
                f.unlink(missing_ok=True)
                removed += 1
        return removed

    def close(self, wait: bool = False) -> None:
        if wait:
            self.wait_idle()  # bounded by pipeline.wait_timeout_seconds
        self._closing.set()
        self._ocr_wake.set()
        with self._busy_cv:
            self._busy_cv.notify_all()  # the compact worker
        for _ in self._threads:
            self._process_q.put(None)
        for t in self._threads:
            t.join(timeout=10)
        if self._ocr_pool is not None:
            self._ocr_pool.shutdown()
        self.store.close()
        close_audit = getattr(self.audit, "close", None)
        if self._owns_audit and close_audit is not None:
            close_audit()
        self._restore_tempdir()
        self.ramdir.close()
        self._lock.release()

    def __enter__(self) -> Station:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def batch_recipient(self, batch_id: int) -> x25519.Recipient | None:
        """The recipient of a batch's live key, or None (none yet, or purged): what the audit trail seals a
        batch's personal fields to.  Never creates a key and takes no lock: the trail calls it from inside
        the store's write transactions (``batch_keys.recipient`` would start a second one, and deadlock)."""
        return _batch_recipient_of(lambda: self.store)(batch_id)

    # ------------------------------------------------------------------ capture
    def capture(
        self,
        batch_name: str,
        driver: Driver,
        device: str,
        settings: ScanSettings,
        *,
        cancel: CancelToken | None = None,
        document: Document | None = None,
        operator: str | None = None,
        separators: bool = True,
    ) -> CaptureReport:
        """Scan or import into ``batch_name``; device faults and bad files are reported, not raised.

        ``separators``: look for QR cover sheets (a scan profile may turn that off)."""
        from scanstation.capture.session import capture_batch

        # The batch's key first: the personal fields of the capture's audit entries (file names, cover
        # sheets' employee codes) are sealed to it, so purging the batch shreds them.
        batch = self.store.open_batch(batch_name, self.config.station.unit, operator or self.config.station.operator)
        self.batch_keys.recipient(batch.id)
        return capture_batch(self, batch_name, driver, device, settings, cancel=cancel, document=document,
                             operator=operator, separators=separators)

    def add_page(
        self, batch: Batch, cp: CapturedPage, *, document: Document | None = None, operator: str | None = None
    ) -> Page | None:
        """Encrypt and record one captured page; returns it once durable (the acknowledgement)."""
        from scanstation.cleanup.pipeline import encode_png

        if self.store.has_source_key(batch.id, cp.source_key):
            return None
        image = cp.image
        if image.mode not in ("1", "L", "RGB"):
            image = image.convert("RGB" if "A" in image.mode or image.mode in ("P", "CMYK") else "L")
        image.info["dpi"] = (cp.dpi, cp.dpi)
        raw = encode_png(image, self.config.pipeline.png_compress_level)
        ref = self.vault.put(raw, kind="raw", batch_recipient=self.batch_keys.recipient(batch.id))
        page = self.store.add_page(
            batch_id=batch.id,
            source_key=cp.source_key,
            label=cp.label,
            side=Side(cp.side),
            device=cp.device,
            width=image.width,
            height=image.height,
            dpi=cp.dpi,
            mode=image.mode,
            raw=_stored(ref, "raw"),
            document_id=document.id if document else None,
            actor=operator or self.config.station.operator,
            ocr_state=OcrState.PENDING,
        )
        if page is None:  # lost a race with ourselves after a resume: drop the duplicate object
            self.vault.delete(ref.id)
            return None
        self.events(
            "page_acknowledged",
            {"batch": batch.name, "seq": page.seq, "page_id": page.id, "label": cp.label, "source_key": cp.source_key},
        )
        self._enqueue(page.id, page.batch_id, image)
        return page

    # ------------------------------------------------------------------ cleaning
    def _enqueue(self, page_id: int, batch_id: int, image: Image.Image | None) -> None:
        with self._busy_cv:
            self._busy[page_id] = batch_id
        # Keep decoded images for only a few pages; beyond that the worker re-reads from the vault,
        # so a fast feeder cannot pile hundreds of 9-MB pages into memory.
        self._process_q.put((page_id, image if self._process_q.qsize() < 4 else None))

    def _process_loop(self) -> None:
        while True:
            item = self._process_q.get()
            if item is None:
                return
            page_id, image = item
            try:
                self._process(page_id, image)
            except ScanStationError as e:
                log.error("page %s: processing failed: %s", page_id, e)
                self.events("page_error", {"page_id": page_id, "error": str(e)})
            except Exception as e:  # keep the worker alive; the page stays CAPTURED and is retried at restart
                log.exception("page %s: unexpected processing failure", page_id)
                self.events("page_error", {"page_id": page_id, "error": repr(e)})
            finally:
                with self._busy_cv:
                    self._busy.pop(page_id, None)
                    self._busy_cv.notify_all()

    def _process(self, page_id: int, image: Image.Image | None) -> None:
        from scanstation.cleanup.pipeline import clean_page, decode_png, encode_png

        page = self.store.page(page_id)
        if image is None:
            try:
                raw = self.vault.get(page.raw_object, page.raw_sha256)
            except VaultIntegrityError as e:
                self.page_damaged(page, "raw", page.raw_object, e)
                return
            image = decode_png(raw)
            del raw
        result = clean_page(image, page.dpi)
        png = encode_png(result.image, self.config.pipeline.png_compress_level)
        recipient = self.batch_keys.recipient(page.batch_id)
        ref = self.vault.put(png, kind="image", batch_recipient=recipient)
        ocr_state = OcrState.SKIPPED if result.blank else OcrState.PENDING
        self.store.set_processed(page_id, _stored(ref, "image"), result.analysis, result.flags, ocr_state)
        self._check_double_feeds(page.batch_id)
        self.events("page_processed", {"page_id": page_id, "flags": result.flags})
        self._ocr_wake.set()
        # The compact page (what the ACR file's PDF and the package carry) is made after OCR has had its turn, not
        # here: encoding costs 0.5-0.6 s of CPU a page, and on two cores it put OCR's end 22 s after the last sheet
        # instead of 10 (bench/pipeline.py).  Blank pages too (they are flagged, not dropped).
        with self._busy_cv:
            self._compacting[page_id] = page.batch_id
            self._busy_cv.notify_all()

    # ------------------------------------------------------------------ compact pages
    def _compact_loop(self) -> None:
        """Make the compact pages of cleaned pages, oldest first, whenever cleaning and OCR have room: no page
        waiting to be cleaned, and an OCR worker free with no page waiting for it.  While a scan outruns OCR (60
        pages a minute against 40-50 read on two cores) they wait; assembly makes any still missing itself."""
        while not self._closing.is_set():
            with self._busy_cv:
                page_id = min(self._compacting) if self._compacting else None
                if page_id is None or self._busy:
                    self._busy_cv.wait(timeout=0.5)
                    continue
            if not self._ocr_has_room():
                self._closing.wait(0.25)
                continue
            self._make_compact(page_id)

    def _make_compact(self, page_id: int) -> None:
        """One page of _compacting made (by the compact worker, or by a wait that has nothing else left to wait
        for) and taken off it; a failure is logged (or the page flagged), and assembly tries again."""
        try:
            page = self.store.page(page_id)
            if page.live and page.state is PageState.PROCESSED:
                self.compact_page(page)
        except VaultIntegrityError as e:  # its cleaned image cannot be read: flagged for a rescan; the others go on
            with contextlib.suppress(Exception):
                damaged = self.store.page(page_id)
                self.page_damaged(damaged, "image", damaged.image_object, e)
        except Exception:
            if not self._closing.is_set():  # closing: the store closed under us; the page is encoded at assembly
                log.exception("page %s: the compact encoding failed; it is made again at assembly", page_id)
        with self._busy_cv:
            self._compacting.pop(page_id, None)
            self._busy_cv.notify_all()

    def _ocr_has_room(self) -> bool:
        if not self.config.ocr.enabled:
            return True
        return len(self._ocr_inflight) < self.config.ocr.workers and not self.store.pages_to_ocr()

    def compact_page(self, page: Page) -> CompactPage:
        """A processed page's compact page: the stored one, or (not made yet: the compact worker waits for OCR;
        a page cleaned before issue 16; an encoding that failed) encoded now from the cleaned image and stored.
        VaultIntegrityError if an object cannot be read (the caller flags the page)."""
        from scanstation.cleanup.pipeline import decode_png
        from scanstation.pdf.page_encoding import CompactPage, encode_page

        if page.compact_object and page.compact_sha256:
            self._compacted(page.id)
            return CompactPage.from_pdf(self.vault.get(page.compact_object, page.compact_sha256), page.dpi)
        # One page encoded at a time: assembly and the compact worker may both come for the same page, and the
        # second must find the first one's page, not replace it (and delete an object the first one is reading).
        with self._compact_lock:
            page = self.store.page(page.id)
            if page.compact_object and page.compact_sha256:  # made meanwhile
                self._compacted(page.id)
                return CompactPage.from_pdf(self.vault.get(page.compact_object, page.compact_sha256), page.dpi)
            if not page.image_object or not page.image_sha256:
                raise StateError(f"page {page.seq} is not processed yet (run 'scanstation process')")
            image = decode_png(self.vault.get(page.image_object, page.image_sha256))
            compact = encode_page(image, page.dpi, label=f"page {page.seq} of batch #{page.batch_id}")
            del image
            ref = self.vault.put(compact.pdf, kind="compact",
                                 batch_recipient=self.batch_keys.recipient(page.batch_id))
            info = {"method": compact.method, "bytes": len(compact.pdf), "layers": dict(compact.layers)}
            old = self.store.set_compact(page.id, _stored(ref, "compact"), info=info)
            if old:
                self.vault.delete(old)
        self._compacted(page.id)
        return compact

    def _compacted(self, page_id: int) -> None:
        """The page has its compact page: no wait waits for it any more."""
        with self._busy_cv:
            if self._compacting.pop(page_id, None) is not None:
                self._busy_cv.notify_all()

    def page_pdf(self, page: Page, *, raw: bool = False, document: Document | None = None) -> StoredObject:
        """A one-page PDF/A-2b of one page, stored in the vault (kind ``page_pdf``, the batch key) but not recorded:
        the cleaned page (its compact page, drawn turned as verification set it, with its OCR text layer when
        read), or with ``raw`` the raw capture as scanned (at the compact encoding too, no text layer: the text
        was read from the cleaned page).  What travels for a page outside the ACR files' PDFs, and with
        ``upload.include_raw`` (scanstation.seal)."""
        from scanstation.cleanup.pipeline import decode_png
        from scanstation.pdf.page_encoding import encode_page
        from scanstation.pdf.searchable import PdfMetadata, PdfPage, build_searchable_pdf

        batch = self.store.batch_by_id(page.batch_id)
        if raw:
            image = decode_png(self.vault.get(page.raw_object, page.raw_sha256))
            compact = encode_page(image, page.dpi, label=f"raw page {page.seq} of batch {batch.name}")
            del image
            pdf_page = PdfPage(image_png=compact, dpi=page.dpi)
        else:
            compact = self.compact_page(page)
            text_pdf = None
            ocr_pdf = self.store.ocr_pdf_object(page.id) if page.ocr_state is OcrState.DONE else None
            if ocr_pdf:
                text_pdf = self.vault.get(ocr_pdf, self.store.object(ocr_pdf).sha256)
            pdf_page = PdfPage(image_png=compact, dpi=page.dpi, text_pdf=text_pdf, turn=page.rotation)
        what = "raw capture" if raw else "page"
        meta = PdfMetadata(
            title=f"{what} {page.seq} of batch {batch.name}",
            employee_code=document.employee_code if document else "",
            employee_name=document.employee_name if document else "",
            acr_period=document.acr_period if document else "",
            unit=batch.unit,
            producer=f"ScanStation {__version__}",
        )
        data = build_searchable_pdf([pdf_page], meta, self.ramdir.path)
        ref = self.vault.put(data, kind="page_pdf", batch_recipient=self.batch_keys.recipient(page.batch_id))
        return _stored(ref, "page_pdf")

    def page_damaged(self, page: Page, kind: str, object_id: str | None, error: ScanStationError | str) -> None:
        """One of the page's objects cannot be read: flag the page for a rescan (and tell the clients); the
        others go on.  Used by the pipeline, assembly and the seal alike, so a damaged page is flagged one way."""
        log.info("page %s (batch #%s, page %s): %s object damaged - rescan: %s",
                  page.id, page.batch_id, page.seq, kind, error)
        self.store.mark_damaged(page.id, kind, object_id, str(error))
        self.events("page_damaged", {"page_id": page.id, "batch_id": page.batch_id, "seq": page.seq,
                                     "object_kind": kind, "error": str(error)})

    def _check_double_feeds(self, batch_id: int) -> None:
        """Flag pages whose length is out of line with the rest of their batch (two sheets fed at once)."""
        from scanstation.cleanup.quality import assess_batch_lengths, page_length_mm

        rows = self.store.page_lengths(batch_id)
        outliers = assess_batch_lengths([page_length_mm(h, dpi) for _pid, h, dpi in rows])
        for index, flag in outliers.items():
            if self.store.add_flag(rows[index][0], "double_feed", flag.to_dict()):
                self.events("page_flagged", {"page_id": rows[index][0], "flag": "double_feed"})

    # ------------------------------------------------------------------ OCR
    def _pool(self) -> Any:
        if self._ocr_pool is None:
            if self._ocr_pool_factory is not None:
                self._ocr_pool = self._ocr_pool_factory(self.ramdir.path)
            else:
                from scanstation.ocr.pool import OcrWorkerPool

                self._ocr_pool = OcrWorkerPool(
                    work_dir=self.ramdir.path,
                    max_workers=self.config.ocr.workers,
                    lang=self.config.ocr.languages,
                    timeout=self.config.ocr.timeout_seconds,
                )
        return self._ocr_pool

    def _ocr_feeder(self) -> None:
        limit = self.config.ocr.workers + 1  # one queued behind each busy worker keeps them fed
        while not self._closing.is_set():
            self._ocr_wake.wait(timeout=1.0)
            self._ocr_wake.clear()
            try:
                for page_id in self.store.pages_to_ocr():
                    if self._closing.is_set() or len(self._ocr_inflight) >= limit:
                        break
                    if page_id in self._ocr_inflight:
                        continue
                    page = self.store.page(page_id)
                    try:
                        if not page.image_object or not page.image_sha256:
                            raise VaultIntegrityError(f"page {page_id} has no cleaned image recorded")
                        png = self.vault.get(page.image_object, page.image_sha256)
                    except VaultIntegrityError as e:
                        # Final: reading again cannot help (and used to retry for ever, hanging every wait).
                        self.page_damaged(page, "image", page.image_object, e)
                        continue
                    if page.rotation:  # a supervisor turned the page: read it upright (verify.images)
                        from scanstation.verify.images import rotated_png

                        png = rotated_png(png, page.rotation)
                    try:
                        fut = self._pool().submit(page_id, png, page.dpi)
                    except Exception as e:  # counts as an attempt: a pool that keeps refusing ends in FAILED
                        if self._closing.is_set():
                            break
                        log.exception("page %s: OCR could not be started", page_id)
                        self._ocr_failed(page_id, f"OCR could not be started: {e!r}")
                        continue
                    self._ocr_inflight[page_id] = fut
                    fut.add_done_callback(lambda f, pid=page_id, turn=page.rotation: self._ocr_done(pid, f, turn))
            except Exception:
                if not self._closing.is_set():
                    log.exception("OCR feeder error")
                time.sleep(0.5)

    def _ocr_done(self, page_id: int, fut: Future[Any], rotation: int = 0) -> None:
        try:
            if self._closing.is_set() and fut.cancelled():
                return
            try:
                res = fut.result()
            except (OcrError, ScanStationError) as e:
                self._ocr_failed(page_id, str(e))
                return
            except Exception as e:
                self._ocr_failed(page_id, f"OCR worker failed: {e!r}")
                return
            text = res.text.encode("utf-8")
            batch_recipient = self.batch_keys.recipient(self.store.page(page_id).batch_id)
            tref = self.vault.put(text, kind="ocr_text", batch_recipient=batch_recipient)
            pref = self.vault.put(res.text_pdf, kind="ocr_pdf", batch_recipient=batch_recipient)
            recorded = self.store.set_ocr_done(
                page_id,
                _stored(tref, "ocr_text"),
                _stored(pref, "ocr_pdf"),
                {
                    "lang": res.lang_used,
                    "seconds": round(res.seconds, 2),
                    "confidence": None if res.confidence is None else round(res.confidence, 1),
                    "rotation": rotation,
                },
                rotation=rotation,
            )
            if not recorded:  # read before a supervisor turned the page: dropped, it is read again turned
                self.vault.delete(tref.id)
                self.vault.delete(pref.id)
                return
            self.events("page_ocr_done", {"page_id": page_id})
        except Exception as e:
            if not self._closing.is_set():
                log.exception("page %s: storing OCR result failed", page_id)
                # an attempt all the same: the page must not be read again and again for ever
                with contextlib.suppress(Exception):
                    self._ocr_failed(page_id, f"storing the OCR result failed: {e!r}")
        finally:
            self._ocr_inflight.pop(page_id, None)
            self._ocr_wake.set()

    def _ocr_failed(self, page_id: int, error: str) -> None:
        if self._closing.is_set():
            return  # shutting down: the page stays PENDING and is resumed next start
        attempts = self.store.page(page_id).ocr_attempts + 1
        final = attempts >= self.config.ocr.max_attempts
        self.store.set_ocr_failed(page_id, error, final)
        self.events("page_ocr_failed", {"page_id": page_id, "error": error, "final": final})

    # ------------------------------------------------------------------ waiting
    def wait_idle(
        self,
        include_ocr: bool = True,
        timeout: float | None = None,
        progress: Callable[[dict[str, int]], None] | None = None,
        batch_id: int | None = None,
        stall_timeout: float | None = None,
    ) -> bool:
        """Block until cleaning (and OCR, if asked) has caught up; False when the wait gives up.

        Every wait is bounded: besides the overall ``timeout`` (None: none), it gives up when no page it
        waits for has finished for ``stall_timeout`` seconds (default: the configuration's
        ``pipeline.wait_timeout_seconds``), so the bound grows with the pages but a stuck page cannot
        hang a command.  :meth:`pending_summary` then says what is still pending.

        With ``batch_id``, only that batch's pages are waited for: a batch can be sealed while the
        operator is already scanning the next one.
        """
        now = time.monotonic()
        deadline = None if timeout is None else now + timeout
        stall = self.config.pipeline.wait_timeout_seconds if stall_timeout is None else stall_timeout
        last_change = now
        waiting: set[tuple[str, int]] = set()
        last = -1
        while True:
            with self._busy_cv:
                cleaning = {pid for pid, b in self._busy.items() if batch_id is None or b == batch_id}
                compacting = {pid for pid, b in self._compacting.items() if batch_id is None or b == batch_id}
            current = {("clean", pid) for pid in cleaning}
            ocr = include_ocr and self.config.ocr.enabled
            if ocr and not cleaning:
                pending = self.store.pages_to_ocr(batch_id)
                current |= {("ocr", pid) for pid in pending} | {("ocr", pid) for pid in self._ocr_inflight_of(batch_id)}
                if progress is not None and len(pending) != last:
                    last = len(pending)
                    progress({"ocr_pending": last})
            if include_ocr and not cleaning and compacting:  # the whole pipeline: the compact pages too
                if not current and not self._closing.is_set():
                    # Nothing else left to wait for: made here rather than after OCR's backlog elsewhere (a batch
                    # sealed while the next one is scanned must not wait for that one's OCR).
                    self._make_compact(min(compacting))
                    last_change = time.monotonic()
                    continue
                current |= {("compact", pid) for pid in compacting}
            if not current:
                return True
            now = time.monotonic()
            if waiting - current:  # a page finished (or moved on from cleaning to OCR)
                last_change = now
            waiting = current
            if deadline is not None and now >= deadline:
                return False
            if now - last_change >= stall:
                log.warning("stopped waiting: no page finished in %.0f s (%s)", stall, self.pending_summary(batch_id))
                return False
            if cleaning:
                with self._busy_cv:
                    self._busy_cv.wait(timeout=0.2)
            else:
                self._ocr_wake.set()
                time.sleep(0.2)

    def _ocr_inflight_of(self, batch_id: int | None) -> list[int]:
        inflight = list(self._ocr_inflight)
        if batch_id is None:
            return inflight
        return [pid for pid in inflight if self.store.page(pid).batch_id == batch_id]

    def pending_summary(self, batch_id: int | None = None) -> str:
        """What a wait is still waiting for: pages being cleaned, waiting for or in OCR, and to be encoded."""
        with self._busy_cv:
            cleaning = sorted(pid for pid, b in self._busy.items() if batch_id is None or b == batch_id)
            compacting = sorted(pid for pid, b in self._compacting.items() if batch_id is None or b == batch_id)
        parts = []
        if cleaning:
            parts.append(f"{len(cleaning)} page(s) still being cleaned ({self._page_names(cleaning)})")
        if self.config.ocr.enabled:
            inflight = set(self._ocr_inflight_of(batch_id))
            pending = sorted(set(self.store.pages_to_ocr(batch_id)) | inflight)
            if pending:
                parts.append(f"{len(pending)} page(s) waiting for OCR, {len(inflight)} of them being read "
                             f"({self._page_names(pending)})")
        if compacting:
            parts.append(f"{len(compacting)} page(s) whose compact page is still to be made "
                         f"({self._page_names(compacting)})")
        return "; ".join(parts) or "nothing pending"

    def _page_names(self, page_ids: list[int], limit: int = 10) -> str:
        names = []
        batches: dict[int, str] = {}
        for pid in page_ids[:limit]:
            try:
                page = self.store.page(pid)
            except ScanStationError:
                continue
            if page.batch_id not in batches:
                batches[page.batch_id] = self.store.batch_by_id(page.batch_id).name
            names.append(f"{batches[page.batch_id]} page {page.seq}")
        more = f" and {len(page_ids) - limit} more" if len(page_ids) > limit else ""
        return ", ".join(names) + more

    def wait_or_raise(self, include_ocr: bool = True, *, batch_id: int | None = None,
                      progress: Callable[[dict[str, int]], None] | None = None, what: str = "") -> None:
        """:meth:`wait_idle`, raising StateError that names the pending pages when the wait gives up."""
        if self.wait_idle(include_ocr=include_ocr, progress=progress, batch_id=batch_id):
            return
        stall = self.config.pipeline.wait_timeout_seconds
        raise StateError(
            f"{what or 'gave up waiting'}: no page finished in the last {stall:.0f} s "
            f"(pipeline.wait_timeout_seconds); still pending: {self.pending_summary(batch_id)}. "
            "Nothing is lost: the pages are stored and processing resumes at the next start "
            "('scanstation process')"
        )

    # ------------------------------------------------------------------ documents and PDFs
    def open_document(
        self,
        batch_name: str,
        employee_code: str,
        employee_name: str = "",
        rank: str = "",
        acr_period: str = "",
        operator: str | None = None,
        *,
        index: Any = None,
    ) -> Document:
        """The batch's ACR file of this employee and period: the existing one (more pages of it), else a new one.

        ``index``: the :class:`~scanstation.roster.index_check.IndexCheck` the entry made (the period's dates,
        "not in roster" and its reason, the file's flags are recorded with it); without one the index is
        stored as given (tests, the developer tools' demo).  The checks themselves live in
        :mod:`scanstation.roster.indexing`, which calls this.
        """
        operator = operator or self.config.station.operator
        batch = self.store.open_batch(batch_name, self.config.station.unit, operator)
        found = self.store.find_document(batch.id, employee_code, acr_period)
        if found is not None:
            return found
        self.batch_keys.recipient(batch.id)  # the audit entry's employee fields are sealed to the batch key
        if index is None:
            return self.store.add_document(batch.id, operator, employee_code, employee_name, rank, acr_period)
        fields = index.index_fields()
        return self.store.add_document(
            batch.id, operator, employee_code, employee_name, rank, acr_period, period_start=fields["period_start"],
            period_end=fields["period_end"], not_in_roster=fields["not_in_roster"], flags=fields["flags"],
            duplicate_reason=fields["duplicate_reason"])

    def assemble_pdf(self, doc_id: int, actor: str = "station") -> StoredObject:
        """Build the searchable PDF of one ACR file in memory from its compact pages and store it, encrypted,
        in the vault."""
        from scanstation.pdf.searchable import PdfMetadata, PdfPage, build_searchable_pdf

        doc = self.store.document(doc_id)
        pages = self.store.document_pages(doc_id)
        if not pages:
            raise StateError(f"document {doc_id} ({doc.employee_code}) has no pages")
        batch = self.store.batch_by_id(doc.batch_id)
        where = f"ACR file {doc.employee_code} {doc.acr_period}".rstrip() + f" (batch {batch.name})"
        damaged = [p for p in pages if DAMAGED_FLAG in p.flags]
        if damaged:
            raise damaged_pages_error(batch.name, damaged, f"{where} cannot be assembled")
        pdf_pages = []
        for p in pages:
            if p.image_object is None or p.image_sha256 is None:
                raise StateError(f"page {p.seq} of {where} is not processed yet (run 'scanstation process')")
            kind, obj_id = ("compact", p.compact_object) if p.compact_object else ("image", p.image_object)
            try:
                compact = self.compact_page(p)
                text_pdf = None
                # only a current text layer: a page turned in verification keeps its old one until read again
                ocr_pdf = self.store.ocr_pdf_object(p.id) if p.ocr_state is OcrState.DONE else None
                if ocr_pdf:
                    kind, obj_id = "ocr_pdf", ocr_pdf
                    text_pdf = self.vault.get(ocr_pdf, self.store.object(ocr_pdf).sha256)
            except VaultIntegrityError as e:
                self.page_damaged(p, kind, obj_id, e)
                raise damaged_pages_error(batch.name, [self.store.page(p.id)], f"{where} cannot be assembled") from e
            # The compact page is drawn as it was stored (no re-encoding, so assembling is fast); a supervisor's
            # quarter turn only changes the matrix it is drawn with.  The text layer was read from the turned
            # image (the OCR feeder turns it), so it fits the turned page.
            pdf_pages.append(PdfPage(image_png=compact, dpi=p.dpi, text_pdf=text_pdf, turn=p.rotation))
        meta = PdfMetadata(
            title=f"ACR {doc.employee_code} {doc.acr_period}".strip(),
            employee_code=doc.employee_code,
            employee_name=doc.employee_name,
            acr_period=doc.acr_period,
            unit=batch.unit,
            producer=f"ScanStation {__version__}",
        )
        data = build_searchable_pdf(pdf_pages, meta, self.ramdir.path)
        ref = self.vault.put(data, kind="pdf", batch_recipient=self.batch_keys.recipient(doc.batch_id))
        obj = _stored(ref, "pdf")
        old = self.store.set_document_pdf(doc_id, obj, actor)
        if old:
            self.vault.delete(old)
        return obj

    def read_object(self, obj_id: str) -> bytes:
        return self.vault.get(obj_id, self.store.object(obj_id).sha256)

    def retry_failed_ocr(self, batch_name: str | None = None, actor: str = "station") -> int:
        batch_id = None
        if batch_name is not None:
            batch = self.store.batch(batch_name)
            if batch is None:
                raise StateError(f"no batch called '{batch_name}'")
            batch_id = batch.id
        failed = [p.id for p in self.store.pages(batch_id) if p.ocr_state is OcrState.FAILED]
        n = self.store.retry_ocr(failed, actor)
        self._ocr_wake.set()
        return n

    # ------------------------------------------------------------------ integrity
    def verify_vault(self) -> list[str]:
        """Every recorded object present, decryptable and matching its hashes; unlisted objects reported.

        The audit trail has its own check (``scanstation audit verify``).
        """
        problems: list[str] = []
        known = self.store.objects()
        # destroyed on purpose: after the portal's receipt (purge), and sealed batches' raw captures
        purged = self.store.purged_object_ids() | self.store.destroyed_object_ids()
        ids = set()
        for obj in known:
            ids.add(obj.id)
            if obj.id in purged:
                continue
            problem = self.vault.verify(obj.id, obj.sha256, obj.ct_sha256)
            if problem:
                owner = self.store.page_of_object(obj.id)
                if owner is not None:
                    page = self.store.page(owner[0])
                    if DAMAGED_FLAG not in page.flags:
                        self.page_damaged(page, owner[1], obj.id, VaultIntegrityError(problem))
                    problem += f" (page {page.seq} of batch {self.store.batch_by_id(page.batch_id).name}: rescan it)"
                problems.append(f"{obj.kind} object {obj.id}: {problem}")
        for obj_id in self.vault.unlisted(ids):
            problems.append(
                f"object {obj_id} is in the vault but not listed in the station database "
                "(kept; 'scanstation vault quarantine' moves such objects aside)"
            )
        for p in self.store.pages():
            for ref in (p.raw_object, p.image_object, p.compact_object, p.ocr_object):
                if ref is not None and ref not in purged and ref not in ids:
                    problems.append(f"page {p.batch_id}/{p.seq} refers to missing object {ref}")
        seen: dict[tuple[int, str], int] = {}
        for p in self.store.pages():
            key = (p.batch_id, p.source_key)
            if key in seen:
                problems.append(f"page {p.batch_id}/{p.seq} duplicates page {seen[key]} ({p.source_key})")
            seen[key] = p.seq
        self.store.audit(
            "station", "vault.verify", self.config.station.id, {"objects": len(known), "problems": len(problems)}
        )
        return problems

    def quarantine_unlisted(self, actor: str) -> tuple[list[str], Path | None]:
        """Move vault objects the store does not list into ``<data_dir>/quarantine/<time>/``; audited.

        The objects stay encrypted (nothing is decrypted).  Objects written since this station started
        are left alone (it may be about to record them); the station lock keeps every other process out.
        Returns the ids moved and the directory they are in (None when there was nothing to move).
        """
        unlisted = self.vault.unlisted(self.store.object_ids())
        if not unlisted:
            return [], None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        dest = self.config.data_dir / "quarantine" / stamp
        n = 1
        while dest.exists():
            n += 1
            dest = self.config.data_dir / "quarantine" / f"{stamp}-{n}"
        (self.config.data_dir / "quarantine").mkdir(exist_ok=True, mode=0o700)
        moved = self.vault.quarantine(unlisted, dest, written_before=self._started_at)
        self.store.audit(actor, "vault.quarantine", self.config.station.id, {
            "count": len(moved),
            "ids": moved,
            "directory": str(dest.relative_to(self.config.data_dir)),
            "left_newer": len(unlisted) - len(moved),
        })
        return moved, (dest if moved else None)


def damaged_pages_error(batch: str, pages: list[Page], what: str) -> VaultIntegrityError:
    """The error for pages flagged damaged: names each page and its unreadable object, says 'rescan'."""
    names = []
    for p in pages[:10]:
        damage = p.analysis.get("damage", {})
        names.append(f"page {p.seq} ({damage.get('object_kind', 'an')} object {damage.get('object', '?')}: "
                     f"{damage.get('reason', 'cannot be read')})")
    more = f" and {len(pages) - 10} more" if len(pages) > 10 else ""
    return VaultIntegrityError(
        f"{what}: {len(pages)} page(s) of batch {batch} damaged - rescan them: " + "; ".join(names) + more
    )


def integrity_error(problems: list[str]) -> VaultIntegrityError:
    head = "; ".join(problems[:5])
    more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
    return VaultIntegrityError(f"vault verification found {len(problems)} problem(s): {head}{more}")

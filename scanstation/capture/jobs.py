"""Background capture for the kiosk: a scan runs on a service thread, its events wait in a queue for the screen.

The kiosk talks to the station service over one socket, one request at a time, so a scan cannot be one long
call.  A :class:`CaptureJob` runs :func:`~scanstation.capture.session.capture_batch` on its own thread and
records what happens as numbered events; the screen polls them (:meth:`CaptureJob.events_since`, which
waits at most about a second).  Events (``kind`` and fields):

* ``page``: a page acknowledged (durable, encrypted): ``seq``, ``page_id``, ``label``, ``document_id``,
  ``state`` (captured/processed), ``ocr`` (pending/done/failed/skipped), ``flags``; ``earlier`` for the
  pages the operator captured before this job (a resumed batch).  ``page_state``: the same fields again
  when cleaning or OCR moved a page on (read from the store at each poll).
* ``acr_file``: a QR cover sheet started a new ACR file: ``document_id``, ``document_seq``,
  ``employee_code``, ``employee_name`` and ``rank`` (the roster's when it knows the code), ``acr_period``,
  ``flags`` (what the roster check objected to: not in the roster, a duplicate) - for the operator to
  confirm with one keystroke.
* ``device_error``: ``error`` (class), ``message_en``, ``message_hi``, ``detail``, ``pages_received``:
  the job then *waits* for ``continue`` (the same batch, the same ACR file; the pages already acknowledged
  are kept) or ``stop``.
* ``duplicate``, ``input_rejected``; ``run_finished`` (``acknowledged``, ``duplicates``, ``cover_sheets``)
  after each run of the driver; ``stopped``; ``failed`` (``message``).

"Continue" re-runs the driver on the same batch.  A SANE scan's source keys name the scan and the sheet
within it, so a re-run cannot store a page twice over an earlier run's key; what goes back into the feeder
is the operator's call, as the jam message says.  Back-end options scheduled by sheet (``pageN:NAME=V``,
e.g. a test device's injected jam) describe the stack, so a re-run moves them with it
(:func:`options_after`).  The job holds no Qt and imports no UI: the service owns it.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from drivers.base import CancelToken, CapturedPage, Driver, ScanSettings
from drivers.sane_options import split_schedule
from scanstation.capture.session import CaptureReport, capture_batch
from scanstation.config import Config
from scanstation.domain import Batch, Document, Page
from scanstation.errors import DeviceError, InputError, PermissionDenied, ScanCancelled, ScanStationError, StateError

log = logging.getLogger(__name__)

POLL_LIMIT_SECONDS = 1.0  # an events call returns within this: the kiosk's one connection must not block
_KEEP_FINISHED = 20  # ended jobs kept for a late poll; older ones are forgotten


class JobState(enum.StrEnum):
    RUNNING = "running"  # the driver is scanning
    WAITING = "waiting"  # a device error: waiting for "continue" (fixed) or "stop"
    IDLE = "idle"  # a run ended normally (feeder empty, flatbed sheet done): "continue" scans more
    STOPPED = "stopped"
    FAILED = "failed"  # something other than the scanner went wrong (the batch was closed meanwhile, ...)


_LIVE = frozenset({JobState.RUNNING, JobState.WAITING, JobState.IDLE})


def options_after(options: tuple[tuple[str, str], ...], consumed: int) -> tuple[tuple[str, str], ...]:
    """The options of the next run after ``consumed`` sheets of the stack were used up.

    ``pageN:NAME`` entries are tied to the Nth sheet of the stack: those of sheets already used up go
    (the fault that stopped the run was fixed), later ones move up by ``consumed``.  Other options stay.
    """
    if consumed <= 0:
        return options
    initial, scheduled = split_schedule(options)
    out = list(initial)
    for page, pairs in sorted(scheduled.items()):
        if page > consumed:
            out.extend((f"page{page - consumed}:{name}", value) for name, value in pairs)
    return tuple(out)


def _reported(page: Page) -> tuple[Any, ...]:
    """What the screen was told of a page: a change in any of it is a ``page_state`` event (a page deleted or
    replaced by a rescan too: the operator's count of unfiled pages drops it)."""
    return page.state, page.ocr_state, tuple(page.flags), page.live


def page_fields(page: Page) -> dict[str, Any]:
    return {"seq": page.seq, "page_id": page.id, "document_id": page.document_id, "state": page.state.value,
            "ocr": page.ocr_state.value, "flags": list(page.flags), "deleted_reason": page.deleted_reason or "",
            "replaced_by": page.replaced_by}


class _Target:
    """What capture_batch drives: the station, with this job watching pages and cover sheets go by."""

    def __init__(self, station: Any, job: CaptureJob) -> None:
        self._station = station
        self._job = job
        self.config: Config = station.config
        self.store = station.store
        self.events: Callable[[str, dict[str, Any]], None] = self._event

    def _event(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "page_duplicate":
            self._job._emit("duplicate", {"label": data.get("label", "")})
        elif kind == "input_rejected":
            self._job._emit("input_rejected", {"input": data.get("input", ""), "reason": data.get("reason", "")})
        # "device_error" is reported from the run's report; "cover_sheet" by open_document below

    def add_page(self, batch: Batch, cp: CapturedPage, *, document: Document | None = None,
                 operator: str | None = None) -> Page | None:
        page: Page | None = self._station.add_page(batch, cp, document=document, operator=operator)
        if page is not None:
            self._job._page_acknowledged(page, cp.label)
        return page

    def open_document(self, batch_name: str, employee_code: str, employee_name: str, rank: str,
                      acr_period: str, operator: str | None = None, **more: Any) -> Document:
        # ``more``: whatever else the session hands the station (the roster's index check, issue 14)
        doc: Document = self._station.open_document(batch_name, employee_code, employee_name, rank, acr_period,
                                                    operator=operator, **more)
        self._job._acr_file(doc)
        return doc


class CaptureJob:
    """One operator's scan into one batch, on a service thread; see the module's docstring."""

    def __init__(self, station: Any, *, owner: str, batch: str, device: str, profile: str,
                 settings: ScanSettings, separators: bool, driver_factory: Callable[[], Driver],
                 document: Document | None = None) -> None:
        self.id = secrets.token_hex(8)
        self.station = station
        self.owner = owner
        self.batch = batch
        self.device = device
        self.profile = profile
        self.settings = settings
        self.separators = separators
        self.document = document
        self._driver_factory = driver_factory
        self.state = JobState.IDLE
        self.prompt: dict[str, Any] | None = None
        self.ended_at: float | None = None
        self._events: list[dict[str, Any]] = []
        self._cv = threading.Condition()
        self._cancel = CancelToken()
        self._thread: threading.Thread | None = None
        self._pages: dict[int, tuple[Any, ...]] = {}  # page id -> what was last reported of it
        self._batch_id: int | None = None

    # ------------------------------------------------------------------ what the screen sees
    def _emit(self, kind: str, data: dict[str, Any]) -> None:
        with self._cv:
            self._events.append({"n": len(self._events) + 1, "kind": kind, **data})
            self._cv.notify_all()

    def _page_acknowledged(self, page: Page, label: str) -> None:
        self._pages[page.id] = _reported(page)
        self._emit("page", {**page_fields(page), "label": label})

    def _acr_file(self, doc: Document) -> None:
        # The capture session checked the sheet's index against the roster before opening the file: the
        # name and rank are the roster's, and what the check objected to (not in the roster, a duplicate)
        # is in the file's flags, for the operator to see before confirming.
        self.document = doc
        self._emit("acr_file", {"document_id": doc.id, "document_seq": doc.seq, "employee_code": doc.employee_code,
                                "employee_name": doc.employee_name, "rank": doc.rank, "acr_period": doc.acr_period,
                                "flags": list(getattr(doc, "flags", None) or [])})

    def _refresh_pages(self) -> None:
        """Pages that cleaning or OCR moved on since the last poll become ``page_state`` events."""
        if self._batch_id is None or not self._pages:
            return
        for page in self.station.store.pages(self._batch_id):
            seen = self._pages.get(page.id)
            now = _reported(page)
            if seen is not None and seen != now:
                self._pages[page.id] = now
                self._emit("page_state", page_fields(page))

    def events_since(self, since: int, wait: float = POLL_LIMIT_SECONDS) -> dict[str, Any]:
        """Events numbered above ``since`` (waiting up to ``wait`` s, at most a second, for one)."""
        deadline = time.monotonic() + max(0.0, min(wait, POLL_LIMIT_SECONDS))
        while True:
            try:
                self._refresh_pages()
            except Exception as e:  # the store closed under us (the station was locked): the events still go
                log.info("capture job %s: page states not readable: %s", self.id, type(e).__name__)
            with self._cv:
                fresh = self._events[since:] if since >= 0 else list(self._events)
                remaining = deadline - time.monotonic()
                if fresh or remaining <= 0:
                    return {"job": self.id, "state": self.state.value, "events": fresh, "next": len(self._events),
                            "prompt": self.prompt, "batch": self.batch,
                            "document_id": self.document.id if self.document else None}
                self._cv.wait(timeout=min(remaining, 0.25))

    def describe(self) -> dict[str, Any]:
        return {"job": self.id, "state": self.state.value, "batch": self.batch, "device": self.device,
                "profile": self.profile, "prompt": self.prompt}

    # ------------------------------------------------------------------ running
    def start(self, earlier: list[Page] | None = None) -> None:
        """The first run; ``earlier``: pages of this batch the owner captured before (shown, not rescanned)."""
        for page in earlier or []:
            self._batch_id = page.batch_id
            self._pages[page.id] = _reported(page)
            self._emit("page", {**page_fields(page), "label": "", "earlier": True})
        self._launch()

    def _launch(self) -> None:
        with self._cv:
            if self.state is JobState.RUNNING:
                raise StateError(f"scan job {self.id} is already scanning")
            if self.state not in _LIVE:
                raise StateError(f"scan job {self.id} has ended ({self.state.value}); start a new scan")
            self.state = JobState.RUNNING
            self.prompt = None
            self._cancel = CancelToken()
        self._thread = threading.Thread(target=self._run, name=f"capture-{self.id}", daemon=True)
        self._thread.start()

    def resume(self) -> None:
        """"Continue": after a device error was fixed, or to scan more after a run ended."""
        self._launch()

    def stop(self) -> None:
        """Stop: cancels a running scan (pages acknowledged stay; the job ends ``stopped`` once the driver
        has let go, within its cancel grace) or ends a waiting or idle job at once.  Never waits."""
        with self._cv:
            if self.state not in _LIVE:
                return
            self._cancel.cancel()
            if self.state is not JobState.RUNNING:
                self._end(JobState.STOPPED)

    def join(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _end(self, state: JobState, **data: Any) -> None:
        # with self._cv held
        self.state = state
        self.ended_at = time.monotonic()
        self._events.append({"n": len(self._events) + 1, "kind": state.value, **data})
        self._cv.notify_all()

    def _run(self) -> None:
        report: CaptureReport | None = None
        try:
            station = self.station
            batch = station.store.open_batch(self.batch, station.config.station.unit, self.owner)
            self._batch_id = batch.id
            station.batch_keys.recipient(batch.id)  # the capture's personal audit fields are sealed to it
            report = capture_batch(_Target(station, self), self.batch, self._driver_factory(), self.device,
                                   self.settings, cancel=self._cancel, document=self.document, operator=self.owner,
                                   separators=self.separators)
        except ScanCancelled:
            with self._cv:
                self._end(JobState.STOPPED)
            return
        except ScanStationError as e:
            with self._cv:
                self._end(JobState.FAILED, message=e.message)
            return
        except Exception as e:  # the service keeps running; the pages acknowledged so far are kept
            log.exception("capture job %s failed", self.id)
            with self._cv:
                self._end(JobState.FAILED, message=f"internal error during the scan: {type(e).__name__} "
                                                    "(pages acknowledged before it are kept)")
            return
        self._emit("run_finished", {"acknowledged": len(report.acknowledged), "duplicates": report.duplicates,
                                    "cover_sheets": report.cover_sheets,
                                    "rejected": [p.message for p in report.problems if isinstance(p, InputError)]})
        error = report.device_error
        # A normal end used the whole stack up: its sheet-numbered options are done with.
        consumed = 1 << 30
        with self._cv:
            if self._cancel.cancelled:
                self._end(JobState.STOPPED)
                return
            if error is not None:
                # the sheet that faulted is used up too: its fault is what the operator fixes
                consumed = error.pages_received + 1
                self.prompt = device_prompt(error)
                self.state = JobState.WAITING
                self._events.append({"n": len(self._events) + 1, "kind": "device_error", **self.prompt})
            else:
                self.state = JobState.IDLE
            self._cv.notify_all()
        self.settings = dataclasses.replace(self.settings, options=options_after(self.settings.options, consumed))


def device_prompt(error: DeviceError) -> dict[str, Any]:
    """What the screen shows for a device error: both languages, what happened, pages kept."""
    return {"error": type(error).__name__, "message_en": error.message_en, "message_hi": error.message_hi,
            "detail": error.detail, "pages_received": error.pages_received, "exit_code": error.exit_code}


class CaptureJobs:
    """The service's capture jobs and its cached scanner list (one per service)."""

    def __init__(self) -> None:
        self._jobs: dict[str, CaptureJob] = {}
        self._lock = threading.Lock()
        self._devices: list[dict[str, Any]] | None = None
        self._devices_at = 0.0
        self._devices_error = ""
        self._listing: threading.Thread | None = None

    def add(self, job: CaptureJob) -> None:
        with self._lock:
            for other in self._jobs.values():
                if other.state in _LIVE and other.device == job.device and other.owner != job.owner:
                    raise StateError(f"scanner {job.device} is in use by another person's scan "
                                     f"(batch {other.batch}); wait until it is stopped")
                if other.state is JobState.RUNNING and other.owner == job.owner:
                    raise StateError(f"your scan into batch {other.batch} is still running: stop it first")
            replaced = [j for j in self._jobs.values() if j.owner == job.owner and j.state in _LIVE]
            self._jobs[job.id] = job
            ended = sorted((j for j in self._jobs.values() if j.state not in _LIVE and j.ended_at),
                           key=lambda j: j.ended_at or 0.0)
            for old in ended[:-_KEEP_FINISHED] if len(ended) > _KEEP_FINISHED else []:
                self._jobs.pop(old.id, None)
        for old in replaced:  # the owner's earlier job waiting at a prompt or idle: a new scan ends it
            old.stop()

    def get(self, job_id: str, person: str) -> CaptureJob:
        job = self._jobs.get(job_id)
        if job is None:
            raise StateError(f"no scan job {job_id!r} (it ended, or the service restarted): start the scan again")
        if job.owner != person:
            raise PermissionDenied(f"{person} may not follow scan job {job_id}: it is {job.owner}'s")
        return job

    def of(self, person: str) -> list[CaptureJob]:
        return [j for j in self._jobs.values() if j.owner == person and j.state in _LIVE]

    def stop_all(self) -> None:
        """Before the station locks: every scan stops (pages acknowledged are kept)."""
        for job in list(self._jobs.values()):
            job.stop()
            job.join(30)

    # ------------------------------------------------------------------ scanners
    def devices(self, list_devices: Callable[[], list[Any]], *, refresh: bool = False,
                wait: float = POLL_LIMIT_SECONDS, max_age: float = 300.0) -> dict[str, Any]:
        """The scanners, listed on a thread (SANE discovery can take seconds); ``searching`` while it runs."""
        with self._lock:
            stale = self._devices is None or time.monotonic() - self._devices_at > max_age
            if (refresh or stale) and (self._listing is None or not self._listing.is_alive()):
                self._listing = threading.Thread(target=self._list, args=(list_devices,), daemon=True,
                                                 name="scanner-list")
                self._listing.start()
            listing = self._listing
        if listing is not None:
            listing.join(max(0.0, min(wait, POLL_LIMIT_SECONDS)))
        with self._lock:
            return {"devices": list(self._devices or []),
                    "searching": self._listing is not None and self._listing.is_alive(),
                    "error": self._devices_error}

    def _list(self, list_devices: Callable[[], list[Any]]) -> None:
        try:
            found = [dataclasses.asdict(d) for d in list_devices()]
            error = ""
        except ScanStationError as e:
            found, error = [], e.message
        with self._lock:
            self._devices, self._devices_at, self._devices_error = found, time.monotonic(), error

"""Service operations (issue 14) for the operator's screen: scanners, scan profiles, scanning in the
background with events polled by the screen, device prompts answered with "continue", the operator's batches.

A scan is a :class:`~scanstation.capture.jobs.CaptureJob` on a service thread; every operation here returns
within about a second (the kiosk serialises its calls on one connection).  Shapes:

* ``scanners`` {refresh?} -> {devices: [{name, vendor, model, kind, backend}], searching, error}
* ``profiles`` -> {default, profiles: [{name, description, source, mode, resolution, page_size, blank_pages,
  separators, options, unlocked}]}
* ``scan_start`` {batch, device, profile, source?, mode?, resolution?, page_size?, options?: [NAME=VALUE],
  document_id?} -> {job, state, batch, device, profile, prompt}; a change of a locked value is refused
  (PermissionDenied, exit 22) and audited (``scan.profile_refused``)
* ``scan_events`` {job, since, wait?} -> {job, state, events: [{n, kind, ...}], next, prompt, batch,
  document_id} (waits at most 1 s for a new event)
* ``scan_continue`` {job, document_id?} (after a device error, or to scan more; ``document_id``: the
  next pages go into that ACR file) / ``scan_stop`` {job} -> {job, state, ...}
* ``scan_jobs`` -> the caller's live jobs (a kiosk started again finds its scan)
* ``operator_batches`` -> [{name, state, pages, documents, returned}]: the caller's own batches still in
  capture (scanning, or returned for rescans), to resume
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from scanstation.domain import CAPTURE_STATES, BatchState
from scanstation.errors import PermissionDenied, StateError
from scanstation.people.roles import Action
from scanstation.service.op_types import Emit, Operations, int_arg, text_arg

if TYPE_CHECKING:
    from scanstation.capture.jobs import CaptureJob, CaptureJobs
    from scanstation.service.core import Caller, StationService

# The capture stack (scanstation.capture: OpenCV, numpy, the scanner drivers) is imported by the operations that
# scan, not here: the operation table (scanstation.service.server) is loaded by every command that talks to the
# station, 'users' and 'unlock' among them, which would pay a third of a second for it.

_JOBS: weakref.WeakKeyDictionary[Any, CaptureJobs] = weakref.WeakKeyDictionary()


def jobs_of(service: StationService) -> CaptureJobs:
    """The service's capture jobs; they stop before the station locks (nothing may use a closed store)."""
    jobs = _JOBS.get(service)
    if jobs is None:
        from scanstation.capture.jobs import CaptureJobs

        jobs = _JOBS[service] = CaptureJobs()
        service.before_lock.append(jobs.stop_all)
    return jobs


def _caller(c: Caller | None) -> Caller:
    if c is None:  # every operation here needs a session (the table says so); a guard for the type checker
        raise StateError("sign in first")
    return c


def _optional_text(a: dict[str, Any], key: str) -> str | None:
    value = a.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise StateError(f"request field '{key}' must be text")
    return value


def _op_scanners(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    from drivers.sane_driver import SaneDriver

    s.authorize(_caller(c), Action.SCAN)
    # SANE devices only: the kiosk has no file picker ('scanstation import' takes files)
    return jobs_of(s).devices(lambda: SaneDriver().list_devices(), refresh=bool(a.get("refresh")))


def _op_profiles(s: StationService, c: Caller | None, _a: dict[str, Any], _e: Emit) -> Any:
    from scanstation.capture.profiles import describe_profile

    s.authorize(_caller(c), Action.SCAN)
    return {"default": s.config.scan.profile,
            "profiles": [describe_profile(name, p) for name, p in sorted(s.config.profiles.items())]}


def _op_scan_start(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    from drivers.registry import get_driver
    from scanstation.capture.jobs import CaptureJob
    from scanstation.capture.profiles import ProfileLocked, profile_settings

    caller = _caller(c)
    station = s.station(caller, Action.SCAN)
    batch_name, device, profile = text_arg(a, "batch").strip(), text_arg(a, "device"), text_arg(a, "profile")
    if not batch_name or len(batch_name) > 64:
        raise StateError("a batch name is needed (at most 64 characters)")
    if device == "import":
        raise StateError("the scan screen scans from a scanner; files are imported with 'scanstation import'")
    options = a.get("options") or []
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise StateError("request field 'options' must be a list of NAME=VALUE texts")
    resolution = a.get("resolution")
    if resolution is not None and (not isinstance(resolution, int) or isinstance(resolution, bool)):
        raise StateError("request field 'resolution' must be a whole number")
    try:
        chosen = profile_settings(s.config, profile, source=_optional_text(a, "source"),
                                  mode=_optional_text(a, "mode"), resolution=resolution,
                                  page_size=_optional_text(a, "page_size"), options=options)
    except ProfileLocked as e:
        station.store.audit(caller.name, "scan.profile_refused", f"profile:{profile}", {"attempts": list(e.attempts)})
        # as the class the wire knows (a kiosk over the socket sees a refusal, with its Hindi gist)
        raise PermissionDenied(e.message) from e
    batch = station.store.open_batch(batch_name, s.config.station.unit, caller.name)  # refuses one not in capture
    document = None
    if a.get("document_id") is not None:
        document = station.store.document(int_arg(a, "document_id"))
        if document.batch_id != batch.id:
            raise StateError(f"ACR file {a['document_id']} is not in batch {batch_name}")
    captured_by = station.store.captured_by(batch.id)
    earlier = [p for p in station.store.pages(batch.id) if captured_by.get(p.id) == caller.name]
    job = CaptureJob(station, owner=caller.name, batch=batch_name, device=device, profile=profile,
                     settings=chosen.settings, separators=chosen.separators,
                     driver_factory=lambda: get_driver(device, tmp_dir=station.ramdir.path), document=document)
    jobs_of(s).add(job)
    job.start(earlier)
    return job.describe()


def _job(s: StationService, c: Caller | None, a: dict[str, Any]) -> CaptureJob:
    caller = _caller(c)
    s.authorize(caller, Action.SCAN)
    return jobs_of(s).get(text_arg(a, "job"), caller.name)


def _op_scan_events(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    job = _job(s, c, a)
    since = a.get("since", 0)
    if not isinstance(since, int) or isinstance(since, bool) or since < 0:
        raise StateError("request field 'since' must be a whole number (0 = from the start)")
    wait = a.get("wait", 1.0)
    return job.events_since(since, float(wait) if isinstance(wait, int | float) else 1.0)


def _op_scan_continue(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    job = _job(s, c, a)
    station = s.station(_caller(c), Action.SCAN)
    if station is not job.station:
        raise StateError("the station was locked since this scan started: start the scan again")
    if a.get("document_id") is not None:  # the operator indexed a new ACR file by hand: the next pages are its
        document = station.store.document(int_arg(a, "document_id"))
        batch = station.store.batch(job.batch)
        if batch is None or document.batch_id != batch.id:
            raise StateError(f"ACR file {a['document_id']} is not in batch {job.batch}")
        job.document = document
    job.resume()
    return job.describe()


def _op_scan_stop(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    job = _job(s, c, a)
    job.stop()
    return job.describe()


def _op_scan_jobs(s: StationService, c: Caller | None, _a: dict[str, Any], _e: Emit) -> Any:
    caller = _caller(c)
    s.authorize(caller, Action.SCAN)
    return [j.describe() for j in jobs_of(s).of(caller.name)]


def _op_operator_batches(s: StationService, c: Caller | None, _a: dict[str, Any], _e: Emit) -> Any:
    """The caller's own batches still in capture: opened by them or holding pages they captured."""
    caller = _caller(c)
    store = s.station(caller, Action.SCAN).store
    rows = []
    for b in store.batches():
        if b.state not in CAPTURE_STATES:
            continue
        captured = store.captured_by(b.id)
        if b.operator != caller.name and caller.name not in captured.values():
            continue
        rows.append({"name": b.name, "state": b.state.value, "pages": len(captured),
                     "documents": len(store.documents(b.id)), "returned": b.state is BatchState.RETURNED})
    return rows


OPERATIONS: Operations = {
    "scanners": (_op_scanners, True),
    "profiles": (_op_profiles, True),
    "scan_start": (_op_scan_start, True),
    "scan_events": (_op_scan_events, True),
    "scan_continue": (_op_scan_continue, True),
    "scan_stop": (_op_scan_stop, True),
    "scan_jobs": (_op_scan_jobs, True),
    "operator_batches": (_op_operator_batches, True),
}

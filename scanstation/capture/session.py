"""A capture session: a driver's pages into a batch, cover sheets starting ACR files, faults reported.

Each page the driver delivers is either a QR cover sheet (it opens the next ACR file and is recorded,
not stored), the empty back of one (skipped), or a page, handed to :meth:`Station.add_page`, which
encrypts and records it (the acknowledgement).  Device faults and bad input files end up in the
:class:`CaptureReport`, never as exceptions: every page received before them is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from drivers.base import CancelToken, CapturedPage, Driver, ScanSettings
from scanstation.capture.cover_sheets import CoverDetection, inspect_cover_sheet
from scanstation.cleanup import arrays as imaging
from scanstation.cleanup.blank import blank_score
from scanstation.config import Config
from scanstation.domain import Batch, Document, Page
from scanstation.errors import DeviceError, InputError, ScanStationError
from scanstation.roster.indexing import check_entry, open_checked_document
from scanstation.store.database import Store


class CaptureTarget(Protocol):
    """What a capture session needs of the station (the facade is one): no import of the facade here."""

    config: Config
    store: Store
    events: Callable[[str, dict[str, Any]], None]

    def add_page(self, batch: Batch, cp: CapturedPage, *, document: Document | None = None,
                 operator: str | None = None) -> Page | None: ...

    def open_document(self, batch_name: str, employee_code: str, employee_name: str, rank: str,
                      acr_period: str, operator: str | None = None, *, index: Any = None) -> Document: ...


@dataclass(slots=True)
class CaptureReport:
    batch: str
    acknowledged: list[int] = field(default_factory=list)  # page seq numbers, in order
    duplicates: int = 0  # pages already stored before (resume after a crash)
    cover_sheets: int = 0  # separator sheets recognised (they start a new ACR file)
    problems: list[ScanStationError] = field(default_factory=list)  # bad input files, device faults

    @property
    def device_error(self) -> DeviceError | None:
        return next((p for p in self.problems if isinstance(p, DeviceError)), None)


def capture_batch(
    station: CaptureTarget,
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

    ``separators``: look for QR cover sheets; False (a scan profile's separator rule) stores every
    sheet as a page of the current ACR file."""
    operator = operator or station.config.station.operator
    batch = station.store.open_batch(batch_name, station.config.station.unit, operator)
    report = CaptureReport(batch_name)
    station.store.audit(
        operator,
        "scan.start",
        batch_name,
        {
            "device": device,
            "source": settings.source.value,
            "mode": settings.mode.value,
            "dpi": settings.resolution,
        },
        batch_id=batch.id,
    )

    current: list[Document | None] = [document]

    cover_sheet_front: list[int | None] = [None]  # sheet number of a separator scanned duplex

    def on_page(cp: CapturedPage) -> None:
        gray = imaging.to_gray(cp.image)
        if cp.side == "back" and cp.sheet == cover_sheet_front[0] and blank_score(gray, cp.dpi).blank:
            # the empty back of a separator sheet: part of the separator, not of the ACR file
            station.store.audit(operator, "separator.back", batch_name, {}, personal={"source_key": cp.source_key},
                                batch_id=batch.id)
            return
        cover_sheet_front[0] = None
        cover = inspect_cover_sheet(gray, cp.dpi) if separators else CoverDetection(None)
        if cover.info is not None:
            # A separator sheet starts the next ACR file; it is recorded, not stored as a page.
            info = cover.info
            # Checked against the roster like an index typed at entry, but never refused: the ACR behind the
            # sheet is already in the feeder.  An unknown code, an implausible period or a duplicate is
            # filed with its flag for the supervisor, and the operator is told (event "index_flagged").
            check, _continued = check_entry(station.store, batch_name, employee_code=info.employee_code,
                                            period=info.acr_period, refuse=False)
            doc = open_checked_document(station, batch_name, check, operator=operator)
            current[0] = doc
            report.cover_sheets += 1
            cover_sheet_front[0] = cp.sheet if cp.side == "front" else None
            station.store.audit(operator, "separator.detected", batch_name,
                                {"unit": info.unit, "document_id": doc.id, "flags": doc.flags},
                                personal={"employee_code": info.employee_code, "acr_period": info.acr_period,
                                          "source_key": cp.source_key},
                                batch_id=batch.id)
            station.events("cover_sheet", {"employee_code": doc.employee_code, "acr_period": doc.acr_period,
                                         "employee_name": doc.employee_name, "rank": doc.rank,
                                         "document_id": doc.id, "flags": doc.flags, "label": cp.label})
            if doc.flags:
                station.events("index_flagged", {"document_id": doc.id, "employee_code": doc.employee_code,
                                                 "acr_period": doc.acr_period, "flags": doc.flags,
                                                 "problem": check.problem, "label": cp.label})
            return
        page = station.add_page(batch, cp, document=current[0], operator=operator)
        if page is not None and cover.problem:
            station.store.add_flag(page.id, "separator_unreadable", {"code": "separator_unreadable",
                                                                  "message_en": cover.problem})
        if page is None:
            report.duplicates += 1
            station.events("page_duplicate", {"source_key": cp.source_key, "label": cp.label})
        else:
            report.acknowledged.append(page.seq)

    def on_problem(err: InputError) -> None:
        report.problems.append(err)
        # File names are personal data (they often carry a name), and a reason may quote the path: both sealed.
        station.store.audit(operator, "input.rejected", batch_name, {"error": type(err).__name__},
                            personal={"input": err.source, "reason": err.reason}, batch_id=batch.id)
        station.events("input_rejected", {"input": err.source, "reason": err.reason})

    if hasattr(driver, "on_error"):
        driver.on_error = on_problem
    try:
        driver.scan(device, settings, cancel or CancelToken(), on_page)
    except DeviceError as e:
        report.problems.append(e)
        station.store.audit(
            operator,
            "scan.device_error",
            batch_name,
            {
                "device": device,
                "error": type(e).__name__,
                "detail": e.detail,
                "pages_received": e.pages_received,
            },
            batch_id=batch.id,
        )
        station.events("device_error", {"error": e})
    except InputError as e:
        if e not in report.problems:
            on_problem(e)
    station.store.audit(
        operator,
        "scan.end",
        batch_name,
        {"acknowledged": len(report.acknowledged), "duplicates": report.duplicates},
        batch_id=batch.id,
    )
    return report

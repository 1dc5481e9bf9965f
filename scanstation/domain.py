"""Domain objects (batch, document = one ACR file, page) and the batch state machine."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from scanstation.errors import StateError


class BatchState(enum.StrEnum):
    SCANNING = "scanning"  # the operator captures and indexes
    CLOSED = "closed"  # the operator ended capture; waiting for a supervisor
    IN_VERIFICATION = "in-verification"  # a supervisor has started giving verdicts
    RETURNED = "returned"  # sent back to the operator with reasons (rescans); capture is open again
    VERIFIED = "verified"  # a supervisor approved every page and flag (four eyes: not its capturer)
    SIGNED = "signed"  # the unit head's sign-off (issue 15)
    SEALED = "sealed"  # packaged and signed by the station key; nothing in it may change any more
    UPLOADING = "uploading"
    UPLOADED = "uploaded"  # the portal's signed receipt is verified and stored
    PURGED = "purged"  # local copies destroyed (after the receipt and the retention period)


# States in which pages may be added, replaced or indexed by the operator.
CAPTURE_STATES: frozenset[BatchState] = frozenset({BatchState.SCANNING, BatchState.RETURNED})

# Allowed transitions, kept as data so the UI can ask "what may happen next?".
#   scanning -> closed (the operator) -> in-verification (the first verdict) -> verified (approve)
#   closed / in-verification -> returned (a supervisor, with reasons) -> closed (the operator, after rescans)
#   verified / signed -> returned (the unit head refuses to sign) ; verified -> in-verification (verified again)
#   verified -> sealed only while no sign-off is required (config upload.require_signoff; seal.py enforces it)
#   verified -> signed -> sealed is the unit head's sign-off, committed in one step with the package (issue 15);
#   sealed -> returned is "unseal" (the package is destroyed; what changes afterwards is verified again);
#   sealed -> in-verification is the unseal of a signed-off batch: it opens back only by a new verification;
#   uploading -> sealed is a failed-for-good upload, kept for a person to look at.
# Nothing reaches sealed without a supervisor's verification.
BATCH_TRANSITIONS: dict[BatchState, frozenset[BatchState]] = {
    BatchState.SCANNING: frozenset({BatchState.CLOSED}),
    BatchState.CLOSED: frozenset({BatchState.IN_VERIFICATION, BatchState.RETURNED}),
    BatchState.IN_VERIFICATION: frozenset({BatchState.VERIFIED, BatchState.RETURNED}),
    BatchState.RETURNED: frozenset({BatchState.CLOSED}),
    BatchState.VERIFIED: frozenset({BatchState.SIGNED, BatchState.SEALED, BatchState.RETURNED,
                                    BatchState.IN_VERIFICATION}),
    BatchState.SIGNED: frozenset({BatchState.SEALED, BatchState.RETURNED, BatchState.IN_VERIFICATION}),
    BatchState.SEALED: frozenset({BatchState.UPLOADING, BatchState.RETURNED, BatchState.IN_VERIFICATION}),
    BatchState.UPLOADING: frozenset({BatchState.UPLOADED, BatchState.SEALED}),
    BatchState.UPLOADED: frozenset({BatchState.PURGED}),
    BatchState.PURGED: frozenset(),
}


def check_transition(current: BatchState, target: BatchState) -> None:
    """Raise StateError unless ``current -> target`` is an edge of the batch state machine."""
    if target not in BATCH_TRANSITIONS[current]:
        raise StateError(f"a batch in state '{current}' cannot move to '{target}'")


class PageState(enum.StrEnum):
    """Processing state of one page; CAPTURED pages are acknowledged (raw image safe in the vault)."""

    CAPTURED = "captured"  # raw capture encrypted and recorded; analysis not yet done
    PROCESSED = "processed"  # normalised image and analysis stored


class OcrState(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"  # kept and flagged; can be retried
    SKIPPED = "skipped"  # blank page: nothing to read


class Side(enum.StrEnum):
    FRONT = "front"
    BACK = "back"
    FLATBED = "flatbed"
    IMPORT = "import"


@dataclass(slots=True)
class Batch:
    id: int
    name: str
    unit: str
    operator: str
    state: BatchState
    created_at: str
    updated_at: str
    uid: str | None = None  # globally unique batch id, fixed when first sealed (the portal dedups on it)


@dataclass(slots=True)
class Document:
    """One ACR file: the pages of one employee's report for one period."""

    id: int
    batch_id: int
    seq: int
    employee_code: str = ""
    employee_name: str = ""
    rank: str = ""
    acr_period: str = ""  # the period's canonical label: "2019-20" or "2019-04-01..2019-09-30"
    period_start: str | None = None  # ISO dates of the checked period (None: indexed before periods were checked)
    period_end: str | None = None
    not_in_roster: str = ""  # the operator's reason for filing a code the roster lacks ("" = in the roster)
    flags: list[str] = field(default_factory=list)  # raised on the file itself: "not_in_roster", "duplicate", ...
    indexed_by: str = ""  # who last set the index (a supervisor's correction counts as capture)
    removed: str = ""  # why the file no longer exists (merged into another); "" = a live ACR file
    duplicate_reason: str = ""  # the operator's reason for filing an overlapping period anyway


@dataclass(slots=True)
class Page:
    id: int
    batch_id: int
    seq: int  # capture order within the batch (never reused)
    source_key: str  # idempotency key: device/scan/sheet/side or file-hash/page; unique per batch
    side: Side
    device: str
    captured_at: str
    width: int
    height: int
    dpi: int
    mode: str  # "L", "1" or "RGB"
    raw_object: str  # vault object id of the capture as received
    raw_sha256: str
    state: PageState
    ocr_state: OcrState
    document_id: int | None = None
    position: int | None = None  # order within the document (reorder changes this, never seq)
    image_object: str | None = None  # cleaned image
    image_sha256: str | None = None
    # The cleaned page encoded for the archive (a one-page PDF, pdf.page_encoding): what the ACR file's PDF and
    # the package carry; None for a page processed before issue 16 (encoded when its PDF is assembled).
    compact_object: str | None = None
    compact_sha256: str | None = None
    ocr_object: str | None = None
    ocr_sha256: str | None = None
    ocr_attempts: int = 0
    ocr_error: str = ""
    analysis: dict[str, Any] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    rotation: int = 0  # clockwise quarter turn (0, 90, 180, 270) a supervisor set; the stored image is untouched
    deleted_reason: str = ""  # deleted in verification ("" = live): never packaged, kept in the vault until purge
    replaced_by: int | None = None  # the page id of the rescan that replaced this one (never packaged)

    @property
    def live(self) -> bool:
        """Whether the page belongs to the batch's content (not deleted, not replaced by a rescan)."""
        return not self.deleted_reason and self.replaced_by is None

"""Setting an ACR file's index through the check: at entry (CLI, operator's screen), from a cover sheet, and
when a file is indexed again (the operator confirming, a supervisor correcting).

Entry refuses what :func:`~scanstation.roster.index_check.check_index` refuses; a cover sheet is flagged
instead.  The same employee and period again *in the same batch* is the same ACR file continued (more
pages of it, another import command), not a duplicate: it is excluded from the duplicate check and its
document reused.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from scanstation.domain import Document
from scanstation.errors import ScanStationError, StateError
from scanstation.roster.index_check import IndexCheck, check_index
from scanstation.roster.periods import parse_period
from scanstation.roster.reader import normalise_code


def _same_file(store: Any, batch_name: str, employee_code: str, period: str) -> tuple[int | None, Document | None]:
    """(batch id or None, the live ACR file of this employee and period already in the batch, or None)."""
    batch = store.batch(batch_name)
    if batch is None:
        return None, None
    try:
        label = parse_period(period).label
    except StateError:
        label = " ".join(period.split())
    return batch.id, store.find_document(batch.id, normalise_code(employee_code), label)


def check_entry(store: Any, batch_name: str, *, employee_code: str, period: str, not_in_roster: str | None = None,
                duplicate_reason: str | None = None, today: date | None = None,
                refuse: bool = True) -> tuple[IndexCheck, Document | None]:
    """The check for a new (or continued) ACR file in ``batch_name``, and the file it continues if any."""
    batch_id, existing = _same_file(store, batch_name, employee_code, period)
    check = check_index(store, employee_code=employee_code, period=period, not_in_roster=not_in_roster,
                        batch_id=batch_id, exclude_document=existing.id if existing else None, today=today,
                        duplicate_reason=duplicate_reason, refuse=refuse)
    return check, existing


def audit_refusal(store: Any, actor: str, batch_name: str, error: ScanStationError, *, employee_code: str,
                  period: str) -> None:
    """Record an index refused at entry (who, which batch, why; the code and period sealed): an attempt to file
    an ACR against a code the roster lacks, or a second copy, is worth a supervisor's look."""
    batch = store.batch(batch_name)
    store.audit(actor, "index.refused", batch_name, {"error": type(error).__name__},
                personal={"employee_code": employee_code, "period": period},
                batch_id=batch.id if batch is not None else None)


def open_checked_document(station: Any, batch_name: str, check: IndexCheck, *, operator: str,
                          employee_name: str = "", rank: str = "") -> Document:
    """The ACR file ``check`` describes, in ``batch_name`` (created, or the one it continues).

    ``employee_name`` / ``rank``: what the operator typed, used only for a code the roster lacks (the
    roster's own values win otherwise).
    """
    name = check.employee_name or employee_name
    return station.open_document(batch_name, check.employee_code, name, check.rank or rank, check.period.label,
                                 operator=operator, index=check)


def reindex_document(store: Any, doc_id: int, actor: str, *, employee_code: str, period: str,
                     not_in_roster: str | None = None, duplicate_reason: str | None = None,
                     today: date | None = None, employee_name: str = "", rank: str = "") -> IndexCheck:
    """Index an existing ACR file again (validated like a new one; the file is no duplicate of itself)."""
    doc = store.document(doc_id)
    if doc.removed:
        raise StateError(f"ACR file {doc.seq} was removed ({doc.removed}); index the file it went into")
    check = check_index(store, employee_code=employee_code, period=period, not_in_roster=not_in_roster,
                        batch_id=doc.batch_id, exclude_document=doc_id, today=today,
                        duplicate_reason=duplicate_reason)
    fields = check.index_fields()
    if check.employee is None:
        fields["employee_name"] = employee_name or doc.employee_name
        fields["rank"] = rank or doc.rank
    store.set_document_index(doc_id, actor, **fields)
    return check

"""Service operations (issue 14) for progress against the roster: the supervisor's and unit head's
dashboard.

``progress`` {days?: int (1..92, default 14)} -> :meth:`scanstation.reports.progress.Progress.as_dict`
plus ``periods`` (the configured ones) and ``today``.

Permission: :attr:`Action.VIEW_PAGE`, not READ_AUDIT.  The dashboard is for supervisors and unit heads and
VIEW_PAGE is exactly theirs without a batch rule (an operator holds it only for their own page of a batch
in capture, and asking without a batch fails closed; the admin never).  READ_AUDIT would also let the
station admin read it, who sees no page and no personal data: per-operator work and the employee codes of
missing files are the unit's business, not the admin's.  The missing files' employee codes (personal) are
included only when :func:`~scanstation.people.permissions.sees_personal_fields` holds for the role, and
every read is audited (counts only in the entry's detail).

The per-day state moves come from the audit trail's ``batch.state`` entries of the batches that moved
within the days shown (:func:`~scanstation.reports.progress.recent_batches`, read by batch through the
trail's ``batch_id`` index), not from the whole trail, which grows without bound.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scanstation.errors import StateError
from scanstation.people.permissions import sees_personal_fields
from scanstation.people.roles import Action
from scanstation.service.op_types import Emit, Operations

if TYPE_CHECKING:
    from scanstation.service.core import Caller, StationService

MAX_DAYS = 92


def _op_progress(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    from datetime import date

    from scanstation.reports.progress import Transition, compute_progress, recent_batches

    assert c is not None
    days = a.get("days", 14)
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_DAYS:
        raise StateError(f"request field 'days' must be a whole number from 1 to {MAX_DAYS}")
    station = s.station(c, Action.VIEW_PAGE)
    periods = list(s.config.roster.periods)  # [roster] periods: the unit's financial years
    today = date.today()
    transitions = [Transition(e.ts, e.subject, str(e.detail.get("to", "")))
                   for batch_id, name in recent_batches(station.store, today=today, days=days)
                   for e in s.audit.entries(batch_id=batch_id, subject=name) if e.action == "batch.state"]
    personal = sees_personal_fields(c.role)
    result = compute_progress(station.store, periods=periods, transitions=transitions, today=today, days=days,
                              personal=personal)
    s.audit.append(c.name, "progress.read", "progress",
                   {"expected": result.expected, "personal": personal and bool(result.missing)})
    return {**result.as_dict(), "periods": periods, "today": today.isoformat()}


OPERATIONS: Operations = {
    "progress": (_op_progress, True),
}

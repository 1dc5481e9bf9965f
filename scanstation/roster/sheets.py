"""Cover sheets made from a roster file alone (no station store, no unlock): one per (employee, period), so
the unit's clerk can print a whole year's sheets on any machine before the files reach the scanning room.

A sheet's QR code carries only code, period and unit (see :mod:`scanstation.capture.cover_sheets`, which the
CLI renders with: this package does not import capture, which imports it); the names in Devanagari and
English and the rank are printed for the people handling the paper.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from scanstation.errors import RosterError, StateError
from scanstation.roster.periods import Period, check_plausible
from scanstation.roster.reader import RosterFile, RosterRow, normalise_code


@dataclass(frozen=True, slots=True)
class SheetPlan:
    """The sheets to print, and the (employee, period) pairs left out because the period ends before the
    person joined (no ACR can exist for them)."""

    sheets: list[tuple[RosterRow, Period]]
    skipped_before_joining: int


def plan_sheets(roster: RosterFile, *, employees: Sequence[str] | None, periods: Sequence[Period],
                today: date | None = None) -> SheetPlan:
    """Sheets for ``employees`` (codes; None = everyone in the file) × ``periods``, in roster order then period
    order.  A code the file lacks is a RosterError naming it; an implausible period a StateError."""
    today = today or date.today()
    if not periods:
        raise StateError("no ACR periods: give --periods 2017-18..2019-20 or --period P (or set [roster] periods)")
    for p in periods:
        check_plausible(p, today=today)
    by_code = {r.employee_code: r for r in roster.rows}
    if employees is None:
        people = list(roster.rows)
    else:
        wanted = [normalise_code(c) for c in employees]
        missing = [c for c in wanted if c not in by_code]
        if missing:
            raise RosterError(f"{roster.path}: no employee with code {', '.join(missing)} in this roster file")
        people = [by_code[c] for c in dict.fromkeys(wanted)]

    sheets: list[tuple[RosterRow, Period]] = []
    skipped = 0
    for person in people:
        for p in periods:
            if person.joining_date is not None and p.end < person.joining_date:
                skipped += 1
                continue
            sheets.append((person, p))
    return SheetPlan(sheets, skipped)

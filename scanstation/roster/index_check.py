"""The index check of an ACR file at entry: is the code in the roster, is the period plausible, is the same
ACR already filed?

One function, :func:`check_index`, used wherever an index is set: ``scan``/``import --employee``, the
operator's screen (``index_document``), a cover sheet found mid-scan, and the supervisor's correction
(re-index).  At entry it *refuses* (:class:`NotInRoster`, exit 27; :class:`DuplicateAcr`, exit 28; a bad
period is a :class:`StateError`) unless the operator gave a reason, which files the ACR with a flag for
the supervisor (``not_in_roster``, ``duplicate``).  A cover sheet cannot be refused - the pages behind it
are already in the feeder - so the capture session calls it with ``refuse=False``: the file is created
and flagged instead.

Duplicates: the same employee with an overlapping period in this batch, an earlier batch, or an uploaded
one - purged too: a purge blanks the index but leaves the period's dates and a keyed digest of the code.
Files removed (merged away) do not count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from scanstation.errors import DuplicateAcr, NotInRoster, StateError
from scanstation.roster.periods import Period, check_plausible, parse_period, period_from_dates
from scanstation.roster.reader import normalise_code

MAX_REASON = 300


@dataclass(frozen=True, slots=True)
class Duplicate:
    """Where an overlapping ACR file of the same employee is (what the operator is shown)."""

    document_id: int
    batch: str
    seq: int  # the ACR file's number within its batch
    state: str  # the batch's state (scanning ... uploaded)
    acr_period: str
    same_batch: bool

    def describe(self) -> str:
        where = "this batch" if self.same_batch else f"batch {self.batch}"
        return f"{where}, ACR file {self.seq} ({self.acr_period}, batch {self.state})"

    def as_dict(self) -> dict[str, Any]:
        return {"document_id": self.document_id, "batch": self.batch, "seq": self.seq, "state": self.state,
                "acr_period": self.acr_period, "same_batch": self.same_batch}


@dataclass(frozen=True, slots=True)
class IndexCheck:
    """The outcome of an index check: the roster person (None when not in the roster), the period, the
    flags to raise on the ACR file, and the overlapping files found."""

    employee_code: str
    employee: Any  # scanstation.store.roster.RosterPerson | None
    period: Period
    flags: list[str] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    not_in_roster: str = ""  # the reason given for a code the roster lacks
    duplicate_reason: str = ""
    problem: str = ""  # what a cover sheet's index got wrong (refuse=False), for the event and the supervisor

    @property
    def employee_name(self) -> str:
        return self.employee.display_name if self.employee is not None else ""

    @property
    def rank(self) -> str:
        return self.employee.rank if self.employee is not None else ""

    def as_dict(self) -> dict[str, Any]:
        return {"employee_code": self.employee_code,
                "employee": self.employee.as_dict() if self.employee is not None else None,
                "period": self.period.as_dict(), "flags": list(self.flags),
                "duplicates": [d.as_dict() for d in self.duplicates], "not_in_roster": self.not_in_roster,
                "problem": self.problem}

    def index_fields(self) -> dict[str, Any]:
        """The keyword arguments of ``store.set_document_index`` / ``add_document`` for this check."""
        dated = self.period.start <= self.period.end  # a cover sheet's unusable period is kept as text only
        return {"employee_code": self.employee_code, "employee_name": self.employee_name, "rank": self.rank,
                "acr_period": self.period.label, "period_start": self.period.start.isoformat() if dated else None,
                "period_end": self.period.end.isoformat() if dated else None, "not_in_roster": self.not_in_roster,
                "flags": list(self.flags), "duplicate_reason": self.duplicate_reason}


def _reason(text: str | None, what: str) -> str:
    reason = " ".join((text or "").split())
    if text is not None and not reason:
        raise StateError(f"{what}: the reason must not be empty")
    if len(reason) > MAX_REASON:
        raise StateError(f"{what}: the reason is longer than {MAX_REASON} characters")
    return reason


def find_duplicates(store: Any, employee_code: str, period: Period, *, batch_id: int | None = None,
                    exclude_document: int | None = None) -> list[Duplicate]:
    """Live ACR files of ``employee_code`` whose period overlaps ``period``, in any batch (purged ones by digest)."""
    found = []
    for r in store.employee_documents(employee_code):
        if r["id"] == exclude_document:
            continue
        other = period_from_dates(r["period_start"], r["period_end"], r["acr_period"])
        if other is None or not period.overlaps(other.start, other.end):
            continue
        found.append(Duplicate(int(r["id"]), str(r["batch"]), int(r["seq"]), str(r["batch_state"]),
                               str(r["acr_period"]) or f"{other.start.isoformat()}..{other.end.isoformat()}",
                               batch_id is not None and r["batch_id"] == batch_id))
    return found


def check_index(store: Any, *, employee_code: str, period: str, not_in_roster: str | None = None,
                batch_id: int | None = None, exclude_document: int | None = None, today: date | None = None,
                duplicate_reason: str | None = None, refuse: bool = True) -> IndexCheck:
    """Check an ACR file's index (see the module docstring).

    ``not_in_roster`` / ``duplicate_reason``: the operator's reason to file it anyway (flagged for the
    supervisor); ``exclude_document``: the file being (re-)indexed, or continued with more pages, which is
    no duplicate of itself; ``refuse=False`` (a cover sheet): never raise, flag instead (``problem`` says
    what; a bad period is flagged ``bad_period`` and checked as the text given).
    """
    code = normalise_code(employee_code)
    if not code:
        raise StateError("employee code is empty")
    today = today or date.today()
    nir = _reason(not_in_roster, f"not in roster {code}")
    dup_reason = _reason(duplicate_reason, f"duplicate {code}")
    flags: list[str] = []
    problems: list[str] = []
    person = store.roster_person(code)
    if person is None:
        if not nir:
            summary = store.roster_summary()
            known = (f"the roster has {summary['active']} active people, last imported "
                     f"{str(summary['last_import']['imported_at'])[:10]}") if summary["last_import"] else \
                "no roster has been imported on this station yet ('scanstation roster import FILE')"
            message = (f"employee code {code} is not in the roster ({known}); check the code, or give "
                       "--not-in-roster REASON to file it for the supervisor")
            if refuse:
                raise NotInRoster(message)
            problems.append(message)
            nir = "cover sheet: code not in the roster"
        flags.append("not_in_roster")
    else:
        nir = ""  # a reason for "not in roster" means nothing for a code the roster has
    try:
        parsed = parse_period(period)
        check_plausible(parsed, today=today, joined=person.joining_date if person is not None else None)
    except StateError as e:
        if refuse:
            raise
        problems.append(e.message)
        flags.append("bad_period")
        parsed = _loose_period(period)
    duplicates = find_duplicates(store, code, parsed, batch_id=batch_id, exclude_document=exclude_document)
    if duplicates:
        if not dup_reason:
            where = "; ".join(d.describe() for d in duplicates[:5])
            message = (f"duplicate ACR: employee {code}, period {parsed.label} overlaps what is already filed "
                       f"({where}); check the period, or give --duplicate-reason TEXT to file it for the supervisor")
            if refuse:
                raise DuplicateAcr(message)
            problems.append(message)
            dup_reason = "cover sheet: overlapping period already filed"
        flags.append("duplicate")
    return IndexCheck(code, person, parsed, flags, duplicates, nir, dup_reason if duplicates else "",
                      "; ".join(problems))


def _loose_period(text: str) -> Period:
    """A cover sheet's period the checks refused: parsed if it parses (it was implausible), else kept as
    its text with an empty range (no duplicate can overlap it)."""
    try:
        return parse_period(text)
    except StateError:
        return Period(" ".join(text.split())[:40], date.max, date.min)

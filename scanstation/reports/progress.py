"""Progress against the roster: how many ACR files the unit expects and how far each has got.

Expected files are the active roster people × the unit's chosen periods (config ``[roster] periods``,
financial-year labels such as ``"2019-20"``: 1 April 2019 to 31 March 2020).  An ACR file counts for the
(employee, year) its period falls in: its label when it is that year, or its explicit dates (a part-year
file of a transfer or promotion) overlapping that year.  Several part-year files of one employee and year
count once, at the stage of the furthest one.

Stages follow the batch the file is in (a file is as far as its batch):

    scanned   any file with a page: scanning, closed, in-verification, returned
    verified  verified
    signed    signed, sealed, uploading (a station without sign-off seals verified batches: sealed counts
              here too, as "signed off or sealed")
    uploaded  uploaded, purged (the portal's receipt is in; a purge comes after it)

A purged batch's files keep no employee code or period label (the purge blanks them), only their period's
dates and ``employee_digest``, a keyed digest of the code (:meth:`~scanstation.store.connection.
StoreConnection.employee_digest`): such a file is matched to the roster person whose code has that digest,
and to the years its dates overlap, so an uploaded file does not turn back into "not yet scanned" when its
batch is purged after the retention period.

Each stage counts the files that reached it *or a later one*, so ``expected ≥ scanned ≥ verified ≥ signed
≥ uploaded`` always holds for the roster part.  Files outside the plan (not in the roster, another period)
are counted apart (``outside_plan``), never in the percentages.

Per day: files scanned (their first page's capture day), pages captured, pages given a verdict, and files
whose batch moved to verified / signed / uploaded that day (from the audit trail's ``batch.state`` entries,
handed in as :class:`Transition`; a batch verified twice counts on its last day).  Only the batches
:func:`recent_batches` names can have moved within the days shown, so the caller reads those batches'
entries, not the whole trail.  Per operator: files and pages they captured, pages deleted or sent for
rescan.  The flags most often raised: page flags (blank,
quality, orientation …) and file flags (not in roster, duplicate), most frequent first.

Pure computation over the store's rows (:mod:`scanstation.store.progress`): no Qt, no writes.  Personal
data (employee codes of the files still missing) is returned only when ``personal=True`` — the service
decides who may see it.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from scanstation.errors import StateError

STAGES = ("scanned", "verified", "signed", "uploaded")
_STAGE_OF_STATE = {
    "scanning": 0, "closed": 0, "in-verification": 0, "returned": 0,
    "verified": 1,
    "signed": 2, "sealed": 2, "uploading": 2,
    "uploaded": 3, "purged": 3,
}
_DAY_STAGE = {"verified": "verified", "signed": "signed", "sealed": "signed", "uploaded": "uploaded"}
_FY = re.compile(r"^(\d{4})-(\d{2}|\d{4})$")


class ProgressRows(Protocol):
    """What the report reads from the store (:class:`~scanstation.store.progress.ProgressQueries`)."""

    def progress_roster(self) -> list[Any]: ...
    def progress_documents(self) -> list[Any]: ...
    def progress_pages(self) -> list[Any]: ...
    def progress_batches(self) -> list[Any]: ...
    def employee_digest(self, employee_code: str) -> str: ...


@dataclass(frozen=True)
class Transition:
    """A batch moved to a state at a time (an audit trail ``batch.state`` entry)."""

    ts: str
    batch: str
    to_state: str


@dataclass(frozen=True)
class FinancialYear:
    label: str
    start: date
    end: date


def financial_year(label: str) -> FinancialYear:
    """``"2019-20"`` (or ``"2019-2020"``) → 1 April 2019 .. 31 March 2020; anything else is refused."""
    m = _FY.match(label.strip())
    if not m:
        raise StateError(f"roster period {label!r} is not a financial year like 2019-20")
    first = int(m.group(1))
    second = m.group(2)
    end_year = int(second) if len(second) == 4 else (first // 100) * 100 + int(second)
    if end_year < first:  # "1999-00"
        end_year += 100
    if end_year != first + 1:
        raise StateError(f"roster period {label!r} does not span one financial year (April to March)")
    return FinancialYear(f"{first}-{str(first + 1)[-2:]}", date(first, 4, 1), date(first + 1, 3, 31))


def _date(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def _day(ts: str | None) -> str | None:
    """The local calendar day of an ISO timestamp (the station clock's UTC offset as written)."""
    if not ts:
        return None
    try:
        return datetime.fromisoformat(ts).astimezone().date().isoformat()
    except ValueError:
        return ts[:10] or None


def years_of(acr_period: str, start: str | None, end: str | None,
             years: Sequence[FinancialYear]) -> list[FinancialYear]:
    """The planned financial years an ACR file covers: its label, or its dates overlapping a year."""
    label = acr_period.strip()
    hits = [y for y in years if y.label == label]
    if hits:
        return hits
    with_label: FinancialYear | None = None
    try:
        with_label = financial_year(label) if label else None
    except StateError:
        with_label = None
    if with_label is not None:  # a year, but not a planned one
        return [y for y in years if y.start == with_label.start]
    s, e = _date(start), _date(end)
    if s is None or e is None:
        return []
    return [y for y in years if s <= y.end and e >= y.start]


@dataclass
class Progress:
    expected: int
    stages: dict[str, int]  # files of the plan that reached the stage (or a later one)
    by_period: dict[str, dict[str, int]]  # period -> {"expected": n, "scanned": n, ...}
    outside_plan: int  # files scanned that the plan does not expect (not in roster, other periods)
    by_day: list[dict[str, Any]]  # [{"day", "files_scanned", "pages_captured", "pages_verdicts", "verified", ...}]
    by_operator: list[dict[str, Any]]  # [{"operator", "files", "pages", "rescans", "deleted"}]
    top_flags: list[dict[str, Any]]  # [{"flag", "count", "kind": "page"|"file"}]
    batches: dict[str, int]  # batch state -> number of batches
    missing: list[dict[str, str]] = field(default_factory=list)  # personal: [{"employee_code", "period"}]

    def as_dict(self) -> dict[str, Any]:
        return {
            "expected": self.expected, "stages": self.stages, "by_period": self.by_period,
            "outside_plan": self.outside_plan, "by_day": self.by_day, "by_operator": self.by_operator,
            "top_flags": self.top_flags, "batches": self.batches, "missing": self.missing,
        }


def _flags(text: str | None) -> list[str]:
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return [str(f) for f in value] if isinstance(value, list) else []


def recent_batches(rows: ProgressRows, *, today: date, days: int) -> list[tuple[int, str]]:
    """(id, name) of the batches whose state can have moved within the ``days`` ending ``today``: those whose
    last move (``updated_at``) is on or after the window's first day.  A day's margin covers an audit entry
    stamped a moment after the store's row across midnight.  Their ``batch.state`` entries give the same
    per-day counts as the whole trail would: a batch not named here last moved before the window."""
    first = (today - timedelta(days=days)).isoformat()
    out: list[tuple[int, str]] = []
    for b in rows.progress_batches():
        day = _day(b["updated_at"])
        if day is None or day >= first:
            out.append((int(b["id"]), str(b["name"])))
    return out


def compute_progress(rows: ProgressRows, *, periods: Sequence[str], transitions: Iterable[Transition] = (),
                     today: date | None = None, days: int = 14, personal: bool = False,
                     missing_limit: int = 200, top: int = 8) -> Progress:
    """The dashboard's numbers.  ``periods``: the unit's chosen financial years; ``transitions``: batch
    state moves from the audit trail (for the per-day verified/signed/uploaded counts); ``days``: how many
    days back ``by_day`` covers (ending ``today``); ``personal``: include the missing files' employee codes."""
    years = [financial_year(p) for p in periods]
    roster = [str(r["employee_code"]) for r in rows.progress_roster()]
    roster_set = set(roster)
    planned = {(code, y.label) for code in roster for y in years}
    code_of_digest: dict[str, str] | None = None  # a purged file's digest -> the roster person's code (lazily)

    # (employee, year) -> furthest stage index; files outside the plan counted apart
    reached: dict[tuple[str, str], int] = {}
    outside = 0
    files_of_batch: Counter[str] = Counter()
    files_by_operator: Counter[str] = Counter()
    files_by_day: Counter[str] = Counter()
    file_flags: Counter[str] = Counter()
    for d in rows.progress_documents():
        if not d["pages"]:
            continue  # an index with no page yet is not a scanned file
        stage = _STAGE_OF_STATE.get(str(d["batch_state"]), 0)
        files_of_batch[str(d["batch"])] += 1
        files_by_operator[str(d["operator"])] += 1
        day = _day(d["first_captured"])
        if day:
            files_by_day[day] += 1
        doc_flags = _flags(d["flags"])
        file_flags.update(doc_flags)
        code = str(d["employee_code"])
        not_in_roster = bool(d["not_in_roster"])
        if not code and d["employee_digest"]:  # a purged file: the code is gone, its keyed digest stays
            if code_of_digest is None:
                code_of_digest = {rows.employee_digest(c): c for c in roster}
            code = code_of_digest.get(str(d["employee_digest"]), "")
            not_in_roster = "not_in_roster" in doc_flags  # the purge blanked the reason, not the flag
        keys = [(code, y.label) for y in years_of(str(d["acr_period"]), d["period_start"], d["period_end"], years)]
        keys = [k for k in keys if k in planned and code in roster_set and not not_in_roster]
        if not keys:
            outside += 1
        for k in keys:
            reached[k] = max(reached.get(k, -1), stage)

    stages = {name: sum(1 for s in reached.values() if s >= i) for i, name in enumerate(STAGES)}
    by_period: dict[str, dict[str, int]] = {}
    for y in years:
        cells = [s for (_code, label), s in reached.items() if label == y.label]
        by_period[y.label] = {"expected": len(roster),
                              **{name: sum(1 for s in cells if s >= i) for i, name in enumerate(STAGES)}}

    # pages: per operator, per day, flags
    pages_by_operator: Counter[str] = Counter()
    rescans_by_operator: Counter[str] = Counter()
    deleted_by_operator: Counter[str] = Counter()
    pages_by_day: Counter[str] = Counter()
    verdicts_by_day: Counter[str] = Counter()
    page_flags: Counter[str] = Counter()
    for p in rows.progress_pages():
        who = str(p["captured_by"] or p["operator"])
        replaced = p["replaced_by"] is not None
        if not replaced:
            pages_by_operator[who] += 1
            page_flags.update(_flags(p["flags"]))
        day = _day(p["captured_at"])
        if day:
            pages_by_day[day] += 1
        if p["verdict"] == "rescan" or replaced:
            rescans_by_operator[who] += 1
        if p["deleted_reason"]:
            deleted_by_operator[who] += 1
        vday = _day(p["given_at"])
        if vday:
            verdicts_by_day[vday] += 1

    # per day: batch state moves (the last move of a batch into a stage counts)
    last_move: dict[tuple[str, str], str] = {}
    for t in transitions:
        stage_name = _DAY_STAGE.get(t.to_state)
        day = _day(t.ts)
        if stage_name and day:
            last_move[(t.batch, stage_name)] = day
    stage_by_day: dict[str, Counter[str]] = defaultdict(Counter)
    for (batch, stage_name), day in last_move.items():
        stage_by_day[day][stage_name] += files_of_batch.get(batch, 0)

    end = today or date.today()
    by_day = []
    for i in range(days - 1, -1, -1):
        day = (end - timedelta(days=i)).isoformat()
        by_day.append({"day": day, "files_scanned": files_by_day.get(day, 0),
                       "pages_captured": pages_by_day.get(day, 0), "pages_verdicts": verdicts_by_day.get(day, 0),
                       "verified": stage_by_day[day]["verified"], "signed": stage_by_day[day]["signed"],
                       "uploaded": stage_by_day[day]["uploaded"]})

    operators = sorted(set(files_by_operator) | set(pages_by_operator))
    by_operator: list[dict[str, Any]] = [
        {"operator": o, "files": files_by_operator.get(o, 0), "pages": pages_by_operator.get(o, 0),
         "rescans": rescans_by_operator.get(o, 0), "deleted": deleted_by_operator.get(o, 0)}
        for o in operators if o]
    by_operator.sort(key=lambda r: (-int(r["files"]), -int(r["pages"]), str(r["operator"])))

    flags: list[dict[str, Any]] = [{"flag": f, "count": n, "kind": "page"} for f, n in page_flags.items()]
    flags += [{"flag": f, "count": n, "kind": "file"} for f, n in file_flags.items()]
    flags.sort(key=lambda r: (-int(r["count"]), str(r["flag"])))

    batches = Counter(str(b["state"]) for b in rows.progress_batches())

    missing: list[dict[str, str]] = []
    if personal:
        for code in roster:
            for y in years:
                if (code, y.label) not in reached:
                    missing.append({"employee_code": code, "period": y.label})
                    if len(missing) >= missing_limit:
                        break
            if len(missing) >= missing_limit:
                break

    return Progress(expected=len(planned), stages=stages, by_period=by_period, outside_plan=outside,
                    by_day=by_day, by_operator=by_operator, top_flags=flags[:top], batches=dict(batches),
                    missing=missing)

"""ACR periods: a financial year ("2019-20") or an explicit date range for a part-year (a transfer, a promotion).

Accepted spellings (all mean the same thing to the station, which keeps one canonical label):

* financial year: ``2019-20``, ``2019-2020``, ``2019/20``, ``FY 2019-20`` -> label ``2019-20``, 1 April 2019 to
  31 March 2020 (the Indian government's financial year, which ACRs follow);
* date range: ``2019-04-01..2019-09-30`` (ISO dates), ``01.04.2019-30.09.2019``, ``01-04-2019..30-09-2019`` or
  ``01/04/2019..30/09/2019`` (day first, as written in Indian offices) -> label ``2019-04-01..2019-09-30``.

Plausibility (:func:`check_plausible`): the period ends after it starts, is at most a year long, has
ended by today (an ACR is written after its period), and does not end before the employee joined.
A bad period is a :class:`StateError` naming the text and the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from scanstation.errors import StateError

EARLIEST_YEAR = 1950  # no ACR of serving staff is older
MAX_DAYS = 366  # a financial year in a leap year

_DEVA_DIGITS = str.maketrans("०१२३४५६७८९", "0123456789")
_FY = re.compile(r"^(?:FY\s*)?((?:19|20)\d\d)\s*[-/–]\s*(\d\d|\d{4})$", re.IGNORECASE)
_ISO = r"\d{4}-\d{1,2}-\d{1,2}"
_DMY = r"\d{1,2}[./-]\d{1,2}[./-]\d{4}"
_RANGE = re.compile(rf"^({_ISO}|{_DMY})\s*(?:\.\.|–|—|\s+to\s+|-)\s*({_ISO}|{_DMY})$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Period:
    """An ACR period: its canonical label and its first and last day (both inclusive)."""

    label: str
    start: date
    end: date

    @property
    def financial_year(self) -> bool:
        return "." not in self.label

    def overlaps(self, start: date, end: date) -> bool:
        return self.start <= end and start <= self.end

    def as_dict(self) -> dict[str, str]:
        return {"label": self.label, "start": self.start.isoformat(), "end": self.end.isoformat()}


def financial_year(start_year: int) -> Period:
    return Period(f"{start_year}-{(start_year + 1) % 100:02d}", date(start_year, 4, 1), date(start_year + 1, 3, 31))


def _date(text: str, whole: str) -> date:
    parts = re.split(r"[./-]", text)
    try:
        if len(parts[0]) == 4:
            y, m, d = (int(p) for p in parts)
        else:
            d, m, y = (int(p) for p in parts)
        return date(y, m, d)
    except ValueError as e:
        raise StateError(f"ACR period {whole!r}: {text!r} is not a date ({e})") from e


def parse_period(text: str) -> Period:
    """The period a text names (see the module's docstring); StateError naming the text when it is none."""
    raw = " ".join(text.translate(_DEVA_DIGITS).split())
    if not raw:
        raise StateError("ACR period is empty: give a financial year like 2019-20 or a range like "
                         "2019-04-01..2019-09-30")
    m = _FY.match(raw)
    if m:
        first = int(m.group(1))
        second = m.group(2)
        expected = f"{(first + 1) % 100:02d}" if len(second) == 2 else str(first + 1)
        if second != expected:
            raise StateError(f"ACR period {text!r}: a financial year runs from April of one year to March of the "
                             f"next, e.g. {first}-{(first + 1) % 100:02d}")
        return financial_year(first)
    m = _RANGE.match(raw)
    if m:
        start, end = _date(m.group(1), text), _date(m.group(2), text)
        fy = financial_year(start.year if start.month >= 4 else start.year - 1)
        if (start, end) == (fy.start, fy.end):
            return fy  # a whole financial year written as dates is that financial year
        return Period(f"{start.isoformat()}..{end.isoformat()}", start, end)
    raise StateError(f"ACR period {text!r} is not a financial year (2019-20) nor a date range "
                     "(2019-04-01..2019-09-30 or 01.04.2019-30.09.2019)")


def check_plausible(period: Period, *, today: date, joined: date | None = None) -> None:
    """StateError unless the period could be a real ACR period of someone who joined on ``joined``."""
    label = period.label
    if period.end < period.start:
        raise StateError(f"ACR period {label}: it ends before it starts")
    if period.start.year < EARLIEST_YEAR:
        raise StateError(f"ACR period {label}: before {EARLIEST_YEAR}, not a plausible ACR of serving staff")
    if (period.end - period.start).days + 1 > MAX_DAYS:
        raise StateError(f"ACR period {label}: longer than a year ({(period.end - period.start).days + 1} days); "
                         "an ACR covers at most one financial year")
    if period.end > today:
        raise StateError(f"ACR period {label}: it has not ended yet (ends {period.end.isoformat()}, today is "
                         f"{today.isoformat()}); an ACR is written after its period")
    if joined is not None and period.end < joined:
        raise StateError(f"ACR period {label}: it ends before the employee joined ({joined.isoformat()}, "
                         "from the roster)")


def period_from_dates(start: str | None, end: str | None, label: str) -> Period | None:
    """A stored document's period: its dates when recorded, else its label parsed (older documents); None when
    neither is usable (free text from before periods were checked)."""
    if start and end:
        try:
            return Period(label, date.fromisoformat(start), date.fromisoformat(end))
        except ValueError:
            return None
    try:
        return parse_period(label)
    except StateError:
        return None


def financial_years(text: str) -> list[Period]:
    """Financial years from ``2017-18..2019-20`` (inclusive), oldest first; a single year gives one."""
    first, sep, last = text.partition("..")
    a = parse_period(first)
    b = parse_period(last) if sep else a
    if not (a.financial_year and b.financial_year):
        raise StateError(f"periods {text!r}: expected financial years, e.g. 2017-18..2019-20")
    if b.start < a.start:
        raise StateError(f"periods {text!r}: the last year is before the first")
    if b.start.year - a.start.year >= 60:
        raise StateError(f"periods {text!r}: more than 60 years")
    return [financial_year(y) for y in range(a.start.year, b.start.year + 1)]

"""Reading the unit's staff list as the HR portal exports it: CSV or XLSX, headers in English or Hindi.

Nothing here touches the store: :func:`read_roster` returns the validated people of a file, or raises one
:class:`RosterError` that names the file and *every* bad row (row number as the spreadsheet shows it, the
column's header as written, the reason), so the clerk can fix the export in one go and nothing is
half-imported.  The header names this module understands are listed in docs/roster.md
(:data:`HEADER_SYNONYMS`, a test keeps the two in step).

Why these libraries: the standard ``csv`` module (with ``csv.Sniffer`` for ``;`` and tab exports, which
Excel writes in some locales) and openpyxl in read-only mode for XLSX - the de-facto reader, pure Python,
streaming rows instead of building the workbook, so a large sheet costs little memory.  A zip bomb is
refused before openpyxl sees it (the members' uncompressed sizes are checked first).
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from scanstation.errors import RosterError

FIELDS = ("employee_code", "name_hi", "name_en", "name", "rank", "unit", "birth_date", "joining_date")

# Header synonyms per field, compared after :func:`header_key` (case, spaces, punctuation and the nukta
# ignored).  "name" is a name column that does not say its script: each value goes to the Hindi or the
# English name by the script it is written in.
HEADER_SYNONYMS: dict[str, tuple[str, ...]] = {
    "employee_code": ("Employee Code", "Emp Code", "EmpID", "Emp ID", "Employee ID", "Employee No",
                      "Employee Number", "Emp No", "Code", "PNO", "P No", "PIS No", "Personnel No",
                      "कर्मचारी कोड", "कर्मचारी संख्या", "कर्मचारी क्रमांक", "कर्मचारी आईडी", "कोड"),
    "name_hi": ("Name (Hindi)", "Name in Hindi", "Hindi Name", "Name Hindi", "नाम (हिंदी)", "नाम (हिन्दी)",
                "नाम हिंदी में", "नाम हिन्दी में", "हिंदी में नाम", "हिन्दी में नाम", "हिंदी नाम", "हिन्दी नाम"),
    "name_en": ("Name (English)", "Name in English", "English Name", "Name English", "नाम (अंग्रेजी)",
                "नाम (अंग्रेज़ी)", "नाम अंग्रेजी में", "अंग्रेजी में नाम", "अंग्रेज़ी में नाम", "अंग्रेजी नाम"),
    "name": ("Name", "Employee Name", "Full Name", "Name of Employee", "नाम", "कर्मचारी का नाम",
             "अधिकारी/कर्मचारी का नाम"),
    "rank": ("Rank", "Designation", "Post", "पद", "पदनाम", "रैंक", "श्रेणी"),
    "unit": ("Unit", "Office", "Posting", "Unit Name", "इकाई", "कार्यालय", "तैनाती"),
    "birth_date": ("DOB", "Date of Birth", "Birth Date", "D.O.B.", "जन्म तिथि", "जन्मतिथि", "जन्म दिनांक"),
    "joining_date": ("DOJ", "Date of Joining", "Joining Date", "D.O.J.", "Date of Appointment",
                     "नियुक्ति तिथि", "नियुक्ति दिनांक", "भर्ती तिथि", "कार्यभार ग्रहण तिथि"),
}

MAX_FILE_BYTES = 20 * 1024 * 1024  # a unit's staff list is a few hundred kilobytes; this is 100,000+ rows
MAX_ROWS = 100_000
MAX_XLSX_UNPACKED = 200 * 1024 * 1024  # what the XLSX's members may unpack to (zip bombs)
MAX_LEN = {"employee_code": 40, "name_hi": 120, "name_en": 120, "rank": 80, "unit": 80}  # 40: a cover sheet's
_HEADER_SEARCH_ROWS = 10  # HR exports often put a title or a date line above the header
_CODE = re.compile(r"^[A-Z0-9][A-Z0-9 ./_-]*$")
_DEVA_DIGITS = str.maketrans("०१२३४५६७८९", "0123456789")
_MONTHS = {m: i + 1 for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                                           "nov", "dec"))}
_EXCEL_EPOCH = date(1899, 12, 30)  # Excel's day 0 (its 1900 leap-year bug folded in)
OLDEST_BIRTH_YEAR = 1930
MIN_AGE_AT_JOINING = 16


def header_key(text: str) -> str:
    """A header reduced for matching: NFC, case-folded, without spaces, punctuation or the nukta."""
    text = unicodedata.normalize("NFD", text).replace("\u093c", "")  # नुक़्ता: "अंग्रेज़ी" = "अंग्रेजी"
    text = unicodedata.normalize("NFC", text).casefold()
    return "".join(c for c in text if unicodedata.category(c)[0] in "LMN")


_HEADER_INDEX: dict[str, str] = {header_key(s): f for f, names in HEADER_SYNONYMS.items() for s in names}


@dataclass(frozen=True, slots=True)
class RosterRow:
    """One person of the staff list, validated (strings NFC, code upper-case)."""

    row: int  # row number in the file (1-based, as a spreadsheet shows it)
    employee_code: str
    name_hi: str = ""
    name_en: str = ""
    rank: str = ""
    unit: str = ""
    birth_date: date | None = None
    joining_date: date | None = None


@dataclass(frozen=True, slots=True)
class RosterFile:
    """A read file: its people, the columns recognised (field -> header as written) and those ignored."""

    path: Path
    sha256: str
    rows: list[RosterRow]
    columns: dict[str, str]
    ignored: list[str]


@dataclass(frozen=True, slots=True)
class Problem:
    row: int
    column: str
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}" + (f", column '{self.column}'" if self.column else "") + f": {self.reason}"


def is_devanagari(text: str) -> bool:
    return any("\u0900" <= c <= "\u097f" for c in text)


def normalise_code(text: str) -> str:
    """An employee code as the station keeps it: NFC, trimmed, inner spaces single, upper-case."""
    return " ".join(unicodedata.normalize("NFC", text).translate(_DEVA_DIGITS).split()).upper()


# ------------------------------------------------------------------------------------------------ file formats
def _raw_rows_csv(path: Path, data: bytes) -> Iterator[list[Any]]:
    if b"\x00" in data:
        raise RosterError(f"{path}: not a CSV or XLSX file (binary content)")
    try:
        text = data.decode("utf-8-sig")  # with or without the BOM Excel writes
    except UnicodeDecodeError as e:
        raise RosterError(f"{path}: not UTF-8 text (byte {e.start}); export the roster as 'CSV UTF-8' or as "
                          "XLSX") from e
    sample = text[:64 * 1024]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel  # one column, or nothing the sniffer can tell: plain commas
    try:
        yield from csv.reader(io.StringIO(text, newline=""), dialect)
    except csv.Error as e:
        raise RosterError(f"{path}: not a readable CSV file: {e}") from e


def _raw_rows_xlsx(path: Path, data: bytes) -> Iterator[list[Any]]:
    import openpyxl

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            unpacked = sum(i.file_size for i in z.infolist())
            broken = z.testzip()
    except (zipfile.BadZipFile, EOFError, ValueError) as e:
        raise RosterError(f"{path}: not a readable XLSX file (damaged or truncated: {e})") from e
    if broken is not None:
        raise RosterError(f"{path}: not a readable XLSX file (member {broken} is damaged)")
    if unpacked > MAX_XLSX_UNPACKED:
        raise RosterError(f"{path}: the XLSX unpacks to {unpacked // 2**20} MiB, more than a staff list can be "
                          f"(limit {MAX_XLSX_UNPACKED // 2**20} MiB)")
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises KeyError, InvalidFileException, XML errors... for a bad workbook
        raise RosterError(f"{path}: not a readable XLSX workbook: {type(e).__name__}: {e}") from e
    try:
        sheet = book.worksheets[0] if book.worksheets else None
        if sheet is None:
            raise RosterError(f"{path}: the workbook has no sheet")
        try:
            for values in sheet.iter_rows(values_only=True):
                yield list(values)
        except Exception as e:
            raise RosterError(f"{path}: the XLSX sheet cannot be read: {type(e).__name__}: {e}") from e
    finally:
        book.close()


def _raw_rows(path: Path, data: bytes) -> Iterator[list[Any]]:
    if data.startswith(b"PK\x03\x04"):
        return _raw_rows_xlsx(path, data)
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise RosterError(f"{path}: an old Excel .xls workbook; save it as .xlsx or 'CSV UTF-8' and import that")
    if data.startswith(b"%PDF"):
        raise RosterError(f"{path}: a PDF, not a CSV or XLSX file; export the roster as XLSX or CSV")
    return _raw_rows_csv(path, data)


# ------------------------------------------------------------------------------------------------ cells
def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # Excel keeps numeric codes as floats: 104512.0 is code 104512
    if isinstance(value, datetime | date):
        return value.isoformat()
    return unicodedata.normalize("NFC", str(value)).strip()


def _bad_chars(text: str) -> bool:
    return any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") and c not in "\u200c\u200d" for c in text)


def parse_date(value: Any) -> date:
    """A date cell: an Excel date, an Excel serial number, or text DD-MM-YYYY, DD/MM/YYYY, DD.MM.YYYY,
    YYYY-MM-DD or DD-Mon-YYYY (ValueError with the reason otherwise; two-digit years are ambiguous)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not 1 <= value < 80000:
            raise ValueError(f"{value!r} is not an Excel date")
        return _EXCEL_EPOCH + timedelta(days=int(value))
    text = _text(value).translate(_DEVA_DIGITS)
    m = re.fullmatch(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T]00:00(?::00)?)?", text)
    if m:
        y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
    else:
        m = re.fullmatch(r"(\d{1,2})[-/. ]([A-Za-z]{3,9}|\d{1,2})[-/. ,]+(\d{2}|\d{4})", text)
        if not m:
            raise ValueError(f"'{text}' is not a date (use DD-MM-YYYY, DD/MM/YYYY or YYYY-MM-DD)")
        d, y = int(m.group(1)), int(m.group(3))
        month = m.group(2)
        if month.isdigit():
            mo = int(month)
        elif month[:3].lower() in _MONTHS:
            mo = _MONTHS[month[:3].lower()]
        else:
            raise ValueError(f"'{text}': unknown month '{month}'")
        if len(m.group(3)) == 2:
            raise ValueError(f"'{text}': a two-digit year is ambiguous; write the year in full")
    try:
        return date(y, mo, d)
    except ValueError as e:
        raise ValueError(f"'{text}' is not a date ({e})") from e


# ------------------------------------------------------------------------------------------------ the file
def _header(cells: Sequence[Any]) -> dict[int, str]:
    """Column index -> field for one candidate header row (unrecognised columns left out)."""
    return {i: _HEADER_INDEX[k] for i, c in enumerate(cells) if (k := header_key(_text(c))) in _HEADER_INDEX}


def _columns(path: Path, rows: list[tuple[int, list[Any]]]) -> tuple[int, dict[int, str], list[str], list[Any]]:
    """(index in ``rows`` of the header, column -> field, ignored headers, the header's cells)."""
    for k, (_n, cells) in enumerate(rows[:_HEADER_SEARCH_ROWS]):
        mapping = _header(cells)
        if "employee_code" not in mapping.values():
            continue
        seen: dict[str, int] = {}
        for i, f in mapping.items():
            if f in seen:
                raise RosterError(f"{path}: columns '{_text(cells[seen[f]])}' and '{_text(cells[i])}' both "
                                  f"look like the {f.replace('_', ' ')} column; rename or remove one")
            seen[f] = i
        if not {"name", "name_hi", "name_en"} & set(mapping.values()):
            raise RosterError(f"{path}: no name column (expected e.g. 'Name', 'Name (Hindi)', 'नाम'; see "
                              "docs/roster.md)")
        ignored = [_text(c) for i, c in enumerate(cells) if i not in mapping and _text(c)]
        return k, mapping, ignored, cells
    raise RosterError(f"{path}: no employee code column found in the first {_HEADER_SEARCH_ROWS} rows (expected "
                      "a header like 'Employee Code', 'Emp Code', 'EmpID' or 'कर्मचारी कोड'; see docs/roster.md)")


def _check_row(n: int, cells: list[Any], mapping: dict[int, str], headers: list[Any], today: date,
               problems: list[Problem]) -> RosterRow | None:
    values: dict[str, Any] = {}
    before = len(problems)
    for i, f in mapping.items():
        raw = cells[i] if i < len(cells) else None
        column = _text(headers[i])
        if f in ("birth_date", "joining_date"):
            if raw is None or _text(raw) == "":
                continue
            try:
                values[f] = parse_date(raw)
            except ValueError as e:
                problems.append(Problem(n, column, f"bad date: {e}"))
            continue
        text = _text(raw)
        if _bad_chars(text):
            problems.append(Problem(n, column, "contains control or invisible characters"))
            continue
        text = " ".join(text.split())
        if f == "name":
            f = "name_hi" if is_devanagari(text) else "name_en"
            if values.get(f):
                continue  # an explicit Hindi/English column wins over the generic one
        if f == "employee_code":
            text = normalise_code(text)
            if text and not _CODE.match(text):
                problems.append(Problem(n, column, "an employee code has only letters, digits and - / . _"))
                continue
        if len(text) > MAX_LEN[f]:
            problems.append(Problem(n, column, f"longer than {MAX_LEN[f]} characters ({len(text)})"))
            continue
        values[f] = text
    code_col = _text(headers[next(i for i, f in mapping.items() if f == "employee_code")])
    if not values.get("employee_code") and not any(p.column == code_col for p in problems[before:]):
        problems.append(Problem(n, code_col, "employee code missing"))
    if not values.get("name_hi") and not values.get("name_en") and len(problems) == before:
        problems.append(Problem(n, "", "no name (neither Hindi nor English)"))
    birth, joined = values.get("birth_date"), values.get("joining_date")
    col = {f: _text(headers[i]) for i, f in mapping.items()}
    if birth is not None:
        if birth.year < OLDEST_BIRTH_YEAR:
            problems.append(Problem(n, col["birth_date"], f"implausible date of birth {birth.isoformat()} (before "
                                                         f"{OLDEST_BIRTH_YEAR})"))
        elif birth > today.replace(year=today.year - MIN_AGE_AT_JOINING):
            problems.append(Problem(n, col["birth_date"], f"implausible date of birth {birth.isoformat()} "
                                                         f"(younger than {MIN_AGE_AT_JOINING})"))
    if joined is not None:
        if joined > today:
            problems.append(Problem(n, col["joining_date"], f"date of joining {joined.isoformat()} is in the future"))
        elif joined.year < OLDEST_BIRTH_YEAR + MIN_AGE_AT_JOINING:
            problems.append(Problem(n, col["joining_date"], f"implausible date of joining {joined.isoformat()}"))
    if birth is not None and joined is not None:
        if joined <= birth:
            problems.append(Problem(n, col["joining_date"], f"date of joining {joined.isoformat()} is not after the "
                                                           f"date of birth {birth.isoformat()}"))
        elif (joined.year - birth.year - ((joined.month, joined.day) < (birth.month, birth.day))) < MIN_AGE_AT_JOINING:
            problems.append(Problem(n, col["joining_date"], f"joined before the age of {MIN_AGE_AT_JOINING} (born "
                                                           f"{birth.isoformat()}, joined {joined.isoformat()})"))
    if len(problems) > before:
        return None
    return RosterRow(n, values["employee_code"], values.get("name_hi", ""), values.get("name_en", ""),
                     values.get("rank", ""), values.get("unit", ""), birth, joined)


def _numbered(rows: Iterable[list[Any]], path: Path) -> Iterator[tuple[int, list[Any]]]:
    for n, cells in enumerate(rows, start=1):
        if n > MAX_ROWS + _HEADER_SEARCH_ROWS:
            raise RosterError(f"{path}: more than {MAX_ROWS} rows; a unit's staff list is smaller - is this the "
                              "right file?")
        yield n, cells


def read_roster(path: Path, *, today: date | None = None, max_bytes: int = MAX_FILE_BYTES) -> RosterFile:
    """The people of a CSV or XLSX staff list; RosterError naming the file and every bad row otherwise."""
    import hashlib

    today = today or date.today()
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise RosterError(f"{path}: {size // 1024} KiB is more than a staff list can be (limit "
                              f"{max_bytes // 1024} KiB)")
        data = path.read_bytes()
    except FileNotFoundError as e:
        raise RosterError(f"{path}: no such file") from e
    except IsADirectoryError as e:
        raise RosterError(f"{path}: a directory, not a roster file") from e
    except OSError as e:
        raise RosterError(f"{path}: cannot be read: {e.strerror or e}") from e
    if not data.strip():
        raise RosterError(f"{path}: the file is empty")
    rows = [(n, cells) for n, cells in _numbered(_raw_rows(path, data), path) if any(_text(c) for c in cells)]
    if not rows:
        raise RosterError(f"{path}: the file has no rows")
    k, mapping, ignored, headers = _columns(path, rows)
    problems: list[Problem] = []
    people: list[RosterRow] = []
    first_row: dict[str, int] = {}
    code_at = next(i for i, f in mapping.items() if f == "employee_code")
    code_col = _text(headers[code_at])
    for n, cells in rows[k + 1:]:
        code = normalise_code(_text(cells[code_at])) if code_at < len(cells) else ""
        if code and code in first_row:  # checked on the raw code: a bad first row still makes this one a repeat
            problems.append(Problem(n, code_col, f"duplicate employee code {code} (also in row {first_row[code]})"))
            continue
        if code:
            first_row[code] = n
        person = _check_row(n, cells, mapping, headers, today, problems)
        if person is not None:
            people.append(person)
    if problems:
        lines = "\n".join(f"  {p}" for p in problems)
        raise RosterError(f"{path}: {len(problems)} problem(s) in {len({p.row for p in problems})} row(s); nothing "
                          f"was imported:\n{lines}")
    if not people:
        raise RosterError(f"{path}: a header but no people; an empty roster would mark everyone as gone")
    columns = {f: _text(headers[i]) for i, f in mapping.items()}
    return RosterFile(path, hashlib.sha256(data).hexdigest(), people, columns, ignored)

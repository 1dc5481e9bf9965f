"""Deterministic generator of realistic bilingual (Hindi/English) ACR form pages for tests, demos and benches."""

from __future__ import annotations

import math
import random
import unicodedata
from dataclasses import dataclass, fields, replace
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFont, features

from scanstation.errors import ExternalToolError
from scanstation.script_runs import is_devanagari, script_runs

Mode = Literal["L", "1", "RGB"]
# What a non-blank page carries: the form; a printed instructions sheet in one script only ("hindi",
# "english": for script-specific tests); or one isolated mark (to test blank detection).
Content = Literal["form", "hindi", "english", "signature", "line", "stamp"]
_CONTENTS = ("form", "hindi", "english", "signature", "line", "stamp")

A4_MM = (210.0, 297.0)
FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".fonts")
_FONT_PACKAGES = "fonts-noto-core, fonts-lohit-deva and fonts-dejavu-core"

# Ink colours (RGB).  Grayscale output uses their luma, so blue ballpoint ends up mid-dark and a
# violet rubber stamp lighter than print, as on a real grayscale scan.
_PRINT_RGB = (24, 24, 28)
_PEN_RGBS = ((28, 48, 150), (20, 30, 95), (45, 45, 52))
_STAMP_RGBS = ((112, 58, 168), (60, 70, 170))
_PAPER_RGB = (250, 248, 241)
_BW_THRESHOLD = 140  # a scanner's fixed B/W threshold: keeps pen and stamps, drops faint bleed-through


# --------------------------------------------------------------------------------------------------
# Public data model
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticEmployee:
    """Fake particulars of one member of the police staff (all strings NFC)."""

    employee_code: str
    name: str
    name_hi: str
    father_name: str
    father_name_hi: str
    rank: str
    rank_hi: str
    unit: str
    unit_hi: str
    district: str
    district_hi: str
    posting: str
    posting_hi: str
    date_of_birth: date
    date_of_joining: date
    acr_period: str  # financial year, e.g. "2019-20"
    period_start: date
    period_end: date
    leave_days: int

    @property
    def period_text(self) -> str:
        """The period as printed on the form, e.g. "01-04-2019 to 31-03-2020"."""
        return f"{_dmy(self.period_start)} to {_dmy(self.period_end)}"


@dataclass(frozen=True)
class PageSpec:
    """How to render one scanned page; every distortion is explicit so a test can name its case."""

    seed: int
    page_no: int = 1
    dpi: int = 300
    skew_deg: float = 0.0  # content rotated counter-clockwise by this angle (Pillow convention)
    rotation: int = 0  # 0/90/180/270: counter-clockwise quarter turn applied after everything else
    noise: float = 0.0  # 0..1 strength of scanner noise
    dark_border: bool = False
    blank: bool = False  # a blank back: paper, faint noise, optional bleed-through, no content
    bleed_through: bool = False
    mode: Mode = "L"
    content: Content = "form"

    def __post_init__(self) -> None:
        if self.page_no < 1:
            raise ValueError(f"page_no must be >= 1, got {self.page_no}")
        if not 30 <= self.dpi <= 1200:
            raise ValueError(f"dpi must be within 30..1200, got {self.dpi}")
        if not -45.0 < self.skew_deg < 45.0:
            raise ValueError(f"skew_deg must be within (-45, 45), got {self.skew_deg}")
        if self.rotation not in (0, 90, 180, 270):
            raise ValueError(f"rotation must be 0, 90, 180 or 270, got {self.rotation}")
        if not 0.0 <= self.noise <= 1.0:
            raise ValueError(f"noise must be within 0..1, got {self.noise}")
        if self.mode not in ("L", "1", "RGB"):
            raise ValueError(f"mode must be 'L', '1' or 'RGB', got {self.mode!r}")
        if self.content not in _CONTENTS:
            raise ValueError(f"unknown content {self.content!r}")


@dataclass
class SyntheticPage:
    """A rendered page with its ground truth.

    ``text`` is the printed text (NFC), one line per printed line in reading order; cells of one table
    row and items sharing a baseline are joined by one space.  Handwriting, signatures and rubber
    stamps are not part of it (OCR of the printed parts is what the station indexes).
    """

    image: Image.Image
    text: str
    fields: dict[str, str]
    spec: PageSpec
    skew_deg: float
    rotation: int
    employee: SyntheticEmployee | None = None


# --------------------------------------------------------------------------------------------------
# Fonts
# --------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _font_index() -> dict[str, Path]:
    """File name -> path of every font under the usual directories (first hit wins)."""
    index: dict[str, Path] = {}
    for root in FONT_DIRS:
        if root.is_dir():
            for p in sorted(root.rglob("*")):
                if p.suffix.lower() in (".ttf", ".otf") and p.name not in index:
                    index[p.name] = p
    return index


def find_font(file_name: str) -> Path:
    """Path of an installed font file; raises ExternalToolError naming the Debian packages if missing."""
    path = _font_index().get(file_name)
    if path is None:
        raise ExternalToolError(
            f"font {file_name} not found under {', '.join(str(d) for d in FONT_DIRS)}; install {_FONT_PACKAGES}"
        )
    return path


@lru_cache(maxsize=512)
def _font(file_name: str, size_px: int) -> ImageFont.FreeTypeFont:
    # Without Raqm, Pillow lays out Devanagari without reordering matras or forming conjuncts, which
    # would silently produce garbage pages; refuse instead.
    if not features.check("raqm"):
        raise ExternalToolError("Pillow was built without libraqm; Devanagari cannot be shaped (install libraqm)")
    return ImageFont.truetype(str(find_font(file_name)), max(1, size_px), layout_engine=ImageFont.Layout.RAQM)


@dataclass(frozen=True)
class _Typeface:
    deva: str
    deva_bold: str
    latin: str
    latin_bold: str


# A file's pages share one typeface set, as a printed form does.
_TYPEFACES = (
    _Typeface("NotoSansDevanagari-Regular.ttf", "NotoSansDevanagari-Bold.ttf", "DejaVuSans.ttf", "DejaVuSans-Bold.ttf"),
    _Typeface(
        "NotoSerifDevanagari-Regular.ttf", "NotoSerifDevanagari-Bold.ttf", "NotoSerif-Regular.ttf", "NotoSerif-Bold.ttf"
    ),
    _Typeface("Lohit-Devanagari.ttf", "NotoSansDevanagari-Bold.ttf", "NotoSans-Regular.ttf", "NotoSans-Bold.ttf"),
)
_HAND_LATIN = ("DejaVuSans-Oblique.ttf", "NotoSans-Italic.ttf", "NotoSerif-Italic.ttf", "DejaVuSerif-Italic.ttf")
_HAND_DEVA = ("Lohit-Devanagari.ttf", "NotoSansDevanagari-Regular.ttf")


def _nfc(s: str) -> str:
    return unicodedata.normalize("NFC", s)


def _dmy(d: date) -> str:
    return f"{d.day:02d}-{d.month:02d}-{d.year}"


# --------------------------------------------------------------------------------------------------
# Fake employees
# --------------------------------------------------------------------------------------------------

_FIRST_M = (
    ("Ramesh", "रमेश"),
    ("Suresh", "सुरेश"),
    ("Mahesh", "महेश"),
    ("Rajesh", "राजेश"),
    ("Anil", "अनिल"),
    ("Sunil", "सुनील"),
    ("Vijay", "विजय"),
    ("Sanjay", "संजय"),
    ("Manoj", "मनोज"),
    ("Pradeep", "प्रदीप"),
    ("Sandeep", "संदीप"),
    ("Rakesh", "राकेश"),
    ("Dinesh", "दिनेश"),
    ("Ashok", "अशोक"),
    ("Arvind", "अरविन्द"),
    ("Santosh", "संतोष"),
    ("Deepak", "दीपक"),
    ("Pankaj", "पंकज"),
    ("Vikas", "विकास"),
    ("Gaurav", "गौरव"),
    ("Satyendra", "सत्येन्द्र"),
    ("Jitendra", "जितेन्द्र"),
    ("Dharmendra", "धर्मेन्द्र"),
    ("Krishna", "कृष्ण"),
    ("Shailendra", "शैलेन्द्र"),
    ("Mohammad Arif", "मोहम्मद आरिफ"),
    ("Harpreet", "हरप्रीत"),
)
_FIRST_F = (
    ("Sunita", "सुनीता"),
    ("Anita", "अनीता"),
    ("Kavita", "कविता"),
    ("Pooja", "पूजा"),
    ("Priyanka", "प्रियंका"),
    ("Neha", "नेहा"),
    ("Rekha", "रेखा"),
    ("Meena", "मीना"),
    ("Shraddha", "श्रद्धा"),
    ("Jyoti", "ज्योति"),
)
_MIDDLE = (("Kumar", "कुमार"), ("Prasad", "प्रसाद"), ("Chandra", "चन्द्र"), ("Pratap", "प्रताप"), ("Nath", "नाथ"))
_SURNAMES = (
    ("Yadav", "यादव"),
    ("Sharma", "शर्मा"),
    ("Verma", "वर्मा"),
    ("Mishra", "मिश्र"),
    ("Tiwari", "तिवारी"),
    ("Pandey", "पाण्डेय"),
    ("Gupta", "गुप्ता"),
    ("Chauhan", "चौहान"),
    ("Maurya", "मौर्य"),
    ("Srivastava", "श्रीवास्तव"),
    ("Tripathi", "त्रिपाठी"),
    ("Dwivedi", "द्विवेदी"),
    ("Rathore", "राठौर"),
    ("Kushwaha", "कुशवाहा"),
    ("Prajapati", "प्रजापति"),
    ("Khan", "ख़ान"),
    ("Ansari", "अंसारी"),
    ("Saxena", "सक्सेना"),
    ("Agarwal", "अग्रवाल"),
    ("Bhardwaj", "भारद्वाज"),
    ("Singh", "सिंह"),
)
# (English, Hindi, relative frequency): constables far outnumber officers.
_RANKS = (
    ("Constable", "आरक्षी", 50),
    ("Head Constable", "मुख्य आरक्षी", 22),
    ("Sub-Inspector", "उप निरीक्षक", 16),
    ("Inspector", "निरीक्षक", 8),
    ("Deputy SP", "पुलिस उपाधीक्षक", 4),
)
# A fictitious state's districts (code, English, Hindi).
_DISTRICTS = (
    (11, "Suryanagar", "सूर्यनगर"),
    (12, "Vindhyapur", "विन्ध्यपुर"),
    (14, "Chandanpur", "चन्दनपुर"),
    (17, "Shivnagar", "शिवनगर"),
    (21, "Devgarh", "देवगढ़"),
    (23, "Ratnapur", "रत्नपुर"),
    (26, "Kusumganj", "कुसुमगंज"),
    (31, "Madhavpur", "माधवपुर"),
)
_UNIT_KINDS = (
    ("District Police {d}", "जनपद पुलिस {d}"),
    ("Reserve Police Lines {d}", "रिज़र्व पुलिस लाइन्स {d}"),
    ("Police Training School {d}", "पुलिस प्रशिक्षण विद्यालय {d}"),
    ("{n}th Bn PAC {d}", "{n}वीं वाहिनी पीएसी {d}"),
)
_THANAS = (
    ("Kotwali", "कोतवाली"),
    ("Civil Lines", "सिविल लाइन्स"),
    ("Sadar Bazar", "सदर बाजार"),
    ("Kamalganj", "कमलगंज"),
    ("Rampura", "रामपुरा"),
    ("Naya Ganj", "नया गंज"),
    ("Police Lines", "पुलिस लाइन्स"),
)


def synthetic_employee(seed: int) -> SyntheticEmployee:
    """The fake employee whose ACR file ``seed`` renders (same seed, same person)."""
    rng = random.Random(f"acr-employee:{seed}")
    female = rng.random() < 0.2
    first = rng.choice(_FIRST_F if female else _FIRST_M)
    surname = rng.choice(_SURNAMES)
    parts = [first]
    if not female and rng.random() < 0.5:
        parts.append(rng.choice(_MIDDLE))
    parts.append(surname)
    f_first = rng.choice(_FIRST_M)
    f_parts = [f_first, rng.choice(_MIDDLE), surname] if rng.random() < 0.5 else [f_first, surname]
    rank, rank_hi, _w = rng.choices(_RANKS, weights=[r[2] for r in _RANKS])[0]
    d_code, district, district_hi = rng.choice(_DISTRICTS)
    kind_en, kind_hi = rng.choice(_UNIT_KINDS)
    bn = rng.choice((3, 5, 7, 9, 11, 15, 27))
    thana, thana_hi = rng.choice(_THANAS)
    fy = rng.randint(2008, 2023)
    born = date(fy - rng.randint(24, 57), rng.randint(1, 12), rng.randint(1, 28))
    joined = date(born.year + rng.randint(19, 24), rng.randint(1, 12), rng.randint(1, 28))
    if joined.year > fy - 1:
        joined = date(fy - 1, joined.month, joined.day)
    return SyntheticEmployee(
        employee_code=f"MC-{d_code:02d}-{rng.randint(1, 999_999):06d}",
        name=" ".join(p[0] for p in parts),
        name_hi=_nfc(" ".join(p[1] for p in parts)),
        father_name=" ".join(p[0] for p in f_parts),
        father_name_hi=_nfc(" ".join(p[1] for p in f_parts)),
        rank=rank,
        rank_hi=_nfc(rank_hi),
        unit=kind_en.format(d=district, n=bn),
        unit_hi=_nfc(kind_hi.format(d=district_hi, n=bn)),
        district=district,
        district_hi=_nfc(district_hi),
        posting=f"Thana {thana}, {district}",
        posting_hi=_nfc(f"थाना {thana_hi}, {district_hi}"),
        date_of_birth=born,
        date_of_joining=joined,
        acr_period=f"{fy}-{(fy + 1) % 100:02d}",
        period_start=date(fy, 4, 1),
        period_end=date(fy + 1, 3, 31),
        leave_days=rng.randint(0, 45),
    )


def _fields(emp: SyntheticEmployee) -> dict[str, str]:
    return {
        "employee_code": emp.employee_code,
        "name": emp.name,
        "name_hi": emp.name_hi,
        "rank": emp.rank,
        "rank_hi": emp.rank_hi,
        "acr_period": emp.acr_period,
        "unit": emp.unit,
        "unit_hi": emp.unit_hi,
        "date_of_birth": _dmy(emp.date_of_birth),
        "period": emp.period_text,
    }


# --------------------------------------------------------------------------------------------------
# Drawing surface
# --------------------------------------------------------------------------------------------------


class _Sheet:
    """An A4 sheet as three coverage masks (print, pen, stamp) plus the printed-line ground truth."""

    def __init__(self, dpi: int, typeface: _Typeface) -> None:
        self.dpi = dpi
        self.tf = typeface
        self.w, self.h = self.px(A4_MM[0]), self.px(A4_MM[1])
        self.print_mask = Image.new("L", (self.w, self.h), 0)
        self.pen_mask = Image.new("L", (self.w, self.h), 0)
        self.stamp_mask = Image.new("L", (self.w, self.h), 0)
        self.draw = ImageDraw.Draw(self.print_mask)
        self.pen = ImageDraw.Draw(self.pen_mask)
        self._segments: list[tuple[float, float, str]] = []

    def px(self, mm: float) -> int:
        return round(mm * self.dpi / 25.4)

    def pt(self, points: float) -> int:
        return max(1, round(points * self.dpi / 72.0))

    def _fonts(self, size_pt: float, bold: bool) -> tuple[ImageFont.FreeTypeFont, ImageFont.FreeTypeFont]:
        # Devanagari glyphs look smaller than Latin ones at the same em size; scale up a little.
        deva = _font(self.tf.deva_bold if bold else self.tf.deva, self.pt(size_pt * 1.08))
        latin = _font(self.tf.latin_bold if bold else self.tf.latin, self.pt(size_pt))
        return deva, latin

    def text_width(self, text: str, size_pt: float, bold: bool = False) -> float:
        deva, latin = self._fonts(size_pt, bold)
        return sum((deva if d else latin).getlength(run) for run, d in script_runs(_nfc(text)))

    def text(
        self, x_mm: float, y_mm: float, text: str, size_pt: float = 10, bold: bool = False, align: str = "left"
    ) -> None:
        """Print ``text`` with its baseline at ``y_mm``; recorded as ground truth."""
        text = _nfc(text)
        deva, latin = self._fonts(size_pt, bold)
        width = self.text_width(text, size_pt, bold)
        x = float(self.px(x_mm))
        if align == "center":
            x -= width / 2
        elif align == "right":
            x -= width
        y = self.px(y_mm)
        self._segments.append((round(y_mm, 3), x, text))
        for run, d in script_runs(text):
            font = deva if d else latin
            if run.strip():
                self.draw.text((x, y), run, font=font, fill=255, anchor="ls")
            x += font.getlength(run)

    def rule(self, x0: float, y0: float, x1: float, y1: float, width_mm: float = 0.3) -> None:
        w = max(1, self.px(width_mm))
        self.draw.line([(self.px(x0), self.px(y0)), (self.px(x1), self.px(y1))], fill=255, width=w)

    def box(self, x0: float, y0: float, x1: float, y1: float, width_mm: float = 0.3) -> None:
        w = max(1, self.px(width_mm))
        self.draw.rectangle([self.px(x0), self.px(y0), self.px(x1), self.px(y1)], outline=255, width=w)

    def printed_text(self) -> str:
        by_line: dict[float, list[tuple[float, str]]] = {}
        for y, x, t in self._segments:
            by_line.setdefault(y, []).append((x, t))
        return "\n".join(" ".join(t for _x, t in sorted(by_line[y])) for y in sorted(by_line))

    def ink_bbox(self) -> tuple[int, int, int, int] | None:
        boxes = [b for m in (self.print_mask, self.pen_mask, self.stamp_mask) if (b := m.getbbox()) is not None]
        if not boxes:
            return None
        return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


# --------------------------------------------------------------------------------------------------
# Handwriting, signatures, stamps
# --------------------------------------------------------------------------------------------------


def _catmull_rom(points: np.ndarray, per_segment: int = 12) -> np.ndarray:
    """Smooth curve through ``points`` (N x 2); keeps the ends."""
    p = np.vstack([points[0], points, points[-1]])
    t = np.linspace(0.0, 1.0, per_segment, endpoint=False)[:, None]
    out = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        out.append(
            0.5
            * (2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3)
        )
    out.append(points[-1:])
    return np.vstack(out)


def _smooth_field(rng: np.random.Generator, h: int, w: int, cells: int, amp: float) -> np.ndarray:
    """A smooth random displacement field (float32, h x w) with roughly ``cells`` bumps across."""
    gh, gw = max(2, round(cells * h / max(w, 1))), max(2, cells)
    coarse = rng.normal(0.0, amp, size=(gh, gw)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


def _hand_word(
    word: str, font: ImageFont.FreeTypeFont, slant: float, nrng: np.random.Generator
) -> tuple[np.ndarray, int, int, int]:
    """Render one word as pen coverage with slant and wobble; returns (mask, baseline row, ink columns)."""
    x0, y0, x1, y1 = font.getbbox(word, anchor="ls")
    size = int(font.size)
    pad = max(2, size // 4)
    h = int(y1 - y0) + 2 * pad
    w = int(x1 - x0) + 2 * pad + int(abs(slant) * h) + 2
    img = Image.new("L", (w, h), 0)
    base = pad - int(y0)
    ImageDraw.Draw(img).text((pad - x0, base), word, font=font, fill=255, anchor="ls")
    arr = np.asarray(img)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    # Slant: upper rows sample further left, so strokes lean right like cursive writing; the bottom
    # row is unshifted so nothing leaves the canvas.
    wobble = max(0.6, size * 0.035)
    map_x = xs + slant * (ys - h) + _smooth_field(nrng, h, w, max(2, w // max(size, 1) * 2), wobble)
    map_y = ys + _smooth_field(nrng, h, w, max(2, w // max(size, 1)), wobble)
    out = cv2.remap(arr, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderValue=0)
    cols = np.flatnonzero(out.max(axis=0) > 64)
    left, right = (int(cols[0]), int(cols[-1]) + 1) if cols.size else (0, 0)
    return out, base, left, right


def _handwrite(
    sheet: _Sheet,
    rng: random.Random,
    nrng: np.random.Generator,
    x_mm: float,
    y_mm: float,
    text: str,
    max_width_mm: float,
    size_pt: float = 13,
    line_gap_mm: float = 9.0,
    max_lines: int = 4,
) -> None:
    """Write ``text`` by "hand" on the pen layer: per-word slant/wobble, drifting baseline, wrapping."""
    text = _nfc(text)
    deva = any(is_devanagari(c) for c in text)
    font = _font(rng.choice(_HAND_DEVA if deva else _HAND_LATIN), sheet.pt(size_pt * rng.uniform(0.9, 1.15)))
    slant = rng.uniform(0.12, 0.32) if not deva else rng.uniform(0.0, 0.18)
    x_start, x_limit = sheet.px(x_mm), sheet.px(x_mm + max_width_mm)
    x, base, line = float(x_start), float(sheet.px(y_mm)), 0
    drift = rng.uniform(-0.02, 0.02)  # baseline slope of the whole line: people rarely write level
    space = font.size * rng.uniform(0.3, 0.5)
    for word in text.split():
        mask, wb, left, right = _hand_word(word, font, slant, nrng)
        if x + right - left > x_limit and x > x_start:
            line += 1
            if line >= max_lines:
                return
            x, base = float(x_start + sheet.px(rng.uniform(-1.5, 1.5))), float(sheet.px(y_mm + line * line_gap_mm))
        y_top = round(base + drift * (x - x_start) + sheet.px(rng.uniform(-0.6, 0.6))) - wb
        _paste_max(sheet.pen_mask, mask, round(x) - left, y_top)
        x += right - left + space * rng.uniform(0.7, 1.4)


def _paste_max(target: Image.Image, mask: np.ndarray, x: int, y: int) -> None:
    """Union of coverage (max), clipped to the target."""
    h, w = mask.shape
    x0, y0, x1, y1 = max(0, x), max(0, y), min(target.width, x + w), min(target.height, y + h)
    if x1 <= x0 or y1 <= y0:
        return
    src = Image.fromarray(np.ascontiguousarray(mask[y0 - y : y1 - y, x0 - x : x1 - x]))
    region = target.crop((x0, y0, x1, y1))
    target.paste(ImageChops.lighter(region, src), (x0, y0))


def _signature(sheet: _Sheet, rng: random.Random, x_mm: float, y_mm: float, w_mm: float, h_mm: float) -> None:
    """A cursive-looking scribble: a trochoid (loops) with random amplitude, plus a flourish."""
    n = 220
    t = np.linspace(0.0, 1.0, n)
    loops = rng.randint(4, 9)
    amp_pts = np.array([rng.uniform(0.25, 1.0) for _ in range(6)])
    amp = np.interp(t, np.linspace(0, 1, 6), amp_pts)
    r = h_mm * 0.35 * amp
    phase = rng.uniform(0, math.tau)
    x = x_mm + w_mm * 0.8 * t - r * 0.8 * np.sin(loops * math.tau * t + phase)
    y = y_mm + h_mm * 0.5 + r * np.cos(loops * math.tau * t + phase) + rng.uniform(-0.15, 0.15) * h_mm * t
    pts = [(sheet.px(a), sheet.px(b)) for a, b in zip(x, y, strict=True)]
    width = max(1, sheet.px(rng.uniform(0.3, 0.5)))
    sheet.pen.line(pts, fill=255, width=width, joint="curve")
    # An initial capital-like stroke and an underline flourish.
    cap = np.array(
        [
            (x_mm + rng.uniform(-2, 2), y_mm + h_mm * rng.uniform(0.7, 1.0)),
            (x_mm + rng.uniform(1, 5), y_mm + rng.uniform(-1, 1)),
            (x_mm + rng.uniform(4, 9), y_mm + h_mm * rng.uniform(0.5, 0.9)),
        ]
    )
    flourish = np.array(
        [
            (x_mm + w_mm * rng.uniform(0.0, 0.2), y_mm + h_mm * rng.uniform(1.0, 1.2)),
            (x_mm + w_mm * rng.uniform(0.4, 0.6), y_mm + h_mm * rng.uniform(0.95, 1.25)),
            (x_mm + w_mm * rng.uniform(0.9, 1.05), y_mm + h_mm * rng.uniform(0.8, 1.1)),
        ]
    )
    for stroke in (cap, flourish):
        curve = _catmull_rom(stroke)
        sheet.pen.line([(sheet.px(a), sheet.px(b)) for a, b in curve], fill=255, width=width, joint="curve")


def _tick(sheet: _Sheet, rng: random.Random, cx_mm: float, cy_mm: float, size_mm: float = 4.0) -> None:
    pts = np.array(
        [
            (cx_mm - size_mm * 0.5, cy_mm - size_mm * rng.uniform(0.0, 0.2)),
            (cx_mm - size_mm * 0.1, cy_mm + size_mm * rng.uniform(0.35, 0.5)),
            (cx_mm + size_mm * rng.uniform(0.5, 0.8), cy_mm - size_mm * rng.uniform(0.6, 0.9)),
        ]
    )
    curve = _catmull_rom(pts, per_segment=6)
    sheet.pen.line([(sheet.px(a), sheet.px(b)) for a, b in curve], fill=255, width=max(1, sheet.px(0.4)), joint="curve")


def _stamp(
    sheet: _Sheet,
    rng: random.Random,
    nrng: np.random.Generator,
    cx_mm: float,
    cy_mm: float,
    lines: tuple[str, ...],
    diameter_mm: float = 26.0,
) -> None:
    """A round rubber stamp: two rings and short text, rotated and unevenly inked."""
    d = sheet.px(diameter_mm)
    size = d + 4
    img = Image.new("L", (size, size), 0)
    dr = ImageDraw.Draw(img)
    lw = max(1, sheet.px(0.5))
    dr.ellipse([2, 2, 2 + d, 2 + d], outline=255, width=lw)
    inset = round(d * 0.12)
    dr.ellipse([2 + inset, 2 + inset, 2 + d - inset, 2 + d - inset], outline=255, width=max(1, lw // 2))
    deva = _font(sheet.tf.deva_bold, sheet.pt(diameter_mm * 0.30))
    n = len(lines)
    for i, ln in enumerate(lines):
        y = size / 2 + (i - (n - 1) / 2) * sheet.pt(diameter_mm * 0.36)
        dr.text((size / 2, y), _nfc(ln), font=deva, fill=255, anchor="mm")
    img = img.rotate(rng.uniform(-30, 30), resample=Image.Resampling.BILINEAR)
    arr = np.asarray(img).astype(np.float32)
    # Uneven inking: real stamps print lighter on one side and break up.
    fade = np.clip(_smooth_field(nrng, size, size, 4, 0.25) + rng.uniform(0.65, 0.9), 0.25, 1.0)
    arr = (arr * fade).astype(np.uint8)
    _paste_max(sheet.stamp_mask, arr, sheet.px(cx_mm) - size // 2, sheet.px(cy_mm) - size // 2)


# --------------------------------------------------------------------------------------------------
# Form content
# --------------------------------------------------------------------------------------------------

_STATE_HI = "मध्यांचल प्रदेश पुलिस"
_STATE_EN = "MADHYANCHAL PRADESH POLICE"
_ATTRIBUTES = (
    "सत्यनिष्ठा / Integrity",
    "अनुशासन / Discipline",
    "कार्य का ज्ञान / Knowledge of work",
    "जनता के प्रति व्यवहार / Behaviour with public",
    "अपराध नियंत्रण / Crime control",
    "शारीरिक स्वास्थ्य / Physical fitness",
    "आज्ञापालन / Obedience",
    "नेतृत्व क्षमता / Leadership",
    "समय की पाबंदी / Punctuality",
    "कानून का ज्ञान / Knowledge of law",
)
_GRADES = ("उत्कृष्ट", "अति उत्तम", "उत्तम", "संतोषजनक", "खराब")
_REMARKS_EN = (
    "Hardworking and disciplined.",
    "Integrity is beyond doubt.",
    "Good knowledge of law and procedure.",
    "Behaviour with the public is courteous.",
    "Needs improvement in case diary work.",
    "Performed bandobast duties well.",
    "Punctual and obedient.",
)
_REMARKS_HI = (
    "कार्य एवं आचरण अच्छा है।",
    "सत्यनिष्ठा संदेह से परे है।",
    "अनुशासित एवं कर्तव्यनिष्ठ कर्मचारी।",
    "जनता के साथ व्यवहार विनम्र है।",
    "विवेचना कार्य में सुधार अपेक्षित।",
    "बन्दोबस्त ड्यूटी में अच्छा कार्य किया।",
)


def _remark(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return " ".join(rng.sample(_REMARKS_HI, rng.randint(2, 3)))
    return " ".join(rng.sample(_REMARKS_EN, rng.randint(2, 3)))


def _footer(s: _Sheet, page_no: int) -> None:
    s.text(105, 286, f"पृष्ठ {page_no} / Page {page_no}", 9, align="center")


def _header_small(s: _Sheet, emp: SyntheticEmployee) -> None:
    s.text(15, 14, f"कर्मचारी संख्या / Employee Code: {emp.employee_code}", 9)
    s.text(195, 14, f"वर्ष / Year: {emp.acr_period}", 9, align="right")
    s.text(15, 20, f"नाम / Name: {emp.name}", 9)
    s.text(195, 20, "गोपनीय / CONFIDENTIAL", 9, bold=True, align="right")
    s.rule(15, 23, 195, 23, 0.4)


def _page_particulars(s: _Sheet, emp: SyntheticEmployee, rng: random.Random, nrng: np.random.Generator) -> None:
    s.text(15, 14, "प्रपत्र-1 / Form No. 1", 9)
    s.text(195, 14, "गोपनीय / CONFIDENTIAL", 10, bold=True, align="right")
    s.text(105, 27, _STATE_HI, 17, bold=True, align="center")
    s.text(105, 35, _STATE_EN, 14, bold=True, align="center")
    s.text(105, 45, "वार्षिक गोपनीय प्रविष्टि / ANNUAL CONFIDENTIAL REPORT", 13, bold=True, align="center")
    s.text(105, 53, f"वर्ष / Year: {emp.acr_period}", 11, align="center")
    s.rule(15, 57, 195, 57, 0.5)
    s.text(15, 65, "भाग-1 : व्यक्तिगत विवरण / PART-I : PERSONAL PARTICULARS", 11, bold=True)
    rows = [
        ("क्रम / No.", "विवरण / Particulars", "प्रविष्टि / Entry"),
        ("1.", "कर्मचारी संख्या / Employee Code", emp.employee_code),
        ("2.", "नाम / Name", emp.name),
        ("3.", "नाम (हिन्दी में) / Name in Hindi", emp.name_hi),
        ("4.", "पिता का नाम / Father's Name", emp.father_name),
        ("5.", "पद / Rank", f"{emp.rank} / {emp.rank_hi}"),
        ("6.", "जन्म तिथि / Date of Birth", _dmy(emp.date_of_birth)),
        ("7.", "भर्ती तिथि / Date of Joining", _dmy(emp.date_of_joining)),
        ("8.", "इकाई / Unit", emp.unit),
        ("9.", "तैनाती / Posting", emp.posting),
        ("10.", "अवधि / Period of report", emp.period_text),
        ("11.", "अवकाश / Leave availed", f"{emp.leave_days} दिन / {emp.leave_days} days"),
    ]
    cols = (15.0, 32.0, 100.0, 195.0)
    top, row_h = 70.0, 10.5
    for i, row in enumerate(rows):
        y0 = top + i * row_h
        s.rule(cols[0], y0, cols[-1], y0)
        for c, cell in enumerate(row):
            s.text(cols[c] + 2, y0 + 7.0, cell, 10, bold=(i == 0))
    bottom = top + len(rows) * row_h
    s.rule(cols[0], bottom, cols[-1], bottom)
    for x in cols:
        s.rule(x, top, x, bottom)
    y = bottom + 12
    s.text(15, y, "भाग-2 : स्व-मूल्यांकन / PART-II : SELF APPRAISAL", 11, bold=True)
    s.text(15, y + 6, "(प्रतिवेदित कर्मचारी द्वारा भरा जाए / To be filled in by the officer reported upon)", 9)
    s.box(15, y + 9, 195, y + 52)
    _handwrite(s, rng, nrng, 19, y + 18, _remark(rng), 170, max_lines=4)
    y += 64
    signed = emp.period_end + timedelta(days=rng.randint(5, 40))
    s.text(15, y, f"स्थान / Place: {emp.district}", 10)
    s.text(195, y, "हस्ताक्षर / Signature", 10, align="right")
    _signature(s, rng, 150, y - 13, 42, 9)
    s.text(15, y + 7, f"दिनांक / Date: {_dmy(signed)}", 10)
    s.text(195, y + 7, f"{emp.rank} / {emp.rank_hi}", 10, align="right")


def _page_assessment(s: _Sheet, emp: SyntheticEmployee, rng: random.Random, nrng: np.random.Generator) -> None:
    _header_small(s, emp)
    s.text(105, 32, "भाग-3 : प्रतिवेदक अधिकारी द्वारा मूल्यांकन", 12, bold=True, align="center")
    s.text(105, 38, "PART-III : ASSESSMENT BY THE REPORTING OFFICER", 11, bold=True, align="center")
    cols = [15.0, 25.0, 105.0] + [105.0 + 18.0 * (i + 1) for i in range(len(_GRADES))]
    top, row_h = 44.0, 10.0
    attributes = _ATTRIBUTES[: rng.randint(7, len(_ATTRIBUTES))]
    s.text(cols[0] + 1.5, top + 6.5, "क्रम", 9, bold=True)
    s.text(cols[1] + 2, top + 6.5, "गुण / Attribute", 9, bold=True)
    for g, grade in enumerate(_GRADES):
        s.text((cols[3 + g - 1] + cols[3 + g]) / 2, top + 6.5, grade, 8, bold=True, align="center")
    for i, attr in enumerate(attributes, start=1):
        y0 = top + i * row_h
        s.text(cols[0] + 2, y0 + 6.5, f"{i}.", 10)
        s.text(cols[1] + 2, y0 + 6.5, attr, 10)
        g = min(len(_GRADES) - 1, max(0, round(rng.gauss(1.3, 0.9))))
        _tick(s, rng, (cols[2 + g] + cols[3 + g]) / 2, y0 + row_h / 2)
    bottom = top + (len(attributes) + 1) * row_h
    for i in range(len(attributes) + 2):
        s.rule(cols[0], top + i * row_h, cols[-1], top + i * row_h)
    for x in cols:
        s.rule(x, top, x, bottom)
    y = bottom + 6
    s.text(15, y, "उत्कृष्ट = Outstanding, अति उत्तम = Very Good, उत्तम = Good,", 8)
    s.text(15, y + 4.5, "संतोषजनक = Satisfactory, खराब = Poor", 8)
    y += 14
    s.text(15, y, "प्रतिवेदक अधिकारी की टिप्पणी / Remarks of the Reporting Officer", 11, bold=True)
    s.box(15, y + 3, 195, y + 43)
    _handwrite(s, rng, nrng, 19, y + 12, _remark(rng), 170, max_lines=4)
    y += 53
    s.text(15, y, "समग्र श्रेणी / Overall Grading:", 10)
    _handwrite(s, rng, nrng, 75, y, rng.choice(("Very Good", "Good", "उत्तम", "अति उत्तम", "Outstanding")), 60)
    y += 9
    s.text(15, y, "सत्यनिष्ठा प्रमाणित / Integrity certified:", 10)
    _handwrite(s, rng, nrng, 90, y, rng.choice(("हाँ", "Yes", "Certified")), 40)
    y += 32
    _signature(s, rng, 145, y - 14, 42, 9)
    _stamp(s, rng, nrng, 112, y - 16, ("कार्यालय", emp.district_hi), 24)
    s.text(195, y, "प्रतिवेदक अधिकारी के हस्ताक्षर / Signature of Reporting Officer", 9, align="right")
    signed = emp.period_end + timedelta(days=rng.randint(20, 70))
    s.text(15, y, f"दिनांक / Date: {_dmy(signed)}", 10)


def _page_review(s: _Sheet, emp: SyntheticEmployee, rng: random.Random, nrng: np.random.Generator) -> None:
    _header_small(s, emp)
    s.text(105, 32, "भाग-4 : समीक्षक अधिकारी की टिप्पणी", 12, bold=True, align="center")
    s.text(105, 38, "PART-IV : REMARKS OF THE REVIEWING OFFICER", 11, bold=True, align="center")
    s.text(15, 48, "1. क्या आप प्रतिवेदक अधिकारी के मूल्यांकन से सहमत हैं?", 10)
    s.text(15, 54, "Do you agree with the assessment of the Reporting Officer?", 10)
    _handwrite(s, rng, nrng, 140, 54, rng.choice(("हाँ", "Yes", "सहमत")), 50)
    s.text(15, 63, "2. टिप्पणी / Remarks", 10)
    s.box(15, 66, 195, 106)
    _handwrite(s, rng, nrng, 19, 75, _remark(rng), 170, max_lines=4)
    _signature(s, rng, 145, 110, 42, 9)
    _stamp(s, rng, nrng, 118, 114, ("पुलिस अधीक्षक", emp.district_hi), 26)
    s.text(195, 128, "समीक्षक अधिकारी के हस्ताक्षर / Signature of Reviewing Officer", 9, align="right")
    s.text(15, 128, f"दिनांक / Date: {_dmy(emp.period_end + timedelta(days=rng.randint(40, 90)))}", 10)
    s.rule(15, 136, 195, 136, 0.4)
    s.text(105, 146, "भाग-5 : स्वीकर्ता अधिकारी", 12, bold=True, align="center")
    s.text(105, 152, "PART-V : ACCEPTING AUTHORITY", 11, bold=True, align="center")
    s.text(15, 162, "स्वीकर्ता अधिकारी की टिप्पणी / Remarks of the Accepting Authority", 10)
    s.box(15, 165, 195, 205)
    _handwrite(s, rng, nrng, 19, 174, _remark(rng), 170, max_lines=4)
    s.text(15, 214, "अंतिम श्रेणी / Final Grading:", 10)
    _handwrite(s, rng, nrng, 70, 214, rng.choice(("अति उत्तम", "उत्तम", "Very Good", "Good")), 60)
    _signature(s, rng, 145, 222, 42, 9)
    _stamp(s, rng, nrng, 118, 226, ("उप महानिरीक्षक", "परिक्षेत्र"), 26)
    s.text(195, 240, "स्वीकर्ता अधिकारी के हस्ताक्षर / Signature of Accepting Authority", 9, align="right")
    s.text(15, 240, f"दिनांक / Date: {_dmy(emp.period_end + timedelta(days=rng.randint(90, 150)))}", 10)


_INSTRUCTIONS_HI = (
    "वार्षिक गोपनीय प्रविष्टि प्रत्येक वित्तीय वर्ष के लिए अलग से लिखी जाएगी।",
    "प्रतिवेदक अधिकारी अपनी टिप्पणी स्पष्ट एवं निष्पक्ष रूप से अंकित करेंगे।",
    "प्रतिकूल प्रविष्टि की सूचना संबंधित कर्मचारी को लिखित रूप में दी जाएगी।",
    "सत्यनिष्ठा प्रमाणित न किए जाने की दशा में कारण का उल्लेख आवश्यक है।",
    "समीक्षक अधिकारी असहमत होने पर अपनी असहमति के कारण लिखेंगे।",
    "यह प्रपत्र गोपनीय है तथा इसे सुरक्षित अभिरक्षा में रखा जाएगा।",
    "प्रविष्टि निर्धारित समय-सीमा के भीतर पूर्ण की जानी चाहिए।",
    "अधूरी प्रविष्टि को पूर्ण कराने हेतु वापस किया जाएगा।",
    "स्वीकर्ता अधिकारी की टिप्पणी अंतिम मानी जाएगी।",
)
_INSTRUCTIONS_EN = (
    "The annual confidential report shall be written separately for each financial year.",
    "The reporting officer shall record remarks clearly and objectively.",
    "Any adverse entry shall be communicated to the officer reported upon in writing.",
    "If integrity is not certified, the reasons must be recorded.",
    "The reviewing officer shall give reasons when differing from the reporting officer.",
    "This form is confidential and shall be kept in safe custody.",
    "The report shall be completed within the prescribed time limit.",
    "Incomplete reports will be returned for completion.",
    "The remarks of the accepting authority shall be final.",
)


def _page_instructions(s: _Sheet, hindi: bool, rng: random.Random, page_no: int) -> None:
    """A printed instructions sheet in one script: numbered items, word-wrapped."""
    s.text(105, 30, "निर्देश" if hindi else "INSTRUCTIONS", 16, bold=True, align="center")
    items = list(_INSTRUCTIONS_HI if hindi else _INSTRUCTIONS_EN)
    rng.shuffle(items)
    y, size, width = 46.0, 13.0, 170.0
    for n, item in enumerate(items, start=1):
        words = f"{n}. {item}".split()
        line = words[0]
        for word in words[1:]:
            if s.text_width(f"{line} {word}", size) > s.px(width):
                s.text(20, y, line, size)
                y += 9.0
                line = word
            else:
                line = f"{line} {word}"
        s.text(20, y, line, size)
        y += 14.0
    s.text(105, 286, f"पृष्ठ {page_no}" if hindi else f"Page {page_no}", 9, align="center")


def _draw_content(
    sheet: _Sheet, spec: PageSpec, emp: SyntheticEmployee, rng: random.Random, nrng: np.random.Generator
) -> None:
    if spec.content in ("hindi", "english"):
        _page_instructions(sheet, spec.content == "hindi", rng, spec.page_no)
        return
    if spec.content == "signature":
        _signature(sheet, rng, rng.uniform(30, 140), rng.uniform(60, 240), rng.uniform(35, 50), rng.uniform(7, 11))
        return
    if spec.content == "line":
        sheet.text(rng.uniform(15, 40), rng.uniform(40, 250), f"कर्मचारी संख्या / Employee Code: {emp.employee_code}", 10)
        return
    if spec.content == "stamp":
        _stamp(sheet, rng, nrng, rng.uniform(40, 170), rng.uniform(50, 250), ("कार्यालय", emp.district_hi), 22)
        return
    if spec.page_no == 1:
        _page_particulars(sheet, emp, rng, nrng)
    elif spec.page_no % 2 == 0:
        _page_assessment(sheet, emp, rng, nrng)
    else:
        _page_review(sheet, emp, rng, nrng)
    _footer(sheet, spec.page_no)


# --------------------------------------------------------------------------------------------------
# Scanner effects
# --------------------------------------------------------------------------------------------------


def _luma(rgb: tuple[int, int, int]) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _seed32(*parts: int | str) -> list[int]:
    """Entropy for numpy from a seed tuple (strings hashed stably, never with hash())."""
    out: list[int] = []
    for p in parts:
        if isinstance(p, str):
            out.extend(p.encode())
        else:
            out.extend(((p >> 32) & 0xFFFFFFFF, p & 0xFFFFFFFF) if p >= 0 else (1, (-p) & 0xFFFFFFFF))
    return out


def _compose(sheet: _Sheet, spec: PageSpec, rng: random.Random, nrng: np.random.Generator, blank: bool) -> np.ndarray:
    """Paper with mild texture, multiplied by each ink layer (subtractive, like ink on paper).

    Returns float32 H x W x C (C = 3 for RGB, else 1).  Each layer's factor comes from a 256-entry
    lookup table indexed by its coverage mask: one pass per layer instead of several.
    """
    h, w = sheet.h, sheet.w
    rgb = spec.mode == "RGB"
    paper_level = rng.uniform(0.96, 1.0)
    paper = np.array(_PAPER_RGB if rgb else (_luma(_PAPER_RGB),), dtype=np.float32) * paper_level
    texture = _smooth_field(nrng, h, w, 24, 0.005)
    texture += 1.0
    img = np.empty((h, w, len(paper)), dtype=np.float32)
    for ch, level in enumerate(paper):
        np.multiply(texture, level, out=img[:, :, ch])
    if blank:
        return img
    pen = rng.choice(_PEN_RGBS)
    stamp = rng.choice(_STAMP_RGBS)
    coverage = np.arange(256, dtype=np.float32)[:, None] / 255.0
    for mask_img, color, strength in (
        (sheet.print_mask, _PRINT_RGB, rng.uniform(0.9, 1.0)),
        (sheet.pen_mask, pen, rng.uniform(0.8, 0.95)),
        (sheet.stamp_mask, stamp, 1.0),
    ):
        bbox = mask_img.getbbox()
        if bbox is None:
            continue
        x0, y0, x1, y1 = bbox
        c = np.array(color if rgb else (_luma(color),), dtype=np.float32) / 255.0
        lut = (1.0 - coverage * strength * (1.0 - c)[None, :]).reshape(1, 256, -1)  # (1, 256, C)
        mask = np.asarray(mask_img.crop(bbox))
        if rgb:
            mask = cv2.merge([mask, mask, mask])
        factor = cv2.LUT(mask, lut)  # cv2.LUT keeps the table's float32 depth
        img[y0:y1, x0:x1] *= factor.reshape(y1 - y0, x1 - x0, -1)
    return img


def _bleed(img: np.ndarray, back: Image.Image, rng: random.Random) -> None:
    """Faint, blurred, mirrored content of the other side of the sheet showing through (in place)."""
    h, w = img.shape[:2]
    mirrored = np.asarray(back.transpose(Image.Transpose.FLIP_LEFT_RIGHT), dtype=np.float32) / 255.0
    a = cv2.resize(cv2.GaussianBlur(mirrored, (0, 0), 1.2), (w, h), interpolation=cv2.INTER_LINEAR)
    img *= (1.0 - rng.uniform(0.05, 0.10) * a)[:, :, None]


def _noise(img: np.ndarray, strength: float, nrng: np.random.Generator) -> None:
    """Sensor noise (gaussian) plus dust specks and dropouts (salt and pepper), in place."""
    if strength <= 0:
        return
    h, w = img.shape[:2]
    g = nrng.standard_normal((h, w), dtype=np.float32)
    g *= 14.0 * strength
    img += g[:, :, None]
    n = int(h * w * 4e-4 * strength)
    ys, xs = nrng.integers(0, h, n), nrng.integers(0, w, n)
    dark = nrng.random(n) < 0.6
    img[ys[dark], xs[dark]] = nrng.uniform(20, 120, int(dark.sum())).astype(np.float32)[:, None]
    img[ys[~dark], xs[~dark]] = 255.0
    # A few 2x2 specks: real dust is bigger than one sensor pixel but still well under 0.3 mm.
    m = n // 10
    ys, xs = nrng.integers(0, h - 1, m), nrng.integers(0, w - 1, m)
    for dy in (0, 1):
        for dx in (0, 1):
            img[ys + dy, xs + dx] = np.minimum(img[ys + dy, xs + dx], 90.0)


def _place(
    img: np.ndarray,
    angle: float,
    shift: tuple[float, float],
    content: tuple[int, int, int, int] | None,
    dpi: int,
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Put the sheet on the scanner glass: rotate counter-clockwise about the centre and shift.

    Same geometry as Pillow's ``Image.rotate(angle, expand=False, fillcolor=255)`` (plus the shift),
    done by one bicubic ``cv2.warpAffine`` because it is several times faster.  If the content's
    corners would leave the frame the sheet is shrunk slightly, so nothing printed is cut.  Returns
    the uint8 image and the sheet's outline in output coordinates.
    """
    h, w = img.shape[:2]
    cx, cy = w / 2.0, h / 2.0
    t = math.radians(angle)
    cos_t, sin_t = math.cos(t), math.sin(t)
    sx, sy = shift

    def fwd(x: float, y: float) -> tuple[float, float]:
        # Screen rotation CCW with y down: x' = x cos + y sin, y' = -x sin + y cos.
        return x * cos_t + y * sin_t, -x * sin_t + y * cos_t

    scale = 1.0
    if content is not None:
        limit_x, limit_y = cx - 1.5 * dpi / 25.4, cy - 1.5 * dpi / 25.4
        x0, y0, x1, y1 = content
        for px_, py_ in ((x0, y0), (x1, y0), (x0, y1), (x1, y1)):
            qx, qy = fwd(px_ - cx, py_ - cy)
            if qx > 0:
                scale = min(scale, (limit_x - sx) / qx)
            elif qx < 0:
                scale = min(scale, (limit_x + sx) / -qx)
            if qy > 0:
                scale = min(scale, (limit_y - sy) / qy)
            elif qy < 0:
                scale = min(scale, (limit_y + sy) / -qy)
    outline = []
    for px_, py_ in ((0, 0), (w, 0), (w, h), (0, h)):
        qx, qy = fwd(px_ - cx, py_ - cy)
        outline.append((cx + scale * qx + sx, cy + scale * qy + sy))
    if angle == 0.0 and shift == (0.0, 0.0) and scale == 1.0:
        return img, outline
    # Forward map (input -> output) about the centre, then the shift.
    m = np.array(
        [
            [scale * cos_t, scale * sin_t, 0.0],
            [-scale * sin_t, scale * cos_t, 0.0],
        ]
    )
    m[0, 2] = cx + sx - m[0, 0] * cx - m[0, 1] * cy
    m[1, 2] = cy + sy - m[1, 0] * cx - m[1, 1] * cy
    white = (255, 255, 255) if img.ndim == 3 and img.shape[2] == 3 else 255
    placed = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT, borderValue=white)
    return placed, outline


def _border_shift(rng: random.Random, w: int, h: int) -> tuple[float, float]:
    """Where the sheet lies off the scan window's corner: the uncovered strips become dark bands."""
    while True:
        kx, ky = rng.choice((-1, 0, 0, 1)), rng.choice((-1, 0, 0, 1))
        if kx or ky:
            break
    return kx * rng.uniform(0.006, 0.03) * w, ky * rng.uniform(0.006, 0.03) * h


def _dark_border(
    img: np.ndarray, outline: list[tuple[float, float]], rng: random.Random, nrng: np.random.Generator
) -> np.ndarray:
    """Paint the scan window outside the sheet dark, as a black scanner lid shows it (uint8 in, out)."""
    h, w = img.shape[:2]
    sheet = Image.new("L", (w, h), 0)
    ImageDraw.Draw(sheet).polygon(outline, fill=255)
    # A slightly soft paper edge (lid shadow) instead of a perfect step.
    alpha8 = 255 - cv2.blur(np.asarray(sheet), (5, 5))
    idx = np.flatnonzero(alpha8)
    if idx.size == 0:
        return img
    out = np.ascontiguousarray(img).copy()
    flat = out.reshape(h * w, -1)
    a = alpha8.reshape(-1)[idx].astype(np.float32)[:, None] / 255.0
    lid = rng.uniform(12, 55) + nrng.normal(0.0, 4.0, size=(idx.size, 1)).astype(np.float32)
    mixed = flat[idx].astype(np.float32) * (1.0 - a) + lid * a
    flat[idx] = np.clip(mixed, 0, 255).astype(np.uint8)
    return out


def _typeface_for(seed: int) -> _Typeface:
    return random.Random(f"acr-typeface:{seed}").choice(_TYPEFACES)


def _content_sheet(spec: PageSpec, emp: SyntheticEmployee, dpi: int) -> _Sheet:
    sheet = _Sheet(dpi, _typeface_for(spec.seed))
    rng = random.Random(f"acr-content:{spec.seed}:{spec.page_no}:{spec.content}")
    nrng = np.random.default_rng(_seed32("content", spec.seed, spec.page_no, spec.content))
    _draw_content(sheet, spec, emp, rng, nrng)
    return sheet


def render_acr_page(spec: PageSpec) -> SyntheticPage:
    """Render one page of the ACR file of employee ``spec.seed`` with the scanner effects of ``spec``."""
    emp = synthetic_employee(spec.seed)
    # Content randomness depends only on (seed, page, content) so distortions never move the text.
    sheet = _Sheet(spec.dpi, _typeface_for(spec.seed)) if spec.blank else _content_sheet(spec, emp, spec.dpi)
    # Rotation and output mode do not reseed the scan: a turned (or B/W) page is exactly the upright
    # page turned (or thresholded), which tests rely on.
    scan_key = repr(replace(spec, rotation=0, mode="L"))
    rng = random.Random(f"acr-scan:{scan_key}")
    nrng = np.random.default_rng(_seed32("scan", scan_key))
    img = _compose(sheet, spec, rng, nrng, blank=spec.blank)
    if spec.bleed_through:
        # A blank back shows its own front; a front shows the next page printed on its back.
        low_dpi = max(30, spec.dpi // 5)
        other = replace(spec, blank=False, content="form", page_no=spec.page_no if spec.blank else spec.page_no + 1)
        back = _content_sheet(other, emp, low_dpi)
        back_mask = ImageChops.lighter(ImageChops.lighter(back.print_mask, back.pen_mask), back.stamp_mask)
        _bleed(img, back_mask, rng)
    _noise(img, spec.noise if not spec.blank else max(spec.noise, 0.15), nrng)
    np.clip(img, 0, 255, out=img)
    arr = img.astype(np.uint8)
    if arr.shape[2] == 1:
        arr = arr[:, :, 0]
    shift = _border_shift(rng, sheet.w, sheet.h) if spec.dark_border else (0.0, 0.0)
    arr, outline = _place(arr, spec.skew_deg, shift, None if spec.blank else sheet.ink_bbox(), spec.dpi)
    if spec.dark_border:
        arr = _dark_border(arr, outline, rng, nrng)
    if spec.rotation:
        # np.rot90 turns counter-clockwise, as Image.Transpose.ROTATE_90 does: exact, no resampling.
        arr = np.ascontiguousarray(np.rot90(arr, spec.rotation // 90))
    im = Image.fromarray(arr, "RGB" if arr.ndim == 3 else "L")
    if spec.mode == "1":
        im = im.point(lambda v: 255 if v >= _BW_THRESHOLD else 0).convert("1", dither=Image.Dither.NONE)
    im.info["dpi"] = (spec.dpi, spec.dpi)
    return SyntheticPage(
        image=im,
        text="" if spec.blank else sheet.printed_text(),
        fields=_fields(emp),
        spec=spec,
        skew_deg=spec.skew_deg,
        rotation=spec.rotation,
        employee=emp,
    )


_SPEC_FIELDS = frozenset(f.name for f in fields(PageSpec)) - {"seed", "page_no", "blank"}


def render_acr_file(seed: int, n_pages: int, *, blank_backs: bool = False, **kw: Any) -> list[SyntheticPage]:
    """The pages of one ACR file of employee ``seed``: particulars, then assessment/review pages.

    ``n_pages`` counts printed pages; with ``blank_backs`` each is followed by its blank back (as a
    duplex scan delivers it, with bleed-through of the front).  ``kw`` are PageSpec fields applied
    to every page (dpi, skew_deg, rotation, noise, dark_border, bleed_through, mode).
    """
    if n_pages < 1:
        raise ValueError("n_pages must be >= 1")
    unknown = set(kw) - _SPEC_FIELDS
    if unknown:
        raise TypeError(f"unknown PageSpec field(s): {', '.join(sorted(unknown))}")
    pages: list[SyntheticPage] = []
    for p in range(1, n_pages + 1):
        pages.append(render_acr_page(PageSpec(seed=seed, page_no=p, **kw)))
        if blank_backs:
            back_kw = {**kw, "bleed_through": True}
            pages.append(render_acr_page(PageSpec(seed=seed, page_no=p, blank=True, **back_kw)))
    return pages


def write_pages(pages: list[SyntheticPage], out_dir: Path | str) -> list[Path]:
    """Write each page as PNG (with its dpi) plus a ``.gt.txt`` sidecar holding ``text``; returns image paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for i, page in enumerate(pages, start=1):
        path = out / f"page_{i:03d}.png"
        page.image.save(path, format="PNG", dpi=(page.spec.dpi, page.spec.dpi))
        path.with_suffix(".gt.txt").write_text(page.text + ("\n" if page.text else ""), encoding="utf-8")
        paths.append(path)
    return paths

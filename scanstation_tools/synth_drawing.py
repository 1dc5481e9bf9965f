"""Drawing on a synthetic A4 sheet: the fonts (found on the machine), the sheet itself (coverage masks for print,
pen and stamp ink, with the printed lines kept as ground truth), and what a hand adds: handwriting, signatures,
ticks and rubber stamps.

What is drawn where on an ACR form is :mod:`scanstation_tools.synth_forms`; turning a sheet into a scan is
:mod:`scanstation_tools.synth_scan_effects`.
"""

from __future__ import annotations

import math
import random
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFont, features

from scanstation.errors import ExternalToolError
from scanstation.script_runs import is_devanagari, script_runs

A4_MM = (210.0, 297.0)
FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".fonts")
_FONT_PACKAGES = "fonts-noto-core, fonts-lohit-deva, fonts-dejavu-core and fonts-dejavu-extra"


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
class Typeface:
    """The font files of one printed form: Devanagari and Latin, regular and bold."""

    deva: str
    deva_bold: str
    latin: str
    latin_bold: str


# A file's pages share one typeface set, as a printed form does.
TYPEFACES = (
    Typeface("NotoSansDevanagari-Regular.ttf", "NotoSansDevanagari-Bold.ttf", "DejaVuSans.ttf", "DejaVuSans-Bold.ttf"),
    Typeface(
        "NotoSerifDevanagari-Regular.ttf", "NotoSerifDevanagari-Bold.ttf", "NotoSerif-Regular.ttf", "NotoSerif-Bold.ttf"
    ),
    Typeface("Lohit-Devanagari.ttf", "NotoSansDevanagari-Bold.ttf", "NotoSans-Regular.ttf", "NotoSans-Bold.ttf"),
)
_HAND_LATIN = ("DejaVuSans-Oblique.ttf", "NotoSans-Italic.ttf", "NotoSerif-Italic.ttf", "DejaVuSerif-Italic.ttf")
_HAND_DEVA = ("Lohit-Devanagari.ttf", "NotoSansDevanagari-Regular.ttf")


def _nfc(s: str) -> str:
    return unicodedata.normalize("NFC", s)


# --------------------------------------------------------------------------------------------------
# Drawing surface
# --------------------------------------------------------------------------------------------------


def _lines(segments: list[tuple[float, float, str]]) -> str:
    by_line: dict[float, list[tuple[float, str]]] = {}
    for y, x, t in segments:
        by_line.setdefault(y, []).append((x, t))
    return "\n".join(" ".join(t for _x, t in sorted(by_line[y])) for y in sorted(by_line))


class Sheet:
    """An A4 sheet as three coverage masks (print, pen, stamp) plus the printed-line ground truth."""

    def __init__(self, dpi: int, typeface: Typeface) -> None:
        self.dpi = dpi
        self.tf = typeface
        self.w, self.h = self.px(A4_MM[0]), self.px(A4_MM[1])
        self.print_mask = Image.new("L", (self.w, self.h), 0)
        self.pen_mask = Image.new("L", (self.w, self.h), 0)
        self.stamp_mask = Image.new("L", (self.w, self.h), 0)
        self.draw = ImageDraw.Draw(self.print_mask)
        self.pen = ImageDraw.Draw(self.pen_mask)
        self._segments: list[tuple[float, float, str]] = []
        # What handwrite() wrote, line by line (baseline in mm, x in pixels, the words): ground truth of its
        # own, beside the print, so a reader that reads a remark is not counted wrong for it.
        self._hand: list[tuple[float, float, str]] = []

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
        return _lines(self._segments)

    def handwritten(self, y_mm: float, x: float, words: list[str]) -> None:
        """Record a line of handwriting (drawn by :func:`handwrite`) as ground truth."""
        if words:
            self._hand.append((round(y_mm, 3), x, " ".join(words)))

    def handwritten_text(self) -> str:
        return _lines(self._hand)

    def reading_text(self) -> str:
        """Print and handwriting together, line by line top to bottom (items sharing a baseline joined left
        to right: a handwritten grade after its printed label)."""
        return _lines(self._segments + self._hand)

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


def smooth_field(rng: np.random.Generator, h: int, w: int, cells: int, amp: float) -> np.ndarray:
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
    map_x = xs + slant * (ys - h) + smooth_field(nrng, h, w, max(2, w // max(size, 1) * 2), wobble)
    map_y = ys + smooth_field(nrng, h, w, max(2, w // max(size, 1)), wobble)
    out = cv2.remap(arr, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderValue=0)
    cols = np.flatnonzero(out.max(axis=0) > 64)
    left, right = (int(cols[0]), int(cols[-1]) + 1) if cols.size else (0, 0)
    return out, base, left, right


def handwrite(
    sheet: Sheet,
    rng: random.Random,
    nrng: np.random.Generator,
    x_mm: float,
    y_mm: float,
    text: str,
    max_width_mm: float,
    size_pt: float = 13,
    line_gap_mm: float = 9.0,
    max_lines: int = 4,
    target: Image.Image | None = None,
) -> None:
    """Write ``text`` by "hand" on the pen layer (or on ``target``, a sheet-sized coverage image: a remark in
    an ink of its own): per-word slant/wobble, drifting baseline, wrapping."""
    text = _nfc(text)
    deva = any(is_devanagari(c) for c in text)
    font = _font(rng.choice(_HAND_DEVA if deva else _HAND_LATIN), sheet.pt(size_pt * rng.uniform(0.9, 1.15)))
    slant = rng.uniform(0.12, 0.32) if not deva else rng.uniform(0.0, 0.18)
    x_start, x_limit = sheet.px(x_mm), sheet.px(x_mm + max_width_mm)
    x, base, line = float(x_start), float(sheet.px(y_mm)), 0
    drift = rng.uniform(-0.02, 0.02)  # baseline slope of the whole line: people rarely write level
    space = font.size * rng.uniform(0.3, 0.5)
    # The words drawn on each line, recorded as they are drawn (the random draws are the same as before:
    # recording the text changes no pixel); words past max_lines are not drawn and not recorded.
    words: list[str] = []
    line_x = x
    for word in text.split():
        mask, wb, left, right = _hand_word(word, font, slant, nrng)
        if x + right - left > x_limit and x > x_start:
            sheet.handwritten(y_mm + line * line_gap_mm, line_x, words)
            words = []
            line += 1
            if line >= max_lines:
                return
            x, base = float(x_start + sheet.px(rng.uniform(-1.5, 1.5))), float(sheet.px(y_mm + line * line_gap_mm))
            line_x = x
        y_top = round(base + drift * (x - x_start) + sheet.px(rng.uniform(-0.6, 0.6))) - wb
        _paste_max(sheet.pen_mask if target is None else target, mask, round(x) - left, y_top)
        words.append(word)
        x += right - left + space * rng.uniform(0.7, 1.4)
    sheet.handwritten(y_mm + line * line_gap_mm, line_x, words)


def _paste_max(target: Image.Image, mask: np.ndarray, x: int, y: int) -> None:
    """Union of coverage (max), clipped to the target."""
    h, w = mask.shape
    x0, y0, x1, y1 = max(0, x), max(0, y), min(target.width, x + w), min(target.height, y + h)
    if x1 <= x0 or y1 <= y0:
        return
    src = Image.fromarray(np.ascontiguousarray(mask[y0 - y : y1 - y, x0 - x : x1 - x]))
    region = target.crop((x0, y0, x1, y1))
    target.paste(ImageChops.lighter(region, src), (x0, y0))


def signature(sheet: Sheet, rng: random.Random, x_mm: float, y_mm: float, w_mm: float, h_mm: float) -> None:
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


def tick(sheet: Sheet, rng: random.Random, cx_mm: float, cy_mm: float, size_mm: float = 4.0) -> None:
    pts = np.array(
        [
            (cx_mm - size_mm * 0.5, cy_mm - size_mm * rng.uniform(0.0, 0.2)),
            (cx_mm - size_mm * 0.1, cy_mm + size_mm * rng.uniform(0.35, 0.5)),
            (cx_mm + size_mm * rng.uniform(0.5, 0.8), cy_mm - size_mm * rng.uniform(0.6, 0.9)),
        ]
    )
    curve = _catmull_rom(pts, per_segment=6)
    sheet.pen.line([(sheet.px(a), sheet.px(b)) for a, b in curve], fill=255, width=max(1, sheet.px(0.4)), joint="curve")


def stamp(
    sheet: Sheet,
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
    fade = np.clip(smooth_field(nrng, size, size, 4, 0.25) + rng.uniform(0.65, 0.9), 0.25, 1.0)
    arr = (arr * fade).astype(np.uint8)
    _paste_max(sheet.stamp_mask, arr, sheet.px(cx_mm) - size // 2, sheet.px(cy_mm) - size // 2)

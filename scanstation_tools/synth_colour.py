"""Colour marks a real ACR carries on top of the printed form, with their ground truth: rubber stamps (round and
rectangular; violet, blue or red pad ink), handwritten remarks and signatures in ballpoint blue or black, and a
pasted passport photo.

They exist so that the bench can measure what a compact encoding does to colour that carries meaning (CIE ΔE2000
per mark, :mod:`scanstation_tools.colour_error`): every mark is drawn in one known ink, on its own coverage
array, so the pixels it covers are known exactly.  The form's own pen and stamp layers
(:mod:`scanstation_tools.synth_forms`) are left as they are, so pages without these marks do not change.

Marks are drawn after the form, with a random generator of their own, and placed by millimetre on the sheet:
photos, remarks and signatures where the form has room (as a hand uses blank space), stamps anywhere near the
signatures and partly over the print (as a clerk's stamp lands).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from scanstation.script_runs import script_runs
from scanstation_tools.synth_drawing import A4_MM, Sheet, _font, _paste_max, handwrite, smooth_field
from scanstation_tools.synth_people import SyntheticEmployee, dmy

RGB = tuple[int, int, int]

# Nominal ink colours as a scanner sees them on white paper (sRGB).  Stamp pads are violet far more often than
# anything else on Indian government paper; red and blue pads exist.  Ballpoint blue is the common pen.
STAMP_INKS: dict[str, RGB] = {"violet": (98, 58, 152), "blue": (38, 62, 160), "red": (182, 36, 48)}
PEN_INKS: dict[str, RGB] = {"blue": (30, 50, 140), "black": (38, 38, 46)}
MARK_KINDS = ("stamp", "ink", "signature", "photo")

# A pixel belongs to a mark's ground-truth mask when the mark covers at least half of it and no other ink
# (print, the form's pen and stamps, another mark) covers more than this: there the pixel shows the mark's own
# colour, which is what a colour error should be measured on (print over a stamp is black in any encoding).
_OWN_COVERAGE = 0.5
_OTHER_COVERAGE = 0.15

# Later notes on a file, in one script each: handwrite() picks one hand (font) per remark.
_REMARKS_EN = (
    "Seen. Adverse entry communicated.",
    "Noted. File to be put up after one month.",
    "Representation received and examined.",
    "Copy received by the officer reported upon.",
    "Grading upheld by the competent authority.",
)
_REMARKS_HI = (
    "देखा गया। पत्रावली में रखें।",
    "प्रतिकूल प्रविष्टि की सूचना दी गई।",
    "प्रत्यावेदन प्राप्त हुआ, परीक्षण करें।",
    "प्रति प्राप्त की।",
    "श्रेणी यथावत रखी गई।",
)


@dataclass
class Mark:
    """One mark on the sheet: its coverage (0..1, float32, h x w) at ``(x, y)`` px, in ink ``rgb``.

    A photo is an opaque print pasted on the paper: ``photo`` holds its colours (float32 h x w x 3, 0..255),
    ``coverage`` is all ones, and ``rgb`` is its mean colour.
    """

    kind: str
    rgb: RGB
    x: int
    y: int
    coverage: np.ndarray
    photo: np.ndarray | None = None

    @property
    def box(self) -> tuple[int, int, int, int]:
        h, w = self.coverage.shape
        return self.x, self.y, self.x + w, self.y + h


# --------------------------------------------------------------------------------------------------
# Where marks go: a 1-mm occupancy grid of the sheet
# --------------------------------------------------------------------------------------------------


class _Room:
    """Which square millimetres of the sheet carry ink (the form's) or a mark already placed."""

    def __init__(self, sheet: Sheet) -> None:
        ink = np.maximum(np.asarray(sheet.print_mask), np.asarray(sheet.pen_mask))
        np.maximum(ink, np.asarray(sheet.stamp_mask), out=ink)
        self.gw, self.gh = round(A4_MM[0]), round(A4_MM[1])
        # INTER_AREA averages each cell: any ink in a cell makes it non-zero.
        cells = cv2.resize((ink > 40).astype(np.float32), (self.gw, self.gh), interpolation=cv2.INTER_AREA)
        self.ink = (cells > 0).astype(np.float32)
        self.marks = np.zeros_like(self.ink)

    def _sums(self, grid: np.ndarray, bw: int, bh: int) -> np.ndarray:
        """Sum of ``grid`` over every bw x bh window, indexed by the window's top-left cell."""
        s = cv2.integral(grid)  # (gh + 1) x (gw + 1), float64
        return s[bh:, bw:] - s[:-bh, bw:] - s[bh:, :-bw] + s[:-bh, :-bw]

    def free(
        self, rng: random.Random, w_mm: float, h_mm: float, margin_mm: int, area: tuple[float, float, float, float]
    ) -> tuple[float, float] | None:
        """Top-left (mm) of a random free spot for a w x h box inside ``area`` (x0, y0, x1, y1 mm), or None."""
        k = 2 * margin_mm + 1
        busy = cv2.dilate(np.maximum(self.ink, self.marks), np.ones((k, k), np.uint8))
        bw, bh = math.ceil(w_mm), math.ceil(h_mm)
        sums = self._sums(busy, bw, bh)
        ok = self._within(sums.shape, bw, bh, area) & (sums < 0.5)
        ys, xs = np.nonzero(ok)
        if ys.size == 0:
            return None
        i = rng.randrange(ys.size)
        return float(xs[i]), float(ys[i])

    def partly_over_print(
        self, rng: random.Random, w_mm: float, h_mm: float, area: tuple[float, float, float, float]
    ) -> tuple[float, float]:
        """Top-left (mm) for a stamp: over some print (10-45 % of it) but clear of the other marks."""
        bw, bh = math.ceil(w_mm), math.ceil(h_mm)
        over = self._sums(self.ink, bw, bh) / (bw * bh)
        clear = self._sums(self.marks, bw, bh) < 0.5
        inside = self._within(over.shape, bw, bh, area)
        for lo, hi in ((0.10, 0.45), (0.0, 0.7), (0.0, 1.0)):
            ys, xs = np.nonzero(inside & clear & (over >= lo) & (over <= hi))
            if ys.size:
                i = rng.randrange(ys.size)
                return float(xs[i]), float(ys[i])
        # Nowhere clear of the other marks: overlap them rather than leave the page.
        ys, xs = np.nonzero(inside)
        i = rng.randrange(ys.size)
        return float(xs[i]), float(ys[i])

    def _within(self, shape: tuple[int, ...], bw: int, bh: int, area: tuple[float, float, float, float]) -> np.ndarray:
        ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]]
        x0, y0, x1, y1 = area
        return (xs >= x0) & (ys >= y0) & (xs + bw <= x1) & (ys + bh <= y1)

    def take(self, x_mm: float, y_mm: float, w_mm: float, h_mm: float) -> None:
        x0, y0 = max(0, math.floor(x_mm)), max(0, math.floor(y_mm))
        self.marks[y0 : math.ceil(y_mm + h_mm), x0 : math.ceil(x_mm + w_mm)] = 1.0


# The part of the sheet marks may use: inside the 10 mm margins a printed form leaves.
_PAGE_AREA = (10.0, 10.0, A4_MM[0] - 10.0, A4_MM[1] - 10.0)


# --------------------------------------------------------------------------------------------------
# Stamps
# --------------------------------------------------------------------------------------------------


def _mixed_width(text: str, deva: ImageFont.FreeTypeFont, latin: ImageFont.FreeTypeFont) -> float:
    return sum((deva if d else latin).getlength(run) for run, d in script_runs(text))


def _draw_mixed(
    dr: ImageDraw.ImageDraw, cx: float, y: float, text: str, deva: ImageFont.FreeTypeFont, latin: ImageFont.FreeTypeFont
) -> None:
    """Centred text at baseline ``y``, each script run in its own font (as Sheet.text does)."""
    x = cx - _mixed_width(text, deva, latin) / 2
    for run, d in script_runs(text):
        font = deva if d else latin
        if run.strip():
            dr.text((x, y), run, font=font, fill=255, anchor="ls")
        x += font.getlength(run)


def _fitting_fonts(
    sheet: Sheet, lines: tuple[str, ...], size_px: int, max_w: float
) -> tuple[ImageFont.FreeTypeFont, ImageFont.FreeTypeFont]:
    """Bold fonts at ``size_px`` or smaller so that every line fits ``max_w`` px."""
    while True:
        deva, latin = _font(sheet.tf.deva_bold, size_px), _font(sheet.tf.latin_bold, max(1, round(size_px * 0.9)))
        if size_px <= 4 or all(_mixed_width(ln, deva, latin) <= max_w for ln in lines):
            return deva, latin
        size_px = round(size_px * 0.9)


def _ring_text(canvas: Image.Image, c: float, radius: float, text: str, font: ImageFont.FreeTypeFont) -> None:
    """Letters around a circle, tops outwards, spaced to fill it (as a round office stamp has them)."""
    widths = [font.getlength(ch) for ch in text]
    gap = (math.tau * radius - sum(widths)) / len(text)
    cell = 2 * int(font.size) + 4
    phi = -math.pi / 2  # start at the top, go clockwise (y is down)
    for ch, w in zip(text, widths, strict=True):
        mid = phi + (w / 2) / radius
        phi += (w + gap) / radius
        if not ch.strip():
            continue
        glyph = Image.new("L", (cell, cell), 0)
        ImageDraw.Draw(glyph).text((cell / 2, cell / 2), ch, font=font, fill=255, anchor="mm")
        # Pillow turns counter-clockwise: a letter at angle phi needs -(phi + 90 deg) to stand on the ring.
        glyph = glyph.rotate(-math.degrees(mid) - 90.0, resample=Image.Resampling.BILINEAR)
        x = round(c + radius * math.cos(mid) - cell / 2)
        y = round(c + radius * math.sin(mid) - cell / 2)
        _paste_max(canvas, np.asarray(glyph), x, y)


def _round_stamp(sheet: Sheet, rng: random.Random, ring: str, centre: tuple[str, ...], d_mm: float) -> np.ndarray:
    ss = 2  # drawn at twice the resolution and reduced: smooth rings without Pillow's aliasing
    d = sheet.px(d_mm) * ss
    size = d + 8 * ss
    c = size / 2
    img = Image.new("L", (size, size), 0)
    dr = ImageDraw.Draw(img)
    outer = max(2, round(sheet.px(0.7) * ss))
    inner_r = d / 2 * 0.70
    dr.ellipse([c - d / 2, c - d / 2, c + d / 2, c + d / 2], outline=255, width=outer)
    dr.ellipse([c - inner_r, c - inner_r, c + inner_r, c + inner_r], outline=255, width=max(1, outer // 2))
    band = d / 2 - inner_r
    ring_font = _font(sheet.tf.latin_bold, max(4, round(band * 0.55)))
    _ring_text(img, c, (d / 2 + inner_r) / 2, ring, ring_font)
    deva, latin = _fitting_fonts(sheet, centre, round(inner_r * 0.42), inner_r * 1.55)
    step = deva.size * 1.15
    for i, ln in enumerate(centre):
        y = c + (i - (len(centre) - 1) / 2) * step + deva.size * 0.35
        _draw_mixed(dr, c, y, ln, deva, latin)
    img = img.rotate(rng.uniform(-35, 35), resample=Image.Resampling.BILINEAR)
    return _reduce(np.asarray(img), ss)


def _rect_stamp(sheet: Sheet, rng: random.Random, lines: tuple[str, ...], w_mm: float, h_mm: float) -> np.ndarray:
    ss = 2
    w, h = sheet.px(w_mm) * ss, sheet.px(h_mm) * ss
    pad = round(max(w, h) * 0.3)  # room to rotate without cutting the corners
    size_w, size_h = w + 2 * pad, h + 2 * pad
    img = Image.new("L", (size_w, size_h), 0)
    dr = ImageDraw.Draw(img)
    outer = max(2, round(sheet.px(0.7) * ss))
    inset = round(sheet.px(1.2) * ss)
    dr.rectangle([pad, pad, pad + w, pad + h], outline=255, width=outer)
    dr.rectangle([pad + inset, pad + inset, pad + w - inset, pad + h - inset], outline=255, width=max(1, outer // 2))
    inner_h = h - 2 * inset
    deva, latin = _fitting_fonts(sheet, lines, round(inner_h / (len(lines) + 0.6) * 0.75), (w - 3 * inset))
    step = inner_h / len(lines)
    for i, ln in enumerate(lines):
        y = pad + inset + step * (i + 0.5) + deva.size * 0.3
        _draw_mixed(dr, size_w / 2, y, ln, deva, latin)
    img = img.rotate(rng.uniform(-12, 12), resample=Image.Resampling.BILINEAR)
    return _reduce(np.asarray(img), ss)


def _reduce(arr: np.ndarray, ss: int) -> np.ndarray:
    """Supersampled 8-bit coverage -> float32 0..1 at the sheet's resolution, trimmed to the ink."""
    small = cv2.resize(arr, (arr.shape[1] // ss, arr.shape[0] // ss), interpolation=cv2.INTER_AREA)
    cov = small.astype(np.float32) / 255.0
    ys, xs = np.nonzero(cov > 0.02)
    if ys.size == 0:
        return cov[:1, :1] * 0
    return np.ascontiguousarray(cov[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])


def _uneven_pad_ink(cov: np.ndarray, rng: random.Random, nrng: np.random.Generator, dpi: int) -> np.ndarray:
    """A rubber stamp's ink: lighter on one side (uneven pressure) and broken up by the pad's grain."""
    h, w = cov.shape
    side = np.clip(smooth_field(nrng, h, w, 3, 0.22) + rng.uniform(0.75, 0.95), 0.35, 1.0)
    # Grain about 0.2-0.3 mm across: a pad leaves small dry specks inside strokes.
    grain = cv2.GaussianBlur(nrng.random((h, w), dtype=np.float32), (0, 0), max(0.6, dpi / 300.0))
    specks = np.clip((grain - 0.5) * 6.0 + 1.0, 0.45, 1.0)
    return np.clip(cov * side * specks, 0.0, 1.0).astype(np.float32)


def _stamp_texts(rng: random.Random, emp: SyntheticEmployee) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(ring text, round stamp's centre lines, rectangular stamp's lines) for the employee's office."""
    office = rng.choice(("SUPERINTENDENT OF POLICE", "DEPUTY INSPECTOR GENERAL", "COMMANDANT", "RESERVE INSPECTOR"))
    ring = f"OFFICE OF THE {office} * {emp.district.upper()} * "
    centre = (rng.choice(("पुलिस अधीक्षक", "कार्यालय", "उप महानिरीक्षक")), emp.district_hi)
    received = emp.period_end.replace(day=min(emp.period_end.day, 28))
    rect = (
        rng.choice(("प्राप्त / RECEIVED", "गोपनीय शाखा / CONFIDENTIAL BRANCH", "आवक / INWARD")),
        f"दिनांक / Date {dmy(received)}",
        f"{emp.unit_hi}",
    )
    return ring, centre, rect


def _stamp(sheet: Sheet, room: _Room, rng: random.Random, nrng: np.random.Generator, emp: SyntheticEmployee) -> Mark:
    ink = rng.choices(tuple(STAMP_INKS), weights=(5, 3, 2))[0]
    ring, centre, rect = _stamp_texts(rng, emp)
    if rng.random() < 0.55:
        cov = _round_stamp(sheet, rng, ring, centre, rng.uniform(28, 38))
    else:
        cov = _rect_stamp(sheet, rng, rect, rng.uniform(50, 64), rng.uniform(18, 24))
    cov = _uneven_pad_ink(cov, rng, nrng, sheet.dpi)
    h_mm, w_mm = (n * 25.4 / sheet.dpi for n in cov.shape)
    # Stamps go where officers sign: the lower two thirds of the page.
    x_mm, y_mm = room.partly_over_print(rng, w_mm, h_mm, (15.0, 80.0, A4_MM[0] - 12.0, A4_MM[1] - 14.0))
    room.take(x_mm, y_mm, w_mm, h_mm)
    return Mark("stamp", STAMP_INKS[ink], sheet.px(x_mm), sheet.px(y_mm), cov)


# --------------------------------------------------------------------------------------------------
# Pen: remarks and signatures
# --------------------------------------------------------------------------------------------------


def _ballpoint(cov: np.ndarray, nrng: np.random.Generator) -> np.ndarray:
    """Ballpoint ink density varies with pressure along the line: a slow field, never quite dry."""
    h, w = cov.shape
    pressure = np.clip(smooth_field(nrng, h, w, max(2, w // max(h, 1) * 3), 0.12) + 0.92, 0.6, 1.0)
    return np.clip(cov * pressure, 0.0, 1.0).astype(np.float32)


def _pressed(cov: np.ndarray, nrng: np.random.Generator, dpi: int) -> tuple[np.ndarray, int]:
    """Pressing harder widens a ballpoint line: where a slow field says so, strokes grow by about 0.1 mm
    (one pixel a side at 300 dpi).  Returns the coverage padded by that growth, and the padding."""
    r = max(1, round(dpi / 300))
    cov = np.pad(cov, r)
    h, w = cov.shape
    thick = cv2.dilate(cov, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    press = np.clip(smooth_field(nrng, h, w, max(2, w // max(h, 1) * 4), 0.7) + 0.2, 0.0, 1.0)
    return cov + (thick - cov) * press, r


def _crop_to_ink(canvas: np.ndarray) -> tuple[np.ndarray, int, int] | None:
    ys, xs = np.nonzero(canvas > 5)
    if ys.size == 0:
        return None
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    return np.ascontiguousarray(canvas[y0:y1, x0:x1]).astype(np.float32) / 255.0, x0, y0


def _remark(sheet: Sheet, room: _Room, rng: random.Random, nrng: np.random.Generator, ink: str) -> Mark | None:
    """Two or three lines of handwriting in a free part of the page (shorter if the page is full)."""
    text = " ".join(rng.sample(rng.choice((_REMARKS_EN, _REMARKS_HI)), 3))
    size_pt = rng.uniform(11, 14)
    gap = size_pt * 0.62
    for width, lines in ((130.0, 3), (95.0, 3), (95.0, 2), (70.0, 2), (60.0, 1)):
        spot = room.free(rng, width, lines * gap + 4, 2, _PAGE_AREA)
        if spot is not None:
            break
    else:
        return None
    x_mm, y_mm = spot
    canvas = Image.new("L", (sheet.w, sheet.h), 0)
    # handwrite takes the first baseline; the ascenders sit about 0.7 of a line above it.
    handwrite(sheet, rng, nrng, x_mm, y_mm + gap * 0.8, text, width, size_pt, gap, lines, target=canvas)
    cropped = _crop_to_ink(np.asarray(canvas))
    if cropped is None:
        return None
    cov, x, y = cropped
    room.take(x_mm, y_mm, width, lines * gap + 4)
    cov, pad = _pressed(cov, nrng, sheet.dpi)
    return Mark("ink", PEN_INKS[ink], x - pad, y - pad, _ballpoint(cov, nrng))


def _catmull(points: list[tuple[float, float]], per_segment: int) -> np.ndarray:
    p = np.array([points[0], *points, points[-1]], dtype=np.float64)
    t = np.linspace(0.0, 1.0, per_segment, endpoint=False)[:, None]
    out = [
        0.5
        * (
            2 * p[i]
            + (-p[i - 1] + p[i + 1]) * t
            + (2 * p[i - 1] - 5 * p[i] + 4 * p[i + 1] - p[i + 2]) * t**2
            + (-p[i - 1] + 3 * p[i] - 3 * p[i + 1] + p[i + 2]) * t**3
        )
        for i in range(1, len(p) - 2)
    ]
    out.append(p[-2:-1])
    return np.vstack(out)


def _signature_strokes(rng: random.Random, w_mm: float, h_mm: float) -> list[np.ndarray]:
    """A signature as pen paths (mm, relative to its box): a looping name, an initial and an underline."""
    n = 260
    t = np.linspace(0.0, 1.0, n)
    loops = rng.randint(4, 9)
    amp = np.interp(t, np.linspace(0, 1, 6), [rng.uniform(0.3, 1.0) for _ in range(6)])
    r = h_mm * 0.32 * amp
    phase = rng.uniform(0, math.tau)
    x = 0.12 * w_mm + w_mm * 0.78 * t - r * 0.8 * np.sin(loops * math.tau * t + phase)
    y = h_mm * 0.5 + r * np.cos(loops * math.tau * t + phase) + rng.uniform(-0.12, 0.12) * h_mm * t
    name = np.stack([x, y], axis=1)
    initial = _catmull(
        [
            (rng.uniform(0.0, 0.04) * w_mm, h_mm * rng.uniform(0.75, 0.95)),
            (rng.uniform(0.04, 0.1) * w_mm, h_mm * rng.uniform(0.0, 0.1)),
            (rng.uniform(0.1, 0.18) * w_mm, h_mm * rng.uniform(0.55, 0.85)),
        ],
        10,
    )
    underline = _catmull(
        [
            (w_mm * rng.uniform(0.05, 0.2), h_mm * rng.uniform(0.88, 0.98)),
            (w_mm * rng.uniform(0.45, 0.6), h_mm * rng.uniform(0.85, 1.0)),
            (w_mm * rng.uniform(0.9, 0.98), h_mm * rng.uniform(0.75, 0.9)),
        ],
        16,
    )
    return [name, initial, underline]


_PEN_PAD = 1.5  # mm around a signature's box: loops and the underline overshoot it a little


def _pen_strokes(strokes: list[np.ndarray], rng: random.Random, w_mm: float, h_mm: float, dpi: int) -> np.ndarray:
    """Coverage of pen paths whose width follows the hand's pressure (thin at the ends), anti-aliased."""
    ss = 4
    scale = dpi / 25.4 * ss
    canvas = np.zeros((math.ceil((h_mm + 2 * _PEN_PAD) * scale), math.ceil((w_mm + 2 * _PEN_PAD) * scale)), np.uint8)
    base = rng.uniform(0.35, 0.55) * scale  # ballpoint line width, mm -> supersampled px
    for pts in (s + _PEN_PAD for s in strokes):
        n = len(pts)
        u = np.linspace(0.0, 1.0, n)
        taper = np.minimum(1.0, np.minimum(u, 1.0 - u) * 8.0 + 0.35)
        wave = 1.0 + 0.35 * np.sin(u * math.tau * rng.uniform(1.5, 4.0) + rng.uniform(0, math.tau))
        widths = np.maximum(1.0, base * taper * wave)
        px = np.round(pts * scale).astype(np.int32)
        for i in range(n - 1):
            cv2.line(canvas, tuple(px[i]), tuple(px[i + 1]), 255, max(1, round(widths[i])), cv2.LINE_AA)
    small = cv2.resize(canvas, (canvas.shape[1] // ss, canvas.shape[0] // ss), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) / 255.0


def _signature(sheet: Sheet, room: _Room, rng: random.Random, nrng: np.random.Generator, ink: str) -> Mark:
    w_mm, h_mm = rng.uniform(36, 50), rng.uniform(10, 14)
    spot = room.free(rng, w_mm, h_mm, 1, (15.0, 60.0, A4_MM[0] - 12.0, A4_MM[1] - 14.0))
    if spot is None:
        spot = room.partly_over_print(rng, w_mm, h_mm, _PAGE_AREA)
    x_mm, y_mm = spot
    room.take(x_mm, y_mm, w_mm, h_mm)
    cov = _pen_strokes(_signature_strokes(rng, w_mm, h_mm), rng, w_mm, h_mm, sheet.dpi)
    x, y = sheet.px(x_mm - _PEN_PAD), sheet.px(y_mm - _PEN_PAD)
    return Mark("signature", PEN_INKS[ink], x, y, _ballpoint(cov, nrng))


# --------------------------------------------------------------------------------------------------
# Photo
# --------------------------------------------------------------------------------------------------


def _smoothstep(edge: np.ndarray, width: float) -> np.ndarray:
    """0 -> 1 across ``width`` around 0 (soft, anti-aliased shape edges from a signed distance)."""
    return np.clip(0.5 + edge / width, 0.0, 1.0)


def _photo_pixels(rng: random.Random, nrng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A passport photo (float32 h x w x 3, 0..255): studio backdrop, a head and shoulders, soft focus, grain.

    The picture is soft anyway, so it is painted at no more than 180 px across and enlarged (a 300-dpi photo
    costs a tenth of the time); only the grain is added at full size.
    """
    sw = min(w, 180)
    sh_ = max(2, round(h * sw / w))
    ys, xs = np.mgrid[0:sh_, 0:sw].astype(np.float32)
    u, v = xs / sw, ys / sh_
    aa = 1.5 / min(sw, sh_)
    top = np.array(rng.choice(((196, 214, 232), (226, 228, 230), (170, 196, 222))), np.float32)
    bottom = top * rng.uniform(0.8, 0.92)
    img = top[None, None, :] * (1 - v[..., None]) + bottom[None, None, :] * v[..., None]
    img *= (1.0 + smooth_field(nrng, sh_, sw, 3, 0.03))[..., None]

    def paint(alpha: np.ndarray, colour: np.ndarray) -> None:
        img[:] = img * (1 - alpha[..., None]) + colour * alpha[..., None]

    # Shoulders (uniform khaki or a dark coat), lit from the left.
    cloth = np.array(rng.choice(((150, 128, 86), (58, 62, 78), (120, 104, 70))), np.float32)
    shoulders = _smoothstep(1.0 - np.hypot((u - 0.5) / 0.62, (v - 1.08) / 0.36), aa * 3)
    paint(shoulders, cloth[None, None, :] * (1.08 - 0.25 * u)[..., None])
    skin = np.array(rng.choice(((200, 152, 122), (176, 126, 96), (146, 100, 74))), np.float32)
    cx, cy = 0.5 + rng.uniform(-0.03, 0.03), 0.43
    neck = _smoothstep(np.minimum(0.085 - np.abs(u - cx), 0.78 - v) * 4, aa * 4) * (v > cy)
    paint(neck, skin * 0.82)
    rx, ry = 0.2, 0.26
    for side in (-1.0, 1.0):
        ear = _smoothstep(1.0 - np.hypot((u - cx - side * rx * 0.97) / 0.035, (v - cy - 0.01) / 0.06), 0.25)
        paint(ear, skin * 0.85)
    d = np.hypot((u - cx) / rx, (v - cy) / ry)
    face = _smoothstep((1.0 - d) * rx, aa)
    # Rounded shading: darker towards the face's edge and on the side away from the light.
    shade = (1.0 - 0.28 * d**2) * (1.05 - 0.2 * (u - cx + rx) / (2 * rx))
    paint(face, skin[None, None, :] * shade[..., None])
    # Hair: the top of a slightly larger head, down to a hairline that curves down at the temples.
    hair = _smoothstep((1.0 - np.hypot((u - cx) / (rx * 1.07), (v - cy + 0.02) / (ry * 1.04))) * rx, aa)
    hair *= _smoothstep(cy - 0.175 + 3.5 * (u - cx) ** 2 - v, aa * 2)
    hair_colour = np.array((34, 28, 24), np.float32) * (1.15 - 0.5 * v)[..., None]
    paint(hair, hair_colour)
    for ex in (-0.075, 0.075):
        brow = _smoothstep(1.0 - np.hypot((u - cx - ex) / 0.045, (v - cy + 0.045) / 0.009), 0.4)
        paint(brow * 0.7, np.array((45, 36, 32), np.float32))
        eye = _smoothstep(1.0 - np.hypot((u - cx - ex) / 0.03, (v - cy + 0.01) / 0.014), 0.3)
        paint(eye * 0.85, np.array((40, 32, 30), np.float32))
    nose = _smoothstep(1.0 - np.hypot((u - cx) / 0.03, (v - cy - 0.07) / 0.02), 0.5)
    paint(nose * 0.5, skin * 0.7)
    moustache = _smoothstep(1.0 - np.hypot((u - cx) / 0.085, (v - cy - 0.12) / 0.018), 0.4)
    paint(moustache * rng.uniform(0.0, 0.9), np.array((40, 32, 28), np.float32))
    mouth = _smoothstep(1.0 - np.hypot((u - cx) / 0.06, (v - cy - 0.165) / 0.01), 0.4)
    paint(mouth * 0.6, skin * 0.6)
    # A photo print is never sharp at this size, and has grain.
    img = cv2.GaussianBlur(img, (0, 0), max(0.6, sw / 220.0))
    if (sw, sh_) != (w, h):
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)
    img += nrng.normal(0.0, 3.0, size=(h, w, 1)).astype(np.float32)
    img *= rng.uniform(0.92, 1.0)
    return np.clip(img, 0, 255).astype(np.float32)


def _photo(sheet: Sheet, room: _Room, rng: random.Random, nrng: np.random.Generator) -> Mark | None:
    """A passport photo (35 x 45 mm, or a stamp-size 25 x 32 mm where that is all the room) pasted on the form."""
    for w_mm, h_mm in ((35.0, 45.0), (30.0, 38.0), (25.0, 32.0)):
        spot = room.free(rng, w_mm, h_mm, 2, _PAGE_AREA)
        if spot is not None:
            break
    else:
        return None
    x_mm, y_mm = spot
    room.take(x_mm, y_mm, w_mm, h_mm)
    w, h = sheet.px(w_mm), sheet.px(h_mm)
    pixels = _photo_pixels(rng, nrng, w, h)
    mean = pixels.reshape(-1, 3).mean(axis=0)
    rgb = (round(float(mean[0])), round(float(mean[1])), round(float(mean[2])))
    return Mark("photo", rgb, sheet.px(x_mm), sheet.px(y_mm), np.ones((h, w), np.float32), pixels)


# --------------------------------------------------------------------------------------------------
# The page's marks, painting them, their ground truth
# --------------------------------------------------------------------------------------------------


def draw_marks(
    sheet: Sheet,
    emp: SyntheticEmployee,
    rng: random.Random,
    nrng: np.random.Generator,
    *,
    stamps: int,
    remarks: int,
    signatures: int,
    photo: bool,
) -> list[Mark]:
    """The colour marks of one page, in the order they are painted (photo first: stamps may overlap it).

    The first remark is in blue ballpoint (the usual pen), later ones and signatures blue or black.
    A mark with no room on a full page is left out rather than drawn over the print (a photo or remark
    over printed text would falsify the page's text ground truth); stamps always find a place.
    """
    room = _Room(sheet)
    marks: list[Mark] = []
    if photo and (m := _photo(sheet, room, rng, nrng)) is not None:
        marks.append(m)
    for i in range(remarks):
        ink = "blue" if i == 0 else rng.choice(("blue", "black"))
        if (m := _remark(sheet, room, rng, nrng, ink)) is not None:
            marks.append(m)
    for _ in range(signatures):
        marks.append(_signature(sheet, room, rng, nrng, rng.choices(("blue", "black"), weights=(3, 2))[0]))
    for _ in range(stamps):
        marks.append(_stamp(sheet, room, rng, nrng, emp))
    return [c for m in marks if (c := _clipped(m, sheet.w, sheet.h)) is not None]


def _clipped(m: Mark, w: int, h: int) -> Mark | None:
    """The part of a mark on the sheet (placement keeps marks inside; this makes it a guarantee)."""
    x0, y0, x1, y1 = m.box
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if cx1 <= cx0 or cy1 <= cy0:
        return None
    if (cx0, cy0, cx1, cy1) == (x0, y0, x1, y1):
        return m
    rows, cols = slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0)
    photo = None if m.photo is None else np.ascontiguousarray(m.photo[rows, cols])
    return Mark(m.kind, m.rgb, cx0, cy0, np.ascontiguousarray(m.coverage[rows, cols]), photo)


def paint_marks(img: np.ndarray, marks: list[Mark]) -> None:
    """Paint the marks on a composed RGB page (float32 H x W x 3, in place): a photo replaces the paper under
    it, ink multiplies what is there (subtractive, as in :func:`synth_scan_effects.compose`)."""
    for m in marks:
        x0, y0, x1, y1 = m.box
        if m.photo is not None:
            img[y0:y1, x0:x1] = m.photo
            continue
        c = np.asarray(m.rgb, np.float32) / 255.0
        img[y0:y1, x0:x1] *= 1.0 - m.coverage[:, :, None] * (1.0 - c)[None, None, :]


def form_inks(sheet: Sheet, inks: dict[str, RGB]) -> list[Mark]:
    """The form's own coloured layers as marks (its handwriting, ticks and signatures: "ink"; its stamps:
    "stamp"), in the colours :func:`synth_scan_effects.compose` gave them (``inks``), for their ground truth."""
    out: list[Mark] = []
    for kind, layer, name in (("ink", sheet.pen_mask, "pen"), ("stamp", sheet.stamp_mask, "stamp")):
        bbox = layer.getbbox()
        if bbox is None:
            continue
        cov = np.asarray(layer.crop(bbox), dtype=np.float32) / 255.0
        out.append(Mark(kind, inks[name], bbox[0], bbox[1], cov))
    return out


def mark_masks(sheet: Sheet, marks: list[Mark]) -> list[np.ndarray | None]:
    """Per mark (those painted and :func:`form_inks`), the box-sized bool mask of pixels showing its own ink
    (None for a photo): covered by it at least half and by nothing else much (see ``_OWN_COVERAGE``).
    The form's print counts as other ink; so does each other mark in the list."""
    out: list[np.ndarray | None] = []
    for i, m in enumerate(marks):
        if m.photo is not None:
            out.append(None)
            continue
        x0, y0, x1, y1 = m.box
        # Boolean work on 8-bit crops: the form's pen layer spans most of the page.
        mask = m.coverage >= _OWN_COVERAGE
        mask &= np.asarray(sheet.print_mask.crop((x0, y0, x1, y1))) <= int(_OTHER_COVERAGE * 255)
        for j, o in enumerate(marks):
            if j == i:
                continue
            ox0, oy0, ox1, oy1 = o.box
            ix0, iy0, ix1, iy1 = max(x0, ox0), max(y0, oy0), min(x1, ox1), min(y1, oy1)
            if ix1 <= ix0 or iy1 <= iy0:
                continue
            sub = mask[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
            sub &= o.coverage[iy0 - oy0 : iy1 - oy0, ix0 - ox0 : ix1 - ox0] <= _OTHER_COVERAGE
        out.append(mask)
    return out

"""Per-page quality flags for the supervisor, each with its measured value, threshold and a bilingual action."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from scanstation.cleanup.blank import BlankResult, blank_score
from scanstation.cleanup.borders import (
    BorderResult,
    check_page,
    clean_borders,
    find_borders,
    local_contrast,
    reduce_to_dpi,
)
from scanstation.cleanup.grain import neighbour_noise_sigma

# Indian e-governance guidance: 300 dpi for text; below 200 dpi Devanagari matras break up.
MIN_EFFECTIVE_DPI = 200.0
# Paper darker than this (of 255) is an under-exposed scan or a too-dark setting.
MIN_PAPER_LEVEL = 160.0
# The darkest ink (5th percentile of ink pixels) lighter than this: washed-out, over-exposed scan.
MAX_INK_LEVEL = 130.0
# Paper minus the typical ink (median over the marks, stroke edges included) below this many grey
# levels: writing hard to read and to OCR.
MIN_CONTRAST = 80.0
# Edge width (10-90 % rise) above this many millimetres, and above this many pixels of the effective
# resolution (a sharp scan needs 1-2 px for an edge, whatever its dpi), is blur.
BLUR_MIN_MM = 0.25
BLUR_MAX_PIXELS = 3.0
# Grain: the σ of pixel-to-pixel noise on the blank paper, in grey levels, above this is a failing sensor or
# lamp, or a gain set too high.  Measured on synthetic ACR pages with Gaussian noise of σ s added: on paper at
# 205 the measure reads s (±2 %), and Tesseract reads the page as well as the clean one up to s 24, worse from
# s 28 (one of two pages CER +0.05) and hardly at all at s 32 (+0.12/+0.84); on white paper the scanner clips
# the grain and the measure reads less (s 24 → 16.8, s 40 → 24), and Tesseract worsens from s 40 (+0.03 to
# +0.17).  So the flag comes a quarter before reading suffers, on either paper.  Clean scans and every corpus
# page read 0-1.  A colour capture is measured in its noisiest channel: its grey page averages independent noise
# in the channels away (σ 32 in each channel reads 13.6 on the grey page, 23 in the noisiest channel), while
# the eye sees it as coloured speckle, and such a page is stored losslessly, ~19 MB (docs/compact-pages.md).
# A page printed all over with a fine halftone tint (security paper) can read as grainy too, as a tint on a
# minority of the paper cannot (the median does not see it): like every page flag, it is advice shown beside
# the page, which the supervisor judges by eye anyway.
MAX_GRAIN = 18.0
# Grain is sampled on every GRAIN_ROW_STEP-th row: a million pixel pairs on an A4 page at 300 dpi is plenty.
GRAIN_ROW_STEP = 6
# A mark, for finding the paper the grain is measured on, is this many grey levels under the paper's bright end
# (90th percentile) at ~100 dpi, where the grain is a third of its full-resolution σ.
GRAIN_MARK_DEPTH = 40.0
# Content reaching the paper edge along more than this many millimetres is probably cut off.
CUT_OFF_MM = 4.0
# What the pipeline straightens; cleanup imports it from here.
SKEW_MAX_CORRECTABLE = 15.0
# No single sheet is longer than legal paper (356 mm); a longer page is sheets fed together.
MAX_SHEET_MM = 360.0
# Batch rule: robust z-score (0.6745 * |x - median| / MAD, Iglewicz and Hoaglin) above this, and at
# least this many millimetres longer than the median (scanners measure length to a few mm).
DOUBLE_FEED_Z = 3.5
DOUBLE_FEED_MIN_EXCESS_MM = 15.0
DOUBLE_FEED_MIN_PAGES = 4

# Sharp native scans have 10-90 % edges of 1-2 px; an interpolated enlargement by k has about k times
# that.  This reference turns a measured edge width into the resolution the detail supports.
_NATIVE_EDGE_PX = 1.5
# A periodic trace of interpolation in the second derivative must stand this far above its neighbours.
_RESAMPLING_PEAK = 4.0


@dataclass(frozen=True)
class QualityFlag:
    """One problem with a page: a stable ``code``, messages for the supervisor, and the evidence."""

    code: str
    message_en: str
    message_hi: str
    value: float
    threshold: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class PageMeasures:
    """What ``measure_page`` found; None where the page gives nothing to measure (no ink)."""

    dpi: float
    effective_dpi: float
    resolution_evidence: str  # "metadata", "pixel repetition x k", "interpolation", or "" (none)
    paper_level: float
    ink_level: float | None
    contrast: float | None  # paper level minus the median grey of the marks
    edge_width_mm: float | None
    cut_off_mm: float
    cut_off_edge: str
    length_mm: float
    grain: float | None = None  # σ of the paper's pixel noise, grey levels; None: too little blank paper


_EDGE_HI = {"left": "बाएँ", "right": "दाएँ", "top": "ऊपरी", "bottom": "निचले"}


# --------------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------------


def _paper_level(gray: np.ndarray, dpi: float, exclude_small: np.ndarray) -> float:
    """The 90th percentile of the page's grey levels (lid and holes left out), from a ~100 dpi subsample."""
    step = max(1, round(dpi / 100.0))
    sub = gray[::step, ::step]
    keep = cv2.resize(exclude_small, (sub.shape[1], sub.shape[0]), interpolation=cv2.INTER_NEAREST) == 0
    return float(np.percentile(sub[keep] if keep.any() else sub, 90))


def _grain(pixels: np.ndarray, small: np.ndarray, scale: float, exclude_small: np.ndarray) -> float | None:
    """σ of the paper's grain in grey levels, the noisiest channel of a colour page (cleanup.grain), on blank paper
    a few pixels away from every mark, the lid and the holes, found on the ~100-dpi grey copy, where area averaging
    has already taken most of the grain away."""
    threshold, _ = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    # Otsu splits a page with little ink inside the paper's own grain: marks are at least GRAIN_MARK_DEPTH under
    # the paper's bright end as well.
    threshold = min(threshold, float(np.percentile(small, 90)) - GRAIN_MARK_DEPTH)
    busy = ((small <= threshold) | (exclude_small > 0)).astype(np.uint8)
    paper_small = cv2.dilate(busy, np.ones((5, 5), np.uint8)) == 0  # 2 px at 100 dpi: ~6 px at 300 dpi
    rows = np.arange(0, pixels.shape[0], GRAIN_ROW_STEP)
    ys = np.minimum((rows * scale).astype(np.intp), small.shape[0] - 1)
    xs = np.minimum((np.arange(pixels.shape[1]) * scale).astype(np.intp), small.shape[1] - 1)
    paper = paper_small[np.ix_(ys, xs)]
    pairs = paper[:, 1:] & paper[:, :-1]
    if np.count_nonzero(pairs) < 1000:
        return None
    return neighbour_noise_sigma(pixels[rows], pairs)


def _edge_width_px(region: np.ndarray, seg: int = 16) -> float | None:
    """Median 10-90 % width of the strong edges, in pixels, from rows and columns of ``region``.

    Each ``seg``-pixel run of a sampled row holding a full ink/paper step gives contrast / steepest
    one-pixel step, which is the width of the ramp (1 for a perfect step, ~2.56 sigma for a blur).
    """
    h, w = region.shape
    samples_c: list[np.ndarray] = []
    samples_g: list[np.ndarray] = []
    for arr in (region[:: max(1, h // 300), :], region[:, :: max(1, w // 300)].T):
        a = arr.astype(np.int16)
        n = (a.shape[1] // seg) * seg
        if n < 2 * seg:
            continue
        for off in (0, seg // 2):
            b = a[:, off : off + n - (seg if off else 0)].reshape(a.shape[0], -1, seg)
            samples_c.append((b.max(axis=2) - b.min(axis=2)).ravel())
            samples_g.append(np.abs(np.diff(b, axis=2)).max(axis=2).ravel())
    if not samples_c:
        return None
    c = np.concatenate(samples_c)
    g = np.concatenate(samples_g)
    top = float(np.percentile(c, 99.5))
    keep = c >= max(40.0, 0.6 * top)
    if int(keep.sum()) < 50:
        return None
    return float(np.median(c[keep] / np.maximum(g[keep], 1)))


def _repetition_factor(region: np.ndarray) -> float:
    """Enlargement by pixel repetition (nearest neighbour): strong edges then fall on only some phases
    of the repeat period; returns the factor k (e.g. 3 for 100 -> 300 dpi) or 1."""
    h, _w = region.shape
    a = region[:: max(1, h // 400)].astype(np.int16)
    d = np.abs(np.diff(a, axis=1))
    if not (d > 0).any():
        return 1.0
    top = float(np.percentile(d[d > 0], 99))
    _ys, xs = np.nonzero(d >= max(20.0, 0.5 * top))
    if xs.size < 500:
        return 1.0
    best = 1.0
    for period in (2, 3, 4, 5, 6, 8):
        counts = np.bincount(xs % period, minlength=period)
        occupied = int((counts >= 0.03 * xs.size / period).sum())
        if occupied < period:
            best = max(best, period / occupied)
    return best


def _interpolation_trace(region: np.ndarray) -> bool:
    """A periodic pattern in the second derivative along rows (Gallagher's test for enlarged images).

    Interpolation puts output pixels at a repeating set of sub-pixel offsets, so the mean absolute
    second derivative per column repeats with the period of the resampling.  Only periods 3 and 5
    are looked at: periods 2, 4 and 8 are also what JPEG's 8x8 blocks leave behind.
    """
    h, w = region.shape
    if w < 64:
        return False
    rows = region[:: max(1, h // 400)].astype(np.float32)
    d2 = np.abs(rows[:, :-2] - 2.0 * rows[:, 1:-1] + rows[:, 2:]).mean(axis=0)
    d2 -= d2.mean()
    spec = np.abs(np.fft.rfft(d2 * np.hanning(d2.size)))
    n = d2.size
    for f0 in (1 / 3, 1 / 5, 2 / 5):
        i = round(f0 * n)
        lo, hi = max(1, i - 40), min(spec.size, i + 40)
        around = np.concatenate([spec[lo : max(lo, i - 3)], spec[min(hi, i + 4) : hi]])
        if around.size and spec[max(0, i - 2) : i + 3].max() > _RESAMPLING_PEAK * float(np.median(around)):
            return True
    return False


def _cut_off(small: np.ndarray, px_mm: float, borders: BorderResult, scale: float) -> tuple[float, str]:
    """Millimetres of paper edge touched by content, on the worst edge.

    Only marks that also reach at least 2 mm into the page count, so the shadow of the paper edge or
    a sliver of lid is not content; punch holes and the lid are not content either.
    """
    h, w = small.shape
    lid: np.ndarray = np.zeros((h, w), np.uint8)
    if borders.band_mask.any():
        lid = cv2.resize(borders.band_mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    holes = np.zeros((h, w), np.uint8)
    for cx, cy, r in borders.punch_holes + borders.white_holes:
        cv2.circle(holes, (round(cx * scale), round(cy * scale)), round(r * scale + 1.5 * px_mm), 1, -1)
    ink = (local_contrast(small, px_mm) >= 40) & (lid == 0) & (holes == 0)
    n, labels, stats, _c = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    if n <= 1:
        return 0.0, ""
    strip = max(1, round(1.0 * px_mm))
    reach = 2.0 * px_mm
    grow = np.ones((2 * strip + 1, 2 * strip + 1), np.uint8)
    worst, worst_edge = 0.0, ""
    # Per edge: the band of paper within ``strip`` of the image edge or of the lid on that side.
    near_lid = cv2.dilate(lid, grow) > 0
    for edge in ("left", "right", "top", "bottom"):
        zone = np.zeros((h, w), bool)
        if edge == "left":
            zone[:, :strip] = True
        elif edge == "right":
            zone[:, w - strip :] = True
        elif edge == "top":
            zone[:strip] = True
        else:
            zone[h - strip :] = True
        if lid.any():
            side = np.zeros((h, w), bool)
            half = {
                "left": (slice(None), slice(0, w // 2)),
                "right": (slice(None), slice(w // 2, w)),
                "top": (slice(0, h // 2), slice(None)),
                "bottom": (slice(h // 2, h), slice(None)),
            }[edge]
            side[half] = True
            zone |= near_lid & side
        touching = np.unique(labels[zone & ink])
        touching = touching[touching > 0]
        if touching.size == 0:
            continue
        inward = cv2.CC_STAT_WIDTH if edge in ("left", "right") else cv2.CC_STAT_HEIGHT
        deep = [i for i in touching if stats[i, inward] >= reach]
        if not deep:
            continue
        touched = zone & np.isin(labels, deep)
        along = touched.any(axis=1) if edge in ("left", "right") else touched.any(axis=0)
        mm = float(np.count_nonzero(along)) / px_mm
        if mm > worst:
            worst, worst_edge = mm, edge
    return worst, worst_edge


def measure_page(
    gray: np.ndarray,
    dpi: float,
    *,
    content_box: tuple[int, int, int, int] | None = None,
    borders: BorderResult | None = None,
    blank: BlankResult | None = None,
    colour: np.ndarray | None = None,
) -> PageMeasures:
    """Measure what the quality flags are decided on (see ``assess_page``)."""
    check_page(gray, dpi)
    if colour is not None and colour.shape[:2] != gray.shape[:2]:
        raise ValueError(f"colour page {colour.shape[:2]} and grey page {gray.shape[:2]} differ in size")
    if borders is None:
        borders = find_borders(gray, dpi)
    if blank is None:
        blank = blank_score(gray, dpi, borders=borders)
    h, w = gray.shape
    if borders.small is not None and borders.shape == (h, w):
        small, scale = borders.small, borders.scale
    else:
        small, scale = reduce_to_dpi(gray, dpi, 100.0)
    px_mm = dpi * scale / 25.4
    exclude: np.ndarray = np.zeros(small.shape, np.uint8)
    if borders.band_mask.any():
        exclude = cv2.resize(
            borders.band_mask.astype(np.uint8), (small.shape[1], small.shape[0]), interpolation=cv2.INTER_NEAREST
        )
    for cx, cy, r in borders.punch_holes + borders.white_holes:
        cv2.circle(exclude, (round(cx * scale), round(cy * scale)), round(r * scale * 1.3 + 2), 1, -1)
    paper, ink = _paper_level(gray, dpi, exclude), blank.ink_level

    x0, y0, x1, y1 = content_box if content_box is not None else borders.content_box
    # The lid's soft edge and the holes' rims are not the page's sharpness: measure without them.
    source = clean_borders(gray, borders) if borders.has_borders else gray
    region = source[max(0, y0) : min(h, y1), max(0, x0) : min(w, x1)]
    width_px = _edge_width_px(region) if ink is not None and region.size else None

    effective, evidence = float(dpi), ""
    if dpi < MIN_EFFECTIVE_DPI:
        evidence = "metadata"
    if region.size and ink is not None:
        k = _repetition_factor(region)
        if k > 1.0 and dpi / k < effective:
            effective, evidence = dpi / k, f"pixel repetition x {k:g}"
        elif width_px is not None and width_px > _NATIVE_EDGE_PX and _interpolation_trace(region):
            supported = dpi * _NATIVE_EDGE_PX / width_px
            if supported < effective:
                effective, evidence = supported, "interpolation"
    edge_mm = None if width_px is None else width_px * 25.4 / dpi
    cut_mm, cut_edge = _cut_off(small, px_mm, borders, scale)
    px0, py0, px1, py1 = borders.paper_box
    length = max(px1 - px0, py1 - py0) * 25.4 / dpi
    grain = _grain(gray if colour is None else colour, small, scale, exclude)
    return PageMeasures(
        dpi=float(dpi),
        effective_dpi=round(effective, 1),
        resolution_evidence=evidence,
        paper_level=round(paper, 1),
        ink_level=None if ink is None else round(ink, 1),
        contrast=None if blank.ink_median is None else round(paper - blank.ink_median, 1),
        edge_width_mm=None if edge_mm is None else round(edge_mm, 3),
        cut_off_mm=round(cut_mm, 1),
        cut_off_edge=cut_edge,
        length_mm=round(length, 1),
        grain=None if grain is None else round(grain, 1),
    )


# --------------------------------------------------------------------------------------------------
# Flags
# --------------------------------------------------------------------------------------------------


def _flag(code: str, en: str, hi: str, value: float, threshold: float) -> QualityFlag:
    return QualityFlag(code, en, hi, round(float(value), 3), round(float(threshold), 3))


def flags_from_measures(m: PageMeasures, skew: float | None = None) -> list[QualityFlag]:
    """The flags a page's measurements call for, in a fixed order."""
    out: list[QualityFlag] = []
    if m.effective_dpi < MIN_EFFECTIVE_DPI:
        how = "set in the scan" if m.resolution_evidence == "metadata" else "judged from the image detail"
        how_hi = "स्कैन सेटिंग के अनुसार" if m.resolution_evidence == "metadata" else "छवि के विवरण से आँका गया"
        out.append(
            _flag(
                "low_resolution",
                f"Resolution is about {m.effective_dpi:.0f} dpi ({how}), below the minimum of "
                f"{MIN_EFFECTIVE_DPI:.0f} dpi. Rescan the page at 300 dpi.",
                f"रिज़ॉल्यूशन लगभग {m.effective_dpi:.0f} dpi है ({how_hi}), जो न्यूनतम {MIN_EFFECTIVE_DPI:.0f} dpi से "
                "कम है। पृष्ठ को 300 dpi पर दोबारा स्कैन करें।",
                m.effective_dpi,
                MIN_EFFECTIVE_DPI,
            )
        )
    if m.paper_level < MIN_PAPER_LEVEL:
        out.append(
            _flag(
                "too_dark",
                f"Page is too dark: paper brightness {m.paper_level:.0f} of 255 (minimum {MIN_PAPER_LEVEL:.0f}). "
                "Rescan with a higher brightness setting.",
                f"पृष्ठ बहुत गहरा है: काग़ज़ की चमक 255 में से {m.paper_level:.0f} (न्यूनतम {MIN_PAPER_LEVEL:.0f})। "
                "ब्राइटनेस बढ़ाकर दोबारा स्कैन करें।",
                m.paper_level,
                MIN_PAPER_LEVEL,
            )
        )
    if m.ink_level is not None and m.ink_level > MAX_INK_LEVEL:
        out.append(
            _flag(
                "too_light",
                f"Page is too light: the darkest writing is only {m.ink_level:.0f} of 255 "
                f"(should be {MAX_INK_LEVEL:.0f} or darker). Rescan with a lower brightness setting.",
                f"पृष्ठ बहुत हल्का है: सबसे गहरी लिखावट भी 255 में से {m.ink_level:.0f} है "
                f"({MAX_INK_LEVEL:.0f} या उससे गहरी होनी चाहिए)। ब्राइटनेस घटाकर दोबारा स्कैन करें।",
                m.ink_level,
                MAX_INK_LEVEL,
            )
        )
    if m.contrast is not None and m.contrast < MIN_CONTRAST:
        out.append(
            _flag(
                "low_contrast",
                f"Low contrast between writing and paper: {m.contrast:.0f} grey levels (minimum "
                f"{MIN_CONTRAST:.0f}). Rescan in grayscale with higher contrast.",
                f"लिखावट और काग़ज़ के बीच कंट्रास्ट कम है: {m.contrast:.0f} स्तर (न्यूनतम {MIN_CONTRAST:.0f})। "
                "ग्रेस्केल में अधिक कंट्रास्ट के साथ दोबारा स्कैन करें।",
                m.contrast,
                MIN_CONTRAST,
            )
        )
    if m.edge_width_mm is not None:
        limit = max(BLUR_MIN_MM, BLUR_MAX_PIXELS * 25.4 / m.effective_dpi)
        if m.edge_width_mm > limit:
            out.append(
                _flag(
                    "blurred",
                    f"Image is blurred: edges are {m.edge_width_mm:.2f} mm wide (at most {limit:.2f} mm). "
                    "Clean the scanner glass, keep the sheet flat and still, and rescan.",
                    f"छवि धुंधली है: किनारे {m.edge_width_mm:.2f} मिमी चौड़े हैं (अधिकतम {limit:.2f} मिमी)। "
                    "स्कैनर का शीशा साफ़ करें, काग़ज़ सीधा और स्थिर रखें और दोबारा स्कैन करें।",
                    m.edge_width_mm,
                    limit,
                )
            )
    if m.cut_off_mm > CUT_OFF_MM:
        edge_hi = _EDGE_HI.get(m.cut_off_edge, "")
        out.append(
            _flag(
                "content_cut_off",
                f"Writing touches the {m.cut_off_edge} edge of the page along {m.cut_off_mm:.0f} mm: part of "
                "the page may be cut off. Realign the sheet and rescan.",
                f"लिखावट पृष्ठ के {edge_hi} किनारे को {m.cut_off_mm:.0f} मिमी तक छू रही है: पृष्ठ का कुछ भाग कट "
                "गया हो सकता है। काग़ज़ ठीक से रखकर दोबारा स्कैन करें।",
                m.cut_off_mm,
                CUT_OFF_MM,
            )
        )
    if skew is not None and abs(skew) > SKEW_MAX_CORRECTABLE:
        out.append(
            _flag(
                "skew_uncorrectable",
                f"Page is tilted by {abs(skew):.1f}°, more than the {SKEW_MAX_CORRECTABLE:.0f}° that can be "
                "straightened. Place the sheet straight in the feeder and rescan.",
                f"पृष्ठ {abs(skew):.1f}° तिरछा है, जो सीधा की जा सकने वाली सीमा {SKEW_MAX_CORRECTABLE:.0f}° से "
                "अधिक है। काग़ज़ को फ़ीडर में सीधा रखकर दोबारा स्कैन करें।",
                abs(skew),
                SKEW_MAX_CORRECTABLE,
            )
        )
    if m.grain is not None and m.grain > MAX_GRAIN:
        out.append(
            _flag(
                "grainy",
                f"Image is grainy: noise of {m.grain:.0f} grey levels on the blank paper (at most "
                f"{MAX_GRAIN:.0f}); text may not be read reliably. Rescan; if every page is grainy, check the "
                "scanner's brightness and contrast settings or have it serviced.",
                f"छवि में दाने (नॉइज़) हैं: ख़ाली काग़ज़ पर {m.grain:.0f} स्तर का नॉइज़ (अधिकतम {MAX_GRAIN:.0f}); "
                "हो सकता है कि लिखावट ठीक से न पढ़ी जा सके। दोबारा स्कैन करें; यदि हर पृष्ठ पर ऐसा हो, तो स्कैनर की "
                "ब्राइटनेस और कंट्रास्ट सेटिंग जाँचें या उसकी सर्विस करवाएँ।",
                m.grain,
                MAX_GRAIN,
            )
        )
    if m.length_mm > MAX_SHEET_MM:
        out.append(_double_feed_flag(m.length_mm, MAX_SHEET_MM, None))
    return out


def assess_page(
    gray: np.ndarray,
    dpi: float,
    *,
    skew: float | None,
    content_box: tuple[int, int, int, int] | None,
    borders: BorderResult | None = None,
    blank: BlankResult | None = None,
    colour: np.ndarray | None = None,
) -> list[QualityFlag]:
    """Quality flags of one page.

    ``gray`` should be the capture turned upright but not yet deskewed (the resampling of a deskew
    would hide the traces of an enlarged low-resolution scan); ``skew`` is the measured skew in
    degrees (None if unknown); ``content_box`` (x0, y0, x1, y1) limits the sharpness measures to the
    content (default: the one ``find_borders`` gives).  ``borders`` and ``blank`` (this page's
    ``find_borders`` and ``blank_score`` results) may be passed to save their cost.  ``colour``, the same
    page in RGB where it was captured in colour, has its grain measured in its noisiest channel: the grey page
    averages independent noise in the channels away, while the eye sees it as coloured speckle.
    """
    m = measure_page(gray, dpi, content_box=content_box, borders=borders, blank=blank, colour=colour)
    return flags_from_measures(m, skew)


# --------------------------------------------------------------------------------------------------
# Double feed
# --------------------------------------------------------------------------------------------------


def _double_feed_flag(length: float, limit: float, usual: float | None) -> QualityFlag:
    if usual is None:
        en_why = f"longer than any single sheet ({limit:.0f} mm)"
        hi_why = f"किसी भी एक काग़ज़ ({limit:.0f} मिमी) से अधिक है"
    else:
        en_why = f"much longer than the batch's usual {usual:.0f} mm (limit {limit:.0f} mm)"
        hi_why = f"बैच की सामान्य लंबाई {usual:.0f} मिमी से बहुत अधिक है (सीमा {limit:.0f} मिमी)"
    return _flag(
        "double_feed",
        f"Page is {length:.0f} mm long, {en_why}: two sheets may have been fed together. Check the paper "
        "and rescan these sheets one at a time.",
        f"पृष्ठ की लंबाई {length:.0f} मिमी है, जो {hi_why}: संभवतः दो काग़ज़ एक साथ चले गए। काग़ज़ जाँचें और इन्हें "
        "एक-एक करके दोबारा स्कैन करें।",
        length,
        limit,
    )


def _double_feed_limit(lengths: np.ndarray) -> tuple[float, float] | None:
    """(median, length above which a page is out of line) or None if the batch is too small."""
    if lengths.size < DOUBLE_FEED_MIN_PAGES:
        return None
    med = float(np.median(lengths))
    mad = float(np.median(np.abs(lengths - med)))
    # z = 0.6745 (x - med) / MAD > Z  <=>  x > med + Z * MAD / 0.6745; with MAD = 0 (every page the
    # same length, the usual case) only the minimum excess applies.
    return med, med + max(DOUBLE_FEED_Z * mad / 0.6745, DOUBLE_FEED_MIN_EXCESS_MM)


def double_feed_outliers(lengths_mm: Sequence[float]) -> list[int]:
    """Indexes of pages much longer than the rest of their batch (robust median/MAD rule).

    Only longer pages are reported: two sheets fed overlapping make a longer image, while a shorter
    page is a smaller sheet, not a feeding fault.  Batches of fewer than 4 pages give no verdict.
    """
    arr = np.asarray(lengths_mm, dtype=np.float64)
    if arr.ndim != 1 or not np.isfinite(arr).all():
        raise ValueError("lengths_mm must be a flat sequence of finite numbers")
    found = _double_feed_limit(arr)
    if found is None:
        return []
    _med, limit = found
    return [int(i) for i in np.flatnonzero(arr > limit)]


def assess_batch_lengths(lengths_mm: Sequence[float]) -> dict[int, QualityFlag]:
    """``double_feed`` flags by page index for the pages ``double_feed_outliers`` picks out."""
    arr = np.asarray(lengths_mm, dtype=np.float64)
    found = _double_feed_limit(arr) if arr.ndim == 1 and np.isfinite(arr).all() else None
    out: dict[int, QualityFlag] = {}
    if found is None:
        return out
    med, limit = found
    for i in double_feed_outliers(lengths_mm):
        out[i] = _double_feed_flag(float(arr[i]), limit, med)
    return out


def page_length_mm(height_px: int, dpi: float) -> float:
    """Length of a capture along the feed (its height before any turn), in millimetres."""
    if not dpi > 0:
        raise ValueError(f"dpi must be positive, got {dpi}")
    return height_px * 25.4 / dpi

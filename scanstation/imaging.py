"""Page analysis on 2-D uint8 grayscale arrays: skew, orientation, blank backs and dark scanner borders."""

from __future__ import annotations

import math

import cv2
import numpy as np
from PIL import Image

# Analysis runs on a reduced copy: about 100 dpi for an A4 page at 300 dpi, which keeps text lines
# resolved (a 10 pt line is ~14 px) while making every step cheap.
_ANALYSIS_LONG_SIDE = 1200
# For blank detection ink must be this much darker than the paper; faint bleed-through is not.
_MIN_INK_CONTRAST = 40
# For layout (skew, orientation, content box) on the flattened page, light print still counts.
_MIN_LAYOUT_CONTRAST = 25
_SKEW_RANGE = 15.0
# Scanner lids and backgrounds are near black; a darker-than-this band at an edge is a border.
_LID_MAX = 80


# --------------------------------------------------------------------------------------------------
# Conversions and geometry
# --------------------------------------------------------------------------------------------------


def to_gray(img: Image.Image) -> np.ndarray:
    """A C-contiguous uint8 grayscale copy of ``img`` (1-bit, palette, RGB(A), 16-bit all accepted)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        return np.ascontiguousarray(np.clip(arr * (255.0 / hi), 0, 255).round().astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Transparent areas are paper, not black.
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    gray = img if img.mode == "L" else img.convert("L")
    return np.array(gray, dtype=np.uint8, copy=True, order="C")


def rotate_quarter(gray: np.ndarray, ccw_quarter: int) -> np.ndarray:
    """Rotate counter-clockwise by ``ccw_quarter`` degrees (a multiple of 90), exactly (no resampling)."""
    if ccw_quarter % 90:
        raise ValueError(f"quarter turns only, got {ccw_quarter}")
    return np.ascontiguousarray(np.rot90(gray, (ccw_quarter // 90) % 4))


def deskew(gray: np.ndarray, angle: float) -> np.ndarray:
    """Straighten content that is rotated ``angle`` degrees counter-clockwise (one cubic resampling).

    Same size, white where the turned page does not reach.  Also accepts H x W x 3 colour arrays, so a
    colour capture can be corrected with the angle measured on its grey copy.
    """
    if angle == 0.0:
        return gray.copy()
    h, w = gray.shape[:2]
    # OpenCV's positive angle is counter-clockwise too, so -angle turns the content back.
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), -angle, 1.0)
    white = (255, 255, 255) if gray.ndim == 3 else 255
    return cv2.warpAffine(gray, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT, borderValue=white)


def _reduce(gray: np.ndarray, long_side: int = _ANALYSIS_LONG_SIDE) -> tuple[np.ndarray, float]:
    """Area-averaged reduction (specks fade instead of surviving); returns (small, small/full scale)."""
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError("expected a 2-D uint8 grayscale array")
    h, w = gray.shape
    scale = min(1.0, long_side / max(h, w))
    if scale == 1.0:
        return gray, 1.0
    small = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return small, scale


def _ink_threshold(small: np.ndarray, min_contrast: int = _MIN_INK_CONTRAST) -> int:
    """Otsu's threshold (ink is <= it), but never closer to the paper than ``min_contrast``."""
    otsu, _ = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    paper = float(np.percentile(small, 75))
    return int(min(otsu, paper - min_contrast))


def _edge_runs(dark: np.ndarray) -> np.ndarray:
    """Per row, the number of consecutive dark pixels from the left edge."""
    w = dark.shape[1]
    light = ~dark
    has_light = light.any(axis=1)
    first_light = np.argmax(light, axis=1)
    return np.where(has_light, first_light, w)


def _border_mask(dark: np.ndarray) -> np.ndarray:
    """Dark bands that start at an image edge (scanner lid around a smaller or skewed sheet).

    A band is measured as the run of dark pixels from each edge, row by row (column by column), and
    median-filtered along the edge so text touching the band or a lone blot does not widen it.
    """
    h, w = dark.shape
    mask = np.zeros_like(dark, dtype=bool)
    for view_dark, view_mask, length in (
        (dark, mask, h),  # left
        (dark[:, ::-1], mask[:, ::-1], h),  # right
        (dark.T, mask.T, w),  # top
        (dark.T[:, ::-1], mask.T[:, ::-1], w),  # bottom
    ):
        runs = _edge_runs(view_dark)
        if np.count_nonzero(runs) < 0.1 * length:
            continue  # a few dark edge pixels are content or dirt, not a lid band
        smooth = _running_median(runs.astype(np.float32), max(3, (length // 50) | 1))
        depth = view_dark.shape[1]
        cols = np.arange(depth)[None, :]
        view_mask |= cols < np.minimum(smooth[:, None] + 2, depth)
    return mask


def _running_median(x: np.ndarray, k: int) -> np.ndarray:
    pad = k // 2
    xp = np.pad(x, pad, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(xp, k)
    return np.median(windows, axis=1)


def _flatten(small: np.ndarray) -> np.ndarray:
    """Divide by the local paper level (a grey closing wider than any stroke): uneven lighting, yellowed
    paper and light print all end up as dark-on-white with the same threshold."""
    k = max(15, round(max(small.shape) / 60)) | 1
    bg = cv2.morphologyEx(small, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    flat = small.astype(np.float32) * 255.0 / np.maximum(bg, 1).astype(np.float32)
    return np.clip(flat, 0, 255).astype(np.uint8)


def _analyse(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, float]:
    """The reduced, flattened page with dark borders painted white; its ink and border masks, the ink
    threshold and the reduction scale."""
    small, scale = _reduce(gray)
    border = _border_mask(small <= min(_ink_threshold(small), _LID_MAX))
    flat = _flatten(small)
    if border.any():
        # The soft paper edge next to a band is a little lighter than the band: widen the mask.
        border = cv2.dilate(border.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        flat[border] = 255
    # After flattening, light print (20-50 levels under the paper) is still sharp enough to measure.
    t = _ink_threshold(flat, _MIN_LAYOUT_CONTRAST)
    return flat, flat <= t, border, t, scale


# --------------------------------------------------------------------------------------------------
# Skew
# --------------------------------------------------------------------------------------------------


def _profile_score(xs: np.ndarray, ys: np.ndarray, angle: float, offset: float) -> float:
    """Sharpness of the row and column projections of ink points for content rotated by ``angle``.

    Text lines and ruled lines make the projection peaky exactly when the projection direction follows
    them; the sum of squared bin counts measures that.  Rows and columns are both used so tables and
    pages turned by a quarter still give a clear optimum.
    """
    t = math.radians(angle)
    s, c = math.sin(t), math.cos(t)
    # A line rotated counter-clockwise by t (y down) keeps x*sin t + y*cos t constant.
    rows = np.bincount((xs * s + ys * c + offset).astype(np.intp))
    cols = np.bincount((xs * c - ys * s + offset).astype(np.intp))
    return float(np.dot(rows, rows) + np.dot(cols, cols))


def _search(xs: np.ndarray, ys: np.ndarray, offset: float, angles: np.ndarray) -> np.ndarray:
    return np.array([_profile_score(xs, ys, float(a), offset) for a in angles])


def _refine_peak(angles: np.ndarray, scores: np.ndarray) -> float:
    i = int(np.argmax(scores))
    if 0 < i < len(angles) - 1:
        y0, y1, y2 = scores[i - 1], scores[i], scores[i + 1]
        den = y0 - 2 * y1 + y2
        if den < 0:
            return float(angles[i] + 0.5 * (y0 - y2) / den * (angles[1] - angles[0]))
    return float(angles[i])


def _skew_from_ink(ink: np.ndarray) -> float | None:
    """Projection-profile search: 0.5 degree steps over the range, then 0.1 and 0.03 with interpolation."""
    ys, xs = np.nonzero(ink)
    n = xs.size
    h, w = ink.shape
    # Fewer than ~0.05 % ink pixels (a blank back) or a page that is mostly ink has no lines to follow.
    if n < max(200, 0.0005 * h * w) or n > 0.5 * h * w:
        return None
    xs = xs.astype(np.float32) - w / 2.0
    ys = ys.astype(np.float32) - h / 2.0
    offset = math.hypot(w, h) / 2.0 + 2.0
    # Coarse search on a subsample, then finer steps on all points around the best angle.
    step = max(1, n // 40_000)
    coarse = np.arange(-_SKEW_RANGE, _SKEW_RANGE + 1e-9, 0.5)
    sc = _search(xs[::step], ys[::step], offset, coarse)
    if sc.max() <= np.median(sc) * 1.01:
        return None  # no direction stands out: no text lines or rules to go by
    best = float(coarse[int(np.argmax(sc))])
    step = max(1, n // 150_000)
    mid = np.arange(best - 0.6, best + 0.6 + 1e-9, 0.1)
    best = _refine_peak(mid, _search(xs[::step], ys[::step], offset, mid))
    fine = np.arange(best - 0.12, best + 0.12 + 1e-9, 0.03)
    best = _refine_peak(fine, _search(xs[::step], ys[::step], offset, fine))
    return best


def estimate_skew(gray: np.ndarray) -> float | None:
    """Degrees by which the content is rotated counter-clockwise (Pillow's convention), in [-45, 45).

    Searches +/-15 degrees.  Returns None only when the page has no usable content (blank, or no text
    lines or rules to measure).
    """
    _small, ink, _border, _t, _scale = _analyse(gray)
    angle = _skew_from_ink(ink)
    if angle is None:
        return None
    return float(((angle + 45.0) % 90.0) - 45.0)


# --------------------------------------------------------------------------------------------------
# Orientation
# --------------------------------------------------------------------------------------------------


def _remove_rules(ink: np.ndarray) -> np.ndarray:
    """Drop long ruled lines (tables, boxes) so only text and handwriting remain."""
    u8 = ink.astype(np.uint8)
    h, w = ink.shape
    horiz = cv2.morphologyEx(u8, cv2.MORPH_OPEN, np.ones((1, max(15, w // 12)), np.uint8))
    vert = cv2.morphologyEx(u8, cv2.MORPH_OPEN, np.ones((max(15, h // 12), 1), np.uint8))
    rules = cv2.dilate(cv2.bitwise_or(horiz, vert), np.ones((3, 3), np.uint8))
    return ink & (rules == 0)


def _text_size(ink: np.ndarray) -> float:
    """Typical character/word thickness in pixels, independent of the text direction."""
    n, _labels, stats, _c = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    if n <= 1:
        return 0.0
    thick = np.minimum(stats[1:, 2], stats[1:, 3]).astype(np.float64)
    area = stats[1:, 4].astype(np.float64)
    # Median over ink pixels rather than components, so specks and loose dots do not dominate.
    order = np.argsort(thick)
    cum = np.cumsum(area[order])
    return float(thick[order][np.searchsorted(cum, cum[-1] / 2.0)])


def _elongated_area(u8: np.ndarray, along_x: bool) -> float:
    n, _l, stats, _c = cv2.connectedComponentsWithStats(u8, connectivity=8)
    if n <= 1:
        return 0.0
    w = stats[1:, 2].astype(np.float64)
    h = stats[1:, 3].astype(np.float64)
    area = stats[1:, 4].astype(np.float64)
    long_ = (w >= 4 * h) if along_x else (h >= 4 * w)
    return float(area[long_].sum())


def _line_axis(text: np.ndarray, size: float) -> tuple[bool, float]:
    """Are the text lines horizontal?  Smearing along the true line direction makes long bars."""
    k = max(3, round(size * 1.2))
    u8 = text.astype(np.uint8)
    horiz = cv2.morphologyEx(u8, cv2.MORPH_CLOSE, np.ones((1, k), np.uint8))
    vert = cv2.morphologyEx(u8, cv2.MORPH_CLOSE, np.ones((k, 1), np.uint8))
    ah, av = _elongated_area(horiz, True), _elongated_area(vert, False)
    total = ah + av
    if total == 0:
        return True, 0.0
    return ah >= av, abs(ah - av) / total


def _segments(active: np.ndarray, min_gap: int) -> list[tuple[int, int]]:
    """Runs of True in a 1-D mask, merging runs separated by fewer than ``min_gap`` False items."""
    idx = np.flatnonzero(active)
    if idx.size == 0:
        return []
    out: list[tuple[int, int]] = []
    start = prev = int(idx[0])
    for i in idx[1:]:
        i = int(i)
        if i - prev > min_gap:
            out.append((start, prev + 1))
            start = i
        prev = i
    out.append((start, prev + 1))
    return out


def _longest_run(row: np.ndarray) -> int:
    """Length of the longest run of True in a 1-D boolean array."""
    if not row.any():
        return 0
    padded = np.concatenate(([False], row, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return int((edges[1::2] - edges[::2]).max())


def _up_down(text: np.ndarray, size: float) -> tuple[float, float]:
    """Evidence that horizontal text is upright: (score in [-1, 1], amount of evidence in words).

    Text lines are found by smearing along the line (so columns and ragged lines stay apart), then
    split into words at column gaps.  A Devanagari word carries a head-line (shirorekha): one row
    inked across the whole word, in its upper part when upright.  Other words are pooled per line
    and vote by ascender vs descender ink around the x-height band (Latin has more ascenders).
    """
    k = max(3, round(size * 1.2))
    blobs = cv2.morphologyEx(text.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((1, k), np.uint8))
    n, labels, stats, _c = cv2.connectedComponentsWithStats(blobs, connectivity=8)
    deva = deva_n = 0.0
    asc = desc = 0.0
    latin_words = 0
    for i in range(1, n):
        x, y, w, h = (int(v) for v in stats[i, :4])
        if h < 5 or w < 3 * h:
            continue  # not a text line (a dot, a picture, a vertical fragment)
        line = text[y : y + h, x : x + w] & (labels[y : y + h, x : x + w] == i)
        latin_rows = np.zeros(h, dtype=np.float64)
        words = line_deva = 0
        for c0, c1 in _segments(line.any(axis=0), 1 + round(0.06 * h)):
            seg = line[:, c0:c1]
            sw = c1 - c0
            fill = seg.sum(axis=1)
            inked = np.flatnonzero(fill)
            if inked.size < 5:
                continue
            top, bottom = int(inked[0]), int(inked[-1]) + 1
            height = bottom - top
            if fill.sum() > 0.55 * sw * height:
                continue  # solid blobs (redactions, black bars, logos) are not letters
            peak = int(np.argmax(fill))
            head = seg[max(0, peak - 1) : peak + 2].any(axis=0)
            if sw >= 1.2 * height and _longest_run(head) >= 0.85 * sw:
                line_deva += 1
                rel = (peak + 0.5 - top) / height
                if rel < 0.45 or rel > 0.55:
                    deva += 1.0 if rel < 0.5 else -1.0
                    deva_n += 1.0
                continue
            latin_rows += fill
            words += 1
        # Pieces of Devanagari (short words, loose matras) would vote like upside-down Latin, so a line
        # with any head-line word gives no Latin evidence.
        if words >= 3 and line_deva == 0:
            core = np.flatnonzero(latin_rows >= 0.45 * latin_rows.max())
            asc += float(latin_rows[: core[0]].sum())
            desc += float(latin_rows[core[-1] + 1 :].sum())
            latin_words += words
    score = total = 0.0
    if deva_n:
        score, total = deva, deva_n
    if asc + desc > 0:
        # Ascender/descender ink pooled over the page (single lines are noisy); letter groups / 4 ~ words.
        wt = latin_words / 4.0
        score += wt * float(np.clip(3.0 * (asc - desc) / (asc + desc), -1.0, 1.0))
        total += wt
    if total == 0:
        return 0.0, 0.0
    return score / total, total


def estimate_orientation(gray: np.ndarray) -> tuple[int, float]:
    """Counter-clockwise quarter turn of the content (0, 90, 180 or 270) and a confidence in [0, 1].

    To make the page upright rotate it by ``-turn`` (``rotate_quarter(gray, -turn)``).  A confidence
    near 0 means the page gave no evidence (blank, pictures only); callers should then leave it alone
    and flag it rather than guess.
    """
    small, ink, _border, t, _scale = _analyse(gray)
    angle = _skew_from_ink(ink)
    if angle is not None and abs(angle) > 0.05:
        # Straighten the grey image, not the binary one: a rotated mask gets staircase edges that
        # spoil the head-line (row fill) measure.
        ink = deskew(small, angle) <= t
    text = _remove_rules(ink)
    size = _text_size(text)
    if size <= 0:
        return 0, 0.0
    horizontal, axis_conf = _line_axis(text, size)
    if not horizontal:
        # Turn clockwise: content that was turned 90 CCW becomes upright, 270 becomes upside down.
        text = np.rot90(text, -1)
    score, weight = _up_down(text, size)
    if weight == 0:
        return (0 if horizontal else 90), 0.0
    upright = score >= 0
    turn = (0 if upright else 180) if horizontal else (90 if upright else 270)
    # Little evidence (a few words) or a near tie between directions both lower the confidence.
    confidence = float(min(1.0, abs(score) * 2.0) * min(1.0, axis_conf * 2.0) * min(1.0, weight / 16.0))
    return turn, confidence


# --------------------------------------------------------------------------------------------------
# Blank pages and borders
# --------------------------------------------------------------------------------------------------


def _ink_components(gray: np.ndarray, dpi: int) -> tuple[np.ndarray, float]:
    """Component stats (x, y, w, h, area) of ink at <= 150 dpi, and pixels per mm; borders excluded."""
    h, w = gray.shape
    eff = min(float(dpi), 150.0)
    small, _ = _reduce(gray, max(1, round(max(h, w) * eff / dpi)))
    px_mm = eff / 25.4
    sh, sw = small.shape
    # Local paper level: a grey-level closing removes ink smaller than ~5 mm, then smooth; so uneven
    # illumination and a yellowed sheet do not count as ink.
    k = max(3, round(5 * px_mm) | 1)
    paper = cv2.blur(cv2.morphologyEx(small, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8)), (k, k))
    ink = (paper.astype(np.int16) - small.astype(np.int16)) >= _MIN_INK_CONTRAST
    border = _border_mask(small <= min(_ink_threshold(small), _LID_MAX))
    if border.any():
        ink &= ~cv2.dilate(border.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    my, mx = round(0.04 * sh), round(0.04 * sw)
    ink[:my] = False
    ink[sh - my :] = False
    ink[:, :mx] = False
    ink[:, sw - mx :] = False
    _n, _labels, stats, _c = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    return stats[1:], px_mm


def is_blank(gray: np.ndarray, dpi: int) -> bool:
    """True for a page with no significant ink: a duplex back with noise or faint bleed-through.

    A single printed line, a stamp or a lone signature is not blank.  Ignored: specks under ~0.35 mm,
    marks less than 40 grey levels darker than the local paper (bleed-through), the outer 4 % of the
    page and dark scanner borders.  Solid areas wider than ~5 mm count only by their edges.  Errs
    towards "not blank": dropping a page silently is worse than keeping a blank back.
    """
    if dpi <= 0:
        raise ValueError("dpi must be positive")
    stats, px_mm = _ink_components(gray, dpi)
    if stats.size == 0:
        return True
    extent = np.maximum(stats[:, 2], stats[:, 3]) / px_mm
    area = stats[:, 4] / (px_mm * px_mm)
    significant = (extent >= 0.35) & (area >= 0.1)
    total_mm2 = float(area[significant].sum())
    count = int(significant.sum())
    # A short printed word is already ~3-5 mm2 of ink; a signature 30+ mm2.
    return not (total_mm2 >= 2.0 or (count >= 4 and total_mm2 >= 1.0))


def find_content_box(gray: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), exclusive ends, around the page content excluding dark scanner borders.

    A margin of 1.5 % of the shorter side is added.  Without content, the area inside the borders.
    """
    h, w = gray.shape
    _small, ink, border, _t, scale = _analyse(gray)
    # Ignore specks: open with a 2x2 element at analysis scale (~0.5 mm).
    ink = cv2.morphologyEx(ink.astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8)).astype(bool)
    area = ink if ink.any() else ~border
    if not area.any():
        return 0, 0, w, h
    ys, xs = np.nonzero(area)
    margin = 0.015 * min(h, w)
    x0 = max(0, math.floor(xs.min() / scale - margin))
    y0 = max(0, math.floor(ys.min() / scale - margin))
    x1 = min(w, math.ceil((xs.max() + 1) / scale + margin))
    y1 = min(h, math.ceil((ys.max() + 1) / scale + margin))
    return x0, y0, x1, y1


def crop_borders(gray: np.ndarray) -> np.ndarray:
    """A copy with dark scanner border bands painted white; page size and content stay untouched."""
    _small, _ink, border, _t, _scale = _analyse(gray)
    out = gray.copy()
    if not border.any():
        return out
    h, w = gray.shape
    full = cv2.resize(border.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    out[full.astype(bool)] = 255
    return out

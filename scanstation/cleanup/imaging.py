"""Page analysis on 2-D uint8 grayscale arrays: skew, orientation, blank backs and dark scanner borders.

Skew lives in :mod:`scanstation.cleanup.skew` and orientation in :mod:`scanstation.cleanup.orientation`; both are
re-exported here, the module the page pipeline and the acceptance checks use.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from PIL import Image

from scanstation.cleanup.orientation import estimate_orientation
from scanstation.cleanup.skew import estimate_skew

__all__ = [
    "crop_borders",
    "deskew",
    "estimate_orientation",
    "estimate_skew",
    "find_content_box",
    "from_array",
    "is_blank",
    "rotate_quarter",
    "to_gray",
]

# Analysis runs on a reduced copy: about 100 dpi for an A4 page at 300 dpi, which keeps text lines
# resolved (a 10 pt line is ~14 px) while making every step cheap.
_ANALYSIS_LONG_SIDE = 1200
# For blank detection ink must be this much darker than the paper; faint bleed-through is not.
_MIN_INK_CONTRAST = 40
# For layout (content box) on the flattened page, light print still counts.
_MIN_LAYOUT_CONTRAST = 25
# Scanner lids and backgrounds are near black; a darker-than-this band at an edge is a border.
_LID_MAX = 80


# --------------------------------------------------------------------------------------------------
# Conversions and geometry
# --------------------------------------------------------------------------------------------------


def from_array(arr: np.ndarray, mode: str, dpi: int) -> Image.Image:
    """An analysed/corrected array back as a page image: RGB or grey, thresholded to 1-bit if ``mode`` is "1"
    (bitonal scans stay bitonal after the one resampling), with its resolution recorded."""
    out = Image.fromarray(np.ascontiguousarray(arr), "RGB" if arr.ndim == 3 else "L")
    if mode == "1":
        out = out.point(lambda v: 255 if v >= 128 else 0).convert("1", dither=Image.Dither.NONE)
    out.info["dpi"] = (dpi, dpi)
    return out


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


def deskew(gray: np.ndarray, angle: float, *, linear: bool = False) -> np.ndarray:
    """Straighten content that is rotated ``angle`` degrees counter-clockwise (one cubic resampling).

    Same size, white where the turned page does not reach.  Also accepts H x W x 3 colour arrays, so a
    colour capture can be corrected with the angle measured on its grey copy.  ``linear`` resamples
    linearly, three times faster: for an image that is thresholded next (the copy tesseract reads), where
    cubic's sharper edges do not survive the threshold anyway.
    """
    if angle == 0.0:
        return gray.copy()
    h, w = gray.shape[:2]
    # OpenCV's positive angle is counter-clockwise too, so -angle turns the content back.
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), -angle, 1.0)
    white = (255, 255, 255) if gray.ndim == 3 else 255
    flags = cv2.INTER_LINEAR if linear else cv2.INTER_CUBIC
    return cv2.warpAffine(gray, m, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=white)


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

    A single printed line, a stamp, a lone (even faint pencil) signature is not blank.  The decision
    and its evidence live in ``scanstation.cleanup.blank.blank_score``; this is the boolean view of it.
    """
    if dpi <= 0:
        raise ValueError("dpi must be positive")
    from scanstation.cleanup.blank import blank_score  # blank imports borders, which imports this module

    return blank_score(gray, dpi).blank


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

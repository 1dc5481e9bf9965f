"""Blank-page detection for duplex backs: noise and bleed-through are blank, a line, stamp or signature is not."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from scanstation.cleanup.borders import BorderResult, check_page, find_borders, local_contrast, reduce_to_dpi

# Measured at <= 150 dpi: a 0.3 mm pen or pencil stroke is still ~2 px wide there.
_ANALYSIS_DPI = 150.0
# Ink at least this much darker than the local paper is a mark, whatever its edges look like.
STRONG_CONTRAST = 40
# Fainter marks (pencil, a washed-out stamp) count only if their edges are sharp: bleed-through is the
# other side's ink seen through the paper, so it is both faint and diffused.
WEAK_CONTRAST_MIN = 14
WEAK_SHARPNESS_MIN = 0.25  # mean steepest step / mean contrast, per pixel at the analysis scale
WEAK_MIN_AREA_MM2 = 1.0
WEAK_MIN_EXTENT_MM = 2.0
# A strong mark smaller than this is dust or a sensor speck.
SPECK_EXTENT_MM = 0.35
SPECK_AREA_MM2 = 0.1
# More specks than this on a page mark a noisy scan (dust on a clean glass gives a few dozen at most).
NOISY_SPECKS = 60
# A page is content when it carries this much ink: one short printed word is already 3-5 mm2 and a
# signature 30+; a tick mark is ~2.  Errs towards "not blank": dropping a page is the worse mistake.
CONTENT_MM2 = 2.0
CONTENT_FEW_MARKS = (4, 1.0)  # or at least 4 marks making 1 mm2 (a few dots of handwriting)
FEW_MARK_MM2 = 0.2
# Marks lying entirely in this outer fraction of the page are paper-edge shadows and dog-ears.
EDGE_MARGIN = 0.025
# An ADF streak (dirt on the glass): one thin line along the feed, nearly the whole page long.
STREAK_MAX_WIDTH_MM = 0.8
STREAK_MIN_LENGTH = 0.8


@dataclass(frozen=True)
class BlankResult:
    """Verdict on one page with its evidence: ``ink_mm2`` of significant ink in ``components`` marks."""

    blank: bool
    ink_mm2: float
    components: int
    reason: str
    # Grey level of the darkest ink (5th percentile over the marks) and of the typical ink (median),
    # None without marks; quality.py judges "too light" and "low contrast" by them, so noise and
    # bleed-through never count as ink.
    ink_level: float | None = None
    ink_median: float | None = None


def _colour_contrast(rgb_small: np.ndarray, px_mm: float) -> np.ndarray:
    """How much more saturated than the local paper each pixel is (a red or violet stamp, yellow marker)."""
    chroma = cv2.subtract(rgb_small.max(axis=2), rgb_small.min(axis=2))
    k = max(3, round(5.0 * px_mm) | 1)
    paper = cv2.blur(cv2.morphologyEx(chroma, cv2.MORPH_OPEN, np.ones((k, k), np.uint8)), (k, k))
    return cv2.subtract(chroma, paper).astype(np.int16)


def _excluded(borders: BorderResult, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Lid bands and punch holes at the analysis scale: they are the scanner, not the page."""
    h, w = shape
    out: np.ndarray = np.zeros((h, w), np.uint8)
    if borders.band_mask.any():
        out = cv2.resize(borders.band_mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
        out = cv2.dilate(out, np.ones((3, 3), np.uint8))
    for cx, cy, r in borders.punch_holes + borders.white_holes:
        cv2.circle(out, (round(cx * scale), round(cy * scale)), round(r * scale * 1.3 + 2), 1, -1)
    return out.astype(bool)


def _noise_sigma(small: np.ndarray) -> float:
    """Robust standard deviation of pixel noise (median absolute deviation from a 3x3 median)."""
    step = max(1, small.size // 400_000)
    resid = small.astype(np.int16) - cv2.medianBlur(small, 3).astype(np.int16)
    return 1.4826 * float(np.median(np.abs(resid.ravel()[::step])))


def blank_score(image: np.ndarray, dpi: float, *, borders: BorderResult | None = None) -> BlankResult:
    """Is this page blank (a duplex back with scanner noise or bleed-through)?

    ``image`` is a 2-D uint8 grey array or an H x W x 3 uint8 RGB array (then colour marks that are
    light in grey, such as a yellow or pink stamp, count too).  Ignored: dark lid bands and punch holes
    (``borders``, found here if not given), specks under ~0.35 mm, marks lying in the outer 2.5 % of the
    page, a single ADF streak along the feed, and faint marks with diffused edges (bleed-through).
    A faint mark with sharp edges (a pencil signature) is content.
    """
    rgb = image if isinstance(image, np.ndarray) and image.ndim == 3 else None
    if rgb is not None and (rgb.dtype != np.uint8 or rgb.shape[2] != 3 or rgb.size == 0):
        raise ValueError("expected an H x W x 3 uint8 RGB array")
    gray = image if rgb is None else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    check_page(gray, dpi)
    if borders is None:
        borders = find_borders(gray, dpi)
    small, scale = reduce_to_dpi(gray, dpi, _ANALYSIS_DPI)
    px_mm = dpi * scale / 25.4
    h, w = small.shape
    contrast = local_contrast(small, px_mm)
    if rgb is not None:
        contrast = np.maximum(contrast, _colour_contrast(reduce_to_dpi(rgb, dpi, _ANALYSIS_DPI)[0], px_mm))
    excluded = _excluded(borders, (h, w), scale)
    contrast[excluded] = 0

    sigma = _noise_sigma(small)
    # On a very noisy scan (sensor noise at full strength, no averaging at <= 150 dpi) the strong
    # threshold also rises above the noise.
    strong = (contrast >= max(float(STRONG_CONTRAST), 5.0 * sigma)).astype(np.uint8)
    ns, s_labels, s_stats, _c = cv2.connectedComponentsWithStats(strong, connectivity=8)

    def geometry(stats: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        x, y, bw, bh, area = (stats[1:, i].astype(np.float64) for i in range(5))
        mx, my = EDGE_MARGIN * w, EDGE_MARGIN * h
        in_margin = (x + bw <= mx) | (x >= w - mx) | (y + bh <= my) | (y >= h - my)
        streak = ((bw / px_mm <= STREAK_MAX_WIDTH_MM) & (bh >= STREAK_MIN_LENGTH * h)) | (
            (bh / px_mm <= STREAK_MAX_WIDTH_MM) & (bw >= STREAK_MIN_LENGTH * w)
        )
        return np.maximum(bw, bh) / px_mm, area / (px_mm * px_mm), in_margin, streak

    s_extent, s_area, s_margin, s_streak = geometry(s_stats)
    # Specks are judged in millimetres, and in pixels too: at <= 150 dpi nothing averages them away,
    # so a speck next to a noisy pixel already spans 3 px.
    s_px = np.maximum(s_stats[1:, 2], s_stats[1:, 3])
    strong_mark = (s_extent >= SPECK_EXTENT_MM) & (s_area >= SPECK_AREA_MM2) & (s_px >= 3) & (s_stats[1:, 4] >= 5)
    if int((~strong_mark).sum()) > NOISY_SPECKS:
        # A noisy scan: specks also clump into slightly bigger blobs, so a mark must be bigger too.
        strong_mark &= (s_extent >= 1.5 * SPECK_EXTENT_MM) & (s_area >= 2.5 * SPECK_AREA_MM2)
    keep_s = strong_mark & ~s_margin & ~s_streak
    strong_mm2 = float(s_area[keep_s].sum())
    if strong_mm2 >= 2 * CONTENT_MM2:
        # Plainly written on: the faint-mark analysis cannot change the verdict.
        union = np.concatenate(([False], keep_s))[s_labels]
        count = int(keep_s.sum())
        p5, p50 = (float(v) for v in np.percentile(small[union], [5, 50]))
        reason = f"{strong_mm2:.1f} mm² of ink in {count} marks"
        return BlankResult(False, round(strong_mm2, 2), count, reason, p5, p50)

    # Faint marks are found on a lightly smoothed copy so sensor noise does not break strokes up.
    smooth = cv2.GaussianBlur(contrast.astype(np.float32), (3, 3), 0.8)
    weak_t = max(float(WEAK_CONTRAST_MIN), 4.0 * sigma)
    faint = (smooth >= weak_t).astype(np.uint8)
    nf, f_labels, f_stats, _c = cv2.connectedComponentsWithStats(faint, connectivity=8)
    if ns <= 1 and nf <= 1:
        return BlankResult(True, 0.0, 0, "no marks on the page")
    f_extent, f_area, f_margin, f_streak = geometry(f_stats)
    f_cand = (f_area >= WEAK_MIN_AREA_MM2) & (f_extent >= WEAK_MIN_EXTENT_MM)
    # Sharpness of the faint candidates (mean steepest step over mean contrast, per pixel): a pencil
    # stroke drops to the paper within a pixel or two, bleed-through fades over several.
    sharp = np.zeros(nf - 1)
    if f_cand.any():
        # Strong pixels (and their rims) are left out: a dust speck inside a bleed-through blob would
        # otherwise lend it sharp edges.  Strong marks are judged on their own above.
        near_strong = cv2.dilate(strong, np.ones((5, 5), np.uint8)) > 0
        sel = np.concatenate(([False], f_cand))[f_labels] & ~near_strong
        gx = np.abs(np.diff(smooth, axis=1, append=smooth[:, -1:]))
        steep = np.maximum(gx, np.abs(np.diff(smooth, axis=0, append=smooth[-1:, :])))
        # Noise makes every region look a little "sharp": its typical step (the median over the
        # page, which is mostly paper) is taken off first.
        floor = float(np.median(steep[:: max(1, h // 300), :: max(1, w // 300)]))
        lab = f_labels[sel]
        grad = np.bincount(lab, weights=steep[sel], minlength=nf)
        level = np.bincount(lab, weights=smooth[sel], minlength=nf)
        count_px = np.bincount(lab, minlength=nf)
        sharp = ((grad - floor * count_px) / np.maximum(level, 1e-6))[1:]
    faint_mark = f_cand & (sharp >= WEAK_SHARPNESS_MIN)

    keep_f = faint_mark & ~f_margin & ~f_streak
    union = np.concatenate(([False], keep_s))[s_labels] | np.concatenate(([False], keep_f))[f_labels]
    total = float(np.count_nonzero(union)) / (px_mm * px_mm)
    count = cv2.connectedComponents(union.astype(np.uint8), connectivity=8)[0] - 1 if total else 0
    # The "few marks" rule counts only marks of a pen dot's size or more.
    few = int((keep_s & (s_area >= FEW_MARK_MM2)).sum() + (keep_f & (f_area >= FEW_MARK_MM2)).sum())
    blank = not (total >= CONTENT_MM2 or (few >= CONTENT_FEW_MARKS[0] and total >= CONTENT_FEW_MARKS[1]))
    dark: float | None = None
    typical: float | None = None
    if total >= CONTENT_MM2:
        dark, typical = (float(v) for v in np.percentile(small[union], [5, 50]))
    if not blank:
        n_faint = int(keep_f.sum())
        extra = f" ({n_faint} faint with sharp edges)" if n_faint else ""
        reason = f"{total:.1f} mm² of ink in {count} marks{extra}"
        return BlankResult(False, round(total, 2), count, reason, dark, typical)
    parts = []
    specks = int((s_area < 2.5 * SPECK_AREA_MM2).sum())
    diffused = int((f_cand & ~faint_mark).sum())
    if specks:
        parts.append(f"{specks} specks")
    if diffused:
        parts.append(f"{diffused} faint diffused marks (bleed-through)")
    if (strong_mark & s_streak).any() or (faint_mark & f_streak).any():
        parts.append("a scanner streak")
    if (strong_mark & s_margin).any() or (faint_mark & f_margin).any():
        parts.append("marks at the paper edge")
    if count:
        parts.append(f"{total:.1f} mm² of ink in {count} marks")
    reason = "only " + ", ".join(parts) if parts else "no marks on the page"
    return BlankResult(True, round(total, 2), count, reason, dark, typical)


def is_blank(gray: np.ndarray, dpi: int) -> bool:
    """``blank_score(gray, dpi).blank``: the ``imaging.is_blank`` contract."""
    return blank_score(gray, dpi).blank

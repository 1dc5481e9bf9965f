"""Dark scanner borders and punch holes: find them without touching content, then paint them as paper.

Why ~500 lines in one module: finding a border and proving it is not content (a ruled line, a stamp, a
dark photo at the edge) use the same edge-run statistics; the checks are the bulk of the module and
belong beside what they check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import cv2
import numpy as np

# Geometry is found on a reduced copy: 100 dpi resolves a 6 mm punch hole as a 24 px disc and a 1 mm
# lid band as 4 px, and makes every step cheap on a 300-600 dpi capture.
ANALYSIS_DPI = 100.0
# ISO 838 holes are 6 mm wide, 80 mm apart, centred 12 mm from the edge; office punches in India vary,
# so accept 4-9 mm discs whose centre lies within 30 mm of the paper edge.
HOLE_DIAMETER_MM = (4.0, 9.0)
HOLE_MAX_EDGE_DISTANCE_MM = 30.0
HOLE_PAIR_SPACING_MM = (55.0, 115.0)
# Scanner lids and black backgrounds are darker than this; a shadowed part of the sheet is not.
LID_MAX = 80.0
# Ink is this much darker than the local paper (bleed-through and paper texture are not).
INK_CONTRAST = 40
# The content box gets this much paper around the ink, so cropping never shaves a stroke.
CONTENT_MARGIN_MM = 3.0
# A lid band is painted a little beyond its edge: the soft paper edge and its shadow are not content.
_BAND_GROW_MM = 0.6
# A lid region (outside the sheet's outline) is at least this big: a wedge's thin tip counts, a stray
# dark speck at the very corner does not.
_LID_MIN_AREA_MM2 = 1.0
_LID_MIN_LENGTH_MM = 3.0
_EDGE_STRIP_MM = 1.0
# Marks smaller than this (dust, sensor specks) do not move the content box.
_SPECK_MM = 0.5


class EdgeWidths(NamedTuple):
    """Width of the dark lid band along each edge (median over the middle half of that edge), in pixels
    of the input; 0 = no band."""

    left: int
    top: int
    right: int
    bottom: int


@dataclass(frozen=True)
class BorderResult:
    """What ``find_borders`` found on one page; coordinates are pixels of the input image.

    ``content_box`` (x0, y0, x1, y1, exclusive ends) encloses every mark on the paper plus a margin of
    ``CONTENT_MARGIN_MM``, never the lid or punch holes; it is the whole paper when the page has no
    marks.  ``paper_box`` encloses the sheet itself (the image minus the lid bands).  ``ink_box`` is
    the tight box of the marks, or None on an empty page.  ``punch_holes`` are dark holes
    (the black lid seen through the paper) as (cx, cy, r); ``white_holes`` likewise, seen against a
    white backing (they need no cleaning but are not content either).
    """

    content_box: tuple[int, int, int, int]
    dark_bands: EdgeWidths
    punch_holes: list[tuple[float, float, float]]
    paper_box: tuple[int, int, int, int]
    ink_box: tuple[int, int, int, int] | None
    shape: tuple[int, int]
    # Holes against a white backing (a faint disc or shadow arc): nothing to paint, but not content.
    white_holes: list[tuple[float, float, float]]
    # Lid mask at analysis scale (True = lid), kept so clean_borders can paint the exact wedge of a
    # skewed sheet; ``scale`` is analysis pixels per input pixel.
    band_mask: np.ndarray = field(repr=False, compare=False)
    scale: float = field(repr=False, compare=False, default=1.0)
    # The reduced page itself, for callers that analyse at the same scale (quality).
    small: np.ndarray | None = field(repr=False, compare=False, default=None)

    @property
    def has_borders(self) -> bool:
        return any(self.dark_bands) or bool(self.punch_holes)

    def turned(self, k: int) -> BorderResult:
        """The same findings for the page turned as ``np.rot90(gray, k)`` turns it (k quarter turns
        counter-clockwise; negative is clockwise): exact, so an upright copy needs no second search."""

        def box(b: tuple[int, int, int, int], width: int) -> tuple[int, int, int, int]:
            x0, y0, x1, y1 = b
            return (y0, width - x1, y1, width - x0)  # one turn counter-clockwise

        def point(p: tuple[float, float, float], width: int) -> tuple[float, float, float]:
            cx, cy, r = p
            return (cy, width - 1 - cx, r)

        out = self
        for _ in range(k % 4):
            hh, ww = out.shape
            out = BorderResult(
                content_box=box(out.content_box, ww),
                dark_bands=EdgeWidths(
                    out.dark_bands.top, out.dark_bands.right, out.dark_bands.bottom, out.dark_bands.left
                ),
                punch_holes=[point(p, ww) for p in out.punch_holes],
                paper_box=box(out.paper_box, ww),
                ink_box=None if out.ink_box is None else box(out.ink_box, ww),
                shape=(ww, hh),
                white_holes=[point(p, ww) for p in out.white_holes],
                band_mask=np.ascontiguousarray(np.rot90(out.band_mask)),
                scale=out.scale,
                small=None if out.small is None else np.ascontiguousarray(np.rot90(out.small)),
            )
        return out


# --------------------------------------------------------------------------------------------------
# Shared helpers (also used by blank and quality)
# --------------------------------------------------------------------------------------------------


def check_page(gray: np.ndarray, dpi: float) -> None:
    """Raise ValueError unless ``gray`` is a non-empty 2-D uint8 array and ``dpi`` is positive."""
    if not isinstance(gray, np.ndarray) or gray.ndim != 2 or gray.dtype != np.uint8 or gray.size == 0:
        raise ValueError("expected a non-empty 2-D uint8 grayscale array")
    if not dpi > 0:
        raise ValueError(f"dpi must be positive, got {dpi}")


def reduce_to_dpi(img: np.ndarray, dpi: float, target_dpi: float) -> tuple[np.ndarray, float]:
    """Area-averaged copy at about ``target_dpi`` (never enlarged); returns (small, small/input scale).

    Area averaging makes specks fade instead of surviving as full-strength pixels.
    """
    scale = min(1.0, target_dpi / dpi)
    if scale >= 0.999:
        return img, 1.0
    h, w = img.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA), scale


def local_contrast(small: np.ndarray, px_mm: float, window_mm: float = 5.0) -> np.ndarray:
    """How much darker each pixel is than the local paper (int16, >= 0 on ink).

    The paper level is a grey closing wider than any pen or print stroke, smoothed: uneven lighting
    and yellowed paper are not ink; solid areas wider than the window count only by their edges.
    """
    k = max(3, round(window_mm * px_mm) | 1)
    paper = cv2.blur(cv2.morphologyEx(small, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8)), (k, k))
    return cv2.subtract(paper, small).astype(np.int16)


def _paper_level(small: np.ndarray) -> float:
    # A quarter of the pixels is plenty for a percentile of a whole page.
    return float(np.percentile(small[::2, ::2], 75))


# --------------------------------------------------------------------------------------------------
# Lid bands
# --------------------------------------------------------------------------------------------------


def _lid_threshold(small: np.ndarray) -> float | None:
    """Grey level under which a pixel may be lid; None if the image edge shows no dark lid at all."""
    paper = _paper_level(small)
    ring = np.concatenate([small[0], small[-1], small[:, 0], small[:, -1]])
    limit = min(110.0, 0.6 * paper)
    dark = ring[ring <= limit]
    if dark.size < max(4, 0.02 * ring.size):
        return None
    lid = float(np.median(dark))
    return min(limit, (lid + paper) / 2.0)


def _paper_hull(small: np.ndarray, threshold: float, px_mm: float) -> np.ndarray:
    """Filled convex hull of the sheet: large bright regions, with thin dark marks (text, rules) closed."""
    bright = (small > threshold).astype(np.uint8)
    k = max(3, round(3.0 * px_mm) | 1)
    # Outside the image counts as dark, so a thin lid band at the image edge is not closed over.
    # (the closing would otherwise erode paper that reaches the image edge, hence the final OR).
    closed = cv2.morphologyEx(
        bright, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0
    )
    bright = np.bitwise_or(closed, bright)
    n, labels, stats, _c = cv2.connectedComponentsWithStats(bright, connectivity=4)
    h, w = small.shape
    big = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= 0.02 * h * w]
    hull = np.zeros((h, w), np.uint8)
    if not big:
        hull[:] = 1
        return hull
    keep = np.isin(labels, big).astype(np.uint8)
    contours, _h = cv2.findContours(keep, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    pts = np.vstack(contours)
    cv2.fillConvexPoly(hull, cv2.convexHull(pts), 1)
    return hull


def _lid_mask(small: np.ndarray, px_mm: float) -> np.ndarray:
    """Lid: dark, fairly uniform regions outside the sheet's hull, reaching the image edge."""
    h, w = small.shape
    threshold = _lid_threshold(small)
    if threshold is None:
        return np.zeros((h, w), bool)
    outside = _paper_hull(small, threshold, px_mm) == 0
    dark = (small <= threshold + 25) & outside
    n, labels, stats, _c = cv2.connectedComponentsWithStats(dark.astype(np.uint8), connectivity=8)
    mask = np.zeros((h, w), bool)
    min_area = _LID_MIN_AREA_MM2 * px_mm * px_mm
    for i in range(1, n):
        x, y, bw, bh, area = stats[i]
        if x > 0 and y > 0 and x + bw < w and y + bh < h:
            continue  # does not reach the image edge
        if area < min_area or max(bw, bh) < _LID_MIN_LENGTH_MM * px_mm:
            continue
        box = (slice(y, y + bh), slice(x, x + bw))
        region = labels[box] == i
        values = small[box]
        if float(np.median(values[region])) > min(threshold, LID_MAX):
            continue  # a shadowed or grey part of the sheet, not the near-black lid
        # A lid is near-uniform dark; text on a shadowed corner or a photo is textured.  Thin wedges
        # of lid are mostly soft paper edge, so only their core (1 px in from every side) is judged.
        core = cv2.erode(region.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE) > 0
        if np.count_nonzero(core) >= 20 and float(values[core].std()) > 25:
            continue
        mask[box] |= region
    if mask.any():
        # The paper edge is soft (lid shadow): paint a little beyond the dark band.
        g = max(1, round(_BAND_GROW_MM * px_mm))
        mask = cv2.dilate(mask.astype(np.uint8), np.ones((2 * g + 1, 2 * g + 1), np.uint8)).astype(bool)
        mask &= outside | (cv2.dilate(outside.astype(np.uint8), np.ones((2 * g + 1, 2 * g + 1), np.uint8)) > 0)
    return mask


def _edge_widths(mask: np.ndarray, scale: float) -> EdgeWidths:
    """Width of the lid band along the middle half of each edge (the median: a wedge counts at its middle)."""

    def depth(view: np.ndarray) -> int:
        n = view.shape[0]
        mid = view[n // 4 : n - n // 4]
        if mid.size == 0 or not mid[:, 0].any():
            return 0
        light = ~mid
        runs = np.where(light.any(axis=1), np.argmax(light, axis=1), mid.shape[1])
        return round(float(np.median(runs)) / scale)

    return EdgeWidths(depth(mask), depth(mask.T), depth(mask[:, ::-1]), depth(mask.T[:, ::-1]))


# --------------------------------------------------------------------------------------------------
# Punch holes
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Hole:
    cx: float
    cy: float
    r: float
    edge: str
    along: float  # position along that edge, analysis pixels
    round_: bool  # clearly a disc on its own (no partner needed)


def _edge_distance(paper: np.ndarray) -> np.ndarray:
    """Distance of each pixel to the paper edge: the lid or, where the sheet fills the scan, the image edge."""
    h, w = paper.shape
    if paper.all():  # no lid: the distance to the nearest image edge, without a distance transform
        ys = np.minimum(np.arange(h), np.arange(h)[::-1]).astype(np.float32) + 1
        xs = np.minimum(np.arange(w), np.arange(w)[::-1]).astype(np.float32) + 1
        return np.minimum(ys[:, None], xs[None, :])
    framed = cv2.copyMakeBorder(paper.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    return cv2.distanceTransform(framed, cv2.DIST_L2, 3)[1:-1, 1:-1]


def _near_edge(cx: float, cy: float, dist: np.ndarray, px_mm: float) -> bool:
    h, w = dist.shape
    if not (0 <= cx < w and 0 <= cy < h):
        return False
    return float(dist[int(cy), int(cx)]) / px_mm <= HOLE_MAX_EDGE_DISTANCE_MM


def _hole(cx: float, cy: float, r: float, shape: tuple[int, int], round_: bool) -> _Hole:
    h, w = shape
    # Which paper edge it sits by decides which way its partners lie.
    edges = {"left": cx, "right": w - cx, "top": cy, "bottom": h - cy}
    edge = min(edges, key=lambda k: edges[k])
    return _Hole(cx, cy, r, edge, cy if edge in ("left", "right") else cx, round_)


def _paired(holes: list[_Hole], px_mm: float, alone_ok: bool) -> list[_Hole]:
    """Holes with a partner 55-115 mm away along the same edge (punches make 2 or 4), plus, if
    ``alone_ok``, single holes that are unmistakable discs."""
    lo, hi = (s * px_mm for s in HOLE_PAIR_SPACING_MM)
    kept = []
    for hole in holes:
        partner = any(o is not hole and o.edge == hole.edge and lo <= abs(o.along - hole.along) <= hi for o in holes)
        if partner or (alone_ok and hole.round_):
            kept.append(hole)
    return kept


def _holes(small: np.ndarray, lid: np.ndarray, dist: np.ndarray, px_mm: float, level: float) -> list[_Hole]:
    """Dark solid discs of punch-hole size near the paper edge (the black lid seen through the sheet)."""
    dark = ((small <= min(110.0, 0.6 * level)) & ~lid).astype(np.uint8)
    d_min, d_max = (d * px_mm for d in HOLE_DIAMETER_MM)
    # Opening with a disc half the smallest hole removes strokes, rules and stamp rings, so a hole
    # punched through a printed line or a table frame comes out as a clean disc.
    k = max(3, round(0.5 * d_min))
    dark = cv2.morphologyEx(dark, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    n, labels, stats, cents = cv2.connectedComponentsWithStats(dark, connectivity=8)
    out: list[_Hole] = []
    for i in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[i])
        if not (d_min <= bw <= d_max and d_min <= bh <= d_max and 0.78 <= bw / bh <= 1.28):
            continue
        fill = area / (bw * bh)
        cx, cy = (float(v) for v in cents[i])
        if not 0.64 <= fill <= 0.9 or not _near_edge(cx, cy, dist, px_mm):
            continue
        comp = (labels[y : y + bh, x : x + bw] == i).astype(np.uint8)
        contours, _h = cv2.findContours(comp, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        hull_area = cv2.contourArea(cv2.convexHull(np.vstack(contours)))
        if hull_area <= 0 or area / hull_area < 0.88:
            continue  # not a solid disc (a letter, a ring of a stamp)
        core = cv2.erode(comp, np.ones((3, 3), np.uint8)) > 0
        if core.any() and float(small[y : y + bh, x : x + bw][core].std()) > 25:
            continue  # holes show the uniform lid; printed marks this big are textured or hollow
        round_ = 0.72 <= fill <= 0.84 and 0.86 <= bw / bh <= 1.16 and area / hull_area >= 0.94
        out.append(_hole(cx, cy, math.sqrt(area / math.pi), small.shape, round_))
    return _paired(out, px_mm, alone_ok=True)


def _fit_circle(xs: np.ndarray, ys: np.ndarray) -> tuple[float, float, float, float]:
    """Least-squares circle (Kasa) through points: (cx, cy, r, rms distance from the circle)."""
    a = np.column_stack([xs, ys, np.ones_like(xs)])
    b = xs * xs + ys * ys
    (p, q, c), *_ = np.linalg.lstsq(a, b, rcond=None)
    cx, cy = p / 2.0, q / 2.0
    r = math.sqrt(max(c + cx * cx + cy * cy, 0.0))
    rms = float(np.sqrt(np.mean((np.hypot(xs - cx, ys - cy) - r) ** 2)))
    return float(cx), float(cy), r, rms


def _white_holes(contrast: np.ndarray, dist: np.ndarray, px_mm: float) -> list[_Hole]:
    """Holes against a white or grey backing: a faint disc or just the arc of its shadow.

    Nothing needs painting, but blank detection and the cut-off check must not take the arcs for
    writing.  They must come in pairs along one edge and be faint (a shadow, not ink), so a printed
    letter O is never one.
    """
    d_min, d_max = (d * px_mm for d in HOLE_DIAMETER_MM)
    zone = dist <= (HOLE_MAX_EDGE_DISTANCE_MM + HOLE_DIAMETER_MM[1]) * px_mm
    out: list[_Hole] = []
    # Two passes: a faint grey disc with its shadow, and the shadow alone (a disc may merge with
    # bleed-through around it at the lower threshold).
    for low in (15, 30):
        marks = ((contrast >= low) & (contrast < 200) & zone).astype(np.uint8)
        for hole in _circles(marks, contrast, d_min, d_max):
            if _near_edge(hole[0], hole[1], dist, px_mm) and not any(
                math.hypot(hole[0] - o.cx, hole[1] - o.cy) < hole[2] for o in out
            ):
                out.append(_hole(*hole, contrast.shape, False))
    return _paired(out, px_mm, alone_ok=False)


def _circles(marks: np.ndarray, contrast: np.ndarray, d_min: float, d_max: float) -> list[tuple[float, float, float]]:
    """Faint marks of hole size lying on a circle (at least a third of it): (cx, cy, r)."""
    _n, labels, stats, _c = cv2.connectedComponentsWithStats(marks, connectivity=8)
    big, small_side = np.maximum(stats[:, 2], stats[:, 3]), np.minimum(stats[:, 2], stats[:, 3])
    sized = (big >= d_min) & (big <= d_max + 2) & (small_side >= 0.3 * d_min) & (stats[:, 4] >= 10)
    out: list[tuple[float, float, float]] = []
    for i in np.flatnonzero(sized[1:]) + 1:
        x, y, bw, bh, _area = (int(v) for v in stats[i])
        comp = labels[y : y + bh, x : x + bw] == i
        values = contrast[y : y + bh, x : x + bw][comp]
        if np.count_nonzero(values > 160) > 0.05 * values.size:
            continue  # printed or written ink, not a shadow
        contours, _h = cv2.findContours(comp.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        pts = np.vstack(contours).reshape(-1, 2).astype(np.float64)
        if len(pts) < 12:
            continue
        cx, cy, r, rms = _fit_circle(pts[:, 0] + x, pts[:, 1] + y)
        if not (d_min / 2 <= r <= d_max / 2 + 1) or rms > max(1.0, 0.15 * r):
            continue
        angles = np.arctan2(pts[:, 1] + y - cy, pts[:, 0] + x - cx)
        if np.unique(((angles + math.pi) / (math.pi / 6)).astype(int) % 12).size < 4:
            continue
        out.append((cx, cy, r))
    return out


# --------------------------------------------------------------------------------------------------
# Content box and the public API
# --------------------------------------------------------------------------------------------------


def _ink_mask(contrast: np.ndarray, px_mm: float, exclude: np.ndarray) -> np.ndarray:
    """Marks on the paper (print, pen, stamps), specks removed; ``exclude`` (lid, holes) left out."""
    ink = (contrast >= INK_CONTRAST) & ~exclude
    n, labels, stats, _c = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    if n <= 1:
        return ink
    big = np.maximum(stats[1:, 2], stats[1:, 3]) >= _SPECK_MM * px_mm
    keep = np.concatenate(([False], big))
    return keep[labels]


def find_borders(gray: np.ndarray, dpi: float) -> BorderResult:
    """Locate the dark scanner lid around the sheet, dark punch holes, and the box around the content.

    Only dark, uniform regions outside the sheet's convex outline and reaching the image edge count
    as lid, so text, signatures or stamps near the edge are never taken for a border.  With a white
    scanner backing there are no bands and holes look like paper: nothing is reported.
    """
    check_page(gray, dpi)
    h, w = gray.shape
    small, scale = reduce_to_dpi(gray, dpi, ANALYSIS_DPI)
    px_mm = dpi * scale / 25.4
    sh, sw = small.shape
    lid = _lid_mask(small, px_mm)
    paper = ~lid
    contrast = local_contrast(small, px_mm)
    holes: list[_Hole] = []
    white: list[_Hole] = []
    if paper.any():
        dist = _edge_distance(paper)
        holes = _holes(small, lid, dist, px_mm, _paper_level(small))
        white = _white_holes(np.where(lid, 0, contrast).astype(np.int16), dist, px_mm)
    exclude = lid.copy()
    for hole in holes + white:
        cv2.circle(exclude.view(np.uint8), (round(hole.cx), round(hole.cy)), round(hole.r + 1.0 * px_mm), 1, -1)
    # Ink within 1 mm of the paper edge is ignored: the paper edge's shadow and slivers of lid.  A mark
    # that really reaches the edge extends inwards too, and the margin then takes the box to the edge.
    g = max(1, round(_EDGE_STRIP_MM * px_mm))
    frame = np.ones((sh, sw), np.uint8)
    frame[g:-g, g:-g] = 0
    edge_zone = np.bitwise_or(cv2.dilate(lid.astype(np.uint8), np.ones((2 * g + 1, 2 * g + 1), np.uint8)), frame)
    ink = _ink_mask(contrast, px_mm, exclude | (edge_zone > 0))

    def full(x: float, limit: int, up: bool) -> int:
        v = math.ceil(x / scale) if up else math.floor(x / scale)
        return max(0, min(limit, v))

    def box(mask: np.ndarray) -> tuple[int, int, int, int]:
        # bounding box of a reduced-image mask, in full-resolution pixels (outward rounding)
        ys, xs = np.nonzero(mask)
        return (full(xs.min(), w, False), full(ys.min(), h, False),
                full(xs.max() + 1, w, True), full(ys.max() + 1, h, True))

    paper_box = box(paper) if paper.any() else (0, 0, w, h)
    ink_box: tuple[int, int, int, int] | None = None
    if ink.any():
        ink_box = box(ink)
        m = CONTENT_MARGIN_MM * dpi / 25.4
        px0, py0, px1, py1 = paper_box
        content_box = (
            max(px0, math.floor(ink_box[0] - m)),
            max(py0, math.floor(ink_box[1] - m)),
            min(px1, math.ceil(ink_box[2] + m)),
            min(py1, math.ceil(ink_box[3] + m)),
        )
    else:
        content_box = paper_box
    return BorderResult(
        content_box=content_box,
        dark_bands=_edge_widths(lid, scale),
        punch_holes=[(h_.cx / scale, h_.cy / scale, h_.r / scale) for h_ in holes],
        white_holes=[(h_.cx / scale, h_.cy / scale, h_.r / scale) for h_ in white],
        paper_box=paper_box,
        ink_box=ink_box,
        shape=(h, w),
        band_mask=lid,
        scale=scale,
        small=small,
    )


def _paper_colour(img: np.ndarray, cx: float, cy: float, r: float) -> np.ndarray:
    """Median colour of a ring of paper just outside a hole."""
    h, w = img.shape[:2]
    x0, x1 = max(0, int(cx - 2 * r)), min(w, int(cx + 2 * r) + 1)
    y0, y1 = max(0, int(cy - 2 * r)), min(h, int(cy + 2 * r) + 1)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    d = np.hypot(xx - cx, yy - cy)
    ring = img[y0:y1, x0:x1][(d >= 1.4 * r) & (d <= 1.9 * r)]
    if ring.size == 0:
        return np.full(img.shape[2:] or (), 255, img.dtype)
    return np.median(ring.reshape(len(ring), -1), axis=0).astype(img.dtype).reshape(img.shape[2:])


def clean_borders(image: np.ndarray, result: BorderResult) -> np.ndarray:
    """A copy of ``image`` (H x W grey or H x W x 3 colour) with lid bands painted white and dark punch
    holes filled with the surrounding paper colour.  Size and content stay where they are."""
    if image.shape[:2] != result.shape:
        raise ValueError(f"image is {image.shape[:2]}, the borders were found on {result.shape}")
    out = image.copy()
    h, w = result.shape
    if result.band_mask.any():
        full = cv2.resize(result.band_mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
        out[full] = 255
    for cx, cy, r in result.punch_holes:
        colour = _paper_colour(out, cx, cy, r)
        # A little wider than the measured disc: its soft rim and shadow go too.
        radius = round(r * 1.15 + 2)
        fill = tuple(int(v) for v in np.atleast_1d(colour))
        cv2.circle(out, (round(cx), round(cy)), radius, fill if out.ndim == 3 else fill[0], -1)
    return out

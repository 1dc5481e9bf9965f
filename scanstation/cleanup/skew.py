"""Skew of a scanned page: text-line projection profiles searched coarse to fine with exact sub-pixel shifts.

The method, in order:

1. Working resolution by exact 2:1 area reductions (long side 1000-2000 px), so a 75-dpi and a 600-dpi
   scan are measured alike and the cost does not grow with the scan resolution.
2. Ink = darker than the local paper (grey closing), so uneven light, yellowed paper, light print and
   1-bit scans all threshold the same way.  Dark regions thicker than ~1 % of the page that touch the
   image edge (scanner lid, background, black margins) are taken out with their soft edge.
3. Coarse sweep, +/-16 degrees every 0.5 degree on the ink map reduced again: the sharpness (sum of
   squared differences) of the row projection, each ink point projected exactly.  Ink is thinned out
   towards the top and bottom edges so content running off the image cannot favour 0 degrees.  The
   same sweep on the quarter-turned map finds pages lying on their side.
4. Fine search at working resolution: ink points sheared to the coarse angle, split between rows and
   binned per vertical strip; other angles shift the strips against each other in the Fourier domain
   (exact sub-pixel shifts: interpolating profiles would blur every angle but the reference and pull
   the answer towards it).  Score = energy of the derivative of the Gaussian-smoothed profile; a grid
   of 0.1 degree, then golden-section search to 0.002 degree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# The page is analysed at a working resolution reached by exact 2:1 area reductions, so its long side
# ends up in [1000, 2000) px (an A4 page at 85-170 dpi: body text keeps an x-height of 5+ px, a text
# line spans 800+ px, enough for hundredths of a degree).  Smaller images are used as they are.
WORK_MIN_LONG = 1000
# The coarse sweep runs on the ink map reduced again to a long side in [400, 800).
_COARSE_MIN_LONG = 400
# Sweep range, a little beyond the +/-15 degrees a document feeder or a careless hand produces.
SEARCH_RANGE = 16.0
_COARSE_STEP = 0.5
_FINE_SPAN = 0.6
_FINE_STEP = 0.1
_TOLERANCE = 0.002
# Fine stage: the page is cut into this many vertical strips whose row profiles are shifted against
# each other (a shear of the page); within one strip the residual drift is far below a pixel.
_STRIPS = 32
# Gaussian smoothing (px) of the profile before differentiating: rejects pixel-grid and binarisation
# noise, keeps the sharp top and bottom edges of text lines and rules.
_SIGMA = 0.7
# A page needs this many ink pixels at working resolution to carry any line to measure.
_MIN_INK = 150
# Paper vs. ink: after flattening, print must be this many grey levels under the local paper.
_MIN_CONTRAST = 25
# Scanner lids, backgrounds and black bars: at most this grey.
_DARK_MAX = 80
# The coarse peak must be this many times the sweep's median, or the page has no lines to go by (blank
# back, noise, a round stamp, a photograph); text pages measure 10-100.
_MIN_PROMINENCE = 2.0
# Lines across this clear need no look down the page (a page on its side measures 1.3-9 across).
_CLEAR_PROMINENCE = 10.0


@dataclass(frozen=True)
class WorkingPage:
    """The page at working resolution: grey, ink mask (borders excluded) and the reduction factor."""

    gray: np.ndarray
    flat: np.ndarray  # flattened grey: paper 255, borders painted white
    ink: np.ndarray
    border: np.ndarray
    threshold: int
    factor: int  # full-resolution pixels per working pixel


def halve_to(gray: np.ndarray, min_long: int) -> tuple[np.ndarray, int]:
    """Exact 2:1 area reductions while the long side stays >= ``min_long``; returns (image, factor).

    Integer-factor box filtering is both the right anti-aliasing for a projection and the fast path of
    OpenCV's area resampling (a non-integer factor costs ten times more).
    """
    factor = 1
    while max(gray.shape) >= 2 * min_long:
        h, w = gray.shape
        gray = cv2.resize(gray[: h - h % 2, : w - w % 2], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        factor *= 2
    return gray, factor


def grey_percentile(img: np.ndarray, q: float) -> int:
    """The ``q``-th percentile of a uint8 image, from its histogram (a sort would cost ten times more)."""
    cum = np.cumsum(cv2.calcHist([img], [0], None, [256], [0, 256]).ravel())
    return int(np.searchsorted(cum, q / 100.0 * cum[-1]))


def otsu(img: np.ndarray) -> int:
    """Otsu's threshold of a uint8 image."""
    t, _ = cv2.threshold(img, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return int(t)


def _flatten(small: np.ndarray) -> np.ndarray:
    """Divide by the local paper level (a grey closing wider than any stroke), so uneven lighting,
    yellowed paper and light print all become dark-on-white under one threshold."""
    k = max(15, round(max(small.shape) / 60)) | 1
    bg = cv2.morphologyEx(small, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    flat = cv2.divide(small, bg, scale=255.0)
    return flat


def dark_borders(small: np.ndarray) -> np.ndarray:
    """Dark regions thicker than ~1 % of the page that touch the image edge: scanner lid or background
    around a smaller or skewed sheet, black binarisation margins.  Returned widened by a few pixels to
    swallow the soft paper edge, whose straight line must not be taken for a text line."""
    h, w = small.shape
    dark = (small <= min(otsu(small), _DARK_MAX)).astype(np.uint8)
    edges = (dark[0].mean(), dark[-1].mean(), dark[:, 0].mean(), dark[:, -1].mean())
    if max(edges) < 0.02:
        return np.zeros_like(dark, dtype=bool)
    k = max(3, round(min(h, w) / 100)) | 1
    core = cv2.erode(dark, np.ones((k, k), np.uint8))
    n, labels, stats, _c = cv2.connectedComponentsWithStats(core, connectivity=8)
    if n <= 1:
        return np.zeros_like(dark, dtype=bool)
    x0, y0, bw, bh = stats[1:, 0], stats[1:, 1], stats[1:, 2], stats[1:, 3]
    touches = (x0 <= k) | (y0 <= k) | (x0 + bw >= w - k) | (y0 + bh >= h - k)
    if not touches.any():
        return np.zeros_like(dark, dtype=bool)
    lut = np.zeros(n, np.uint8)
    lut[1:][touches] = 1
    band = lut[labels]
    # Undo the erosion, then 3 px more for the blurred edge of the sheet.
    band = cv2.dilate(band, np.ones((k + 6, k + 6), np.uint8))
    return band.astype(bool)


def working_page(gray: np.ndarray) -> WorkingPage:
    """Reduce, flatten and threshold the page; dark scanner borders are excluded from the ink."""
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError("expected a 2-D uint8 grayscale array")
    small, factor = halve_to(np.ascontiguousarray(gray), WORK_MIN_LONG)
    border = dark_borders(small)
    flat = _flatten(small)
    if border.any():
        flat[border] = 255
    paper = grey_percentile(flat, 75)
    t = min(otsu(flat), paper - _MIN_CONTRAST)
    ink = flat <= t
    return WorkingPage(small, flat, ink, border, t, factor)


# --------------------------------------------------------------------------------------------------
# Search
# --------------------------------------------------------------------------------------------------


def coarse_sweep(ink: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sharpness of the row projection for every angle on a grid over the range, on a reduced ink map.

    Each ink point is projected exactly (no interpolation between angles), so no angle is favoured.
    """
    small, _f = halve_to(ink.view(np.uint8) * np.uint8(255), _COARSE_MIN_LONG)
    angles = np.arange(-SEARCH_RANGE, SEARCH_RANGE + 1e-9, _COARSE_STEP)
    # A reduced pixel counts as ink when a quarter of it is: the text line keeps its body, specks fade.
    pts = cv2.findNonZero((small >= 64).view(np.uint8))
    if pts is None:
        return angles, np.zeros_like(angles)
    pts = pts.reshape(-1, 2)
    h, w = small.shape
    # Thin out ink towards the top and bottom edges (deterministic dithering of an edge taper), so ink
    # running off the image never makes the profile a box whose sharp ends favour 0 degrees.
    keep = edge_taper(pts[:, 1], h) > (np.arange(len(pts)) * 0.6180339887) % 1.0
    pts = pts[keep]
    if len(pts) == 0:
        return angles, np.zeros_like(angles)
    xc = pts[:, 0].astype(np.float32) - np.float32(w / 2.0)
    nb = int(h + w * math.tan(math.radians(SEARCH_RANGE))) + 4
    base = pts[:, 1].astype(np.float32) + np.float32((nb - h) / 2.0)
    rows = np.empty_like(base)
    scores = np.empty(len(angles))
    for i, a in enumerate(angles):
        np.multiply(xc, np.float32(math.tan(math.radians(a))), out=rows)
        rows += base
        d = np.diff(np.bincount(rows.astype(np.intp), minlength=nb)).astype(np.float64)
        scores[i] = float(d @ d)
    return angles, scores


def edge_taper(y: np.ndarray, height: int) -> np.ndarray:
    """Weight of a point at row ``y``: 1 inside, falling linearly to 0 over the outer 3 % of the rows."""
    m = max(2.0, 0.03 * height)
    return np.clip(np.minimum(y + 0.5, height - 0.5 - y) / m, 0.0, 1.0)


class _FineScore:
    """Profile sharpness near a reference angle, with exact sub-pixel shifts in the Fourier domain.

    Ink points are sheared to the reference angle once and binned (linearly split between the two
    nearest rows) into per-strip row profiles.  A nearby angle shears each strip by a further
    ``x_strip * (tan a - tan a0)`` rows; shifting in the Fourier domain is exact, so no angle gets the
    extra blur of interpolating profiles (which would pull the answer towards the reference).  The
    score is the energy of the derivative of the Gaussian-smoothed page profile (Parseval).
    """

    def __init__(self, xs: np.ndarray, ys: np.ndarray, width: int, height: int, a0: float) -> None:
        self.t0 = math.tan(math.radians(a0))
        taper = edge_taper(ys, height)
        xc = xs - width / 2.0
        yy = ys + xc * self.t0
        lo = math.floor(float(yy.min())) - 2
        yy -= lo
        nb = math.ceil(float(yy.max())) + 3
        strip = np.minimum((xs * (_STRIPS / width)).astype(np.intp), _STRIPS - 1)
        row = yy.astype(np.intp)
        frac = yy - row
        idx = strip * nb + row
        prof = np.bincount(idx, weights=(1.0 - frac) * taper, minlength=_STRIPS * nb)
        prof += np.bincount(idx + 1, weights=frac * taper, minlength=_STRIPS * nb)
        prof = prof.reshape(_STRIPS, nb)
        # Room for the largest shift in the search span, so the circular shift never wraps ink around.
        reach = width / 2.0 * abs(math.tan(math.radians(abs(a0) + 2 * _FINE_SPAN)) - abs(self.t0)) + 4
        n = cv2.getOptimalDFTSize(int(nb + 2 * reach))
        spec = np.fft.rfft(prof, n=n, axis=1)
        om = 2.0 * np.pi * np.arange(spec.shape[1]) / n
        weight = (2.0 * np.sin(om / 2.0)) ** 2 * np.exp(-((om * _SIGMA) ** 2))
        keep = weight > weight.max() * 1e-3
        self.spec = spec[:, keep]
        self.om = om[keep]
        self.weight = weight[keep]
        self.pitch = width / _STRIPS
        self.first = 0.5 * self.pitch - width / 2.0  # x of the first strip's centre

    def __call__(self, angle: float) -> float:
        d = math.tan(math.radians(angle)) - self.t0
        # Strip k moves by (first + k * pitch) * d rows: its spectrum is multiplied by z0 * z**k.
        z = np.exp(-1j * self.om * (self.pitch * d))
        acc = self.spec[-1].copy()
        for k in range(_STRIPS - 2, -1, -1):
            acc *= z
            acc += self.spec[k]
        # |z0|=1, so the common factor exp(-i om first d) does not change the energy.
        return float((acc.real**2 + acc.imag**2) @ self.weight)


def _golden_max(f: _FineScore, lo: float, hi: float, tol: float) -> float:
    g = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = hi - g * (hi - lo), lo + g * (hi - lo)
    fc, fd = f(c), f(d)
    while hi - lo > tol:
        if fc > fd:
            hi, d, fd = d, c, fc
            c = hi - g * (hi - lo)
            fc = f(c)
        else:
            lo, c, fc = c, d, fd
            d = lo + g * (hi - lo)
            fd = f(d)
    return (lo + hi) / 2.0


def _parabolic_peak(x: np.ndarray, y: np.ndarray) -> float:
    i = int(np.argmax(y))
    if 0 < i < len(x) - 1:
        den = y[i - 1] - 2.0 * y[i] + y[i + 1]
        if den < 0:
            return float(x[i] + 0.5 * (y[i - 1] - y[i + 1]) / den * (x[1] - x[0]))
    return float(x[i])


def prominence(scores: np.ndarray) -> float:
    med = float(np.median(scores))
    return float(scores.max()) / med if med > 0 else (math.inf if scores.max() > 0 else 0.0)


@dataclass(frozen=True)
class SkewResult:
    angle: float  # degrees, content rotated counter-clockwise, in [-45, 45)
    prominence: float  # coarse peak over the median of the sweep (1 = no preferred direction)
    turned: bool  # measured on lines running down the page (a page on its side, or columns of rules)


def measure_skew(page: WorkingPage) -> SkewResult | None:
    """Skew of the text lines (or rules) of a prepared page, or None if there are none to measure."""
    ink = page.ink
    if np.count_nonzero(ink) < _MIN_INK:
        return None
    # Lines may run across (rows) or, on a page lying on its side, down (columns): a quarter turn of
    # the ink map keeps the content angle modulo 90, so both are measured the same way.  Lines or
    # rules clearly found across give the angle already (rules down a form are at the same angle
    # modulo 90); only otherwise is the page searched down as well, and the clearer direction wins.
    angles, scores = coarse_sweep(ink)
    prom = prominence(scores)
    turned = False
    turned_ink = np.rot90(ink)
    if prom < _CLEAR_PROMINENCE:
        a_cols, s_cols = coarse_sweep(turned_ink)
        p_cols = prominence(s_cols)
        if p_cols > prom:
            angles, scores, prom, turned = a_cols, s_cols, p_cols, True
    if prom < _MIN_PROMINENCE:
        return None
    a0 = _parabolic_peak(angles, scores)
    pts = cv2.findNonZero((turned_ink if turned else ink).view(np.uint8))
    if pts is None:
        return None
    pts = pts.reshape(-1, 2).astype(np.float64)
    height, width = (turned_ink if turned else ink).shape
    score = _FineScore(pts[:, 0], pts[:, 1], width, height, a0)
    grid = a0 + np.arange(-_FINE_SPAN, _FINE_SPAN + 1e-9, _FINE_STEP)
    vals = np.array([score(float(a)) for a in grid])
    i = int(np.argmax(vals))
    # The coarse peak was off by more than the span: walk on until the fine score turns down.
    while i in (0, len(grid) - 1) and abs(grid[i] - a0) < 3.0:
        step = -_FINE_STEP if i == 0 else _FINE_STEP
        a = float(grid[i] + step)
        if i == 0:
            grid, vals = np.concatenate(([a], grid)), np.concatenate(([score(a)], vals))
        else:
            grid, vals = np.concatenate((grid, [a])), np.concatenate((vals, [score(a)]))
        i = int(np.argmax(vals))
    lo, hi = float(grid[max(0, i - 1)]), float(grid[min(len(grid) - 1, i + 1)])
    angle = _golden_max(score, lo, hi, _TOLERANCE)
    return SkewResult(float((angle + 45.0) % 90.0 - 45.0), prom, turned)


def estimate_skew(gray: np.ndarray) -> float | None:
    """Degrees by which the page content is rotated counter-clockwise (Pillow's convention), in [-45, 45).

    Text lines and ruled lines are found within +/-16 degrees of the image axes (either axis, so a page
    lying on its side is measured too).  Returns None only when the page has no usable content: blank,
    or nothing line-like (a photograph alone).
    """
    result = measure_skew(working_page(gray))
    return None if result is None else result.angle

"""Mixed raster content for grey and colour pages, its whole-page rivals, and the fidelity gate.

The pieces :mod:`scanstation.pdf.page_encoding` chooses from: :func:`choose` analyses a page once (paper
level, ink mask, photo regions) and builds the candidates, each a :class:`Plan` of PDF image layers; the
smallest one that passes :func:`fidelity_problems` wins, else the lossless one.

All the pixel work is OpenCV and numpy on whole arrays (they release the GIL), at reduced resolution
wherever the result allows it: a 300-dpi A4 page is 8.7 million pixels and the budget is about half a
second.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

from scanstation.pdf.page_images import _ccitt_g4

# ---------------------------------------------------------------- tuning (measured, see the report in
# docs/plans/issue-16.md; synthetic ACR pages with noise 0.3 and bleed-through, the shared corpus)

# Ink is what is darker than the local paper by this many grey levels at least (paper grain is σ≈5, so
# 40 is eight of them; bleed-through from the back is 20-35 below the paper and stays in the background)
# and by this share of the local contrast (paper to darkest ink nearby): the edge of a stroke is where it
# is halfway dark, so strokes keep their width, and thin strokes, lighter than bold ones after the
# scanner's blur, still count where no bold ink is near.
MIN_INK_CONTRAST = 40
INK_CONTRAST_SHARE = 0.5
# Mask components smaller than this (pixels at 300 dpi, scaled by the square of the resolution) are
# scanner speckle, not marks: a full stop or a Devanagari bindu at 8 pt is about 9-16 pixels at 300 dpi.
SPECKLE_AREA_300 = 4
# The background is stored at 1/BG_FACTOR of the page's resolution (100 dpi for 300): paper, shading,
# bleed-through and stamps' fills need no more, and the grain averages out.
BG_FACTOR = 3
BG_JPEG_QUALITY = 40
# The colour of non-neutral ink is stored at 1/FG_FACTOR of the resolution (75 dpi for 300): the mask
# gives the shape, the colour varies slowly along a stroke or a stamp.
FG_FACTOR = 4
FG_JPEG_QUALITY = 75
# Ink counts as neutral (one flat colour for all of it) when 99 % of its core pixels are within this
# chroma (CIELAB a*b* distance from grey) and the spread of their lightness (10th to 90th percentile)
# is within NEUTRAL_SPREAD.
NEUTRAL_CHROMA = 12.0
NEUTRAL_SPREAD = 60.0
# Photographs: blocks (about 2.7 mm at 300 dpi) in which more than PHOTO_MIDTONES of the pixels are
# neither paper nor ink (the middle third of the local contrast); text has mid-tones only at the edges
# of its strokes (under 10 % of a block).  Regions under PHOTO_MIN_MM2 are not photographs.
PHOTO_BLOCK_300 = 32
PHOTO_MIDTONES = 0.2
PHOTO_MIN_MM2 = 100.0
# Whole-page JPEG for photo pages.
PAGE_JPEG_QUALITY = 50

# Fidelity gate thresholds (see fidelity_problems).
GATE_INK_CHANGED = 0.02  # share of ink pixels (outside photos) whose ink/paper class changed
GATE_INK_MARGIN = 24  # grey levels past the ink threshold that count as a change of class
GATE_BG_MEAN = 4.0  # mean |difference| of the page at 1/4 resolution, grey levels
GATE_BG_P999 = 32.0  # 99.9th percentile of that difference
GATE_INK_DE = 12.0  # mean CIELAB ΔE76 over the ink's core pixels


@dataclass(frozen=True, slots=True)
class Layer:
    """One PDF image stream of a page's drawing."""

    data: bytes
    width: int
    height: int
    colour_space: str  # "DeviceGray" or "DeviceRGB" (ignored for a stencil)
    bits: int
    filter: str  # "CCITTFaxDecode", "DCTDecode", "JPXDecode" or "FlateDecode"
    decode_parms: tuple[tuple[str, int | bool], ...] = ()
    stencil: bool = False  # an image mask: paints the current colour (or masks a colour image) where ink is
    decode: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """How a page is drawn: a background image over the whole page, then, if there is a mask, either the
    flat colour ``ink`` (one value: grey, three: RGB, 0-255) or the ``foreground`` image painted through it."""

    method: str
    background: Layer | None = None
    mask: Layer | None = None
    foreground: Layer | None = None
    ink: tuple[int, ...] = (0,)
    notes: dict[str, float] = field(default_factory=dict, compare=False)

    def layer_sizes(self) -> tuple[tuple[str, int], ...]:
        if self.method in ("jpeg", "jpx", "flate", "g4"):
            assert self.background is not None
            return (("image", len(self.background.data)),)
        named = (("mask", self.mask), ("background", self.background), ("foreground", self.foreground))
        return tuple((name, len(layer.data)) for name, layer in named if layer is not None)

    @property
    def size(self) -> int:
        return sum(n for _name, n in self.layer_sizes())


# ---------------------------------------------------------------- analysis


@dataclass(slots=True)
class Analysis:
    """What :func:`analyse` finds on a grey or colour page, at full resolution unless said otherwise."""

    pixels: np.ndarray  # the page, H x W (grey) or H x W x 3 (RGB), uint8
    darkness_source: np.ndarray  # H x W uint8: grey, or the darkest channel of colour (coloured ink is dark in it)
    threshold: np.ndarray  # H x W uint8: below it is ink
    mask: np.ndarray  # H x W uint8 0/255: ink, speckle removed, photos excluded
    speckle: np.ndarray  # H x W uint8 0/255: what was removed from the mask as speckle
    photo: np.ndarray  # H x W uint8 0/255: photograph regions
    photo_share: float


def _scaled(value: float, dpi: int) -> int:
    return max(1, round(value * dpi / 300))


def _odd(n: int) -> int:
    return n if n % 2 else n + 1


def analyse(pixels: np.ndarray, dpi: int) -> Analysis:
    h, w = pixels.shape[:2]
    if pixels.ndim == 3:
        r, g, b = cv2.split(pixels)
        src = cv2.min(cv2.min(r, g), b)
    else:
        src = pixels
    # Paper and darkest ink nearby, at about 75 dpi: a grey-level dilation (brightest nearby) wider than
    # a bold stroke is the paper under the ink; an erosion the darkest ink around.
    f = _scaled(4, dpi)
    sw, sh = max(1, w // f), max(1, h // f)
    small = cv2.resize(src, (sw, sh), interpolation=cv2.INTER_AREA)
    paper = cv2.dilate(small, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)))
    paper = cv2.GaussianBlur(paper, (0, 0), 2.0)
    darkest = cv2.erode(small, cv2.getStructuringElement(cv2.MORPH_RECT, (15, 15)))
    paper_f = paper.astype(np.float32)
    contrast = np.maximum(paper_f - darkest.astype(np.float32), 0)
    delta = np.maximum(MIN_INK_CONTRAST, INK_CONTRAST_SHARE * contrast)
    thr_small = np.clip(paper_f - delta, 0, 255).astype(np.uint8)
    threshold = cv2.resize(thr_small, (w, h), interpolation=cv2.INTER_LINEAR)
    raw = cv2.compare(src, threshold, cv2.CMP_LT)

    # Photographs: blocks full of mid-tones.
    lo = np.clip(paper_f - contrast * (2 / 3), 0, 255).astype(np.uint8)
    hi = np.clip(paper_f - contrast * (1 / 3), 0, 255).astype(np.uint8)
    mid_small = (contrast > 2 * MIN_INK_CONTRAST).astype(np.uint8)
    lo_full = cv2.resize(lo, (w, h), interpolation=cv2.INTER_NEAREST)
    hi_full = cv2.resize(hi, (w, h), interpolation=cv2.INTER_NEAREST)
    mid = cv2.bitwise_and(cv2.compare(src, lo_full, cv2.CMP_GT), cv2.compare(src, hi_full, cv2.CMP_LT))
    block = _scaled(PHOTO_BLOCK_300, dpi)
    bw, bh = max(1, w // block), max(1, h // block)
    mid_share = cv2.resize(mid, (bw, bh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    contrasty = cv2.resize(mid_small, (bw, bh), interpolation=cv2.INTER_NEAREST)
    photo_blocks: np.ndarray = ((mid_share > PHOTO_MIDTONES) & (contrasty > 0)).astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    photo_blocks = cv2.morphologyEx(photo_blocks, cv2.MORPH_CLOSE, kernel)
    photo_blocks = cv2.morphologyEx(photo_blocks, cv2.MORPH_OPEN, kernel)
    n, labels, stats, _c = cv2.connectedComponentsWithStats(photo_blocks, connectivity=8)
    block_mm2 = (block * 25.4 / dpi) ** 2
    photo_blocks = np.zeros_like(photo_blocks)
    for i in range(1, n):
        x, y, bw_, bh_, area = (int(v) for v in stats[i])
        if area * block_mm2 >= PHOTO_MIN_MM2:
            # Photographs on documents are rectangles; their dark and light parts have few mid-tones,
            # and the blocks on their edge are partly paper: take the rectangle and a block around it.
            photo_blocks[max(0, y - 1) : y + bh_ + 1, max(0, x - 1) : x + bw_ + 1] = 255
    photo = cv2.resize(photo_blocks, (w, h), interpolation=cv2.INTER_NEAREST)
    photo_share = float(np.count_nonzero(photo_blocks)) / max(1, photo_blocks.size)

    mask = raw
    speckle = np.zeros_like(raw)
    if photo_share:
        mask = cv2.bitwise_and(mask, cv2.bitwise_not(photo))
    # Speckle: tiny isolated components.
    n, labels, stats, _c = cv2.connectedComponentsWithStats(mask, connectivity=8)
    min_area = max(1, round(SPECKLE_AREA_300 * (dpi / 300) ** 2))
    small_parts = stats[:, cv2.CC_STAT_AREA] < min_area
    small_parts[0] = False
    if small_parts.any():
        lut = np.full(n, 255, np.uint8)
        lut[0] = 0
        lut[small_parts] = 0
        kept = lut[labels]
        speckle = cv2.bitwise_xor(mask, kept)
        mask = kept
    return Analysis(pixels, src, threshold, mask, speckle, photo, photo_share)


# ---------------------------------------------------------------- layers


def _fill_holes(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Fill where ``known`` is 0 from the surroundings (pull-push over an image pyramid); float32 in/out."""
    wts: list[np.ndarray] = [known.astype(np.float32)]
    vals: list[np.ndarray] = [values * (wts[0] if values.ndim == 2 else wts[0][..., None])]
    while min(wts[-1].shape[:2]) > 2:
        wts.append(cv2.pyrDown(wts[-1]))
        vals.append(cv2.pyrDown(vals[-1]))
    level_w, level_v = wts[-1], vals[-1]
    total = float(level_w.sum())
    mean = level_v.reshape(-1, *level_v.shape[2:]).sum(axis=0) / total if total > 0 else 255.0
    est: np.ndarray = np.broadcast_to(np.asarray(mean, np.float32), level_v.shape).astype(np.float32)
    for wt, v in zip(reversed(wts), reversed(vals), strict=True):
        if est.shape[:2] != wt.shape[:2]:
            est = cv2.pyrUp(est, dstsize=(wt.shape[1], wt.shape[0]))
        wn = np.minimum(wt, 1.0)
        safe = np.maximum(wt, 1e-6)
        if v.ndim == 3:
            here = v / safe[..., None]
            est = here * wn[..., None] + est * (1 - wn[..., None])
        else:
            est = (v / safe) * wn + est * (1 - wn)
    return est


def _reduce(pixels: np.ndarray, weight: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Weighted average of ``pixels`` over factor x factor blocks (weight 0-255), and the blocks' weight (0-1)."""
    h, w = pixels.shape[:2]
    size = (max(1, w // factor), max(1, h // factor))
    wf = weight.astype(np.float32) * (1 / 255)
    wsum = cv2.resize(wf, size, interpolation=cv2.INTER_AREA)
    pf = pixels.astype(np.float32)
    weighted = pf * (wf if pixels.ndim == 2 else wf[..., None])
    vsum = cv2.resize(weighted, size, interpolation=cv2.INTER_AREA)
    safe = np.maximum(wsum, 1e-6)
    avg = vsum / (safe if pixels.ndim == 2 else safe[..., None])
    return avg, wsum


def _jpeg(pixels: np.ndarray, quality: int, subsampling: int = -1) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality, subsampling=subsampling, optimize=True)
    return buf.getvalue()


def _jpeg_layer(pixels: np.ndarray, quality: int, subsampling: int = -1) -> Layer:
    h, w = pixels.shape[:2]
    space = "DeviceRGB" if pixels.ndim == 3 else "DeviceGray"
    return Layer(_jpeg(pixels, quality, subsampling), w, h, space, 8, "DCTDecode")


def _decode(layer: Layer) -> np.ndarray:
    with Image.open(io.BytesIO(layer.data)) as im:
        return np.asarray(im.convert("RGB" if layer.colour_space == "DeviceRGB" else "L"))


def background_layer(a: Analysis, dpi: int) -> Layer:
    # Take the ink out (with a pixel's margin: its anti-aliased edge), average the rest down and fill
    # the holes from around them; the averaging is the denoising (grain is what costs a JPEG's bytes).
    grown = cv2.dilate(a.mask, np.ones((3, 3), np.uint8))
    paper = cv2.bitwise_not(grown)
    avg, wsum = _reduce(a.pixels, paper, _scaled(BG_FACTOR, dpi))
    filled = _fill_holes(avg, (wsum > 0.3).astype(np.float32) * wsum)
    filled = cv2.GaussianBlur(filled, (0, 0), 0.7)
    return _jpeg_layer(np.clip(filled + 0.5, 0, 255).astype(np.uint8), BG_JPEG_QUALITY)


def mask_layer(mask: np.ndarray) -> Layer:
    """The ink mask as a CCITT G4 stencil that paints where the mask is set."""
    im = Image.fromarray(cv2.bitwise_not(mask)).convert("1")  # ink black (0), paper white
    g4 = _ccitt_g4(im)
    if g4 is None:
        raise RuntimeError("libtiff with CCITT G4 is needed for compact pages (Pillow built without libtiff)")
    data, black_is_1 = g4
    h, w = mask.shape
    parms: tuple[tuple[str, int | bool], ...] = (("K", -1), ("Columns", w), ("Rows", h), ("BlackIs1", black_is_1))
    # Decoded, ink is 0 (black); an image mask paints where its sample is 0 with Decode [0 1] (PDF 32000
    # 8.9.6.2), and an explicit /Mask paints the image where its sample is 0 too (8.9.6.3).
    return Layer(data, w, h, "DeviceGray", 1, "CCITTFaxDecode", parms, stencil=True, decode=(0, 1))


def _core(mask: np.ndarray) -> np.ndarray:
    return cv2.erode(mask, np.ones((3, 3), np.uint8))


def _lab(pixels: np.ndarray) -> np.ndarray:
    """CIELAB of N x 3 (RGB) or N (grey) uint8 pixels, float32 N x 3."""
    rgb = pixels.reshape(-1, 1, 3) if pixels.ndim == 2 else np.repeat(pixels.reshape(-1, 1, 1), 3, axis=2)
    return cv2.cvtColor(rgb.astype(np.float32) * (1 / 255), cv2.COLOR_RGB2Lab).reshape(-1, 3)


def _ink_samples(a: Analysis, limit: int = 200_000) -> np.ndarray:
    """Core ink pixels (every n-th, at most ``limit``), grey N or RGB N x 3."""
    core = _core(a.mask)
    ys, xs = np.nonzero(core)
    if ys.size == 0:
        ys, xs = np.nonzero(a.mask)
    step = max(1, ys.size // limit)
    return a.pixels[ys[::step], xs[::step]]


def foreground(a: Analysis, dpi: int) -> tuple[tuple[int, ...], Layer | None]:
    """The ink's colour: (flat colour, None) when it is neutral, else (unused, a low-resolution image)."""
    samples = _ink_samples(a)
    if samples.shape[0] == 0:
        return ((0,) if a.pixels.ndim == 2 else (0, 0, 0)), None
    lab = _lab(samples)
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    light = lab[:, 0]
    p10, p90 = np.percentile(light, [10, 90])
    neutral = float(np.percentile(chroma, 99)) <= NEUTRAL_CHROMA and (p90 - p10) * 2.55 <= NEUTRAL_SPREAD
    if neutral:
        # The darker half of the ink's core: strokes painted flat look as dark as their middle.
        level = round(float(np.percentile(samples if samples.ndim == 1 else samples.mean(axis=1), 30)))
        return ((level,) if a.pixels.ndim == 2 else (level, level, level)), None
    weight = cv2.addWeighted(a.mask, 0.25, _core(a.mask), 0.75, 0)
    avg, wsum = _reduce(a.pixels, weight, _scaled(FG_FACTOR, dpi))
    filled = _fill_holes(avg, np.minimum(wsum * 8, 1.0) * (wsum > 0.01))
    pixels = np.clip(filled + 0.5, 0, 255).astype(np.uint8)
    # No chroma subsampling: colour next to black text must not bleed into it at 37 dpi.
    return (0,), _jpeg_layer(pixels, FG_JPEG_QUALITY, subsampling=0)


# ---------------------------------------------------------------- composite and gate


def composite(plan: Plan, shape: tuple[int, ...]) -> np.ndarray:
    """The background as a reader sees it (H x W or H x W x 3 uint8), upsampled bilinearly as viewers do."""
    h, w = shape[:2]
    colour = len(shape) == 3
    assert plan.background is not None
    bg = _decode(plan.background)
    if bg.ndim == 2 and colour:
        bg = cv2.cvtColor(bg, cv2.COLOR_GRAY2RGB)
    if bg.ndim == 3 and not colour:
        bg = cv2.cvtColor(bg, cv2.COLOR_RGB2GRAY)
    return cv2.resize(bg, (w, h), interpolation=cv2.INTER_LINEAR) if bg.shape[:2] != (h, w) else bg.copy()


def _paint(out: np.ndarray, mask: np.ndarray, plan: Plan) -> np.ndarray:
    h, w = mask.shape
    if plan.foreground is None:
        ink = plan.ink if out.ndim == 3 else plan.ink[:1]
        if out.ndim == 3 and len(ink) == 1:
            ink = (ink[0],) * 3
        out[mask > 0] = ink
        return out
    fg = _decode(plan.foreground)
    if fg.ndim == 3 and out.ndim == 2:
        fg = cv2.cvtColor(fg, cv2.COLOR_RGB2GRAY)
    if fg.ndim == 2 and out.ndim == 3:
        fg = cv2.cvtColor(fg, cv2.COLOR_GRAY2RGB)
    fg_up = cv2.resize(fg, (w, h), interpolation=cv2.INTER_LINEAR)
    np.copyto(out, fg_up, where=(mask > 0) if out.ndim == 2 else (mask > 0)[..., None])
    return out


def render(plan: Plan, mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    out = composite(plan, shape)
    if mask is not None and plan.mask is not None:
        out = _paint(out, mask, plan)
    return out


def fidelity_problems(a: Analysis, shown: np.ndarray, dpi: int) -> list[str]:
    """Why ``shown`` (the composite a reader sees) is not good enough a copy of the page, or [].

    - Ink shapes: the page's ink mask (the same threshold, speckle kept out of it, photographs excluded)
      must come out of the composite with at most GATE_INK_CHANGED of its pixels changed.  MRC's mask is
      lossless, so this fails only if the ink's colour is painted lighter than the threshold or the
      background grows dark where there was paper; for whole-page JPEG it measures blur and ringing
      around strokes, which is what costs OCR.
    - Background: at a quarter of the resolution (the paper's grain averaged out, as a reader's eye
      does), away from the ink, the mean difference stays within GATE_BG_MEAN grey levels and the 99.9th
      percentile within GATE_BG_P999: shading, stamps' fills, bleed-through and marks left in the
      background keep their place and tone.
    - Ink colour: mean CIELAB ΔE76 over the ink's core (eroded mask) pixels within GATE_INK_DE (ΔE2000,
      the bench's measure, is no larger than ΔE76 for saturated colours).
    """
    problems: list[str] = []
    src = shown
    if shown.ndim == 3:
        r, g, b = cv2.split(shown)
        src = cv2.min(cv2.min(r, g), b)
    # A pixel changed class only if it is now clearly on the other side of the threshold (by
    # GATE_INK_MARGIN): a stroke's edge pixel a few levels either side of it is not a changed shape.
    margin = np.full_like(a.threshold, GATE_INK_MARGIN)
    lost = cv2.bitwise_and(cv2.compare(src, cv2.add(a.threshold, margin), cv2.CMP_GE), a.mask)
    dark = cv2.compare(src, cv2.subtract(a.threshold, margin), cv2.CMP_LT)
    added = cv2.bitwise_and(dark, cv2.bitwise_not(cv2.bitwise_or(a.mask, a.speckle)))
    changed = cv2.bitwise_or(lost, added)
    if a.photo_share:
        # Photographs are judged as background; their block-wise outline is widened by a block.
        block = _scaled(PHOTO_BLOCK_300, dpi)
        changed = cv2.bitwise_and(changed, cv2.bitwise_not(cv2.dilate(a.photo, np.ones((block, block), np.uint8))))
    n_changed = int(np.count_nonzero(changed))
    ink = max(1, int(np.count_nonzero(a.mask)))
    if n_changed > GATE_INK_CHANGED * ink:
        problems.append(f"ink changed: {n_changed} of {ink} pixels")
    h, w = shown.shape[:2]
    size = (max(1, w // 4), max(1, h // 4))
    before = cv2.resize(a.pixels, size, interpolation=cv2.INTER_AREA)
    after = cv2.resize(shown, size, interpolation=cv2.INTER_AREA)
    diff = cv2.absdiff(before, after)
    if diff.ndim == 3:
        diff = cv2.max(cv2.max(diff[..., 0], diff[..., 1]), diff[..., 2])
    # Away from the ink only: its edges are painted in its full colour (MRC), which the ink checks judge.
    near_ink = cv2.dilate(cv2.resize(a.mask, size, interpolation=cv2.INTER_AREA), np.ones((3, 3), np.uint8))
    away = diff[near_ink == 0]
    mean = float(away.mean()) if away.size else 0.0
    p999 = float(np.percentile(away, 99.9)) if away.size else 0.0
    if mean > GATE_BG_MEAN or p999 > GATE_BG_P999:
        problems.append(f"page differs: mean {mean:.1f}, 99.9 % {p999:.1f} grey levels")
    core = _core(a.mask)
    ys, xs = np.nonzero(core)
    if ys.size:
        step = max(1, ys.size // 200_000)
        de = np.linalg.norm(_lab(a.pixels[ys[::step], xs[::step]]) - _lab(shown[ys[::step], xs[::step]]), axis=1)
        if float(de.mean()) > GATE_INK_DE:
            problems.append(f"ink colour: mean ΔE76 {float(de.mean()):.1f}")
    return problems


# ---------------------------------------------------------------- choice


def _flate_estimate(pixels: np.ndarray) -> int:
    """Lossless size estimated from the middle tenth of the page (run-length deflate, as page_images)."""
    h = pixels.shape[0]
    strip = np.ascontiguousarray(pixels[h * 9 // 20 : max(h * 11 // 20, h * 9 // 20 + 1)])
    z = zlib.compressobj(6, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    n = len(z.compress(strip.tobytes()) + z.flush())
    return n * h // max(1, strip.shape[0])


def mrc_plan(a: Analysis, dpi: int) -> Plan:
    bg = background_layer(a, dpi)
    if not np.any(a.mask):
        return Plan("mrc", background=bg)
    ink, fg = foreground(a, dpi)
    return Plan("mrc", background=bg, mask=mask_layer(a.mask), foreground=fg, ink=ink)


def page_jpeg_plan(a: Analysis) -> Plan:
    return Plan("jpeg", background=_jpeg_layer(a.pixels, PAGE_JPEG_QUALITY))


def choose(im: Image.Image, dpi: int, lossless: Callable[[], Layer]) -> Plan:
    """The smallest plan for a grey or colour page that passes the fidelity gate, else the lossless one."""
    pixels = np.asarray(im)
    a = analyse(pixels, dpi)
    passed: list[Plan] = []
    mrc = mrc_plan(a, dpi)
    if not fidelity_problems(a, render(mrc, a.mask, pixels.shape), dpi):
        passed.append(mrc)
    if a.photo_share > 0.25 or not passed:
        jpeg = page_jpeg_plan(a)
        if not fidelity_problems(a, render(jpeg, None, pixels.shape), dpi):
            passed.append(jpeg)
    best = min((p.size for p in passed), default=None)
    if best is None or _flate_estimate(pixels) < 1.2 * best:
        flat = lossless()
        lossless_plan = Plan("flate", background=flat)
        if best is None or lossless_plan.size < best:
            return lossless_plan
    return min(passed, key=lambda p: p.size)

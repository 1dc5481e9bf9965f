"""Mixed raster content for grey and colour pages, its whole-page rivals, and the fidelity gate.

The pieces :mod:`scanstation.pdf.page_encoding` chooses from: :func:`choose` analyses a page once (paper
level, ink mask, photographs) and builds the candidates, each a :class:`Plan` of PDF image layers; the
smallest one that passes :func:`fidelity_problems` wins, else the lossless one.

All the pixel work is OpenCV on whole arrays (it releases the GIL), at reduced resolution wherever the
result allows it: a 300-dpi A4 page is 8.7 million pixels and the budget is about half a second.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
from PIL import Image

from scanstation.cleanup.grain import neighbour_noise_sigma
from scanstation.pdf import jbig2
from scanstation.pdf.page_images import ccitt_g4

# ---------------------------------------------------------------- tuning
# Measured on synthetic ACR pages (grey and colour, clean and with noise 0.3 and bleed-through) and the
# shared corpus; the numbers are in docs/plans/issue-16.md.

# Ink is what is darker than the local paper by MIN_INK_CONTRAST grey levels at least (paper grain is
# σ≈5, so 40 is eight of them; bleed-through from the back is 20-35 below the paper and stays in the
# background) and by INK_CONTRAST_SHARE of the local contrast (paper to the darkest ink nearby): a
# stroke's edge is where it is half dark, so strokes keep their width, and thin strokes, lighter than
# bold ones after the scanner's blur, still count.
MIN_INK_CONTRAST = 40
INK_CONTRAST_SHARE = 0.5
# Speckle: mask pixels with at most SPECKLE_PIXELS_300 mask pixels (themselves included) in the 5 x 5
# window around them (at 300 dpi; scaled with the resolution) are scanner dust, not marks.  A full stop
# or a Devanagari bindu at 8 pt is 9-16 pixels at 300 dpi, a one-pixel line has three in that window.
SPECKLE_PIXELS_300 = 2
# Halftone screens (a printed form's shaded cells, a photocopy's grey): a scanner resolves their dots, each
# too small for a mark, in fields of a regular pitch.  In the mask they cost as much as text (every dot a G4
# run pair) and the gate refused them: a shaded header band over a grey ACR page (85 lpi, a sharp scanner) made
# the page a 500-570 KB JPEG, and a whole page under a 15 % tint was stored losslessly (1.4 MB).  Dots
# (pieces at most SCREEN_DOT_MM across) that stand SCREEN_DOTS_CM2 or more to the cm² around them (a block of
# SCREEN_BLOCK_MM, and the blocks next to it) are left to the background, which averages them into the tint
# the eye sees; text printed over the tint is larger and stays ink.  An 85-lpi screen has about 1,100 dots to
# the cm², 65 lpi 650; text has few such pieces (dots of i, full stops, bindus: under 60 per cm²).
SCREEN_DOT_MM = 0.45
SCREEN_BLOCK_MM = 4.0
SCREEN_DOTS_CM2 = 250.0
# The ink's rim: what is darker than the local paper by MIN_INK_CONTRAST and EDGE_CONTRAST_SHARE of the
# local contrast, but not ink (a stroke's anti-aliased rim, the gaps of a hairline the ink threshold
# breaks into dashes, print lighter than the bold print beside it), is drawn in one mid-grey tone (its
# pixels' median) through a stencil of its own under the ink.  A bilevel stroke with a hard rim reads
# worse than the scanned one in Tesseract (it binarises for the layout, then recognises from the grey
# image).  Measured as the mean CER Δ over five one-level perturbations of each page (Tesseract's
# reading of one image is chaotic): synthetic grey seed 7300 p1 +0.008 → +0.005, p2 +0.025 → +0.013;
# tess_devatest turned (hin) +0.062 → +0.053.  The stencil is the ink and its rim together (a bolder
# copy of the ink mask: it costs about what the mask does, 15-30 KB on an A4 page as G4, 10-19 as JBIG2), the
# ink painted over it.  Grey pages only: colour pages read as well as lossless without it (as G4 it would have
# taken them past 100 KB; with JBIG2 it was tried again on three, five readings each: no better, +23-25 KB).
EDGE_CONTRAST_SHARE = 0.25
# ... but not around print under RIM_MIN_GLYPH_PX (the median height of the ink's glyph-like pieces, see
# print_on; about 9-point print at 300 dpi).  Tesseract's LSTM reads a text line scaled to its model's
# input height (36 px for eng, 48 for hin, as Debian ships them): a line of small print is enlarged, and the
# rim's flat halo with it.  Mean CER Δ over five readings of each image (as is, two ±1-grey-level noises, a
# pixel down, a pixel right), with → without the rim: galfar_5 (13-px print) +0.020 → −0.006, tess_devatest
# (17 px, hin) 0.000 → −0.028, better in each reading; the same Devanagari upscaled to 29 px needs the rim, as
# do the synthetic ACR pages (28-31 px: seed 7301 p3 +0.002 with it, +0.025 without).  Their MRC is 33-40 %
# smaller without it.
RIM_MIN_GLYPH_PX = 20
# The rule is for pages of print: it holds where glyph-like pieces are at least RIM_PRINT_INK_SHARE of the ink
# mask's pixels (see print_on).  On line art (sheet music, drawings, plans) the ink is mostly long lines,
# the few glyph-like pieces are note heads, marks and labels, and the lines Tesseract finds are the drawing's:
# there the rim stays.  Sheet music (galfar_2: 3 % of its ink in glyph-like pieces, median 16 px), mean CER Δ
# over the five readings, with the rim → without: +0.065 → +0.715 (the lossless page's own readings: +0.274).
# Every page of print measured has 25 % or more (a bank form with its boxes 31 %, a page with photographs 25 %,
# the synthetic ACR forms 51-65 %, running text 50-99 %).
RIM_PRINT_INK_SHARE = 0.10
# On grey pages neutral ink is drawn in tone bands of NEUTRAL_SPREAD L* (see _neutral_tones) from the
# start: a grey stamp, a signature or a remark in grey pen drawn in the print's black read differently
# (seed 7300 p2: the stamp and the signature became lines of junk; p3: Tesseract no longer read the
# reviewing officer's handwritten remark), and the gate's measures agree (p3: strokes 9 % → 1 % of the
# ink, ink ΔE76 9.4 → 3.6).  With the rim, p1 +0.008 → −0.005.  It costs 8-12 KB of stencils a page.
GREY_PAGE_TONES = True
# On grey pages every stencil is drawn on the same side of the page's Otsu threshold as the page's own
# pixels under it, at least BINARY_MARGIN grey levels away from it (see _keep_binarisation): Tesseract
# finds a page's blocks and lines on a copy binarised at that global threshold (then recognises each line
# from the grey image), and a stroke drawn a little darker or lighter than it was crosses it.  A grey
# stamp's ring or a signature that binarised broken on the lossless page came out whole, its pieces became
# lines of junk, and a label under it was read as a line of its own: the page's reading order, and so its
# CER, moved although no word was lost.  Measured on the synthetic grey pages seed 7300 p2/p3 and 7301 p3
# (bench/size.py's reading, docs/compact-pages.md): CER Δ +0.017/+0.026/+0.042 → −0.001/−0.006/+0.002, with
# 0-8 pixels of an A4 page on the other side of T (4,900-8,900 before); about 16 KB a grey page.
BINARY_MARGIN = 20
KEEP_BINARISATION = True
# The background is stored at 1/BG_FACTOR of the page's resolution (100 dpi for 300): paper, shading,
# bleed-through and stamps' fills need no more, and the averaging removes most of the grain.
BG_FACTOR = 3
BG_JPEG_QUALITY = 40
BG_BLUR_SIGMA = 0.7  # what grain the averaging leaves (in background pixels), which JPEG would pay for
# Paper texture at a millimetre's scale (mottled, foxed or recycled paper) is what the background's blur and q40
# take away, and the gate's stroke and page measures then see the page differ; such pages were whole-page JPEGs
# of 169-547 KB.  Where MRC fails the gate, its background is tried again keeping more of the paper, at these
# (quality, blur) in turn, before a whole-page JPEG: on seed 7301 p1 with mottling, 44-123 KB (see
# docs/compact-pages.md).  Only where the ink itself is kept (_paper_texture_only); a page that passes at
# (BG_JPEG_QUALITY, BG_BLUR_SIGMA) never gets here.
BG_RETRIES = ((60, BG_BLUR_SIGMA), (75, 0.0), (85, 0.0))
# The colour of non-neutral ink is stored at 1/FG_FACTOR of the resolution (50 dpi for 300): the mask
# gives the shape, the colour varies slowly along a stroke or across a stamp.
FG_FACTOR = 6
FG_JPEG_QUALITY = 50
# Ink is neutral where its colour (at the foreground's resolution) is within NEUTRAL_CHROMA of grey
# (CIELAB a*b*); neutral ink is one flat colour (0 bytes) when its lightness spread (10th to 90th
# percentile) is within NEUTRAL_SPREAD L* units.  Coloured ink is classed by hue, in sectors of
# HUE_SECTOR degrees, at most MAX_INK_CLASSES classes in all.
NEUTRAL_CHROMA = 12.0
NEUTRAL_SPREAD = 25.0
HUE_SECTOR = 45.0
MAX_INK_CLASSES = 4
# Neutral ink within NEUTRAL_SPREAD still has two tones (see _second_tone) when its lighter part is at
# least SECOND_TONE_SHARE of its blocks and SECOND_TONE_GAP L* lighter.
SECOND_TONE_SHARE = 0.05
SECOND_TONE_GAP = 20.0
# A tone band (see _neutral_tones) with fewer than TONE_MIN_SHARE of the ink's blocks joins the nearest
# band: a stencil of its own costs about 900 bytes however few pixels it has.
TONE_MIN_SHARE = 0.01
# A colour pixel of the ink is grey (neutral class, whatever its block) when its channels, over 3 x 3
# pixels, span at most this many levels: black print is within 15, blue ballpoint or a red stamp over
# half its pixel spans 50 and more.
PIXEL_NEUTRAL_SPREAD = 30
# A class of coloured ink whose core pixels are on average within FLAT_INK_DE (CIELAB ΔE76) of their
# mean colour is drawn in that colour alone (no image, no second copy of its stencil).
FLAT_INK_DE = 8.0
# Photographs: blocks (2.7 mm at 300 dpi) in which more than PHOTO_MIDTONES of the pixels are neither
# paper nor ink (the middle third of the local contrast); text has mid-tones only on the edges of its
# strokes.  A region of such blocks of PHOTO_MIN_MM2 or more is a photograph; it is taken as its
# bounding rectangle (pasted photographs are rectangles) and kept out of the mask (thresholded into a
# G4 mask it would cost more than as JPEG), stored at 1/PHOTO_FACTOR resolution as JPEG.
PHOTO_BLOCK_300 = 32
PHOTO_MIDTONES = 0.2
PHOTO_MIN_MM2 = 100.0
PHOTO_FACTOR = 2
PHOTO_JPEG_QUALITY = 60
# Text is not a photograph: print under uneven light (a photographed or badly lit page), blurred small
# print at a low resolution, a stamp's faded fill under its letters, dense line art all have the
# mid-tones of a photograph, and taken for one they were stored as JPEG that the gate did not judge
# (skimage_page, 72 dpi: the whole page a JPEG q60, CER Δ +0.163 against a noise floor of +0.023; soft
# print under light falling to half across the page, 300 dpi: 44-57 % of it a "photograph").
# A rectangle is text when its ink (by the page's own threshold) has at least PHOTO_TEXT_GLYPHS_CM2
# glyph-like pieces per cm² covering at least PHOTO_TEXT_SHARE of it, and PHOTO_TEXT_MIN_GLYPHS in all:
# then its strokes are ink (in the mask, judged by the gate on every candidate, whole-page JPEG too)
# and what is left of it is background.  Glyph-like: 0.8-12 mm tall, at most 25 mm wide, strokes at
# most PHOTO_TEXT_STROKE_MM thick.  Measured: text areas 3.1-13 pieces/cm² covering 5.6-15 % (skimage_page,
# the stamps' fills on the synthetic colour pages, ocrmypdf_c02-22's line art and captions); the
# synthetic passport photos 0.1-0.9/cm² covering ≤ 1.6 %, a blurred colour photograph with grain
# 1.5/cm² covering 3.1 %.
PHOTO_TEXT_GLYPHS_CM2 = 2.0
PHOTO_TEXT_SHARE = 0.045
PHOTO_TEXT_MIN_GLYPHS = 10
PHOTO_TEXT_STROKE_MM = 0.6
# A glyph-like piece's size, here and in print_on: GLYPH_MIN_MM-GLYPH_MAX_MM tall (for the photograph test,
# or that wide), at most GLYPH_MAX_WIDTH_MM wide.
GLYPH_MIN_MM = 0.8
GLYPH_MAX_MM = 12.0
GLYPH_MAX_WIDTH_MM = 25.0
# Whole-page JPEG (photo pages, or where MRC fails the gate): (resolution factor, quality), smallest first.
PAGE_JPEGS = ((2, 60), (1, 50))
# A reduced resolution only where the print stays tall enough for OCR at it: the median height of the
# glyph-like pieces of the page's ink mask (see print_on), divided by the factor, at least
# PAGE_JPEG_MIN_GLYPH_PX.  The gate cannot see this (its finest measure is at half resolution).  Measured:
# ocrmypdf_c02-22 (book print, 20 px at 300 dpi) lost no word at 150 dpi; lept_lighttext (faint newspaper
# print, 13 px) lost 31 of its 248 words at 150 dpi q60 and 12 at q85 (CER against its ground truth moved
# -0.055 and -0.041: the reading order came out better), 7 at 300 dpi q50, none at q75.  In DejaVu Serif at
# 300 dpi the median is 15/17/23/28 px for 7/8/10/12-point print: print under about 10 points keeps its full
# resolution, where Tesseract's own guidance puts the drop in its accuracy (below 10 pt at 300 dpi).
PAGE_JPEG_MIN_GLYPH_PX = 10
# Photo regions covering more than this share of the page make a whole-page JPEG worth trying.
PHOTO_PAGE_SHARE = 0.25
# Below this resolution a page is stored losslessly.  A pixel is then 0.25 mm or more, a stroke of body
# text one or two pixels, and no lossy candidate kept Tesseract's reading: skimage_page (72 dpi), mean CER
# Δ over five readings (the page, ±1 grey level of noise twice, shifted a pixel down, right): MRC +0.155,
# JPEG q50/q60/q75/q85/q95 +0.060/+0.126/+0.197/+0.106/+0.128, the lossless page's own +0.007; while
# the gate's measures (at about 100 dpi and coarser) see nothing of a change at that scale.  Such pages
# are small (an image from a web page or a screen, not a scanner's: 43 KB lossless there).
LOSSLESS_BELOW_DPI = 100
# But not at any size: a whole A4 page of grain at 72-96 dpi is 300 KB grey, 0.9-1.7 MB colour lossless,
# which alone would take a 20-page ACR file past 2 MB.  Past LOW_DPI_BUDGET (the target per page) such a
# page is a whole-page JPEG at full resolution, at the best of LOW_DPI_JPEG_QUALITIES within the budget
# (else the smallest): at 72 dpi, seed 7300 p1 with grain (noise 0.3), q75 83-95 KB, and Tesseract's CER
# against the ground truth moved -0.001/+0.003 grey/colour, q85-q95 -0.040 to +0.018 (the lossless
# page's own CER 0.20/0.29: at that resolution a reading is that unstable).
LOW_DPI_BUDGET = 100_000
LOW_DPI_JPEG_QUALITIES = (95, 90, 85, 75, 60)

# Fidelity gate (see fidelity_problems).
GATE_INK_CHANGED = 0.02  # share of the ink's pixels (outside photographs) whose ink/paper class changed
GATE_INK_MARGIN = 24  # grey levels past the ink threshold that make a change of class
GATE_BG_MEAN = 4.0  # mean |difference| away from the ink at 1/4 resolution, grey levels
GATE_BG_P999 = 32.0  # 99.9th percentile of that difference
GATE_INK_DE = 12.0  # mean CIELAB ΔE76 over the ink's core pixels
GATE_STROKE_REL = 0.25  # share of the local contrast that makes a pixel of the blurred page differ
GATE_STROKE_SHARE = 0.10  # pixels that may differ so, per ink pixel (text pages: 0-4 %, a missed faint print 27 %)
GATE_STROKE_MIN_CONTRAST = 20.0  # grey levels: the contrast assumed on blank paper
# The ink and stroke measures count pixels per ink pixel, and a page is judged as if it had at least this share
# of its pixels in ink.  A blank back has a few hundred (dust the speckle filter keeps, a mark): 550 half-
# resolution pixels of grain that differ, 0.03 % of the page, were "5.3 strokes per ink pixel", every candidate
# failed, and the back was stored losslessly: 3.6-4.7 MB, 15 of 24 synthetic blank backs with grain.  Text pages
# have 2-14 % (lept_lighttext 2.2 %, the synthetic ACR pages 3-6 %), a page with a signature alone about 0.3 %.
GATE_MIN_INK_SHARE = 0.005
# Heavy grain.  The gate compares candidates with the page as scanned, grain and all, and its thresholds were set
# on pages with grain up to about this σ (grey levels, the noisiest channel; the synthetic ACR pages' noise 0.3 is
# 4.2, the corpus pages 0-1).  A colour scan with σ 10-16 per channel failed every candidate on the grain alone
# (the page measure's noise floor, the darkest channel's bias, the ink's own speckle in ΔE) and was stored
# losslessly, 18.8-19.0 MB a page, where MRC was 55-60 KB.  Past this σ the page's side of the measures is
# averaged over as many more pixels as bring the grain back to it (see fidelity_metrics); at or under it the
# measures are exactly as before.
GATE_GRAIN_SIGMA = 6.0

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 in page pixels, end exclusive


@dataclass(frozen=True, slots=True)
class Layer:
    """One PDF image stream of a page's drawing."""

    data: bytes
    width: int
    height: int
    colour_space: str  # "DeviceGray" or "DeviceRGB" (not used for a stencil)
    bits: int
    filter: str  # "JBIG2Decode", "CCITTFaxDecode", "DCTDecode", "JPXDecode" or "FlateDecode"
    decode_parms: tuple[tuple[str, int | bool], ...] = ()
    stencil: bool = False  # an image mask: paints the current colour (or lets a colour image through) where set
    decode: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Ink:
    """One colour class of the ink: its stencil (a JBIG2 or G4 image mask, full page), drawn in the flat colour
    ``colour`` (grey: one value, RGB: three, 0-255), and, where the class's colour varies, the
    low-resolution ``foreground`` image painted over it through the same stencil as its explicit /Mask."""

    mask: Layer
    colour: tuple[int, ...]
    foreground: Layer | None = None
    pixels: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.uint8), compare=False, repr=False)
    edge: bool = False  # the ink's rim (see EDGE_CONTRAST_SHARE), drawn first, under the ink


@dataclass(frozen=True, slots=True)
class Plan:
    """How a page is drawn, bottom to top: ``background`` over the whole page; each of ``photos`` over its
    rectangle; then each of ``inks``."""

    method: str
    background: Layer
    inks: tuple[Ink, ...] = ()
    photos: tuple[tuple[Layer, Rect], ...] = ()

    def layer_sizes(self) -> tuple[tuple[str, int], ...]:
        if self.method != "mrc":
            return (("image", len(self.background.data)),)
        sizes = [("background", len(self.background.data))]
        if self.inks:
            # A class with a colour image has its stencil twice: drawn, and as the image's /Mask.
            uses = sum(len(ink.mask.data) * (1 if ink.foreground is None else 2) for ink in self.inks if not ink.edge)
            sizes.insert(0, ("mask", uses))
            rim = sum(len(ink.mask.data) for ink in self.inks if ink.edge)
            if rim:
                sizes.insert(1, ("edge", rim))
        fg = sum(len(ink.foreground.data) for ink in self.inks if ink.foreground is not None)
        if fg:
            sizes.append(("foreground", fg))
        if self.photos:
            sizes.append(("photo", sum(len(layer.data) for layer, _rect in self.photos)))
        return tuple(sizes)

    @property
    def size(self) -> int:
        return sum(n for _name, n in self.layer_sizes())


# ---------------------------------------------------------------- helpers


def _scaled(value: float, dpi: int) -> int:
    return max(1, round(value * dpi / 300))


def _shrink(pixels: np.ndarray, factor: int) -> np.ndarray:
    """Box average over factor x factor blocks (the last partial row/column of blocks is left out:
    OpenCV's integer-factor area resize is several times faster than a fractional one)."""
    h, w = pixels.shape[:2]
    sh, sw = max(1, h // factor), max(1, w // factor)
    if h < factor or w < factor:
        return cv2.resize(pixels, (sw, sh), interpolation=cv2.INTER_AREA)
    return cv2.resize(pixels[: sh * factor, : sw * factor], (sw, sh), interpolation=cv2.INTER_AREA)


def _darkness(pixels: np.ndarray) -> np.ndarray:
    """Grey, or the darkest channel of colour: coloured ink (a red stamp, blue ballpoint) is dark in it."""
    if pixels.ndim == 2:
        return pixels
    r, g, b = cv2.split(pixels)
    return cv2.min(cv2.min(r, g), b)


def _lab(pixels: np.ndarray) -> np.ndarray:
    """CIELAB (float32 N x 3) of N x 3 RGB or N grey uint8 pixels."""
    rgb = pixels.reshape(-1, 1, 3) if pixels.ndim == 2 else np.repeat(pixels.reshape(-1, 1, 1), 3, axis=2)
    return cv2.cvtColor(rgb.astype(np.float32) * (1 / 255), cv2.COLOR_RGB2Lab).reshape(-1, 3)


def _jpeg_layer(pixels: np.ndarray, quality: int, subsampling: int = -1) -> Layer:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality, subsampling=subsampling, optimize=True)
    h, w = pixels.shape[:2]
    return Layer(buf.getvalue(), w, h, "DeviceRGB" if pixels.ndim == 3 else "DeviceGray", 8, "DCTDecode")


def _decode(layer: Layer) -> np.ndarray:
    with Image.open(io.BytesIO(layer.data)) as im:
        return np.asarray(im.convert("RGB" if layer.colour_space == "DeviceRGB" else "L"))


def _fill_holes(values: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``values`` (float32) where ``weight`` (0-1) is 1, filled from the surroundings where it is 0
    (pull-push over an image pyramid: smooth, so JPEG spends nothing on the holes)."""
    wts: list[np.ndarray] = [weight.astype(np.float32)]
    vals: list[np.ndarray] = [values * (wts[0] if values.ndim == 2 else wts[0][..., None])]
    while min(wts[-1].shape[:2]) > 2:
        wts.append(cv2.pyrDown(wts[-1]))
        vals.append(cv2.pyrDown(vals[-1]))
    total = float(wts[-1].sum())
    flat = vals[-1].reshape(-1, *vals[-1].shape[2:]).sum(axis=0) / total if total > 0 else 255.0
    est: np.ndarray = np.broadcast_to(np.asarray(flat, np.float32), vals[-1].shape).astype(np.float32)
    for wt, v in zip(reversed(wts), reversed(vals), strict=True):
        if est.shape[:2] != wt.shape[:2]:
            est = cv2.pyrUp(est, dstsize=(wt.shape[1], wt.shape[0]))
        wn = np.minimum(wt, 1.0)
        here = v / np.maximum(wt, 1e-6)[..., None] if v.ndim == 3 else v / np.maximum(wt, 1e-6)
        est = here * (wn[..., None] if v.ndim == 3 else wn) + est * (1 - (wn[..., None] if v.ndim == 3 else wn))
    return est


def _masked_mean(pixels: np.ndarray, weight: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``pixels`` over the set pixels of ``weight`` (0/255) in factor x factor blocks (float32),
    and the share of set pixels per block (0-1)."""
    kept = cv2.bitwise_and(pixels, pixels, mask=weight)
    num = _shrink(kept, factor).astype(np.float32)
    share = _shrink(weight, factor).astype(np.float32) * (1 / 255)
    safe = np.maximum(share, 1 / 255)
    return num / (safe[..., None] if num.ndim == 3 else safe), share


# ---------------------------------------------------------------- analysis


@dataclass(slots=True)
class Analysis:
    """What :func:`analyse` finds on a grey or colour page (full resolution unless said otherwise)."""

    pixels: np.ndarray  # the page, H x W (grey) or H x W x 3 (RGB), uint8
    dpi: int
    darkness: np.ndarray  # H x W uint8, see _darkness
    threshold: np.ndarray  # H x W uint8: darker than this is ink
    mask: np.ndarray  # H x W uint8 0/255: ink (speckle and photographs left out)
    speckle: np.ndarray  # H x W uint8 0/255: left out of the mask as speckle
    photos: tuple[Rect, ...]
    photo: np.ndarray | None  # H x W uint8 0/255: the photographs' rectangles, None if there are none
    core: np.ndarray  # H x W uint8 0/255: the mask eroded by a pixel (the ink's colour, not its edge)
    edge: np.ndarray  # H x W uint8 0/255: the ink's rim and faint marks (see EDGE_CONTRAST_SHARE), mask included
    edge_tone: int  # the darkness the rim is drawn in (the median of its own pixels)
    contrast: np.ndarray  # float32 at 1/4 resolution: paper minus the darkest ink nearby (0 on blank paper)
    ys: np.ndarray  # positions of the core's pixels on a 3-pixel grid: where ink colour is measured
    xs: np.ndarray
    screen: np.ndarray | None = None  # H x W uint8 0/255: the fields of halftone screens (see SCREEN_DOTS_CM2)
    grain: float = 0.0  # σ of the paper's grain, grey levels, its noisiest channel (see _grain)

    @property
    def photo_share(self) -> float:
        h, w = self.mask.shape
        return sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in self.photos) / (h * w)


def _photo_rects(src: np.ndarray, paper: np.ndarray, contrast: np.ndarray, dpi: int) -> tuple[Rect, ...]:
    h, w = src.shape
    lo = np.clip(paper - contrast * (2 / 3), 0, 255).astype(np.uint8)
    hi = np.clip(paper - contrast * (1 / 3), 0, 255).astype(np.uint8)
    # At half resolution (a quarter of the work): a photograph's mid-tones are broad, a stroke's few.
    half = _shrink(src, 2)
    size = (half.shape[1], half.shape[0])
    mid = cv2.bitwise_and(
        cv2.compare(half, cv2.resize(lo, size, interpolation=cv2.INTER_NEAREST), cv2.CMP_GT),
        cv2.compare(half, cv2.resize(hi, size, interpolation=cv2.INTER_NEAREST), cv2.CMP_LT),
    )
    block = _scaled(PHOTO_BLOCK_300, dpi)
    mid_share = _shrink(mid, max(1, block // 2)).astype(np.float32) * (1 / 255)
    if mid_share.size == 0:
        return ()
    contrasty = cv2.resize((contrast > 2 * MIN_INK_CONTRAST).astype(np.uint8), mid_share.shape[::-1],
                           interpolation=cv2.INTER_NEAREST)
    blocks: np.ndarray = ((mid_share > PHOTO_MIDTONES) & (contrasty > 0)).astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    blocks = cv2.morphologyEx(cv2.morphologyEx(blocks, cv2.MORPH_CLOSE, kernel), cv2.MORPH_OPEN, kernel)
    n, _labels, stats, _c = cv2.connectedComponentsWithStats(blocks, connectivity=8)
    block_mm2 = (block * 25.4 / dpi) ** 2
    rects: list[Rect] = []
    for i in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[i])
        if area * block_mm2 >= PHOTO_MIN_MM2:
            # With a block around it: the blocks on a photograph's edge are partly paper.
            rects.append((max(0, (x - 1) * block), max(0, (y - 1) * block),
                          min(w, (x + bw + 1) * block), min(h, (y + bh + 1) * block)))
    return tuple(rects)


def analyse(pixels: np.ndarray, dpi: int) -> Analysis:
    h, w = pixels.shape[:2]
    src = _darkness(pixels)
    # Paper and the darkest ink nearby, at about 75 dpi: a grey-level dilation wider than a bold stroke
    # is the paper under the ink, an erosion the ink around.
    f = _scaled(4, dpi)
    small = _shrink(src, f)
    paper_u8 = cv2.GaussianBlur(cv2.dilate(small, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))), (0, 0), 2.0)
    darkest = cv2.erode(small, cv2.getStructuringElement(cv2.MORPH_RECT, (15, 15)))
    paper = paper_u8.astype(np.float32)
    contrast = np.maximum(paper - darkest.astype(np.float32), 0)
    delta = np.maximum(MIN_INK_CONTRAST, INK_CONTRAST_SHARE * contrast)
    threshold = cv2.resize(np.clip(paper - delta, 0, 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)
    raw = cv2.compare(src, threshold, cv2.CMP_LT)
    edge_delta = np.maximum(MIN_INK_CONTRAST, EDGE_CONTRAST_SHARE * contrast)
    edge_threshold = cv2.resize(np.clip(paper - edge_delta, 0, 255).astype(np.uint8), (w, h),
                                interpolation=cv2.INTER_LINEAR)
    weak = cv2.compare(src, edge_threshold, cv2.CMP_LT)
    if pixels.ndim == 3:
        # Only grey rims: a coloured stroke's rim in grey would be a grey halo around a stamp.
        weak = cv2.bitwise_and(weak, _grey_pixels(pixels))
    # Halftone screens' dots, with their soft edges (the rim's looser threshold), are left to the background.
    screened = _screen_dots(cv2.bitwise_or(raw, weak), dpi)
    screen: np.ndarray | None = None
    if screened is not None:
        dots, screen = screened
        raw = cv2.bitwise_and(raw, cv2.bitwise_not(dots))
        weak = cv2.bitwise_and(weak, cv2.bitwise_not(dots))
        del dots

    photos = _photo_rects(src, paper, contrast, dpi) if min(h, w) >= 4 * f else ()
    photos = tuple(r for r in photos if not _text_like(raw, r, dpi))
    photo: np.ndarray | None = None
    if photos:
        photo = np.zeros((h, w), np.uint8)
        for x0, y0, x1, y1 in photos:
            photo[y0:y1, x0:x1] = 255
        raw = cv2.bitwise_and(raw, cv2.bitwise_not(photo))
        weak = cv2.bitwise_and(weak, cv2.bitwise_not(photo))

    speckle = _speckle(raw, dpi)
    mask = cv2.bitwise_xor(raw, speckle)
    edge = cv2.bitwise_or(cv2.bitwise_xor(weak, cv2.bitwise_and(weak, _speckle(weak, dpi))), mask)
    rim = cv2.bitwise_and(edge, cv2.bitwise_not(mask))
    edge_tone = int(np.median(src[rim > 0])) if cv2.countNonZero(rim) else 0
    if not edge_tone:
        edge = mask
    core = _core(mask)
    ys, xs = _samples(core)
    grain = _grain(pixels, mask, photo, screen)
    return Analysis(pixels, dpi, src, threshold, mask, speckle, photos, photo, core, edge, edge_tone, contrast,
                    ys, xs, screen, grain)


def _grain(pixels: np.ndarray, marks: np.ndarray, photo: np.ndarray | None, screen: np.ndarray | None) -> float:
    """σ of the paper's grain in grey levels, the noisiest channel (cleanup.grain), on paper a few pixels away from
    every mark, photograph and screen."""
    busy = marks if photo is None else cv2.bitwise_or(marks, photo)
    if screen is not None:
        busy = cv2.bitwise_or(busy, screen)
    paper = cv2.dilate(busy, np.ones((7, 7), np.uint8)) == 0
    pairs = (paper[:, 1:] & paper[:, :-1])[::3]  # every third row: plenty of pairs, a third of the work
    if np.count_nonzero(pairs) < 1000:
        return 0.0
    return neighbour_noise_sigma(pixels[::3], pairs)


def _text_like(raw: np.ndarray, rect: Rect, dpi: int) -> bool:
    """Whether the ink ``raw`` (0/255) inside ``rect`` is text or line art rather than a photograph's
    detail (see PHOTO_TEXT_GLYPHS_CM2)."""
    x0, y0, x1, y1 = rect
    part = np.ascontiguousarray(raw[y0:y1, x0:x1])
    n, labels, stats, _c = cv2.connectedComponentsWithStats(part, connectivity=8)
    if n <= PHOTO_TEXT_MIN_GLYPHS:
        return False
    mm = dpi / 25.4
    # Half the thickest stroke of each piece: the largest distance from its inside to its edge.
    dist = cv2.distanceTransform(part, cv2.DIST_L2, 3)
    thick = np.zeros(n, np.float32)
    np.maximum.at(thick, np.asarray(labels, np.int32).ravel(), dist.ravel())
    w, h, area = stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT], stats[1:, cv2.CC_STAT_AREA]
    glyph = ((h <= GLYPH_MAX_MM * mm) & (w <= GLYPH_MAX_WIDTH_MM * mm)
             & ((h >= GLYPH_MIN_MM * mm) | (w >= GLYPH_MIN_MM * mm)) & (area >= 2)
             & (thick[1:] <= PHOTO_TEXT_STROKE_MM * mm))
    count = int(np.count_nonzero(glyph))
    cm2 = (x1 - x0) * (y1 - y0) / (10 * mm) ** 2
    return (count >= PHOTO_TEXT_MIN_GLYPHS and count >= PHOTO_TEXT_GLYPHS_CM2 * cm2
            and int(area[glyph].sum()) >= PHOTO_TEXT_SHARE * (x1 - x0) * (y1 - y0))


def _screen_dots(mask: np.ndarray, dpi: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The dots of halftone screens among the pieces of ``mask`` and the fields they stand in (both 0/255, full
    resolution; see SCREEN_DOTS_CM2), or None if there are none."""
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return None
    mm = dpi / 25.4
    dot = ((stats[:, cv2.CC_STAT_WIDTH] <= SCREEN_DOT_MM * mm) & (stats[:, cv2.CC_STAT_HEIGHT] <= SCREEN_DOT_MM * mm))
    dot[0] = False  # the paper
    if np.count_nonzero(dot) < SCREEN_DOTS_CM2 * (SCREEN_BLOCK_MM / 10) ** 2:
        return None
    block = max(1, round(SCREEN_BLOCK_MM * mm))
    h, w = mask.shape
    bh, bw = -(-h // block), -(-w // block)
    # each piece's block, by its centre
    bx = np.minimum((centroids[:, 0] // block).astype(np.int64), bw - 1)
    by = np.minimum((centroids[:, 1] // block).astype(np.int64), bh - 1)
    counts = np.bincount(by[dot] * bw + bx[dot], minlength=bh * bw).reshape(bh, bw).astype(np.float32)
    per_cm2 = counts / (SCREEN_BLOCK_MM / 10) ** 2
    # a block and its neighbours: a field's edge blocks, half in the field, count the field's density
    dense = cv2.dilate((per_cm2 >= SCREEN_DOTS_CM2).astype(np.uint8), np.ones((3, 3), np.uint8))
    if not dense.any():
        return None
    in_field = dot & (dense[by, bx] > 0)
    field = cv2.resize(dense * np.uint8(255), (bw * block, bh * block), interpolation=cv2.INTER_NEAREST)[:h, :w]
    return np.where(in_field[labels], np.uint8(255), np.uint8(0)), np.ascontiguousarray(field)


def _speckle(raw: np.ndarray, dpi: int) -> np.ndarray:
    """The pixels of ``raw`` (0/255) with at most SPECKLE_PIXELS_300 set pixels in their 5 x 5 window."""
    # At least 3 x 3: below 90 dpi the 5 x 5 window scales to one pixel, where every ink pixel is alone
    # and the whole mask was taken for dust (skimage_page, 72 dpi: an empty mask).  A pixel there is
    # 0.35 mm, a full stop; a lone pixel is still dust.
    window = max(3, _scaled(5, dpi) | 1)
    limit = max(1, round(SPECKLE_PIXELS_300 * (dpi / 300) ** 2))
    count = cv2.boxFilter(cv2.threshold(raw, 0, 1, cv2.THRESH_BINARY)[1], cv2.CV_16U, (window, window),
                          normalize=False, borderType=cv2.BORDER_CONSTANT)
    return cv2.bitwise_and(raw, cv2.compare(count, np.full_like(count, limit), cv2.CMP_LE))


def _grey_pixels(pixels: np.ndarray) -> np.ndarray:
    """0/255 where an RGB pixel is grey (its channels over 3 x 3 pixels span at most PIXEL_NEUTRAL_SPREAD)."""
    r, g, b = cv2.split(cv2.blur(pixels, (3, 3)))
    spread = cv2.subtract(cv2.max(cv2.max(r, g), b), cv2.min(cv2.min(r, g), b))
    return cv2.compare(spread, np.full_like(spread, PIXEL_NEUTRAL_SPREAD), cv2.CMP_LE)


# ---------------------------------------------------------------- layers


def background_layer(a: Analysis, edge: bool = False, quality: int = BG_JPEG_QUALITY,
                     blur: float = BG_BLUR_SIGMA) -> Layer:
    # The page with the ink (and a pixel's margin: its anti-aliased edge) and the photographs taken out,
    # averaged down and the holes filled from around them; averaging is the denoising (grain is what
    # costs a JPEG's bytes).
    out = cv2.dilate(a.edge if edge else a.mask, np.ones((3, 3), np.uint8))
    if a.photo is not None:
        out = cv2.bitwise_or(out, a.photo)
    mean, share = _masked_mean(a.pixels, cv2.bitwise_not(out), _scaled(BG_FACTOR, a.dpi))
    filled = _fill_holes(mean, np.where(share > 0.3, share, 0))
    if blur > 0:
        filled = cv2.GaussianBlur(filled, (0, 0), blur)
    return _jpeg_layer(np.clip(filled + 0.5, 0, 255).astype(np.uint8), quality)


def photo_layers(a: Analysis) -> tuple[tuple[Layer, Rect], ...]:
    factor = _scaled(PHOTO_FACTOR, a.dpi)
    layers = []
    for rect in a.photos:
        x0, y0, x1, y1 = rect
        crop = np.ascontiguousarray(a.pixels[y0:y1, x0:x1])
        small = cv2.resize(crop, (max(1, (x1 - x0) // factor), max(1, (y1 - y0) // factor)),
                           interpolation=cv2.INTER_AREA)
        layers.append((_jpeg_layer(small, PHOTO_JPEG_QUALITY), rect))
    return tuple(layers)


def mask_layer(mask: np.ndarray) -> Layer:
    """The ink mask as a lossless stencil that paints where the mask is set: a JBIG2 generic region
    (:mod:`scanstation.pdf.jbig2`), else CCITT G4 (no compiled coder, or incompressible noise).  JBIG2 was the
    smaller on all 107 stencils of the bench's pages (35 % fewer bytes), so G4 is not made beside it: it cost
    0.13 s a grey page, twice the JBIG2 coder's time."""
    h, w = mask.shape
    # Decoded, ink is 0 (black) from either filter (JBIG2Decode gives black as 0, PDF 32000 7.4.7).  An image
    # mask paints where its sample is 0 with Decode [0 1] (8.9.6.2); an explicit /Mask lets the image through
    # where its sample is 0 as well (8.9.6.3).  Checked with pdftoppm and Ghostscript (tests/test_page_encoding.py).
    try:
        return Layer(jbig2.generic_region(mask), w, h, "DeviceGray", 1, "JBIG2Decode", (), stencil=True,
                     decode=(0, 1))
    except jbig2.EncodeOverflow:
        pass
    paper = np.packbits(mask == 0, axis=1)  # mode "1": 1 is white; ink is 0 (black)
    im = Image.frombytes("1", (w, h), paper.tobytes())
    g4 = ccitt_g4(im)
    if g4 is None:
        raise RuntimeError("compact pages need Pillow with libtiff (CCITT G4)")
    data, black_is_1 = g4
    parms: tuple[tuple[str, int | bool], ...] = (("K", -1), ("Columns", w), ("Rows", h), ("BlackIs1", black_is_1))
    return Layer(data, w, h, "DeviceGray", 1, "CCITTFaxDecode", parms, stencil=True, decode=(0, 1))


def _core(mask: np.ndarray) -> np.ndarray:
    return cv2.erode(mask, np.ones((3, 3), np.uint8))


def _samples(mask: np.ndarray, step: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Positions of every step-th set pixel row- and column-wise (ys, xs): statistics, not every pixel."""
    ys, xs = np.nonzero(mask[::step, ::step])
    return ys * step, xs * step


def _hue_classes(lab: np.ndarray, has_ink: np.ndarray) -> np.ndarray:
    """Colour class per foreground pixel: 0 neutral, 1.. hue sectors (the largest MAX_INK_CLASSES - 1 kept,
    the others joined to the nearest kept one), -1 where there is no ink."""
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    hue = np.degrees(np.arctan2(lab[..., 2], lab[..., 1])) % 360
    sector = (hue // HUE_SECTOR).astype(np.int32) + 1
    classes = np.where(chroma <= NEUTRAL_CHROMA, 0, sector)
    classes = np.where(has_ink, classes, -1)
    counts = np.bincount(classes[classes > 0].ravel(), minlength=int(360 // HUE_SECTOR) + 1)
    kept = [int(k) for k in np.argsort(-counts, kind="stable")[: MAX_INK_CLASSES - 1] if counts[k] > 0]
    if not kept:
        return classes
    centres = np.array([(k - 0.5) * HUE_SECTOR for k in kept])
    chromatic = classes > 0
    gap = np.abs((hue[chromatic][:, None] - centres[None, :] + 180) % 360 - 180)
    classes[chromatic] = np.array(kept)[gap.argmin(axis=1)]
    return classes


def _own_colour(a: Analysis, pixels: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """The colour of the ink ``pixels`` per foreground block (float32) and which blocks have any: from
    its core pixels (edges are mixed with the paper; other classes' ink beside it is not its colour),
    from all its pixels where a thin stroke has no core."""
    core_mean, core_share = _masked_mean(a.pixels, cv2.bitwise_and(a.core, pixels), factor)
    all_mean, all_share = _masked_mean(a.pixels, pixels, factor)
    has_core = core_share > 0
    return np.where(has_core[..., None] if core_mean.ndim == 3 else has_core, core_mean, all_mean), all_share > 0


def _class_map(classes: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """A class per foreground block (int, -1: none) as a class per page pixel; the partial blocks at the
    right and bottom edge take their neighbour's."""
    h, w = shape
    fh, fw = classes.shape
    full = cv2.resize(classes.astype(np.int16), (fw * factor, fh * factor), interpolation=cv2.INTER_NEAREST)
    return cv2.copyMakeBorder(full, 0, h - full.shape[0], 0, w - full.shape[1], cv2.BORDER_REPLICATE)


def _second_tone(lightness: np.ndarray) -> float | None:
    """The L* between two tones of neutral ink (black print and a grey pen), or None for one tone.

    Otsu's split of the blocks' lightness; two tones when the lighter group has SECOND_TONE_SHARE of the
    blocks and its mean is SECOND_TONE_GAP L* above the darker's.  A grey pen beside black print (the
    synthetic form's, L* 36 beside 8-14: 5-10 % of the blocks) keeps its tone that way (ΔE2000 20 → 7);
    blocks of thin print split off too on some pages, which costs 5-8 KB of mask there."""
    if lightness.size < 20:
        return None
    scaled = np.clip(lightness * 2.55, 0, 255).astype(np.uint8).reshape(-1, 1)
    t, _ = cv2.threshold(scaled, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    light = lightness[lightness * 2.55 > t]
    dark = lightness[lightness * 2.55 <= t]
    if light.size < SECOND_TONE_SHARE * lightness.size or not dark.size:
        return None
    return float(t) / 2.55 if float(light.mean() - dark.mean()) >= SECOND_TONE_GAP else None


def _neutral_tones(
    a: Analysis, pixels: np.ndarray, own: tuple[np.ndarray, np.ndarray], factor: int,
    edges: tuple[float, ...] | None = None,
) -> list[Ink]:
    """Neutral ink of several tones (grey print or pencil beside black ink) as one flat ink per tone band
    of NEUTRAL_SPREAD L* (by foreground block): every renderer draws stencils exactly, so thin grey
    strokes keep their tone (a grey image through a /Mask would show the black underlay in poppler)."""
    mean, has = own
    grey = mean if mean.ndim == 2 else mean.mean(axis=2)
    lightness = _lab(np.clip(grey + 0.5, 0, 255).astype(np.uint8).ravel())[:, 0].reshape(grey.shape)
    banded = np.floor(lightness / NEUTRAL_SPREAD) if edges is None else np.digitize(lightness, edges)
    bands = np.where(has, banded.astype(np.int32), -1)
    values, counts = np.unique(bands[bands >= 0], return_counts=True)
    kept = [int(v) for v, n in zip(values, counts, strict=True) if n >= TONE_MIN_SHARE * counts.sum()]
    if kept and len(kept) < len(values):
        for v in values:
            if int(v) not in kept:
                bands[bands == v] = min(kept, key=lambda k: abs(k - int(v)))
    full = _class_map(bands, factor, pixels.shape[:2])
    present = [int(b) for b in np.unique(bands[bands >= 0])]
    parts = {b: cv2.bitwise_and(pixels, cv2.compare(full, np.full_like(full, b), cv2.CMP_EQ)) for b in present}
    union = np.zeros_like(pixels)
    for part in parts.values():
        union = cv2.bitwise_or(union, part)
    parts[present[0]] = cv2.bitwise_or(parts[present[0]], cv2.bitwise_and(pixels, cv2.bitwise_not(union)))
    channels = 1 if a.pixels.ndim == 2 else 3
    out = []
    for b in present:
        if cv2.countNonZero(parts[b]):
            level = round(float(np.median(grey[bands == b])))
            out.append(Ink(mask_layer(parts[b]), (level,) * channels, None, pixels=parts[b]))
    return out


def inks(a: Analysis, tones: bool = False) -> tuple[Ink, ...]:
    """The ink in colour classes, each its own stencil: neutral ink in one flat colour (0 bytes), every
    hue of coloured ink (red stamps, blue ballpoint, violet pads) in its colour at low resolution.

    One stencil per class rather than one colour image over all the ink: every renderer draws a stencil
    exactly, but poppler draws an image through an explicit /Mask with the mask's edges softened and
    shifted by half a pixel, and paper shows through a tenth of the ink's pixels; with the class's flat
    colour under its image, what shows through there is the ink's own colour (ΔE2000 on the synthetic
    colour pages, as pdftoppm shows them: 11.5 with one image, 6-8 this way).
    """
    channels = 1 if a.pixels.ndim == 2 else 3
    factor = _scaled(FG_FACTOR, a.dpi)
    grey_ink: np.ndarray | None = None
    mask = a.mask
    if channels == 3:
        # Ink that is grey pixel by pixel (black print, also under a stamp or beside a signature in the
        # same colour block) is neutral whatever its block's colour; the blocks' colours come from the
        # coloured pixels alone.
        grey_px = _grey_pixels(a.pixels)
        grey_ink = cv2.bitwise_and(a.mask, grey_px)
        mask = cv2.bitwise_and(a.mask, cv2.bitwise_not(grey_px))
    # The blocks' colours (for the classes only: each class's colour comes from its own pixels below).
    mean, all_share = _masked_mean(a.pixels, mask, factor)
    has_ink = all_share > 0
    if grey_ink is not None and cv2.countNonZero(grey_ink):
        has_ink_or_grey = has_ink | (_shrink(grey_ink, factor) > 0)
    else:
        has_ink_or_grey = has_ink
    if not has_ink_or_grey.any():
        return ()
    mean_u8 = np.clip(mean + 0.5, 0, 255).astype(np.uint8)
    lab = _lab(mean_u8.reshape(-1, channels) if channels == 3 else mean_u8.ravel()).reshape(*mean.shape[:2], 3)
    classes = _hue_classes(lab, has_ink) if channels == 3 else np.where(has_ink, 0, -1)
    present = [int(k) for k in np.unique(classes[classes >= 0])]
    if grey_ink is not None and cv2.countNonZero(grey_ink) and 0 not in present:
        present.insert(0, 0)
    full: np.ndarray | None = None
    if len(present) > 1 or grey_ink is not None:
        # Class per page pixel: its foreground block's (the partial blocks at the right and bottom edge
        # take their neighbour's).
        full = _class_map(classes, factor, a.mask.shape[:2])
    by_class = {k: a.mask if full is None else cv2.bitwise_and(
        mask, cv2.compare(full, np.full_like(full, k), cv2.CMP_EQ)) for k in present}
    if grey_ink is not None and 0 in by_class:
        by_class[0] = cv2.bitwise_or(by_class[0], grey_ink)
    if full is not None:
        # Ink in the partial blocks at the page's right or bottom edge next to an inkless block has no
        # class of its own: it joins the neutral ink (or the largest class) rather than being lost.
        union = np.zeros_like(a.mask)
        for pixels in by_class.values():
            union = cv2.bitwise_or(union, pixels)
        leftover = cv2.bitwise_and(a.mask, cv2.bitwise_not(union))
        if cv2.countNonZero(leftover):
            host = 0 if 0 in by_class else max(by_class, key=lambda k: cv2.countNonZero(by_class[k]))
            by_class[host] = cv2.bitwise_or(by_class[host], leftover)
    out: list[Ink] = []
    for k in present:
        pixels = by_class[k]
        if not cv2.countNonZero(pixels):
            continue
        mine = pixels[a.ys, a.xs] > 0
        core_px = a.pixels[a.ys[mine], a.xs[mine]]
        if core_px.shape[0] == 0:  # strokes too thin for a core: their own pixels, then
            ys, xs = _samples(pixels)
            if ys.size == 0:
                ys, xs = np.nonzero(pixels)
            core_px = a.pixels[ys, xs]
        samples = _lab(core_px)
        colour_f = core_px.astype(np.float32).reshape(-1, channels).mean(axis=0)
        own: tuple[np.ndarray, np.ndarray] | None = None
        if k == 0:
            # Neutral ink in one tone (the darker part of its core, as dark as the strokes' middle), or
            # with ``tones`` in one per band where its strokes differ in tone (grey print, pencil beside
            # black ink; thin strokes have no core, so tone is judged per foreground block, from the core
            # where there is one).
            flat = True
            own = _own_colour(a, pixels, factor)
            lightness = _lab(np.clip(own[0][own[1]] + 0.5, 0, 255).astype(np.uint8))[:, 0]
            # Blurred or resampled thin black strokes look as grey as thin grey ones: one tone first,
            # tone bands only where the gate refused that (see choose).
            # On grey pages every band that has TONE_MIN_SHARE of the blocks: a grey stamp or signature
            # can be a few per cent of the ink, inside the 10th-90th percentile spread of the print.
            spread = float(np.percentile(lightness, 90) - np.percentile(lightness, 10))
            if tones and (spread > NEUTRAL_SPREAD or channels == 1):
                out.extend(_neutral_tones(a, pixels, own, factor))
                continue
            # On colour pages only: there the pen's colour is the page's record (and measured); on grey
            # pages a pen drawn black reads the same and the second stencil costs 10-13 KB a page.
            split = _second_tone(lightness) if channels == 3 else None
            if split is not None:
                out.extend(_neutral_tones(a, pixels, own, factor, (split,)))
                continue
            grey = core_px.astype(np.float32).reshape(-1, channels).mean(axis=1)
            colour_f = np.full(channels, float(np.percentile(grey, 30)))
        else:
            # Coloured ink of one colour (a stamp's pad ink is even): flat, if it stays within FLAT_INK_DE.
            flat_lab = _lab(np.clip(colour_f + 0.5, 0, 255).astype(np.uint8).reshape(1, channels))
            flat = float(np.linalg.norm(samples - flat_lab, axis=1).mean()) <= FLAT_INK_DE
        fg: Layer | None = None
        if not flat:
            mean_k, has_k = own if own is not None else _own_colour(a, pixels, factor)
            filled = _fill_holes(mean_k, has_k.astype(np.float32))
            # No chroma subsampling: at 25 dpi a stamp's colour would bleed into the print beside it.
            fg = _jpeg_layer(np.clip(filled + 0.5, 0, 255).astype(np.uint8), FG_JPEG_QUALITY, subsampling=0)
        colour = tuple(int(c) for c in np.clip(np.round(colour_f), 0, 255))
        out.append(Ink(mask_layer(pixels), colour, fg, pixels=pixels))
    return tuple(out)


# ---------------------------------------------------------------- what a reader sees, and the gate


@dataclass(frozen=True, slots=True)
class Shown:
    """What the gate needs of a candidate's composite: its darkness at full resolution, the page at a
    quarter of the resolution, and the colour at the ink's core sample positions."""

    darkness: np.ndarray
    quarter: np.ndarray
    ink: np.ndarray


def _up(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Enlarged bilinearly to (w, h), as viewers draw an image larger than its pixels."""
    return pixels if pixels.shape[1::-1] == size else cv2.resize(pixels, size, interpolation=cv2.INTER_LINEAR)


def _like(pixels: np.ndarray, colour: bool) -> np.ndarray:
    if pixels.ndim == 3 and not colour:
        return cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    if pixels.ndim == 2 and colour:
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)
    return pixels


def shown(plan: Plan, a: Analysis) -> Shown:
    """The composite of ``plan`` as the gate needs it; for MRC without building the full-resolution page."""
    h, w = a.mask.shape
    colour = a.pixels.ndim == 3
    qsize = (max(1, w // 4), max(1, h // 4))
    ys, xs = a.ys, a.xs
    if plan.method != "mrc":
        full = _like(_up(_decode(plan.background), (w, h)), colour)
        return Shown(_darkness(full), _shrink(full, 4), full[ys, xs])
    bg = _like(_decode(plan.background), colour)
    quarter = cv2.resize(bg, qsize, interpolation=cv2.INTER_AREA)
    darkness = _up(_darkness(bg), (w, h)).copy()
    for layer, (x0, y0, x1, y1) in plan.photos:
        pic = _like(_decode(layer), colour)
        darkness[y0:y1, x0:x1] = _up(_darkness(pic), (x1 - x0, y1 - y0))
        qx0, qy0, qx1, qy1 = x0 // 4, y0 // 4, min(qsize[0], x1 // 4), min(qsize[1], y1 // 4)
        if qx1 > qx0 and qy1 > qy0:
            quarter[qy0:qy1, qx0:qx1] = cv2.resize(pic, (qx1 - qx0, qy1 - qy0), interpolation=cv2.INTER_AREA)
    if not plan.inks:
        return Shown(darkness, quarter, np.zeros((0, 3) if colour else (0,), np.uint8))
    colours = np.zeros((ys.size, 3) if colour else (ys.size,), np.uint8)
    for ink in plan.inks:
        at = ink.pixels[ys, xs] > 0
        if ink.foreground is None:
            value = np.array(ink.colour, np.uint8)
            darkness[ink.pixels > 0] = int(value.min())
            colours[at] = value if colour else value[0]
            continue
        fg = _like(_decode(ink.foreground), colour)
        cv2.copyTo(_up(_darkness(fg), (w, h)), ink.pixels, darkness)
        fh, fw = fg.shape[:2]
        colours[at] = fg[np.minimum(ys[at] * fh // h, fh - 1), np.minimum(xs[at] * fw // w, fw - 1)]
    return Shown(darkness, quarter, colours)


def fidelity_problems(a: Analysis, s: Shown) -> list[str]:
    """Why the composite ``s`` is not a good enough copy of the page, or [] (no OCR: cheap, in numpy).

    - Ink shapes: with the page's own ink threshold, at most GATE_INK_CHANGED of the ink's pixels may
      change class in the composite, and only by more than GATE_INK_MARGIN levels past the threshold
      does a pixel count as changed (an edge pixel a little either side is not a changed shape);
      speckle and photographs are not ink.  MRC's mask is lossless, so this catches ink painted lighter
      than the threshold or a background that darkens paper; for whole-page JPEG it measures blur and
      ringing around strokes, which is what costs OCR.
    - Background: at a quarter of the resolution (grain averaged out, as the eye does) and away from the
      ink, the mean difference within GATE_BG_MEAN grey levels and the 99.9th percentile within
      GATE_BG_P999: shading, stamps' fills, bleed-through and marks left in the background keep their
      place and tone, photographs theirs.
    - Strokes: at half resolution, lightly blurred, the darkness may differ by GATE_STROKE_REL of the
      local contrast on at most GATE_STROKE_SHARE pixels per ink pixel: print too faint or blurred for
      the mask, left to the 100-dpi background or broken up, fails here (the ink check cannot see it: it
      judges the composite by the same threshold that made the mask).
    - Ink colour: mean CIELAB ΔE76 over the ink's core pixels within GATE_INK_DE (the bench's ΔE2000 is
      no larger than ΔE76 for saturated colours; the core, because the edges are mixed with the paper).

    Measured on synthetic grey and colour ACR pages (noise 0.3, bleed-through) and the corpus, MRC passes
    with room on all of them but the faint newspaper scan (lept_lighttext: strokes 27 % of its ink); the
    thresholds are about twice what good candidates reach.
    """
    return _problems(fidelity_metrics(a, s))


def _problems(m: dict[str, float]) -> list[str]:
    """What of the measures ``m`` (fidelity_metrics) the gate refuses, worded for a log."""
    problems: list[str] = []
    if m["ink_changed"] > GATE_INK_CHANGED:
        problems.append(f"ink changed: {m['ink_changed']:.1%} of its pixels")
    if m["page_mean"] > GATE_BG_MEAN or m["page_p999"] > GATE_BG_P999:
        problems.append(f"page differs: mean {m['page_mean']:.1f}, 99.9 % {m['page_p999']:.1f} grey levels")
    if m["strokes"] > GATE_STROKE_SHARE:
        problems.append(f"strokes differ: {m['strokes']:.1%} of the ink's pixels by {GATE_STROKE_REL:.0%} of contrast")
    if m["ink_de"] > GATE_INK_DE:
        problems.append(f"ink colour: mean ΔE76 {m['ink_de']:.1f}")
    return problems


def fidelity_metrics(a: Analysis, s: Shown) -> dict[str, float]:
    """The measures :func:`fidelity_problems` judges (also for the bench and tests)."""
    margin = np.full_like(a.threshold, GATE_INK_MARGIN)
    lost = cv2.bitwise_and(cv2.compare(s.darkness, cv2.add(a.threshold, margin), cv2.CMP_GE), a.mask)
    added = cv2.compare(s.darkness, cv2.subtract(a.threshold, margin), cv2.CMP_LT)
    added = cv2.bitwise_and(added, cv2.bitwise_not(cv2.bitwise_or(a.mask, a.speckle)))
    changed = cv2.bitwise_or(lost, added)
    if a.photo is not None:
        changed = cv2.bitwise_and(changed, cv2.bitwise_not(a.photo))
    ink = max(1, cv2.countNonZero(a.mask), round(GATE_MIN_INK_SHARE * a.mask.size))
    m = {"ink_changed": cv2.countNonZero(changed) / ink}

    # Heavy grain (GATE_GRAIN_SIGMA): averaging over k² times as many pixels takes the grain down by k, on both
    # sides alike (a clean candidate hardly changes).  k is 1 on every page the thresholds were set on.
    k = max(1.0, a.grain / GATE_GRAIN_SIGMA)
    before = _shrink(a.pixels, 4)
    after = s.quarter[: before.shape[0], : before.shape[1]]
    if k > 1:
        # a Gaussian of σ averages white noise as a box of 2√π σ a side does
        q = k / (2 * np.sqrt(np.pi))
        before = cv2.GaussianBlur(before, (0, 0), q)
        after = cv2.GaussianBlur(np.ascontiguousarray(after), (0, 0), q)
    diff = cv2.absdiff(before, after)
    if diff.ndim == 3:
        diff = cv2.max(cv2.max(diff[..., 0], diff[..., 1]), diff[..., 2])
    near_ink = cv2.dilate(_shrink(a.mask, 4), np.ones((3, 3), np.uint8))
    away = diff[near_ink == 0]
    m["page_mean"] = float(away.mean()) if away.size else 0.0
    m["page_p999"] = float(np.percentile(away, 99.9)) if away.size else 0.0

    # Blurred a little (what is left of grain and of a stroke edge's half-pixel place is not a change).  On a
    # colour page the page's side is blurred before its darkest channel is taken: the darkest of three channels
    # of independent grain is darker than the paper (by 0.85 σ on average, which no blur takes away), so paper
    # with grain of σ 6-10 per channel differed from any candidate by more than the measure allows everywhere
    # ("strokes differ: 29-627 %"), and the page was stored losslessly (18 MB at σ 10).
    if a.pixels.ndim == 3:
        half = cv2.GaussianBlur(_shrink(a.pixels, 2).astype(np.float32), (0, 0), k)
        before_h = cv2.min(cv2.min(half[..., 0], half[..., 1]), half[..., 2])
    else:
        before_h = cv2.GaussianBlur(_shrink(a.darkness, 2).astype(np.float32), (0, 0), k)
    after_h = cv2.GaussianBlur(_shrink(s.darkness, 2).astype(np.float32), (0, 0), k)
    local = cv2.resize(np.maximum(a.contrast, GATE_STROKE_MIN_CONTRAST), before_h.shape[::-1],
                       interpolation=cv2.INTER_LINEAR)
    off = cv2.absdiff(before_h, after_h) > GATE_STROKE_REL * local
    if a.photo is not None:
        off &= _shrink(a.photo, 2)[: off.shape[0], : off.shape[1]] == 0
    if a.screen is not None:
        # a screen's dots, halved, alias into a moiré no candidate keeps (nor should): its tint is judged by
        # the background measure, its text by the ink measure
        off &= _shrink(a.screen, 2)[: off.shape[0], : off.shape[1]] == 0
    m["strokes"] = int(np.count_nonzero(off)) * 4 / ink  # a half-resolution pixel is four of the ink's
    # the same within a few pixels of the ink: print broken up or lost there, not the paper's texture further off
    near = cv2.dilate(_shrink(a.mask, 2), np.ones((5, 5), np.uint8))[: off.shape[0], : off.shape[1]] > 0
    m["strokes_near_ink"] = int(np.count_nonzero(off & near)) * 4 / ink

    core_colours = a.pixels[a.ys, a.xs]
    if k > 1 and a.ys.size:
        # the ink's colour, not its grain: each core sample averaged with the core pixels around it
        weight = cv2.GaussianBlur((a.core > 0).astype(np.float32), (0, 0), k)[a.ys, a.xs]
        inked = cv2.bitwise_and(a.pixels, a.pixels, mask=a.core).astype(np.float32)
        summed = cv2.GaussianBlur(inked, (0, 0), k)[a.ys, a.xs]
        mean = summed / (weight.reshape(-1, 1) if summed.ndim == 2 else weight)
        core_colours = np.clip(np.rint(mean), 0, 255).astype(np.uint8)
    de = np.linalg.norm(_lab(core_colours) - _lab(s.ink), axis=1) if a.ys.size else np.zeros(1)
    m["ink_de"] = float(de.mean())
    return m


# ---------------------------------------------------------------- candidates and the choice


def otsu_threshold(grey: np.ndarray) -> int:
    """The page's global Otsu threshold: pixels at or below it are foreground (what Tesseract lays out)."""
    t, _ = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return int(t)


def _keep_binarisation(a: Analysis, drawn: tuple[Ink, ...]) -> tuple[Ink, ...]:
    """``drawn`` (flat grey stencils, bottom to top) with every pixel they paint on the lossless page's
    side of its Otsu threshold T, BINARY_MARGIN levels clear of it (see BINARY_MARGIN): each stencil's tone
    moved to the side of most of its pixels, and the pixels on the other side drawn over it by one of two
    correction stencils, one in the nearest dark tone and one in the nearest light tone (one image each for
    the whole page: each image has its header and codes its empty rows before it holds any pixel).  The rim's
    stencil is the ink and its rim together, under the ink: it is corrected for the rim alone.  The specks the
    mask leaves out as dust are foreground to the binarisation, and join the dark correction.  The stencils of one
    page's ink do not overlap (tone bands, colour classes), so the corrections may be drawn after them all."""
    t = otsu_threshold(a.pixels)
    dark_tone, light_tone = max(0, t - BINARY_MARGIN), min(255, t + BINARY_MARGIN + 1)
    if dark_tone >= light_tone or not drawn:
        return drawn
    # Full-page 0/255 planes, reused in place: this runs in the processing workers beside OCR, where a 300-page
    # batch must stay under 1 GiB (bench/pipeline.py), and each plane of an A4 page is 8.7 MB.
    foreground = cv2.compare(a.pixels, np.full_like(a.pixels, t), cv2.CMP_LE)
    to_dark = cv2.bitwise_and(a.speckle, foreground)
    to_light = np.zeros_like(a.mask)
    rim, dark, light = np.empty_like(a.mask), np.empty_like(a.mask), np.empty_like(a.mask)
    out: list[Ink] = []
    for ink in drawn:
        # the rim's stencil corrected for the rim alone: the ink's stencils (a.mask) go over the rest
        own = cv2.subtract(ink.pixels, a.mask, dst=rim) if ink.edge else ink.pixels
        cv2.bitwise_and(own, foreground, dst=dark)
        cv2.subtract(own, dark, dst=light)
        n_dark, n_light = cv2.countNonZero(dark), cv2.countNonZero(light)
        if n_dark + n_light == 0:
            out.append(ink)
            continue
        level = ink.colour[0]
        if n_dark >= n_light:
            base = min(level, dark_tone)
            cv2.bitwise_or(to_light, light, dst=to_light)
        else:
            base = max(level, light_tone)
            cv2.bitwise_or(to_dark, dark, dst=to_dark)
        out.append(replace(ink, colour=(base,)) if base != level else ink)
    del foreground, rim, dark, light
    for pixels, tone in ((to_dark, dark_tone), (to_light, light_tone)):
        if cv2.countNonZero(pixels):
            out.append(Ink(mask_layer(pixels), (tone,), None, edge=True, pixels=pixels))
    return tuple(out)


def mrc_plan(a: Analysis, tones: bool = False, edge: bool = True) -> Plan:
    """MRC of the page; with ``edge`` (and a rim on the page) the ink's rim drawn in its tone under the ink;
    on grey pages every stencil on the page's own side of its binarisation (see _keep_binarisation)."""
    edge = edge and a.edge_tone > 0
    bg = background_layer(a, edge)
    photos = photo_layers(a)
    drawn = inks(a, tones)
    if edge:
        channels = 1 if a.pixels.ndim == 2 else 3
        drawn = (Ink(mask_layer(a.edge), (a.edge_tone,) * channels, None, edge=True, pixels=a.edge), *drawn)
    if KEEP_BINARISATION and a.pixels.ndim == 2:
        drawn = _keep_binarisation(a, drawn)
    return Plan("mrc", bg, drawn, photos)


@dataclass(frozen=True, slots=True)
class PrintSize:
    """What print a page's ink mask holds: the median height in pixels of its glyph-like pieces (GLYPH_MIN_MM-
    GLYPH_MAX_MM tall, at most GLYPH_MAX_WIDTH_MM wide), None if there are none (a photograph, a blank page);
    and the share of the mask's pixels in those pieces (line art has few)."""

    height: float | None
    ink_share: float

    @property
    def small(self) -> bool:
        """Small print on a page of print: no rim around it (RIM_MIN_GLYPH_PX, RIM_PRINT_INK_SHARE)."""
        return (self.height is not None and self.height < RIM_MIN_GLYPH_PX
                and self.ink_share >= RIM_PRINT_INK_SHARE)


def print_on(a: Analysis) -> PrintSize:
    """The page's print (see PrintSize), from its ink mask (photographs and dust are not in it), not a global
    binarisation: on a blank back with grain and bleed-through Otsu's threshold falls in the paper's grain,
    whose pieces are small."""
    _n, _labels, stats, _centroids = cv2.connectedComponentsWithStats(a.mask, connectivity=8)
    mm = a.dpi / 25.4
    h, w, area = stats[1:, cv2.CC_STAT_HEIGHT], stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_AREA]
    glyph = (h >= GLYPH_MIN_MM * mm) & (h <= GLYPH_MAX_MM * mm) & (w <= GLYPH_MAX_WIDTH_MM * mm)
    if not np.any(glyph):
        return PrintSize(None, 0.0)
    return PrintSize(float(np.median(h[glyph])), float(area[glyph].sum()) / float(area.sum()))


def glyph_height(a: Analysis) -> float | None:
    """The median height in pixels of the glyph-like pieces of the page's ink mask (see print_on)."""
    return print_on(a).height


def page_jpeg_plan(a: Analysis, factor: int, quality: int) -> Plan:
    h, w = a.pixels.shape[:2]
    pixels = a.pixels if factor == 1 else cv2.resize(a.pixels, (max(1, w // factor), max(1, h // factor)),
                                                     interpolation=cv2.INTER_AREA)
    return Plan("jpeg", _jpeg_layer(pixels, quality))


def _flate_estimate(pixels: np.ndarray) -> int:
    """Lossless size, estimated from 64 pairs of rows spread over the page (run-length deflate, the
    usual winner of page_images' ways on scans; pairs, so that matches with the row above count)."""
    h = pixels.shape[0]
    starts = np.unique(np.linspace(0, max(0, h - 2), 64).astype(int))
    rows = np.concatenate([pixels[i : i + 2] for i in starts])
    z = zlib.compressobj(6, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    return len(z.compress(rows.tobytes()) + z.flush()) * h // rows.shape[0]


def _low_resolution(pixels: np.ndarray, lossless: Callable[[], Layer]) -> Plan:
    """A page under LOSSLESS_BELOW_DPI: lossless within LOW_DPI_BUDGET, else the best whole-page JPEG at full
    resolution that fits it (else the smallest); no MRC, no gate (see LOSSLESS_BELOW_DPI)."""
    flate = Plan("flate", lossless())
    if flate.size <= LOW_DPI_BUDGET:
        return flate
    best = flate
    for quality in LOW_DPI_JPEG_QUALITIES:
        jpeg = Plan("jpeg", _jpeg_layer(pixels, quality))
        if jpeg.size < best.size:
            best = jpeg
        if jpeg.size <= LOW_DPI_BUDGET:
            break
    return best


def _paper_texture_only(m: dict[str, float]) -> bool:
    """Whether a candidate with the measures ``m`` fails the gate only away from the ink: the strokes themselves
    and the ink's colour are kept, and what differs is paper.  Faint print the mask broke up differs next to the
    ink (lept_lighttext: a better background would carry it at 100 dpi, which must not pass)."""
    return (m["ink_changed"] <= GATE_INK_CHANGED and m["ink_de"] <= GATE_INK_DE
            and m["strokes_near_ink"] <= GATE_STROKE_SHARE / 2)


def choose(pixels: np.ndarray, dpi: int, lossless: Callable[[], Layer]) -> Plan:
    """The smallest plan for a grey or colour page that passes the fidelity gate, else the lossless one."""
    if dpi < LOSSLESS_BELOW_DPI:
        return _low_resolution(pixels, lossless)
    a = analyse(pixels, dpi)
    passed: list[Plan] = []
    # Grey pages: the ink's rim kept (EDGE_CONTRAST_SHARE; not around small print on a page of print,
    # PrintSize.small) and its tones (grey stamps, pencil, a signature in grey beside black print), which
    # Tesseract reads differently drawn black (GREY_PAGE_TONES); colour pages keep their tones by colour class,
    # and the rim would take them past 100 KB a page.
    grey = pixels.ndim == 2
    print_size = print_on(a)
    glyphs = print_size.height
    rim = grey and not print_size.small
    mrc = mrc_plan(a, tones=grey and GREY_PAGE_TONES, edge=rim)
    first = fidelity_metrics(a, shown(mrc, a))
    if not _problems(first):
        passed.append(mrc)
    else:
        # Neutral ink in one tone did not do (grey print or pencil beside black): a stencil per tone.
        toned = mrc_plan(a, tones=True, edge=rim)
        if toned.inks != mrc.inks and not fidelity_problems(a, shown(toned, a)):
            passed.append(toned)
        elif rim and a.edge_tone > 0:
            # The rim is for OCR's sake; where it fails the gate, MRC without it before a whole-page JPEG.  Pencil
            # scribbles (tone 165) over a grey ACR page: the rim's flat tone around them put the page 46 grey
            # levels off (99.9th percentile) and the page was a 137-KB JPEG; without the rim it passes, 58 KB.
            bare = mrc_plan(a, tones=GREY_PAGE_TONES, edge=False)
            if not fidelity_problems(a, shown(bare, a)):
                passed.append(bare)
    if not passed and _paper_texture_only(first):
        # Paper texture the background took away (BG_RETRIES): the same ink over a background that keeps more.
        rimmed = rim and a.edge_tone > 0  # as mrc_plan drew it
        for quality, blur in BG_RETRIES:
            kept = replace(mrc, background=background_layer(a, rimmed, quality, blur))
            if not fidelity_problems(a, shown(kept, a)):
                passed.append(kept)
                break
    if a.photo_share > PHOTO_PAGE_SHARE or not passed:
        for factor, quality in PAGE_JPEGS:
            scale = _scaled(factor, dpi)
            if scale > 1 and glyphs is not None and glyphs / scale < PAGE_JPEG_MIN_GLYPH_PX:
                continue  # the print would be too small to read at that resolution
            jpeg = page_jpeg_plan(a, scale, quality)
            if not fidelity_problems(a, shown(jpeg, a)):
                passed.append(jpeg)
                break
    best = min(passed, key=lambda p: p.size) if passed else None
    # Lossless is tried where the estimate says it may win (clean rendered pages), and is what is left
    # when nothing passes.
    if best is None or _flate_estimate(pixels) < 1.2 * best.size:
        flate = Plan("flate", lossless())
        if best is None or flate.size < best.size:
            return flate
    assert best is not None
    return best

"""Per-page OCR choices: page geometry, script, text size, binarisation and the tesseract model to use.

Everything here is decided from the image, cheaply (tens of milliseconds on an A4 page), before the
single recognition pass; a second pass per page would cost as much as the recognition itself.

- **Geometry** (stand-alone OCR only; the station's cleanup has done it already): skew from
  :func:`scanstation.cleanup.arrays.estimate_skew`; upright pages are recognised here from the head-lines of
  Devanagari words and the ascenders of Latin lines, and only pages where these are not clear go to
  :func:`scanstation.cleanup.arrays.estimate_orientation` (which costs several times more); dark scanner
  borders are painted as paper.
- **Script**: Devanagari words carry a head-line (shirorekha), one row inked across the whole word.
  The share of the page's text width in such words tells a Devanagari page from a Latin one, and a
  page with both (an ACR form: "नाम / Name") from either.
- **Model**: Devanagari pages are read with the Devanagari script model when it is installed (trained
  on all Devanagari languages, it reads Sanskrit far better than ``hin``, Hindi as well, and Latin
  letters too), Latin pages with ``eng`` alone, mixed pages with both; never ``hin+eng`` on a
  Devanagari page, which costs twice the time for a worse result.  Only languages the caller allows
  are used.
- **Text size**: tesseract reads best when letters are neither tiny nor huge; pages whose text is far
  larger than that are reduced (faster too), tiny text is enlarged.
- **Binarisation**: tesseract's global Otsu threshold is right for evenly lit pages; a page with
  uneven paper (shadows, yellowing, a gradient) is divided by its own paper level first.

Why one module of ~550 lines: the five decisions share one reduced copy of the page and its measurements
(ink mask, line heights, head-line evidence), computed once in :func:`prepare_page`; split apart, each
part would either recompute them or pass a bag of intermediate arrays across module boundaries.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

from scanstation.cleanup import arrays as imaging
from scanstation.cleanup.borders import clean_borders, find_borders
from scanstation.cleanup.orientation import longest_run
from scanstation.cleanup.skew import grey_percentile, halve_to
from scanstation.ocr.languages import DEVANAGARI_LANGS, Script, choose_language

# Analysis resolution: exact 2:1 reductions while the long side stays at least this (an A4 page at
# 150-300 dpi ends up 1750-3500 px long: Devanagari head-lines are still a row or two thick).
_ANALYSIS_MIN_LONG = 1000
# Ink: darker than the local mean by this share of the page's contrast (and at least _MIN_INK_STEP).
_LOCAL_CONTRAST = 0.18
_MIN_INK_STEP = 12
# Head-line: within the top (bottom) 45 % of a word, one row inked across this share of its width.
_HEADLINE_RUN = 0.85
_HEADLINE_ZONE = 0.45
# At most this many word candidates are examined per page: the evidence is statistical.
_MAX_CANDIDATES = 700
# Devanagari share of the text width above which a page is read as Devanagari, below which as Latin.
DEVANAGARI_PAGE_SHARE = 0.45
LATIN_PAGE_SHARE = 0.1
# A page needs this many letter-sized marks before its script is judged at all.
_MIN_TEXT_COMPONENTS = 25
# Upright without asking the orientation estimator: lines across the page this clearly, and
# Devanagari head-lines on top (or Latin ascenders over descenders) by these margins.
_AXIS_CLEAR = 2.0
_DEVA_UPRIGHT_WORDS = 6
_DEVA_UPRIGHT_RATIO = 5.0
_LATIN_UPRIGHT_LINES = 4
_LATIN_UPRIGHT_RATIO = 1.5
_LATIN_UPRIGHT_MARGIN = 4
# A Latin line says "upright" when the ink above its body band exceeds the ink below by this factor.
_LINE_VOTE = 1.3
# Rows of a line at least this share of its fullest row make its body (x-height) band.
_BAND_SHARE = 0.3
ORIENTATION_MIN_CONFIDENCE = 0.4
# Skew below this is left alone: tesseract's line finder copes, and resampling costs sharpness.
SKEW_MIN_DEGREES = 1.0
SKEW_MAX_DEGREES = 16.0
# Median glyph heights (px) tesseract reads best, and the limits beyond which a page is rescaled.
# Latin: letters (x-height to cap height); Devanagari: head-line words.  On synthetic ACR pages and the
# shared corpus, reducing larger text to these sizes lowered both the CER and the time (Devanagari at
# 300-400 dpi most of all); enlarging small text gained nothing measurable, so only tiny text is
# enlarged, and only up to the minimum.
LATIN_TARGET, LATIN_MAX, LATIN_MIN = 22.0, 28.0, 10.0
DEVA_TARGET, DEVA_MAX, DEVA_MIN = 40.0, 46.0, 16.0
_MIN_SCALE, _MAX_SCALE = 0.35, 2.5
# Paper levels across the page differing by more than this (grey levels) make the page "uneven".
UNEVEN_PAPER = 40
# Dark edge pixels on a side beyond this share send the page to the border finder.
_EDGE_DARK_SHARE = 0.04
_EDGE_DARK_MAX = 80


@dataclass(frozen=True, slots=True)
class ScriptEvidence:
    """What the script, size and up/down decisions rest on (kept for the record and for tests)."""

    components: int  # letter-sized marks examined
    deva_words: int  # word candidates with a head-line on top
    deva_down: int  # ... with a head-line at the bottom (upside-down Devanagari, underlined words)
    candidates: int  # word candidates examined
    deva_share: float  # share of the text width in head-line words (0..1)
    deva_height: float  # median height of head-line words, full-resolution px (0: none)
    latin_height: float  # median height of the other letters, full-resolution px (0: none)
    latin_lines: int  # Latin line pieces used for up/down
    lines_up: int  # Latin lines with more ink above / below their body band (ascenders vs descenders)
    lines_down: int
    axis_ratio: float  # sharpness of the row projection over the column projection (>1: lines across)

    @property
    def script(self) -> Script:
        if self.components < _MIN_TEXT_COMPONENTS:
            return "unknown"
        if self.deva_share >= DEVANAGARI_PAGE_SHARE:
            return "devanagari"
        if self.deva_share <= LATIN_PAGE_SHARE:
            return "latin"
        return "mixed"

    def upright_clear(self) -> bool:
        """True when the lines run across and their letters say "upright" beyond doubt.

        Devanagari: head-lines on top of most words.  Latin: lines with more ink above their body band
        than below it (ascenders, capitals and i-dots outnumber descenders) outnumber the others by half
        again and by four lines (upright pages measured 1.7-15 times, upside-down ones at most 1.25),
        provided no Devanagari evidence points the other way.  Anything less clear is left to the
        orientation estimator.
        """
        if self.axis_ratio < _AXIS_CLEAR:
            return False
        deva_up = (
            self.deva_words >= _DEVA_UPRIGHT_WORDS
            and self.deva_words >= _DEVA_UPRIGHT_RATIO * self.deva_down
            # a few Latin letters with a flat top (m, bold serif words) are no Devanagari page
            and self.deva_share > LATIN_PAGE_SHARE
        )
        deva_down_hint = self.deva_down >= _DEVA_UPRIGHT_WORDS and self.deva_down > 2 * self.deva_words
        if deva_down_hint:
            return False
        latin_up = (
            self.latin_lines >= _LATIN_UPRIGHT_LINES
            and self.lines_up >= _LATIN_UPRIGHT_RATIO * self.lines_down
            and self.lines_up - self.lines_down >= _LATIN_UPRIGHT_MARGIN
            # on a page full of Devanagari the few "Latin" lines are mostly Devanagari: no say
            and (self.deva_share < DEVANAGARI_PAGE_SHARE or deva_up)
        )
        return deva_up or latin_up


@dataclass(frozen=True, slots=True)
class Geometry:
    """Corrections applied to the page before OCR (and to the image that goes into the PDF)."""

    turn: int = 0  # counter-clockwise quarter turn of the content that was found (and undone)
    turn_confidence: float = 1.0
    turn_checked: bool = False  # True: imaging.estimate_orientation was asked
    skew: float = 0.0  # degrees of counter-clockwise skew taken out (0: none)
    skew_measured: float | None = None
    borders_painted: bool = False


@dataclass(frozen=True, slots=True)
class OcrPlan:
    """How to run tesseract on one page."""

    lang: str
    script: Script
    scale: float = 1.0  # resize factor from the (corrected) page to the OCR image
    flatten: bool = False  # divide by the paper level before tesseract's threshold
    binarise: bool = False  # hand tesseract a 1-bit image (Otsu), not grey
    psm: int = 3
    reasons: tuple[str, ...] = ()


@dataclass(slots=True)
class PreparedPage:
    """A page ready for tesseract: the corrected page (for the PDF) and the image tesseract reads."""

    page_image: Image.Image  # upright, straight, borders painted; original mode and resolution
    ocr_image: Image.Image  # mode "1" or "L"; ``dpi * plan.scale`` resolution
    dpi: int
    ocr_dpi: int
    plan: OcrPlan
    geometry: Geometry
    evidence: ScriptEvidence
    timings: dict[str, float] = field(default_factory=dict)
    # With ``keep_pixels`` the page image is left as scanned (borders painted only): its content is still
    # turned counter-clockwise by page_turn + page_skew degrees, for the PDF to draw it turned back.
    page_turn: int = 0
    page_skew: float = 0.0


# ---------------------------------------------------------------- small helpers


def _headline(seg: np.ndarray, fill: np.ndarray, r0: int, r1: int, width: int) -> bool:
    """One row within rows r0..r1 of a word inked across almost its whole width (a straight stroke:
    Latin letters such as m, whose arches dip where they meet, have no such row)."""
    r = r0 + int(np.argmax(fill[r0:r1]))
    need = _HEADLINE_RUN * width
    if fill[r] < need:
        return False
    return any(longest_run(seg[k]) >= need for k in range(max(0, r - 1), min(seg.shape[0], r + 2)))


def _rotate_small(gray: np.ndarray, angle: float) -> np.ndarray:
    if abs(angle) < 0.05:
        return gray
    h, w = gray.shape
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), -angle, 1.0)
    return cv2.warpAffine(gray, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _ink(small: np.ndarray) -> np.ndarray:
    """Letters and rules as a uint8 0/1 mask: darker than the local mean by a share of the contrast."""
    paper = grey_percentile(small, 90)
    dark = grey_percentile(small, 1)
    step = max(_MIN_INK_STEP, round(_LOCAL_CONTRAST * max(0, paper - dark)))
    block = max(15, round(max(small.shape) / 40)) | 1
    mean = cv2.blur(small, (block, block))
    ink = (small.astype(np.int16) < mean.astype(np.int16) - step) & (small < paper - 2 * _MIN_INK_STEP)
    return ink.view(np.uint8)


def _without_rules(ink: np.ndarray) -> np.ndarray:
    """Drop long ruled lines (tables, boxes) so letters touching them become letters again.

    The kernel is longer than any one word's head-line (words are separated by spaces), so head-lines
    stay.
    """
    h, w = ink.shape
    k = max(25, max(h, w) // 7)
    rules = cv2.bitwise_or(
        cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((1, k), np.uint8)),
        cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((k, 1), np.uint8)),
    )
    if not rules.any():
        return ink
    rules = cv2.dilate(rules, np.ones((3, 3), np.uint8))
    return ink & (1 - rules)


def _projection_sharpness(ink: np.ndarray, axis: int) -> float:
    p = ink.sum(axis=axis, dtype=np.float64)
    total = p.sum()
    if total <= 0:
        return 0.0
    p = cv2.GaussianBlur(p.reshape(1, -1), (0, 0), 1.0).ravel()
    return float(np.square(np.diff(p)).sum() * len(p) / (total * total))


# ---------------------------------------------------------------- evidence


def script_evidence(small: np.ndarray, factor: int = 1) -> ScriptEvidence:
    """Head-line words, letter sizes and up/down marks of an (upright-ish, straight) reduced page."""
    ink = _without_rules(_ink(small))
    h_img, w_img = ink.shape
    axis_ratio = _projection_sharpness(ink, 1) / max(1e-9, _projection_sharpness(ink, 0))
    n, labels, stats, _c = cv2.connectedComponentsWithStats(ink, connectivity=8)
    xs, ys, ws, hs, areas = (stats[1:, i] for i in range(5))
    long_side = max(h_img, w_img)
    text = (hs >= 4) & (hs <= long_side / 12) & (ws <= long_side / 4) & (areas >= 8)
    text &= areas <= 0.9 * ws * hs
    solid = areas > 0.6 * ws * hs  # bars, blots and dashes: not words
    idx = np.flatnonzero(text)
    if idx.size < _MIN_TEXT_COMPONENTS:
        return ScriptEvidence(int(idx.size), 0, 0, 0, 0.0, 0.0, 0.0, 0, 0, 0, axis_ratio)
    med_h = float(np.median(hs[idx]))
    letters = idx[hs[idx] >= 0.5 * med_h]
    wide = letters[(ws[letters] >= 1.1 * hs[letters]) & (hs[letters] >= 6) & ~solid[letters]]
    cands = wide
    if cands.size > _MAX_CANDIDATES:
        cands = cands[np.linspace(0, cands.size - 1, _MAX_CANDIDATES).astype(np.intp)]
    top = np.zeros(n - 1, bool)
    bottom = np.zeros(n - 1, bool)
    for i in cands.tolist():
        x, y, w, h = int(xs[i]), int(ys[i]), int(ws[i]), int(hs[i])
        seg = labels[y : y + h, x : x + w] == i + 1
        fill = seg.sum(axis=1)
        zone = max(2, math.ceil(_HEADLINE_ZONE * h))
        if _headline(seg, fill, 0, zone, w):
            top[i] = True
        elif _headline(seg, fill, h - zone, h, w):
            bottom[i] = True
    # Width shares are scaled up from the sample to the whole page.
    sample = cands.size / max(1, wide.size)
    deva_w = float(ws[top].sum()) / max(sample, 1e-9)
    text_w = float(ws[letters].sum())
    deva_share = min(1.0, deva_w / max(1.0, text_w))
    deva_h = float(np.median(hs[top])) * factor if top.any() else 0.0
    latin = letters[~top[letters] & ~bottom[letters]]
    latin_h = float(np.median(hs[latin])) * factor if latin.size else 0.0
    # Latin up/down: ink above vs below the body band of lines made of non-head-line letters.
    lut = np.zeros(n, np.uint8)
    lut[1 + latin] = 1
    latin_ink = lut[labels]
    lines = lines_up = lines_down = 0
    if latin.size >= _MIN_TEXT_COMPONENTS:
        lh = float(np.median(hs[latin]))
        k = max(3, round(1.2 * lh))
        smear = cv2.morphologyEx(latin_ink, cv2.MORPH_CLOSE, np.ones((1, k), np.uint8))
        nl, _ll, lstats, _lc = cv2.connectedComponentsWithStats(smear, connectivity=8)
        for j in range(1, nl):
            x, y, w, h = (int(v) for v in lstats[j, :4])
            if h < 0.8 * lh or h > 2.6 * lh or w < 6 * h:
                continue
            prof = latin_ink[y : y + h, x : x + w].sum(axis=1, dtype=np.int64)
            peak = prof.max()
            if peak <= 0:
                continue
            core = np.flatnonzero(prof >= _BAND_SHARE * peak)
            b0, b1 = int(core[0]), int(core[-1]) + 1
            if b1 - b0 < 0.25 * h:
                continue
            above, below = float(prof[:b0].sum()), float(prof[b1:].sum())
            # Each line votes: a few lines of capitals, numbers or a misread band must not outweigh the rest.
            if above > _LINE_VOTE * below:
                lines_up += 1
            elif below > _LINE_VOTE * above:
                lines_down += 1
            lines += 1
    return ScriptEvidence(
        components=int(idx.size),
        deva_words=int(np.count_nonzero(top)),
        deva_down=int(np.count_nonzero(bottom)),
        candidates=int(cands.size),
        deva_share=round(deva_share, 4),
        deva_height=deva_h,
        latin_height=latin_h,
        latin_lines=lines,
        lines_up=lines_up,
        lines_down=lines_down,
        axis_ratio=round(axis_ratio, 3),
    )


# ---------------------------------------------------------------- decisions


def choose_scale(ev: ScriptEvidence, script: Script) -> tuple[float, str]:
    """Resize factor bringing the page's letters towards the size tesseract reads best."""

    def want(height: float, lo: float, target: float, hi: float) -> float:
        # too big: down to the target; too small: up to the minimum; in range: as is
        return target / height if height > hi else lo / height if height < lo else 1.0

    wants: list[float] = []
    if script in ("devanagari", "mixed") and ev.deva_height > 0:
        wants.append(want(ev.deva_height, DEVA_MIN, DEVA_TARGET, DEVA_MAX))
    if script in ("latin", "mixed") and ev.latin_height > 0:
        wants.append(want(ev.latin_height, LATIN_MIN, LATIN_TARGET, LATIN_MAX))
    if not wants:
        return 1.0, "size unknown: as scanned"
    # Reduce only as far as every script wants it; enlarge as far as any script needs it.
    scale = float(np.clip(max(wants), _MIN_SCALE, _MAX_SCALE))
    if abs(scale - 1.0) < 0.1:
        return 1.0, "letter size fine"
    return round(scale, 3), f"letters {ev.deva_height:.0f}/{ev.latin_height:.0f} px: scale {scale:.2f}"


def uneven_paper(small: np.ndarray) -> float:
    """Spread (grey levels) of the paper level across the page: 0 for evenly lit paper."""
    k = max(9, round(max(small.shape) / 80)) | 1
    paper = cv2.dilate(small, np.ones((k, k), np.uint8))
    tiles = cv2.resize(paper, (16, 16), interpolation=cv2.INTER_AREA)
    return float(np.percentile(tiles, 95) - np.percentile(tiles, 5))


def _flatten_full(gray: np.ndarray, small: np.ndarray, factor: int) -> np.ndarray:
    k = max(9, round(max(small.shape) / 60)) | 1
    bg = cv2.morphologyEx(small, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8))
    bg = cv2.GaussianBlur(bg, (0, 0), k / 3)
    full = cv2.resize(bg, (gray.shape[1], gray.shape[0]), interpolation=cv2.INTER_LINEAR)
    return cv2.divide(gray, np.maximum(full, 1), scale=255.0)


def _edge_dark_share(small: np.ndarray) -> float:
    g = max(2, round(min(small.shape) / 100))
    sides = (small[:g], small[-g:], small[:, :g], small[:, -g:])
    return max(float(np.count_nonzero(s <= _EDGE_DARK_MAX)) / s.size for s in sides)


# ---------------------------------------------------------------- the page


def _as_gray(image: Image.Image) -> np.ndarray:
    if image.mode == "L":
        return np.asarray(image)
    return imaging.to_gray(image)


def prepare_page(
    image: Image.Image,
    dpi: int,
    allowed_langs: str,
    installed: Collection[str],
    *,
    correct_geometry: bool = True,
    fixed_lang: bool = False,
    psm: int = 3,
    clock: Callable[[], float] | None = None,
    keep_pixels: bool = False,
) -> PreparedPage:
    """Analyse one page and return it corrected, with the image and plan for one tesseract run.

    ``correct_geometry`` False leaves orientation, skew and borders alone (the station's cleanup has
    done them).  ``fixed_lang`` True runs ``allowed_langs`` as given (no per-page model choice).
    ``keep_pixels`` True corrects only the image tesseract reads: the page image keeps the scan's pixels
    (and so its file's encoding), and ``page_turn``/``page_skew`` tell the PDF how to show it straight.
    """
    tick = clock or time.perf_counter
    timings: dict[str, float] = {}
    t0 = tick()
    mode = image.mode if image.mode in ("1", "L", "RGB") else "L"
    arr = np.asarray(image) if image.mode == "RGB" else _as_gray(image)
    gray = arr if arr.ndim == 2 else cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY)
    small, factor = halve_to(np.ascontiguousarray(gray), _ANALYSIS_MIN_LONG)
    timings["load"] = tick() - t0

    geometry = Geometry()
    page_arr = arr
    late_skew = 0.0  # skew still to be taken out of ``gray`` (keep_pixels)
    if correct_geometry:
        t = tick()
        borders_painted = False
        if _edge_dark_share(small) >= _EDGE_DARK_SHARE:
            found = find_borders(gray, dpi)
            if found.has_borders:
                page_arr = clean_borders(arr, found)
                gray = page_arr if page_arr.ndim == 2 else cv2.cvtColor(page_arr, cv2.COLOR_RGB2GRAY)
                small, factor = halve_to(np.ascontiguousarray(gray), _ANALYSIS_MIN_LONG)
                borders_painted = True
        timings["borders"] = tick() - t
        t = tick()
        measured = imaging.estimate_skew(gray)
        skew = 0.0
        if measured is not None and SKEW_MIN_DEGREES <= abs(measured) <= SKEW_MAX_DEGREES:
            skew = float(measured)
        timings["skew"] = tick() - t
        t = tick()
        # The letters are read on the straightened page even when the skew is too small to correct.
        look = float(measured) if measured is not None and abs(measured) <= SKEW_MAX_DEGREES else 0.0
        straight = _rotate_small(small, look)
        evidence = script_evidence(straight, factor)
        turn, confidence, checked = 0, 1.0, False
        if not evidence.upright_clear():
            checked = True
            turn, confidence = imaging.estimate_orientation(gray)
            if turn and confidence < ORIENTATION_MIN_CONFIDENCE:
                turn = 0
            if turn:
                straight = _rotate_small(np.ascontiguousarray(np.rot90(small, -(turn // 90))), look)
                evidence = script_evidence(straight, factor)
        timings["orientation"] = tick() - t
        t = tick()
        if keep_pixels:
            # Only the grey copy is turned: for a colour page that is a third of the work, and the page
            # image is not resampled at all.  Its skew is taken out below, once the text size is known:
            # on a page that is reduced for tesseract, after the reduction (a third of the pixels to turn).
            if turn:
                gray = np.ascontiguousarray(np.rot90(gray, -(turn // 90)))
            late_skew = skew
        else:
            if turn:
                page_arr = np.ascontiguousarray(np.rot90(page_arr, -(turn // 90)))
            if skew:
                page_arr = imaging.deskew(np.ascontiguousarray(page_arr), skew)
            if turn or skew:
                gray = page_arr if page_arr.ndim == 2 else cv2.cvtColor(page_arr, cv2.COLOR_RGB2GRAY)
        if turn or skew:
            small, factor = halve_to(np.ascontiguousarray(gray), _ANALYSIS_MIN_LONG)
            if late_skew:
                small = imaging.deskew(small, late_skew)
        geometry = Geometry(turn, round(float(confidence), 3), checked, skew, measured, borders_painted)
        timings["correct"] = tick() - t
    else:
        t = tick()
        evidence = script_evidence(small, factor)
        timings["orientation"] = tick() - t

    t = tick()
    script = evidence.script
    reasons: list[str] = []
    if fixed_lang:
        lang, why = allowed_langs, "fixed by the caller"
    else:
        lang, why = choose_language(script, allowed_langs, installed)
    reasons.append(why)
    scale, why = choose_scale(evidence, script)
    reasons.append(why)
    spread = uneven_paper(small)
    flatten = mode != "1" and spread > UNEVEN_PAPER
    if flatten:
        reasons.append(f"uneven paper ({spread:.0f} grey levels): flattened")
    # Tesseract thresholds grey pages with Otsu itself, but then also reads them in grey, which costs it
    # 10-30 % more time; given our Otsu image it reads Latin and mixed pages as well (measured on the
    # corpus, turned and synthetic pages).  Devanagari pages lost a little without the grey, so they keep it.
    binarise = script in ("latin", "mixed")
    if binarise:
        reasons.append("binarised (Otsu)")
    plan = OcrPlan(
        lang=lang, script=script, scale=scale, flatten=flatten, binarise=binarise, psm=psm, reasons=tuple(reasons)
    )

    page_image = image if (page_arr is arr and image.mode == mode) else imaging.from_array(page_arr, mode, dpi)
    page_image.info["dpi"] = (dpi, dpi)
    ocr_gray = gray
    h, w = gray.shape
    ocr_size = (max(1, round(w * scale)), max(1, round(h * scale)))
    # A page that is thresholded for tesseract is turned straight by linear resampling (a third of the
    # time of cubic; on the corpus's and synthetic turned pages the error rate moved by at most 0.003 a
    # page, either way, and fell in sum); a grey one, cubic.
    if late_skew and scale < 1.0:
        ocr_gray = cv2.resize(ocr_gray, ocr_size, interpolation=cv2.INTER_AREA)
        ocr_gray = imaging.deskew(ocr_gray, late_skew, linear=binarise)
        if flatten:
            ocr_gray = _flatten_full(ocr_gray, small, factor)
    else:
        if late_skew:
            ocr_gray = imaging.deskew(ocr_gray, late_skew, linear=binarise)
        if flatten:
            ocr_gray = _flatten_full(ocr_gray, small, factor)
        if scale != 1.0:
            interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
            ocr_gray = cv2.resize(ocr_gray, ocr_size, interpolation=interp)
    page_turn, page_skew = (geometry.turn, geometry.skew) if keep_pixels else (0, 0.0)
    if mode == "1" and not flatten and scale == 1.0 and page_image.mode == "1" and not (page_turn or page_skew):
        ocr_img = page_image
    elif binarise:
        _t, bits = cv2.threshold(ocr_gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        ocr_img = Image.fromarray(bits, "L").convert("1", dither=Image.Dither.NONE)
    else:
        ocr_img = Image.fromarray(np.ascontiguousarray(ocr_gray), "L")
    ocr_dpi = max(1, round(dpi * scale))
    timings["prepare"] = tick() - t
    return PreparedPage(page_image, ocr_img, dpi, ocr_dpi, plan, geometry, evidence, timings, page_turn, page_skew)


__all__: Sequence[str] = (
    "DEVANAGARI_LANGS",
    "Geometry",
    "OcrPlan",
    "PreparedPage",
    "ScriptEvidence",
    "choose_language",
    "choose_scale",
    "prepare_page",
    "script_evidence",
    "uneven_paper",
)

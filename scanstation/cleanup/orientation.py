"""Page orientation (0/90/180/270) from the text lines, for Devanagari and Latin script alike.

The skew is measured and taken out first, ruled lines are dropped, and the text-line axis is the one
along which the letters' projection is sharp (the same sweep as for skew).  Up versus down is then
read from line pieces about ten letters long:

- Devanagari words carry a head-line (shirorekha), one row inked across the whole word: at the top
  of the word when upright, at the bottom when upside down.  Each such word is a vote.
- Elsewhere, Latin letters that stick out of the x-height band are counted: ascenders, capitals and
  i-dots above, descenders and commas below.  Upright text has two to five times more above.

Each script's evidence is weighed by its share of the page's line pieces (a few Devanagari words
missed by the head-line test must not outvote a Devanagari page, and the other way round).  The
confidence combines the margin and the amount of evidence of both and of the axis; a page with
little or contradictory evidence gets a low one, so the pipeline flags it instead of guessing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from scanstation.cleanup.skew import (
    WorkingPage,
    coarse_sweep,
    grey_percentile,
    measure_skew,
    otsu,
    prominence,
    working_page,
)

# Line pieces are judged separately, each at most this many text heights long: a page whose columns
# differ in skew by a few tenths of a degree still gives every piece a crisp profile.
_CHUNK_HEIGHTS = 10.0
# Devanagari head-line (shirorekha): one row inked across at least this share of a word's width.
_HEADLINE_RUN = 0.85
# A word whose fullest row runs across this share is at least head-line-like (a Devanagari word with
# a broken head-line, or Latin letters joined along a serif line): no Latin evidence from its piece.
_HEADLINE_LIKE = 0.6
# Words are split at blank columns wider than this share of the letter height (word spaces; a
# Devanagari word has no inner gap under its head-line).
_WORD_GAP = 0.15
# Share of a long horizontal run's length with ink hanging right below (or above) it: letters under a
# head-line; a rule or fill-in line has far less.
_HANGING = 0.12
# A Latin line (ascender to descender) is about twice the median letter height; taller is two lines.
_MAX_LATIN_LINE = 2.5
# A Latin letter sticks out of the x-height band (ascender, capital, i-dot / descender, comma) when it
# passes the band's edge by this share of the band height.
_STICK_OUT = 0.25
# Evidence needed for full confidence: head-line words, and Latin letters sticking out up or down.
_FULL_DEVA_WORDS = 8.0
_FULL_LATIN_MARKS = 30.0
# An upright Latin page has 2-5 times more ascenders than descenders; a share of 0.5 + this margin of
# the sticking-out letters pointing one way is taken as certain.
_LATIN_FULL_MARGIN = 0.2
_DEVA_FULL_MARGIN = 0.5
# After smoothing, letters are at least this much darker than the paper.
_LETTER_CONTRAST = 15
# The x-height band of a Latin piece is at least this share of the letter height; a thinner band is a
# Devanagari head-line (or a rule) and says nothing about ascenders.
_MIN_BAND = 0.3


@dataclass(frozen=True)
class OrientationEvidence:
    """What the decision rests on, for the supervisor's view and for tests."""

    turn: int  # counter-clockwise quarter turn of the content: 0, 90, 180 or 270
    confidence: float
    axis_confidence: float  # text lines across vs. down the page
    deva_up: int  # Devanagari words with the head-line at the top / at the bottom
    deva_down: int
    latin_up: int  # Latin letters sticking out above / below the x-height band
    latin_down: int


def _upright_ink(page: WorkingPage, angle: float) -> np.ndarray:
    """Ink of the page with the skew taken out, for reading letter shapes.

    Rotated on the flattened grey (a rotated mask gets staircase edges that spoil row profiles), and
    smoothed a little before thresholding so faint, broken print joins up into whole letters.
    """
    flat = page.flat
    h, w = flat.shape
    if abs(angle) > 0.02:
        m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), -angle, 1.0)
        flat = cv2.warpAffine(flat, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=255)
    smooth = cv2.GaussianBlur(flat, (0, 0), 0.8)
    paper = grey_percentile(smooth, 75)
    t = min(otsu(smooth), paper - _LETTER_CONTRAST)
    return (smooth <= t).view(np.uint8)


def _rules_across(ink: np.ndarray) -> np.ndarray:
    """Horizontal ruled lines: long runs with little ink hanging off them.

    A Devanagari head-line, however long the word, has letters hanging below it (above it on a page
    upside down) all along; a fill-in line does not.  A run across a quarter of the page is a table
    rule even with letters touching it.
    """
    h, w = ink.shape
    runs = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((1, max(15, w // 12)), np.uint8))
    n, labels, stats, _c = cv2.connectedComponentsWithStats(runs, connectivity=8)
    rule = np.zeros(n, np.uint8)
    for i in range(1, n):
        x, y, bw, bh = (int(v) for v in stats[i, :4])
        if y < 2 or y + bh + 1 >= h:
            rule[i] = 1
            continue
        below = float(ink[y + bh + 1, x : x + bw].mean())
        above = float(ink[y - 2, x : x + bw].mean())
        rule[i] = max(below, above) < _HANGING or bw >= w // 4
    return rule[labels]


def _without_rules(ink: np.ndarray) -> np.ndarray:
    """Drop ruled lines (tables, boxes, fill-in lines) so only letters remain."""
    rules = _rules_across(ink) | _rules_across(np.ascontiguousarray(ink.T)).T
    rules = cv2.dilate(rules, np.ones((3, 3), np.uint8))
    return ink & (rules == 0).view(np.uint8)


def _axis(text: np.ndarray) -> tuple[bool, float]:
    """(lines run down the page, confidence): the same sweep as for skew, on the letters alone, across
    and down; text lines stand out in one direction only."""
    across = prominence(coarse_sweep(text.view(bool))[1])
    down = prominence(coarse_sweep(np.rot90(text).view(bool))[1])
    ratio = max(across, down) / max(1.0, min(across, down))
    # Text pages measure 3-30; 1.5 or less is no clear direction.
    return down > across, float(np.clip((ratio - 1.5) / 1.5, 0.0, 1.0))


def _text_height(stats: np.ndarray, page_height: int) -> float:
    hts = stats[1:, 3]
    ok = (stats[1:, 4] >= 6) & (hts >= 3) & (hts < page_height / 8)
    return float(np.median(hts[ok])) if np.count_nonzero(ok) >= 5 else 0.0


def longest_run(row: np.ndarray) -> int:
    """Length of the longest run of True in a 1-D boolean row (a head-line or a rule)."""
    if not row.any():
        return 0
    padded = np.concatenate(([False], row, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return int((edges[1::2] - edges[::2]).max())


def _words(chunk: np.ndarray, gap: int) -> list[tuple[int, int]]:
    idx = np.flatnonzero(chunk.any(axis=0))
    if idx.size == 0:
        return []
    cuts = np.flatnonzero(np.diff(idx) > gap)
    starts = np.concatenate(([idx[0]], idx[cuts + 1]))
    ends = np.concatenate((idx[cuts] + 1, [idx[-1] + 1]))
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def _headline_votes(chunk: np.ndarray, th: float) -> tuple[int, int, int, int]:
    """(words, head-line at top, head-line at bottom, head-line-like) among the word-sized pieces of a
    line chunk.  Head-line-like: the fullest row runs across most of the word, whatever its place."""
    words = up = down = like = 0
    for c0, c1 in _words(chunk, max(1, round(_WORD_GAP * th))):
        seg = chunk[:, c0:c1]
        fill = seg.sum(axis=1)
        inked = np.flatnonzero(fill)
        if inked.size < 4:
            continue
        top, bottom = int(inked[0]), int(inked[-1]) + 1
        height, sw = bottom - top, c1 - c0
        if sw < 1.2 * height:
            continue
        words += 1
        if fill.sum() > 0.55 * sw * height:
            continue  # a solid blob (logo, redaction), not letters
        peak = int(np.argmax(fill))
        run = longest_run(np.asarray(seg[max(0, peak - 1) : peak + 2].any(axis=0)))
        if run >= _HEADLINE_LIKE * sw:
            like += 1
        if run < _HEADLINE_RUN * sw:
            continue
        rel = (peak + 0.5 - top) / height
        if rel < 0.45:
            up += 1
        elif rel > 0.55:
            down += 1
    return words, up, down, like


def _evidence(text: np.ndarray) -> tuple[int, int, int, int, int, int]:
    """(Devanagari up, down, Latin up, down, Devanagari pieces, Latin pieces) over the horizontal text
    lines of ``text``."""
    n, _lab, stats, cent = cv2.connectedComponentsWithStats(text, connectivity=8)
    th = _text_height(stats, text.shape[0])
    if n <= 1 or th <= 0:
        return 0, 0, 0, 0, 0, 0
    k = max(3, round(th))
    smear = cv2.morphologyEx(text, cv2.MORPH_CLOSE, np.ones((1, k), np.uint8))
    nl, lines, lstats, _c = cv2.connectedComponentsWithStats(smear, connectivity=8)
    # Each letter belongs to the line its centre falls in (the smear fills the gaps between letters).
    cx = np.clip(np.round(cent[1:, 0]).astype(np.intp), 0, text.shape[1] - 1)
    cy = np.clip(np.round(cent[1:, 1]).astype(np.intp), 0, text.shape[0] - 1)
    line_of = lines[cy, cx]
    tops = stats[1:, 1]
    bottoms = tops + stats[1:, 3]
    order = np.argsort(line_of, kind="stable")
    bounds = np.searchsorted(line_of[order], np.arange(nl + 1))
    d_up = d_down = l_up = l_down = d_pieces = l_pieces = 0
    for i in range(1, nl):
        x, y, bw, bh = (int(v) for v in lstats[i, :4])
        if bh < 0.6 * th or bh > 3.5 * th or bw < 3 * bh:
            continue  # not a line of text (a dot, a picture, lines run together)
        line = text[y : y + bh, x : x + bw].astype(bool) & (lines[y : y + bh, x : x + bw] == i)
        members = order[bounds[i] : bounds[i + 1]]
        pieces = max(1, round(bw / (_CHUNK_HEIGHTS * th)))
        piece_of = np.minimum(((cent[1 + members, 0] - x) * pieces / bw).astype(np.intp), pieces - 1)
        for j in range(pieces):
            c0, c1 = j * bw // pieces, (j + 1) * bw // pieces
            chunk = line[:, c0:c1]
            words, up, down, like = _headline_votes(chunk, th)
            if words and up + down >= 0.5 * words:
                d_up += up
                d_down += down
                d_pieces += 1
                continue
            if like > 0.15 * words or bh > _MAX_LATIN_LINE * th:
                # Devanagari with a broken head-line, mixed script, or two lines run together: the
                # x-height band would be misplaced, so no Latin evidence from here.
                continue
            fill = chunk.sum(axis=1)
            if not fill.any():
                continue
            # x-height band: the rows at least half as full as the fullest rows of the piece.
            core = np.flatnonzero(fill >= 0.5 * np.percentile(fill[fill > 0], 90))
            band_top, band_bottom = y + int(core[0]), y + int(core[-1]) + 1
            if band_bottom - band_top < _MIN_BAND * th:
                continue
            margin = _STICK_OUT * (band_bottom - band_top)
            sel = members[piece_of == j]
            l_pieces += 1
            l_up += int(np.count_nonzero(tops[sel] < band_top - margin))
            l_down += int(np.count_nonzero(bottoms[sel] > band_bottom + margin))
    return d_up, d_down, l_up, l_down, d_pieces, l_pieces


def _share_confidence(a: int, b: int, full_margin: float, full_count: float) -> float:
    """Signed confidence (+ for ``a``) from a split of votes: margin of the share and amount of evidence."""
    total = a + b
    if total == 0:
        return 0.0
    share = a / total - 0.5
    return float(np.clip(share / full_margin, -1.0, 1.0) * min(1.0, total / full_count))


def orientation_evidence(gray: np.ndarray) -> OrientationEvidence:
    """Decide the quarter turn of the page content and keep the evidence behind it."""
    page = working_page(gray)
    skew = measure_skew(page)
    ink = _upright_ink(page, skew.angle if skew is not None else 0.0)
    text = _without_rules(ink)
    turned, axis_conf = _axis(text)
    if turned:
        # Content turned 90 (or 270) counter-clockwise: a clockwise turn makes it upright (or upside down).
        text = np.ascontiguousarray(np.rot90(text, -1))
    d_up, d_down, l_up, l_down, d_pieces, l_pieces = _evidence(text)
    deva = _share_confidence(d_up, d_down, _DEVA_FULL_MARGIN, _FULL_DEVA_WORDS)
    latin = _share_confidence(l_up, l_down, _LATIN_FULL_MARGIN, _FULL_LATIN_MARKS)
    # On a page that is mostly Devanagari, the few pieces taken for Latin are mostly Devanagari whose
    # head-line went unseen, where ascender counting misleads: weigh each script by its share.
    latin *= min(1.0, l_pieces / max(1, d_pieces))
    # Likewise a few Latin words taken for Devanagari (slab serifs joining along the x-line).
    deva *= min(1.0, d_pieces / max(1, l_pieces))
    if deva * latin >= 0:
        # Agreeing (or one silent): independent pieces of evidence.
        sign = math.copysign(1.0, deva + latin) if deva + latin else 1.0
        conf = 1.0 - (1.0 - abs(deva)) * (1.0 - abs(latin))
    else:
        # Disagreeing: the stronger wins, by its margin only.
        sign = math.copysign(1.0, deva + latin) if deva + latin else 1.0
        conf = abs(deva + latin)
    upright = sign > 0
    turn = (0 if upright else 180) if not turned else (90 if upright else 270)
    return OrientationEvidence(turn, float(conf * axis_conf), axis_conf, d_up, d_down, l_up, l_down)


def estimate_orientation(gray: np.ndarray) -> tuple[int, float]:
    """Counter-clockwise quarter turn of the content (0, 90, 180 or 270) and a confidence in [0, 1].

    To make the page upright turn it back by ``-turn``.  The text lines give the axis; Devanagari
    words (head-line at the top) and Latin letters (ascenders outnumber descenders) tell up from down.
    A confidence near 0 means the page gave little or contradictory evidence (blank, pictures only, a
    few words): flag it for the supervisor rather than trust the turn.
    """
    ev = orientation_evidence(gray)
    return ev.turn, ev.confidence

"""Tests of orientation: quarter turns of Latin, Devanagari and bilingual pages, and honest confidence."""

from __future__ import annotations

import numpy as np
import pytest

from scanstation.cleanup.orientation import orientation_evidence
from scanstation.imaging import estimate_orientation, rotate_quarter
from tests.corpus import needs_corpus
from tests.pagekit import corpus_gray as corpus
from tests.pagekit import synthetic_gray as synthetic

TURNS = (0, 90, 180, 270)
# cleanup.ORIENTATION_MIN_CONFIDENCE: below it a page is flagged for the supervisor.
FLAG_BELOW = 0.6


@needs_corpus
@pytest.mark.parametrize("name", ["tess_devatest.png", "san_shreelipi_p002.png"])
@pytest.mark.parametrize("turn", TURNS)
def test_devanagari_pages_in_every_turn(name: str, turn: int) -> None:
    """Tesseract's OSD gives no answer for these at 90/270; the head-line settles it."""
    got, confidence = estimate_orientation(rotate_quarter(corpus(name), turn))
    assert got == turn
    assert confidence >= FLAG_BELOW


@needs_corpus
def test_devanagari_evidence_is_the_head_line() -> None:
    upright = orientation_evidence(corpus("tess_devatest.png"))
    assert upright.deva_up > 10 * max(1, upright.deva_down)
    flipped = orientation_evidence(rotate_quarter(corpus("tess_devatest.png"), 180))
    assert flipped.deva_down > 10 * max(1, flipped.deva_up)


@needs_corpus
@pytest.mark.parametrize("name", ["lept_lighttext.jpg", "ocrmypdf_typewriter.png", "oldbooks_h033.tiff"])
@pytest.mark.parametrize("turn", [90, 180])
def test_latin_scans_turned(name: str, turn: int) -> None:
    """Faint two-column newsprint, a typewriter page, a dense binarised book page."""
    got, _confidence = estimate_orientation(rotate_quarter(corpus(name), turn))
    assert got == turn


@pytest.mark.parametrize("turn", TURNS)
def test_hindi_sheet_at_75_dpi_bitonal(turn: int) -> None:
    gray = synthetic(seed=210, content="hindi", dpi=75, mode="1", skew_deg=-1.2)
    got, confidence = estimate_orientation(rotate_quarter(gray, turn))
    assert got == turn and confidence >= FLAG_BELOW


@pytest.mark.parametrize("turn", TURNS)
def test_bilingual_form_with_border_skew_and_noise(turn: int) -> None:
    """Tables, rules, Hindi and English on one page: rules must not decide, both scripts agree."""
    gray = synthetic(seed=211, page_no=2, dpi=150, mode="1", skew_deg=4.0, dark_border=True, noise=0.5)
    got, confidence = estimate_orientation(rotate_quarter(gray, turn))
    assert got == turn and confidence >= FLAG_BELOW


def test_english_evidence_is_ascenders_over_descenders() -> None:
    ev = orientation_evidence(synthetic(seed=212, content="english", dpi=200, mode="RGB"))
    assert ev.turn == 0
    assert ev.latin_up > 2 * ev.latin_down
    assert ev.axis_confidence > 0.9


def test_the_turn_from_the_generator_itself() -> None:
    """The rotation applied inside the scan simulation (after skew, borders and thresholding)."""
    for turn in (90, 270):
        gray = synthetic(seed=213, content="english", rotation=turn, skew_deg=2.0, dark_border=True, dpi=150)
        assert estimate_orientation(gray)[0] == turn


@pytest.mark.parametrize(
    "gray",
    [
        np.full((400, 300), 255, np.uint8),
        np.zeros((400, 300), np.uint8),
        np.zeros((1, 1), np.uint8),
        np.random.default_rng(5).integers(0, 256, (300, 200), dtype=np.uint8),
    ],
    ids=["white", "black", "one-pixel", "noise"],
)
def test_no_text_means_no_confidence(gray: np.ndarray) -> None:
    turn, confidence = estimate_orientation(gray)
    assert turn in TURNS
    assert confidence < 0.2


def test_a_signature_alone_is_flagged_not_guessed() -> None:
    _turn, confidence = estimate_orientation(synthetic(seed=214, content="signature"))
    assert confidence < FLAG_BELOW


def test_confidence_is_a_probability_like_number() -> None:
    for turn in TURNS:
        got, confidence = estimate_orientation(rotate_quarter(synthetic(seed=215, dpi=100), turn))
        assert got in TURNS
        assert 0.0 <= confidence <= 1.0

"""Blank-page detection: duplex backs with noise, bleed-through, holes or streaks are blank; any real mark is not."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from scanstation.cleanup.blank import BlankResult, blank_score, is_blank
from scanstation.imaging import to_gray
from tests.corpus import corpus_file, needs_corpus
from tests.pagekit import synthetic_array as page


def _dpi(kw: dict[str, object]) -> int:
    return int(kw.get("dpi", 300))  # type: ignore[call-overload]


def dark_holes(gray: np.ndarray, dpi: int, n: int = 2, level: int = 28) -> np.ndarray:
    """Punch holes showing a black lid: 6 mm discs, 80 mm apart, centred 12 mm from the left edge."""
    out = gray.copy()
    px = dpi / 25.4
    for i in range(n):
        cy = gray.shape[0] / 2 + (i - (n - 1) / 2) * 80 * px
        cv2.circle(out, (round(12 * px), round(cy)), round(3 * px), level, -1, lineType=cv2.LINE_AA)
    return out


def white_holes(gray: np.ndarray, dpi: int, n: int = 2, disc: int | None = 222, shadow: int = 150) -> np.ndarray:
    """Punch holes against a white ADF backing: a slightly grey disc with a shadow arc on one side."""
    out = gray.copy()
    px = dpi / 25.4
    for i in range(n):
        c = (round(12 * px), round(gray.shape[0] / 2 + (i - (n - 1) / 2) * 80 * px))
        if disc is not None:
            cv2.circle(out, c, round(3 * px), disc, -1)
        cv2.ellipse(out, c, (round(3 * px), round(3 * px)), 0, 100, 260, shadow, max(1, round(0.4 * px)))
    return out


def lighten(gray: np.ndarray, contrast: float, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """Scale the ink so its darkest point is ``contrast`` levels under the paper (a faint pencil), plus noise."""
    paper = float(np.percentile(gray, 90))
    f = gray.astype(np.float32)
    out = paper - (paper - f) * (contrast / max(1.0, paper - float(f.min())))
    if noise:
        out += np.random.default_rng(seed).normal(0.0, noise, out.shape).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------------
# Backs are blank
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {"noise": 1.0, "dpi": 200},
        {"bleed_through": True, "dpi": 200},
        {"bleed_through": True, "noise": 0.5, "dark_border": True, "skew_deg": 2.0},
        {"bleed_through": True, "mode": "1"},
        {"bleed_through": True, "mode": "RGB", "dpi": 200},
        {"bleed_through": True, "noise": 0.6, "dpi": 150},
        {"dark_border": True, "skew_deg": -4.0, "dpi": 200},
    ],
)
def test_blank_backs_are_blank(kw: dict[str, object]) -> None:
    seed = 70 + len(repr(kw)) % 7  # a different sheet for each case
    r = blank_score(page(seed=seed, blank=True, **kw), _dpi(kw))
    assert r.blank, r
    assert r.ink_mm2 < 2.0


@pytest.mark.parametrize("n", [2, 4])
def test_backs_with_dark_punch_holes_are_blank(n: int) -> None:
    back = dark_holes(page(seed=72, blank=True, bleed_through=True, noise=0.3, dpi=200), 200, n)
    r = blank_score(back, 200)
    assert r.blank, r


def test_backs_with_punch_holes_against_a_white_backing_are_blank() -> None:
    back = page(seed=73, blank=True, bleed_through=True, noise=0.3, dpi=200)
    assert blank_score(white_holes(back, 200), 200).blank
    assert blank_score(white_holes(back, 200, n=4, disc=None, shadow=120), 200).blank


def test_a_back_with_an_adf_streak_is_blank() -> None:
    back = page(seed=74, blank=True, bleed_through=True, noise=0.3, dpi=200).copy()
    back[:, 700:702] = 90  # dirt on the ADF glass: one thin line down the whole page
    r = blank_score(back, 200)
    assert r.blank, r
    assert "streak" in r.reason


def test_an_empty_page_is_blank() -> None:
    r = blank_score(np.full((1169, 827), 250, np.uint8), 100)
    assert r == BlankResult(True, 0.0, 0, r.reason)


# --------------------------------------------------------------------------------------------------
# Anything written is content
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {"content": "signature"},
        {"content": "line"},
        {"content": "stamp"},
        {"content": "stamp", "noise": 0.5, "dark_border": True, "dpi": 200},
        {"content": "signature", "dpi": 150, "mode": "1"},
        {"content": "signature", "mode": "RGB", "dpi": 200},
        {"content": "line", "bleed_through": True, "noise": 0.6, "dpi": 200},
        {"page_no": 3, "dpi": 150},
    ],
)
def test_pages_with_a_little_content_are_not_blank(kw: dict[str, object]) -> None:
    for seed in (75, 76):
        r = blank_score(page(seed=seed, **kw), _dpi(kw))
        assert not r.blank, (seed, r)
        assert r.components >= 1 and r.ink_mm2 >= 2.0


@pytest.mark.parametrize(("contrast", "noise"), [(35, 0.0), (25, 0.0), (30, 4.0)])
def test_a_faint_pencil_signature_is_content(contrast: int, noise: float) -> None:
    for seed in (77, 78):
        faint = lighten(page(seed=seed, content="signature"), contrast, noise, seed)
        r = blank_score(faint, 300)
        assert not r.blank, (seed, r)
        if not noise:
            assert "faint" in r.reason


def test_a_faint_signature_on_a_bleed_through_back_is_content() -> None:
    back = page(seed=79, blank=True, bleed_through=True, dpi=200)
    sig = page(seed=79, content="signature", dpi=200)
    faint = lighten(sig, 35)
    combined = np.minimum(back, faint.astype(np.int16) + (back.astype(np.int16) - 245)).clip(0, 255).astype(np.uint8)
    assert blank_score(back, 200).blank
    assert not blank_score(combined, 200).blank


def test_a_light_colour_stamp_counts_in_colour() -> None:
    """A yellow stamp is barely darker than paper in grey, but clearly coloured."""
    back = np.array(page(seed=80, blank=True, mode="RGB", dpi=200))
    px = 200 / 25.4
    centre = (round(105 * px), round(150 * px))
    yellow = (250, 226, 80)
    cv2.circle(back, centre, round(13 * px), yellow, max(1, round(0.6 * px)))
    cv2.putText(
        back, "OFFICE", (centre[0] - round(9 * px), centre[1] + round(2 * px)), cv2.FONT_HERSHEY_SIMPLEX, 1.6, yellow, 3
    )
    gray = cv2.cvtColor(back, cv2.COLOR_RGB2GRAY)
    assert 245 - int(np.percentile(gray[gray < 240], 5)) < 40  # faint in grey
    assert not blank_score(back, 200).blank


@needs_corpus
@pytest.mark.parametrize(
    "name",
    [
        "lept_lighttext.jpg",
        "tess_phototest.tif",
        "tess_eurotext.tif",
        "galfar_5.png",
        "skimage_page.png",
        "oldbooks_h033.tiff",
        "tess_devatest.png",
    ],
)
def test_corpus_pages_are_not_blank(name: str) -> None:
    with Image.open(corpus_file(name)) as im:
        gray = to_gray(im)
        dpi = im.info.get("dpi", (300, 300))[0]
    dpi = 300 if not dpi or dpi < 50 else round(dpi)
    assert not blank_score(gray, dpi).blank


# --------------------------------------------------------------------------------------------------
# Contract
# --------------------------------------------------------------------------------------------------


def test_is_blank_has_the_imaging_contract() -> None:
    assert is_blank(page(seed=70, blank=True, bleed_through=True, dpi=150), 150) is True
    assert is_blank(page(seed=75, content="line", dpi=150), 150) is False


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        blank_score(np.full((100, 100), 255, np.uint8), 0)
    with pytest.raises(ValueError):
        blank_score(np.full((100, 100), 255.0), 300)
    with pytest.raises(ValueError):
        blank_score(np.full((100, 100, 4), 255, np.uint8), 300)

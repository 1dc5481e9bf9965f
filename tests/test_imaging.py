"""Tests of page analysis: skew, orientation, blank backs and conversions, on synthetic and corpus pages."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scanstation.imaging import (
    deskew,
    estimate_orientation,
    estimate_skew,
    is_blank,
    rotate_quarter,
    to_gray,
)
from tests.corpus import corpus_file, needs_corpus
from tests.pagekit import corpus_gray
from tests.pagekit import synthetic_gray as gray_page


@lru_cache(maxsize=4)
def corpus_pdf_gray(name: str) -> np.ndarray:
    """Page 1 of a corpus PDF rendered at 300 dpi, as the shared bench does."""
    with tempfile.TemporaryDirectory() as td:
        subprocess.run(
            ["pdftoppm", "-r", "300", "-gray", "-f", "1", "-l", "1", "-png", str(corpus_file(name)), f"{td}/p"],
            check=True,
            timeout=60,
        )
        (png,) = Path(td).glob("*.png")
        with Image.open(png) as im:
            arr = to_gray(im)
    arr.setflags(write=False)
    return arr


# --------------------------------------------------------------------------------------------------
# Skew
# --------------------------------------------------------------------------------------------------

SKEW_CASES = [
    # (skew, page_no, content, noise, dark_border, bleed_through, mode)
    (-9.6, 1, "form", 0.3, True, False, "L"),
    (-3.1, 2, "form", 0.0, False, True, "1"),
    (0.0, 3, "form", 0.5, True, True, "L"),
    (0.4, 1, "hindi", 0.2, False, False, "L"),
    (2.5, 2, "english", 0.0, True, False, "RGB"),
    (7.0, 1, "form", 0.8, False, True, "L"),
]


@pytest.mark.parametrize(("skew", "page_no", "content", "noise", "border", "bleed", "mode"), SKEW_CASES)
def test_skew_of_synthetic_pages(
    skew: float, page_no: int, content: str, noise: float, border: bool, bleed: bool, mode: str
) -> None:
    gray = gray_page(
        seed=40 + page_no,
        page_no=page_no,
        content=content,
        skew_deg=skew,
        noise=noise,
        dark_border=border,
        bleed_through=bleed,
        mode=mode,
    )
    est = estimate_skew(gray)
    assert est is not None
    assert est == pytest.approx(skew, abs=0.25)


def test_skew_of_a_quarter_turned_page_is_the_same() -> None:
    gray = gray_page(seed=50, skew_deg=2.5)
    est = estimate_skew(rotate_quarter(gray, 90))
    assert est is not None and est == pytest.approx(2.5, abs=0.25)


def test_skew_is_none_without_content() -> None:
    assert estimate_skew(gray_page(seed=51, blank=True, noise=0.5, bleed_through=True)) is None
    assert estimate_skew(np.full((600, 400), 255, np.uint8)) is None


def test_deskew_straightens_with_white_corners() -> None:
    gray = gray_page(seed=53, skew_deg=5.0)
    straight = deskew(gray, 5.0)
    assert straight.shape == gray.shape and straight.dtype == np.uint8
    est = estimate_skew(straight)
    assert est is not None and abs(est) < 0.25
    assert straight[0, 0] == 255 and straight[-1, -1] == 255
    colour = np.dstack([gray[:400, :300]] * 3)
    turned = deskew(colour, 5.0)
    assert turned.shape == colour.shape
    assert np.array_equal(turned[:, :, 0], deskew(np.ascontiguousarray(gray[:400, :300]), 5.0))


@needs_corpus
@pytest.mark.parametrize(
    "name", ["tess_devatest.png", "tess_phototest.tif", "oldbooks_a065.tiff", "san_shreelipi_p002.png"]
)
@pytest.mark.parametrize("angle", [-3.0, 3.0])
def test_skew_of_rotated_corpus_pages(name: str, angle: float) -> None:
    gray = corpus_gray(name)
    base = estimate_skew(gray)
    assert base is not None
    rotated = to_gray(Image.fromarray(gray).rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=255))
    est = estimate_skew(rotated)
    assert est is not None
    # The page's own (small) skew adds to the applied rotation.
    assert est - base == pytest.approx(angle, abs=0.3)


# Scan conditions the station must handle: (skew, dpi, mode, dark border, content, noise).  The
# generator rotates the sheet by exactly ``skew``, so the truth is exact; 0.1 degree is a tenth of what
# a person notices and about ten times the estimator's typical error on such pages.
SCAN_CONDITIONS = [
    (15.0, 150, "L", True, "form", 0.3),
    (-15.0, 75, "1", False, "form", 0.0),
    (-14.6, 300, "RGB", True, "hindi", 0.2),
    (11.3, 75, "L", True, "english", 0.6),
    (-0.35, 75, "1", True, "form", 0.4),
    (4.2, 200, "RGB", False, "form", 0.0),
    (-6.8, 600, "L", True, "form", 0.2),
]


@pytest.mark.parametrize(("skew", "dpi", "mode", "border", "content", "noise"), SCAN_CONDITIONS)
def test_skew_across_scan_conditions(
    skew: float, dpi: int, mode: str, border: bool, content: str, noise: float
) -> None:
    gray = gray_page(
        seed=140, page_no=2, dpi=dpi, skew_deg=skew, mode=mode, dark_border=border, content=content, noise=noise
    )
    est = estimate_skew(gray)
    assert est is not None
    assert est == pytest.approx(skew, abs=0.1)


def test_skew_follows_the_text_not_the_dark_border() -> None:
    """The sheet edge against the scanner lid is a long straight line; only the text may count."""
    gray = np.array(gray_page(seed=141, skew_deg=3.5, dark_border=True), copy=True)
    h, w = gray.shape
    # A lid band at a different angle: everything left of a line tilted 2 degrees goes dark.
    ys = np.arange(h)[:, None]
    xs = np.arange(w)[None, :]
    gray[xs < 0.04 * w + (h - ys) * np.tan(np.radians(2.0))] = 30
    est = estimate_skew(gray)
    assert est is not None and est == pytest.approx(3.5, abs=0.1)


def test_skew_range_convention_and_input_checks() -> None:
    est = estimate_skew(gray_page(seed=142, skew_deg=-7.5, dpi=150))
    assert isinstance(est, float) and -45.0 <= est < 45.0
    with pytest.raises(ValueError):
        estimate_skew(np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError):
        estimate_skew(np.zeros((10, 10), np.float32))


@pytest.mark.parametrize(
    "gray",
    [
        np.zeros((1, 1), np.uint8),
        np.full((3, 500), 255, np.uint8),
        np.zeros((200, 150), np.uint8),  # all black: a closed lid, no sheet
    ],
    ids=["one-pixel", "one-row", "black"],
)
def test_skew_of_degenerate_images_is_none(gray: np.ndarray) -> None:
    assert estimate_skew(gray) is None


def test_skew_of_a_round_stamp_alone_is_none() -> None:
    """A stamp has no direction: an angle from it would be a guess."""
    assert estimate_skew(gray_page(seed=143, content="stamp")) is None


def _turned(gray: np.ndarray, angle: float) -> np.ndarray:
    """The shared bench's rotation: Pillow bicubic, canvas expanded, white fill."""
    im = Image.fromarray(gray).rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    return np.asarray(im)


@needs_corpus
@pytest.mark.parametrize(
    ("name", "angle"),
    [
        ("oldbooks_h033.tiff", -7.3),
        ("tess_devatest.png", 9.6),
        ("lept_lighttext.jpg", 4.9),  # two columns whose lines differ by ~0.4 degree
        ("ocrmypdf_typewriter.png", -3.1),
        ("tess_phototest.tif", 15.0),
        ("lept_pageseg2.tif", -15.0),  # photo, columns, headline bars
    ],
)
def test_rotated_corpus_pages_track_the_applied_angle(name: str, angle: float) -> None:
    gray = corpus_gray(name)
    base = estimate_skew(gray)
    est = estimate_skew(_turned(gray, angle))
    assert base is not None and est is not None
    assert est - base == pytest.approx(angle, abs=0.1)


@needs_corpus
@pytest.mark.parametrize(
    ("name", "residual"),
    # The page's own skew as the text-line peers agree on it (deskew at 0.1 degree, jdeskew, leptonica).
    [("tess_eurotext.tif", -0.81), ("ocrmypdf_c02-22.pdf", 0.72), ("ocrmypdf_typewriter.png", 0.22)],
)
def test_residual_skew_of_real_scans(name: str, residual: float) -> None:
    if name.endswith(".pdf") and shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (poppler-utils) not installed")
    gray = corpus_pdf_gray(name) if name.endswith(".pdf") else corpus_gray(name)
    est = estimate_skew(_turned(gray, 1.7))
    assert est is not None and est == pytest.approx(residual + 1.7, abs=0.1)


@needs_corpus
@pytest.mark.parametrize(("name", "reference"), [("galfar_2.png", 2.0), ("galfar_5.png", -3.0)])
def test_naturally_skewed_pages(name: str, reference: float) -> None:
    # The reference is sbrunner/deskew's expectation on a 1-degree grid: within half a degree.
    est = estimate_skew(corpus_gray(name))
    assert est is not None and est == pytest.approx(reference, abs=0.5)


# --------------------------------------------------------------------------------------------------
# Orientation
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["form", "hindi", "english"])
@pytest.mark.parametrize("turn", [0, 90, 180, 270])
def test_orientation_of_synthetic_pages(content: str, turn: int) -> None:
    gray = gray_page(seed=60, page_no=2 if content == "form" else 1, content=content, skew_deg=1.5, noise=0.3)
    got, confidence = estimate_orientation(rotate_quarter(gray, turn))
    assert got == turn
    assert confidence > 0.5


def test_orientation_through_the_scan_pipeline() -> None:
    """Rotation applied by the generator (after skew, border and B/W threshold) is found too."""
    for turn in (90, 270):
        gray = gray_page(seed=61, rotation=turn, skew_deg=-2.0, dark_border=True, noise=0.4, mode="1")
        assert estimate_orientation(gray)[0] == turn
        # Turning back by the answer gives an upright page.
        assert estimate_orientation(rotate_quarter(gray, -turn))[0] == 0


def test_orientation_of_a_blank_page_has_no_confidence() -> None:
    _turn, confidence = estimate_orientation(gray_page(seed=62, blank=True, bleed_through=True))
    assert confidence < 0.2


@needs_corpus
@pytest.mark.parametrize(
    "name",
    ["tess_devatest.png", "tess_phototest.tif", "oldbooks_a065.tiff", "san_shreelipi_p002.png", "lept_pageseg2.tif"],
)
@pytest.mark.parametrize("turn", [0, 90, 180, 270])
def test_orientation_of_corpus_pages(name: str, turn: int) -> None:
    got, _confidence = estimate_orientation(rotate_quarter(corpus_gray(name), turn))
    assert got == turn


@needs_corpus
def test_orientation_of_devanagari_turned_a_quarter() -> None:
    # Tesseract's OSD cannot answer for Devanagari at 90/270; this file's text reads bottom to top.
    got, confidence = estimate_orientation(corpus_gray("tess_devatest-rotated-270.png"))
    assert got == 90 and confidence > 0.5


# --------------------------------------------------------------------------------------------------
# Blank pages
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {"noise": 1.0},
        {"bleed_through": True},
        {"bleed_through": True, "noise": 0.5, "dark_border": True, "skew_deg": 2.0},
        {"bleed_through": True, "mode": "1"},
        {"bleed_through": True, "mode": "RGB", "dpi": 200},
    ],
)
def test_blank_backs_are_blank(kw: dict[str, object]) -> None:
    dpi = int(kw.get("dpi", 300))  # type: ignore[call-overload]
    assert is_blank(gray_page(seed=70, blank=True, **kw), dpi)


@pytest.mark.parametrize(
    "kw",
    [
        {"content": "signature"},
        {"content": "line"},
        {"content": "stamp"},
        {"content": "stamp", "noise": 0.5, "dark_border": True},
        {"content": "signature", "dpi": 150, "mode": "1"},
        {"page_no": 3},
    ],
)
def test_pages_with_a_little_content_are_not_blank(kw: dict[str, object]) -> None:
    dpi = int(kw.get("dpi", 300))  # type: ignore[call-overload]
    assert not is_blank(gray_page(seed=71, **kw), dpi)


@needs_corpus
def test_light_text_is_not_blank() -> None:
    assert not is_blank(corpus_gray("lept_lighttext.jpg"), 300)


def test_is_blank_rejects_bad_dpi() -> None:
    with pytest.raises(ValueError):
        is_blank(np.full((100, 100), 255, np.uint8), 0)


# --------------------------------------------------------------------------------------------------
# Conversions
# --------------------------------------------------------------------------------------------------


def test_rotate_quarter_matches_pillow() -> None:
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for turn, tr in (
        (90, Image.Transpose.ROTATE_90),
        (180, Image.Transpose.ROTATE_180),
        (270, Image.Transpose.ROTATE_270),
    ):
        assert np.array_equal(rotate_quarter(arr, turn), np.asarray(Image.fromarray(arr).transpose(tr)))
    assert np.array_equal(rotate_quarter(arr, -90), rotate_quarter(arr, 270))
    assert np.array_equal(rotate_quarter(arr, 360), arr)
    with pytest.raises(ValueError):
        rotate_quarter(arr, 45)


def test_to_gray_handles_scanner_modes() -> None:
    bw = Image.new("1", (8, 4), 1)
    assert to_gray(bw).tolist() == [[255] * 8] * 4
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))  # fully transparent: paper, not black
    assert to_gray(rgba).min() == 255
    deep = Image.fromarray(np.full((4, 4), 65535, np.uint16))
    assert to_gray(deep).min() == 255
    pal = Image.new("RGB", (4, 4), (10, 20, 30)).convert("P")
    out = to_gray(pal)
    assert out.dtype == np.uint8 and out.flags.c_contiguous and out.flags.writeable

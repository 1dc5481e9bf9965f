"""Quality flags: each condition is triggered by a page that has it, and clean pages raise none."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pikepdf
import pytest
from PIL import Image

from scanstation.cleanup.quality import (
    QualityFlag,
    assess_batch_lengths,
    assess_page,
    double_feed_outliers,
    measure_page,
    page_length_mm,
)
from scanstation.imaging import to_gray
from tests.corpus import corpus_file, needs_corpus
from tests.pagekit import synthetic_array
from tests.pagekit import synthetic_gray as page

CODES = {
    "low_resolution",
    "too_dark",
    "too_light",
    "low_contrast",
    "blurred",
    "content_cut_off",
    "skew_uncorrectable",
    "double_feed",
    "grainy",
}
DEVANAGARI = re.compile("[\u0900-\u097f]")


def codes(gray: np.ndarray, dpi: int, skew: float | None = 0.0) -> dict[str, QualityFlag]:
    flags = assess_page(gray, dpi, skew=skew, content_box=None)
    for f in flags:
        assert f.code in CODES
        assert f.message_en and DEVANAGARI.search(f.message_hi), f
        assert isinstance(f.value, float) and isinstance(f.threshold, float)
    return {f.code: f for f in flags}


def enlarge(gray: np.ndarray, k: float, how: int) -> np.ndarray:
    h, w = gray.shape
    return cv2.resize(gray, (round(w * k), round(h * k)), interpolation=how)


# --------------------------------------------------------------------------------------------------
# Clean pages raise no flag
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"noise": 0.5, "page_no": 2},
        {"mode": "1", "page_no": 3},
        {"mode": "RGB", "content": "hindi"},
        {"bleed_through": True, "noise": 0.3, "dpi": 200},
        {"dark_border": True, "skew_deg": 3.0, "dpi": 200},
        {"content": "signature"},
        {"content": "stamp", "dpi": 200},
        {"content": "english", "dpi": 400},
    ],
)
def test_clean_pages_raise_no_flag(kw: dict[str, object]) -> None:
    dpi = int(kw.get("dpi", 300))  # type: ignore[call-overload]
    assert codes(page(seed=100, **kw), dpi, skew=float(kw.get("skew_deg", 0.0))) == {}  # type: ignore[arg-type]


def test_a_blank_back_raises_no_flag() -> None:
    m = measure_page(page(seed=101, blank=True, bleed_through=True, noise=0.3), 300)
    assert m.ink_level is None and m.edge_width_mm is None
    assert codes(page(seed=101, blank=True, bleed_through=True, noise=0.3), 300) == {}


# --------------------------------------------------------------------------------------------------
# Each flag
# --------------------------------------------------------------------------------------------------


def test_low_resolution_from_the_scan_setting() -> None:
    found = codes(page(seed=102, dpi=150), 150)
    assert set(found) == {"low_resolution"}
    assert found["low_resolution"].value == 150.0 and found["low_resolution"].threshold == 200.0
    assert "300 dpi" in found["low_resolution"].message_en


@pytest.mark.parametrize("how", [cv2.INTER_CUBIC, cv2.INTER_LINEAR, cv2.INTER_NEAREST])
def test_a_100_dpi_scan_enlarged_to_300_dpi_is_low_resolution(how: int) -> None:
    gray = enlarge(page(seed=103, dpi=100), 3.0, how)
    found = codes(gray, 300)
    assert "low_resolution" in found and "blurred" not in found
    assert found["low_resolution"].value < 200.0
    if how == cv2.INTER_NEAREST:
        assert found["low_resolution"].value == pytest.approx(100.0)


def test_a_true_200_dpi_scan_is_not_low_resolution() -> None:
    assert "low_resolution" not in codes(page(seed=104, dpi=200), 200)


def test_too_dark() -> None:
    gray = (page(seed=105).astype(np.float32) * 0.55).astype(np.uint8)
    found = codes(gray, 300)
    assert set(found) == {"too_dark"}
    assert found["too_dark"].value < found["too_dark"].threshold


def test_too_light() -> None:
    gray = (255.0 - (255.0 - page(seed=105).astype(np.float32)) * 0.45).astype(np.uint8)
    found = codes(gray, 300)
    assert set(found) == {"too_light"}
    assert found["too_light"].value > found["too_light"].threshold


def test_low_contrast() -> None:
    # Grey paper (~175) with grey writing (~115): neither too dark nor too light, but hard to read.
    gray = (175.0 - (255.0 - page(seed=105).astype(np.float32)) * 60.0 / 255.0).astype(np.uint8)
    found = codes(gray, 300)
    assert set(found) == {"low_contrast"}
    assert found["low_contrast"].value < found["low_contrast"].threshold


def test_blurred() -> None:
    gray = cv2.GaussianBlur(page(seed=106), (0, 0), 2.0)
    found = codes(gray, 300)
    assert set(found) == {"blurred"}
    assert found["blurred"].value > found["blurred"].threshold


def test_content_cut_off() -> None:
    gray = np.ascontiguousarray(page(seed=107, dpi=200)[:, round(20 * 200 / 25.4) :])  # text runs off the left
    found = codes(gray, 200)
    assert set(found) == {"content_cut_off"}
    assert "left" in found["content_cut_off"].message_en and "बाएँ" in found["content_cut_off"].message_hi


def test_content_near_a_dark_border_is_not_cut_off() -> None:
    for seed, skew in ((108, 2.0), (109, -5.0)):
        assert "content_cut_off" not in codes(page(seed=seed, dark_border=True, skew_deg=skew, dpi=200), 200)


def test_skew_beyond_correction() -> None:
    gray = page(seed=110, dpi=200)
    found = codes(gray, 200, skew=-20.0)
    assert set(found) == {"skew_uncorrectable"}
    assert found["skew_uncorrectable"].value == 20.0 and found["skew_uncorrectable"].threshold == 15.0
    assert codes(gray, 200, skew=14.0) == {} and codes(gray, 200, skew=None) == {}


def test_a_page_longer_than_any_sheet_is_a_double_feed() -> None:
    top = page(seed=111, dpi=150)
    # Two sheets overlapping by half: the capture runs on into the second sheet's blank half.
    gray = np.vstack([top, np.full((top.shape[0] // 2, top.shape[1]), 245, np.uint8)])
    found = codes(gray, 150)
    assert "double_feed" in found
    assert found["double_feed"].value == pytest.approx(297 * 1.5, abs=3)


def _with_grain(gray: np.ndarray, sigma: float, seed: int = 5) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, sigma, gray.shape)
    return np.clip(gray.astype(np.float32) + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("dpi", [300, 200])
def test_grainy_scan(dpi: int) -> None:
    gray = _with_grain(page(seed=112, dpi=dpi), 40.0)
    found = codes(gray, dpi)
    assert set(found) == {"grainy"}
    assert found["grainy"].value > found["grainy"].threshold == 18.0
    assert "brightness" in found["grainy"].message_en


def test_grain_that_still_reads_well_is_not_flagged() -> None:
    # Tesseract reads synthetic pages with this much grain as well as clean ones (quality.MAX_GRAIN).
    assert codes(_with_grain(page(seed=112), 12.0), 300) == {}
    assert codes(_with_grain(page(seed=112), 16.0), 300) == {}


def test_grain_is_measured_on_the_paper_not_the_writing() -> None:
    # Paper at ~200, so the grain is not clipped at white and its σ can be checked.
    base = (page(seed=113).astype(np.float32) * (200.0 / 255.0)).astype(np.uint8)
    for sigma in (6.0, 12.0, 20.0):
        grain = measure_page(_with_grain(base, sigma), 300).grain
        assert grain is not None and grain == pytest.approx(sigma, rel=0.15), sigma
    # Dense print of both scripts on clean paper: the writing's edges are no grain.
    for kw in ({"content": "hindi"}, {"content": "english"}, {}):
        grain = measure_page(page(seed=113, **kw), 300).grain
        assert grain is not None and grain <= 2.0, kw


def test_grain_on_a_page_with_little_writing() -> None:
    # A signature alone: Otsu's threshold falls inside the paper's own grain, so marks are also held to lie well
    # under the paper's bright end, and the paper is still found to measure the grain on.
    sparse = page(seed=116, content="signature")
    assert measure_page(sparse, 300).grain == 0.0
    grainy = _with_grain(sparse, 32.0)
    found = codes(grainy, 300)
    assert "grainy" in found and found["grainy"].value > 20.0


def test_a_colour_scan_is_judged_by_its_noisiest_channel() -> None:
    rgb = _with_grain(synthetic_array(seed=115, mode="RGB"), 32.0)
    gray = to_gray(Image.fromarray(rgb, "RGB"))
    assert "grainy" not in codes(gray, 300)  # the grey page averages the channels' noise away
    flags = {f.code: f for f in assess_page(gray, 300, skew=0.0, content_box=None, colour=rgb)}
    assert set(flags) == {"grainy"} and flags["grainy"].value > 18.0
    with pytest.raises(ValueError, match="differ in size"):
        assess_page(gray, 300, skew=0.0, content_box=None, colour=np.ascontiguousarray(rgb[1:]))
    clean = synthetic_array(seed=115, mode="RGB")
    assert assess_page(to_gray(Image.fromarray(clean, "RGB")), 300, skew=0.0, content_box=None, colour=clean) == []


def test_the_cleaning_pipeline_flags_a_grainy_scan() -> None:
    from scanstation.cleanup.pipeline import clean_page

    rgb = np.repeat(_with_grain(page(seed=114), 40.0)[:, :, None], 3, axis=2)
    result = clean_page(Image.fromarray(rgb, "RGB"), 300)
    assert "grainy" in result.flags
    grainy = [q for q in result.analysis["quality"] if q["code"] == "grainy"]
    assert grainy and grainy[0]["value"] > 18.0 and DEVANAGARI.search(grainy[0]["message_hi"])


# --------------------------------------------------------------------------------------------------
# Double feed across a batch
# --------------------------------------------------------------------------------------------------


def test_double_feed_outliers_in_a_batch() -> None:
    a4 = [297.0, 296.6, 297.4, 297.1, 296.9, 297.0, 297.2, 296.8]
    assert double_feed_outliers(a4) == []
    assert double_feed_outliers([*a4, 372.0, 297.0]) == [8]
    assert double_feed_outliers([*a4, 305.0]) == []  # within what feeders measure differently
    assert double_feed_outliers([*a4, 150.0]) == []  # a smaller sheet is not a feeding fault
    assert double_feed_outliers([297.0, 420.0, 297.0]) == []  # too few pages to judge
    # A batch of legal-size sheets: the median moves with it.
    legal = [355.6, 356.0, 355.2, 355.8, 356.1]
    assert double_feed_outliers(legal) == []
    assert double_feed_outliers([*legal, 430.0]) == [5]


def test_assess_batch_lengths_gives_flags_with_evidence() -> None:
    lengths = [page_length_mm(3508, 300)] * 9 + [page_length_mm(4600, 300)]
    flags = assess_batch_lengths(lengths)
    assert list(flags) == [9]
    f = flags[9]
    assert f.code == "double_feed" and f.value == pytest.approx(389.5, abs=0.1)
    assert 297.0 < f.threshold < f.value
    assert "297" in f.message_en and DEVANAGARI.search(f.message_hi)
    assert f.to_dict()["code"] == "double_feed"
    with pytest.raises(ValueError):
        double_feed_outliers([297.0, float("nan")])


# --------------------------------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------------------------------


@needs_corpus
def test_a_150_dpi_corpus_scan_is_low_resolution() -> None:
    with pikepdf.open(corpus_file("ocrmypdf_c02-22.pdf")) as pdf:
        image = next(iter(pdf.pages[0].get_images().values()))
        gray = to_gray(pikepdf.PdfImage(image).as_pil_image())  # type: ignore[arg-type]
    found = codes(gray, 150)
    assert "low_resolution" in found and found["low_resolution"].value == 150.0


@needs_corpus
@pytest.mark.parametrize("name", ["tess_eurotext.tif", "oldbooks_a065.tiff", "ocrmypdf_typewriter.png"])
def test_sharp_corpus_scans_are_not_blurred_or_low_resolution(name: str) -> None:

    with Image.open(corpus_file(name)) as im:
        gray = to_gray(im)
    found = codes(gray, 300)
    assert "blurred" not in found and "low_resolution" not in found


@needs_corpus
def test_faint_corpus_scan_is_flagged() -> None:

    with Image.open(corpus_file("lept_lighttext.jpg")) as im:
        gray = to_gray(im)
    assert {"too_light", "low_contrast"} <= set(codes(gray, 300))

"""Tests of the synthetic ACR page generator: geometry, determinism, ground truth, shaping, OCR-ability."""

from __future__ import annotations

import io
import shutil
import subprocess
import time
import unicodedata
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from skimage.color import deltaE_ciede2000, rgb2lab

from scanstation_tools.colour_error import mean_colour_error, region_colour_error
from scanstation_tools.synth import (
    COLOUR_MARKS,
    PEN_INKS,
    STAMP_INKS,
    PageSpec,
    SyntheticPage,
    find_font,
    render_acr_file,
    render_acr_page,
    synthetic_employee,
    write_pages,
)


@lru_cache(maxsize=32)
def page(**kw: object) -> SyntheticPage:
    """Rendered pages are reused across tests (a 300-dpi page costs ~0.3 s)."""
    return render_acr_page(PageSpec(**kw))  # type: ignore[arg-type]


def test_a4_geometry_and_modes() -> None:
    p = page(seed=1)
    assert p.image.size == (2480, 3508)
    assert p.image.mode == "L"
    assert p.image.info["dpi"] == (300, 300)
    small = page(seed=1, dpi=150, mode="1")
    assert small.image.size == (1240, 1754)
    assert small.image.mode == "1"
    assert page(seed=1, dpi=100, mode="RGB").image.mode == "RGB"


def test_rotation_is_an_exact_quarter_turn() -> None:
    upright = page(seed=2, dpi=100)
    turned = page(seed=2, dpi=100, rotation=90)
    assert turned.image.size == (upright.image.height, upright.image.width)
    expected = upright.image.transpose(Image.Transpose.ROTATE_90)
    assert turned.image.tobytes() == expected.tobytes()
    assert turned.rotation == 90 and turned.text == upright.text


def test_same_spec_same_pixels_different_seed_different_data() -> None:
    spec = PageSpec(seed=11, page_no=2, dpi=150, skew_deg=2.5, noise=0.6, dark_border=True, bleed_through=True)
    a, b = render_acr_page(spec), render_acr_page(spec)
    assert a.image.tobytes() == b.image.tobytes()
    assert a.text == b.text and a.fields == b.fields
    c = render_acr_page(PageSpec(seed=12, page_no=2, dpi=150))
    assert c.fields["employee_code"] != a.fields["employee_code"]
    assert c.image.tobytes() != a.image.tobytes()
    # Distortions never move the printed text: same content, different scan.
    assert render_acr_page(PageSpec(seed=11, page_no=2, dpi=150)).text == a.text


def test_ground_truth_text_and_fields() -> None:
    p = page(seed=5)
    emp = synthetic_employee(5)
    assert set(p.fields) >= {"employee_code", "name", "name_hi", "rank", "rank_hi", "acr_period", "unit"}
    assert p.fields["employee_code"] == emp.employee_code
    assert p.text == unicodedata.normalize("NFC", p.text)
    lines = p.text.splitlines()
    assert "MADHYANCHAL PRADESH POLICE" in lines
    assert "वार्षिक गोपनीय प्रविष्टि / ANNUAL CONFIDENTIAL REPORT" in lines
    assert f"1. कर्मचारी संख्या / Employee Code {emp.employee_code}" in lines
    assert f"2. नाम / Name {emp.name}" in lines
    assert f"3. नाम (हिन्दी में) / Name in Hindi {emp.name_hi}" in lines
    assert f"10. अवधि / Period of report {emp.period_text}" in lines
    assert lines[-1] == "पृष्ठ 1 / Page 1"


def test_single_script_pages() -> None:
    hindi = page(seed=3, content="hindi", dpi=150).text
    english = page(seed=3, content="english", dpi=150).text
    assert not any("a" <= ch.lower() <= "z" for ch in hindi)
    assert not any(0x0900 <= ord(ch) <= 0x097F for ch in english)
    assert hindi.startswith("निर्देश") and english.startswith("INSTRUCTIONS")


def test_file_has_particulars_then_appraisal_and_blank_backs() -> None:
    pages = render_acr_file(21, 3, blank_backs=True, dpi=100)
    assert len(pages) == 6
    fronts, backs = pages[0::2], pages[1::2]
    assert "PART-I : PERSONAL PARTICULARS" in fronts[0].text
    assert "PART-III : ASSESSMENT BY THE REPORTING OFFICER" in fronts[1].text
    assert "PART-IV : REMARKS OF THE REVIEWING OFFICER" in fronts[2].text
    assert all(b.spec.blank and b.text == "" for b in backs)
    assert len({p.fields["employee_code"] for p in pages}) == 1
    # The blank back shows its own front faintly (bleed-through): apart from noise specks, no ink.
    back = np.asarray(backs[0].image)
    assert np.percentile(back, 0.5) > 180
    with pytest.raises(TypeError):
        render_acr_file(1, 1, colour="blue")


def test_write_pages(tmp_path: Path) -> None:
    pages = render_acr_file(4, 2, dpi=75)
    paths = write_pages(pages, tmp_path / "out")
    assert [p.name for p in paths] == ["page_001.png", "page_002.png"]
    for path, pg in zip(paths, pages, strict=True):
        with Image.open(path) as im:
            assert im.size == pg.image.size
            assert round(im.info["dpi"][0]) == 75
        assert path.with_suffix(".gt.txt").read_text(encoding="utf-8") == pg.text + "\n"


def test_skewed_content_stays_on_the_page() -> None:
    p = page(seed=8, skew_deg=-9.6, dpi=100)
    ink = np.asarray(p.image) < 128
    margin = 3  # px at 100 dpi, about 0.8 mm
    assert ink.any()
    assert not ink[:margin].any() and not ink[-margin:].any()
    assert not ink[:, :margin].any() and not ink[:, -margin:].any()


def test_dark_border_darkens_an_edge_but_not_the_content() -> None:
    plain = np.asarray(page(seed=9, dpi=100).image)
    bordered = np.asarray(page(seed=9, dpi=100, dark_border=True).image)
    edges = [bordered[:2].mean(), bordered[-2:].mean(), bordered[:, :2].mean(), bordered[:, -2:].mean()]
    assert min(edges) < 80
    # The centre of the page keeps its ink (same amount within a few percent).
    h, w = plain.shape
    c_plain = (plain[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] < 128).mean()
    c_border = (bordered[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] < 128).mean()
    assert c_border == pytest.approx(c_plain, rel=0.1)


def test_spec_validation() -> None:
    with pytest.raises(ValueError):
        PageSpec(seed=1, rotation=45)
    with pytest.raises(ValueError):
        PageSpec(seed=1, noise=2.0)
    with pytest.raises(ValueError):
        PageSpec(seed=1, mode="CMYK")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        PageSpec(seed=1, content="photo")  # type: ignore[arg-type]


def test_devanagari_is_shaped_by_raqm() -> None:
    """Raqm reorders the i-matra and forms conjuncts; the basic layout would not."""
    word = "प्रविष्टि"
    path = str(find_font("NotoSansDevanagari-Regular.ttf"))
    images = []
    for engine in (ImageFont.Layout.RAQM, ImageFont.Layout.BASIC):
        font = ImageFont.truetype(path, 64, layout_engine=engine)
        im = Image.new("L", (400, 120), 0)
        ImageDraw.Draw(im).text((10, 10), word, font=font, fill=255)
        images.append(np.asarray(im))
    assert not np.array_equal(images[0], images[1])


def test_render_is_fast() -> None:
    render_acr_page(PageSpec(seed=30))  # warm the font cache
    start = time.perf_counter()
    render_acr_page(PageSpec(seed=31, page_no=2, skew_deg=3.0, noise=0.3, dark_border=True, bleed_through=True))
    # Measured ~0.3 s on one core; the bound leaves room for a slow CI machine.
    assert time.perf_counter() - start < 2.0


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract not installed")
def test_printed_hindi_is_ocr_readable() -> None:
    langs = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True, timeout=30).stdout
    if "hin" not in langs.split():
        pytest.skip("tesseract Hindi model not installed")
    p = page(seed=7)
    header = p.image.crop((0, 0, p.image.width, p.image.height // 5))
    buf = io.BytesIO()
    header.save(buf, format="PNG", dpi=(300, 300))
    out = subprocess.run(
        ["tesseract", "-", "-", "-l", "hin+eng", "--psm", "6"],
        input=buf.getvalue(),
        capture_output=True,
        timeout=120,
        check=True,
    ).stdout.decode("utf-8")
    out = unicodedata.normalize("NFC", out)
    assert "मध्यांचल प्रदेश पुलिस" in out
    assert "ANNUAL CONFIDENTIAL REPORT" in out


# --------------------------------------------------------------------------------------------------
# Colour marks (stamps, ballpoint ink, signatures, a photo) and their ground truth; colour error
# --------------------------------------------------------------------------------------------------


def _colour_page(**kw: object) -> SyntheticPage:
    return page(**{"seed": 5, "page_no": 2, "dpi": 150, "mode": "RGB", **COLOUR_MARKS, **kw})


def _delta_e_to(pixels: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    nominal = np.broadcast_to(np.array(rgb, np.uint8), pixels.shape)
    return np.asarray(deltaE_ciede2000(rgb2lab(pixels), rgb2lab(nominal))).ravel()


def test_colour_marks_are_drawn_in_their_inks_with_ground_truth() -> None:
    p = _colour_page()
    assert p.image.mode == "RGB"
    kinds = [r.kind for r in p.colour_regions if r.origin == "mark"]
    assert sorted(set(kinds)) == ["ink", "photo", "signature", "stamp"]
    assert kinds.count("stamp") == 2
    blue = next(r for r in p.colour_regions if r.kind == "ink")
    assert blue.rgb == PEN_INKS["blue"]
    # The form's own handwriting and stamps have ground truth too (after the marks).
    assert [(r.origin, r.kind) for r in p.colour_regions if r.origin == "form"] == [("form", "ink"), ("form", "stamp")]
    w, h = p.image.size
    arr = np.asarray(p.image)
    for r in p.colour_regions:
        x0, y0, x1, y1 = r.box
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        if r.kind == "photo":
            assert r.mask is None
            # Smooth gradients and texture, not a flat box: many distinct colours.
            assert len(np.unique(arr[y0:y1, x0:x1].reshape(-1, 3), axis=0)) > 1000
            continue
        assert r.mask is not None and r.mask.shape == (y1 - y0, x1 - x0) and r.mask.sum() > 200
        assert r.origin == "form" or r.rgb in (*STAMP_INKS.values(), *PEN_INKS.values())
        de = _delta_e_to(arr[y0:y1, x0:x1][r.mask].reshape(-1, 1, 3), r.rgb)
        # The solidly inked pixels are the nominal ink on slightly tinted paper; pale ones (uneven stamp
        # ink, stroke edges) are lighter.  Paper itself is ~60 from any of these inks.
        assert np.percentile(de, 25) < 10, r
        assert np.median(de) < 25, r


def test_colour_marks_leave_the_form_and_plain_pages_alone() -> None:
    plain = page(seed=5, page_no=2, dpi=150, mode="RGB")
    assert {(r.origin, r.kind) for r in plain.colour_regions} == {("form", "ink"), ("form", "stamp")}
    assert page(seed=5, page_no=2, dpi=150).colour_regions == ()  # grey: no colour to keep
    marked = _colour_page()
    assert marked.text == plain.text
    assert marked.image.tobytes() != plain.image.tobytes()
    # Blank backs carry no marks, so a whole file can be asked for with them.
    pages = render_acr_file(5, 1, blank_backs=True, dpi=75, mode="RGB", stamps=1)
    assert [[r.kind for r in p.colour_regions if r.origin == "mark"] for p in pages] == [["stamp"], []]
    assert pages[1].colour_regions == ()
    with pytest.raises(ValueError, match="RGB"):
        PageSpec(seed=1, stamps=1)
    with pytest.raises(ValueError, match="stamps"):
        PageSpec(seed=1, mode="RGB", stamps=-1)


def test_colour_marks_are_deterministic_per_seed() -> None:
    spec = PageSpec(seed=6, page_no=3, dpi=100, mode="RGB", noise=0.3, bleed_through=True, **COLOUR_MARKS)
    a, b = render_acr_page(spec), render_acr_page(spec)
    assert a.image.tobytes() == b.image.tobytes()
    assert [(r.kind, r.box, r.rgb) for r in a.colour_regions] == [(r.kind, r.box, r.rgb) for r in b.colour_regions]
    for ra, rb in zip(a.colour_regions, b.colour_regions, strict=True):
        if ra.mask is None or rb.mask is None:
            assert ra.mask is None and rb.mask is None
        else:
            assert np.array_equal(ra.mask, rb.mask)
    other = render_acr_page(replace(spec, seed=7))
    assert [r.box for r in other.colour_regions] != [r.box for r in a.colour_regions]


def test_colour_regions_follow_skew_and_rotation() -> None:
    upright = page(seed=8, page_no=2, dpi=100, mode="RGB", skew_deg=4.0, dark_border=True, **COLOUR_MARKS)
    turned = page(seed=8, page_no=2, dpi=100, mode="RGB", skew_deg=4.0, dark_border=True, rotation=270, **COLOUR_MARKS)
    w = upright.image.width
    arr = np.asarray(upright.image)
    assert upright.colour_regions
    for r, t in zip(upright.colour_regions, turned.colour_regions, strict=True):
        # A quarter turn of the page is a quarter turn of its regions.
        x0, y0, x1, y1 = r.box
        assert t.box == (upright.image.height - y1, x0, upright.image.height - y0, x1)
        if r.mask is None:
            continue
        assert t.mask is not None and np.array_equal(t.mask, np.rot90(r.mask, 3))
        # On the skewed page the mask still lands on ink of the mark's colour, not on paper.
        de = _delta_e_to(arr[y0:y1, x0:x1][r.mask].reshape(-1, 1, 3), r.rgb)
        assert np.median(de) < 30, r
    assert turned.image.width == upright.image.height and w == turned.image.height


def test_colour_error_zero_identical_large_binarised_moderate_jpeg() -> None:
    p = _colour_page()
    ref = p.image
    same = region_colour_error(ref, ref.copy(), p.colour_regions)
    assert [e.kind for e in same] == [r.kind for r in p.colour_regions]
    assert all(e.pixels > 0 and e.mean == 0.0 for e in same)
    assert mean_colour_error(same) == 0.0
    # A scanner's B/W: stamps and ink turn black or vanish.
    binarised = ref.convert("L").point(lambda v: 255 if v >= 140 else 0).convert("1")
    bw = region_colour_error(ref, binarised, p.colour_regions)
    assert all(e.mean > 25 for e in bw if e.kind == "stamp")
    assert mean_colour_error(bw) > 20
    # Grey keeps lightness but loses the hue: still far off for coloured ink.
    grey = region_colour_error(ref, ref.convert("L"), p.colour_regions)
    assert all(e.mean > 12 for e in grey if e.kind != "photo")
    buf = io.BytesIO()
    ref.save(buf, format="JPEG", quality=30)
    jpeg = region_colour_error(ref, Image.open(io.BytesIO(buf.getvalue())), p.colour_regions)
    assert 1.0 < mean_colour_error(jpeg) < 15
    assert all(e.mean < 20 for e in jpeg)
    with pytest.raises(ValueError, match="stored image is"):
        region_colour_error(ref, ref.resize((ref.width // 2, ref.height // 2)), p.colour_regions)


def test_handwriting_is_ground_truth_beside_the_print() -> None:
    # The remarks, grades and answers written in pen are text a reader reads: recorded as they are drawn
    # (``handwriting``), and with the print line by line in ``reading_text``, so a measure of legibility
    # does not count a reading of them as error.  The printed ground truth stays as it was.
    review = page(seed=7300, page_no=3, dpi=150)
    written = review.handwriting.splitlines()
    assert len(written) >= 3 and written == [" ".join(ln.split()) for ln in written]
    assert unicodedata.normalize("NFC", review.handwriting) == review.handwriting
    words = set(review.handwriting.split())
    assert words and not words <= set(review.text.split())
    reading = review.reading_text.splitlines()
    for line in written:
        assert any(line in r for r in reading), line
    printed = review.text.splitlines()
    # Every printed line is there, in its order (an answer written on its question's baseline joins that
    # line); the handwriting sits between them by its baseline.
    at = iter(reading)
    assert all(any(line in r for r in at) for line in printed)
    assert len(reading) < len(printed) + len(written)
    remark = next(ln for ln in written if len(ln) > 20)  # the reviewing officer's remark, under its heading
    assert reading.index(remark) == reading.index(next(ln for ln in printed if "टिप्पणी / Remarks" in ln)) + 1
    # A grade written on its label's baseline joins that line.
    assessment = page(seed=7300, page_no=2, dpi=150)
    grading = next(ln for ln in assessment.reading_text.splitlines() if "Overall Grading:" in ln)
    assert grading.split("Overall Grading:")[1].strip() in assessment.handwriting.splitlines()
    # The colour marks' ballpoint remark is handwriting too; blank backs have none.
    marked = _colour_page()
    plain = page(seed=5, page_no=2, dpi=150, mode="RGB")
    assert len(marked.handwriting.splitlines()) > len(plain.handwriting.splitlines())
    assert render_acr_page(PageSpec(seed=7300, blank=True, dpi=75)).handwriting == ""

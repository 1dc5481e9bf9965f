"""Tests of the synthetic ACR page generator: geometry, determinism, ground truth, shaping, OCR-ability."""

from __future__ import annotations

import io
import shutil
import subprocess
import time
import unicodedata
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from scanstation_tools.synth import (
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

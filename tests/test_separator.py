"""Separator sheets: printable QR cover sheets, found again on scans however they come back, never on ACR pages."""

from __future__ import annotations

import io
from functools import lru_cache

import cv2
import numpy as np
import pikepdf
import pytest
import segno
from PIL import Image

from scanstation.capture import cover_sheets as separator
from scanstation.capture.cover_sheets import (
    CoverInfo,
    CoverPayloadError,
    cover_sheet_pdf,
    detect_cover_sheet,
    encode_payload,
    inspect_cover_sheet,
    parse_payload,
    render_cover_sheet,
)
from scanstation.imaging import to_gray
from scanstation_tools.synth import PageSpec, render_acr_page
from tests.corpus import needs_corpus, require_corpus

INFO = CoverInfo("MC-17-277153", "2019-20", "District Police Shivnagar", "Santosh Pratap Mishra")


@lru_cache(maxsize=1)
def sheet() -> Image.Image:
    return render_cover_sheet(INFO)


def scanned(img: Image.Image, angle: float = 0.0, bitonal: bool = False, dpi: int = 300) -> np.ndarray:
    """The sheet as a scanner returns it: turned by ``angle`` degrees, optionally thresholded, at ``dpi``."""
    if angle:
        img = img.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=255)
    gray = to_gray(img)
    if dpi != 300:
        gray = cv2.resize(gray, None, fx=dpi / 300, fy=dpi / 300, interpolation=cv2.INTER_AREA)
    if bitonal:
        gray = np.where(gray >= 140, 255, 0).astype(np.uint8)
    return np.ascontiguousarray(gray)


# --------------------------------------------------------------------------------------------------
# Payload
# --------------------------------------------------------------------------------------------------


def test_payload_is_versioned_and_round_trips() -> None:
    text = encode_payload(INFO)
    assert text == "SCANSTATION-COVER/1|MC-17-277153|2019-20|District Police Shivnagar"
    assert parse_payload(text) == CoverInfo(INFO.employee_code, INFO.acr_period, INFO.unit)  # no name in the code


def test_payload_escapes_separators_and_non_ascii() -> None:
    info = CoverInfo("A|B%C", "2020-21", "रिज़र्व पुलिस लाइन्स")
    text = encode_payload(info)
    assert text.isascii() and text.count("|") == 3
    assert parse_payload(text) == info


def test_foreign_and_bad_payloads() -> None:
    assert parse_payload("https://example.gov.in/form/123") is None
    assert parse_payload("SCANSTATION-COVERX") is None
    with pytest.raises(CoverPayloadError, match="version"):
        parse_payload("SCANSTATION-COVER/2|a|b|c")
    with pytest.raises(CoverPayloadError):
        parse_payload("SCANSTATION-COVER/1|a|b")
    with pytest.raises(CoverPayloadError):
        parse_payload("SCANSTATION-COVER/1||2019-20|unit")


def test_invalid_particulars_are_refused() -> None:
    with pytest.raises(ValueError):
        render_cover_sheet(CoverInfo("", "2019-20", "unit"))
    with pytest.raises(ValueError):
        render_cover_sheet(CoverInfo("X" * 41, "2019-20", "unit"))
    with pytest.raises(ValueError):
        render_cover_sheet(CoverInfo("MC-1", "2019\n-20", "unit"))
    with pytest.raises(ValueError):
        cover_sheet_pdf([])


# --------------------------------------------------------------------------------------------------
# Sheet and PDF
# --------------------------------------------------------------------------------------------------


def test_sheet_is_a4_at_300_dpi() -> None:
    img = sheet()
    assert img.size == (2480, 3508) and img.mode == "L" and img.info["dpi"] == (300, 300)
    gray = np.asarray(img)
    # Mostly paper, with a large QR code in the upper half.
    assert (gray > 128).mean() > 0.85
    assert (gray[700:1800] < 128).mean() > 0.08


def test_pdf_prints_one_sheet_per_file_and_scans_back() -> None:
    infos = [INFO, CoverInfo("MC-21-000042", "2021-22", "रिज़र्व पुलिस लाइन्स देवगढ़")]
    data = cover_sheet_pdf(infos)
    assert data.startswith(b"%PDF")
    with pikepdf.open(io.BytesIO(data)) as pdf:
        assert len(pdf.pages) == 2
        for pdf_page, info in zip(pdf.pages, infos, strict=True):
            x0, y0, x1, y1 = (float(v) for v in pdf_page.mediabox)
            assert (x1 - x0, y1 - y0) == pytest.approx((595.3, 841.9), abs=1.0)
            image = pikepdf.PdfImage(next(iter(pdf_page.get_images().values()))).as_pil_image()  # type: ignore[arg-type]
            found = detect_cover_sheet(to_gray(image), 300)
            assert found == CoverInfo(info.employee_code, info.acr_period, info.unit)


# --------------------------------------------------------------------------------------------------
# Round trips through the scanner
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("angle", "bitonal", "dpi"),
    [
        (0.0, False, 300),
        (1.5, False, 300),
        (-1.5, True, 300),
        (180.0, False, 300),
        (181.5, True, 300),
        (90.0, False, 300),
        (-4.0, True, 200),
        (1.5, True, 150),
        (180.0, True, 150),
        (0.0, False, 600),
        (0.0, False, 100),
    ],
)
def test_cover_sheet_round_trip(angle: float, bitonal: bool, dpi: int) -> None:
    gray = scanned(sheet(), angle, bitonal, dpi)
    found = detect_cover_sheet(gray, dpi)
    assert found == CoverInfo(INFO.employee_code, INFO.acr_period, INFO.unit)


def test_a_noisy_greyish_scan_of_the_sheet_is_found() -> None:
    gray = scanned(sheet(), 0.8).astype(np.float32) * 0.85 + 20
    gray += np.random.default_rng(5).normal(0, 8, gray.shape).astype(np.float32)
    found = detect_cover_sheet(np.clip(gray, 0, 255).astype(np.uint8), 300)
    assert found is not None and found.employee_code == INFO.employee_code


def test_opencv_is_the_fallback_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(separator, "_decoder", lambda: None)
    assert detect_cover_sheet(scanned(sheet(), 1.0), 300) == CoverInfo(INFO.employee_code, INFO.acr_period, INFO.unit)


# --------------------------------------------------------------------------------------------------
# Never on ACR pages
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {"page_no": 1},
        {"page_no": 2, "noise": 0.5},
        {"page_no": 3, "mode": "1", "dark_border": True, "skew_deg": 2.0},
        {"content": "stamp"},
        {"content": "signature", "rotation": 180},
        {"content": "hindi", "dpi": 150},
        {"blank": True, "bleed_through": True},
    ],
)
def test_no_separator_on_synthetic_acr_pages(kw: dict[str, object]) -> None:
    dpi = int(kw.get("dpi", 300))  # type: ignore[call-overload]
    gray = to_gray(render_acr_page(PageSpec(seed=120, **kw)).image)  # type: ignore[arg-type]
    result = inspect_cover_sheet(gray, dpi)
    assert result.info is None and result.payloads == () and result.problem == ""


@needs_corpus
def test_no_separator_on_corpus_pages() -> None:
    for path in sorted(require_corpus().iterdir()):
        if path.suffix.lower() not in (".png", ".tif", ".tiff", ".jpg"):
            continue
        with Image.open(path) as im:
            gray = to_gray(im)
        assert detect_cover_sheet(gray, 300) is None, path.name


def _with_qr(gray: np.ndarray, text: str, x: int, y: int, scale: int = 8) -> np.ndarray:
    buf = io.BytesIO()
    segno.make_qr(text).save(buf, kind="png", scale=scale, border=4)
    buf.seek(0)
    qr = to_gray(Image.open(buf))
    out = gray.copy()
    out[y : y + qr.shape[0], x : x + qr.shape[1]] = qr
    return out


def test_a_foreign_qr_code_on_a_form_is_ignored() -> None:
    gray = to_gray(render_acr_page(PageSpec(seed=121)).image)
    page = _with_qr(gray, "https://hrms.example.gov.in/verify?id=778812", 1900, 150)
    result = inspect_cover_sheet(page, 300)
    assert result.info is None and result.problem == ""
    assert result.payloads == ("https://hrms.example.gov.in/verify?id=778812",)


def test_a_sheet_of_an_unknown_version_is_reported_not_used() -> None:
    gray = to_gray(render_acr_page(PageSpec(seed=122, content="line")).image)
    page = _with_qr(gray, "SCANSTATION-COVER/2|MC-1|2030-31|Unit", 900, 1400, scale=16)
    result = inspect_cover_sheet(page, 300)
    assert result.info is None and "version" in result.problem


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        detect_cover_sheet(np.zeros((10, 10, 3), np.uint8), 300)
    with pytest.raises(ValueError):
        detect_cover_sheet(np.zeros((10, 10), np.uint8), 0)

"""QR separator sheets: print one in front of each ACR file, find them in the page stream to split a stack."""

from __future__ import annotations

import io
import logging
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote, unquote

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

from scanstation.script_runs import script_runs

log = logging.getLogger(__name__)

PAYLOAD_PREFIX = "SCANSTATION-COVER/"
PAYLOAD_VERSION = 1
DPI = 300
A4_MM = (210.0, 297.0)
# The QR is searched at ~100 dpi: its 80 mm symbol then has modules of 6-7 px, which zxing reads
# reliably, and reducing first keeps a 300-dpi page under a few tens of milliseconds.
DETECT_DPI = 100.0
QR_SIZE_MM = 80.0
# Field limits keep the symbol at a low QR version (big modules survive 150-dpi B/W scans).
_MAX_LEN = {"employee_code": 40, "acr_period": 30, "unit": 80}
# Printed only (not in the QR): optional, bounded so that the sheet's layout holds.
_PRINTED_LEN = {"employee_name": 120, "name_hi": 120, "name_en": 120, "rank": 80}
# Everything else is percent-encoded, so '|' can separate fields and the payload stays ASCII.
_SAFE = " -_./:()&,'#+"
_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts")


@dataclass(frozen=True)
class CoverInfo:
    """What a separator sheet says about the ACR file behind it (all strings NFC)."""

    employee_code: str
    acr_period: str
    unit: str
    employee_name: str = ""  # a name typed for the sheet (--sheet CODE:PERIOD:NAME)
    # From the roster (cover-sheets --roster): printed on the sheet for the operator, never put in the QR code.
    name_hi: str = ""
    name_en: str = ""
    rank: str = ""


@dataclass(frozen=True)
class CoverDetection:
    """Result of looking for a separator sheet on a page.

    ``info`` is set for a valid ScanStation separator sheet.  ``payloads`` are all QR texts read on
    the page (foreign codes included).  ``problem`` is non-empty when a code carries our prefix but
    cannot be used (a newer sheet version, a damaged field): the page is then not an ACR page either
    and should go to the supervisor.
    """

    info: CoverInfo | None
    payloads: tuple[str, ...] = ()
    problem: str = ""


# --------------------------------------------------------------------------------------------------
# Payload
# --------------------------------------------------------------------------------------------------


def _clean(value: str, name: str) -> str:
    value = unicodedata.normalize("NFC", value.strip())
    if name in _PRINTED_LEN:
        if len(value) > _PRINTED_LEN[name]:
            raise ValueError(f"{name} is longer than {_PRINTED_LEN[name]} characters")
    else:
        if not value:
            raise ValueError(f"{name} must not be empty")
        if len(value) > _MAX_LEN[name]:
            raise ValueError(f"{name} is longer than {_MAX_LEN[name]} characters: {value!r}")
    if any(unicodedata.category(c).startswith("C") for c in value):
        raise ValueError(f"{name} contains control characters: {value!r}")
    return value


def encode_payload(info: CoverInfo) -> str:
    """``SCANSTATION-COVER/1|<code>|<period>|<unit>``; the employee name is deliberately not included."""
    fields = [_clean(getattr(info, n), n) for n in ("employee_code", "acr_period", "unit")]
    return f"{PAYLOAD_PREFIX}{PAYLOAD_VERSION}|" + "|".join(quote(f, safe=_SAFE) for f in fields)


class CoverPayloadError(ValueError):
    """A QR code carries the separator-sheet prefix but not a payload this version can use."""


def parse_payload(text: str) -> CoverInfo | None:
    """The CoverInfo in a QR text; None for a foreign code; CoverPayloadError for a bad one of ours."""
    if not text.startswith(PAYLOAD_PREFIX):
        return None
    head, _sep, rest = text[len(PAYLOAD_PREFIX) :].partition("|")
    if head != str(PAYLOAD_VERSION):
        raise CoverPayloadError(
            f"separator sheet version {head!r} is not supported (this station reads {PAYLOAD_VERSION})"
        )
    parts = rest.split("|")
    if len(parts) != 3:
        raise CoverPayloadError(f"separator sheet payload has {len(parts)} fields, expected 3")
    try:
        code, period, unit = (_clean(unquote(p, errors="strict"), n) for p, n in zip(parts, _MAX_LEN, strict=True))
    except (ValueError, UnicodeDecodeError) as e:
        raise CoverPayloadError(f"separator sheet payload is damaged: {e}") from e
    return CoverInfo(code, period, unit)


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


def _px(mm: float) -> int:
    return round(mm * DPI / 25.4)


@lru_cache(maxsize=16)
def _font_path(name: str) -> str | None:
    import pathlib

    for root in _FONT_DIRS:
        for p in pathlib.Path(root).rglob(name):
            return str(p)
    return None


@lru_cache(maxsize=64)
def _font(name: str, size_px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = _font_path(name)
    if path is None:
        log.warning("font %s not found; separator sheet text uses Pillow's default font", name)
        return ImageFont.load_default(size_px)
    engine = ImageFont.Layout.RAQM if features.check("raqm") else ImageFont.Layout.BASIC
    return ImageFont.truetype(path, size_px, layout_engine=engine)


def _hindi_ok() -> bool:
    # Without Raqm, Pillow places matras in the wrong order: print no Hindi rather than wrong Hindi.
    return bool(features.check("raqm")) and _font_path("NotoSansDevanagari-Regular.ttf") is not None


def _text(
    draw: ImageDraw.ImageDraw,
    y_mm: float,
    text: str,
    pt: float,
    bold: bool = False,
    x_mm: float | None = None,
    max_mm: float = 180.0,
) -> None:
    """Draw mixed Hindi/English text with its baseline at ``y_mm``, centred unless ``x_mm`` is given;
    the size shrinks until the text fits in ``max_mm``."""
    runs = script_runs(unicodedata.normalize("NFC", text))
    if not _hindi_ok():
        runs = [(r, d) for r, d in runs if not d]
    size = round(pt * DPI / 72)
    while True:
        latin = _font("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf", size)
        deva = _font("NotoSansDevanagari-Bold.ttf" if bold else "NotoSansDevanagari-Regular.ttf", round(size * 1.08))
        width = sum((deva if d else latin).getlength(r) for r, d in runs)
        if width <= _px(max_mm) or size <= 12:
            break
        size = max(12, int(size * _px(max_mm) / width))
    x = (_px(A4_MM[0]) - width) / 2 if x_mm is None else _px(x_mm)
    for run, d in runs:
        font = deva if d else latin
        draw.text((x, _px(y_mm)), run, font=font, fill=0, anchor="ls")
        x += font.getlength(run)


def _qr_image(payload: str, size_px: int) -> Image.Image:
    import segno

    qr = segno.make_qr(payload, error="q", boost_error=False)
    matrix = np.array([list(row) for row in qr.matrix], dtype=np.uint8)  # 1 = dark module
    quiet = 4
    n = matrix.shape[0] + 2 * quiet
    module = max(1, size_px // n)
    full = np.zeros((n, n), np.uint8)
    full[quiet:-quiet, quiet:-quiet] = matrix
    arr = np.where(np.kron(full, np.ones((module, module), np.uint8)) > 0, 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "L")


def render_cover_sheet(info: CoverInfo) -> Image.Image:
    """An A4 separator sheet at 300 dpi (mode "L"): a large QR code with the versioned payload, and the
    same particulars in English and Hindi for the operator and supervisor."""
    payload = encode_payload(info)
    code, period, unit, name, name_hi, name_en, rank = (
        _clean(getattr(info, n), n)
        for n in ("employee_code", "acr_period", "unit", "employee_name", "name_hi", "name_en", "rank")
    )
    page = Image.new("L", (_px(A4_MM[0]), _px(A4_MM[1])), 255)
    draw = ImageDraw.Draw(page)
    _text(draw, 22, "SEPARATOR SHEET — NOT PART OF THE ACR", 20, bold=True)
    _text(draw, 36, "विभाजक पृष्ठ — यह एसीआर का भाग नहीं है", 20, bold=True)
    _text(draw, 47, "Place this sheet on top of the ACR file named below and scan them together.", 11)
    _text(draw, 54, "इस पृष्ठ को नीचे लिखी एसीआर फ़ाइल के ऊपर रखें और साथ में स्कैन करें।", 11)
    qr = _qr_image(payload, _px(QR_SIZE_MM))
    page.paste(qr, ((page.width - qr.width) // 2, _px(62)))
    qr_bottom_mm = 62 + qr.height * 25.4 / DPI
    _text(draw, qr_bottom_mm + 6, payload, 8)
    rows = [
        ("Employee code / कर्मचारी कोड", code),
        ("ACR period / एसीआर अवधि", period),
        ("Unit / इकाई", unit),
    ]
    if name:
        rows.append(("Name / नाम", name))
    if name_hi:
        rows.append(("नाम (हिंदी)", name_hi))
    if name_en:
        rows.append(("Name (English)", name_en))
    if rank:
        rows.append(("Rank / पद", rank))
    y = qr_bottom_mm + 24 if len(rows) <= 5 else qr_bottom_mm + 20
    for label, value in rows:
        _text(draw, y, label, 12, x_mm=25, max_mm=62)
        _text(draw, y, value, 16, bold=True, x_mm=90, max_mm=96)
        y += 13 if len(rows) <= 5 else 11
    draw.rectangle([_px(20), _px(qr_bottom_mm + 13), _px(190), _px(y - 6)], outline=0, width=_px(0.4))
    _text(draw, 272, "Keep this sheet in the secure scanning area; it is not stored with the ACR.", 10)
    _text(draw, 279, "यह पृष्ठ सुरक्षित स्कैनिंग कक्ष में ही रखें; यह एसीआर के साथ संग्रहीत नहीं होता।", 10)
    page.info["dpi"] = (DPI, DPI)
    return page


MAX_SHEETS = 20_000  # a unit of 2,000 people x 10 financial years


def cover_sheet_pdf(infos: Iterable[CoverInfo], *, limit: int = MAX_SHEETS) -> bytes:
    """All sheets as one printable PDF (1-bit, CCITT G4, A4 at 300 dpi), built in memory.

    Sheets are rendered one at a time and only their compressed image (~40 kB) is kept, so a whole
    unit's sheets (thousands) fit in memory.
    """
    import pikepdf
    from pikepdf import Dictionary, Name

    from scanstation.pdf.page_images import encode_pil

    pdf = pikepdf.new()
    width_pt, height_pt = (round(mm * 72 / 25.4, 2) for mm in A4_MM)
    for n, info in enumerate(infos, start=1):
        if n > limit:
            raise ValueError(f"more than {limit} separator sheets in one PDF; print fewer at a time")
        page = render_cover_sheet(info).point(lambda v: 255 if v >= 128 else 0).convert("1")
        enc = encode_pil(page, photo=False)
        image = pikepdf.Stream(pdf, enc.data)
        image.Type, image.Subtype = Name.XObject, Name.Image
        image.Width, image.Height, image.BitsPerComponent = enc.width, enc.height, enc.bits
        image.ColorSpace = Name("/" + enc.colour_space)
        image.Filter = Name("/" + enc.filter)
        if enc.decode_parms:
            image.DecodeParms = Dictionary({f"/{k}": v for k, v in enc.decode_parms})
        content = pikepdf.Stream(pdf, f"q {width_pt} 0 0 {height_pt} 0 0 cm /Im0 Do Q".encode())
        pdf.pages.append(pikepdf.Page(Dictionary(
            Type=Name.Page, MediaBox=[0, 0, width_pt, height_pt],
            Resources=Dictionary(XObject=Dictionary(Im0=image)), Contents=content)))
    if not len(pdf.pages):
        raise ValueError("no separator sheets to print")
    pdf.docinfo["/Title"] = "ScanStation separator sheets"
    pdf.docinfo["/Producer"] = "ScanStation"
    buf = io.BytesIO()
    pdf.save(buf)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------------


def _read_zxing(small: np.ndarray, zx: Any) -> tuple[list[str], bool]:
    """Decoded QR texts, and whether an undecodable QR was seen (worth a second, sharper look)."""
    found = zx.read_barcodes(
        small,
        formats=zx.BarcodeFormat.QRCode,
        try_rotate=False,  # QR finder patterns work at any angle; this flag is for 1-D codes
        try_downscale=False,
        try_invert=False,
        return_errors=True,
    )
    texts = [b.text for b in found if b.valid]
    return texts, any(not b.valid for b in found)


def _read_opencv(small: np.ndarray) -> tuple[list[str], bool]:
    ok, texts, _points, _codes = cv2.QRCodeDetector().detectAndDecodeMulti(small)
    if not ok:
        return [], False
    good = [t for t in texts if t]
    return good, len(good) < len(texts)


def _decoder() -> Any:
    try:
        import zxingcpp
    except ImportError:  # pragma: no cover - depends on the installation
        return None
    return zxingcpp


def _read(small: np.ndarray) -> tuple[list[str], bool]:
    zx = _decoder()
    return _read_zxing(small, zx) if zx is not None else _read_opencv(small)


def inspect_cover_sheet(gray: np.ndarray, dpi: float) -> CoverDetection:
    """Look for a separator-sheet QR code on a page (any rotation, 1-bit or grey, 75-600 dpi).

    The page is reduced to ~100 dpi first; if a QR code is seen there but cannot be decoded, it is
    tried once more at up to 200 dpi.  Foreign QR codes (a code printed on a form) are reported in
    ``payloads`` and never make the page a separator sheet.
    """
    if not isinstance(gray, np.ndarray) or gray.ndim != 2 or gray.dtype != np.uint8 or gray.size == 0:
        raise ValueError("expected a non-empty 2-D uint8 grayscale array")
    if not dpi > 0:
        raise ValueError(f"dpi must be positive, got {dpi}")
    texts: list[str] = []
    for target in (DETECT_DPI, 2 * DETECT_DPI):
        scale = min(1.0, target / dpi)
        small = gray
        if scale < 0.95:
            h, w = gray.shape
            small = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        texts, damaged = _read(np.ascontiguousarray(small))
        if texts or not damaged or scale >= 0.95:
            break
    problem = ""
    for text in texts:
        try:
            info = parse_payload(text)
        except CoverPayloadError as e:
            problem = str(e)
            continue
        if info is not None:
            return CoverDetection(info, tuple(texts))
    return CoverDetection(None, tuple(texts), problem)


def detect_cover_sheet(gray: np.ndarray, dpi: float) -> CoverInfo | None:
    """The particulars on a ScanStation separator sheet, or None for any other page."""
    return inspect_cover_sheet(gray, dpi).info

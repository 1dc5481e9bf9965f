"""The sign-off sheet: a PDF/A-2b page (or pages) of what the unit head signs, signed PAdES on the DSC token.

It lists the unit, station, batch (name and uid), every ACR file (employee code, name, period, page count and
the SHA-256 of its PDF), the flags and their verdicts, who scanned, verified and approved, and when.  The pages
are drawn like the station's cover sheets (Pillow with Raqm shaping, DejaVu Sans for Latin and Noto Sans
Devanagari for Hindi, so Devanagari names render correctly whatever the viewer's fonts), as 1-bit 300 dpi
images in the station's own PDF/A-2b writer (:mod:`scanstation.pdf.searchable`: sRGB output intent, XMP).
The signature is an incremental update by pyHanko's PKCS#11 signer: PAdES B-B, B-T with ``[signoff] tsa_url``.
"""

from __future__ import annotations

import asyncio
import io
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont, features

from scanstation.pdf.searchable import PdfMetadata, PdfPage, build_searchable_pdf
from scanstation.script_runs import script_runs

DPI = 300
A4_MM = (210.0, 297.0)
_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts")
FIELD_NAME = "UnitHeadSignOff"
_TOP_MM, _BOTTOM_MM, _LEFT_MM = 18.0, 280.0, 15.0


@dataclass(frozen=True)
class SheetFile:
    """One ACR file as the sheet lists it."""

    seq: int
    employee_code: str
    employee_name: str
    period: str
    pages: int
    pdf_sha256: str
    flags: list[str] = field(default_factory=list)  # "flag: verdict (reason) - by NAME"


@dataclass(frozen=True)
class SheetData:
    unit: str
    station_id: str
    batch_name: str
    batch_uid: str
    files: list[SheetFile]
    page_flags: list[str]  # "page 3: blank -> ok (by sup2)"
    scanned_by: list[str]
    closed_by: str
    closed_at: str
    verified_by: list[str]
    approved_by: str
    approved_at: str
    unit_head: str
    signer_subject: str
    signed_at: str


@dataclass(frozen=True, slots=True)
class SheetMetadata(PdfMetadata):
    """The PDF's metadata: the batch, not an employee."""

    batch: str = ""

    @property
    def subject(self) -> str:
        return f"Unit head's sign-off of batch {self.batch}, {self.unit}"

    @property
    def keywords(self) -> str:
        return "; ".join(p for p in ("ACR", "sign-off", self.batch, self.unit) if p)


# ---------------------------------------------------------------- drawing
def _px(mm: float) -> int:
    return round(mm * DPI / 25.4)


@lru_cache(maxsize=8)
def _font_path(name: str) -> str | None:
    for root in _FONT_DIRS:
        for p in Path(root).rglob(name):
            return str(p)
    return None


@lru_cache(maxsize=32)
def _font(name: str, size_px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = _font_path(name)
    if path is None:
        return ImageFont.load_default(size_px)
    engine = ImageFont.Layout.RAQM if features.check("raqm") else ImageFont.Layout.BASIC
    return ImageFont.truetype(path, size_px, layout_engine=engine)


def devanagari_supported() -> bool:
    """Whether Hindi can be drawn correctly (Raqm shaping and the Noto Devanagari font are present)."""
    return bool(features.check("raqm")) and _font_path("NotoSansDevanagari-Regular.ttf") is not None


class _Pages:
    """Lines of mixed Hindi/English text top to bottom, a new A4 page when one is full."""

    def __init__(self, footer: str) -> None:
        self.pages: list[Image.Image] = []
        self.footer = footer
        self._new()

    def _new(self) -> None:
        self.page = Image.new("L", (_px(A4_MM[0]), _px(A4_MM[1])), 255)
        self.draw = ImageDraw.Draw(self.page)
        self.pages.append(self.page)
        self.y = _TOP_MM

    def need(self, mm: float) -> None:
        if self.y + mm > _BOTTOM_MM:
            self._new()

    def text(self, text: str, pt: float, *, bold: bool = False, x_mm: float = _LEFT_MM, max_mm: float = 180.0,
             advance: bool = True) -> None:
        self.need(pt * 0.5)
        runs = script_runs(unicodedata.normalize("NFC", text))
        if not devanagari_supported():  # without shaping the matras land in the wrong place: mark, never garble
            runs = [(r if not d else "[Hindi]", False) for r, d in runs]
        size = round(pt * DPI / 72)
        while True:
            latin = _font("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf", size)
            deva = _font("NotoSansDevanagari-Bold.ttf" if bold else "NotoSansDevanagari-Regular.ttf",
                         round(size * 1.08))
            width = sum((deva if d else latin).getlength(r) for r, d in runs)
            if width <= _px(max_mm) or size <= 14:
                break
            size = max(14, int(size * _px(max_mm) / width))
        x = float(_px(x_mm))
        baseline = _px(self.y + pt * 0.3528)
        for run, d in runs:
            font = deva if d else latin
            self.draw.text((x, baseline), run, font=font, fill=0, anchor="ls")
            x += font.getlength(run)
        if advance:
            self.y += pt * 0.3528 * 1.55

    def gap(self, mm: float) -> None:
        self.y += mm

    def rule(self) -> None:
        self.need(2)
        self.draw.line([(_px(_LEFT_MM), _px(self.y)), (_px(A4_MM[0] - _LEFT_MM), _px(self.y))], fill=0,
                       width=_px(0.25))
        self.y += 2

    def finish(self) -> list[Image.Image]:
        total = len(self.pages)
        out = []
        for n, page in enumerate(self.pages, start=1):
            draw = ImageDraw.Draw(page)
            font = _font("DejaVuSans.ttf", round(7 * DPI / 72))
            draw.text((_px(_LEFT_MM), _px(290)), f"{self.footer} - page {n} of {total}", font=font, fill=0,
                      anchor="ls")
            out.append(page.point(lambda v: 255 if v >= 160 else 0).convert("1"))
        return out


def render_pages(data: SheetData) -> list[Image.Image]:
    """The sheet's pages as 1-bit A4 images at 300 dpi."""
    w = _Pages(f"ScanStation sign-off sheet, batch {data.batch_name} ({data.batch_uid})")
    w.text("ACR BATCH SIGN-OFF SHEET / एसीआर बैच हस्ताक्षर पत्रक", 16, bold=True)
    w.gap(2)
    for label, value in (("Unit / इकाई", data.unit), ("Station", data.station_id),
                         ("Batch / बैच", data.batch_name), ("Batch uid", data.batch_uid),
                         ("ACR files / फ़ाइलें", str(len(data.files)))):
        w.text(label, 10, x_mm=_LEFT_MM, max_mm=45, advance=False)
        w.text(value, 10, bold=True, x_mm=62, max_mm=133)
    w.gap(2)
    w.rule()
    w.text("ACR files (employee code, name, period, pages; SHA-256 of the file's PDF)", 10, bold=True)
    w.gap(1)
    for f in data.files:
        w.need(12)
        w.text(f"{f.seq}.", 9.5, x_mm=_LEFT_MM, max_mm=8, advance=False)
        w.text(f.employee_code, 9.5, bold=True, x_mm=24, max_mm=36, advance=False)
        w.text(f.employee_name, 9.5, x_mm=62, max_mm=72, advance=False)
        w.text(f.period, 9.5, x_mm=136, max_mm=40, advance=False)
        w.text(f"{f.pages} p.", 9.5, x_mm=180, max_mm=15)
        w.text(f"PDF SHA-256 {f.pdf_sha256}", 7.5, x_mm=24, max_mm=171)
        for line in f.flags:
            w.text(f"flag {line}", 8, x_mm=24, max_mm=171)
        w.gap(0.8)
    w.rule()
    w.text("Page flags and their verdicts", 10, bold=True)
    for line in data.page_flags or ["none"]:
        w.text(line, 8.5, x_mm=20, max_mm=175)
    w.gap(1)
    w.rule()
    people = [("Scanned by", ", ".join(data.scanned_by) or "-"),
              ("Closed by", f"{data.closed_by or '-'} at {data.closed_at or '-'}"),
              ("Verified by", ", ".join(data.verified_by) or "-"),
              ("Approved by", f"{data.approved_by or '-'} at {data.approved_at or '-'}"),
              ("Signed off by", f"{data.unit_head} at {data.signed_at}"),
              ("DSC certificate", data.signer_subject)]
    for label, value in people:
        w.text(label, 9.5, x_mm=_LEFT_MM, max_mm=40, advance=False)
        w.text(value, 9.5, bold=label == "Signed off by", x_mm=58, max_mm=137)
    w.gap(3)
    w.text("By the digital signature on this sheet the unit head confirms the ACR files listed above, as verified "
           "and approved,", 8)
    w.text("for transfer to the portal. The batch's package carries the same signature over its manifest.", 8)
    return w.finish()


def build_sheet_pdf(data: SheetData, work_dir: Path, created: datetime | None = None) -> bytes:
    """The unsigned sheet as PDF/A-2b bytes (in memory).

    Its producer is pyHanko's own name from the start: pyHanko's signing update appends itself to the Info
    dictionary's /Producer but replaces the XMP pdf:Producer, and PDF/A needs both equal; naming pyHanko
    already (it writes the file's last revision) keeps them equal.  ScanStation is the creator tool.
    """
    import pikepdf
    from pyhanko.pdf_utils.metadata.model import VENDOR

    from scanstation import __version__

    pages = [PdfPage(image_png=img, dpi=DPI) for img in render_pages(data)]
    meta = SheetMetadata(title=f"Sign-off of batch {data.batch_name}", employee_code="", employee_name="",
                         acr_period="", unit=data.unit, created=created, producer=VENDOR, batch=data.batch_name)
    unsigned = build_searchable_pdf(pages, meta, work_dir)
    with pikepdf.open(io.BytesIO(unsigned)) as pdf:
        with pdf.open_metadata(set_pikepdf_as_editor=False, update_docinfo=True) as xmp:
            xmp["xmp:CreatorTool"] = f"ScanStation {__version__}"
        out = io.BytesIO()
        pdf.save(out, deterministic_id=True, object_stream_mode=pikepdf.ObjectStreamMode.generate,
                 compress_streams=True, linearize=False)
    return out.getvalue()


# ---------------------------------------------------------------- signing
def pkcs11_signer(token: Any, chain: list[Any] | None = None) -> Any:
    """pyHanko's PKCS#11 signer for the open token (:class:`scanstation.signoff.token.OpenToken`); ``chain``:
    the intermediates to embed (the validated path's; the token's own certificates when not given)."""
    from pyhanko.sign.pkcs11 import PKCS11Signer

    is_ec = token.certificate.public_key.algorithm == "ec"
    return PKCS11Signer(token.session, signing_cert=token.certificate,
                        ca_chain=token.others if chain is None else chain,
                        key_label=token.key_label or None, key_id=token.key_id or None,
                        # many tokens sign ECDSA only raw (CKM_ECDSA): pyHanko hashes first then
                        use_raw_mechanism=is_ec)


def sign_sheet(pdf: bytes, signer: Any, *, unit: str, signer_name: str, tsa_url: str = "") -> bytes:
    """``pdf`` with the unit head's PAdES signature added as an incremental update (B-T when ``tsa_url``)."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers, timestamps
    from pyhanko.sign.fields import SigSeedSubFilter

    meta = signers.PdfSignatureMetadata(
        field_name=FIELD_NAME, md_algorithm="sha256", subfilter=SigSeedSubFilter.PADES,
        reason="Unit head's sign-off of the verified ACR batch", location=unit, name=signer_name)
    stamper = timestamps.HTTPTimeStamper(tsa_url) if tsa_url else None
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    out = io.BytesIO()
    asyncio.run(_pdfa_signer(meta, signer, stamper).async_sign_pdf(writer, output=out))
    return out.getvalue()


def _pdfa_signer(meta: Any, signer: Any, stamper: Any) -> Any:
    """pyHanko's PdfSigner kept at PDF 1.7: for ECDSA on a NIST curve it would declare ISO 32002 and move the
    file to PDF 2.0, which PDF/A-2 forbids (its files are PDF 1.x); PAdES with ECDSA needs no PDF 2.0."""
    from pyhanko.sign.signers import constants
    from pyhanko.sign.signers.pdf_signer import PdfSigner

    class PdfA2Signer(PdfSigner):
        def register_extensions(self, pdf_out: Any, *, md_algorithm: str) -> None:
            pdf_out.ensure_output_version(version=(1, 7))
            pdf_out.register_extension(constants.ESIC_EXTENSION_1)  # the PAdES extension of PDF 1.7

    return PdfA2Signer(meta, signer=signer, timestamper=stamper)


def sign_manifest(manifest: bytes, signer: Any, signed_at: datetime) -> bytes:
    """The detached CMS (DER ContentInfo/SignedData, SHA-256, content-type, message-digest and signing-time
    signed attributes, the signer's certificate and intermediates) over the exact manifest bytes."""
    from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes

    content_info = asyncio.run(signer.async_sign_general_data(
        manifest, "sha256", detached=True, signed_attr_settings=PdfCMSSignedAttributes(signing_time=signed_at)))
    return bytes(content_info.dump())

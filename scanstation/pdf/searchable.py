"""Searchable PDF/A-2b assembly in memory: page images (lossless, or compact pages from
:mod:`scanstation.pdf.page_encoding`) with tesseract's invisible text layer."""

from __future__ import annotations

import contextlib
import functools
import importlib.resources
import io
import math
import shutil
import subprocess
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pikepdf
from pikepdf import Array, Dictionary, Name
from PIL import Image

from drivers.process_guard import child_preexec
from scanstation import __version__
from scanstation.errors import ExternalToolError, InputError
from scanstation.pdf.page_encoding import CompactPage
from scanstation.pdf.page_images import EncodedImage, encode_pil, load_image

# Aspect ratios of image and text layer may differ by rounding only; more means the OCR was run on a
# different image (rotated, cropped) and the text would sit in the wrong place.
_ASPECT_TOLERANCE = 0.02
_PDFTOTEXT_TIMEOUT = 60.0
SRGB_NAME = "sRGB IEC61966-2.1"

# sRGB profiles on a Debian station, most dependable first.  pikepdf (a hard dependency) ships one;
# the system ones come from icc-profiles-free, libgs-common (ghostscript) and colord.
_SYSTEM_ICC_CANDIDATES = (
    Path("/usr/share/color/icc/sRGB.icc"),
    Path("/usr/share/color/icc/ghostscript/srgb.icc"),
    Path("/usr/share/color/icc/colord/sRGB.icc"),
)


@dataclass(frozen=True, slots=True)
class PdfPage:
    """One page to assemble: the full-quality image, its resolution and the OCR text layer if any."""

    image_png: bytes | Image.Image | EncodedImage | CompactPage  # PNG (or any format Pillow reads) bytes, a
    # PIL image, an image already encoded by encode_image (lets callers encode pages in parallel), or a page
    # stored compactly by page_encoding.encode_page (drawn as it is, its layers copied unchanged)
    dpi: int
    text_pdf: bytes | None = None  # tesseract's text-only page; None → image-only page (OCR failed)
    photo: bool = False  # True → JPEG q90 for grey/colour (photographs); lossless Flate otherwise
    # The image's content is turned counter-clockwise by ``turn`` (0, 90, 180, 270) plus ``skew`` degrees
    # (as scanstation.ocr.strategy.Geometry records it); the page shows it turned back, upright and
    # straight, while the stored pixels stay exactly as scanned: no resampling loss, no re-encoding, and
    # the viewer does the turning.  The page has the image's size (width and height swapped for a
    # quarter turn), like the straightened image the OCR text layer was read from.
    turn: int = 0
    skew: float = 0.0


@dataclass(frozen=True, slots=True)
class PdfMetadata:
    """Document metadata written identically to the Info dictionary and the XMP packet."""

    title: str
    employee_code: str
    employee_name: str
    acr_period: str
    unit: str
    producer: str = f"ScanStation {__version__}"
    created: datetime | None = None  # injectable clock; None → now (timezone-aware)

    @property
    def subject(self) -> str:
        return f"ACR {self.acr_period}: {self.employee_code} {self.employee_name}, {self.unit}"

    @property
    def keywords(self) -> str:
        return "; ".join(p for p in ("ACR", self.employee_code, self.acr_period, self.unit) if p)


# ---------------------------------------------------------------- colour profile


def _is_rgb_display_profile(data: bytes) -> bool:
    # ICC header: device class at 12, colour space at 16, magic 'acsp' at 36.
    return len(data) > 128 and data[36:40] == b"acsp" and data[16:20] == b"RGB " and data[12:16] == b"mntr"


@functools.cache
def srgb_icc_profile() -> bytes:
    """An sRGB ICC profile for the PDF/A OutputIntent, loaded at run time (never committed to the repo)."""
    looked: list[str] = []
    with contextlib.suppress(ModuleNotFoundError, FileNotFoundError, OSError):
        resource = importlib.resources.files("pikepdf").joinpath("pdfa/data/sRGB.icc")
        looked.append(f"pikepdf package ({resource})")
        data = resource.read_bytes()
        if _is_rgb_display_profile(data):
            return data
    for path in _SYSTEM_ICC_CANDIDATES:
        looked.append(str(path))
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if _is_rgb_display_profile(data):
            return data
    raise ExternalToolError(
        "no sRGB ICC colour profile found for PDF/A (looked in: "
        + ", ".join(looked)
        + "); install the Debian package icc-profiles-free"
    )


def _image_xobject(pdf: pikepdf.Pdf, encoded: EncodedImage) -> pikepdf.Stream:
    if encoded.colour_space == "Indexed":
        assert encoded.palette is not None
        hival = len(encoded.palette) // 3 - 1
        colour_space: pikepdf.Object = Array([Name.Indexed, Name.DeviceRGB, hival, pikepdf.String(encoded.palette)])
    else:
        colour_space = Name("/" + encoded.colour_space)
    extra: dict[str, pikepdf.Object] = {}
    if encoded.decode_parms:
        extra["DecodeParms"] = Dictionary({f"/{k}": v for k, v in encoded.decode_parms})
    return pikepdf.Stream(
        pdf,
        encoded.data,
        Type=Name.XObject,
        Subtype=Name.Image,
        Width=encoded.width,
        Height=encoded.height,
        ColorSpace=colour_space,
        BitsPerComponent=encoded.bits,
        Filter=Name("/" + encoded.filter),
        **extra,
    )


# ---------------------------------------------------------------- assembly


def _text_layer(
    pdf: pikepdf.Pdf, text_pdf: bytes, label: str, page_size: tuple[float, float], keep_open: list[pikepdf.Pdf]
) -> tuple[pikepdf.Object, float, float]:
    """Import tesseract's text-only page as a Form XObject; returns it with its x/y scale factors."""
    try:
        src = pikepdf.open(io.BytesIO(text_pdf))
    except pikepdf.PdfError as e:
        raise InputError(label, f"OCR text layer is not a readable PDF: {e}") from e
    # qpdf copies foreign stream data lazily: the source must stay open until the result is saved.
    keep_open.append(src)
    if len(src.pages) != 1:
        raise InputError(label, f"OCR text layer has {len(src.pages)} pages, expected 1")
    box = [float(v) for v in src.pages[0].mediabox]
    tw, th = box[2] - box[0], box[3] - box[1]
    width, height = page_size
    if tw <= 0 or th <= 0 or abs((tw / th) / (width / height) - 1) > _ASPECT_TOLERANCE:
        raise InputError(
            label, "OCR text layer does not match the page image (was the image rotated or cropped after OCR?)"
        )
    form = pdf.copy_foreign(src.pages[0].as_form_xobject())
    return form, width / tw, height / th


def _compact_form(
    pdf: pikepdf.Pdf, compact: CompactPage, label: str, keep_open: list[pikepdf.Pdf]
) -> tuple[pikepdf.Object, tuple[float, ...]]:
    """Import a compact page's one page as a Form XObject; returns it with the matrix that maps its BBox
    (its page, in points) onto the unit square, where an image would be."""
    try:
        src = pikepdf.open(io.BytesIO(compact.pdf))
    except pikepdf.PdfError as e:
        raise InputError(label, f"compact page is not a readable PDF: {e}") from e
    keep_open.append(src)  # qpdf copies foreign stream data lazily (see _text_layer)
    if len(src.pages) != 1:
        raise InputError(label, f"compact page has {len(src.pages)} pages, expected 1")
    x0, y0, x1, y1 = (float(v) for v in src.pages[0].mediabox)
    bw, bh = x1 - x0, y1 - y0
    if bw <= 0 or bh <= 0:
        raise InputError(label, "compact page has an empty page")
    to_unit = (1 / bw, 0.0, 0.0, 1 / bh, -x0 / bw, -y0 / bh)
    return pdf.copy_foreign(src.pages[0].as_form_xobject()), to_unit


def _num(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".")


def _matmul(a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, ...]:
    """PDF matrix product a × b ([a b c d e f] is the affine map p ↦ p·[[a b 0] [c d 0] [e f 1]])."""
    return (
        a[0] * b[0] + a[1] * b[2], a[0] * b[1] + a[1] * b[3],
        a[2] * b[0] + a[3] * b[2], a[2] * b[1] + a[3] * b[3],
        a[4] * b[0] + a[5] * b[2] + b[4], a[4] * b[1] + a[5] * b[3] + b[5],
    )


def _image_matrix(iw: float, ih: float, pw: float, ph: float, degrees: float) -> tuple[float, ...]:
    """The image (iw x ih points) centred on the page (pw x ph), turned clockwise by ``degrees``."""
    # Exact values for quarter turns keep their pixels on the page grid (no 1e-17 shear from cos/sin).
    exact = {0.0: (1.0, 0.0), 90.0: (0.0, -1.0), 180.0: (-1.0, 0.0), 270.0: (0.0, 1.0)}
    turned = exact.get(degrees % 360)
    if turned is None:
        rad = -math.radians(degrees)  # clockwise on the page: a negative angle in PDF's y-up space
        turned = (math.cos(rad), math.sin(rad))
    c, s = turned
    if (c, s) == (1.0, 0.0):
        return (iw, 0.0, 0.0, ih, 0.0, 0.0)
    m = _matmul((iw, 0.0, 0.0, ih, -iw / 2, -ih / 2), (c, s, -s, c, 0.0, 0.0))
    return _matmul(m, (1.0, 0.0, 0.0, 1.0, pw / 2, ph / 2))


def _fingerprint(obj: object, depth: int = 0) -> bytes:
    """Bytes that are equal exactly when two object graphs are (dictionaries, arrays, streams' raw data).

    Every part is length-prefixed, so no two different graphs can run together into the same bytes.
    """
    if depth > 12:
        raise ValueError("object graph too deep")

    def part(tag: bytes, *pieces: bytes) -> bytes:
        return tag + b"".join(len(p).to_bytes(8, "big") + p for p in pieces)

    if isinstance(obj, pikepdf.Stream):
        return part(b"S", _fingerprint(obj.stream_dict, depth + 1), bytes(obj.read_raw_bytes()))
    if isinstance(obj, Dictionary):
        return part(b"D", *(part(b"K", k.encode(), _fingerprint(v, depth + 1)) for k, v in sorted(obj.items())))
    if isinstance(obj, Array):
        return part(b"A", *(_fingerprint(v, depth + 1) for v in obj))
    if isinstance(obj, pikepdf.Object):
        return part(b"V", obj.unparse())
    return part(b"P", type(obj).__name__.encode(), repr(obj).encode())  # pikepdf gives numbers as Python's


def _share_fonts(form: pikepdf.Object, fonts: dict[bytes, pikepdf.Object]) -> None:
    """Point the text layer's fonts at an identical font of an earlier page, if there is one.

    Tesseract embeds the same small glyph-less font in every page's text layer; one copy per document
    instead of one per page saves about a kilobyte a page.  Only fonts that are identical object for
    object are shared, so nothing a page shows or copies can change.
    """
    resources = form.get("/Resources")
    font_dict = resources.get("/Font") if isinstance(resources, Dictionary) else None
    if not isinstance(font_dict, Dictionary):
        return
    for name, font in list(font_dict.items()):
        try:
            key = _fingerprint(font)
        except ValueError:
            continue
        known = fonts.setdefault(key, font)
        if known is not font:
            font_dict[name] = known


def _add_page(
    pdf: pikepdf.Pdf, page: PdfPage, index: int, keep_open: list[pikepdf.Pdf],
    fonts: dict[bytes, pikepdf.Object] | None = None,
) -> None:
    label = f"page {index + 1}"
    if page.dpi <= 0:
        raise InputError(label, f"invalid resolution {page.dpi} dpi")
    compact: CompactPage | None = None
    encoded: EncodedImage | None = None
    if isinstance(page.image_png, CompactPage):
        compact = page.image_png
        pixels = (compact.width, compact.height)
    else:
        if isinstance(page.image_png, EncodedImage):
            encoded = page.image_png
        else:
            encoded = encode_pil(load_image(page.image_png, page.dpi, label), page.photo)
        pixels = (encoded.width, encoded.height)
    if page.turn % 90 or not -45 < page.skew < 45:
        raise InputError(label, f"cannot draw a page turned by {page.turn} and skewed by {page.skew} degrees")
    iw, ih = pixels[0] * 72 / page.dpi, pixels[1] * 72 / page.dpi
    width, height = (ih, iw) if page.turn % 180 else (iw, ih)
    try:
        new_page = pdf.add_blank_page(page_size=(width, height))
    except ValueError as e:  # PDF limits pages to 3..14400 units
        raise InputError(label, f"page size {width:.0f}x{height:.0f} pt out of range: {e}") from e
    # Fixed resource names (not add_resource's random ones) keep the output byte-for-byte reproducible.
    # The image is drawn by a matrix that maps the unit square onto its place on the page; a compact page
    # is a Form XObject whose BBox is its page in points, so it is scaled to the unit square first.
    to_unit: tuple[float, ...]
    if compact is not None:
        form, to_unit = _compact_form(pdf, compact, label, keep_open)
        image_name = new_page.add_resource(form, Name.XObject, Name("/Im0"))
    else:
        assert encoded is not None
        image_name = new_page.add_resource(_image_xobject(pdf, encoded), Name.XObject, Name("/Im0"))
        to_unit = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
    ops = []
    if page.text_pdf is not None:
        form, sx, sy = _text_layer(pdf, page.text_pdf, label, (width, height), keep_open)
        if fonts is not None:
            _share_fonts(form, fonts)
        text_name = new_page.add_resource(form, Name.XObject, Name("/OCR0"))
        # Text first, image over it: the text is invisible (render mode 3) either way, but this way
        # nothing, not even a viewer that ignores render modes, can show it over the scan.
        ops.append(f"q {_num(sx)} 0 0 {_num(sy)} 0 0 cm {text_name} Do Q")
    matrix = _matmul(to_unit, _image_matrix(iw, ih, width, height, page.turn + page.skew))
    ops.append(f"q {' '.join(_num(v) for v in matrix)} cm {image_name} Do Q")
    new_page.obj.Contents = pdf.make_stream("\n".join(ops).encode("ascii"))


def _set_metadata(pdf: pikepdf.Pdf, metadata: PdfMetadata) -> None:
    created = metadata.created or datetime.now(UTC).astimezone()
    if created.tzinfo is None:
        created = created.astimezone()  # PDF/A dates need an explicit offset; naive means local time
    stamp = created.isoformat(timespec="seconds")
    # pikepdf mirrors these XMP entries into the Info dictionary (Title, Subject, Keywords, Creator,
    # Producer, CreationDate, ModDate), which is what PDF/A requires: both must agree.
    with pdf.open_metadata(set_pikepdf_as_editor=False, update_docinfo=True) as meta:
        meta["dc:title"] = unicodedata.normalize("NFC", metadata.title)
        meta["dc:description"] = unicodedata.normalize("NFC", metadata.subject)
        meta["pdf:Keywords"] = unicodedata.normalize("NFC", metadata.keywords)
        meta["pdf:Producer"] = metadata.producer
        meta["xmp:CreatorTool"] = metadata.producer
        meta["xmp:CreateDate"] = stamp
        meta["xmp:ModifyDate"] = stamp
        meta["xmp:MetadataDate"] = stamp
        meta["pdfaid:part"] = "2"
        meta["pdfaid:conformance"] = "B"


def _set_output_intent(pdf: pikepdf.Pdf) -> None:
    profile = pdf.make_stream(srgb_icc_profile())
    profile.N = 3
    intent = Dictionary(
        Type=Name.OutputIntent,
        S=Name.GTS_PDFA1,  # the subtype name PDF/A uses for all its parts
        OutputConditionIdentifier=pikepdf.String(SRGB_NAME),
        Info=pikepdf.String(SRGB_NAME),
        RegistryName=pikepdf.String("http://www.color.org"),
        DestOutputProfile=profile,
    )
    pdf.Root.OutputIntents = Array([intent])


def build_searchable_pdf(pages: list[PdfPage], metadata: PdfMetadata, work_dir: Path) -> bytes:
    """Assemble one searchable PDF (aiming at PDF/A-2b) entirely in memory and return its bytes.

    Each page is its image at full quality (1-bit: CCITT G4; grey/colour: PNG-predicted Flate, or JPEG
    q90 if ``photo``) or its compact page (copied in as a Form XObject, its layers unchanged), sized from
    its dpi, with tesseract's invisible text layer under it when present.
    ``work_dir`` is the private RAM directory for temp files; the current implementation needs none
    (images are encoded and the PDF written in memory) but keeps the parameter so that a future
    encoder that must use files has a sanctioned place for them.

    Raises InputError for unreadable images or text layers, ExternalToolError if no sRGB profile exists.
    """
    del work_dir  # see docstring: nothing is written, not even to RAM
    if not pages:
        raise InputError("document", "a PDF needs at least one page")
    keep_open: list[pikepdf.Pdf] = []
    try:
        with pikepdf.new() as pdf:
            fonts: dict[bytes, pikepdf.Object] = {}
            for index, page in enumerate(pages):
                _add_page(pdf, page, index, keep_open, fonts)
            _set_output_intent(pdf)
            _set_metadata(pdf, metadata)
            out = io.BytesIO()
            pdf.save(
                out,
                # Same input → same bytes (the /ID is derived from content): reproducible, hashable.
                deterministic_id=True,
                object_stream_mode=pikepdf.ObjectStreamMode.generate,
                compress_streams=True,
                linearize=False,
            )
            return out.getvalue()
    finally:
        for src in keep_open:
            src.close()


def pdf_text(pdf_bytes: bytes, *, timeout: float = _PDFTOTEXT_TIMEOUT) -> str:
    """Text a reader would copy out of the PDF, NFC-normalised (poppler's pdftotext, via pipes only).

    Used by tests and checks; the PDF goes in on stdin and the text comes back on stdout, so nothing
    is written anywhere.  Needs the Debian package poppler-utils.
    """
    exe = shutil.which("pdftotext")
    if exe is None:
        raise ExternalToolError("pdftotext was not found; install the Debian package poppler-utils")
    try:
        proc = subprocess.run(
            [exe, "-q", "-enc", "UTF-8", "fd://0", "-"],
            input=pdf_bytes,
            capture_output=True,
            timeout=timeout,
            check=True,
            preexec_fn=child_preexec(),  # core dumps off (None when RLIMIT_CORE 0 is inherited)
        )
    except subprocess.TimeoutExpired as e:
        raise ExternalToolError(f"pdftotext timed out after {timeout:g} s") from e
    except subprocess.CalledProcessError as e:
        detail = e.stderr.decode("utf-8", "replace").strip()[-300:] if e.stderr else ""
        raise ExternalToolError(f"pdftotext failed (exit {e.returncode}): {detail or 'no error output'}") from e
    return unicodedata.normalize("NFC", proc.stdout.decode("utf-8", "replace"))

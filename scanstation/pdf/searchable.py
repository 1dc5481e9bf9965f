"""Searchable PDF/A-2b assembly in memory: lossless page images with tesseract's invisible text layer."""

from __future__ import annotations

import contextlib
import functools
import importlib.resources
import io
import math
import shutil
import struct
import subprocess
import unicodedata
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pikepdf
from pikepdf import Array, Dictionary, Name
from PIL import Image, TiffImagePlugin, features

from scanstation import __version__
from scanstation.errors import ExternalToolError, InputError

JPEG_QUALITY = 90
# Aspect ratios of image and text layer may differ by rounding only; more means the OCR was run on a
# different image (rotated, cropped) and the text would sit in the wrong place.
_ASPECT_TOLERANCE = 0.02
_PDFTOTEXT_TIMEOUT = 60.0
# A page whose middle strip run-length matching cannot shrink below this share of its raw size is noisy
# (clean scans shrink to 5-15 %, noisy ones to 40 % and more).
_NOISY_RATIO = 0.25
SRGB_NAME = "sRGB IEC61966-2.1"

# sRGB profiles on a Debian station, most dependable first.  pikepdf (a hard dependency) ships one;
# the system ones come from icc-profiles-free, libgs-common (ghostscript) and colord.
_SYSTEM_ICC_CANDIDATES = (
    Path("/usr/share/color/icc/sRGB.icc"),
    Path("/usr/share/color/icc/ghostscript/srgb.icc"),
    Path("/usr/share/color/icc/colord/sRGB.icc"),
)


@dataclass(frozen=True, slots=True)
class EncodedImage:
    """A page image already in a PDF image stream's encoding (see :func:`encode_image`)."""

    data: bytes
    width: int
    height: int
    colour_space: str  # "DeviceGray", "DeviceRGB" or "Indexed" (over DeviceRGB, ``palette``)
    bits: int
    filter: str  # "FlateDecode", "DCTDecode" or "CCITTFaxDecode"
    decode_parms: tuple[tuple[str, int | bool], ...] = ()
    palette: bytes | None = None  # RGB triplets for "Indexed"
    source: str = "encoded"  # how it was made: "g4", "flate", "jpeg", "png passthrough", "jpeg passthrough"


@dataclass(frozen=True, slots=True)
class PdfPage:
    """One page to assemble: the full-quality image, its resolution and the OCR text layer if any."""

    image_png: bytes | Image.Image | EncodedImage  # PNG (or any format Pillow reads) bytes, a PIL image,
    # or an image already encoded by encode_image (lets callers encode pages in parallel)
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


# ---------------------------------------------------------------- images


def _load_image(page: PdfPage, label: str) -> Image.Image:
    if isinstance(page.image_png, EncodedImage):
        raise TypeError("already encoded")
    if isinstance(page.image_png, Image.Image):
        im = page.image_png
    else:
        try:
            im = Image.open(io.BytesIO(page.image_png))
            im.load()
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise InputError(label, f"page image cannot be read: {e}") from e
    if page.dpi <= 0:
        raise InputError(label, f"invalid resolution {page.dpi} dpi")
    return _normalise_mode(im, label)


def _normalise_mode(im: Image.Image, label: str) -> Image.Image:
    """Bring an image to 1, L or RGB without losing information, picking the smallest exact mode."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        raise InputError(label, f"{im.mode} (16-bit or float) images are not supported; scan at 8 bits")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        # PDF/A forbids transparency (soft masks): flatten onto white paper.
        rgba = im.convert("RGBA")
        flat = Image.new("RGB", im.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        im = flat
    if im.mode not in ("1", "L", "RGB"):
        im = im.convert("RGB")  # CMYK, YCbCr, LAB: DeviceCMYK would need a CMYK output intent
    if im.mode == "RGB":
        px = np.asarray(im)
        if np.array_equal(px[..., 0], px[..., 1]) and np.array_equal(px[..., 1], px[..., 2]):
            im = im.convert("L")  # exact: grey stored as RGB
    if im.mode == "L":
        px = np.asarray(im)
        if np.all((px == 0) | (px == 255)):
            im = im.convert("1", dither=Image.Dither.NONE)  # exact: bilevel stored as grey
    return im


def _ccitt_g4(im: Image.Image) -> tuple[bytes, bool] | None:
    """CCITT Group 4 data of a 1-bit image (via Pillow's libtiff, in memory), or None if unavailable."""
    if not features.check("libtiff"):
        return None
    buf = io.BytesIO()
    # One strip for the whole page: G4 strips cannot be concatenated into a single PDF stream.
    im.save(buf, format="TIFF", compression="group4", tiffinfo={278: im.height})
    buf.seek(0)
    with Image.open(buf) as tif:
        if not isinstance(tif, TiffImagePlugin.TiffImageFile):
            return None
        offsets = tif.tag_v2.get(273)
        counts = tif.tag_v2.get(279)
        photometric = tif.tag_v2.get(262, 0)
    if offsets is None or counts is None or len(offsets) != 1 or len(counts) != 1:
        return None
    data = buf.getvalue()[offsets[0] : offsets[0] + counts[0]]
    # Pillow writes mode "1" as min-is-black (1 = white); PDF's BlackIs1 must say which way round it is.
    return data, photometric == 1


def _png_idat(im: Image.Image, compress_level: int = 6, strategy: int = -1) -> tuple[bytes, int, int]:
    """Encode with Pillow's PNG encoder and return (IDAT zlib stream, bit depth, colour count).

    PNG's per-row filters are exactly PDF's Flate predictor 15, so the IDAT data can go into the PDF
    as is: lossless, and smaller than unpredicted Flate for photographs and noisy grey scans.
    ``strategy`` is a zlib strategy (-1: zlib's default).
    """
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=compress_level, compress_type=strategy)
    png = buf.getvalue()
    pos, idat = 8, []
    bit_depth = colour_type = -1
    while pos + 8 <= len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        body = png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            _w, _h, bit_depth, colour_type, _c, _f, interlace = struct.unpack(">IIBBBBB", body)
            if interlace:
                raise ValueError("interlaced PNG cannot be embedded directly")
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    colours = {0: 1, 2: 3}.get(colour_type)
    if colours is None:
        raise ValueError(f"unexpected PNG colour type {colour_type} for mode {im.mode}")
    return b"".join(idat), bit_depth, colours


def _deflate(data: bytes, level: int, strategy: int) -> bytes:
    # zlib releases the GIL: pages are encoded in parallel threads while tesseract runs.
    z = zlib.compressobj(level, zlib.DEFLATED, 15, 9, strategy)
    return z.compress(data) + z.flush()


# Lossless ways to store a grey or colour page as Flate: (PNG row filters?, zlib level, zlib strategy).
# Measured on the shared corpus, its turned pages and noisy synthetic scans, each wins somewhere:
# run-length matching of unfiltered rows (white paper is long runs of one byte) is the smallest on most
# scanned text pages and 4-10x faster than zlib's default; ordinary deflate wins on clean rendered
# pages with few grey levels; PNG filters on photographs and smooth shading (PNG filters with ordinary
# deflate won nowhere by more than 2 %, and trying it costs as much as the rest).
_FLATE_WAYS: tuple[tuple[bool, int, int], ...] = (
    (False, 6, zlib.Z_RLE),
    (True, 6, zlib.Z_RLE),
    (False, 6, zlib.Z_DEFAULT_STRATEGY),
)


def _middle_strip(im: Image.Image) -> Image.Image:
    return im.crop((0, im.height * 9 // 20, im.width, im.height * 11 // 20))


def _flate_way(im: Image.Image) -> tuple[bool, int, int]:
    """The smallest of :data:`_FLATE_WAYS` for this page, judged on a strip from its middle.

    Ordinary deflate is not tried on a noisy strip (one that run-length matching cannot shrink below a
    quarter): there it costs ten times the time of run-length matching for a few per cent.
    """
    if im.height < 64:
        return _FLATE_WAYS[1]
    strip = _middle_strip(im)
    raw = strip.tobytes()
    best: tuple[int, tuple[bool, int, int]] | None = None
    for way in _FLATE_WAYS:
        predict, level, strategy = way
        if strategy == zlib.Z_DEFAULT_STRATEGY and best is not None and best[0] > _NOISY_RATIO * len(raw):
            continue
        size = len(_png_idat(strip, level, strategy)[0]) if predict else len(_deflate(raw, level, strategy))
        if best is None or size < best[0]:
            best = (size, way)
    assert best is not None
    return best[1]


def _encode_pil(im: Image.Image, photo: bool, compress_level: int | None = None) -> EncodedImage:
    """Encode a 1/L/RGB image.  ``compress_level`` None picks the smallest lossless Flate for the page
    (see :func:`_flate_way`); a number forces PNG filters at that zlib level."""
    width, height = im.size
    colour_space = "DeviceRGB" if im.mode == "RGB" else "DeviceGray"
    if im.mode == "1":
        g4 = _ccitt_g4(im)
        if g4 is not None:
            data, black_is_1 = g4
            return EncodedImage(
                data, width, height, "DeviceGray", 1, "CCITTFaxDecode",
                (("K", -1), ("Columns", width), ("Rows", height), ("BlackIs1", black_is_1)), source="g4",
            )
    elif photo:
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=JPEG_QUALITY)
        return EncodedImage(buf.getvalue(), width, height, colour_space, 8, "DCTDecode", source="jpeg")
    if compress_level is not None or im.mode == "1":
        predict, level, strategy = True, 6 if compress_level is None else compress_level, -1
    else:
        predict, level, strategy = _flate_way(im)
    if not predict:
        return EncodedImage(_deflate(im.tobytes(), level, strategy), width, height, colour_space, 8, "FlateDecode",
                            source="flate")
    data, bits, colours = _png_idat(im, level, strategy)
    return EncodedImage(
        data, width, height, colour_space, bits, "FlateDecode",
        (("Predictor", 15), ("Colors", colours), ("BitsPerComponent", bits), ("Columns", width)), source="flate",
    )


def _png_passthrough(data: bytes) -> EncodedImage | None:
    """The IDAT stream of a PNG whose pixels PDF can take as they are (no transparency, no 16 bits,
    not interlaced), or None."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    pos, idat = 8, []
    header: tuple[int, ...] | None = None
    palette: bytes | None = None
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if len(body) != length:
            return None
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = body
        elif kind == b"tRNS":
            return None  # transparency: PDF/A would need a soft mask
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None or not idat:
        return None
    width, height, bits, colour_type, compression, _filter, interlace = header
    if interlace or compression or width <= 0 or height <= 0:
        return None
    if colour_type == 0 and bits in (1, 2, 4, 8):
        space, colours, pal = "DeviceGray", 1, None
    elif colour_type == 2 and bits == 8:
        space, colours, pal = "DeviceRGB", 3, None
    elif colour_type == 3 and bits in (1, 2, 4, 8) and palette and len(palette) % 3 == 0:
        space, colours, pal = "Indexed", 1, palette
    else:
        return None
    return EncodedImage(
        b"".join(idat), width, height, space, bits, "FlateDecode",
        (("Predictor", 15), ("Colors", colours), ("BitsPerComponent", bits), ("Columns", width)),
        palette=pal, source="png passthrough",
    )


def _jpeg_passthrough(data: bytes) -> EncodedImage | None:
    """A baseline/progressive JPEG in grey or RGB, as it is (DCTDecode), or None."""
    if not data.startswith(b"\xff\xd8\xff"):
        return None
    try:
        with Image.open(io.BytesIO(data), formats=("JPEG",)) as im:
            mode, (width, height) = im.mode, im.size
            orientation = im.getexif().get(0x0112, 1)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    if mode not in ("L", "RGB") or orientation not in (None, 1):
        return None  # CMYK needs a CMYK output intent; EXIF-rotated pixels are not the page as loaded
    space = "DeviceRGB" if mode == "RGB" else "DeviceGray"
    return EncodedImage(data, width, height, space, 8, "DCTDecode", source="jpeg passthrough")


def passthrough_image(data: bytes) -> EncodedImage | None:
    """PNG or JPEG file bytes as a PDF image stream without re-encoding, or None if PDF cannot carry them."""
    return _png_passthrough(data) or _jpeg_passthrough(data)


_PAGE_FIT = 0.005  # relative tolerance for "the image covers the page"
_TEXT_OPERATORS = frozenset(
    {"BT", "ET", "Tf", "Tr", "Tm", "Td", "TD", "T*", "TJ", "Tj", "Tz", "TL", "Tc", "Tw", "Ts", "'", '"'}
)
# Graphics state and colour settings paint nothing (clipping, W, does: it is not in this list).
_STATE_OPERATORS = frozenset(
    {"ri", "gs", "i", "w", "J", "j", "M", "d", "cs", "CS", "sc", "scn", "SC", "SCN", "g", "G", "rg", "RG", "k", "K"}
)
_KEEP_FILTERS = frozenset({"/DCTDecode", "/FlateDecode", "/CCITTFaxDecode"})


def _image_space(obj: pikepdf.Object | None) -> tuple[str, bytes | None] | None:
    """(colour space name for EncodedImage, palette) for the spaces kept as they are, else None."""
    if obj == Name.DeviceGray:
        return "DeviceGray", None
    if obj == Name.DeviceRGB:
        return "DeviceRGB", None
    if isinstance(obj, Array) and len(obj) == 2 and obj[0] == Name.ICCBased:
        n = int(obj[1].get("/N", 0))
        return {1: ("DeviceGray", None), 3: ("DeviceRGB", None)}.get(n)
    if isinstance(obj, Array) and len(obj) == 4 and obj[0] == Name.Indexed and obj[1] == Name.DeviceRGB:
        lookup = obj[3]
        table = bytes(lookup.read_bytes()) if isinstance(lookup, pikepdf.Stream) else bytes(lookup)
        if len(table) != 3 * (int(obj[2]) + 1):
            return None
        return "Indexed", table
    return None


def embedded_page_image(page: pikepdf.Page) -> tuple[EncodedImage, float] | None:
    """The one image a scanned PDF page consists of, as stored in the file, and its resolution (dpi).

    Only a page that paints exactly one image over its whole media box (and at most invisible text,
    as an earlier OCR left it) qualifies, with an encoding PDF/A takes as it is (JPEG, Flate, CCITT;
    grey, RGB or indexed; no masks).  None for anything else: such pages are rendered and re-encoded.
    """
    try:
        if int(page.obj.get("/Rotate", 0)) % 360:
            return None
        x0, y0, x1, y1 = (float(v) for v in page.mediabox)
        resources = page.obj.get("/Resources")
        xobjects = resources.get("/XObject") if isinstance(resources, Dictionary) else None
        if not isinstance(xobjects, Dictionary) or len(xobjects) != 1 or x0 or y0:
            return None
        ((name, xobj),) = xobjects.items()
        if not isinstance(xobj, pikepdf.Stream) or xobj.get("/Subtype") != Name.Image:
            return None
        ctm = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
        stack: list[list[float]] = []
        painted = 0
        invisible = False
        for instruction in pikepdf.parse_content_stream(page):
            if isinstance(instruction, pikepdf.ContentStreamInlineImage):
                return None
            operands, op = instruction.operands, str(instruction.operator)
            if op == "q":
                stack.append(ctm[:])
            elif op == "Q":
                ctm = stack.pop() if stack else ctm
            elif op == "cm":
                a, b, c, d, e, f = (float(v) for v in operands)
                m0 = ctm
                ctm = [
                    a * m0[0] + b * m0[2], a * m0[1] + b * m0[3],
                    c * m0[0] + d * m0[2], c * m0[1] + d * m0[3],
                    e * m0[0] + f * m0[2] + m0[4], e * m0[1] + f * m0[3] + m0[5],
                ]
            elif op == "Do":
                if str(operands[0]) != name or painted:
                    return None
                painted += 1
                pw, ph = x1 - x0, y1 - y0
                want = (pw, 0.0, 0.0, ph, 0.0, 0.0)
                scale = (pw, pw, ph, ph, pw, ph)
                if any(abs(g - w) > _PAGE_FIT * s_ for g, w, s_ in zip(ctm, want, scale, strict=True)):
                    return None
            elif op == "Tr":
                invisible = int(operands[0]) == 3
            elif op in _TEXT_OPERATORS:
                if op in ("TJ", "Tj", "'", '"') and not invisible:
                    return None
            elif op not in _STATE_OPERATORS:
                return None  # paths, shadings, inline images, colours: more than one picture
        if painted != 1:
            return None
        stream = xobj
        if stream.get("/ImageMask", False) or any(k in stream for k in ("/SMask", "/Mask", "/Decode")):
            return None
        filters = stream.get("/Filter")
        if isinstance(filters, Array):
            if len(filters) != 1:
                return None
            filters = filters[0]
        if str(filters) not in _KEEP_FILTERS:
            return None
        space = _image_space(stream.get("/ColorSpace"))
        bits = int(stream.get("/BitsPerComponent", 0))
        if space is None or bits not in (1, 2, 4, 8):
            return None
        parms = stream.get("/DecodeParms")
        if isinstance(parms, Array):
            parms = parms[0] if len(parms) == 1 else None
        items: list[tuple[str, int | bool]] = []
        if isinstance(parms, Dictionary):
            for key, value in parms.items():
                if isinstance(value, bool | int):
                    items.append((key.lstrip("/"), value))
                else:
                    return None
        width, height = int(stream.Width), int(stream.Height)
        encoded = EncodedImage(
            bytes(stream.read_raw_bytes()), width, height, space[0], bits, str(filters).lstrip("/"),
            tuple(items), palette=space[1], source="pdf passthrough",
        )
        return encoded, width * 72.0 / (x1 - x0)
    except (pikepdf.PdfError, ValueError, TypeError, AttributeError, KeyError, IndexError):
        return None


def encode_image(
    image: bytes | Image.Image,
    *,
    photo: bool = False,
    passthrough: bool = False,
    label: str = "page",
    compress_level: int | None = None,
) -> EncodedImage:
    """Encode a page image for the PDF; thread-safe, so pages can be encoded while OCR runs.

    1-bit: CCITT G4 (lossless); grey and colour: lossless Flate, the smallest of a few ways for the
    page (``compress_level`` given: PNG-predicted Flate at that zlib level), or JPEG q90 if ``photo``.
    With ``passthrough``, PNG or JPEG file bytes that PDF can carry unchanged are used as they are (no
    decoding, no re-encoding: the page is bit for bit the input); the caller must know that the bytes
    are the page it wants (no cleaning since; a turn or skew is for :class:`PdfPage` to draw).
    """
    if passthrough and isinstance(image, bytes):
        encoded = passthrough_image(image)
        if encoded is not None:
            return encoded
    im = _load_image(PdfPage(image_png=image, dpi=1), label)
    return _encode_pil(im, photo, compress_level)


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
    if isinstance(page.image_png, EncodedImage):
        encoded = page.image_png
    else:
        encoded = _encode_pil(_load_image(page, label), page.photo)
    if page.turn % 90 or not -45 < page.skew < 45:
        raise InputError(label, f"cannot draw a page turned by {page.turn} and skewed by {page.skew} degrees")
    iw, ih = encoded.width * 72 / page.dpi, encoded.height * 72 / page.dpi
    width, height = (ih, iw) if page.turn % 180 else (iw, ih)
    try:
        new_page = pdf.add_blank_page(page_size=(width, height))
    except ValueError as e:  # PDF limits pages to 3..14400 units
        raise InputError(label, f"page size {width:.0f}x{height:.0f} pt out of range: {e}") from e
    # Fixed resource names (not add_resource's random ones) keep the output byte-for-byte reproducible.
    image_name = new_page.add_resource(_image_xobject(pdf, encoded), Name.XObject, Name("/Im0"))
    ops = []
    if page.text_pdf is not None:
        form, sx, sy = _text_layer(pdf, page.text_pdf, label, (width, height), keep_open)
        if fonts is not None:
            _share_fonts(form, fonts)
        text_name = new_page.add_resource(form, Name.XObject, Name("/OCR0"))
        # Text first, image over it: the text is invisible (render mode 3) either way, but this way
        # nothing, not even a viewer that ignores render modes, can show it over the scan.
        ops.append(f"q {_num(sx)} 0 0 {_num(sy)} 0 0 cm {text_name} Do Q")
    ops.append(f"q {' '.join(_num(v) for v in _image_matrix(iw, ih, width, height, page.turn + page.skew))} cm "
               f"{image_name} Do Q")
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
    q90 if ``photo``), sized from its dpi, with tesseract's invisible text layer under it when present.
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
        )
    except subprocess.TimeoutExpired as e:
        raise ExternalToolError(f"pdftotext timed out after {timeout:g} s") from e
    except subprocess.CalledProcessError as e:
        detail = e.stderr.decode("utf-8", "replace").strip()[-300:] if e.stderr else ""
        raise ExternalToolError(f"pdftotext failed (exit {e.returncode}): {detail or 'no error output'}") from e
    return unicodedata.normalize("NFC", proc.stdout.decode("utf-8", "replace"))

"""Page images as PDF image streams: the smallest lossless encoding per page (CCITT G4, Flate), JPEG for
photographs, PNG/JPEG/PDF images passed through unchanged where PDF can carry them."""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
import pikepdf
from pikepdf import Array, Dictionary, Name
from PIL import Image, TiffImagePlugin, features

from scanstation.errors import InputError

JPEG_QUALITY = 90
# A page whose middle strip run-length matching cannot shrink below this share of its raw size is noisy
# (clean scans shrink to 5-15 %, noisy ones to 40 % and more).
_NOISY_RATIO = 0.25


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


def load_image(image: bytes | Image.Image | EncodedImage, dpi: int, label: str) -> Image.Image:
    if isinstance(image, EncodedImage):
        raise TypeError("already encoded")
    if isinstance(image, Image.Image):
        im = image
    else:
        try:
            im = Image.open(io.BytesIO(image))
            im.load()
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise InputError(label, f"page image cannot be read: {e}") from e
    if dpi <= 0:
        raise InputError(label, f"invalid resolution {dpi} dpi")
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


def ccitt_g4(im: Image.Image) -> tuple[bytes, bool] | None:
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


def encode_pil(im: Image.Image, photo: bool, compress_level: int | None = None) -> EncodedImage:
    """Encode a 1/L/RGB image.  ``compress_level`` None picks the smallest lossless Flate for the page
    (see :func:`_flate_way`); a number forces PNG filters at that zlib level."""
    width, height = im.size
    colour_space = "DeviceRGB" if im.mode == "RGB" else "DeviceGray"
    if im.mode == "1":
        g4 = ccitt_g4(im)
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
    im = load_image(image, 1, label)
    return encode_pil(im, photo, compress_level)

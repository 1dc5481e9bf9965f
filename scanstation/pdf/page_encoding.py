"""A page at archival upload size: the encoding chosen per page by measurement (issue 16).

:func:`encode_page` turns a cleaned page into a one-page PDF whose page is exactly the image, drawn from
layers PDF/A-2b allows, and picks per page the smallest of:

- ``jbig2`` (``g4`` without the compiled coder): a bitonal page, lossless, as a JBIG2 generic region
  (:mod:`scanstation.pdf.jbig2`) or CCITT Group 4;
- ``mrc``: mixed raster content (:mod:`scanstation.pdf.mrc`): a lossless JBIG2 (or G4) mask of the ink at full
  resolution, the page with the ink taken out, denoised and downsampled as JPEG behind it (photographs
  on the page as JPEG of their own at half resolution; text-like strokes in an area of a photograph's
  mid-tones make it text, not a photograph), and the ink's colour: flat colours painted
  through the mask as stencils (image masks) when the ink is neutral (on grey pages one per tone band,
  with the ink's anti-aliased rim as a stencil of its own in a mid grey under it, as OCR needs it, and
  every stencil on the page's own side of its Otsu binarisation, where Tesseract finds lines);
  coloured ink in classes by hue,
  each its own stencil in its flat colour, and where a class's colour varies (ballpoint pressure) a
  50-dpi colour image over it through a copy of the stencil as its explicit ``/Mask`` (PDF 1.3; no soft
  masks, no transparency groups: PDF/A-2b);
- ``jpeg``: the whole page as JPEG (at half or full resolution) where MRC does not pay or fails the
  gate (photographs, faint blurred print);
- ``flate``: lossless, where that is the smallest (clean rendered pages can be), and every page under
  100 dpi (``mrc.LOSSLESS_BELOW_DPI``: strokes of a pixel or two, which no lossy candidate kept legible)
  that stays within ``mrc.LOW_DPI_BUDGET`` that way; a larger one (a whole A4 page of grain at 72-96 dpi)
  is a whole-page JPEG at full resolution within that budget.

``jpx`` (JPEG 2000, which PDF/A-2 allows) is a method name the format keeps, but no candidate uses it:
OpenJPEG took 0.3-0.9 s for one 100-dpi background layer of an A4 page (JPEG: 5-10 ms), the whole budget
of a page, for layers that are 5-15 KB as JPEG.

A lossy candidate is only used if it passes a fidelity gate computed in numpy on its composite against the
input (:func:`scanstation.pdf.mrc.fidelity_problems`): no OCR at the station, it must stay cheap.  If none
passes, the page is stored losslessly.

JBIG2 only as lossless generic regions, every pixel coded from its neighbours: never its pattern matching
(symbol dictionaries and text regions), which can silently turn a 6 into an 8.  The coder is our own
(:mod:`scanstation.pdf.jbig2`; jbig2enc is not in Debian 12), checked against jbig2dec, poppler and Ghostscript.

Deterministic: the same image gives the same bytes (fixed resource names, ``deterministic_id``), and
thread-safe: OpenCV, zlib, libtiff, libjpeg and the compiled JBIG2 coder release the GIL, so pages are
encoded while OCR runs.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pikepdf
from pikepdf import Array, Dictionary, Name
from PIL import Image

from scanstation.errors import InputError
from scanstation.pdf import jbig2, mrc
from scanstation.pdf.page_images import EncodedImage, encode_pil, load_image

__all__ = ["CompactPage", "encode_page"]


@dataclass(frozen=True, slots=True)
class CompactPage:
    """A page stored compactly: a one-page PDF whose page is exactly the image, and how it was stored."""

    pdf: bytes  # one page of width*72/dpi x height*72/dpi points, drawn from its layers, no text
    method: str  # "jbig2", "g4", "mrc", "jpeg", "jpx" or "flate"
    width: int  # pixels of the image it stands for
    height: int
    dpi: int
    layers: tuple[tuple[str, int], ...]  # (layer, bytes), e.g. (("mask", 31000), ("background", 22000))

    @property
    def size(self) -> int:
        return sum(n for _name, n in self.layers)

    @classmethod
    def from_pdf(cls, pdf: bytes, dpi: int) -> CompactPage:
        """A compact page read back (from the vault): its one-page PDF, with the image size its page stands for
        (the page is exactly the image: width*72/dpi by height*72/dpi points).  How it was encoded is not kept
        with it (``method`` "stored", no layers; the page's analysis records them)."""
        with pikepdf.open(io.BytesIO(pdf)) as doc:
            x0, y0, x1, y1 = (float(v) for v in doc.pages[0].mediabox)
        width, height = round((x1 - x0) * dpi / 72), round((y1 - y0) * dpi / 72)
        return cls(pdf=pdf, method="stored", width=width, height=height, dpi=dpi, layers=())


def _image_stream(pdf: pikepdf.Pdf, layer: mrc.Layer) -> pikepdf.Stream:
    extra: dict[str, Any] = {}
    if layer.decode_parms:
        extra["DecodeParms"] = Dictionary({f"/{k}": v for k, v in layer.decode_parms})
    if layer.stencil:
        # An image mask (stencil): no colour space; 1 bit; where it paints is fixed by Decode below.
        extra["ImageMask"] = True
        if layer.decode is not None:
            extra["Decode"] = Array(list(layer.decode))
    else:
        extra["ColorSpace"] = Name("/" + layer.colour_space)
    if layer.filter != "JPXDecode":
        extra["BitsPerComponent"] = layer.bits  # JPX images carry their own (PDF 32000 8.9.5)
    return pikepdf.Stream(
        pdf, layer.data, Type=Name.XObject, Subtype=Name.Image, Width=layer.width, Height=layer.height,
        Filter=Name("/" + layer.filter), **extra,
    )


def _num(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".")


def page_pdf(plan: mrc.Plan, width: int, height: int, dpi: int) -> bytes:
    """The one-page PDF drawing ``plan``'s layers over the whole page (fixed names: reproducible bytes)."""
    pw, ph = width * 72 / dpi, height * 72 / dpi
    box = f"{_num(pw)} 0 0 {_num(ph)} 0 0 cm"
    with pikepdf.new() as pdf:
        page = pdf.add_blank_page(page_size=(pw, ph))
        page.add_resource(_image_stream(pdf, plan.background), Name.XObject, Name("/Bg0"))
        ops = [f"q {box} /Bg0 Do Q"]
        for i, (layer, (x0, y0, x1, y1)) in enumerate(plan.photos):
            page.add_resource(_image_stream(pdf, layer), Name.XObject, Name(f"/Ph{i}"))
            # Pixel rows count from the top, PDF's y from the bottom.
            s = 72 / dpi
            ops.append(f"q {_num((x1 - x0) * s)} 0 0 {_num((y1 - y0) * s)} {_num(x0 * s)} {_num((height - y1) * s)} cm "
                       f"/Ph{i} Do Q")
        for i, ink in enumerate(plan.inks):
            mask = page.add_resource(_image_stream(pdf, ink.mask), Name.XObject, Name(f"/Mk{i}"))
            colour = " ".join(_num(c / 255) for c in ink.colour)
            ops.append(f"q {colour} {'g' if len(ink.colour) == 1 else 'rg'} {box} {mask} Do Q")
            if ink.foreground is not None:
                # Explicit masking (PDF 1.3): the image shows where the stencil paints, over the flat
                # colour (see mrc.inks for why both).  The /Mask is a copy of the stencil: one stream in
                # both roles is valid PDF, but pikepdf's PDF/A validator cannot check it ("role conflict").
                fg = _image_stream(pdf, ink.foreground)
                fg.Mask = _image_stream(pdf, ink.mask)
                ops.append(f"q {box} {page.add_resource(fg, Name.XObject, Name(f'/Fg{i}'))} Do Q")
        page.obj.Contents = pdf.make_stream("\n".join(ops).encode("ascii"))
        out = io.BytesIO()
        pdf.save(out, deterministic_id=True, compress_streams=True, linearize=False,
                 object_stream_mode=pikepdf.ObjectStreamMode.generate)
        return out.getvalue()


def _lossless(encoded: EncodedImage) -> mrc.Layer:
    return mrc.Layer(
        encoded.data, encoded.width, encoded.height, encoded.colour_space, encoded.bits, encoded.filter,
        encoded.decode_parms,
    )


def _bitonal_jbig2(im: Image.Image) -> mrc.Layer | None:
    """A 1-bit page as a JBIG2 generic region image (black decodes as 0, DeviceGray's black), or None if
    its code would be larger than its raw bits."""
    try:
        data = jbig2.generic_region(~np.asarray(im, dtype=bool))  # mode "1": True is white
    except jbig2.EncodeOverflow:
        return None
    return mrc.Layer(data, im.width, im.height, "DeviceGray", 1, "JBIG2Decode")


def encode_page(image: Image.Image, dpi: int, *, label: str = "page") -> CompactPage:
    """Store ``image`` (a cleaned page scanned at ``dpi``) in the smallest encoding that keeps what a
    reader needs; see the module docstring.  Raises InputError for images that cannot be pages."""
    if not isinstance(image, Image.Image):
        raise InputError(label, "page image must be a PIL image")
    if image.width < 1 or image.height < 1:
        raise InputError(label, "page image is empty")
    im = load_image(image, dpi, label)  # 1, L or RGB, the smallest exact mode; dpi checked
    width, height = im.size
    pw, ph = width * 72 / dpi, height * 72 / dpi
    if not (3 <= pw <= 14400 and 3 <= ph <= 14400):  # PDF's page size limits
        raise InputError(label, f"page size {pw:.1f}x{ph:.1f} pt out of range (image {width}x{height} at {dpi} dpi)")
    if im.mode == "1":
        generic = _bitonal_jbig2(im)  # the smaller on every bitonal page measured (a third under G4)
        if generic is not None:
            image_layer, method = generic, "jbig2"
        else:
            image_layer = _lossless(encode_pil(im, photo=False))  # CCITT G4 (Flate only without libtiff)
            method = "g4" if image_layer.filter == "CCITTFaxDecode" else "flate"
        plan = mrc.Plan(method, image_layer)
        return CompactPage(page_pdf(plan, width, height, dpi), method, width, height, dpi, plan.layer_sizes())
    plan = mrc.choose(np.asarray(im), dpi, lossless=lambda: _lossless(encode_pil(im, photo=False)))
    return CompactPage(page_pdf(plan, width, height, dpi), plan.method, width, height, dpi, plan.layer_sizes())

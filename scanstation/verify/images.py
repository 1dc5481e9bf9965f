"""A page as a supervisor sees it: the stored image turned by the page's quarter turn, losslessly.

A quarter turn is a pure transposition of pixels (PIL ``transpose``: no resampling, no interpolation), and
the result is encoded as PNG again, so the served image holds exactly the stored pixels.
"""

from __future__ import annotations

import io

from PIL import Image

from scanstation.errors import StateError

# Clockwise quarter turns as PIL transpositions (PIL's ROTATE_90 turns counter-clockwise).
_TRANSPOSE: dict[int, Image.Transpose] = {
    90: Image.Transpose.ROTATE_270,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_90,
}
QUARTER_TURNS = (0, 90, 180, 270)
THUMBNAIL_WIDTHS = (16, 1024)


def check_rotation(rotation: int) -> int:
    if rotation not in QUARTER_TURNS:
        raise StateError(f"rotation {rotation}: expected a clockwise quarter turn, one of 0, 90, 180, 270")
    return rotation


def turned(image: Image.Image, rotation: int) -> Image.Image:
    """``image`` turned clockwise by ``rotation`` degrees (a quarter turn), pixel for pixel."""
    check_rotation(rotation)
    if rotation == 0:
        return image
    out = image.transpose(_TRANSPOSE[rotation])
    if "dpi" in image.info:
        out.info["dpi"] = image.info["dpi"]
    return out


def _png(image: Image.Image, compress_level: int = 1) -> bytes:
    buf = io.BytesIO()
    dpi = image.info.get("dpi")
    image.save(buf, format="PNG", compress_level=compress_level, **({"dpi": dpi} if dpi else {}))
    return buf.getvalue()


def rotated_png(png: bytes, rotation: int) -> bytes:
    """The PNG turned clockwise by ``rotation`` (the same bytes when 0)."""
    if check_rotation(rotation) == 0:
        return png
    with Image.open(io.BytesIO(png)) as im:
        im.load()
        return _png(turned(im, rotation))


def thumbnail_png(png: bytes, rotation: int, width: int) -> bytes:
    """A small PNG of the page as served (turned), ``width`` pixels wide (a thumbnail is not "served")."""
    low, high = THUMBNAIL_WIDTHS
    if not low <= width <= high:
        raise StateError(f"thumbnail width {width}: expected {low} to {high} pixels")
    with Image.open(io.BytesIO(png)) as im:
        im.draft("L", (width * 2, width * 4))  # JPEG only; PNG decodes whole (one page, ~50 ms)
        im.load()
        image = turned(im.convert("L") if im.mode == "1" else im, rotation)
        height = max(1, round(image.height * width / image.width))
        small = image.resize((width, height), Image.Resampling.BOX if image.mode != "P" else Image.Resampling.NEAREST)
        return _png(small, compress_level=6)

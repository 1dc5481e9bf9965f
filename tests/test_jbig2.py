"""Our JBIG2 generic region coder, checked by decoders we did not write: jbig2dec (the reference decoder most
PDF readers embed) pixel for pixel, and Ghostscript and poppler drawing it inside a PDF."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pikepdf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from scanstation.pdf import jbig2
from scanstation.pdf.page_encoding import encode_page

needs_jbig2dec = pytest.mark.skipif(shutil.which("jbig2dec") is None,
                                    reason="jbig2dec not installed (installer/setup.sh --dev installs it)")


def test_this_install_has_the_compiled_coder() -> None:
    # Without it the station still works, every stencil CCITT G4 (a third larger): an install that forgot to
    # compile it must not pass unnoticed.
    assert jbig2.AVAILABLE, "scanstation/pdf/_jbig2_mq.c not compiled: run installer/setup.sh (pip install -e .)"


def decoded(stream: bytes, tmp: Path) -> np.ndarray:
    """``stream`` decoded by jbig2dec as an embedded stream: 1 where black."""
    src, out = tmp / "region.jb2", tmp / "region.pbm"
    src.write_bytes(stream)
    proc = subprocess.run(["jbig2dec", "-e", "-t", "pbm", "-o", str(out), str(src)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    # jbig2dec reports damage on stderr and still writes what it got: a clean decode says nothing
    assert "error" not in proc.stderr.lower() and "warning" not in proc.stderr.lower(), proc.stderr
    magic, dims, raster = out.read_bytes().split(b"\n", 2)
    assert magic == b"P4"
    w, h = map(int, dims.split())
    return np.unpackbits(np.frombuffer(raster, np.uint8).reshape(h, -1), axis=1)[:, :w]


def text_like(h: int, w: int, seed: int) -> np.ndarray:
    """Strokes, dots and runs: what the stencils of a page hold."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w), np.uint8)
    for _ in range(h * w // 400):
        y, x = rng.integers(0, h), rng.integers(0, w)
        img[y:y + rng.integers(1, 12), x:x + rng.integers(1, 4)] = 1
    img[rng.random((h, w)) < 0.003] ^= 1  # lone pixels: the binarisation's corrections
    return img


@needs_jbig2dec
@pytest.mark.parametrize("shape", [(1, 1), (1, 37), (37, 1), (3, 5), (64, 64), (101, 203), (350, 2480)])
@pytest.mark.parametrize("kind", ["white", "black", "noise", "text", "stripes"])
def test_every_pixel_comes_back(shape: tuple[int, int], kind: str, tmp_path: Path) -> None:
    h, w = shape
    rng = np.random.default_rng(h * 7919 + w)
    img = {
        "white": np.zeros(shape, np.uint8),
        "black": np.ones(shape, np.uint8),
        # half set at random: no context predicts it, so the coder's carries and 0xFF stuffing all run
        "noise": (rng.random(shape) < 0.5).astype(np.uint8),
        "text": text_like(h, w, h + w),
        "stripes": np.tile((np.arange(w) // 3 % 2).astype(np.uint8), (h, 1)),
    }[kind]
    try:
        stream = jbig2.generic_region(img)
    except jbig2.EncodeOverflow:
        assert kind == "noise"  # only incompressible noise may code larger than its raw bits
        return
    assert jbig2.segment_types(stream) == [48, 39]
    assert np.array_equal(decoded(stream, tmp_path), img)


@needs_jbig2dec
@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.uint8, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=48),
                  elements=st.integers(0, 1)))
def test_any_small_image_comes_back(img: np.ndarray) -> None:
    import tempfile

    try:
        stream = jbig2.generic_region(img)
    except jbig2.EncodeOverflow:
        return
    with tempfile.TemporaryDirectory() as tmp:
        assert np.array_equal(decoded(stream, Path(tmp)), img)


@needs_jbig2dec
def test_a_page_of_print_is_smaller_than_g4_and_exact(tmp_path: Path) -> None:
    from PIL import Image

    from scanstation.pdf.page_images import ccitt_g4

    img = text_like(3508, 2480, 1)
    stream = jbig2.generic_region(img)
    assert np.array_equal(decoded(stream, tmp_path), img)
    g4 = ccitt_g4(Image.frombytes("1", (2480, 3508), np.packbits(img == 0, axis=1).tobytes()))
    assert g4 is not None and len(stream) < 0.8 * len(g4[0])


def test_incompressible_noise_is_refused_not_stored_larger() -> None:
    noise = (np.random.default_rng(5).random((600, 600)) < 0.5).astype(np.uint8)
    with pytest.raises(jbig2.EncodeOverflow, match="600x600"):
        jbig2.generic_region(noise)
    with pytest.raises(ValueError, match="empty"):
        jbig2.generic_region(np.zeros((0, 5), np.uint8))


def test_segment_types_reads_headers_and_refuses_damage() -> None:
    stream = jbig2.generic_region(text_like(40, 60, 2))
    assert jbig2.segment_types(stream) == [48, 39]
    for cut in (3, 10, len(stream) - 1):
        with pytest.raises(ValueError, match="JBIG2 segment"):
            jbig2.segment_types(stream[:cut])
    # A symbol dictionary (type 0) referring to nothing, then a text region (type 6) referring to it: the
    # symbol-substituting kind, which the checks must see.
    symbols = struct.pack(">IBBBI", 0, 0, 0, 1, 2) + b"\0\0"
    text = struct.pack(">IBBBBI", 1, 6, 1 << 5, 0, 1, 1) + b"\0"
    assert jbig2.segment_types(symbols + text) == [0, 6]
    assert not set(jbig2.segment_types(symbols + text)) <= jbig2.GENERIC_SEGMENT_TYPES


@pytest.mark.skipif(shutil.which("gs") is None or shutil.which("pdftoppm") is None, reason="needs gs and pdftoppm")
def test_pdf_readers_draw_a_bitonal_jbig2_page_as_its_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    from scanstation.pdf import page_encoding

    img = text_like(300, 410, 3)
    image = Image.fromarray(((1 - img) * 255).astype(np.uint8), "L")
    page = encode_page(image, 72)
    assert page.method == "jbig2"
    with pikepdf.open(io.BytesIO(page.pdf)) as doc:
        (xobj,) = doc.pages[0].images.values()
        assert xobj.Filter == pikepdf.Name.JBIG2Decode

    def drawn(pdf: bytes, command: list[str]) -> np.ndarray:
        png = subprocess.run(command, input=pdf, capture_output=True, check=True, timeout=60).stdout
        with Image.open(io.BytesIO(png)) as im:
            return np.asarray(im.convert("L"))

    gs = ["gs", "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sDEVICE=pnggray", "-r72", "-sOutputFile=-", "-"]
    poppler = ["pdftoppm", "-r", "72", "-gray", "-png", "-"]
    # Ghostscript draws a 1-bit image pixel for pixel.
    assert np.array_equal(drawn(page.pdf, gs) < 128, img.astype(bool))
    # Poppler smooths 1-bit images' edges even unscaled, so it is held to drawing the same page as G4.
    monkeypatch.setattr(page_encoding, "_bitonal_jbig2", lambda im: None)
    as_g4 = encode_page(image, 72)
    assert as_g4.method == "g4"
    assert np.array_equal(drawn(page.pdf, poppler), drawn(as_g4.pdf, poppler))


def test_a_stencil_jbig2_cannot_code_smaller_falls_back_to_g4() -> None:
    from scanstation.pdf import mrc

    noise = (np.random.default_rng(6).random((600, 600)) < 0.5).astype(np.uint8)
    assert mrc.mask_layer(noise).filter == "CCITTFaxDecode"  # JBIG2 refused it: over its raw bits
    layer = mrc.mask_layer(text_like(600, 600, 6))
    assert layer.filter == "JBIG2Decode" and layer.stencil and layer.decode == (0, 1)

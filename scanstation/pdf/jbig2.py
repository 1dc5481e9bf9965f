"""Lossless JBIG2 *generic region* coding of a 1-bit image, for a PDF ``/JBIG2Decode`` stream.

Why: the stencils of a compact page (its ink mask, the ink's rim, the tone bands, the binarisation's corrections)
were CCITT G4, which codes runs of a row against the row above.  JBIG2's generic region coding instead predicts
each pixel from sixteen of its coded neighbours with an adaptive arithmetic coder (the MQ coder), and so costs
35-45 % fewer bytes on those stencils (a sparse scatter of single pixels costs G4 several bytes each).  It is
lossless: every pixel is coded, as it is.  This is *not* the symbol-substituting JBIG2 that issue 16 forbids
(text regions with a symbol dictionary, where a 6 can be drawn as an 8); there is no dictionary here at all.

No encoder is packaged for Debian 12 (jbig2enc is not in it), so the coder is here: ITU-T T.88 (ISO/IEC 14492)
6.2 generic region decoding procedure read in reverse, template 0 with its nominal adaptive pixels and typical
prediction (TPGDON), and the MQ encoder of annex E.2.  It is checked against independent decoders in the tests
(jbig2dec, poppler's pdftoppm, Ghostscript): every pixel must come back.

The stream is in the *embedded* organisation PDF 32000-1 7.4.7 asks for: a page information segment and one
immediate lossless generic region segment, without the file header or end-of-page and end-of-file segments.
The coder itself is C (``_jbig2_mq.c``, compiled when the package is installed): in Python a page's 8.7 million
pixels would take minutes, and a JIT compiler (numba) cannot run in the station's service, whose unit denies
memory that is both writable and executable (MemoryDenyWriteExecute).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np


def _compiled() -> Callable[[np.ndarray, int, int], bytes | None] | None:
    """The C coder, compiled when the package is installed (pyproject.toml's ext-modules), or None."""
    try:
        from scanstation.pdf import _jbig2_mq
    except ImportError:  # a source tree nobody built: every stencil stays CCITT G4
        return None
    return _jbig2_mq.code


_code = _compiled()
# Whether this install can code JBIG2 at all (tests require it; the station falls back to CCITT G4).
AVAILABLE = _code is not None

# Template 0's adaptive pixels at their nominal places (T.88 6.2.5.3): (x, y) offsets of A1..A4.  The C coder
# builds its contexts with these; they are written into the region's header for the decoder.
_AT = ((3, -1), (-3, -1), (2, -2), (-2, -2))
_SEGMENT_PAGE_INFO = 48
_SEGMENT_LOSSLESS_GENERIC = 39  # immediate lossless generic region (T.88 7.3)


class EncodeOverflow(Exception):
    """The coded image would not fit its raw bits (incompressible noise), or this install has no coder: the
    caller stores the image otherwise."""


def _segment(number: int, kind: int, data: bytes) -> bytes:
    # T.88 7.2: number; flags (type, 1-byte page association); no referred-to segments; page 1; data length.
    return struct.pack(">IBBBI", number, kind, 0, 1, len(data)) + data


def generic_region(image: np.ndarray) -> bytes:
    """``image`` (2-D, non-zero = black) as an embedded JBIG2 stream for ``/Filter /JBIG2Decode`` (no globals).

    Decoded by a PDF reader, black comes out as 0, as it does from a CCITT stream with ``BlackIs1 false``.
    Raises EncodeOverflow for the (pathological) image whose code would outgrow an uncompressed page.
    """
    h, w = image.shape
    if h == 0 or w == 0:
        raise ValueError("an empty image has no JBIG2 region")
    if _code is None:
        raise EncodeOverflow("no JBIG2 coder in this install (scanstation/pdf/_jbig2_mq.c was not compiled)")
    data = _code(np.ascontiguousarray(image != 0, dtype=np.uint8), h, w)
    if data is None:
        raise EncodeOverflow(f"{w}x{h} image: JBIG2 code larger than the raw bits")
    # Page information (T.88 7.4.8): size, unknown resolution, flags "eventually lossless", no striping.
    page = struct.pack(">IIIIBH", w, h, 0, 0, 0x01, 0)
    # Region information (7.4.1): whole page at (0, 0), OR; generic region flags: template 0, TPGDON, not MMR;
    # then the four adaptive pixels.
    at = b"".join(struct.pack(">bb", x, y) for x, y in _AT)
    region = struct.pack(">IIIIB", w, h, 0, 0, 0) + bytes([0x08]) + at + data
    return _segment(0, _SEGMENT_PAGE_INFO, page) + _segment(1, _SEGMENT_LOSSLESS_GENERIC, region)


# Segment types that code pixels one by one, or say where the page is: what a lossless generic stream holds.
# Everything else (symbol dictionaries and text regions, patterns and halftones, refinements) draws a pixel
# from somewhere other than its own code, which is what a record must never do.
GENERIC_SEGMENT_TYPES = frozenset({36, 38, 39, 48, 49, 50, 51, 62})


def segment_types(stream: bytes) -> list[int]:
    """The types of the segments in an embedded JBIG2 stream (T.88 7.2 headers, data skipped), in order.

    For checks: a stream of only GENERIC_SEGMENT_TYPES substitutes no symbol.  Raises ValueError on a stream
    that does not parse (a header past the end, a segment of unknown length)."""
    types: list[int] = []
    pos = 0
    while pos < len(stream):
        if pos + 6 > len(stream):
            raise ValueError(f"JBIG2 segment header cut short at byte {pos}")
        number = struct.unpack_from(">I", stream, pos)[0]
        flags = stream[pos + 4]
        referred = stream[pos + 5] >> 5
        pos += 6
        if referred == 7:  # long form: a 29-bit count, then one retain bit per segment and itself
            count = struct.unpack_from(">I", stream, pos - 1)[0] & 0x1FFFFFFF
            pos += 3 + (count + 8) // 8
        else:
            count = referred
        pos += count * (1 if number <= 256 else 2 if number <= 65536 else 4)
        pos += 4 if flags & 0x40 else 1
        if pos + 4 > len(stream):
            raise ValueError(f"JBIG2 segment {number} header cut short")
        length = struct.unpack_from(">I", stream, pos)[0]
        pos += 4
        if length == 0xFFFFFFFF or pos + length > len(stream):
            raise ValueError(f"JBIG2 segment {number}: data length {length} does not fit the stream")
        types.append(flags & 0x3F)
        pos += length
    return types

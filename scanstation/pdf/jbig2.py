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
The MQ coder's inner loop is compiled by numba: in Python a page's 8.7 million pixels would take minutes.
"""

from __future__ import annotations

import struct

import numpy as np
from numba import njit

# T.88 table E.1: Qe, the next state after an MPS, after an LPS, and whether an LPS switches the MPS' sense.
_QE = np.array([
    0x5601, 0x3401, 0x1801, 0x0AC1, 0x0521, 0x0221, 0x5601, 0x5401, 0x4801, 0x3801, 0x3001, 0x2401,
    0x1C01, 0x1601, 0x5601, 0x5401, 0x5101, 0x4801, 0x3801, 0x3401, 0x3001, 0x2801, 0x2401, 0x2201,
    0x1C01, 0x1801, 0x1601, 0x1401, 0x1201, 0x1101, 0x0AC1, 0x09C1, 0x08A1, 0x0521, 0x0441, 0x02A1,
    0x0221, 0x0141, 0x0111, 0x0085, 0x0049, 0x0025, 0x0015, 0x0009, 0x0005, 0x0001, 0x5601], np.int64)
_NMPS = np.array([
    1, 2, 3, 4, 5, 38, 7, 8, 9, 10, 11, 12, 13, 29, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24,
    25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 45, 46], np.int64)
_NLPS = np.array([
    1, 6, 9, 12, 29, 33, 6, 14, 14, 14, 17, 18, 20, 21, 14, 14, 15, 16, 17, 18, 19, 19, 20, 21,
    22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 46], np.int64)
_SWITCH = np.zeros(47, np.int64)
_SWITCH[[0, 6, 14]] = 1

# Template 0's adaptive pixels at their nominal places (T.88 6.2.5.3): (x, y) offsets of A1..A4.
_AT = ((3, -1), (-3, -1), (2, -2), (-2, -2))
_TPGDON_CONTEXT = 0x9B25  # the context of the "row as the one above" bit, template 0 (T.88 6.2.5.7)
_SEGMENT_PAGE_INFO = 48
_SEGMENT_LOSSLESS_GENERIC = 39  # immediate lossless generic region (T.88 7.3)


class EncodeOverflow(Exception):
    """The coded image would not fit its buffer: only a pathological image; the caller stores it otherwise."""


@njit(cache=False, nogil=True)
def _byteout(out: np.ndarray, bp: int, c: int) -> tuple[int, int, int]:
    """T.88 E.2.6 BYTEOUT; returns (bp, c, ct).  out[bp] is B; bp == -1 is the virtual byte before the data."""
    b = out[bp] if bp >= 0 else 0
    if b == 0xFF:
        bp += 1
        out[bp] = c >> 20
        return bp, c & 0xFFFFF, 7
    if c < 0x8000000:
        bp += 1
        out[bp] = c >> 19
        return bp, c & 0x7FFFF, 8
    b += 1  # the carry into the byte already out
    out[bp] = b
    if b == 0xFF:
        c &= 0x7FFFFFF
        bp += 1
        out[bp] = c >> 20
        return bp, c & 0xFFFFF, 7
    bp += 1
    out[bp] = c >> 19
    return bp, c & 0x7FFFF, 8


@njit(cache=False, nogil=True)
def _code(bits: np.ndarray, out: np.ndarray, qe: np.ndarray, nmps: np.ndarray, nlps: np.ndarray,
          switch: np.ndarray) -> int:
    """Code ``bits`` (rows padded: 2 zero rows above, 4 zero columns each side) as a template-0 generic region
    with TPGDON; returns the number of bytes written to ``out``, or -1 if it would not fit."""
    hp, wp = bits.shape
    w = wp - 8
    index = np.zeros(65536, np.int64)  # each context's state in the table
    mps = np.zeros(65536, np.int64)
    a, c, ct, bp = 0x8000, 0, 12, -1
    limit = out.shape[0] - 8
    ltp = 0
    for y in range(2, hp):
        typical = 1
        for x in range(4, 4 + w):
            if bits[y, x] != bits[y - 1, x]:
                typical = 0
                break
        # One pass codes the "typical row" bit (context 0x9B25), then, unless the row is typical, its pixels.
        # The context slides along the row: c0 holds the row's last 4 pixels, c1 the row above's 7 around x,
        # c2 the row above that's 5; bits in the order of T.88 figure 3 as decoders build it (x-1 lowest).
        npix = w if typical == 0 else 0
        r0 = bits[y]
        r1 = bits[y - 1]
        r2 = bits[y - 2]
        c0 = 0
        c1 = (r1[4] << 2) | (r1[5] << 1) | r1[6]  # x-3..x+2 for x = 4, before the step (x-3 is padding)
        c2 = (r2[4] << 1) | r2[5]  # x-2..x+1 likewise
        for k in range(-1, npix):
            if k < 0:
                cx = _TPGDON_CONTEXT
                d = typical ^ ltp
                ltp = typical
            else:
                x = k + 4
                c1 = ((c1 << 1) | r1[x + 3]) & 0x7F
                c2 = ((c2 << 1) | r2[x + 2]) & 0x1F
                cx = c0 | (c1 << 4) | (c2 << 11)
                d = r0[x]
                c0 = ((c0 << 1) | d) & 0xF
            i = index[cx]
            q = qe[i]
            a -= q
            if d == mps[cx]:  # CODEMPS (E.2.4)
                if a & 0x8000 == 0:
                    if a < q:
                        a = q
                    else:
                        c += q
                    index[cx] = nmps[i]
                else:
                    c += q
                    continue
            else:  # CODELPS (E.2.3)
                if a < q:
                    c += q
                else:
                    a = q
                if switch[i] == 1:
                    mps[cx] = 1 - mps[cx]
                index[cx] = nlps[i]
            while True:  # RENORME (E.2.5)
                a <<= 1
                c <<= 1
                ct -= 1
                if ct == 0:
                    if bp >= limit:
                        return -1
                    bp, c, ct = _byteout(out, bp, c)
                if a & 0x8000 != 0:
                    break
    # FLUSH (E.2.9): SETBITS, two bytes out, then the 0xFF 0xAC end marker.
    temp = c + a
    c |= 0xFFFF
    if c >= temp:
        c -= 0x8000
    c <<= ct
    bp, c, ct = _byteout(out, bp, c)
    c <<= ct
    bp, c, ct = _byteout(out, bp, c)
    if bp < 0 or out[bp] != 0xFF:
        bp += 1
        out[bp] = 0xFF
    bp += 1
    out[bp] = 0xAC
    return bp + 1


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
    padded = np.zeros((h + 2, w + 8), np.int8)  # signed: numba would type uint8 with int64 as float
    padded[2:, 4:4 + w] = image != 0
    # An uncompressed page is h*w/8 bytes; a code larger than that (plus slack) is not worth storing.
    out = np.zeros(h * w // 8 + 4096, np.uint8)
    n = _code(padded, out, _QE, _NMPS, _NLPS, _SWITCH)
    if n < 0:
        raise EncodeOverflow(f"{w}x{h} image: JBIG2 code larger than the raw bits")
    # Page information (T.88 7.4.8): size, unknown resolution, flags "eventually lossless", no striping.
    page = struct.pack(">IIIIBH", w, h, 0, 0, 0x01, 0)
    # Region information (7.4.1): whole page at (0, 0), OR; generic region flags: template 0, TPGDON, not MMR;
    # then the four adaptive pixels.
    at = b"".join(struct.pack(">bb", x, y) for x, y in _AT)
    region = struct.pack(">IIIIB", w, h, 0, 0, 0) + bytes([0x08]) + at + out[:n].tobytes()
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

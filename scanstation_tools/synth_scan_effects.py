"""Turning a drawn sheet into a scan: paper and ink colours, bleed-through from the other side, sensor noise and
dust, the sheet's skew and position on the glass, the dark scanner lid around it, and the fixed B/W threshold.
"""

from __future__ import annotations

import math
import random

import cv2
import numpy as np
from PIL import Image, ImageDraw

from scanstation_tools.synth_drawing import Sheet, smooth_field

# Ink colours (RGB).  Grayscale output uses their luma, so blue ballpoint ends up mid-dark and a
# violet rubber stamp lighter than print, as on a real grayscale scan.
_PRINT_RGB = (24, 24, 28)
_PEN_RGBS = ((28, 48, 150), (20, 30, 95), (45, 45, 52))
_STAMP_RGBS = ((112, 58, 168), (60, 70, 170))
_PAPER_RGB = (250, 248, 241)
BW_THRESHOLD = 140  # a scanner's fixed B/W threshold: keeps pen and stamps, drops faint bleed-through


def _luma(rgb: tuple[int, int, int]) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def compose(
    sheet: Sheet,
    mode: str,
    rng: random.Random,
    nrng: np.random.Generator,
    blank: bool,
    inks: dict[str, tuple[int, int, int]] | None = None,
) -> np.ndarray:
    """Paper with mild texture, multiplied by each ink layer (subtractive, like ink on paper).

    Returns float32 H x W x C (C = 3 for ``mode`` RGB, else 1).  Each layer's factor comes from a 256-entry
    lookup table indexed by its coverage mask: one pass per layer instead of several.  ``inks``, if given,
    receives the colour each layer ("print", "pen", "stamp") shows where fully covered, on white paper.
    """
    h, w = sheet.h, sheet.w
    rgb = mode == "RGB"
    paper_level = rng.uniform(0.96, 1.0)
    paper = np.array(_PAPER_RGB if rgb else (_luma(_PAPER_RGB),), dtype=np.float32) * paper_level
    texture = smooth_field(nrng, h, w, 24, 0.005)
    texture += 1.0
    img = np.empty((h, w, len(paper)), dtype=np.float32)
    for ch, level in enumerate(paper):
        np.multiply(texture, level, out=img[:, :, ch])
    if blank:
        return img
    pen = rng.choice(_PEN_RGBS)
    stamp = rng.choice(_STAMP_RGBS)
    coverage = np.arange(256, dtype=np.float32)[:, None] / 255.0
    for name, mask_img, color, strength in (
        ("print", sheet.print_mask, _PRINT_RGB, rng.uniform(0.9, 1.0)),
        ("pen", sheet.pen_mask, pen, rng.uniform(0.8, 0.95)),
        ("stamp", sheet.stamp_mask, stamp, 1.0),
    ):
        if inks is not None:
            inks[name] = (
                round(255 - strength * (255 - color[0])),
                round(255 - strength * (255 - color[1])),
                round(255 - strength * (255 - color[2])),
            )
        bbox = mask_img.getbbox()
        if bbox is None:
            continue
        x0, y0, x1, y1 = bbox
        c = np.array(color if rgb else (_luma(color),), dtype=np.float32) / 255.0
        lut = (1.0 - coverage * strength * (1.0 - c)[None, :]).reshape(1, 256, -1)  # (1, 256, C)
        mask = np.asarray(mask_img.crop(bbox))
        if rgb:
            mask = cv2.merge([mask, mask, mask])
        factor = cv2.LUT(mask, lut)  # cv2.LUT keeps the table's float32 depth
        img[y0:y1, x0:x1] *= factor.reshape(y1 - y0, x1 - x0, -1)
    return img


def bleed(img: np.ndarray, back: Image.Image, rng: random.Random) -> None:
    """Faint, blurred, mirrored content of the other side of the sheet showing through (in place)."""
    h, w = img.shape[:2]
    mirrored = np.asarray(back.transpose(Image.Transpose.FLIP_LEFT_RIGHT), dtype=np.float32) / 255.0
    a = cv2.resize(cv2.GaussianBlur(mirrored, (0, 0), 1.2), (w, h), interpolation=cv2.INTER_LINEAR)
    img *= (1.0 - rng.uniform(0.05, 0.10) * a)[:, :, None]


def add_noise(img: np.ndarray, strength: float, nrng: np.random.Generator) -> None:
    """Sensor noise (gaussian) plus dust specks and dropouts (salt and pepper), in place."""
    if strength <= 0:
        return
    h, w = img.shape[:2]
    g = nrng.standard_normal((h, w), dtype=np.float32)
    g *= 14.0 * strength
    img += g[:, :, None]
    n = int(h * w * 4e-4 * strength)
    ys, xs = nrng.integers(0, h, n), nrng.integers(0, w, n)
    dark = nrng.random(n) < 0.6
    img[ys[dark], xs[dark]] = nrng.uniform(20, 120, int(dark.sum())).astype(np.float32)[:, None]
    img[ys[~dark], xs[~dark]] = 255.0
    # A few 2x2 specks: real dust is bigger than one sensor pixel but still well under 0.3 mm.
    m = n // 10
    ys, xs = nrng.integers(0, h - 1, m), nrng.integers(0, w - 1, m)
    for dy in (0, 1):
        for dx in (0, 1):
            img[ys + dy, xs + dx] = np.minimum(img[ys + dy, xs + dx], 90.0)


def place(
    img: np.ndarray,
    angle: float,
    shift: tuple[float, float],
    content: tuple[int, int, int, int] | None,
    dpi: int,
) -> tuple[np.ndarray, list[tuple[float, float]], np.ndarray | None]:
    """Put the sheet on the scanner glass: rotate counter-clockwise about the centre and shift.

    Same geometry as Pillow's ``Image.rotate(angle, expand=False, fillcolor=255)`` (plus the shift),
    done by one bicubic ``cv2.warpAffine`` because it is several times faster.  If the content's
    corners would leave the frame the sheet is shrunk slightly, so nothing printed is cut.  Returns
    the uint8 image, the sheet's outline in output coordinates, and the 2 x 3 forward map (None when the
    sheet lies square and unmoved) so that ground truth can follow the pixels (:func:`warp_region`).
    """
    h, w = img.shape[:2]
    cx, cy = w / 2.0, h / 2.0
    t = math.radians(angle)
    cos_t, sin_t = math.cos(t), math.sin(t)
    sx, sy = shift

    def fwd(x: float, y: float) -> tuple[float, float]:
        # Screen rotation CCW with y down: x' = x cos + y sin, y' = -x sin + y cos.
        return x * cos_t + y * sin_t, -x * sin_t + y * cos_t

    scale = 1.0
    if content is not None:
        limit_x, limit_y = cx - 1.5 * dpi / 25.4, cy - 1.5 * dpi / 25.4
        x0, y0, x1, y1 = content
        for px_, py_ in ((x0, y0), (x1, y0), (x0, y1), (x1, y1)):
            qx, qy = fwd(px_ - cx, py_ - cy)
            if qx > 0:
                scale = min(scale, (limit_x - sx) / qx)
            elif qx < 0:
                scale = min(scale, (limit_x + sx) / -qx)
            if qy > 0:
                scale = min(scale, (limit_y - sy) / qy)
            elif qy < 0:
                scale = min(scale, (limit_y + sy) / -qy)
    outline = []
    for px_, py_ in ((0, 0), (w, 0), (w, h), (0, h)):
        qx, qy = fwd(px_ - cx, py_ - cy)
        outline.append((cx + scale * qx + sx, cy + scale * qy + sy))
    if angle == 0.0 and shift == (0.0, 0.0) and scale == 1.0:
        return img, outline, None
    # Forward map (input -> output) about the centre, then the shift.
    m = np.array(
        [
            [scale * cos_t, scale * sin_t, 0.0],
            [-scale * sin_t, scale * cos_t, 0.0],
        ]
    )
    m[0, 2] = cx + sx - m[0, 0] * cx - m[0, 1] * cy
    m[1, 2] = cy + sy - m[1, 0] * cx - m[1, 1] * cy
    white = (255, 255, 255) if img.ndim == 3 and img.shape[2] == 3 else 255
    placed = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT, borderValue=white)
    return placed, outline, m


Box = tuple[int, int, int, int]


def warp_region(
    box: Box, mask: np.ndarray | None, m: np.ndarray, w: int, h: int
) -> tuple[Box, np.ndarray | None] | None:
    """A region (box, box-sized bool mask or None) moved by the forward map ``m`` of :func:`place`.

    The box becomes the bounding box of the moved corners, clipped to the w x h page; the mask is warped with
    the same map (bilinear, kept where at least half covered), so it marks the same ink pixels as the page.
    None if the region left the page.
    """
    x0, y0, x1, y1 = box
    corners = np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], dtype=np.float64)
    moved = corners @ m[:, :2].T + m[:, 2]
    nx0, ny0 = max(0, math.floor(moved[:, 0].min())), max(0, math.floor(moved[:, 1].min()))
    nx1, ny1 = min(w, math.ceil(moved[:, 0].max())), min(h, math.ceil(moved[:, 1].max()))
    if nx1 <= nx0 or ny1 <= ny0:
        return None
    if mask is None:
        return (nx0, ny0, nx1, ny1), None
    # The same map for box-local coordinates: shift the input origin to (x0, y0), the output's to (nx0, ny0).
    local = m.copy()
    local[:, 2] = m[:, 2] + m[:, :2] @ np.array([x0, y0], dtype=np.float64) - np.array([nx0, ny0], dtype=np.float64)
    # 8-bit, not float: a page-wide mask (the form's pen layer) warps four times faster.
    warped = cv2.warpAffine(
        mask.view(np.uint8) * np.uint8(255), local, (nx1 - nx0, ny1 - ny0), flags=cv2.INTER_LINEAR, borderValue=0
    )
    return (nx0, ny0, nx1, ny1), warped >= 128


def turn_region(box: Box, mask: np.ndarray | None, quarter_turns: int, w: int, h: int) -> tuple[Box, np.ndarray | None]:
    """A region of a w x h page turned counter-clockwise as ``np.rot90(page, quarter_turns)`` turns the page."""
    for _ in range(quarter_turns % 4):
        x0, y0, x1, y1 = box
        # One counter-clockwise turn: pixel (x, y) goes to (y, w - 1 - x); the page becomes h x w.
        box = (y0, w - x1, y1, w - x0)
        mask = None if mask is None else np.rot90(mask)
        w, h = h, w
    return box, None if mask is None else np.ascontiguousarray(mask)


def border_shift(rng: random.Random, w: int, h: int) -> tuple[float, float]:
    """Where the sheet lies off the scan window's corner: the uncovered strips become dark bands."""
    while True:
        kx, ky = rng.choice((-1, 0, 0, 1)), rng.choice((-1, 0, 0, 1))
        if kx or ky:
            break
    return kx * rng.uniform(0.006, 0.03) * w, ky * rng.uniform(0.006, 0.03) * h


def dark_border(
    img: np.ndarray, outline: list[tuple[float, float]], rng: random.Random, nrng: np.random.Generator
) -> np.ndarray:
    """Paint the scan window outside the sheet dark, as a black scanner lid shows it (uint8 in, out)."""
    h, w = img.shape[:2]
    sheet = Image.new("L", (w, h), 0)
    ImageDraw.Draw(sheet).polygon(outline, fill=255)
    # A slightly soft paper edge (lid shadow) instead of a perfect step.
    alpha8 = 255 - cv2.blur(np.asarray(sheet), (5, 5))
    idx = np.flatnonzero(alpha8)
    if idx.size == 0:
        return img
    out = np.ascontiguousarray(img).copy()
    flat = out.reshape(h * w, -1)
    a = alpha8.reshape(-1)[idx].astype(np.float32)[:, None] / 255.0
    lid = rng.uniform(12, 55) + nrng.normal(0.0, 4.0, size=(idx.size, 1)).astype(np.float32)
    mixed = flat[idx].astype(np.float32) * (1.0 - a) + lid * a
    flat[idx] = np.clip(mixed, 0, 255).astype(np.uint8)
    return out

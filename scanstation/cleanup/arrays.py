"""Page images as 2-D uint8 grayscale arrays and back, quarter turns and deskewing.

The measurements live in :mod:`scanstation.cleanup.skew`, :mod:`scanstation.cleanup.orientation` and
:mod:`scanstation.cleanup.blank` (dark scanner borders: :mod:`scanstation.cleanup.borders`); skew, orientation and
``is_blank`` are re-exported here for the page pipeline.  The public API for callers outside the core
(acceptance checks, the shared peer benchmarks) is :mod:`scanstation.imaging`.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from scanstation.cleanup.blank import is_blank
from scanstation.cleanup.orientation import estimate_orientation
from scanstation.cleanup.skew import estimate_skew

__all__ = [
    "deskew",
    "estimate_orientation",
    "estimate_skew",
    "from_array",
    "is_blank",
    "rotate_quarter",
    "to_gray",
]


def from_array(arr: np.ndarray, mode: str, dpi: int) -> Image.Image:
    """An analysed/corrected array back as a page image: RGB or grey, thresholded to 1-bit if ``mode`` is "1"
    (bitonal scans stay bitonal after the one resampling), with its resolution recorded."""
    out = Image.fromarray(np.ascontiguousarray(arr), "RGB" if arr.ndim == 3 else "L")
    if mode == "1":
        out = out.point(lambda v: 255 if v >= 128 else 0).convert("1", dither=Image.Dither.NONE)
    out.info["dpi"] = (dpi, dpi)
    return out


def to_gray(img: Image.Image) -> np.ndarray:
    """A C-contiguous uint8 grayscale copy of ``img`` (1-bit, palette, RGB(A), 16-bit all accepted)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        return np.ascontiguousarray(np.clip(arr * (255.0 / hi), 0, 255).round().astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Transparent areas are paper, not black.
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    gray = img if img.mode == "L" else img.convert("L")
    return np.array(gray, dtype=np.uint8, copy=True, order="C")


def rotate_quarter(gray: np.ndarray, ccw_quarter: int) -> np.ndarray:
    """Rotate counter-clockwise by ``ccw_quarter`` degrees (a multiple of 90), exactly (no resampling)."""
    if ccw_quarter % 90:
        raise ValueError(f"quarter turns only, got {ccw_quarter}")
    return np.ascontiguousarray(np.rot90(gray, (ccw_quarter // 90) % 4))


def deskew(gray: np.ndarray, angle: float, *, linear: bool = False) -> np.ndarray:
    """Straighten content that is rotated ``angle`` degrees counter-clockwise (one cubic resampling).

    Same size, white where the turned page does not reach.  Also accepts H x W x 3 colour arrays, so a
    colour capture can be corrected with the angle measured on its grey copy.  ``linear`` resamples
    linearly, three times faster: for an image that is thresholded next (the copy tesseract reads), where
    cubic's sharper edges do not survive the threshold anyway.
    """
    if angle == 0.0:
        return gray.copy()
    h, w = gray.shape[:2]
    # OpenCV's positive angle is counter-clockwise too, so -angle turns the content back.
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), -angle, 1.0)
    white = (255, 255, 255) if gray.ndim == 3 else 255
    flags = cv2.INTER_LINEAR if linear else cv2.INTER_CUBIC
    return cv2.warpAffine(gray, m, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=white)

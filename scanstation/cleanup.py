"""Page analysis and correction: orientation, skew, borders, blank detection -> cleaned image and flags."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from scanstation import imaging

# Below this confidence the orientation is applied but the page is flagged for the supervisor:
# a silent wrong guess (a page turned 180°) is the classic failure of auto-rotation.
ORIENTATION_MIN_CONFIDENCE = 0.6
# Skew smaller than this is left alone: resampling costs sharpness for no visible gain.
SKEW_MIN_DEGREES = 0.1
SKEW_MAX_CORRECTABLE = 15.0


@dataclass(slots=True)
class CleanResult:
    image: Image.Image
    analysis: dict[str, Any] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)

    @property
    def blank(self) -> bool:
        return bool(self.analysis.get("blank"))


def encode_png(image: Image.Image, compress_level: int = 1) -> bytes:
    """Lossless PNG in memory; level 1 because capture speed matters more than a few percent of size."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=compress_level, dpi=image.info.get("dpi", (300, 300)))
    return buf.getvalue()


def decode_png(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def _apply(arr: np.ndarray, quarter: int, angle: float | None, box: tuple[int, int, int, int] | None) -> np.ndarray:
    if quarter:
        # content turned CCW by q: turning the array CW by q (k = -q/90) puts it upright; exact, no resampling
        arr = np.rot90(arr, k=-(quarter // 90))
    if angle is not None:
        arr = imaging.deskew(arr, angle)
    if box is not None:
        x0, y0, x1, y1 = box
        arr = arr[y0:y1, x0:x1]
    return np.ascontiguousarray(arr)


def clean_page(image: Image.Image, dpi: int) -> CleanResult:
    """Analyse a captured page and return it upright, straight and cropped, with measurements and flags.

    Corrections are applied once each to the capture (a quarter turn is exact; a small rotation is a
    single resampling).  Blank pages are flagged, never dropped.
    """
    mode = image.mode
    gray = imaging.to_gray(image)
    analysis: dict[str, Any] = {"dpi": dpi, "input_size": [image.width, image.height]}
    flags: list[str] = []

    blank = imaging.is_blank(gray, dpi)
    analysis["blank"] = blank
    if blank:
        flags.append("blank")
        out = image.copy()
        out.info["dpi"] = (dpi, dpi)
        return CleanResult(out, analysis, flags)

    quarter, confidence = imaging.estimate_orientation(gray)
    analysis["orientation"] = {"rotation": quarter, "confidence": round(float(confidence), 3)}
    if confidence < ORIENTATION_MIN_CONFIDENCE:
        flags.append("orientation_uncertain")
    upright = np.rot90(gray, k=-(quarter // 90)) if quarter else gray

    skew = imaging.estimate_skew(upright)
    analysis["skew"] = None if skew is None else round(float(skew), 3)
    angle: float | None = None
    if skew is not None and abs(skew) >= SKEW_MIN_DEGREES:
        if abs(skew) > SKEW_MAX_CORRECTABLE:
            flags.append("skew_uncorrectable")
        else:
            angle = float(skew)
    straight = imaging.deskew(upright, angle) if angle is not None else upright
    box = imaging.find_content_box(straight)
    analysis["content_box"] = list(box) if box is not None else None

    if mode == "RGB":
        arr = _apply(np.asarray(image), quarter, angle, box)
        out = Image.fromarray(arr, "RGB")
    else:
        arr = _apply(gray, quarter, angle, None)
        if box is not None:
            x0, y0, x1, y1 = box
            arr = arr[y0:y1, x0:x1]
        out = Image.fromarray(np.ascontiguousarray(arr), "L")
        if mode == "1":
            # keep bitonal scans bitonal: threshold after the (single) resampling
            out = out.point(lambda v: 255 if v >= 128 else 0).convert("1")
    out.info["dpi"] = (dpi, dpi)
    analysis["output_size"] = [out.width, out.height]
    return CleanResult(out, analysis, flags)

"""Page analysis and correction: blank?, borders, orientation, skew, quality -> cleaned image and flags."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from scanstation.cleanup import arrays as imaging
from scanstation.cleanup.blank import blank_score
from scanstation.cleanup.borders import clean_borders, find_borders
from scanstation.cleanup.quality import SKEW_MAX_CORRECTABLE, assess_page

# Below this confidence the orientation is applied but the page is flagged for the supervisor:
# a silent wrong guess (a page turned 180°) is the classic failure of auto-rotation.
ORIENTATION_MIN_CONFIDENCE = 0.6
# Skew smaller than this is left alone: resampling costs sharpness for no visible gain.
SKEW_MIN_DEGREES = 0.1


@dataclass(slots=True)
class CleanResult:
    image: Image.Image
    analysis: dict[str, Any] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)

    @property
    def blank(self) -> bool:
        return bool(self.analysis.get("blank", {}).get("blank"))


def encode_png(image: Image.Image, compress_level: int = 1) -> bytes:
    """Lossless PNG in memory; level 1 because capture speed matters more than a few percent of size."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=compress_level, dpi=image.info.get("dpi", (300, 300)))
    return buf.getvalue()


def decode_png(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def _as_array(image: Image.Image) -> np.ndarray:
    if image.mode == "RGB":
        return np.asarray(image)
    return imaging.to_gray(image)


def clean_page(image: Image.Image, dpi: int) -> CleanResult:
    """Analyse a captured page and return it upright and straight, borders cleaned, with evidence and flags.

    Order matters: borders and blankness are judged on the capture as received; quality on the
    upright page before any resampling (a resample would hide the traces of an enlarged low-resolution
    scan); then each correction is applied once (border painting, an exact quarter turn, one rotation).
    Blank pages are flagged and kept as captured, never dropped.  Nothing is cropped: the lid is painted
    white, so no content at the edge can be cut away.
    """
    mode = image.mode
    arr = _as_array(image)
    gray = arr if arr.ndim == 2 else imaging.to_gray(image)
    analysis: dict[str, Any] = {"dpi": dpi, "input_size": [image.width, image.height]}
    flags: list[str] = []

    borders = find_borders(gray, dpi)
    analysis["borders"] = {
        "dark_bands": list(borders.dark_bands), "punch_holes": len(borders.punch_holes),
        "content_box": list(borders.content_box),
    }
    blank = blank_score(arr, dpi, borders=borders)
    analysis["blank"] = {"blank": blank.blank, "ink_mm2": round(blank.ink_mm2, 2), "components": blank.components,
                         "reason": blank.reason}
    if blank.blank:
        flags.append("blank")
        out = image.copy()
        out.info["dpi"] = (dpi, dpi)
        return CleanResult(out, analysis, flags)

    quarter, confidence = imaging.estimate_orientation(gray)
    analysis["orientation"] = {"rotation": quarter, "confidence": round(float(confidence), 3)}
    if confidence < ORIENTATION_MIN_CONFIDENCE:
        flags.append("orientation_uncertain")
    k = -(quarter // 90)  # content turned CCW by q: turning the array CW by q puts it upright (exact)
    upright_gray = np.rot90(gray, k) if quarter else gray

    skew = imaging.estimate_skew(upright_gray)
    analysis["skew"] = None if skew is None else round(float(skew), 3)
    angle: float | None = None
    if skew is not None and SKEW_MIN_DEGREES <= abs(skew) <= SKEW_MAX_CORRECTABLE:
        angle = float(skew)

    upright_colour = None if arr.ndim == 2 else (np.rot90(arr, k) if quarter else arr)
    quality = assess_page(np.ascontiguousarray(upright_gray), dpi, skew=skew, content_box=None,
                          borders=borders.turned(k) if quarter else borders, blank=blank, colour=upright_colour)
    analysis["quality"] = [q.to_dict() for q in quality]
    flags.extend(q.code for q in quality if q.code not in flags)

    cleaned = clean_borders(arr, borders) if borders.has_borders else arr
    if quarter:
        cleaned = np.rot90(cleaned, k)
    if angle is not None:
        cleaned = imaging.deskew(np.ascontiguousarray(cleaned), angle)
    out = imaging.from_array(cleaned, mode, dpi)
    analysis["output_size"] = [out.width, out.height]
    return CleanResult(out, analysis, flags)

"""Colour error of a stored page in the regions whose colour carries meaning (stamps, ink, signatures, photos).

The bench compares a page as the station stores it (decoded) against the lossless cleaned page, region by
region, in CIE ΔE2000 (scikit-image's ``deltaE_ciede2000``): about 1 is a just-noticeable difference, 2-10 is
"the same ink, a little off", and a violet stamp gone grey or black is 30 and more.  Inks are compared only on
their own pixels (the region's mask), because paper between the strokes is what a compact encoding is meant
to flatten and would dilute the error; a photo has no mask and counts over its whole box.

Regions are usually :class:`scanstation_tools.synth.ColourRegion` (the synthetic generator's ground truth), but
anything with ``kind``, ``box`` and ``mask`` will do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image
from skimage.color import deltaE_ciede2000, rgb2lab

__all__ = ["Region", "RegionError", "mean_colour_error", "region_colour_error"]


class Region(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def box(self) -> tuple[int, int, int, int]: ...

    @property
    def mask(self) -> np.ndarray | None: ...


@dataclass(frozen=True)
class RegionError:
    """ΔE2000 between reference and stored over one region's pixels (``pixels`` of them; NaN if none)."""

    kind: str
    box: tuple[int, int, int, int]
    pixels: int
    mean: float
    p95: float
    max: float


def _rgb(image: Image.Image, name: str) -> np.ndarray:
    """uint8 H x W x 3; grey, bitonal and palette images become RGB (a grey stored page is a valid, if
    colourless, answer and should score as one)."""
    if image.mode not in ("RGB", "RGBA", "L", "LA", "1", "P"):
        raise ValueError(f"{name} image has mode {image.mode!r}; expected 8-bit grey or colour (L, 1, P, RGB)")
    return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))


def region_colour_error(reference: Image.Image, stored: Image.Image, regions: Iterable[Region]) -> list[RegionError]:
    """Per region, the ΔE2000 statistics of ``stored`` against ``reference`` (same size, any of L/1/P/RGB(A)).

    Raises ValueError naming the input when the images differ in size or a region does not fit the page or
    its mask does not fit its box.
    """
    if reference.size != stored.size:
        raise ValueError(
            f"stored image is {stored.size[0]}x{stored.size[1]} but the reference is "
            f"{reference.size[0]}x{reference.size[1]}: compare the page at the reference's size"
        )
    ref, got = _rgb(reference, "reference"), _rgb(stored, "stored")
    h, w = ref.shape[:2]
    out: list[RegionError] = []
    for i, r in enumerate(regions):
        x0, y0, x1, y1 = r.box
        if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            raise ValueError(f"region {i} ({r.kind}) box {r.box} is not inside the {w}x{h} page")
        mask = r.mask
        if mask is not None and mask.shape != (y1 - y0, x1 - x0):
            raise ValueError(f"region {i} ({r.kind}) mask is {mask.shape}, its box is {(y1 - y0, x1 - x0)}")
        a, b = ref[y0:y1, x0:x1], got[y0:y1, x0:x1]
        if mask is not None:
            # Only the ink pixels go through the conversion: a signature's box is mostly paper.
            a, b = a[mask], b[mask]
        a, b = a.reshape(-1, 1, 3), b.reshape(-1, 1, 3)
        if a.shape[0] == 0:
            out.append(RegionError(r.kind, r.box, 0, math.nan, math.nan, math.nan))
            continue
        de = deltaE_ciede2000(rgb2lab(a), rgb2lab(b)).ravel()
        out.append(
            RegionError(r.kind, r.box, int(de.size), float(de.mean()), float(np.percentile(de, 95)), float(de.max()))
        )
    return out


def mean_colour_error(errors: Sequence[RegionError]) -> float:
    """The page's colour error: the mean of its regions' means (each mark counts once, whatever its size);
    NaN when no region has pixels."""
    means = [e.mean for e in errors if e.pixels]
    return float(np.mean(means)) if means else math.nan

"""Deterministic generator of realistic bilingual (Hindi/English) ACR form pages for tests, demos and benches.

This module is the generator's public interface: what a page is to be (:class:`PageSpec`), what comes out
(:class:`SyntheticPage`), and the functions that render pages and files and write them out.  The work is done by
its siblings, in the order a page is made:

- ``synth_people``: the fake employee each seed stands for (names, ranks, units, districts);
- ``synth_forms``: what is printed and written on each page of the ACR file;
- ``synth_drawing``: fonts, the A4 sheet, handwriting, signatures, ticks and stamps;
- ``synth_colour``: optional colour marks with ground truth (stamps, ballpoint remarks and signatures, a photo);
- ``synth_scan_effects``: paper, ink, bleed-through, noise, skew, the dark scanner lid, the B/W threshold.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageChops

from scanstation_tools.synth_colour import (
    MARK_KINDS,
    PEN_INKS,
    STAMP_INKS,
    Mark,
    draw_marks,
    form_inks,
    mark_masks,
    paint_marks,
)
from scanstation_tools.synth_drawing import A4_MM, FONT_DIRS, TYPEFACES, Sheet, Typeface, find_font
from scanstation_tools.synth_forms import draw_content
from scanstation_tools.synth_people import SyntheticEmployee, employee_fields, synthetic_employee
from scanstation_tools.synth_scan_effects import (
    BW_THRESHOLD,
    add_noise,
    bleed,
    border_shift,
    compose,
    dark_border,
    place,
    turn_region,
    warp_region,
)

__all__ = [
    "A4_MM",
    "COLOUR_MARKS",
    "FONT_DIRS",
    "MARK_KINDS",
    "PEN_INKS",
    "STAMP_INKS",
    "ColourRegion",
    "Content",
    "Mode",
    "PageSpec",
    "SyntheticEmployee",
    "SyntheticPage",
    "find_font",
    "render_acr_file",
    "render_acr_page",
    "synthetic_employee",
    "write_pages",
]

Mode = Literal["L", "1", "RGB"]
# What a non-blank page carries: the form; a printed instructions sheet in one script only ("hindi",
# "english": for script-specific tests); or one isolated mark (to test blank detection).
Content = Literal["form", "hindi", "english", "signature", "line", "stamp"]
_CONTENTS = ("form", "hindi", "english", "signature", "line", "stamp")


@dataclass(frozen=True)
class PageSpec:
    """How to render one scanned page; every distortion is explicit so a test can name its case."""

    seed: int
    page_no: int = 1
    dpi: int = 300
    skew_deg: float = 0.0  # content rotated counter-clockwise by this angle (Pillow convention)
    rotation: int = 0  # 0/90/180/270: counter-clockwise quarter turn applied after everything else
    noise: float = 0.0  # 0..1 strength of scanner noise
    dark_border: bool = False
    blank: bool = False  # a blank back: paper, faint noise, optional bleed-through, no content
    bleed_through: bool = False
    mode: Mode = "L"
    content: Content = "form"
    # Colour marks with ground truth (SyntheticPage.colour_regions, which on any RGB page also holds the
    # form's own pen ink and stamps), drawn on top of the form; they need mode "RGB".  Blank pages carry
    # none (a back is blank).  A photo or a remark that finds no free room on a full page is left out;
    # stamps land partly over the print.
    stamps: int = 0  # rubber stamps: round or rectangular, violet, blue or red pad ink
    remarks: int = 0  # handwritten remarks (a few lines each) in ballpoint blue or black
    signatures: int = 0  # signatures drawn as pressure-varying pen paths, blue or black
    photo: bool = False  # a pasted passport photo

    @property
    def has_colour_marks(self) -> bool:
        return bool(self.stamps or self.remarks or self.signatures or self.photo)

    def __post_init__(self) -> None:
        if self.page_no < 1:
            raise ValueError(f"page_no must be >= 1, got {self.page_no}")
        if not 30 <= self.dpi <= 1200:
            raise ValueError(f"dpi must be within 30..1200, got {self.dpi}")
        if not -45.0 < self.skew_deg < 45.0:
            raise ValueError(f"skew_deg must be within (-45, 45), got {self.skew_deg}")
        if self.rotation not in (0, 90, 180, 270):
            raise ValueError(f"rotation must be 0, 90, 180 or 270, got {self.rotation}")
        if not 0.0 <= self.noise <= 1.0:
            raise ValueError(f"noise must be within 0..1, got {self.noise}")
        if self.mode not in ("L", "1", "RGB"):
            raise ValueError(f"mode must be 'L', '1' or 'RGB', got {self.mode!r}")
        if self.content not in _CONTENTS:
            raise ValueError(f"unknown content {self.content!r}")
        for name, limit in (("stamps", 6), ("remarks", 4), ("signatures", 4)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
                raise ValueError(f"{name} must be an int within 0..{limit}, got {value!r}")
        if self.has_colour_marks and self.mode != "RGB":
            raise ValueError(f"stamps, remarks, signatures and photo need mode 'RGB', got {self.mode!r}")

    def scan_key(self) -> str:
        """What seeds the scan effects: the spec as its repr read before the colour-mark fields existed
        (they are left out while at their defaults), so pages without marks keep their exact pixels."""
        parts = [
            f"{f.name}={getattr(self, f.name)!r}"
            for f in fields(self)
            if f.name not in _MARK_FIELDS or getattr(self, f.name) != f.default
        ]
        return f"{type(self).__qualname__}({', '.join(parts)})"


_MARK_FIELDS = frozenset({"stamps", "remarks", "signatures", "photo"})
# All four kinds of colour mark at once: ``PageSpec(seed=1, mode="RGB", **COLOUR_MARKS)``.
COLOUR_MARKS: dict[str, Any] = {"stamps": 2, "remarks": 1, "signatures": 1, "photo": True}


@dataclass(frozen=True, eq=False)  # identity equality: comparing masks elementwise has no single truth value
class ColourRegion:
    """Ground truth of one colour mark on a rendered page.

    ``origin`` says where it comes from: "mark", one of the PageSpec's colour marks (one region each); or
    "form", the form's own pen layer (kind "ink": handwriting, ticks and signatures together) or stamp layer
    (kind "stamp"), recorded on every RGB page.

    ``box`` is (x0, y0, x1, y1), end exclusive, in the final page's pixels (after skew, shift and rotation);
    ``mask`` (box-sized, bool) marks the pixels that show this ink's own colour (covered by it at least half and
    by no other ink much), moved with the page so it still marks them after skew; None for a photo, whose whole
    box counts (on a skewed page that box includes slivers of paper at the corners).  ``rgb`` is the nominal
    ink colour (for a photo its mean colour).  Scanner noise, bleed-through and paper tint are on top of it,
    so the page's pixels are near ``rgb``, not equal.
    """

    kind: str  # "stamp" | "ink" | "signature" | "photo"
    box: tuple[int, int, int, int]
    rgb: tuple[int, int, int]
    mask: np.ndarray | None
    origin: str = "mark"  # "mark" | "form"


@dataclass
class SyntheticPage:
    """A rendered page with its ground truth.

    ``text`` is the printed text (NFC), one line per printed line in reading order; cells of one table
    row and items sharing a baseline are joined by one space.  Handwriting, signatures and rubber
    stamps are not part of it (OCR of the printed parts is what the station indexes).

    ``handwriting`` is the text of the handwriting on the page (the remarks, grades and answers written
    in pen, the colour marks' remarks included; NFC, one line per written line, top to bottom), and
    ``reading_text`` the print and the handwriting together, line by line as a reader reads the page:
    the ground truth for measuring what an encoding keeps legible, where a reader that still reads a
    remark must not be counted wrong for it.  Signatures and stamps are in neither.
    """

    image: Image.Image
    text: str
    fields: dict[str, str]
    spec: PageSpec
    skew_deg: float
    rotation: int
    employee: SyntheticEmployee | None = None
    colour_regions: tuple[ColourRegion, ...] = ()
    handwriting: str = ""
    reading_text: str = ""


def _seed32(*parts: int | str) -> list[int]:
    """Entropy for numpy from a seed tuple (strings hashed stably, never with hash())."""
    out: list[int] = []
    for p in parts:
        if isinstance(p, str):
            out.extend(p.encode())
        else:
            out.extend(((p >> 32) & 0xFFFFFFFF, p & 0xFFFFFFFF) if p >= 0 else (1, (-p) & 0xFFFFFFFF))
    return out


def _typeface_for(seed: int) -> Typeface:
    return random.Random(f"acr-typeface:{seed}").choice(TYPEFACES)


def _content_sheet(spec: PageSpec, emp: SyntheticEmployee, dpi: int) -> Sheet:
    sheet = Sheet(dpi, _typeface_for(spec.seed))
    rng = random.Random(f"acr-content:{spec.seed}:{spec.page_no}:{spec.content}")
    nrng = np.random.default_rng(_seed32("content", spec.seed, spec.page_no, spec.content))
    draw_content(sheet, spec.content, spec.page_no, emp, rng, nrng)
    return sheet


def _marks(spec: PageSpec, emp: SyntheticEmployee, sheet: Sheet) -> list[Mark]:
    if spec.blank or not spec.has_colour_marks:
        return []
    # Their own generators, keyed like the content's: marks never change the form under them, and
    # distortions never move the marks.
    key = f"{spec.seed}:{spec.page_no}:{spec.content}:{spec.stamps}:{spec.remarks}:{spec.signatures}:{spec.photo}"
    rng = random.Random(f"acr-colour:{key}")
    nrng = np.random.default_rng(_seed32("colour", key))
    return draw_marks(
        sheet, emp, rng, nrng, stamps=spec.stamps, remarks=spec.remarks, signatures=spec.signatures, photo=spec.photo
    )


def render_acr_page(spec: PageSpec) -> SyntheticPage:
    """Render one page of the ACR file of employee ``spec.seed`` with the scanner effects of ``spec``."""
    emp = synthetic_employee(spec.seed)
    # Content randomness depends only on (seed, page, content) so distortions never move the text.
    sheet = Sheet(spec.dpi, _typeface_for(spec.seed)) if spec.blank else _content_sheet(spec, emp, spec.dpi)
    marks = _marks(spec, emp, sheet)
    # Rotation and output mode do not reseed the scan: a turned (or B/W) page is exactly the upright
    # page turned (or thresholded), which tests rely on.
    scan_key = replace(spec, rotation=0, mode="L" if not spec.has_colour_marks else "RGB").scan_key()
    rng = random.Random(f"acr-scan:{scan_key}")
    nrng = np.random.default_rng(_seed32("scan", scan_key))
    inks: dict[str, tuple[int, int, int]] = {}
    img = compose(sheet, spec.mode, rng, nrng, blank=spec.blank, inks=inks)
    if marks:
        paint_marks(img, marks)
    form_marks = form_inks(sheet, inks) if spec.mode == "RGB" and not spec.blank else []
    if spec.bleed_through:
        # A blank back shows its own front; a front shows the next page printed on its back.
        low_dpi = max(30, spec.dpi // 5)
        other = replace(spec, blank=False, content="form", page_no=spec.page_no if spec.blank else spec.page_no + 1)
        back = _content_sheet(other, emp, low_dpi)
        back_mask = ImageChops.lighter(ImageChops.lighter(back.print_mask, back.pen_mask), back.stamp_mask)
        bleed(img, back_mask, rng)
    add_noise(img, spec.noise if not spec.blank else max(spec.noise, 0.15), nrng)
    np.clip(img, 0, 255, out=img)
    arr = img.astype(np.uint8)
    if arr.shape[2] == 1:
        arr = arr[:, :, 0]
    shift = border_shift(rng, sheet.w, sheet.h) if spec.dark_border else (0.0, 0.0)
    content_box = None if spec.blank else _union(sheet.ink_bbox(), [m.box for m in marks])
    arr, outline, matrix = place(arr, spec.skew_deg, shift, content_box, spec.dpi)
    if spec.dark_border:
        arr = dark_border(arr, outline, rng, nrng)
    if spec.rotation:
        # np.rot90 turns counter-clockwise, as Image.Transpose.ROTATE_90 does: exact, no resampling.
        arr = np.ascontiguousarray(np.rot90(arr, spec.rotation // 90))
    im = Image.fromarray(arr, "RGB" if arr.ndim == 3 else "L")
    if spec.mode == "1":
        im = im.point(lambda v: 255 if v >= BW_THRESHOLD else 0).convert("1", dither=Image.Dither.NONE)
    im.info["dpi"] = (spec.dpi, spec.dpi)
    regions = _regions(sheet, marks, form_marks, matrix, spec.rotation)
    return SyntheticPage(
        image=im,
        text="" if spec.blank else sheet.printed_text(),
        fields=employee_fields(emp),
        spec=spec,
        skew_deg=spec.skew_deg,
        rotation=spec.rotation,
        employee=emp,
        colour_regions=regions,
        handwriting="" if spec.blank else sheet.handwritten_text(),
        reading_text="" if spec.blank else sheet.reading_text(),
    )


def _union(
    box: tuple[int, int, int, int] | None, more: list[tuple[int, int, int, int]]
) -> tuple[int, int, int, int] | None:
    """The bounding box of the form's ink and the marks (what skewing must keep on the page)."""
    boxes = ([box] if box is not None else []) + more
    if not boxes:
        return None
    return min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)


def _regions(
    sheet: Sheet, marks: list[Mark], form_marks: list[Mark], matrix: np.ndarray | None, rotation: int
) -> tuple[ColourRegion, ...]:
    """The marks' ground truth (the spec's marks first), moved as the page was: by the skew/shift map, then the
    quarter turns."""
    out: list[ColourRegion] = []
    every = marks + form_marks
    for i, (m, mask) in enumerate(zip(every, mark_masks(sheet, every), strict=True)):
        box: tuple[int, int, int, int] = m.box
        if matrix is not None:
            moved = warp_region(box, mask, matrix, sheet.w, sheet.h)
            if moved is None:
                continue
            box, mask = moved
        box, mask = turn_region(box, mask, rotation // 90, sheet.w, sheet.h)
        out.append(ColourRegion(m.kind, box, m.rgb, mask, "mark" if i < len(marks) else "form"))
    return tuple(out)


_SPEC_FIELDS = frozenset(f.name for f in fields(PageSpec)) - {"seed", "page_no", "blank"}


def render_acr_file(seed: int, n_pages: int, *, blank_backs: bool = False, **kw: Any) -> list[SyntheticPage]:
    """The pages of one ACR file of employee ``seed``: particulars, then assessment/review pages.

    ``n_pages`` counts printed pages; with ``blank_backs`` each is followed by its blank back (as a
    duplex scan delivers it, with bleed-through of the front).  ``kw`` are PageSpec fields applied
    to every page (dpi, skew_deg, rotation, noise, dark_border, bleed_through, mode, and the colour marks
    stamps, remarks, signatures, photo, which blank backs leave out).
    """
    if n_pages < 1:
        raise ValueError("n_pages must be >= 1")
    unknown = set(kw) - _SPEC_FIELDS
    if unknown:
        raise TypeError(f"unknown PageSpec field(s): {', '.join(sorted(unknown))}")
    pages: list[SyntheticPage] = []
    for p in range(1, n_pages + 1):
        pages.append(render_acr_page(PageSpec(seed=seed, page_no=p, **kw)))
        if blank_backs:
            back_kw = {**kw, "bleed_through": True}
            pages.append(render_acr_page(PageSpec(seed=seed, page_no=p, blank=True, **back_kw)))
    return pages


def write_pages(pages: list[SyntheticPage], out_dir: Path | str) -> list[Path]:
    """Write each page as PNG (with its dpi) plus a ``.gt.txt`` sidecar holding ``text``; returns image paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for i, page in enumerate(pages, start=1):
        path = out / f"page_{i:03d}.png"
        page.image.save(path, format="PNG", dpi=(page.spec.dpi, page.spec.dpi))
        path.with_suffix(".gt.txt").write_text(page.text + ("\n" if page.text else ""), encoding="utf-8")
        paths.append(path)
    return paths

"""Page OCR: one tesseract run per page (library worker or program) with per-page choices, and its result."""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import struct
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from scanstation.errors import InputError, OcrError
from scanstation.ocr import tesseract_program as tesseract

if TYPE_CHECKING:
    from PIL import Image

    from scanstation.ocr.strategy import PreparedPage
    from scanstation.ocr.tesseract_worker import TesseractWorker

# Pillow, numpy and OpenCV (scanstation.ocr.strategy) are imported where a page is read, not here: the
# CLI imports this module for its defaults on every command, and the station's parent never reads pages.

DEFAULT_LANG = "hin+eng"
DEFAULT_TIMEOUT = 120.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A page with this many letter-sized marks and lines of text should give some text.
_EMPTY_SUSPECT_MARKS = 200
Strategy = Literal["auto", "fixed"]
STRATEGIES: tuple[str, ...] = ("auto", "fixed")


@dataclass(frozen=True, slots=True)
class PageOcr:
    """OCR result of one page, entirely in memory."""

    text: str  # NFC (never NFKC: compatibility folding damages Devanagari)
    text_pdf: bytes  # tesseract's text-only PDF page, laid under the image by scanstation.pdf.searchable
    confidence: float | None  # mean word confidence 0-100, None if no words
    lang_used: str
    seconds: float
    plan: dict[str, Any] = field(default_factory=dict)  # what was chosen for the page and why


def _write_private(path: Path, data: bytes) -> None:
    # O_EXCL: never follow or reuse a file someone planted; 0600: only the station user may read it.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _write_pnm(path: Path, image: Image.Image) -> None:
    # Uncompressed PBM/PGM: nothing to encode here or to decode in tesseract, and it stays in RAM.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        image.save(f, format="PPM")


_LINE_END_HYPHEN = re.compile(r"(?<=[a-z])-[ \t]*\n[ \t]*(?=[a-z])")


def clean_text(text: str) -> str:
    """Recognised text as stored and searched: NFC, no trailing page break, hyphenated line ends joined.

    A lower-case word broken by a hyphen at the end of a line ("inhab-" / "ited") is joined, so that
    a search for the word finds it.  NFC only: NFKC would fold Devanagari and typographic characters.
    """
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").rstrip("\f\n ")
    text = _LINE_END_HYPHEN.sub("", text)
    return "\n".join(line.rstrip() for line in text.split("\n"))


def _plan_record(prepared: PreparedPage) -> dict[str, Any]:
    plan, geo, ev = prepared.plan, prepared.geometry, prepared.evidence
    return {
        "lang": plan.lang,
        "script": plan.script,
        "scale": plan.scale,
        "flatten": plan.flatten,
        "binarise": plan.binarise,
        "psm": plan.psm,
        "reasons": list(plan.reasons),
        "turn": geo.turn,
        "turn_checked": geo.turn_checked,
        "skew": round(geo.skew, 3),
        "borders": geo.borders_painted,
        "deva_share": ev.deva_share,
        "timings": {k: round(v, 4) for k, v in prepared.timings.items()},
    }


def _check_not_empty(text: str, prepared: PreparedPage, label: str) -> None:
    ev = prepared.evidence
    if not text.strip() and ev.components >= _EMPTY_SUSPECT_MARKS and ev.latin_lines + ev.deva_words >= 10:
        # Tesseract said nothing about a page full of letters: a broken model or a silent failure.
        raise OcrError(f"tesseract returned no text for {label}, a page with {ev.components} letter-like marks")


def ocr_prepared(
    prepared: PreparedPage,
    work_dir: Path,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    label: str = "page",
    tesseract_cmd: str | os.PathLike[str] | None = None,
    clock: Callable[[], float] = time.monotonic,
    confidence: bool = True,
) -> PageOcr:
    """Run tesseract once on a page prepared by :func:`scanstation.ocr.strategy.prepare_page`.

    The OCR image is written to ``work_dir`` only for the duration of the run and deleted in all cases.
    ``confidence`` False saves tesseract the word-confidence output (PageOcr.confidence is then None).
    Raises OcrError on timeout, crash, missing or empty output; ExternalToolError if tesseract or a
    language is missing.
    """
    start = clock()
    image_path = work_dir / f"ocr-{secrets.token_hex(8)}.pnm"
    try:
        try:
            _write_pnm(image_path, prepared.ocr_image)
        except OSError as e:
            # A full or missing RAM directory fails this page, not the station; it can be retried.
            raise OcrError(f"cannot stage {label} for OCR in {work_dir}: {e.strerror or e}") from e
        result = tesseract.recognise(
            image_path,
            work_dir,
            lang=prepared.plan.lang,
            psm=prepared.plan.psm,
            dpi=prepared.ocr_dpi,
            timeout=timeout,
            outputs=("txt", "pdf"),
            label=label,
            tesseract_cmd=tesseract_cmd,
            confidence=confidence,
        )
    finally:
        with contextlib.suppress(OSError):
            image_path.unlink(missing_ok=True)
    assert result.pdf is not None  # recognise() raises if the requested PDF is missing
    return _page_ocr(result.text, result.pdf, result.confidence, prepared, label, clock() - start)


def _page_ocr(
    raw: str, layer: bytes, confidence: float | None, prepared: PreparedPage, label: str, seconds: float
) -> PageOcr:
    """One page's result from tesseract's raw text: cleaned, checked not empty, timed with its analysis."""
    text = clean_text(raw)
    _check_not_empty(text, prepared, label)
    return PageOcr(
        text=text,
        text_pdf=layer,
        confidence=confidence,
        lang_used=prepared.plan.lang,
        seconds=round(seconds + sum(prepared.timings.values()), 3),
        plan=_plan_record(prepared),
    )


def ocr_prepared_in(
    worker: TesseractWorker,
    prepared: PreparedPage,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    label: str = "page",
    clock: Callable[[], float] = time.monotonic,
) -> PageOcr:
    """As :func:`ocr_prepared`, read by a long-lived worker (models loaded, the page sent in memory).

    Raises as :meth:`TesseractWorker.read`, and OcrError for an empty result on a page full of letters.
    """
    start = clock()
    image = prepared.ocr_image
    read = worker.read(
        image.tobytes(), image.mode, image.size, prepared.ocr_dpi, prepared.plan.lang, prepared.plan.psm,
        timeout=timeout, label=label,
    )
    return _page_ocr(read.text, read.pdf, read.confidence, prepared, label, clock() - start)


def _write_tiff(path: Path, image: Image.Image, dpi: int) -> None:
    # TIFF rather than PNM: it carries the resolution, which tesseract reads per image in a batch.
    data = bilevel_tiff(image, dpi) if image.mode == "1" else None
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        if data is not None:
            f.write(data)
        else:
            image.save(f, format="TIFF", dpi=(dpi, dpi))


def bilevel_tiff(image: Image.Image, dpi: int) -> bytes:
    """A 1-bit image as an uncompressed baseline TIFF (one strip, 1 = white), with its resolution.

    Pillow's TIFF writer takes 15 ms for an A4 page at 300 dpi, three times the time of packing the
    bits; most pages tesseract reads are 1-bit, so the difference is a few per cent of the OCR command.
    """
    if image.mode != "1":
        raise ValueError(f"bilevel_tiff needs a mode 1 image, not {image.mode}")
    width, height = image.size
    pixels = image.tobytes("raw", "1")  # rows padded to whole bytes, most significant bit first
    entries = [  # (tag, type, count, value): type 3 SHORT, 4 LONG, 5 RATIONAL (value: offset)
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, 1, 1),  # bits per sample
        (259, 3, 1, 1),  # no compression
        (262, 3, 1, 1),  # BlackIsZero: a set bit is white, as Pillow packs mode 1
        (273, 4, 1, 0),  # strip offset, filled in below
        (277, 3, 1, 1),  # samples per pixel
        (278, 4, 1, height),  # rows per strip: one strip
        (279, 4, 1, len(pixels)),
        (282, 5, 1, 0),  # x resolution, filled in below
        (283, 5, 1, 0),
        (296, 3, 1, 2),  # resolution unit: inch
    ]
    ifd_size = 2 + 12 * len(entries) + 4
    rationals = 8 + ifd_size
    data_offset = rationals + 16
    values = {273: data_offset, 282: rationals, 283: rationals + 8}
    out = bytearray(struct.pack("<2sHI", b"II", 42, 8))
    out += struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        value = values.get(tag, value)
        out += struct.pack("<HHI", tag, kind, count)
        out += struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
    out += struct.pack("<I", 0)  # no next IFD
    out += struct.pack("<IIII", max(1, dpi), 1, max(1, dpi), 1)
    out += pixels
    return bytes(out)


def _split_pdf(data: bytes, pages: int, label: str) -> list[bytes]:
    """One single-page PDF per page of tesseract's multi-page text-only PDF."""
    import pikepdf

    try:
        with pikepdf.open(io.BytesIO(data)) as src:
            if len(src.pages) != pages:
                raise OcrError(f"tesseract wrote {len(src.pages)} text layer pages for {pages} pages of {label}")
            out = []
            for page in src.pages:
                with pikepdf.new() as one:
                    one.pages.append(page)
                    buf = io.BytesIO()
                    one.save(buf)
                    out.append(buf.getvalue())
            return out
    except pikepdf.PdfError as e:
        raise OcrError(f"tesseract wrote a damaged PDF text layer for {label}: {e}") from e


def ocr_prepared_batch(
    prepared: Sequence[PreparedPage],
    work_dir: Path,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    labels: Sequence[str],
    tesseract_cmd: str | os.PathLike[str] | None = None,
    clock: Callable[[], float] = time.monotonic,
    warm: tesseract.WarmRun | None = None,
) -> list[PageOcr]:
    """Run tesseract once over several prepared pages that share a model, loading it once.

    Loading the models costs tesseract a tenth of a second or more per run, a tenth to a fifth of an
    A4 page; a document's pages are therefore read in batches.  All or nothing: any failure raises
    OcrError for the batch (the caller retries its pages one by one, so a bad page only fails itself).
    Each page's timeout is ``timeout``; the batch gets ``timeout`` times its length.  ``warm`` is a
    tesseract already started for the batch's model (see :class:`scanstation.ocr.tesseract_program.WarmRun`); it is
    used up either way.
    """
    if not prepared:
        return []
    if len(labels) != len(prepared):
        raise ValueError("one label per page")
    langs = {(p.plan.lang, p.plan.psm) for p in prepared}
    if len(langs) != 1:
        raise ValueError(f"a batch needs one model and page segmentation mode, got {sorted(langs)}")
    if warm is not None:
        try:
            if (warm.lang, warm.psm) not in langs:
                raise ValueError(f"the started tesseract reads {warm.lang}, the pages need {sorted(langs)}")
            return _read_batch(prepared, work_dir, timeout, labels, tesseract_cmd, clock, warm)
        finally:
            warm.abandon()  # a no-op once the run has finished
    if len(prepared) == 1:
        return [ocr_prepared(prepared[0], work_dir, timeout, label=labels[0], tesseract_cmd=tesseract_cmd,
                             clock=clock, confidence=False)]
    return _read_batch(prepared, work_dir, timeout, labels, tesseract_cmd, clock, None)


def _read_batch(
    prepared: Sequence[PreparedPage],
    work_dir: Path,
    timeout: float,
    labels: Sequence[str],
    tesseract_cmd: str | os.PathLike[str] | None,
    clock: Callable[[], float],
    warm: tesseract.WarmRun | None,
) -> list[PageOcr]:
    start = clock()
    name = labels[0] if len(labels) == 1 else f"{labels[0]} to {labels[-1]}"
    token = secrets.token_hex(8)
    paths = [work_dir / f"ocr-{token}-{i}.tif" for i in range(len(prepared))]
    listing = work_dir / f"ocr-{token}.txt"
    try:
        try:
            for path, page in zip(paths, prepared, strict=True):
                _write_tiff(path, page.ocr_image, page.ocr_dpi)
            if warm is None:
                _write_private(listing, "".join(f"{p.name}\n" for p in paths).encode())
        except OSError as e:
            raise OcrError(f"cannot stage {name} for OCR in {work_dir}: {e.strerror or e}") from e
        if warm is not None:
            result = warm.finish(paths, timeout * len(prepared), name)
        else:
            result = tesseract.recognise(
                listing,
                work_dir,
                lang=prepared[0].plan.lang,
                psm=prepared[0].plan.psm,
                dpi=None,
                timeout=timeout * len(prepared),
                outputs=("txt", "pdf"),
                label=name,
                tesseract_cmd=tesseract_cmd,
                confidence=False,
            )
    finally:
        for path in (*paths, listing):
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
    assert result.pdf is not None
    texts = unicodedata.normalize("NFC", result.text).split("\f")
    if len(texts) != len(prepared):
        raise OcrError(f"tesseract returned {len(texts)} page texts for the {len(prepared)} pages {name}")
    layers = _split_pdf(result.pdf, len(prepared), name)
    share = (clock() - start) / len(prepared)
    return [_page_ocr(raw, layer, None, page, label, share)
            for page, label, raw, layer in zip(prepared, labels, texts, layers, strict=True)]


def ocr_page(
    image_png: bytes,
    dpi: int,
    work_dir: Path,
    lang: str = DEFAULT_LANG,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    label: str = "page",
    psm: int = 3,
    tesseract_cmd: str | os.PathLike[str] | None = None,
    strategy: Strategy = "auto",
    worker: TesseractWorker | None = None,
) -> PageOcr:
    """OCR one (already cleaned: upright, straight) page given as PNG bytes; NFC text and text-only PDF.

    ``lang`` lists the languages the page may contain; with ``strategy="auto"`` the model is chosen
    for the page from them (see :mod:`scanstation.ocr.strategy`), with ``"fixed"`` it is used as given.
    ``worker`` reads the page with its models loaded (see scanstation.ocr.tesseract_worker); without one,
    the tesseract program is run for the page.
    Raises InputError for bytes that are not a PNG, OcrError/ExternalToolError as
    :func:`scanstation.ocr.tesseract_program.recognise`; WorkerUnavailable when the worker cannot use the library.
    """
    if not image_png.startswith(PNG_SIGNATURE):
        raise InputError(label, "page image for OCR is not a PNG")
    if dpi <= 0:
        raise InputError(label, f"invalid resolution {dpi} dpi")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}")
    from PIL import Image

    from scanstation.ocr.strategy import prepare_page

    image: Image.Image
    try:
        image = Image.open(io.BytesIO(image_png))
        image.load()
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise InputError(label, f"page image cannot be read: {e}") from e
    if image.mode not in ("1", "L", "RGB"):
        image = image.convert("RGB" if image.mode in ("P", "RGBA", "CMYK") else "L")
    installed = tesseract.installed_languages(tesseract_cmd)
    prepared = prepare_page(
        image, dpi, lang, installed, correct_geometry=False, fixed_lang=strategy == "fixed", psm=psm
    )
    if worker is not None:
        return ocr_prepared_in(worker, prepared, timeout, label=label)
    return ocr_prepared(prepared, work_dir, timeout, label=label, tesseract_cmd=tesseract_cmd)


# ---------------------------------------------------------------- worker side (runs in child processes)

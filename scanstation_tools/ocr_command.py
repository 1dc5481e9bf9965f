"""`scanstation ocr`: stand-alone OCR of ordinary files into a searchable PDF/A and a text sidecar.

The command: its parser, reading the input's pages, the run, and writing the outputs.  Its options are
:mod:`scanstation_tools.ocr_settings`; how the pages are prepared and shared out among tesseract workers is
:mod:`scanstation_tools.ocr_pipeline`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchformat.atomic import atomic_write
from scanstation.errors import InputError, OcrError
from scanstation.ocr import pages as ocr
from scanstation.ocr import tesseract_program as tesseract
from scanstation.ocr import tesseract_worker
from scanstation.vault.ramdir import RamDir, set_process_tempdir
from scanstation_tools.ocr_pipeline import PageResult, _LoadedPage, _Pipeline
from scanstation_tools.ocr_pipeline import _Ready as _Ready  # the pipeline's tests reach it through this module
from scanstation_tools.ocr_settings import OcrSettings

if TYPE_CHECKING:
    from scanstation.pdf.page_images import EncodedImage

# The CLI builds its parser, and so imports this module (and its ocr_pipeline and ocr_settings), for every
# command: numpy, OpenCV, Pillow and pikepdf are imported only when pages are read (scanstation.ocr.strategy,
# scanstation.pdf.searchable).

log = logging.getLogger("scanstation.ocr.pages")

DEFAULT_DPI = 300


@dataclass(slots=True)
class OcrRun:
    """What :func:`run_ocr` did."""

    pages: list[PageResult]
    seconds: float
    pdf_bytes: int

    @property
    def failed(self) -> list[PageResult]:
        return [p for p in self.pages if p.error is not None]


def _read_source(path: Path) -> bytes | None:
    """The file's bytes when it is a single PNG or JPEG picture whose encoding the PDF can reuse."""
    try:
        with path.open("rb") as f:
            head = f.read(8)
            if not (head.startswith(b"\x89PNG\r\n\x1a\n") or head.startswith(b"\xff\xd8\xff")):
                return None
            f.seek(0)
            return f.read()
    except OSError:
        return None


def _pdf_page_images(path: Path) -> Iterator[tuple[EncodedImage, float] | None]:
    import pikepdf

    from scanstation.pdf.page_images import embedded_page_image

    try:
        doc = pikepdf.open(path, attempt_recovery=False)
    except Exception:  # the loader reports a bad PDF properly; here it just means "nothing to reuse"
        while True:
            yield None
    with doc:
        for page in doc.pages:
            yield embedded_page_image(page)
    while True:
        yield None


def _loaded_pages(settings: OcrSettings, render_dir: Path) -> Iterator[_LoadedPage]:
    from drivers.image_loading import load_pages

    resolution = settings.dpi or DEFAULT_DPI
    with settings.input.open("rb") as f:
        head = f.read(8)
    embedded = _pdf_page_images(settings.input) if head.startswith(b"%PDF") else None
    for page in load_pages(settings.input, resolution, render_dir):
        loaded = _LoadedPage(page.page_number, page.label, page.image, settings.dpi or page.dpi)
        if embedded is not None:
            loaded.source = next(embedded)
        elif page.page_number == 1:
            # A one-picture PNG/JPEG file is its own page encoding (None for TIFF: re-encoded).
            loaded.source = _read_source(settings.input)
        yield loaded


def _languages(lang: str, tesseract_cmd: str | None) -> frozenset[str]:
    """The installed languages, once every one ``lang`` names is known to be among them."""
    tesseract.check_languages(lang, tesseract_cmd)
    return tesseract.installed_languages(tesseract_cmd)


def _start_workers(jobs: int, work_dir: Path, tesseract_cmd: str | None) -> list[tesseract_worker.TesseractWorker]:
    """A tesseract library worker per job; none when the program is to be used (named, or chosen)."""
    workers: list[tesseract_worker.TesseractWorker] = []
    if tesseract_worker.engine_wanted(tesseract_cmd):
        try:
            for k in range(jobs):
                # The others start when there is a page for them (see _Pipeline._more_pages_than).
                workers.append(tesseract_worker.TesseractWorker(work_dir, start=k == 0))
        except tesseract_worker.WorkerUnavailable as e:
            log.warning("%s; running the tesseract program instead", e)
            for worker in workers:
                worker.stop()
            workers = []
    return workers


def run_ocr(
    settings: OcrSettings,
    work_dir: Path,
    *,
    tesseract_cmd: str | None = None,
    on_page: Callable[[PageResult], None] | None = None,
) -> tuple[OcrRun, bytes, str]:
    """OCR every page of ``settings.input``; returns the run, the PDF bytes and the sidecar text.

    Nothing is written outside ``work_dir`` (a private RAM directory); the caller writes the outputs.
    Raises InputError for unreadable input (naming it), ExternalToolError when tesseract or a language
    is missing.  Pages whose OCR fails are kept as images without text and listed in ``run.failed``.
    """
    start = time.perf_counter()
    # The workers start first: their interpreters and the library load while the languages are checked
    # and the first page is read and prepared.
    workers = _start_workers(settings.jobs, work_dir, tesseract_cmd)
    try:
        # tesseract lists its languages while numpy and Pillow are imported for the first page.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ocr-langs") as ask:
            languages = ask.submit(_languages, settings.lang, tesseract_cmd)
            import drivers.image_loading  # noqa: F401  (the import is the point)

            installed = languages.result()
        pipeline = _Pipeline(settings, work_dir, installed, tesseract_cmd, workers)
    except BaseException:
        for worker in workers:
            worker.stop()
        raise
    render_dir = work_dir / "render"
    try:
        for loaded in _loaded_pages(settings, render_dir):
            pipeline.add(loaded)
        results = pipeline.finish()
    except BaseException:
        pipeline.abort()
        raise
    if on_page is not None:
        for result in results:
            on_page(result)
    if not results:
        raise InputError(str(settings.input), "has no pages")
    # Imported here, not before the first page: pikepdf's import would delay the first tesseract run,
    # and the encoder threads import it meanwhile anyway.
    from scanstation.pdf.searchable import PdfMetadata, PdfPage, build_searchable_pdf

    meta = settings.metadata
    metadata = PdfMetadata(
        title=meta.get("title") or settings.input.stem,
        employee_code=meta.get("employee_code", ""),
        employee_name=meta.get("employee_name", ""),
        acr_period=meta.get("acr_period", ""),
        unit=meta.get("unit", ""),
    )
    pdf_bytes = build_searchable_pdf(
        [PdfPage(image_png=r.image, dpi=r.dpi, text_pdf=r.text_pdf, turn=r.turn, skew=r.skew) for r in results],
        metadata,
        work_dir,
    )
    sidecar = "\f".join(r.text for r in results) + "\n"
    run = OcrRun(results, round(time.perf_counter() - start, 3), len(pdf_bytes))
    return run, pdf_bytes, sidecar


def _write_outputs(settings: OcrSettings, pdf_bytes: bytes, sidecar: str, report: dict[str, Any] | None) -> None:
    """PDF, then sidecar, then report, each atomically; if a later one fails the earlier go too."""
    written: list[Path] = []
    try:
        atomic_write(settings.output, pdf_bytes)
        written.append(settings.output)
        if settings.sidecar is not None:
            atomic_write(settings.sidecar, sidecar.encode("utf-8"))
            written.append(settings.sidecar)
        if settings.report is not None and report is not None:
            atomic_write(settings.report, json.dumps(report, ensure_ascii=False, indent=1).encode("utf-8"))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise


def _report(run: OcrRun, settings: OcrSettings, suggestions: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "input": str(settings.input),
        "output": str(settings.output),
        "lang": settings.lang,
        "strategy": settings.strategy,
        "seconds": run.seconds,
        "pdf_bytes": run.pdf_bytes,
        "pages": [
            {
                "page": p.number,
                "label": p.label,
                "dpi": p.dpi,
                "image": p.image.source,
                "image_bytes": len(p.image.data),
                "ocr_failed": p.error is not None,
                "error": p.error,
                "seconds": p.seconds,
                "batch": p.batch,
                "plan": p.plan,
            }
            for p in run.pages
        ],
        "index_suggestions": suggestions,
    }


def add_ocr_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Adds ``scanstation ocr`` (entry point ``scanstation.commands: ocr``, scanstation_tools/pyproject.toml)."""
    s = sub.add_parser(
        "ocr",
        parents=[common],
        help="OCR an image/TIFF/PDF into a searchable PDF/A and a text file (training, bench)",
        description="OCR an image, multi-page TIFF or PDF into a searchable PDF/A-2b and a UTF-8 (NFC) text "
        "file. The languages, orientation, deskew, binarisation and text size are chosen per page.",
    )
    s.add_argument("input", metavar="INPUT")
    s.add_argument("-o", "--output", required=True, metavar="OUT.pdf")
    s.add_argument("--sidecar", metavar="OUT.txt", help="also write the recognised text (pages separated by \\f)")
    s.add_argument(
        "--lang",
        default=ocr.DEFAULT_LANG,
        help="languages the pages may contain (default hin+eng); the model is chosen per page from them",
    )
    s.add_argument("--dpi", type=int, help="resolution of image files (overrides their own); PDF rendering dpi")
    s.add_argument("--jobs", type=int, help="pages read in parallel (default: the usable CPU cores)")
    s.add_argument("--timeout", type=float, default=ocr.DEFAULT_TIMEOUT, metavar="SECONDS", help="per page")
    s.add_argument(
        "--strategy",
        choices=ocr.STRATEGIES,
        default="auto",
        help="auto: choose model, size and binarisation per page; fixed: run --lang as given",
    )
    s.add_argument("--photo", action="store_true", help="store re-encoded grey/colour pages as JPEG q90")
    g = s.add_argument_group("document metadata (written to the PDF)")
    g.add_argument("--title")
    g.add_argument("--employee", metavar="CODE")
    g.add_argument("--name")
    g.add_argument("--period", metavar="PERIOD")
    g.add_argument("--unit")
    s.add_argument(
        "--suggest-index",
        action="store_true",
        help="print suggested employee code, name, rank and ACR period (JSON) for the operator to confirm",
    )
    s.add_argument("--report", metavar="FILE.json", help="write per-page choices, timings and failures")
    # ends_at_once: the process ends without the interpreter's tear-down (scanstation.cli.main.entry)
    s.set_defaults(func=cmd_ocr, ends_at_once=True)


def _default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def settings_from_args(args: argparse.Namespace) -> OcrSettings:
    metadata = {
        k: v
        for k, v in {
            "title": args.title,
            "employee_code": args.employee,
            "employee_name": args.name,
            "acr_period": args.period,
            "unit": args.unit,
        }.items()
        if v
    }
    return OcrSettings(
        input=Path(args.input),
        output=Path(args.output),
        sidecar=Path(args.sidecar) if args.sidecar else None,
        lang=args.lang,
        dpi=args.dpi,
        jobs=args.jobs if args.jobs is not None else _default_jobs(),
        timeout=args.timeout,
        strategy=args.strategy,
        photo=args.photo,
        metadata=metadata,
        report=Path(args.report) if args.report else None,
    )


def cmd_ocr(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if not settings.input.exists():
        raise InputError(str(settings.input), "no such file")
    with RamDir(prefix="scanstation-ocr") as ram:
        restore = set_process_tempdir(ram)
        try:

            def progress(page: PageResult) -> None:
                if page.error is not None:
                    print(f"scanstation: {page.label}: OCR failed: {page.error}", file=sys.stderr, flush=True)
                else:
                    log.info("%s: %s in %.2f s", page.label, page.plan.get("lang"), page.seconds)

            run, pdf_bytes, sidecar = run_ocr(settings, ram.path, on_page=progress)
            suggestions = None
            if args.suggest_index:
                from scanstation.ocr.index_suggestions import suggest_index

                suggestions = suggest_index([p.text for p in run.pages]).to_dict()
            _write_outputs(settings, pdf_bytes, sidecar, _report(run, settings, suggestions))
        finally:
            restore()
    if suggestions is not None:
        print(json.dumps(suggestions, ensure_ascii=False, indent=1), flush=True)
    failed = run.failed
    print(
        f"{settings.output}: {len(run.pages)} page(s), {len(run.pages) - len(failed)} with text, "
        f"{run.pdf_bytes / 1024:.0f} KiB, {run.seconds:.1f} s",
        file=sys.stderr,
        flush=True,
    )
    if failed:
        labels = ", ".join(p.label for p in failed)
        raise OcrError(
            f"OCR failed on {labels}: kept as image{'s' if len(failed) > 1 else ''} without text in "
            f"{settings.output}; run the command again to retry"
        )
    return 0


__all__ = ["OcrRun", "OcrSettings", "PageResult", "add_ocr_parser", "cmd_ocr", "run_ocr", "settings_from_args"]

"""Page OCR: one tesseract run per page with per-page choices, and the station's low-priority worker pool."""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import multiprocessing
import multiprocessing.util
import os
import re
import secrets
import shutil
import signal
import struct
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from scanstation.errors import ExternalToolError, InputError, OcrError, ScanStationError
from scanstation.ocr import tesseract_program as tesseract

if TYPE_CHECKING:
    from PIL import Image

    from scanstation.ocr.strategy import PreparedPage
    from scanstation.ocr.tesseract_worker import TesseractWorker

# Pillow, numpy and OpenCV (scanstation.ocr.strategy) are imported where a page is read, not here: the
# CLI imports this module for its defaults on every command, and the station's parent never reads pages.

DEFAULT_LANG = "hin+eng"
DEFAULT_TIMEOUT = 120.0
# Workers yield the CPU to capture and page analysis: a scanner delivering 40-80 pages a minute must
# never stall because OCR is busy.
WORKER_NICENESS = 10
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
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
    out = []
    for page, label, raw, layer in zip(prepared, labels, texts, layers, strict=True):
        text = clean_text(raw)
        _check_not_empty(text, page, label)
        out.append(
            PageOcr(
                text=text,
                text_pdf=layer,
                confidence=None,
                lang_used=page.plan.lang,
                seconds=round(share + sum(page.timings.values()), 3),
                plan=_plan_record(page),
            )
        )
    return out


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
    if not image_png.startswith(_PNG_SIGNATURE):
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


def _exit_when_orphaned(parent: int) -> None:
    # A pool worker holds both ends of its call queue, so it never sees EOF when the station is
    # killed (kill -9, power button): without this it would linger, holding page data in memory.
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _init_worker(niceness: int, station_pid: int) -> None:
    os.nice(niceness)
    # the station's pid comes from the station itself: if it died while we were starting, getppid()
    # would already name init and we would wait for ever
    threading.Thread(target=_exit_when_orphaned, args=(station_pid,), daemon=True, name="orphan-watch").start()
    # Ctrl-C in the station's terminal reaches the whole process group; the parent decides how to stop,
    # a worker must not die half-way through a page because of it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# This pool process's tesseract worker (the library, models loaded once), started with its first page;
# None when the tesseract program is to be used instead.
_tesseract: TesseractWorker | None = None
_tesseract_refused = False


def _pool_tesseract(work_dir: Path, tesseract_cmd: str | None) -> TesseractWorker | None:
    global _tesseract
    from scanstation.ocr import tesseract_worker

    if _tesseract_refused or not tesseract_worker.engine_wanted(tesseract_cmd):
        return None
    if _tesseract is None:
        _tesseract = tesseract_worker.TesseractWorker(work_dir)
        # Closed when the pool process ends normally (multiprocessing runs these finalisers, not atexit);
        # if it is killed, the worker dies with it and the pool sweeps its directory.
        multiprocessing.util.Finalize(None, _tesseract.close, exitpriority=10)
    return _tesseract


def _worker_ocr(
    job_dir: str,
    image_png: bytes,
    dpi: int,
    lang: str,
    timeout: float,
    label: str,
    tesseract_cmd: str | None,
    strategy: Strategy = "auto",
) -> PageOcr:
    # Each job gets its own directory so the parent can sweep it if this process is killed mid-page.
    global _tesseract_refused
    from scanstation.ocr.tesseract_worker import WorkerUnavailable

    directory = Path(job_dir)
    directory.mkdir(mode=0o700)
    try:
        try:
            worker = _pool_tesseract(directory.parent, tesseract_cmd)
            return ocr_page(image_png, dpi, directory, lang, timeout, label=label, tesseract_cmd=tesseract_cmd,
                            strategy=strategy, worker=worker)
        except WorkerUnavailable as e:
            _tesseract_refused = True
            logging.getLogger("scanstation.ocr.pages").warning("%s; running the tesseract program instead", e)
            return ocr_page(image_png, dpi, directory, lang, timeout, label=label, tesseract_cmd=tesseract_cmd,
                            strategy=strategy)
    except (OcrError, ExternalToolError):
        raise
    except ScanStationError as e:
        # Only single-message project errors survive pickling back to the parent (InputError's
        # two-argument constructor does not), so report anything else as an OCR failure.
        raise OcrError(f"OCR of {label} failed: {e}") from None
    except Exception as e:
        raise OcrError(f"OCR of {label} failed: {type(e).__name__}: {e}") from None
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# ---------------------------------------------------------------- parent side


@dataclass(slots=True)
class _Job:
    page_id: int | str
    image_png: bytes
    dpi: int
    lang: str
    future: Future[PageOcr]
    job_dir: Path | None = None


class OcrWorkerPool:
    """OCR pages in low-priority worker processes; a crashed worker fails only the pages it affected.

    At most ``max_workers`` pages are handed to the process pool at once; the rest wait in a queue
    here.  When a worker dies (killed, out of memory) Python breaks the whole executor and fails every
    page handed to it: those in-flight pages become OcrError (the station marks them failed, to be
    retried), a fresh executor is started, and the queued pages go to it untouched.

    Page images travel to workers through the pool's pipes, in memory; workers write temp files only
    below ``work_dir`` (one sub-directory per page, removed afterwards, and swept here if the worker died).
    Each tesseract run is bounded by ``timeout`` seconds inside the worker.
    """

    def __init__(
        self,
        work_dir: Path,
        max_workers: int | None = None,
        *,
        lang: str = DEFAULT_LANG,
        timeout: float = DEFAULT_TIMEOUT,
        tesseract_cmd: str | os.PathLike[str] | None = None,
        mp_context: str = "spawn",
        niceness: int = WORKER_NICENESS,
        strategy: Strategy = "auto",
    ) -> None:
        # spawn (or forkserver) rather than fork: a forked worker would inherit the GUI's threads and,
        # worse, copies of unlocked key material in the parent's memory.
        if mp_context not in ("spawn", "forkserver"):
            raise ValueError("mp_context must be 'spawn' or 'forkserver'")
        if not work_dir.is_dir():
            raise InputError(str(work_dir), "OCR work directory does not exist")
        self._work_dir = work_dir
        self._max_workers = max(1, max_workers or os.cpu_count() or 1)
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}")
        self._lang = lang
        self._strategy: Strategy = strategy
        self._timeout = timeout
        self._tesseract_cmd = os.fspath(tesseract_cmd) if tesseract_cmd is not None else None
        self._ctx = multiprocessing.get_context(mp_context)
        self._niceness = niceness
        self._lock = threading.RLock()
        self._queue: deque[_Job] = deque()
        self._inflight = 0
        self._closed = False
        self._restarts = 0
        self._retiring: dict[ProcessPoolExecutor, list[_Job]] = {}
        self._retire_threads: list[threading.Thread] = []
        self._executor = self._new_executor()

    @property
    def max_workers(self) -> int:
        return self._max_workers

    @property
    def restarts(self) -> int:
        """How many times the process pool was recreated after a worker died."""
        return self._restarts

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self._max_workers,
            mp_context=self._ctx,
            initializer=_init_worker,
            initargs=(self._niceness, os.getpid()),
        )

    def submit(self, page_id: int | str, image_png: bytes, dpi: int, *, lang: str | None = None) -> Future[PageOcr]:
        """Queue one page; the future resolves to PageOcr or raises OcrError/ExternalToolError."""
        if not image_png.startswith(_PNG_SIGNATURE):
            raise InputError(f"page {page_id}", "page image for OCR is not a PNG")
        future: Future[PageOcr] = Future()
        job = _Job(page_id, image_png, dpi, lang or self._lang, future)
        with self._lock:
            if self._closed:
                raise OcrError("the OCR worker pool has been shut down")
            self._queue.append(job)
            self._pump()
        return future

    def _pump(self) -> None:
        """Hand queued jobs to the executor while a worker is free (caller holds the lock)."""
        while not self._closed and self._inflight < self._max_workers and self._queue:
            job = self._queue.popleft()
            if not job.future.set_running_or_notify_cancel():
                continue  # cancelled by the caller while queued
            job.job_dir = self._work_dir / f"ocrjob-{secrets.token_hex(8)}"
            args = (
                os.fspath(job.job_dir),
                job.image_png,
                job.dpi,
                job.lang,
                self._timeout,
                f"page {job.page_id}",
                self._tesseract_cmd,
                self._strategy,
            )
            executor = self._executor
            try:
                inner = executor.submit(_worker_ocr, *args)
            except BrokenProcessPool:
                # Broken between our last look and now: retire it and use a fresh one.
                self._retire(executor)
                executor = self._executor
                inner = executor.submit(_worker_ocr, *args)
            self._inflight += 1
            # The callback may run right here (if already done) or on the executor's manager thread;
            # the lock is re-entrant for the first case.
            inner.add_done_callback(functools.partial(self._on_done, job, executor))

    def _retire(self, broken: ProcessPoolExecutor, job: _Job | None = None) -> None:
        """Replace a broken executor; its failed jobs are resolved once its processes are gone.

        Caller holds the lock.  Python breaks the executor as soon as one worker dies, then terminates
        the others; only after they have all exited can their job directories be swept without a
        surviving tesseract writing into them afterwards.
        """
        jobs = self._retiring.get(broken)
        if jobs is None:
            jobs = self._retiring[broken] = []
            if broken is self._executor and not self._closed:
                self._restarts += 1
                self._executor = self._new_executor()
            thread = threading.Thread(target=self._finish_retire, args=(broken,), name="ocr-pool-retire", daemon=True)
            self._retire_threads.append(thread)
            thread.start()
        if job is not None:
            jobs.append(job)

    def _finish_retire(self, broken: ProcessPoolExecutor) -> None:
        broken.shutdown(wait=True, cancel_futures=True)  # joins the manager thread and every worker
        from scanstation.ocr.tesseract_worker import sweep_orphans

        sweep_orphans(self._work_dir)  # the dead pool worker's tesseract worker died with it
        with self._lock:
            jobs = self._retiring.pop(broken, [])
        for job in jobs:
            if job.job_dir is not None:
                shutil.rmtree(job.job_dir, ignore_errors=True)
            job.future.set_exception(
                OcrError(
                    f"the OCR worker process died while reading page {job.page_id} (or a page running "
                    "beside it): killed or out of memory; the page was not read, retry it"
                )
            )

    def _on_done(self, job: _Job, executor: ProcessPoolExecutor, inner: Future[PageOcr]) -> None:
        error: BaseException | None = None
        result: PageOcr | None = None
        with self._lock:
            self._inflight -= 1
            job.image_png = b""  # drop the page image as soon as it is no longer needed
            if not inner.cancelled() and isinstance(inner.exception(), BrokenProcessPool):
                self._retire(executor, job)  # resolved by _finish_retire after the sweep
                self._pump()
                return
            if inner.cancelled():
                error = OcrError(f"OCR of page {job.page_id} was cancelled (pool shut down)")
            elif (exc := inner.exception()) is not None:
                error = exc
            else:
                result = inner.result()
            if job.job_dir is not None:
                # Normally already removed by the worker; this is a cheap second line of defence.
                shutil.rmtree(job.job_dir, ignore_errors=True)
            self._pump()
        # Resolve outside the lock: the caller's callbacks may submit more pages.
        if error is not None:
            job.future.set_exception(error)
        else:
            assert result is not None
            job.future.set_result(result)

    def shutdown(self, wait: bool = True) -> None:
        """Stop accepting pages; queued pages fail with OcrError; running ones finish if ``wait``."""
        with self._lock:
            self._closed = True
            queued = list(self._queue)
            self._queue.clear()
            executor = self._executor
        for job in queued:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(OcrError(f"OCR of page {job.page_id} stopped: pool shut down"))
        executor.shutdown(wait=wait, cancel_futures=not wait)
        if wait:
            for thread in list(self._retire_threads):
                thread.join()

    def __enter__(self) -> OcrWorkerPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown(wait=True)

"""The page pipeline of ``scanstation ocr``: pages prepared in page order and read by recogniser threads.

Each recogniser reads with a tesseract worker process (or the tesseract program, in batches); which pages it
takes, and when, is decided here, with a rough model of tesseract's time on a page.  The command around it
(options, reading the input file, the searchable PDF, the outputs) is :mod:`scanstation_tools.ocr_command`.

A little over the ~500 lines a module here keeps to, and kept whole on purpose: it is one class, whose scheduling
decisions share its lock and its record of what each recogniser is reading, and the few helpers only it uses.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanstation.errors import ExternalToolError, OcrError
from scanstation.ocr import pages as ocr
from scanstation.ocr import tesseract_program as tesseract
from scanstation.ocr import tesseract_worker

if TYPE_CHECKING:
    from scanstation.ocr.strategy import PreparedPage
    from scanstation.pdf.page_images import EncodedImage
    from scanstation_tools.ocr_settings import OcrSettings

log = logging.getLogger("scanstation.ocr.pages")

# At most this many pages go to one tesseract run (its models loaded once for them); at most ``jobs``
# times as many wait prepared, so memory stays bounded however long the input is.
_BATCH = 8
# Tesseract spends 0.07-0.2 s loading its models for every run, about what it needs to read this many
# pixels of a text page: smaller runs are put off while more pages are on their way.
_MIN_RUN_PIXELS = 1_500_000
_PSM = 3  # prepare_page's page segmentation mode (fully automatic)


@dataclass(slots=True)
class PageResult:
    """One page's outcome: its encoded image, its text layer and text, or why OCR failed."""

    number: int
    label: str
    dpi: int
    image: EncodedImage
    text_pdf: bytes | None
    text: str
    error: str | None
    plan: dict[str, Any]
    seconds: float
    batch: int = 1  # pages read by the same tesseract run
    turn: int = 0  # the image is stored as scanned; the PDF shows it turned back (see PdfPage)
    skew: float = 0.0


@dataclass(slots=True)
class _LoadedPage:
    """A page as the command read it from the input file, handed to :meth:`_Pipeline.add`."""

    number: int
    label: str
    image: Any  # PIL image, mode 1/L/RGB
    dpi: int
    # The page exactly as the input file stores it, when the PDF can carry that encoding: the bytes of
    # a PNG/JPEG file, or the one image of a scanned PDF page with its resolution.
    source: bytes | tuple[EncodedImage, float] | None = None


def _failure_is_timeout(error: OcrError) -> bool:
    return isinstance(error.__cause__, subprocess.TimeoutExpired)


@dataclass(slots=True)
class _Ready:
    """A prepared page on its way to tesseract; its image is being encoded meanwhile."""

    page: _LoadedPage
    prepared: PreparedPage
    encoded: Future[EncodedImage]
    pdf_dpi: int
    start: float
    work: float = 0.0  # expected tesseract seconds, see _work()


class _Pipeline:
    """Pages are prepared here, in page order, and read by ``jobs`` recogniser threads.

    Each recogniser owns a tesseract worker process (scanstation.ocr.tesseract_worker) that keeps its
    models loaded and takes pages in memory: a recogniser that becomes free takes one ready page (once
    every page is in, the heaviest left) and hands it over.
    Without the library (or with a tesseract program named), tesseract is run as a program instead,
    and then a recogniser takes its share of the pages that are ready (up to ``_BATCH``, all with the
    same model) and runs tesseract once over them: the models are loaded once per batch, not once per
    page.  Batches form by themselves where recognition is the bottleneck, and a short document still
    keeps every core busy.
    Threads suffice: tesseract runs in a child process, and numpy, OpenCV, zlib and the G4 encoder
    release the GIL.  A page's image is encoded (for the PDF) while tesseract reads it.
    """

    def __init__(
        self,
        settings: OcrSettings,
        work_dir: Path,
        installed: frozenset[str],
        tesseract_cmd: str | None,
        workers: list[tesseract_worker.TesseractWorker],
    ):
        """``workers``: one tesseract worker per job (closed here at the end), or none for the program."""
        self.settings = settings
        self.work_dir = work_dir
        self.installed = installed
        self.tesseract_cmd = tesseract_cmd
        self._workers = workers
        self._library = len(workers) == settings.jobs
        self.encoders = ThreadPoolExecutor(max_workers=settings.jobs, thread_name_prefix="ocr-encode")
        self._cond = threading.Condition()
        self._ready: deque[_Ready] = deque()
        self._loading = True
        self._failure: BaseException | None = None
        self.results: dict[int, PageResult] = {}
        # Batches being read: recogniser -> (start, expected seconds); and how long the finished ones
        # took against what was expected, to correct the estimates of the pages left (see _take_batch).
        self._reading: dict[int, tuple[float, float]] = {}
        self._expected_done = 0.0
        self._took_done = 0.0
        self._seen = 0  # pages handed to add() so far, prepared or not
        self._threads = [
            threading.Thread(target=self._recogniser, args=(i,), name=f"ocr-recognise-{i}", daemon=True)
            for i in range(settings.jobs)
        ]
        for thread in self._threads:
            thread.start()

    # ------------------------------------------------------------ producer (caller's thread)

    def add(self, page: _LoadedPage) -> None:
        """Prepare one page and queue it; waits while enough pages are queued (memory stays bounded)."""
        from scanstation.ocr.strategy import prepare_page

        start = time.perf_counter()
        with self._cond:
            self._seen += 1
            self._cond.notify_all()
        if self._seen == 2 and self.settings.jobs > 1:
            import cv2

            # Pages are read in parallel from now on; OpenCV's own threads would only fight them for the
            # cores.  The first page's analysis had the other core to itself (its worker was loading).
            cv2.setNumThreads(1)
            self._cond.wait_for(lambda: len(self._ready) < self.settings.jobs * _BATCH or self._failure is not None)
            self._raise_failure()
        original = page.image
        prepared = prepare_page(
            original,
            page.dpi,
            self.settings.lang,
            self.installed,
            correct_geometry=True,
            fixed_lang=self.settings.strategy == "fixed",
            # The PDF shows the scan's own pixels turned straight: nothing resampled, nothing lost, and a
            # PNG/JPEG/PDF page keeps its file's encoding even when it was skewed.
            keep_pixels=True,
        )
        page.image = None  # the prepared page holds what is still needed
        # A page whose pixels were kept (turned straight by the PDF, not resampled) keeps the file's own
        # encoding: copied, not decoded and re-encoded.
        source = page.source if prepared.page_image is original and not self.settings.photo else None
        del original
        pdf_dpi = page.dpi
        encoded: Future[EncodedImage]
        if isinstance(source, tuple):
            encoded = Future()
            encoded.set_result(source[0])
            pdf_dpi = round(source[1])
        else:
            encoded = self.encoders.submit(_encode, source, prepared.page_image, self.settings.photo, page.label)
        with self._cond:
            self._ready.append(_Ready(page, prepared, encoded, pdf_dpi, start, _work(prepared)))
            self._cond.notify_all()

    def finish(self) -> list[PageResult]:
        """Wait for every queued page; results in page order."""
        with self._cond:
            self._loading = False
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()
        self._close_workers()
        self.encoders.shutdown(wait=True)
        self._raise_failure()
        return [self.results[k] for k in sorted(self.results)]

    def abort(self) -> None:
        with self._cond:
            self._loading = False
            self._ready.clear()
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()
        self._close_workers()
        self.encoders.shutdown(wait=True, cancel_futures=True)

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _close_workers(self) -> None:
        for worker in self._workers:
            worker.stop()

    def _no_library(self, why: Exception) -> None:
        """The library cannot be used here: every page from now on is read by the tesseract program
        (each recogniser's worker is closed at the end, by whoever may be using it now)."""
        if self._library:
            log.warning("%s; running the tesseract program instead", why)
        self._library = False

    @property
    def _batch_max(self) -> int:
        # A worker keeps its models loaded: nothing is saved by handing it several pages at once, and a
        # recogniser that takes one page at a time is never left holding pages the other could read.
        return 1 if self._library else _BATCH

    @property
    def _min_run(self) -> int:
        return 1 if self._library else _MIN_RUN_PIXELS

    # ------------------------------------------------------------ recognisers

    def _recogniser(self, me: int) -> None:
        if self._library:
            self._worker_recogniser(me)
        else:
            self._program_recogniser(me)

    def _next_batch(self, me: int) -> list[_Ready] | None:
        """Wait for this recogniser's next pages (None: all done); records them as being read."""
        with self._cond:
            self._cond.wait_for(self._worth_a_run)
            if not self._ready:
                return None
            batch = self._take_batch(me)
            self._reading[me] = (time.perf_counter(), sum(r.work for r in batch))
            self._cond.notify_all()  # room for the producer
            return batch

    def _batch_done(self, me: int, done: list[PageResult]) -> None:
        with self._cond:
            started, expected = self._reading.pop(me)
            self._expected_done += expected
            self._took_done += time.perf_counter() - started
            for result in done:
                self.results[result.number] = result

    def _fail(self, error: BaseException) -> None:
        # handed to the caller's thread, which re-raises it
        with self._cond:
            self._failure = self._failure or error
            self._ready.clear()
            self._cond.notify_all()

    def _worker_recogniser(self, me: int) -> None:
        try:
            if self._more_pages_than(me):
                certain = self._certain_model()
                if certain is not None:
                    self._workers[me].preload(*certain)
                else:
                    self._workers[me].ensure_started()  # the model is chosen by the page
            while (batch := self._next_batch(me)) is not None:
                self._batch_done(me, [self._result(ready, *self._read_in_worker(me, ready)) for ready in batch])
        except BaseException as e:
            self._fail(e)

    def _more_pages_than(self, count: int) -> bool:
        """Whether the input has more than ``count`` pages (waits until that is known).

        The first worker loads its model at once; the others only once there is a page for them, so
        that a one-page input does not load the model in every worker (0.06-0.12 s of CPU each, beside
        the imports and the page analysis of the page that is being read).  Page k+1 is seen as soon as
        the loader reaches it: the model loads while that page is analysed.
        """
        if count == 0:
            return True
        with self._cond:
            self._cond.wait_for(lambda: self._seen > count or not self._loading or self._failure is not None)
            return self._seen > count

    def _read_in_worker(self, me: int, ready: _Ready, attempts: int = 2) -> tuple[ocr.PageOcr | None, str | None]:
        if not self._library:
            return self._recognise_one(ready)
        try:
            return _attempts(
                ready.page.label,
                attempts,
                lambda: ocr.ocr_prepared_in(
                    self._workers[me], ready.prepared, self.settings.timeout, label=ready.page.label
                ),
            )
        except tesseract_worker.WorkerUnavailable as e:
            with self._cond:
                self._no_library(e)
            return self._recognise_one(ready)

    def _program_recogniser(self, me: int) -> None:
        # Each run's tesseract is started one run ahead, so that it loads its models while the pages are
        # still being prepared or the run before is reading (see tesseract.WarmRun); the first one as
        # soon as the model is certain, before any page is ready.
        certain = self._certain_model()
        warm = self._warm(certain) if certain is not None else None
        try:
            while (batch := self._next_batch(me)) is not None:
                with self._cond:
                    # Another run is likely to come this recogniser's way while pages are still coming
                    # in; after that, the others take what is left as often as not, and a tesseract
                    # started for nothing costs a model load of CPU.
                    more = self._loading or (bool(self._ready) and self.settings.jobs == 1)
                model = (batch[0].prepared.plan.lang, batch[0].prepared.plan.psm)
                if warm is not None and (warm.lang, warm.psm) != model:
                    warm.abandon()
                    warm = None
                # Most documents keep to one model: guess the next run's from this one.
                following = self._warm(model) if more else None
                done = self._recognise_batch(batch, warm)
                warm = following
                self._batch_done(me, done)
        except BaseException as e:
            self._fail(e)
        finally:
            if warm is not None:
                warm.abandon()

    def _certain_model(self) -> tuple[str, int] | None:
        """The model every page will be read with, when the languages allowed leave no choice."""
        from scanstation.ocr.languages import Script, choose_language

        if self.settings.strategy == "fixed":
            return self.settings.lang, _PSM
        scripts: tuple[Script, ...] = ("devanagari", "latin", "mixed")
        models = {choose_language(script, self.settings.lang, self.installed)[0] for script in scripts}
        return (models.pop(), _PSM) if len(models) == 1 else None

    def _warm(self, model: tuple[str, int]) -> tesseract.WarmRun | None:
        try:
            return tesseract.WarmRun(self.work_dir, model[0], model[1], ("txt", "pdf"),
                                     tesseract_cmd=self.tesseract_cmd)
        except (ExternalToolError, OcrError, OSError) as e:
            log.warning("cannot start tesseract ahead of its pages (%s); starting it when they are ready", e)
            return None

    def _worth_a_run(self) -> bool:
        """Time for a recogniser to start tesseract (caller holds the lock): every page is in, or enough
        is ready that loading the model is not most of the run (the next page is a fraction of a second
        away: preparing one costs a tenth of reading it)."""
        ready = self._ready
        if not self._loading or len(ready) >= self._batch_max:
            return True
        return sum(_weight(r) for r in ready) >= self._min_run

    def _take_batch(self, me: int) -> list[_Ready]:
        """This recogniser's share of the ready pages, all for one model (caller holds the lock).

        While pages are still being loaded, a fair share by count (but no run of less than
        ``_MIN_RUN_PIXELS`` while more is ready), so that the other recognisers get work too.  Once
        every page is in, see :meth:`_final_share`.
        """
        jobs = self.settings.jobs
        ready = self._ready
        if not self._loading and jobs > 1:
            return self._final_share(me)
        model = _model(ready[0])
        size = min(self._batch_max, -(-len(ready) // jobs))
        batch = [ready.popleft()]
        taken = _weight(batch[0])
        while ready and _model(ready[0]) == model and len(batch) < self._batch_max:
            if len(batch) >= size and taken >= self._min_run:
                break
            batch.append(ready.popleft())
            taken += _weight(batch[-1])
        return batch

    def _final_share(self, me: int) -> list[_Ready]:
        """Once every page is in: the pages this recogniser should read for all to finish together.

        The pages left are dealt out heaviest first, each to whichever recogniser would then finish
        first, counting the batch each other one is still reading (its expected time, less what has
        passed, corrected by how the finished batches compared with their estimates); this one takes
        what it was dealt.  The others deal again when they come free, with what they know then.  On the
        corpus's English pages, splitting by pixel count instead left one core idle for half a second
        of a five-second document.
        """
        now = time.perf_counter()
        pace = self._took_done / self._expected_done if self._expected_done > 0 else 1.0
        loads = [0.0]  # index 0: this recogniser
        for other in range(self.settings.jobs):
            if other != me:
                started, expected = self._reading.get(other, (now, 0.0))  # not reading: free now
                loads.append(max(0.0, expected * pace - (now - started)))
        mine: list[_Ready] = []
        for page in sorted(self._ready, key=lambda r: r.work, reverse=True):
            slot = min(range(len(loads)), key=lambda k: loads[k])
            loads[slot] += page.work * pace
            if slot == 0:
                mine.append(page)
        if self._batch_max == 1:
            batch = mine[:1]  # the heaviest: the light ones fill the gaps at the end
        else:
            # One tesseract run reads one model: the model of the heaviest page dealt to us.
            model = _model(mine[0])
            batch = sorted((r for r in mine if _model(r) == model), key=lambda r: r.page.number)[: self._batch_max]
        taken = {id(r) for r in batch}
        self._ready = deque(r for r in self._ready if id(r) not in taken)
        return batch

    def _recognise_batch(self, batch: list[_Ready], warm: tesseract.WarmRun | None = None) -> list[PageResult]:
        if len(batch) > 1 or warm is not None:
            try:
                ocrs = ocr.ocr_prepared_batch(
                    [r.prepared for r in batch],
                    self.work_dir,
                    self.settings.timeout,
                    labels=[r.page.label for r in batch],
                    tesseract_cmd=self.tesseract_cmd,
                    warm=warm,
                )
                return [self._result(r, o, None, len(batch)) for r, o in zip(batch, ocrs, strict=True)]
            except OcrError as e:
                if len(batch) == 1:
                    # That was the page's first attempt: a timeout is final, a crash gets one more.
                    if _failure_is_timeout(e):
                        return [self._result(batch[0], None, e.message)]
                    log.warning("%s: %s; trying once more", batch[0].page.label, e.message)
                    return [self._result(batch[0], *self._recognise_one(batch[0], attempts=1))]
                # One bad page must not cost its neighbours: read them one at a time.
                log.warning("%s; reading these pages one at a time", e.message)
        return [self._result(r, *self._recognise_one(r)) for r in batch]

    def _recognise_one(self, ready: _Ready, attempts: int = 2) -> tuple[ocr.PageOcr | None, str | None]:
        return _attempts(
            ready.page.label,
            attempts,
            lambda: ocr.ocr_prepared(
                ready.prepared,
                self.work_dir,
                self.settings.timeout,
                label=ready.page.label,
                tesseract_cmd=self.tesseract_cmd,
                confidence=False,  # nothing here uses word confidences
            ),
        )

    def _result(self, ready: _Ready, result: ocr.PageOcr | None, error: str | None, batch: int = 1) -> PageResult:
        plan = result.plan if result is not None else ocr._plan_record(ready.prepared)
        return PageResult(
            number=ready.page.number,
            label=ready.page.label,
            dpi=ready.pdf_dpi,
            image=ready.encoded.result(),
            text_pdf=result.text_pdf if result is not None else None,
            text=result.text if result is not None else "",
            error=error,
            plan=plan,
            seconds=round(time.perf_counter() - ready.start, 3),
            batch=batch,
            turn=ready.prepared.page_turn,
            skew=ready.prepared.page_skew,
        )


def _attempts(
    label: str, attempts: int, read: Callable[[], ocr.PageOcr]
) -> tuple[ocr.PageOcr | None, str | None]:
    """``read()`` up to ``attempts`` times: its result, or None and the last failure's message."""
    error: str | None = None
    for attempt in range(1, attempts + 1):
        try:
            return read(), None
        except OcrError as e:
            error = e.message
            # A crash may be a one-off (memory pressure); a page that timed out would only time out again.
            if attempt == attempts or _failure_is_timeout(e):
                break
            log.warning("%s: %s; trying once more", label, e.message)
    return None, error


def _weight(ready: _Ready) -> int:
    """The pixels of the image tesseract reads (enough of them make a run worth its model load)."""
    width, height = ready.prepared.ocr_image.size
    return int(width) * int(height)


def _model(ready: _Ready) -> tuple[str, int]:
    return ready.prepared.plan.lang, ready.prepared.plan.psm


# Tesseract's time on a page, roughly: a constant, plus its share for the ink (text lines are what the
# recogniser reads), plus a little for the pixels (layout analysis).  Fitted on the corpus's and the
# synthetic pages: within a fifth for text pages; forms, whose rules are ink but not text, come out
# dearer than they are.
_SECONDS_PER_PAGE = 0.05
_SECONDS_PER_INK_PIXEL = 2.5e-6
_SECONDS_PER_PIXEL = 0.05e-6


def _work(prepared: PreparedPage) -> float:
    image = prepared.ocr_image
    histogram = image.histogram()
    ink = histogram[0] if image.mode == "1" else sum(histogram[:128])
    width, height = image.size
    return _SECONDS_PER_PAGE + ink * _SECONDS_PER_INK_PIXEL + width * height * _SECONDS_PER_PIXEL


def _encode(source: bytes | None, image: Any, photo: bool, label: str) -> EncodedImage:
    from scanstation.pdf.page_images import encode_image, passthrough_image

    if source is not None:
        encoded = passthrough_image(source)
        if encoded is not None:
            return encoded
    return encode_image(image, photo=photo, label=label, compress_level=None)

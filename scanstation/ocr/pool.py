"""The station's OCR pool: low-priority worker processes, each reading pages with its own tesseract worker."""

from __future__ import annotations

import functools
import logging
import multiprocessing
import multiprocessing.util
import os
import secrets
import shutil
import signal
import threading
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from drivers.process_guard import no_core_dumps
from scanstation.errors import ExternalToolError, InputError, OcrError, ScanStationError
from scanstation.ocr.pages import DEFAULT_LANG, DEFAULT_TIMEOUT, PNG_SIGNATURE, STRATEGIES, PageOcr, Strategy, ocr_page

if TYPE_CHECKING:

    from scanstation.ocr.tesseract_worker import TesseractWorker

# Pillow, numpy and OpenCV (scanstation.ocr.strategy) are imported where a page is read, not here: the
# CLI imports this module for its defaults on every command, and the station's parent never reads pages.

# Workers yield the CPU to capture and page analysis: a scanner delivering 40-80 pages a minute must
# never stall because OCR is busy.
WORKER_NICENESS = 10



def _exit_when_orphaned(parent: int) -> None:
    # A pool worker holds both ends of its call queue, so it never sees EOF when the station is
    # killed (kill -9, power button): without this it would linger, holding page data in memory.
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _init_worker(niceness: int, station_pid: int) -> None:
    no_core_dumps()  # pages pass through this process; a fresh interpreter is dumpable again
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
        if not image_png.startswith(PNG_SIGNATURE):
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

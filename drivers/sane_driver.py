"""SANE scanners through a worker process: a crashing or hanging back end costs a child, not the station."""

# How a scan runs
# ---------------
# ``SaneDriver.scan`` starts ``python -m drivers.sane_worker``, sends the settings, and receives pages one at
# a time (drivers/sane_protocol.py has the wire format).  After each page has gone through ``on_page``
# (which persists it) the parent answers "next"; only then does the worker start the next sheet.  So every
# sheet that left the feeder is either delivered or reported in ``pages_received``.
#
# Faults become ``drivers.errors`` classes by SANE status code (the worker recovers the code from
# python-sane's message through one table, ``sane_status.status_table``):
#     JAMMED -> PaperJam, NO_DOCS -> FeederEmpty (first sheet; later it is the normal end of an ADF batch),
#     COVER_OPEN -> CoverOpen, DEVICE_BUSY / WARMING_UP -> DeviceBusy, IO_ERROR -> DeviceOffline,
#     CANCELLED -> ScanCancelled, opening an unknown name -> DeviceNotFound, anything else -> DeviceError.
# A worker that dies without a final message -> DeviceCrashed; one that sends nothing for ``page_timeout``
# seconds is killed -> DeviceOffline.  ``pages_received`` is always the number of pages given to on_page.
#
# Reproducing device faults (training, tests, acceptance demos)
# -------------------------------------------------------------
# Raw options (``ScanSettings.options``, ``--option NAME=VALUE`` on the CLI) may carry a page prefix:
# ``pageN:NAME=VALUE`` is applied just before sheet N is started, after the earlier sheets were delivered.
# SANE lets a front end change options between the sheets of an ADF batch, and the ``test`` back end's
# ``read-return-value`` option makes sane_read return any status, so
#
#     scanstation scan --device test:0 --source adf --option page4:read-return-value=SANE_STATUS_JAMMED
#
# delivers sheets 1-3 and then fails with PaperJam(pages_received=3), exactly like a real mid-batch jam.
# Likewise SANE_STATUS_NO_DOCS (feeder runs out early), SANE_STATUS_COVER_OPEN, SANE_STATUS_IO_ERROR.  The
# ``test`` back end's ADF holds 10 sheets.  Enable it only through SANE_CONFIG_DIR (see tests/sane_env.py).

from __future__ import annotations

import collections
import contextlib
import importlib.util
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import IO, Any

from PIL import Image

from drivers.base import (
    CancelToken,
    Capabilities,
    CapturedPage,
    ColorMode,
    DeviceInfo,
    PageCallback,
    ScanSettings,
    Source,
)
from drivers.errors import (
    CoverOpen,
    DeviceBusy,
    DeviceCrashed,
    DeviceError,
    DeviceNotFound,
    DeviceOffline,
    FeederEmpty,
    PaperJam,
    ScanCancelled,
)
from drivers.process_guard import child_preexec
from drivers.sane_protocol import ProtocolError, read_frame
from drivers.sane_status import Status

log = logging.getLogger(__name__)


class UnsupportedSetting(DeviceError):
    """The scanner cannot do what was asked (source, mode, page size or --option); detail says what it can."""

    message_en = "The scanner does not support this setting. Choose another source, mode or option."
    message_hi = "स्कैनर इस सेटिंग का समर्थन नहीं करता। कोई दूसरा स्रोत, मोड या विकल्प चुनें।"


_STATUS_ERRORS: dict[int, type[DeviceError]] = {
    Status.JAMMED: PaperJam,
    Status.NO_DOCS: FeederEmpty,
    Status.COVER_OPEN: CoverOpen,
    Status.DEVICE_BUSY: DeviceBusy,
    Status.WARMING_UP: DeviceBusy,
    Status.IO_ERROR: DeviceOffline,
}


def error_for_status(status: int | None, detail: str, *, device: str, pages: int) -> DeviceError:
    """The station's exception for a SANE status code (None: a non-SANE failure inside python-sane)."""
    cls = _STATUS_ERRORS.get(status, DeviceError) if status is not None else DeviceError
    if cls is DeviceError and status is not None:
        # Statuses without a class of their own keep their SANE name, so the log says exactly what happened.
        name = Status(status).name if status in set(Status) else str(status)
        detail = f"SANE_STATUS_{name}: {detail}"
    return cls(detail, device=device, pages_received=pages)


def page_placement(source: Source, index: int) -> tuple[str, int]:
    """(side, 1-based sheet) of the ``index``-th page (0-based) of a scan: duplex alternates front/back."""
    if source is Source.FLATBED:
        return "flatbed", 1
    if source is Source.ADF:
        return "front", index + 1
    return ("front" if index % 2 == 0 else "back"), index // 2 + 1


_REPO_ROOT = Path(__file__).resolve().parent.parent


def _deferred_cancel_library() -> str | None:
    """Path of the compiled drivers/_deferred_cancel.c (a shared object for LD_PRELOAD, never imported)."""
    spec = importlib.util.find_spec("drivers._deferred_cancel")
    origin = spec.origin if spec is not None else None
    if origin is None or not origin.endswith(".so"):
        log.warning("drivers/_deferred_cancel.c is not compiled (reinstall the station): back ends that cancel "
                    "their reader threads asynchronously may hang a scan until the page timeout")
        return None
    return origin


_DEFERRED_CANCEL = _deferred_cancel_library()
_MODES = {"1", "L", "RGB"}


class _WorkerProcess:
    """One ``drivers.sane_worker`` child: request out, frames in (via a reader thread), stderr kept."""

    def __init__(self, request: dict[str, Any]) -> None:
        # SANE_CONFIG_DIR, SANE_DEBUG_*, LD_LIBRARY_PATH ... reach libsane as given; the station's own
        # settings (e.g. SCANSTATION_PASSPHRASE_FILE) are none of the vendor back end's business.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCANSTATION_")}
        # Resolve every symbol at load time.  Back ends that use sanei_thread (the test back end among
        # them) end their reader thread with an *asynchronous* pthread_cancel; landing in the middle of
        # lazy symbol binding leaves the loader's state held, and the next dlopen or sane_read in this
        # process hangs for ever (seen: ~2% of injected-fault scans).  Eager binding closes that window.
        env["LD_BIND_NOW"] = "1"
        # The same threads end with an asynchronous cancel that can land inside free() and leave the thread
        # joined for ever (drivers/_deferred_cancel.c says how); the preload keeps every cancel deferred.
        if _DEFERRED_CANCEL is not None:
            env["LD_PRELOAD"] = " ".join(p for p in (_DEFERRED_CANCEL, env.get("LD_PRELOAD", "")) if p)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "drivers.sane_worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                # Own session: Ctrl-C at the terminal reaches the station, which cancels the worker in order.
                start_new_session=True,
                preexec_fn=child_preexec(),  # core dumps off (None when RLIMIT_CORE 0 is inherited)
            )
        except OSError as exc:
            raise DeviceCrashed(f"the scanner worker could not be started ({exc})") from exc
        assert self.proc.stdin is not None and self.proc.stdout is not None and self.proc.stderr is not None
        self.frames: queue.Queue[tuple[dict[str, Any], bytes] | BaseException | None] = queue.Queue()
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        threading.Thread(target=self._read_frames, args=(self.proc.stdout,), daemon=True).start()
        threading.Thread(target=self._read_stderr, args=(self.proc.stderr,), daemon=True).start()
        self.send(json.dumps(request))

    def _read_frames(self, stream: IO[bytes]) -> None:
        try:
            while (frame := read_frame(stream)) is not None:
                self.frames.put(frame)
            self.frames.put(None)
        except (ProtocolError, OSError, ValueError) as exc:
            self.frames.put(exc)

    def _read_stderr(self, stream: IO[bytes]) -> None:
        for line in iter(stream.readline, b""):
            self.stderr_tail.append(line.decode("utf-8", "replace").rstrip())

    def send(self, line: str) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            stdin.write(line.encode("utf-8") + b"\n")
            stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass  # the worker is gone; the frame reader reports how

    def describe_exit(self) -> str:
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "the scanner worker stopped talking"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            text = f"the scanner worker was killed by {name}"
        else:
            text = f"the scanner worker exited with code {code}"
        last = next((line for line in reversed(self.stderr_tail) if line.strip()), "")
        return f"{text}: {last}" if last else text

    def dump_stacks(self) -> None:
        """Ask a silent worker for its Python stacks (faulthandler on SIGUSR1) and log them: a hung
        back end is otherwise undiagnosable once killed."""
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(OSError):
            os.kill(self.proc.pid, signal.SIGUSR1)
        time.sleep(0.5)
        log.warning("SANE worker %d silent; its stacks:\n%s", self.proc.pid, "\n".join(self.stderr_tail))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def close(self, grace: float) -> None:
        """Let the worker finish (closing stdin means "cancel" to it), then kill it after ``grace`` s."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            log.warning("SANE worker %d did not exit within %.1f s; killing it", self.proc.pid, grace)
            self.kill()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


class SaneDriver:
    """The Driver for SANE devices; every call runs libsane in a fresh worker process."""

    name = "sane"

    def __init__(self, *, page_timeout: float = 180.0, query_timeout: float = 60.0,
                 cancel_grace: float = 5.0) -> None:
        # page_timeout: longest silence while a page is scanned (slow flatbeds at 1200 dpi need minutes).
        # query_timeout: device discovery (network back ends probe for a while).
        # cancel_grace: how long a cancelled worker may take to stop before it is killed.
        self.page_timeout = page_timeout
        self.query_timeout = query_timeout
        self.cancel_grace = cancel_grace

    # -- list and describe -------------------------------------------------------------------------

    def list_devices(self) -> list[DeviceInfo]:
        header = self._query({"command": "list"}, device="")
        return [
            DeviceInfo(name=str(n), vendor=str(v), model=str(m), kind=str(k), backend=self.name)
            for n, v, m, k in header.get("devices", [])
        ]

    def capabilities(self, device: str) -> Capabilities:
        header = self._query({"command": "capabilities", "device": device}, device=device)
        return Capabilities(
            sources=tuple(Source(s) for s in header["sources"]),
            modes=tuple(ColorMode(m) for m in header["modes"]),
            resolutions=tuple(int(r) for r in header["resolutions"]),
            max_width_mm=header.get("max_width_mm"),
            max_height_mm=header.get("max_height_mm"),
            options={str(k): str(v) for k, v in header.get("options", {}).items()},
        )

    def _query(self, request: dict[str, Any], *, device: str) -> dict[str, Any]:
        worker = _WorkerProcess(request)
        try:
            deadline = time.monotonic() + self.query_timeout
            while True:
                try:
                    item = worker.frames.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    worker.kill()
                    raise DeviceOffline(f"no answer from SANE within {self.query_timeout:g} s",
                                        device=device) from None
                header = self._check(item, worker, device=device, pages=0)
                if header["type"] == "error":
                    raise self._error(header, device=device, pages=0)
                return header
        finally:
            worker.close(self.cancel_grace)

    # -- scan --------------------------------------------------------------------------------------

    def scan(self, device: str, settings: ScanSettings, cancel: CancelToken, on_page: PageCallback) -> int:
        if cancel.cancelled:
            raise ScanCancelled("Scan cancelled before it started.")
        scan_id = uuid.uuid4().hex
        request = {
            "command": "scan",
            "device": device,
            "settings": {
                "source": settings.source.value,
                "mode": settings.mode.value,
                "resolution": settings.resolution,
                "page_size": settings.page_size,
                "options": [list(pair) for pair in settings.options],
            },
        }
        worker = _WorkerProcess(request)
        pages = 0
        try:
            while True:
                header, payload = self._wait(worker, cancel, device=device, pages=pages)
                kind = header["type"]
                if kind == "page":
                    page = self._page(header, payload, device=device, settings=settings, scan_id=scan_id,
                                      index=pages)
                    on_page(page)
                    pages += 1
                    if cancel.cancelled:
                        worker.send("cancel")
                        raise ScanCancelled(f"Scan cancelled after {pages} page(s).")
                    worker.send("next")
                elif kind == "done":
                    return pages
                elif kind == "cancelled":
                    raise ScanCancelled(f"Scan cancelled after {pages} page(s).")
                elif kind == "error":
                    raise self._error(header, device=device, pages=pages)
                else:
                    raise DeviceCrashed(f"unexpected message {kind!r} from the scanner worker",
                                        device=device, pages_received=pages)
        finally:
            worker.close(self.cancel_grace)

    def _wait(self, worker: _WorkerProcess, cancel: CancelToken, *, device: str,
              pages: int) -> tuple[dict[str, Any], bytes]:
        """Next frame, watching the cancel token, the page timeout and the worker's health."""
        deadline = time.monotonic() + self.page_timeout
        cancel_deadline: float | None = None
        while True:
            if cancel.cancelled and cancel_deadline is None:
                # The worker's command thread calls sane_cancel even while a page is being read.
                worker.send("cancel")
                cancel_deadline = time.monotonic() + self.cancel_grace
            now = time.monotonic()
            if cancel_deadline is not None and now > cancel_deadline:
                log.warning("SANE worker ignored cancel for %.1f s; killing it", self.cancel_grace)
                worker.kill()
                raise ScanCancelled(f"Scan cancelled after {pages} page(s).")
            if now > deadline:
                worker.dump_stacks()
                worker.kill()
                raise DeviceOffline(f"no data from the scanner for {self.page_timeout:g} s",
                                    device=device, pages_received=pages)
            try:
                item = worker.frames.get(timeout=0.1)
            except queue.Empty:
                continue
            header = self._check(item, worker, device=device, pages=pages)
            if header["type"] == "page":
                assert isinstance(item, tuple)
                return header, item[1]
            return header, b""

    @staticmethod
    def _check(item: tuple[dict[str, Any], bytes] | BaseException | None, worker: _WorkerProcess, *,
               device: str, pages: int) -> dict[str, Any]:
        if item is None:
            detail = worker.describe_exit()
            log.warning("SANE worker ended without a result (%s); stderr tail:\n%s", detail,
                        "\n".join(worker.stderr_tail))
            raise DeviceCrashed(detail, device=device, pages_received=pages)
        if isinstance(item, BaseException):
            worker.kill()
            raise DeviceCrashed(f"garbled data from the scanner worker ({item})", device=device,
                                pages_received=pages) from item
        header = item[0]
        if not isinstance(header.get("type"), str):
            worker.kill()
            raise DeviceCrashed("garbled data from the scanner worker", device=device, pages_received=pages)
        return header

    def _error(self, header: dict[str, Any], *, device: str, pages: int) -> DeviceError:
        kind = header.get("kind")
        message = str(header.get("message", ""))
        stage = header.get("stage")
        if kind == "not_found":
            return DeviceNotFound(f"no SANE device named {device!r} ({message})", device=device,
                                  pages_received=pages)
        if kind == "setting":
            return UnsupportedSetting(message, device=device, pages_received=pages)
        if kind == "internal":
            return DeviceCrashed(f"scanner worker failed: {message}", device=device, pages_received=pages)
        status = header.get("status")
        if status == Status.CANCELLED:
            # The scanner's own cancel button: not a fault.  Raised here so callers see one exception path.
            raise ScanCancelled(f"Scan cancelled at the scanner after {pages} page(s).")
        detail = f"{message} (sheet {pages + 1}, {stage})" if stage in ("start", "read") else message
        return error_for_status(status if isinstance(status, int) else None, detail, device=device,
                                pages=pages)

    @staticmethod
    def _page(header: dict[str, Any], payload: bytes, *, device: str, settings: ScanSettings, scan_id: str,
              index: int) -> CapturedPage:
        mode, width, height = header.get("mode"), header.get("width"), header.get("height")
        if mode not in _MODES or not isinstance(width, int) or not isinstance(height, int) \
                or width <= 0 or height <= 0:
            raise DeviceCrashed(f"malformed page header from the scanner worker: {header}", device=device,
                                pages_received=index)
        row = (width + 7) // 8 if mode == "1" else width * (3 if mode == "RGB" else 1)
        if len(payload) != row * height:
            raise DeviceCrashed(f"page data is {len(payload)} bytes, expected {row * height}", device=device,
                                pages_received=index)
        image = Image.frombytes(mode, (width, height), payload)
        dpi = header.get("dpi")
        if not isinstance(dpi, int) or dpi <= 0:
            dpi = settings.resolution  # the device has no readable resolution option (rare)
        side, sheet = page_placement(settings.source, index)
        label = (
            f"{device} sheet {sheet} {side}" if settings.source is Source.DUPLEX else f"{device} page {index + 1}"
        )
        return CapturedPage(
            image=image,
            dpi=dpi,
            device=device,
            side=side,
            sheet=sheet,
            source_key=f"sane:{device}:{scan_id}:{index}",
            label=label,
        )

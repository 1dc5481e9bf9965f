"""The "import" pseudo-device: delivers the pages of image files and PDFs as if they had been scanned."""

# Bad input does not stop the batch: every readable page of every file is delivered through on_page, in
# the order given, and the problems (a whole file, or single pages of a multi-page file) are collected.
# How problems come out:
#   * default: when the scan ends, if any input failed, ``scan`` raises ``ImportProblems`` -- an InputError
#     listing each problem, with ``pages_received`` -- so the CLI exits non-zero (code 4) after keeping the
#     good pages (the Driver contract: "faults raise, delivered pages stay delivered");
#   * if ``on_error`` is set (constructor or attribute; scanstation.facade sets it), each InputError is
#     passed to it as it happens -- one audit entry per bad input -- and ``scan`` returns normally.
#
# Files are decoded outside this process (which holds the station's keys): each in its own fresh decoder
# process with memory, CPU and time limits (drivers/decode_process.py).  The decoder for the next file is
# started while the current one is read, so its start-up costs nothing when there are several files.

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

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
from drivers.decode_process import DecodeLimits, DecoderProcess
from drivers.errors import DeviceNotFound, InputError, ScanCancelled

DEVICE_NAME = "import"
DEVICE_INFO = DeviceInfo(name=DEVICE_NAME, vendor="ScanStation", model="File import", kind="virtual device",
                         backend="import")


class ImportProblems(InputError):
    """Some inputs could not be read; the readable pages were delivered.  ``problems`` lists each one."""

    def __init__(self, problems: Sequence[InputError], pages_received: int) -> None:
        self.problems = list(problems)
        self.pages_received = pages_received
        shown = "; ".join(str(p) for p in self.problems[:5])
        more = f"; and {len(self.problems) - 5} more" if len(self.problems) > 5 else ""
        super().__init__(
            "import",
            f"{len(self.problems)} input problem(s), {pages_received} page(s) imported: {shown}{more}",
        )


class ImportDriver:
    """Driver for ``--device import``: ``files`` are read in order; PDFs are rendered into ``tmp_dir``."""

    name = "import"

    def __init__(self, files: Sequence[Path], tmp_dir: Path | None = None,
                 on_error: Callable[[InputError], None] | None = None, *,
                 limits: DecodeLimits | None = None) -> None:
        self.files = [Path(f) for f in files]
        self.tmp_dir = tmp_dir  # the station passes a private RAM-backed directory
        self.on_error = on_error
        self.limits = limits or DecodeLimits()  # of each file's decoder process

    def list_devices(self) -> list[DeviceInfo]:
        return [DEVICE_INFO]

    def capabilities(self, device: str) -> Capabilities:
        self._check_device(device)
        return Capabilities(
            sources=(Source.FLATBED,),
            modes=(ColorMode.GRAY, ColorMode.COLOR, ColorMode.LINEART),  # applies to PDF rendering
            resolutions=(75, 100, 150, 200, 300, 400, 600),  # PDF rendering; images keep their own dpi
        )

    def scan(self, device: str, settings: ScanSettings, cancel: CancelToken, on_page: PageCallback) -> int:
        self._check_device(device)
        if settings.options:
            raise InputError(DEVICE_NAME, "the import device takes no --option settings")
        if not self.files:
            raise InputError(DEVICE_NAME, "no input files were given")
        problems: list[InputError] = []
        report = self.on_error

        def problem(error: InputError) -> None:
            problems.append(error)
            if report is not None:
                report(error)

        delivered = 0
        spare: DecoderProcess | None = None
        try:
            for index, path in enumerate(self.files):
                decoder, spare = spare or DecoderProcess(self.limits), None
                with decoder:
                    if index + 1 < len(self.files):
                        spare = DecoderProcess(self.limits)  # loads its modules while this file is read
                    delivered = self._import_file(path, decoder, settings, cancel, on_page, problem, delivered)
        finally:
            if spare is not None:
                spare.close()
        if problems and report is None:
            raise ImportProblems(problems, delivered)
        return delivered

    def _import_file(self, path: Path, decoder: DecoderProcess, settings: ScanSettings, cancel: CancelToken,
                     on_page: PageCallback, problem: Callable[[InputError], None], delivered: int) -> int:
        """Deliver the pages of one file; the running count of delivered pages."""
        try:
            digest = _sha256(path)
            pages = decoder.pages(path, settings.resolution, self.tmp_dir, mode=settings.mode, on_error=problem)
            # closing(): a cancel or an on_page failure must still stop the decoder and remove any
            # rendered page at once.
            with contextlib.closing(pages):
                for page in pages:
                    if cancel.cancelled:
                        raise ScanCancelled(f"Import cancelled after {delivered} page(s).")
                    on_page(CapturedPage(
                        image=page.image,
                        dpi=page.dpi,
                        device=DEVICE_NAME,
                        side="import",
                        sheet=delivered + 1,
                        source_key=f"import:{digest}:{page.page_number - 1}",
                        label=page.label,
                    ))
                    delivered += 1
        except InputError as exc:  # the whole file (or the rest of it) is unusable; go on with the next one
            problem(exc)
        return delivered

    @staticmethod
    def _check_device(device: str) -> None:
        if device != DEVICE_NAME:
            raise DeviceNotFound(f"the import driver only serves {DEVICE_NAME!r}, not {device!r}",
                                 device=device)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise InputError(str(path), f"cannot read the file ({exc.strerror or exc})") from exc
    return digest.hexdigest()

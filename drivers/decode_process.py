"""Decoding untrusted files (images, TIFFs, PDFs) in a fresh, limited child process, never in the station.

An 8 KB PDF whose content stream is compressed twice expands to a gigabyte when it is parsed; an image
decoder with a bug runs whatever the file tells it to.  Neither may happen in the process that holds the
station's keys.  So the import driver hands each file to a :class:`DecoderProcess`:

* a fresh interpreter (``python -m drivers.decode_worker``, started by exec, never a fork of the station,
  so nothing of the station's memory is in it), with a bare environment (no ``SCANSTATION_*`` variable),
  no file descriptor but its three pipes, and its working directory at ``/``;
* core dumps off (drivers.process_guard), an address-space limit (``RLIMIT_AS``, 2 GiB by default) and a
  CPU-time limit (``RLIMIT_CPU``), both inherited by the PDF renderer it runs, and a wall-clock limit
  on every wait for a page, enforced here;
* one file per process: whatever a file did to its decoder ends with it;
* pages come back one at a time as raw pixels with their size, mode and dpi (checked here before
  anything is built from them), so this process holds one page at a time however long the file;
* every failure becomes an :class:`~drivers.errors.InputError` naming the file and saying what happened:
  "needs more than 2 GiB to decode", "took longer than 180 s to decode page 3", "the decoder crashed
  (signal 11)"; the pages delivered before it stay delivered.

Rendered PDF pages land in a private directory (under the caller's RAM-backed ``tmp_dir``), removed when
the file is done, whatever became of its decoder.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from PIL import Image

from drivers.base import ColorMode
from drivers.errors import ExternalToolError, InputError
from drivers.image_loading import DEFAULT_DPI, MAX_PAGE_PIXELS, ErrorHandler, LoadedPage, size_text
from drivers.process_guard import child_preexec
from drivers.sane_protocol import MAX_HEADER_BYTES

DEFAULT_MEMORY_BYTES = 2 << 30
DEFAULT_CPU_SECONDS = 300
DEFAULT_PAGE_TIMEOUT_S = 180.0  # above image_loading.RENDER_TIMEOUT_S, so a slow renderer is named as such

_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
_BYTES_PER_PIXEL = {"L": 1, "RGB": 3}
_STDERR_KEEP = 4096
_REAP_GRACE_S = 5.0
_TEXT_LIMIT = 2000
_OUT_OF_MEMORY = re.compile(rb"MemoryError|bad_alloc|out of memory|cannot allocate memory", re.IGNORECASE)
# Only these reach the decoder: no SCANSTATION_* setting, nothing of the station's.
_ENV_KEPT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """The limits of one decoder process (one file)."""

    memory_bytes: int = DEFAULT_MEMORY_BYTES  # address space, renderer included
    cpu_seconds: int = DEFAULT_CPU_SECONDS  # CPU time of the decoder (each renderer run has its own)
    page_timeout_s: float = DEFAULT_PAGE_TIMEOUT_S  # longest wait for the next page (or its problem)


class _Ended(Exception):
    """The decoder's stream ended or made no sense; ``detail`` says how (for a malformed answer)."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.detail = detail


class _TimedOut(Exception):
    pass


class DecoderProcess:
    """One ``drivers.decode_worker`` child for one file.  It may be started ahead of its file: it loads
    its modules while the file before is still being stored, then waits for its request."""

    def __init__(self, limits: DecodeLimits | None = None) -> None:
        self.limits = limits or DecodeLimits()
        env = {k: v for k, v in os.environ.items() if k in _ENV_KEPT}
        env.update({
            "PYTHONPATH": _PACKAGE_ROOT,  # the decoder imports this package as its parent does
            "PYTHONSAFEPATH": "1",  # and never a module from its working directory
            "PYTHONDONTWRITEBYTECODE": "1",
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "MALLOC_ARENA_MAX": "2",  # fewer address-space reservations under RLIMIT_AS
        })
        cmd = [sys.executable, "-s", "-m", "drivers.decode_worker", "--parent", str(os.getpid()),
               "--memory", str(self.limits.memory_bytes), "--cpu", str(self.limits.cpu_seconds)]
        try:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                cwd="/", close_fds=True, preexec_fn=child_preexec(),  # None when our limit is already 0
                # its own process group, so that stopping it stops the renderer it may be running
                start_new_session=True,
            )
        except OSError as exc:
            raise ExternalToolError(f"the decoder process could not be started ({exc})") from exc
        self.pid = self.proc.pid
        self._stdout = self.proc.stdout.fileno() if self.proc.stdout else -1
        self._stderr = self.proc.stderr.fileno() if self.proc.stderr else -1
        self._poll = select.poll()
        self._poll.register(self._stdout, select.POLLIN)
        self._poll.register(self._stderr, select.POLLIN)
        self._stderr_open = True
        self._stdout_open = True
        self._stderr_tail = b""
        self._ready = False
        self._used = False
        self._timed_out = False
        self._cpu_used = 0.0

    # ------------------------------------------------------------------ life

    def __enter__(self) -> DecoderProcess:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Stop the decoder (if it still runs) and the renderer it may be running, and reap it; safe to
        call more than once."""
        if self.proc.returncode is None:
            self._kill_group()
            self._reap(block=True)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def _kill_group(self) -> None:
        # Only while the decoder is not reaped (alive or a zombie): its pid, the group's id, is still ours.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def _reap(self, *, block: bool) -> int | None:
        """The exit status (Popen's convention: -N for signal N), or None if it still runs."""
        if self.proc.returncode is not None:
            return self.proc.returncode
        try:
            exited = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT | (0 if block else os.WNOHANG))
            if exited is None:
                return None
            self._kill_group()  # a renderer it left behind would write a page into a removed directory
            _pid, status, usage = os.wait4(self.pid, 0)
        except ChildProcessError:  # reaped elsewhere; the status is lost
            self.proc.returncode = -signal.SIGKILL if self._timed_out else 255
            return self.proc.returncode
        self._cpu_used = usage.ru_utime + usage.ru_stime
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        return self.proc.returncode

    def _wait_for_exit(self) -> int:
        deadline = time.monotonic() + _REAP_GRACE_S
        while (code := self._reap(block=False)) is None:
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                code = self._reap(block=True)
                assert code is not None
                return code
            time.sleep(0.01)
        return code

    # ------------------------------------------------------------------ reading

    def _read_exact(self, n: int, deadline: float) -> bytearray:
        buffer = bytearray(n)
        view = memoryview(buffer)
        have = 0
        while have < n:
            if not self._stdout_open:
                raise _Ended()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _TimedOut()
            for fd, _event in self._poll.poll(max(1, int(remaining * 1000))):
                if fd == self._stderr:
                    self._drain_stderr()
                elif fd == self._stdout:
                    got = os.readv(self._stdout, [view[have:]])
                    if got == 0:
                        self._poll.unregister(self._stdout)
                        self._stdout_open = False
                        raise _Ended()
                    have += got
        return buffer

    def _drain_stderr(self) -> None:
        chunk = os.read(self._stderr, 65536)
        if not chunk:
            self._poll.unregister(self._stderr)
            self._stderr_open = False
            return
        self._stderr_tail = (self._stderr_tail + chunk)[-_STDERR_KEEP:]

    def _frame(self, deadline: float) -> tuple[dict[str, Any], bytearray]:
        (length,) = struct.unpack(">I", self._read_exact(4, deadline))
        if length > MAX_HEADER_BYTES:
            raise _Ended(f"a frame header of {length} bytes")
        try:
            header = json.loads(bytes(self._read_exact(length, deadline)).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _Ended(f"a frame header that is not JSON ({exc})") from None
        if not isinstance(header, dict):
            raise _Ended("a frame header that is not an object")
        nbytes = header.get("nbytes", 0)
        if not isinstance(nbytes, int) or nbytes < 0:
            raise _Ended(f"a payload size of {nbytes!r}")
        if nbytes or header.get("type") == "page":
            expected = _expected_bytes(header)
            if expected <= 0 or expected != nbytes:
                raise _Ended(f"{nbytes} bytes of pixels with the header {_short(header)}")
        return header, (self._read_exact(nbytes, deadline) if nbytes else bytearray())

    def wait_ready(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait for the decoder's "ready" (it has its limits and its modules); its header."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.limits.page_timeout_s)
        try:
            header, _ = self._frame(deadline)
        except (_Ended, _TimedOut, OSError) as exc:
            self.close()
            detail = self._stderr_tail.decode("utf-8", "replace").strip().splitlines()
            raise ExternalToolError(
                "the decoder process did not start" + (f": {detail[-1]}" if detail else f" ({exc or 'no answer'})")
            ) from None
        if header.get("type") != "ready":
            self.close()
            raise ExternalToolError(f"the decoder process did not start (it sent {header.get('type')!r})")
        self._ready = True
        return header

    # ------------------------------------------------------------------ one file

    def pages(
        self,
        path: Path,
        resolution: int = DEFAULT_DPI,
        tmp_dir: Path | None = None,
        *,
        mode: ColorMode = ColorMode.GRAY,
        on_error: ErrorHandler | None = None,
        max_pixels: int = MAX_PAGE_PIXELS,
    ) -> Generator[LoadedPage, None, None]:
        """The pages of ``path``, as :func:`drivers.image_loading.load_pages` yields them (same errors,
        same ``on_error`` contract), decoded in this process's child.  The decoder is closed at the end."""
        if self._used:
            raise RuntimeError("a decoder process decodes one file")
        self._used = True
        path = Path(path)
        try:
            if not self._ready:
                self.wait_ready()
            with _private_dir(tmp_dir) as render_dir:
                try:
                    yield from self._decode(path, resolution, render_dir, mode, on_error, max_pixels)
                finally:
                    self.close()  # before the directory goes: nothing may write into it afterwards
        finally:
            self.close()

    def _decode(self, path: Path, resolution: int, render_dir: Path, mode: ColorMode,
                on_error: ErrorHandler | None, max_pixels: int) -> Generator[LoadedPage, None, None]:
        request = {"path": os.fspath(path), "resolution": resolution, "mode": mode.value,
                   "max_pixels": max_pixels, "render_dir": os.fspath(render_dir)}
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(request).encode("utf-8") + b"\n")
            self.proc.stdin.flush()
        except OSError:
            pass  # it died already; the stream's end says how
        last_page = 0
        while True:
            try:
                header, payload = self._frame(time.monotonic() + self.limits.page_timeout_s)
            except _TimedOut:
                self._timed_out = True
                self.close()
                raise InputError(str(path), f"took longer than {self.limits.page_timeout_s:g} s to decode "
                                            f"page {last_page + 1}; stopped (pages before it were kept)") from None
            except (_Ended, OSError) as exc:
                raise InputError(str(path), self._explain_end(exc, last_page)) from None
            kind = header.get("type")
            if kind == "page":
                number = header.get("page")
                dpi = header.get("dpi")
                if not isinstance(number, int) or number <= last_page or not isinstance(dpi, int) \
                        or header["width"] * header["height"] > max_pixels:
                    self.close()
                    raise InputError(str(path), _malformed(f"a page header {_short(header)}", last_page))
                last_page = number
                image = Image.frombytes(header["mode"], (header["width"], header["height"]), payload)
                del payload
                yield LoadedPage(image, dpi if 1 <= dpi <= 100_000 else DEFAULT_DPI,
                                 f"{path.name} page {number}", number)
                del image
            elif kind == "problem":
                error = InputError(_text(header.get("source")), _text(header.get("reason")))
                if on_error is None:
                    self.close()
                    raise error
                on_error(error)
            elif kind == "failed":
                raise InputError(_text(header.get("source")), _text(header.get("reason")))
            elif kind == "tool":
                raise ExternalToolError(_text(header.get("message")))
            elif kind == "done":
                return
            else:
                self.close()
                raise InputError(str(path), _malformed(f"a frame {_short(header)}", last_page))

    def _explain_end(self, exc: BaseException, last_page: int) -> str:
        """Why the decoder's stream ended before "done", from its exit status and last words."""
        if isinstance(exc, _Ended) and exc.detail:
            self.close()
            return _malformed(exc.detail, last_page)
        code = self._wait_for_exit()
        with contextlib.suppress(OSError):
            while self._stderr_open and self._poll.poll(0):
                self._drain_stderr()
        where = f" page {last_page + 1}" if last_page else ""
        kept = " (pages before it were kept)" if last_page else ""
        out_of_memory = bool(_OUT_OF_MEMORY.search(self._stderr_tail))
        if code < 0:
            sig = -code
            if sig == signal.SIGXCPU or (sig == signal.SIGKILL and self._cpu_used >= self.limits.cpu_seconds):
                return (f"used more than {self.limits.cpu_seconds} s of processor time to decode{where}; "
                        f"stopped{kept}")
            if out_of_memory:
                return f"needs more than {size_text(self.limits.memory_bytes)} to decode{where}{kept}"
            return f"the decoder crashed (signal {sig}, {_signal_name(sig)}) while decoding{where}{kept}"
        if out_of_memory:
            return f"needs more than {size_text(self.limits.memory_bytes)} to decode{where}{kept}"
        lines = self._stderr_tail.decode("utf-8", "replace").strip().splitlines()
        last = f": {lines[-1][:300]}" if lines else ""
        return f"the decoder stopped (exit code {code}) while decoding{where}{kept}{last}"


def decode_pages(
    path: Path,
    resolution: int = DEFAULT_DPI,
    tmp_dir: Path | None = None,
    *,
    mode: ColorMode = ColorMode.GRAY,
    on_error: ErrorHandler | None = None,
    max_pixels: int = MAX_PAGE_PIXELS,
    limits: DecodeLimits | None = None,
) -> Generator[LoadedPage, None, None]:
    """:func:`drivers.image_loading.load_pages`, run in a fresh limited child process."""
    yield from DecoderProcess(limits).pages(path, resolution, tmp_dir, mode=mode, on_error=on_error,
                                            max_pixels=max_pixels)


@contextlib.contextmanager
def _private_dir(tmp_dir: Path | None) -> Generator[Path, None, None]:
    """A directory for this file's rendered pages, removed afterwards with anything a killed decoder left."""
    if tmp_dir is not None:
        tmp_dir.mkdir(parents=True, exist_ok=True)
        base: str | None = os.fspath(tmp_dir)
    else:
        shm = Path("/dev/shm")
        base = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None  # RAM-backed where possible
    name = tempfile.mkdtemp(prefix="decode-", dir=base)
    try:
        yield Path(name)
    finally:
        shutil.rmtree(name, ignore_errors=True)


def _expected_bytes(header: dict[str, Any]) -> int:
    mode, width, height = header.get("mode"), header.get("width"), header.get("height")
    if header.get("type") != "page" or not isinstance(width, int) or not isinstance(height, int) \
            or width <= 0 or height <= 0:
        return -1
    if mode == "1":
        return (width + 7) // 8 * height
    if isinstance(mode, str) and mode in _BYTES_PER_PIXEL:
        return width * height * _BYTES_PER_PIXEL[mode]
    return -1


def _malformed(detail: str, last_page: int) -> str:
    where = f" after page {last_page}" if last_page else ""
    return f"the decoder sent a malformed answer{where} ({detail}); stopped"


def _text(value: object) -> str:
    return str(value)[:_TEXT_LIMIT] if value is not None else "(no detail)"


def _short(header: dict[str, Any]) -> str:
    return json.dumps(header)[:200]


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return "unknown signal"

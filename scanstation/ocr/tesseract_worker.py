"""A long-lived tesseract worker process: models loaded once, pages handed over in memory.

The parent (:class:`TesseractWorker`) starts ``python -m scanstation.ocr.tesseract_worker DIR`` and talks to
it over its stdin/stdout: a request is a JSON header and a payload (the page's pixels), a reply the same
(the page's text and text-only PDF).  The library (scanstation.ocr.tesseract_library) lives only in the child,
so a crash in it kills the worker, never its parent: the page fails with "tesseract crashed", exactly as
with the tesseract program, and the next page gets a fresh worker.  A page that runs past its timeout is
stopped by the library's own deadline, and if the library does not come back by then the worker is
killed.  The child dies with its parent (setpriv --pdeathsig), and its files (the PDF renderer's output,
read and removed at once) live in a private directory in RAM that the parent removes on close or death.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import secrets
import select
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from drivers.process_guard import child_preexec, no_core_dumps
from scanstation.errors import ExternalToolError, OcrError
from scanstation.ocr.tesseract_program import _SETPRIV, DEFAULT_VARIABLES, _child_env, _describe_exit, debian_package

# Lets a deployment (or an A/B measurement) choose how tesseract is run: "library" (this module,
# default when libtesseract is installed) or "program" (one tesseract process per run).
ENGINE_ENV = "SCANSTATION_TESSERACT_ENGINE"
_HEADER = struct.Struct(">II")  # header length, payload length
_MAX_HEADER = 1 << 20
_MAX_PAYLOAD = 1 << 30
# After its deadline the library stops at the next word; if it has not answered by this much later
# (stuck in layout analysis, say) the worker is killed.
_KILL_GRACE = 5.0
_STARTUP_TIMEOUT = 30.0
_PYTHON = sys.executable  # the worker runs on the parent's interpreter (and so its packages)
_STDERR_TAIL = 600


# ---------------------------------------------------------------- framing (both sides)


def _frame(header: dict[str, Any], payload: bytes = b"") -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode()
    return _HEADER.pack(len(head), len(payload)) + head + payload


def _read_exact(stream: IO[bytes], n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return bytes(data)


def _read_frame(stream: IO[bytes]) -> tuple[dict[str, Any], bytes]:
    head_len, payload_len = _HEADER.unpack(_read_exact(stream, _HEADER.size))
    if head_len > _MAX_HEADER or payload_len > _MAX_PAYLOAD:
        raise ValueError(f"oversized frame ({head_len}, {payload_len})")
    header = json.loads(_read_exact(stream, head_len))
    if not isinstance(header, dict):
        raise ValueError("frame header is not an object")
    return header, _read_exact(stream, payload_len)


# ---------------------------------------------------------------- the child


def _serve(work_dir: Path, requests: IO[bytes], replies: IO[bytes]) -> int:
    from scanstation.ocr import tesseract_library as tesseract_api

    try:
        reader = tesseract_api.Reader(DEFAULT_VARIABLES)
        hello: dict[str, Any] = {"ok": True, "version": tesseract_api.version()}
    except tesseract_api.LibraryError as e:
        replies.write(_frame({"ok": False, "kind": "library", "message": str(e)}))
        replies.flush()
        return 3
    replies.write(_frame(hello))
    replies.flush()
    while True:
        try:
            request, payload = _read_frame(requests)
        except EOFError:
            break
        reply: dict[str, Any]
        body = b""
        try:
            lang, psm = str(request["lang"]), int(request["psm"])
            if request["op"] == "load":
                reader.load(lang, psm)
                reply = {"ok": True}
            else:
                page = tesseract_api.PageImage(
                    str(request["mode"]), int(request["width"]), int(request["height"]), int(request["dpi"]), payload
                )
                deadline = request.get("deadline")
                text, pdf, confidence = reader.read(page, lang, psm, work_dir,
                                                    deadline=float(deadline) if deadline else None)
                encoded = text.encode("utf-8")
                reply, body = {"ok": True, "text": len(encoded), "confidence": confidence}, encoded + pdf
        except tesseract_api.LanguageError as e:
            reply = {"ok": False, "kind": "language", "message": str(e)}
        except tesseract_api.DeadlineExceeded as e:
            reply = {"ok": False, "kind": "deadline", "message": str(e)}
        except (tesseract_api.LibraryError, KeyError, TypeError, ValueError) as e:
            reply = {"ok": False, "kind": "failed", "message": str(e)}
        replies.write(_frame(reply, body))
        replies.flush()
    reader.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    no_core_dumps()  # pages pass through this process (libtesseract)
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        print("usage: python -m scanstation.ocr.tesseract_worker WORK_DIR", file=sys.stderr)
        return 2
    # Ctrl-C reaches the whole process group; the parent decides when this worker stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return _serve(Path(args[0]), sys.stdin.buffer, sys.stdout.buffer)


# ---------------------------------------------------------------- the parent's handle


def engine_wanted(tesseract_cmd: str | os.PathLike[str] | None = None) -> bool:
    """Whether pages should go to a library worker: not when a tesseract program was named."""
    from scanstation.ocr.tesseract_program import TESSERACT_ENV

    choice = os.environ.get(ENGINE_ENV, "library").strip().lower()
    return choice != "program" and tesseract_cmd is None and not os.environ.get(TESSERACT_ENV)


@dataclass(frozen=True, slots=True)
class PageRead:
    """What the worker made of one page."""

    text: str  # raw tesseract text (callers normalise, see scanstation.ocr.pages)
    pdf: bytes  # text-only PDF page
    confidence: float | None  # mean word confidence 0-100; None when no word was found


_DIR_PREFIX = "tessworker-"


def sweep_orphans(parent_dir: Path) -> int:
    """Remove the directories of workers whose owning process is gone; how many were removed.

    A worker's owner removes its directory on close; one killed outright (the OOM killer, a pool worker
    that died) cannot, and its worker dies with it (parent-death signal) mid-page perhaps, its text
    layer file still there.
    """
    removed = 0
    for path in parent_dir.glob(f"{_DIR_PREFIX}*"):
        owner = path.name.removeprefix(_DIR_PREFIX).split("-", 1)[0]
        if not owner.isdigit() or _alive(int(owner)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WorkerUnavailable(ExternalToolError):
    """The library worker cannot run here (no libtesseract): use the tesseract program instead."""


class TesseractWorker:
    """One tesseract worker process and the pages it reads, one at a time (not thread-safe).

    Started at once, so that its start-up and any :meth:`preload` overlap the caller's own work; a
    worker that died is replaced on the next :meth:`read`.  It runs at its parent's priority (the
    station's niced OCR pool workers pass theirs on).  The parent-death signal is tied to the *thread*
    that started the process (Linux): a worker started, or restarted, from a thread is killed when that
    thread ends, so handles belong to long-lived threads (the ``ocr`` command's recognisers, a pool
    process's main thread).
    """

    def __init__(self, work_dir: Path, *, start: bool = True) -> None:
        """``start`` False: the process starts with the first :meth:`preload` or :meth:`read`."""
        self._parent_dir = work_dir
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None
        self._pending = 0  # replies not read yet: the hello, and preloads
        self._greeted = False
        self._stderr: collections.deque[bytes] = collections.deque(maxlen=64)
        self.version: str | None = None
        self.starts = 0
        if start:
            self._start()

    # -------------------------------------------------------- process life

    def _start(self) -> None:
        # Named after the owning process, so that whoever sweeps the parent directory after that process
        # was killed can tell a dead worker's directory from a live one (see sweep_orphans).
        self._dir = self._parent_dir / f"{_DIR_PREFIX}{os.getpid()}-{secrets.token_hex(6)}"
        self._dir.mkdir(mode=0o700)
        cmd = [_PYTHON, "-m", "scanstation.ocr.tesseract_worker", os.fspath(self._dir)]
        if _SETPRIV is not None:
            cmd = [_SETPRIV, "--pdeathsig", "KILL", "--", *cmd]
        env = _child_env(self._dir)
        # The worker must import this package as its parent does (a source tree, an A/B work tree).
        package_root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        try:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=self._dir,
                preexec_fn=child_preexec(),  # RLIMIT_CORE 0 from the start (None when inherited)
            )
        except OSError as e:
            self._remove_dir()
            raise WorkerUnavailable(f"cannot start the OCR worker: {e.strerror or e}") from e
        self._stderr.clear()
        threading.Thread(target=self._drain_stderr, args=(self._proc,), daemon=True, name="tess-stderr").start()
        self._pending = 1  # the hello
        self._greeted = False
        self.starts += 1

    def _drain_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        with proc.stderr:
            for line in proc.stderr:
                self._stderr.append(line)

    def _stderr_tail(self) -> str:
        text = b"".join(self._stderr).decode("utf-8", "replace").strip()
        return text[-_STDERR_TAIL:] if text else "(no error output)"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _stop(self) -> int | None:
        """Kill the process (if still there), reap it, remove its directory; its exit status."""
        proc, self._proc = self._proc, None
        code = None
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            code = proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None and not stream.closed:
                    with contextlib.suppress(OSError):
                        stream.close()
        self._remove_dir()
        self._pending = 0
        return code

    def _remove_dir(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def close(self) -> None:
        """Let the worker exit (killed if it does not within two seconds), then remove its directory."""
        proc = self._proc
        if proc is not None and proc.poll() is None and proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2)
        self._stop()

    def stop(self) -> None:
        """End the worker at once (between pages it holds nothing but its models) and remove its
        directory: what a caller that is done does, rather than wait 20-30 ms for it to free its models
        and tear its interpreter down."""
        self._stop()

    def __enter__(self) -> TesseractWorker:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -------------------------------------------------------- talking

    def _send(self, frame: bytes, deadline: float, label: str) -> None:
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        fd = proc.stdin.fileno()
        view = memoryview(frame)
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            _r, writable, _x = select.select([], [fd], [], left)
            if not writable:
                continue
            try:
                written = os.write(fd, view[: 1 << 16])
            except BrokenPipeError:
                raise self._died(label) from None
            view = view[written:]

    def _receive(self, deadline: float, label: str) -> tuple[dict[str, Any], bytes]:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        fd = proc.stdout.fileno()

        def exact(n: int) -> bytes:
            data = bytearray()
            while len(data) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                readable, _w, _x = select.select([fd], [], [], left)
                if not readable:
                    continue
                chunk = os.read(fd, min(n - len(data), 1 << 20))
                if not chunk:
                    raise self._died(label)
                data += chunk
            return bytes(data)

        head_len, payload_len = _HEADER.unpack(exact(_HEADER.size))
        if head_len > _MAX_HEADER or payload_len > _MAX_PAYLOAD:
            self._stop()
            raise OcrError(f"the OCR worker sent a malformed reply for {label}")
        header = json.loads(exact(head_len))
        return header, exact(payload_len)

    def _died(self, label: str) -> OcrError:
        # Give the drain thread a moment to collect the dying words.
        time.sleep(0.05)
        tail = self._stderr_tail()
        code = self._stop()
        how = _describe_exit(code) if code is not None else "stopped"
        return OcrError(f"tesseract {how} on {label}: {tail}")

    def _settle(self, deadline: float, label: str) -> None:
        """Read the replies still owed (the hello, preloads) so the next one is the page's."""
        while self._pending:
            try:
                header, _ = self._receive(deadline, label)
            except OcrError as e:
                if self._greeted:
                    raise
                # It died before saying hello: a broken installation, not a page it could not read.
                raise WorkerUnavailable(f"the OCR worker did not start ({e.message})") from None
            self._pending -= 1
            if not self._greeted:
                self._greeted = True
                if header.get("kind") == "library":
                    self._stop()
                    raise WorkerUnavailable(f"the tesseract library cannot be used: {header.get('message')}")
                self.version = str(header.get("version"))
            # A preload that failed is reported by the read that needs the model, in its own words.

    def ensure_started(self) -> None:
        """Start the process now (if it is not running), so that it is up by the first page."""
        if self._proc is None or self._proc.poll() is not None:
            self._stop()
            self._start()

    def preload(self, lang: str, psm: int) -> None:
        """Ask the worker to load a model now, while the caller prepares the pages that need it."""
        self.ensure_started()
        try:
            self._send(_frame({"op": "load", "lang": lang, "psm": psm}), time.monotonic() + _STARTUP_TIMEOUT,
                       f"loading {lang}")
        except (TimeoutError, OcrError):
            self._stop()
            return
        self._pending += 1

    def read(self, data: bytes, mode: str, size: tuple[int, int], dpi: int, lang: str, psm: int, *,
             timeout: float, label: str) -> PageRead:
        """The page's raw text, text-only PDF page and mean word confidence.

        OcrError on a timeout (its cause a subprocess.TimeoutExpired, as with the program), a crash or a
        failure; ExternalToolError when the language cannot be loaded; WorkerUnavailable when the
        library cannot be used at all.
        """
        if self._proc is None or self._proc.poll() is not None:
            if self._proc is not None:
                self._stop()
            self._start()
        start = time.monotonic()
        try:
            self._settle(start + _STARTUP_TIMEOUT + timeout, label)
            self._stderr.clear()  # what earlier pages said is no explanation for this one
            hard = time.monotonic() + timeout + _KILL_GRACE
            request = {"op": "read", "lang": lang, "psm": psm, "mode": mode, "width": size[0], "height": size[1],
                       "dpi": dpi, "deadline": timeout}
            self._send(_frame(request, data), hard, label)
            header, body = self._receive(hard, label)
        except TimeoutError:
            self._stop()
            raise OcrError(f"tesseract timed out after {timeout:g} s on {label}") from subprocess.TimeoutExpired(
                "tesseract", timeout
            )
        if header.get("ok"):
            split = int(header["text"])
            confidence = header.get("confidence")
            return PageRead(body[:split].decode("utf-8", "replace"), body[split:],
                            float(confidence) if confidence is not None else None)
        kind, message = header.get("kind"), header.get("message")
        if kind == "deadline":
            raise OcrError(f"tesseract timed out after {timeout:g} s on {label}") from subprocess.TimeoutExpired(
                "tesseract", timeout
            )
        if kind == "language":
            packages = " ".join(debian_package(p) for p in lang.split("+") if p)
            raise ExternalToolError(f"{message}; reinstall: apt-get install {packages}")
        raise OcrError(f"tesseract failed on {label}: {message}")


if __name__ == "__main__":
    sys.exit(main())

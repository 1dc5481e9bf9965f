"""Tesseract as a library (libtesseract's C API through ctypes), for long-lived OCR worker processes.

The tesseract program (scanstation.ocr.tesseract_program) loads its models for every run, and reads each page from
a file the caller has written; 0.06-0.12 s of model loading per run and a file written and read per page
are a few per cent of a document's OCR.  A process that keeps the library loaded reads page after page
with its models loaded once, and takes the page's pixels straight from memory.

Only ever loaded inside a worker process (scanstation.ocr.tesseract_worker): a crash in the library then
kills the worker, not the station, and the page is flagged as with the program.  Same recogniser, same
parameters, same text-only PDF renderer as the program (tests compare the two on real pages).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# Tested with the Debian 12 library (5.3.0); the C API used here has been stable since 4.0.
_SONAMES = ("libtesseract.so.5", "libtesseract.so.4")
_OEM_DEFAULT = 3  # OEM_DEFAULT: LSTM where the model has it, as the program's default


class LibraryError(Exception):
    """The library is missing, too old, or refused a model or a page."""


class LanguageError(LibraryError):
    """A language model could not be loaded."""


class DeadlineExceeded(LibraryError):
    """Recognition stopped at its deadline."""


@dataclass(frozen=True, slots=True)
class PageImage:
    """One page's pixels as tesseract takes them: mode "1" (packed rows, a set bit is white) or "L"."""

    mode: str
    width: int
    height: int
    dpi: int
    data: bytes

    def __post_init__(self) -> None:
        if self.mode not in ("1", "L"):
            raise ValueError(f"tesseract pages are mode 1 or L, not {self.mode}")
        if self.width <= 0 or self.height <= 0 or self.dpi <= 0:
            raise ValueError(f"bad page geometry {self.width}x{self.height} at {self.dpi} dpi")
        if len(self.data) != self.bytes_per_line * self.height:
            raise ValueError(f"{len(self.data)} bytes do not make a {self.mode} page of {self.width}x{self.height}")

    @property
    def bytes_per_line(self) -> int:
        return (self.width + 7) // 8 if self.mode == "1" else self.width


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    vp, cp, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    text = ctypes.POINTER(ctypes.c_char)  # freed with TessDeleteText, so not c_char_p (which copies)
    signatures: dict[str, tuple[list[type], type | None]] = {
        "TessVersion": ([], cp),
        "TessBaseAPICreate": ([], vp),
        "TessBaseAPIDelete": ([vp], None),
        "TessBaseAPIEnd": ([vp], None),
        "TessBaseAPIInit2": ([vp, cp, cp, i], i),
        "TessBaseAPISetVariable": ([vp, cp, cp], i),
        "TessBaseAPISetPageSegMode": ([vp, i], None),
        "TessBaseAPISetImage": ([vp, cp, i, i, i, i], None),
        "TessBaseAPISetSourceResolution": ([vp, i], None),
        "TessBaseAPISetInputName": ([vp, cp], None),
        "TessBaseAPIGetDatapath": ([vp], cp),
        "TessBaseAPIRecognize": ([vp, vp], i),
        "TessBaseAPIGetUTF8Text": ([vp], text),
        "TessBaseAPIMeanTextConf": ([vp], i),
        "TessBaseAPIClear": ([vp], None),
        "TessDeleteText": ([text], None),
        "TessMonitorCreate": ([], vp),
        "TessMonitorDelete": ([vp], None),
        "TessMonitorSetDeadlineMSecs": ([vp, i], None),
        "TessPDFRendererCreate": ([cp, cp, i], vp),
        "TessResultRendererBeginDocument": ([vp, cp], i),
        "TessResultRendererAddImage": ([vp, vp], i),
        "TessResultRendererEndDocument": ([vp], i),
        "TessDeleteResultRenderer": ([vp], None),
    }
    for name, (args, result) in signatures.items():
        try:
            fn = getattr(lib, name)
        except AttributeError as e:
            raise LibraryError(f"the tesseract library lacks {name}: too old or not tesseract") from e
        fn.argtypes = args
        fn.restype = result
    return lib


_lib: ctypes.CDLL | None = None


def library() -> ctypes.CDLL:
    """The loaded, typed library; LibraryError when it is not installed."""
    global _lib
    if _lib is None:
        names = [*_SONAMES, *filter(None, [ctypes.util.find_library("tesseract")])]
        errors = []
        for name in names:
            try:
                _lib = _bind(ctypes.CDLL(name))
                break
            except OSError as e:
                errors.append(str(e))
        else:
            raise LibraryError(f"libtesseract not found ({'; '.join(errors) or 'no candidates'})")
    return _lib


def version() -> str:
    raw = library().TessVersion()
    return raw.decode("ascii", "replace") if raw else "unknown"


class Reader:
    """Tesseract with its models loaded, one API object per (languages, page segmentation mode).

    Not thread-safe: one reader per worker process, used by its one thread.
    """

    def __init__(self, variables: Mapping[str, str] | None = None) -> None:
        self._lib = library()
        self._variables = dict(variables or {})
        self._apis: dict[tuple[str, int], int] = {}

    def load(self, lang: str, psm: int) -> int:
        """The API object for a model, loading it on first use (LanguageError if it cannot be)."""
        key = (lang, psm)
        api = self._apis.get(key)
        if api is not None:
            return api
        lib = self._lib
        handle = lib.TessBaseAPICreate()
        if not handle:
            raise LibraryError("tesseract could not create an API object (out of memory?)")
        # datapath None: the library's compiled-in tessdata (or TESSDATA_PREFIX), as the program uses.
        if lib.TessBaseAPIInit2(handle, None, lang.encode(), _OEM_DEFAULT) != 0:
            lib.TessBaseAPIDelete(handle)
            raise LanguageError(f"tesseract could not load language '{lang}'")
        for name, value in self._variables.items():
            if not lib.TessBaseAPISetVariable(handle, name.encode(), str(value).encode()):
                lib.TessBaseAPIEnd(handle)
                lib.TessBaseAPIDelete(handle)
                raise LibraryError(f"tesseract has no parameter {name}")
        lib.TessBaseAPISetPageSegMode(handle, psm)
        self._apis[key] = handle
        return int(handle)

    def read(
        self,
        page: PageImage,
        lang: str,
        psm: int,
        work_dir: Path,
        *,
        deadline: float | None = None,
    ) -> tuple[str, bytes, float | None]:
        """Recognise one page: its raw text, tesseract's text-only PDF page (no image in it) and the mean
        word confidence (0-100; None without words).

        ``deadline`` (seconds) stops recognition part-way (DeadlineExceeded).  The PDF renderer can only
        write files: it writes into ``work_dir`` (private, in RAM) and the file is read and removed here.
        """
        lib = self._lib
        api = self.load(lang, psm)
        lib.TessBaseAPISetImage(api, page.data, page.width, page.height, 0 if page.mode == "1" else 1,
                                page.bytes_per_line)
        lib.TessBaseAPISetSourceResolution(api, page.dpi)
        lib.TessBaseAPISetInputName(api, b"page")
        monitor = lib.TessMonitorCreate()
        try:
            if deadline is not None:
                lib.TessMonitorSetDeadlineMSecs(monitor, max(1, int(deadline * 1000)))
            if lib.TessBaseAPIRecognize(api, monitor) != 0:
                raise (DeadlineExceeded if deadline is not None else LibraryError)(
                    "tesseract stopped before the end of the page"
                )
        finally:
            lib.TessMonitorDelete(monitor)
        try:
            raw = lib.TessBaseAPIGetUTF8Text(api)
            if not raw:
                raise LibraryError("tesseract returned no text object")
            try:
                text = ctypes.string_at(raw).decode("utf-8", "replace")
            finally:
                lib.TessDeleteText(raw)
            confidence = float(lib.TessBaseAPIMeanTextConf(api)) if text.strip() else None
            return text, self._text_pdf(api, work_dir), confidence
        finally:
            lib.TessBaseAPIClear(api)

    def _text_pdf(self, api: int, work_dir: Path) -> bytes:
        lib = self._lib
        base = work_dir / f"tess-{secrets.token_hex(8)}"
        path = base.with_name(base.name + ".pdf")
        renderer = lib.TessPDFRendererCreate(os.fsencode(base), lib.TessBaseAPIGetDatapath(api), 1)
        if not renderer:
            raise LibraryError("tesseract could not start its PDF renderer")
        try:
            ok = (
                lib.TessResultRendererBeginDocument(renderer, b"")
                and lib.TessResultRendererAddImage(renderer, api)
                and lib.TessResultRendererEndDocument(renderer)
            )
            data = path.read_bytes() if ok and path.exists() else b""
        finally:
            lib.TessDeleteResultRenderer(renderer)
            # Plaintext OCR output must not outlive the call, not even in RAM.
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        if not data.startswith(b"%PDF"):
            raise LibraryError("tesseract wrote no PDF text layer")
        return data

    def close(self) -> None:
        lib = self._lib
        for api in self._apis.values():
            lib.TessBaseAPIEnd(api)
            lib.TessBaseAPIDelete(api)
        self._apis.clear()


__all__ = ["DeadlineExceeded", "LanguageError", "LibraryError", "PageImage", "Reader", "library", "version"]

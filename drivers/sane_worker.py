"""Child-process side of the SANE driver: owns libsane, maps settings to options, streams pages to the parent."""

# Run as ``python -m drivers.sane_worker``; the parent (drivers/sane_driver.py) writes one JSON request line
# on stdin and reads length-prefixed frames from stdout.  libsane and the vendor back end live only in this
# process, so a back end that segfaults, leaks or hangs costs one child process, never the station.
#
# Wire format (child -> parent), one frame per message:
#     4-byte big-endian header length | UTF-8 JSON header | header["nbytes"] bytes of payload (pages only)
# JSON plus raw bytes rather than pickle: the child runs vendor code, and unpickling its output would let a
# compromised back end run code in the parent.
#
# Commands (parent -> child), one line each: the request (JSON), then "next" or "cancel" after every page.
# The child scans sheet N+1 only after the parent has persisted page N and said "next"; a sheet is never
# pulled through the feeder while the station could still lose the previous one.
#
# The pure helpers (status table, source/mode matching, resolution choice, option parsing) import nothing
# from SANE so the parent and the tests can use them without opening a device.

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import enum
import faulthandler
import json
import os
import queue
import re
import signal
import struct
import sys
import threading
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import IO, Any

from drivers.base import ColorMode, Source

# --------------------------------------------------------------------------------------------------
# SANE constants (sane/sane.h).  Duplicated here so the parent never has to import _sane.

TYPE_BOOL, TYPE_INT, TYPE_FIXED, TYPE_STRING, TYPE_BUTTON, TYPE_GROUP = range(6)
UNIT_NONE, UNIT_PIXEL, UNIT_BIT, UNIT_MM, UNIT_DPI, UNIT_PERCENT, UNIT_MICROSECOND = range(7)
CAP_SOFT_SELECT = 1
CAP_INACTIVE = 32


class Status(enum.IntEnum):
    """SANE_Status codes."""

    GOOD = 0
    UNSUPPORTED = 1
    CANCELLED = 2
    DEVICE_BUSY = 3
    INVAL = 4
    EOF = 5
    JAMMED = 6
    NO_DOCS = 7
    COVER_OPEN = 8
    IO_ERROR = 9
    NO_MEM = 10
    ACCESS_DENIED = 11
    WARMING_UP = 12
    HW_LOCKED = 13


# python-sane raises ``_sane.error`` carrying only ``sane_strstatus(status)`` -- the status code itself is
# not exposed.  So the code is recovered by reverse lookup of that text.  This is the ONE table that does
# it: the canonical sane_strstatus() texts of sane-backends (both spellings of "cancel(l)ed" exist across
# versions), extended at run time with whatever the installed libsane really returns (see status_table()).
CANONICAL_STATUS_TEXT: dict[str, Status] = {
    "Success": Status.GOOD,
    "Operation not supported": Status.UNSUPPORTED,
    "Operation was cancelled": Status.CANCELLED,
    "Operation was canceled": Status.CANCELLED,
    "Device busy": Status.DEVICE_BUSY,
    "Invalid argument": Status.INVAL,
    "End of file reached": Status.EOF,
    "Document feeder jammed": Status.JAMMED,
    "Document feeder out of documents": Status.NO_DOCS,
    "Scanner cover is open": Status.COVER_OPEN,
    "Error during device I/O": Status.IO_ERROR,
    "Out of memory": Status.NO_MEM,
    "Access to resource has been denied": Status.ACCESS_DENIED,
    "Lamp not ready, please retry": Status.WARMING_UP,
    "Scanner mechanism locked for transport": Status.HW_LOCKED,
}

_status_table: dict[str, Status] | None = None


def status_table() -> dict[str, Status]:
    """Message text -> status, from the installed libsane's own sane_strstatus() plus the canonical texts."""
    global _status_table
    if _status_table is None:
        table = dict(CANONICAL_STATUS_TEXT)
        table.update(_libsane_status_texts())
        _status_table = table
    return _status_table


def _libsane_status_texts() -> dict[str, Status]:
    # Asking the library that produced the message is exact even if a distribution patches the wording.
    # (_sane has already loaded libsane.so.1, so this is a lookup, not a second load.)
    try:
        lib = ctypes.CDLL("libsane.so.1")
    except OSError:
        name = ctypes.util.find_library("sane")
        if name is None:
            return {}
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            return {}
    strstatus = getattr(lib, "sane_strstatus", None)
    if strstatus is None:
        return {}
    strstatus.restype = ctypes.c_char_p
    strstatus.argtypes = [ctypes.c_int]
    texts: dict[str, Status] = {}
    for status in Status:
        raw = strstatus(int(status))
        if raw and not raw.startswith(b"Unknown SANE status"):
            texts[raw.decode("latin-1")] = status
    return texts


def status_from_message(message: str) -> Status | None:
    """The SANE status behind a ``_sane.error`` message, or None for python-sane's own errors."""
    return status_table().get(message.strip())


# --------------------------------------------------------------------------------------------------
# Option descriptors and the pure mapping helpers.


@dataclass(frozen=True, slots=True)
class OptionInfo:
    """One SANE option descriptor, as returned by python-sane's get_options()."""

    index: int
    name: str
    title: str
    desc: str
    type: int
    unit: int
    size: int
    cap: int
    constraint: Any  # None, (min, max, quant) or a list of allowed values

    @property
    def active(self) -> bool:
        return not self.cap & CAP_INACTIVE

    @property
    def settable(self) -> bool:
        return bool(self.cap & CAP_SOFT_SELECT)

    @property
    def is_array(self) -> bool:
        # SANE_Word is 4 bytes; a bigger numeric option is a vector (gamma tables) that python-sane can't set.
        return self.type in (TYPE_BOOL, TYPE_INT, TYPE_FIXED) and self.size > 4

    @classmethod
    def from_tuple(cls, raw: Sequence[Any]) -> OptionInfo:
        index, name, title, desc, typ, unit, size, cap, constraint = raw
        return cls(int(index), name or "", title or "", desc or "", typ, unit, size, cap, constraint)


def option_key(name: str) -> str:
    """Canonical option name: SANE spells them with dashes, python-sane with underscores; accept both."""
    return name.strip().lower().replace("_", "-")


class SettingError(Exception):
    """A requested source, mode, page size or raw option the device cannot take (a usage problem)."""


def _source_kind(name: str) -> Source | None:
    n = name.lower()
    if "duplex" in n or "both sides" in n:
        return Source.DUPLEX
    if "flatbed" in n or "document table" in n or "platen" in n or n.strip() == "normal":
        return Source.FLATBED
    if "adf" in n or "feeder" in n or "automatic document" in n:
        # "ADF Back" scans only the reverse side of each sheet: not what "adf" means to an operator.
        if "back" in n or "rear" in n:
            return None
        return Source.ADF
    return None


def match_source(wanted: Source, offered: Sequence[str]) -> str | None:
    """The back end's own source name for ``wanted``, matched case-insensitively ("FlatBed", "ADF Front")."""
    for name in offered:  # first in the device's order: "ADF Front" before vendor variants
        if _source_kind(name) == wanted:
            return name
    return None


# Ordered by preference; exact (case-insensitive) matches win over substrings.
_MODE_WORDS: dict[ColorMode, tuple[str, ...]] = {
    ColorMode.GRAY: ("gray", "grey", "grayscale", "greyscale", "true gray", "8bit gray"),
    ColorMode.COLOR: ("color", "colour", "24bit color", "rgb"),
    ColorMode.LINEART: ("lineart", "line art", "binary", "black & white", "black and white", "bw",
                        "monochrome", "halftone"),
}


def match_mode(wanted: ColorMode, offered: Sequence[str]) -> str | None:
    """The back end's own mode name for ``wanted`` ("Gray", "Color", "Lineart", "Binary", "Halftone" ...)."""
    words = _MODE_WORDS[wanted]
    lowered = [(name, name.strip().lower()) for name in offered]
    for word in words:
        for name, low in lowered:
            if low == word:
                return name
    for word in words:
        for name, low in lowered:
            # "Gray Halftone" is a lineart variant, not gray
            if word in low and (wanted is ColorMode.LINEART or "halftone" not in low):
                return name
    return None


# Values offered for a resolution *range*: what operators and scanning guidance actually use.
COMMON_RESOLUTIONS = (75, 100, 150, 200, 240, 300, 400, 600, 1200)


def nearest_resolution(wanted: float, constraint: Any) -> float:
    """The supported value nearest to ``wanted`` (ties go to the higher, sharper value)."""
    if isinstance(constraint, (list, tuple)) and constraint and not _is_range(constraint):
        values = [float(v) for v in constraint]
        return min(values, key=lambda v: (abs(v - wanted), -v))
    if _is_range(constraint):
        lo, hi, quant = (float(x) for x in constraint)
        value = min(max(wanted, lo), hi)
        if quant > 0:
            value = lo + round((value - lo) / quant) * quant
            value = min(value, hi)
        return value
    return float(wanted)


def _is_range(constraint: Any) -> bool:
    # python-sane gives a range as a 3-tuple and a word/string list as a list.
    return isinstance(constraint, tuple) and len(constraint) == 3


def offered_resolutions(constraint: Any) -> tuple[int, ...]:
    """Discrete resolutions for Capabilities: the word list itself, or common values inside a range."""
    if _is_range(constraint):
        lo, hi, _quant = constraint
        values = {round(nearest_resolution(r, constraint)) for r in COMMON_RESOLUTIONS if lo <= r <= hi}
        return tuple(sorted(values))
    if isinstance(constraint, list) and constraint:
        return tuple(sorted({round(float(v)) for v in constraint if float(v) > 0}))
    return COMMON_RESOLUTIONS


PAGE_SIZES_MM: dict[str, tuple[float, float] | None] = {
    "a4": (210.0, 297.0),
    "letter": (215.9, 279.4),
    "legal": (215.9, 355.6),
    "max": None,  # the whole scan area the device offers
}

_TRUE = {"1", "yes", "true", "on", "y"}
_FALSE = {"0", "no", "false", "off", "n"}


def parse_option_value(option: OptionInfo, raw: str) -> int | float | str:
    """Convert an ``--option NAME=VALUE`` string to the option's SANE type, checking list constraints."""
    text = raw.strip()
    if option.type == TYPE_BOOL:
        if text.lower() in _TRUE:
            return 1
        if text.lower() in _FALSE:
            return 0
        raise SettingError(f"option {option.name!r} is yes/no, not {raw!r}")
    if option.type in (TYPE_BUTTON, TYPE_GROUP):
        raise SettingError(f"option {option.name!r} is a button and takes no value")
    if option.is_array:
        raise SettingError(f"option {option.name!r} is a list of values (e.g. a gamma table); not supported")
    if option.type == TYPE_STRING:
        if isinstance(option.constraint, list) and option.constraint:
            # Back ends compare strings exactly; operators type "gray" for "Gray".
            for allowed in option.constraint:
                if str(allowed).lower() == text.lower():
                    return str(allowed)
            raise SettingError(
                f"option {option.name!r} accepts {' | '.join(map(str, option.constraint))}, not {raw!r}"
            )
        return text
    number: int | float
    if option.type == TYPE_INT:
        try:
            number = int(text, 0)
        except ValueError:
            raise SettingError(f"option {option.name!r} needs a whole number, not {raw!r}") from None
    else:
        try:
            number = float(text)
        except ValueError:
            raise SettingError(f"option {option.name!r} needs a number, not {raw!r}") from None
    if isinstance(option.constraint, list) and option.constraint and number not in option.constraint:
        raise SettingError(
            f"option {option.name!r} accepts {' | '.join(map(_num, option.constraint))}, not {raw!r}"
        )
    if _is_range(option.constraint):
        lo, hi, _quant = option.constraint
        if not lo <= number <= hi:
            raise SettingError(f"option {option.name!r} must be between {_num(lo)} and {_num(hi)}, not {raw!r}")
    return number


_SCHEDULE = re.compile(r"^page(\d+):(.+)$", re.IGNORECASE)


def split_schedule(
    options: Iterable[Sequence[str]],
) -> tuple[list[tuple[str, str]], dict[int, list[tuple[str, str]]]]:
    """Split raw options into those applied before scanning and "pageN:NAME" ones applied before page N."""
    initial: list[tuple[str, str]] = []
    scheduled: dict[int, list[tuple[str, str]]] = {}
    for name, value in options:
        match = _SCHEDULE.match(name.strip())
        if match is None:
            initial.append((name, value))
            continue
        page = int(match.group(1))
        if page < 1:
            raise SettingError(f"option {name!r}: pages are numbered from 1")
        scheduled.setdefault(page, []).append((match.group(2), value))
    return initial, scheduled


def describe_option(option: OptionInfo) -> str:
    """One line for Capabilities.options: title, allowed values and unit."""
    constraint = option.constraint
    if _is_range(constraint):
        allowed = f"{_num(constraint[0])}..{_num(constraint[1])}"
    elif isinstance(constraint, list) and constraint:
        allowed = " | ".join(_num(v) if not isinstance(v, str) else v for v in constraint)
    elif option.type == TYPE_BOOL:
        allowed = "yes | no"
    else:
        allowed = {TYPE_INT: "<int>", TYPE_FIXED: "<number>", TYPE_STRING: "<text>"}.get(option.type, "")
    unit = {UNIT_MM: " mm", UNIT_DPI: " dpi", UNIT_PERCENT: " %", UNIT_MICROSECOND: " us",
            UNIT_PIXEL: " px", UNIT_BIT: " bit"}.get(option.unit, "")
    state = "" if option.active else " (inactive)"
    return f"{option.title or option.name}: {allowed}{unit}{state}".strip()


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def capabilities_from_options(options: dict[str, OptionInfo]) -> dict[str, Any]:
    """Capabilities (as a JSON-able dict) from a device's option descriptors."""
    source_opt = options.get("source")
    if source_opt is not None and isinstance(source_opt.constraint, list):
        sources = [s.value for s in Source if match_source(s, source_opt.constraint)]
    else:
        sources = [Source.FLATBED.value]  # no source option: a plain flatbed (or a file reader like pnm)

    modes: list[str] = []
    mode_opt = options.get("mode")
    depth_opt = options.get("depth")
    if mode_opt is not None and isinstance(mode_opt.constraint, list):
        modes = [m.value for m in ColorMode if match_mode(m, mode_opt.constraint)]
        if ColorMode.LINEART.value not in modes and _depth_one_possible(depth_opt):
            modes.append(ColorMode.LINEART.value)

    res_opt = options.get("resolution") or options.get("x-resolution")
    resolutions = offered_resolutions(res_opt.constraint if res_opt is not None else None)

    def max_mm(name: str) -> float | None:
        opt = options.get(name)
        if opt is not None and opt.unit == UNIT_MM and _is_range(opt.constraint):
            return float(opt.constraint[1])
        return None

    described = {
        opt.name: describe_option(opt)
        for opt in options.values()
        if opt.name and opt.settable and opt.type not in (TYPE_GROUP, TYPE_BUTTON)
    }
    return {
        "sources": sources,
        "modes": modes,
        "resolutions": list(resolutions),
        "max_width_mm": max_mm("br-x"),
        "max_height_mm": max_mm("br-y"),
        "options": described,
    }


def _depth_one_possible(depth_opt: OptionInfo | None) -> bool:
    return depth_opt is not None and isinstance(depth_opt.constraint, list) and 1 in depth_opt.constraint


# --------------------------------------------------------------------------------------------------
# Framing, shared with the parent.

MAX_HEADER_BYTES = 1 << 20
MAX_PAYLOAD_BYTES = 1 << 31  # a 1200 dpi A4 colour page is ~420 MB; anything above 2 GiB is a broken child


class ProtocolError(Exception):
    """The other side sent something that is not a well-formed frame."""


def write_frame(stream: IO[bytes], header: dict[str, Any], payload: bytes = b"") -> None:
    header = {**header, "nbytes": len(payload)}
    encoded = json.dumps(header).encode("utf-8")
    stream.write(struct.pack(">I", len(encoded)) + encoded)
    if payload:
        stream.write(payload)
    stream.flush()


def read_frame(stream: IO[bytes]) -> tuple[dict[str, Any], bytes] | None:
    """The next frame, or None at a clean end of stream (between frames)."""
    prefix = _read_exact(stream, 4, allow_eof=True)
    if prefix is None:
        return None
    (length,) = struct.unpack(">I", prefix)
    if length > MAX_HEADER_BYTES:
        raise ProtocolError(f"frame header of {length} bytes")
    raw = _read_exact(stream, length, allow_eof=False)
    assert raw is not None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"bad frame header: {exc}") from exc
    if not isinstance(header, dict):
        raise ProtocolError("frame header is not an object")
    nbytes = header.get("nbytes", 0)
    if not isinstance(nbytes, int) or not 0 <= nbytes <= MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"bad payload size {nbytes!r}")
    payload = _read_exact(stream, nbytes, allow_eof=False) if nbytes else b""
    assert payload is not None
    return header, payload


def _read_exact(stream: IO[bytes], n: int, *, allow_eof: bool) -> bytes | None:
    chunks: list[bytes] = []
    remaining = n
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            if allow_eof and remaining == n:
                return None
            raise ProtocolError(f"stream ended inside a frame ({n - remaining} of {n} bytes)")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


# --------------------------------------------------------------------------------------------------
# Everything below runs only in the child and touches libsane.


class _SaneFailure(Exception):
    """A ``_sane.error`` with the stage it happened in, carried to the top of the worker."""

    def __init__(self, message: str, stage: str) -> None:
        super().__init__(message)
        self.message = message
        self.stage = stage
        self.status = status_from_message(message)


class _Device:
    """Thin wrapper over python-sane's handle: options by canonical name, typed set, scan primitives."""

    def __init__(self, name: str) -> None:
        import sane  # only in the child

        self.name = name
        self._sane_error: type[Exception] = sane._sane.error
        try:
            self._dev = sane.open(name)
        except self._sane_error as exc:
            raise _SaneFailure(str(exc), "open") from exc
        self._lock = threading.Lock()
        self._open = True

    def options(self) -> dict[str, OptionInfo]:
        # Re-read every time: setting source or mode can add, remove or re-constrain other options.
        found: dict[str, OptionInfo] = {}
        for raw in self._dev.get_options():
            opt = OptionInfo.from_tuple(raw)
            if opt.type != TYPE_GROUP and opt.name:
                found[option_key(opt.name)] = opt
        return found

    def find(self, name: str) -> OptionInfo | None:
        return self.options().get(option_key(name))

    def get(self, name: str) -> Any:
        opt = self.find(name)
        if opt is None or not opt.active:
            return None
        try:
            return self._dev.dev.get_option(opt.index)
        except self._sane_error:
            return None

    def set(self, name: str, value: int | float | str) -> None:
        opt = self.find(name)
        if opt is None:
            raise SettingError(f"the scanner has no option {name!r}")
        if not opt.settable:
            raise SettingError(f"option {opt.name!r} cannot be set by software")
        if not opt.active:
            raise SettingError(f"option {opt.name!r} is inactive with the current settings")
        if opt.type == TYPE_FIXED:
            value = float(value)
        elif opt.type in (TYPE_INT, TYPE_BOOL):
            value = round(float(value))
        try:
            self._dev.dev.set_option(opt.index, value)
        except self._sane_error as exc:
            status = status_from_message(str(exc))
            if status in (Status.INVAL, Status.UNSUPPORTED):
                raise SettingError(f"the scanner refused {opt.name}={value!r} ({exc})") from exc
            raise _SaneFailure(str(exc), "options") from exc
        except TypeError as exc:
            raise SettingError(f"option {opt.name!r}: {exc}") from exc

    def start(self) -> None:
        try:
            self._dev.dev.start()
        except self._sane_error as exc:
            raise _SaneFailure(str(exc), "start") from exc

    def parameters(self) -> tuple[str, int, tuple[int, int], int, int]:
        try:
            result: tuple[str, int, tuple[int, int], int, int] = self._dev.dev.get_parameters()
        except self._sane_error as exc:
            raise _SaneFailure(str(exc), "start") from exc
        return result

    def snap(self) -> tuple[bytes, int, int, int, int]:
        # allow16bitsamples=1: we do the 16 -> 8 bit conversion ourselves (python-sane's own shifts a signed int).
        # noCancel=1, always: python-sane would otherwise call sane_cancel inside snap() before raising a
        # read error, and back ends built on sanei_thread can hang for ever there (joining a reader thread
        # that never ends: seen with the test back end under load, ~1 in 500 injected faults).  We cancel
        # ourselves in scan()'s finally block, *after* the page or the error has been sent to the parent,
        # so a hang in cleanup costs only the parent's grace period, never the scan result.
        try:
            data, width, lines, samples, sample_size = self._dev.dev.snap(1, 1, None)
        except self._sane_error as exc:
            raise _SaneFailure(str(exc), "read") from exc
        return bytes(data), width, lines, samples, sample_size

    def cancel(self) -> None:
        # May be called from the command thread while snap() blocks in sane_read (the SANE standard allows
        # sane_cancel asynchronously); the lock only keeps it away from sane_close.
        with self._lock:
            if self._open:
                self._dev.dev.cancel()

    def close(self) -> None:
        with self._lock:
            if self._open:
                self._open = False
                self._dev.close()


class _Commands:
    """Reads "next"/"cancel" lines from the parent on a thread; EOF (parent gone) counts as cancel."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.replies: queue.Queue[str] = queue.Queue()
        self.cancelled = threading.Event()
        self.device: _Device | None = None
        self._thread = threading.Thread(target=self._run, name="sane-commands", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for raw in iter(self._stream.readline, b""):
            command = raw.decode("ascii", "replace").strip()
            if command == "cancel":
                self._cancel()
            self.replies.put(command)
        self._cancel()
        self.replies.put("cancel")

    def _cancel(self) -> None:
        self.cancelled.set()
        if self.device is not None:
            self.device.cancel()


def _page_image(data: bytes, width: int, lines: int, samples: int, sample_size: int, depth: int) -> Any:
    """Raw python-sane frame -> PIL image in mode "1", "L" or "RGB"."""
    from PIL import Image

    expected = width * lines * samples * sample_size
    if len(data) != expected:
        raise _SaneFailure(f"frame holds {len(data)} bytes, expected {expected}", "read")
    if sample_size == 2:
        import numpy as np

        # Native-endian 16-bit samples; keep the high byte (full-scale 65535 -> 255).
        eight_bit = (np.frombuffer(data, dtype=np.uint16) >> 8).astype(np.uint8)
        data = eight_bit.tobytes()
    mode = "RGB" if samples == 3 else "L"
    image = Image.frombytes(mode, (width, lines), data)
    if depth == 1 and mode == "L":
        # python-sane expands 1-bit frames to 0/255 bytes; pack them back (8x less to pipe and store).
        image = image.convert("1", dither=Image.Dither.NONE)
    return image


class _Worker:
    def __init__(self, out: IO[bytes], commands_in: IO[bytes]) -> None:
        self.out = out
        self.commands_in = commands_in

    def send(self, header: dict[str, Any], payload: bytes = b"") -> None:
        write_frame(self.out, header, payload)

    def error(self, kind: str, message: str, *, stage: str = "", status: Status | None = None,
              pages: int = 0) -> None:
        self.send({"type": "error", "kind": kind, "message": message, "stage": stage,
                   "status": int(status) if status is not None else None, "pages": pages})

    def list_devices(self) -> None:
        import sane

        devices = sane.get_devices()
        self.send({"type": "devices", "devices": [list(d) for d in devices]})

    def capabilities(self, device_name: str) -> None:
        device = _Device(device_name)
        try:
            self.send({"type": "capabilities", **capabilities_from_options(device.options())})
        finally:
            device.close()

    def scan(self, device_name: str, settings: dict[str, Any]) -> None:
        commands = _Commands(self.commands_in)
        device = _Device(device_name)
        commands.device = device
        pages = 0
        try:
            source = Source(settings["source"])
            scheduled = configure(device, settings)
            multi = source in (Source.ADF, Source.DUPLEX)
            while True:
                for name, value in scheduled.get(pages + 1, []):
                    _set_raw(device, name, value)
                if commands.cancelled.is_set():
                    self.send({"type": "cancelled", "pages": pages})
                    return
                dpi = _actual_dpi(device)
                try:
                    device.start()
                    fmt, _last, (_ppl, expected_lines), depth, _bpl = device.parameters()
                    data, width, lines, samples, sample_size = device.snap()
                except _SaneFailure as failure:
                    if commands.cancelled.is_set() or failure.status == Status.CANCELLED:
                        self.send({"type": "cancelled", "pages": pages})
                    elif failure.status == Status.NO_DOCS and multi and pages > 0:
                        self.send({"type": "done", "pages": pages})  # the feeder ran out: a normal end
                    else:
                        self.error("status", failure.message, stage=failure.stage, status=failure.status,
                                   pages=pages)
                    return
                if commands.cancelled.is_set():
                    # An asynchronous sane_cancel makes python-sane return the lines read so far as if the
                    # page had ended; that partial page must not be delivered.
                    self.send({"type": "cancelled", "pages": pages})
                    return
                if expected_lines > 0 and lines < expected_lines:
                    self.error("status", f"incomplete page: {lines} of {expected_lines} lines arrived",
                               stage="read", pages=pages)
                    return
                image = _page_image(data, width, lines, samples, sample_size, depth)
                self.send({"type": "page", "index": pages, "mode": image.mode, "width": image.width,
                           "height": image.height, "dpi": dpi, "format": fmt}, image.tobytes())
                pages += 1
                if commands.replies.get() != "next":
                    self.send({"type": "cancelled", "pages": pages})
                    return
                if not multi:
                    self.send({"type": "done", "pages": pages})
                    return
        except SettingError as exc:
            self.error("setting", str(exc), stage="options", pages=pages)
        except _SaneFailure as failure:
            self.error("status", failure.message, stage=failure.stage, status=failure.status, pages=pages)
        finally:
            commands.device = None
            # SANE requires sane_cancel to end a scan (snap() never cancels, see _Device.snap); every
            # result frame has been sent by now, so if a back end hangs here the parent still has it.
            with contextlib.suppress(Exception):  # the device may be gone; closing is what matters
                device.cancel()
            device.close()


def configure(device: _Device, settings: dict[str, Any]) -> dict[int, list[tuple[str, str]]]:
    """Apply source, mode, resolution, page size, then raw options; return the per-page option schedule."""
    initial, scheduled = split_schedule(settings.get("options", []))
    # Fail before the first sheet moves if a scheduled option names nothing on this device.
    for entries in scheduled.values():
        for name, _value in entries:
            if device.find(name) is None:
                raise SettingError(_unknown_option(device, name))

    source = Source(settings["source"])
    source_opt = device.find("source")
    if source_opt is not None and isinstance(source_opt.constraint, list):
        chosen = match_source(source, source_opt.constraint)
        if chosen is None:
            raise SettingError(
                f"source {source.value!r} is not available; this scanner offers "
                f"{', '.join(repr(s) for s in source_opt.constraint)}"
            )
        device.set("source", chosen)
    elif source is not Source.FLATBED:
        raise SettingError(f"source {source.value!r} is not available; this scanner has only a flatbed")

    mode = ColorMode(settings["mode"])
    mode_opt = device.find("mode")
    if mode_opt is not None and isinstance(mode_opt.constraint, list):
        chosen = match_mode(mode, mode_opt.constraint)
        if chosen is None and mode is ColorMode.LINEART and _depth_one_possible(device.find("depth")):
            # e.g. the test back end: no lineart mode, but 1-bit gray is exactly lineart.
            gray = match_mode(ColorMode.GRAY, mode_opt.constraint)
            if gray is not None:
                device.set("mode", gray)
                device.set("depth", 1)
                chosen = ""
        if chosen is None:
            raise SettingError(
                f"mode {mode.value!r} is not available; this scanner offers "
                f"{', '.join(repr(m) for m in mode_opt.constraint)}"
            )
        if chosen:
            device.set("mode", chosen)
            depth_opt = device.find("depth")
            if (mode is not ColorMode.LINEART and depth_opt is not None and depth_opt.active
                    and isinstance(depth_opt.constraint, list) and 8 in depth_opt.constraint):
                device.set("depth", 8)  # a 16-bit default would double the data for nothing
    # No mode option at all (pnm): the device delivers what it delivers; settings.mode cannot apply.

    resolution = float(settings["resolution"])
    for name in ("resolution", "x-resolution", "y-resolution"):
        opt = device.find(name)
        if opt is not None and opt.active and opt.settable:
            device.set(name, nearest_resolution(resolution, opt.constraint))

    _set_page_size(device, str(settings.get("page_size", "A4")))

    for name, value in initial:
        _set_raw(device, name, value)
    return scheduled


def _set_page_size(device: _Device, page_size: str) -> None:
    key = page_size.strip().lower()
    if key not in PAGE_SIZES_MM:
        raise SettingError(f"page size {page_size!r} is unknown; use A4, letter, legal or max")
    size = PAGE_SIZES_MM[key]
    # Sheet-fed back ends (fujitsu, canon_dr, epjitsu ...) also need the paper size itself, and clip the
    # scan area to it; set it first or br-x/br-y would be clipped to the previous paper.
    for name, extent in (("page-width", 0), ("page-height", 1)):
        opt = device.find(name)
        if opt is None or opt.unit != UNIT_MM or not _is_range(opt.constraint):
            continue
        if opt.active and opt.settable:
            hi = float(opt.constraint[1])
            device.set(name, hi if size is None else min(max(size[extent], float(opt.constraint[0])), hi))
    for axis, extent in (("x", 0), ("y", 1)):
        tl, br = device.find(f"tl-{axis}"), device.find(f"br-{axis}")
        if tl is None or br is None or br.unit != UNIT_MM or not _is_range(br.constraint):
            continue  # no geometry in mm (pnm, some sheet-fed devices): nothing to set
        if not (tl.active and tl.settable and br.active and br.settable):
            continue
        lo = float(tl.constraint[0]) if _is_range(tl.constraint) else 0.0
        hi = float(br.constraint[1])
        device.set(f"tl-{axis}", lo)
        # Clip to the device: the test back end's area is 200 x 200 mm, smaller than A4.
        device.set(f"br-{axis}", hi if size is None else min(lo + size[extent], hi))


def _set_raw(device: _Device, name: str, value: str) -> None:
    opt = device.find(name)
    if opt is None:
        raise SettingError(_unknown_option(device, name))
    device.set(name, parse_option_value(opt, value))


def _unknown_option(device: _Device, name: str) -> str:
    names = sorted(o.name for o in device.options().values() if o.settable)
    return f"the scanner has no option {name!r}; it offers {', '.join(names)}"


def _actual_dpi(device: _Device) -> int:
    for name in ("resolution", "y-resolution", "x-resolution"):
        value = device.get(name)
        if isinstance(value, (int, float)) and value > 0:
            return round(value)
    return 0


def main() -> int:
    # Keep the protocol on a private copy of stdout and point fd 1 at stderr, so a back end that printf()s
    # cannot corrupt the frame stream.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    commands_in = sys.stdin.buffer
    # A hung back end is reported by the parent with our stacks (it sends SIGUSR1 before killing us).
    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
    worker = _Worker(out, commands_in)
    try:
        request = json.loads(commands_in.readline().decode("utf-8"))
        import sane

        sane.init()
        # Build the status table now, before any back-end thread exists: it dlopen()s libsane, and a
        # dlopen after a back end has cancelled its reader thread can block (see LD_BIND_NOW in the parent).
        status_table()
        command = request.get("command")
        if command == "list":
            worker.list_devices()
        elif command == "capabilities":
            worker.capabilities(request["device"])
        elif command == "scan":
            worker.scan(request["device"], request["settings"])
        else:
            worker.error("internal", f"unknown command {command!r}")
    except _SaneFailure as failure:
        # Open failing with "Invalid argument" is how libsane says "no such device".
        kind = "not_found" if failure.stage == "open" and failure.status == Status.INVAL else "status"
        worker.error(kind, failure.message, stage=failure.stage, status=failure.status)
    except SettingError as exc:
        worker.error("setting", str(exc), stage="options")
    except BrokenPipeError:
        return 1  # the parent went away; nobody to tell
    except Exception as exc:
        traceback.print_exc()
        worker.error("internal", f"{type(exc).__name__}: {exc}")
    try:
        out.close()
    except BrokenPipeError:
        return 1
    # Skip sane_exit and interpreter teardown: some back ends hang or crash in them, and this process owns
    # nothing else that needs an orderly shutdown.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())

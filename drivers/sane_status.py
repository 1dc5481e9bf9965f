"""SANE status codes, and recovering them from python-sane's error messages (one table, both processes).

python-sane raises ``_sane.error`` carrying only the text of ``sane_strstatus(status)``; the worker
(drivers/sane_worker.py) turns that text back into a ``Status`` here, sends the code to the parent, and the
parent (drivers/sane_driver.py) maps it to a station exception.  Imports nothing from SANE: ``ctypes`` asks
the installed libsane for its own texts only when ``status_table()`` is first called, which the worker does
right after ``sane.init()`` and before any back-end thread exists (see ``drivers.sane_worker.main``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import enum


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

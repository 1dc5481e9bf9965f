"""One open SANE device in the worker process: python-sane's handle wrapped, settings applied, pages read.

Only the worker process (drivers/sane_worker.py) uses this module; ``sane`` is imported inside
``SaneDevice.__init__``, so libsane and the vendor back end never load into the station's own process.
A ``_sane.error`` becomes a ``SaneFailure`` that carries the stage it happened in and the SANE status
recovered from its text (drivers/sane_status.py); a setting the device cannot take is a ``SettingError``.
"""

from __future__ import annotations

import threading
from typing import Any

from drivers.base import ColorMode, Source
from drivers.sane_options import (
    PAGE_SIZES_MM,
    TYPE_BOOL,
    TYPE_FIXED,
    TYPE_GROUP,
    TYPE_INT,
    UNIT_MM,
    OptionInfo,
    SettingError,
    depth_one_possible,
    is_range,
    match_mode,
    match_source,
    nearest_resolution,
    option_key,
    parse_option_value,
    split_schedule,
)
from drivers.sane_status import Status, status_from_message


class SaneFailure(Exception):
    """A ``_sane.error`` with the stage it happened in, carried to the top of the worker."""

    def __init__(self, message: str, stage: str) -> None:
        super().__init__(message)
        self.message = message
        self.stage = stage
        self.status = status_from_message(message)


class SaneDevice:
    """Thin wrapper over python-sane's handle: options by canonical name, typed set, scan primitives."""

    def __init__(self, name: str) -> None:
        import sane  # only in the child

        self.name = name
        self._sane_error: type[Exception] = sane._sane.error
        try:
            self._dev = sane.open(name)
        except self._sane_error as exc:
            raise SaneFailure(str(exc), "open") from exc
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
            raise SaneFailure(str(exc), "options") from exc
        except TypeError as exc:
            raise SettingError(f"option {opt.name!r}: {exc}") from exc

    def start(self) -> None:
        try:
            self._dev.dev.start()
        except self._sane_error as exc:
            raise SaneFailure(str(exc), "start") from exc

    def parameters(self) -> tuple[str, int, tuple[int, int], int, int]:
        try:
            result: tuple[str, int, tuple[int, int], int, int] = self._dev.dev.get_parameters()
        except self._sane_error as exc:
            raise SaneFailure(str(exc), "start") from exc
        return result

    def snap(self) -> tuple[bytes, int, int, int, int]:
        # allow16bitsamples=1: we do the 16 -> 8 bit conversion ourselves (python-sane's own shifts a signed int).
        # noCancel=1, always: python-sane would otherwise call sane_cancel inside snap() before raising a
        # read error, and back ends built on sanei_thread could hang for ever there (joining a reader thread
        # that never ends: seen with the test back end under load, ~1 in 150 injected faults, before
        # drivers/_deferred_cancel.c was preloaded; it fixes the cause, this keeps a leftover hang harmless).  We cancel
        # ourselves in the finally block of the worker's scan() (sane_worker.py), *after* the page or the
        # error has been sent to the parent, so a hang in cleanup costs only the parent's grace period,
        # never the scan result.
        try:
            data, width, lines, samples, sample_size = self._dev.dev.snap(1, 1, None)
        except self._sane_error as exc:
            raise SaneFailure(str(exc), "read") from exc
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


def page_image(data: bytes, width: int, lines: int, samples: int, sample_size: int, depth: int) -> Any:
    """Raw python-sane frame -> PIL image in mode "1", "L" or "RGB"."""
    from PIL import Image

    expected = width * lines * samples * sample_size
    if len(data) != expected:
        raise SaneFailure(f"frame holds {len(data)} bytes, expected {expected}", "read")
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


def configure(device: SaneDevice, settings: dict[str, Any]) -> dict[int, list[tuple[str, str]]]:
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
        if chosen is None and mode is ColorMode.LINEART and depth_one_possible(device.find("depth")):
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
        set_raw(device, name, value)
    return scheduled


def _set_page_size(device: SaneDevice, page_size: str) -> None:
    key = page_size.strip().lower()
    if key not in PAGE_SIZES_MM:
        raise SettingError(f"page size {page_size!r} is unknown; use A4, letter, legal or max")
    size = PAGE_SIZES_MM[key]
    # Sheet-fed back ends (fujitsu, canon_dr, epjitsu ...) also need the paper size itself, and clip the
    # scan area to it; set it first or br-x/br-y would be clipped to the previous paper.
    for name, extent in (("page-width", 0), ("page-height", 1)):
        opt = device.find(name)
        if opt is None or opt.unit != UNIT_MM or not is_range(opt.constraint):
            continue
        if opt.active and opt.settable:
            hi = float(opt.constraint[1])
            device.set(name, hi if size is None else min(max(size[extent], float(opt.constraint[0])), hi))
    for axis, extent in (("x", 0), ("y", 1)):
        tl, br = device.find(f"tl-{axis}"), device.find(f"br-{axis}")
        if tl is None or br is None or br.unit != UNIT_MM or not is_range(br.constraint):
            continue  # no geometry in mm (pnm, some sheet-fed devices): nothing to set
        if not (tl.active and tl.settable and br.active and br.settable):
            continue
        lo = float(tl.constraint[0]) if is_range(tl.constraint) else 0.0
        hi = float(br.constraint[1])
        device.set(f"tl-{axis}", lo)
        # Clip to the device: the test back end's area is 200 x 200 mm, smaller than A4.
        device.set(f"br-{axis}", hi if size is None else min(lo + size[extent], hi))


def set_raw(device: SaneDevice, name: str, value: str) -> None:
    opt = device.find(name)
    if opt is None:
        raise SettingError(_unknown_option(device, name))
    device.set(name, parse_option_value(opt, value))


def _unknown_option(device: SaneDevice, name: str) -> str:
    names = sorted(o.name for o in device.options().values() if o.settable)
    return f"the scanner has no option {name!r}; it offers {', '.join(names)}"


def actual_dpi(device: SaneDevice) -> int:
    for name in ("resolution", "y-resolution", "x-resolution"):
        value = device.get(name)
        if isinstance(value, (int, float)) and value > 0:
            return round(value)
    return 0

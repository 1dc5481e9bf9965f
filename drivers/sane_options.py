"""SANE option descriptors, and the pure helpers that map the station's settings onto a device's options.

Source and mode matching, resolution choice, page sizes, ``--option NAME=VALUE`` parsing and the
``pageN:`` schedule, and the Capabilities summary of a device.  Nothing here imports SANE or opens a
device, so the parent process and the tests use these helpers as they are; the worker applies them to an
open device (drivers/sane_device.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from drivers.base import ColorMode, Source

# SANE constants (sane/sane.h).  Duplicated here so that nothing outside the worker has to import _sane.
TYPE_BOOL, TYPE_INT, TYPE_FIXED, TYPE_STRING, TYPE_BUTTON, TYPE_GROUP = range(6)
UNIT_NONE, UNIT_PIXEL, UNIT_BIT, UNIT_MM, UNIT_DPI, UNIT_PERCENT, UNIT_MICROSECOND = range(7)
CAP_SOFT_SELECT = 1
CAP_INACTIVE = 32


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
    if isinstance(constraint, (list, tuple)) and constraint and not is_range(constraint):
        values = [float(v) for v in constraint]
        return min(values, key=lambda v: (abs(v - wanted), -v))
    if is_range(constraint):
        lo, hi, quant = (float(x) for x in constraint)
        value = min(max(wanted, lo), hi)
        if quant > 0:
            value = lo + round((value - lo) / quant) * quant
            value = min(value, hi)
        return value
    return float(wanted)


def is_range(constraint: Any) -> bool:
    # python-sane gives a range as a 3-tuple and a word/string list as a list.
    return isinstance(constraint, tuple) and len(constraint) == 3


def offered_resolutions(constraint: Any) -> tuple[int, ...]:
    """Discrete resolutions for Capabilities: the word list itself, or common values inside a range."""
    if is_range(constraint):
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
    if is_range(option.constraint):
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
    if is_range(constraint):
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
        if ColorMode.LINEART.value not in modes and depth_one_possible(depth_opt):
            modes.append(ColorMode.LINEART.value)

    res_opt = options.get("resolution") or options.get("x-resolution")
    resolutions = offered_resolutions(res_opt.constraint if res_opt is not None else None)

    def max_mm(name: str) -> float | None:
        opt = options.get(name)
        if opt is not None and opt.unit == UNIT_MM and is_range(opt.constraint):
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


def depth_one_possible(depth_opt: OptionInfo | None) -> bool:
    return depth_opt is not None and isinstance(depth_opt.constraint, list) and 1 in depth_opt.constraint

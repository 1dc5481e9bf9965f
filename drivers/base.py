"""The driver interface every scanner back end implements, and the value types it exchanges."""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from PIL import Image


class Source(enum.StrEnum):
    FLATBED = "flatbed"
    ADF = "adf"
    DUPLEX = "duplex"


class ColorMode(enum.StrEnum):
    GRAY = "gray"
    COLOR = "color"
    LINEART = "lineart"


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    name: str  # what --device takes, e.g. "test:0" or "import"
    vendor: str
    model: str
    kind: str  # "flatbed scanner", "virtual device", ...
    backend: str  # driver name: "sane" or "import"


@dataclass(frozen=True, slots=True)
class Capabilities:
    sources: tuple[Source, ...]
    modes: tuple[ColorMode, ...]
    resolutions: tuple[int, ...]  # discrete values offered (a range is sampled at common values)
    max_width_mm: float | None = None
    max_height_mm: float | None = None
    # back-end option names -> human description, for --option NAME=VALUE
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ScanSettings:
    source: Source = Source.FLATBED
    mode: ColorMode = ColorMode.GRAY
    resolution: int = 300
    page_size: str = "A4"  # "A4", "legal", "letter" or "max"
    options: tuple[tuple[str, str], ...] = ()  # raw back-end options, applied last, in order


@dataclass(slots=True)
class CapturedPage:
    """One page image as delivered by a back end, before any processing."""

    image: Image.Image  # mode "1", "L" or "RGB"
    dpi: int
    device: str
    side: str  # "front", "back", "flatbed" or "import"
    sheet: int  # 1-based sheet number within this scan
    source_key: str  # stable identity of this page, used to refuse duplicates after a crash
    label: str = ""  # human-readable origin, e.g. "scan.tif page 3"


class CancelToken:
    """Set by the UI or a signal handler; back ends check it between pages and between reads."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


PageCallback = Callable[[CapturedPage], None]


class Driver(Protocol):
    """Three calls, as in NAPS2: list, describe, scan.

    ``scan`` delivers pages one at a time through ``on_page`` (which persists and acknowledges each
    before returning) and returns the number delivered.  Faults raise ``drivers.errors.DeviceError``
    subclasses with ``pages_received`` set; pages already delivered stay delivered.
    """

    name: str

    def list_devices(self) -> list[DeviceInfo]: ...

    def capabilities(self, device: str) -> Capabilities: ...

    def scan(self, device: str, settings: ScanSettings, cancel: CancelToken, on_page: PageCallback) -> int: ...

"""Picks the driver for a device name: "import" reads files, every other name is a SANE device."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from drivers.base import DeviceInfo, Driver
from drivers.errors import InputError
from drivers.import_driver import DEVICE_INFO, DEVICE_NAME, ImportDriver
from drivers.sane_driver import SaneDriver


def get_driver(device: str, files: Sequence[Path] | None = None, tmp_dir: Path | None = None) -> Driver:
    """The driver serving ``device``; ``files`` (and ``tmp_dir`` for rendered PDF pages) belong to "import"."""
    if device == DEVICE_NAME:
        if not files:
            raise InputError(DEVICE_NAME, "no input files were given for --device import")
        return ImportDriver(list(files), tmp_dir=tmp_dir)
    if files:
        # Silently ignoring the files would scan paper while the operator thinks files were imported.
        raise InputError(", ".join(str(f) for f in files), f"input files need --device import, not {device!r}")
    return SaneDriver()


def list_all_devices() -> list[DeviceInfo]:
    """Every SANE device (listed by a worker process) followed by the "import" pseudo-device."""
    return [*SaneDriver().list_devices(), DEVICE_INFO]

"""What the commands share: output, the configuration, unlocking and opening the station.

Only light modules are imported here at the top: the configuration model (pydantic) costs a tenth of a
second, so commands that never read a configuration (the developer tools' ``ocr``, run once per page by
benchmarks and scripts) do not pay for it; every heavier import is inside the function that needs it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanstation.errors import InputError, StateError

if TYPE_CHECKING:
    from scanstation.config import Config

CONFIG_ENV = "SCANSTATION_CONFIG"  # the same name as scanstation.config.CONFIG_ENV (a test checks)


def say(*args: Any) -> None:
    """A line for the operator on stdout (flushed: other programs read it line by line)."""
    print(*args, flush=True)


def warn(msg: str) -> None:
    print(f"scanstation: {msg}", file=sys.stderr, flush=True)


def common_options() -> argparse.ArgumentParser:
    """The options every command takes (``--config``), as a parent parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help=f"station configuration (default: ${CONFIG_ENV} or embedded defaults)",
    )
    return common


def load(args: argparse.Namespace) -> Config:
    """The configuration named by ``--config`` or $SCANSTATION_CONFIG, else the embedded defaults."""
    from scanstation.config import load_config

    path = getattr(args, "config", None)
    return load_config(Path(path) if path else None)


def config_or_none(args: argparse.Namespace) -> Config | None:
    """The configured station's configuration, or None when nothing is configured."""
    if getattr(args, "config", None) or os.environ.get(CONFIG_ENV):
        return load(args)
    return None


def unlock(config: Config) -> Any:
    from scanstation.vault.identity import read_passphrase, unlock_identity

    path = config.sealed_identity_path
    if not path.exists():
        raise StateError(f"{path}: no sealed station identity (run 'scanstation init')")
    return unlock_identity(path, read_passphrase(prompt="Station passphrase: ", require_private=True))


def event_printer(quiet: bool = False) -> Callable[[str, dict[str, Any]], None]:
    def sink(kind: str, data: dict[str, Any]) -> None:
        if kind == "page_acknowledged":
            # This line is the acknowledgement contract: printed only after the page is durable.
            say(f"acknowledged page {data['seq']} of batch {data['batch']} ({data['label']}) [{data['source_key']}]")
        elif kind == "page_duplicate" and not quiet:
            say(f"already stored, skipped: {data['label'] or data['source_key']}")
        elif kind == "input_rejected":
            warn(f"rejected {data['input']}: {data['reason']}")
        elif kind == "page_ocr_failed" and data.get("final"):
            warn(f"OCR failed for page id {data['page_id']} (kept, flagged 'ocr_failed'): {data['error']}")
        elif kind == "page_error":
            warn(f"page id {data['page_id']}: {data['error']}")
        elif kind == "page_damaged":
            warn(f"page {data['seq']} (page id {data['page_id']}) is damaged - rescan it (flagged 'damaged'): "
                 f"its {data['object_kind']} object cannot be read: {data['error']}")

    return sink


def open_station(config: Config) -> Any:
    """The station, unlocked (asks for the passphrase), printing what happens to pages."""
    from scanstation.facade import Station

    key = unlock(config)
    return Station(config, key, events=event_printer())


def finish(station: Any, wait_ocr: bool) -> None:
    """Wait for cleaning (and OCR) to catch up; StateError naming the pending pages if it stalls.

    The wait gives up when no page has finished for ``pipeline.wait_timeout_seconds``.
    """
    def progress(info: dict[str, int]) -> None:
        say(f"OCR: {info['ocr_pending']} page(s) waiting")

    station.wait_or_raise(include_ocr=wait_ocr, progress=progress)


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM"))


def report_outcome(report: Any) -> int:
    """Print a capture's outcome; a device fault or rejected inputs become the exit code."""
    say(
        f"batch {report.batch}: {len(report.acknowledged)} page(s) acknowledged"
        + (f", {report.duplicates} already stored" if report.duplicates else "")
    )
    dev = report.device_error
    if dev is not None:
        raise dev
    inputs = [p for p in report.problems if isinstance(p, InputError)]
    if inputs:
        raise InputError(f"{len(inputs)} input(s)", "rejected: " + "; ".join(str(p) for p in inputs[:10]))
    return 0

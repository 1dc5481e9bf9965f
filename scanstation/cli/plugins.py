"""The parts of the command line that other installed distributions contribute, through entry points.

Two groups, declared in those distributions' ``pyproject.toml`` (``[project.entry-points."GROUP"]``):

``scanstation.commands``
    ``NAME = "module:function"``: ``function(subparsers, common)`` adds the sub-command NAME (``common``
    is the parent parser that holds ``--config``).  The developer tools (``scanstation-tools``) add
    ``ocr`` and ``demo`` this way, so a production station, which does not install them, has neither.
    A command whose parser default ``ends_at_once`` is true ends its process without the interpreter's
    tear-down (see :func:`scanstation.cli.main.entry`).  A core command's name cannot be taken.

``scanstation.start``
    What ``scanstation start`` uses beyond the core, by name: ``window``, the kiosk UI
    (``run(config, demo_action=None) -> int``; the ``ui`` package of this same distribution, reached
    this way because the core never imports the UI), and ``demo_station``, the developer tools' demo
    station (:class:`DemoStation`).

An entry point whose module cannot be imported (its distribution's files are gone, or a dependency
such as PySide6 is missing) is skipped and logged at debug level only.

The entry points are read from the installed distributions' ``entry_points.txt`` (the format of the
PyPA entry-points specification) directly, in ``sys.path`` order, the first distribution of a name
winning, as :mod:`importlib.metadata` does: importing that and letting it scan every distribution
costs 50-100 ms, a fifth of a one-page ``scanstation ocr``; reading the files costs a few.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from scanstation.config import Config

COMMANDS = "scanstation.commands"
START = "scanstation.start"

log = logging.getLogger("scanstation.cli.plugins")

Printer = Callable[..., None]


class DemoStation(Protocol):
    """The demo station (``scanstation.start`` entry point ``demo_station``), for ``scanstation start``."""

    def prepare(self, config: Config | None, out: Printer) -> Config:
        """The station to start: the configured one (training or demo mode, initialised), or, when
        nothing is configured, the demo station (synthetic data only), created on first use."""
        ...

    def run_batch(self, config: Config, out: Printer) -> int:
        """Scan, check (and on the demo station seal and upload) a batch of synthetic ACR files."""
        ...


_SECTION = re.compile(r"^\[(?P<group>[^\]]+)\]\s*$")


def _section(text: str, group: str) -> list[tuple[str, str]]:
    """The ``name = value`` lines of ``[group]`` in an entry_points.txt."""
    out = []
    inside = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        m = _SECTION.match(line)
        if m:
            inside = m["group"].strip() == group
        elif inside:
            name, sep, value = line.partition("=")
            if sep and name.strip() and value.strip():
                out.append((name.strip(), value.strip()))
    return out


def entry_points(group: str) -> dict[str, str]:
    """``{name: "module:attr"}`` of the installed distributions' entry points in ``group``."""
    found: dict[str, str] = {}
    seen: set[str] = set()
    for entry in sys.path:
        folder = entry or "."
        try:
            names = sorted(os.listdir(folder))
        except OSError:  # missing, not a folder, a zip file
            continue
        for name in names:
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            dist = re.sub(r"[-_.]+", "_", name.rsplit(".", 1)[0].split("-", 1)[0]).lower()
            if dist in seen:
                continue  # a distribution earlier on sys.path shadows this one
            seen.add(dist)
            try:
                with open(os.path.join(folder, name, "entry_points.txt"), encoding="utf-8") as f:
                    text = f.read()
            except (OSError, UnicodeDecodeError):
                continue
            for ep_name, value in _section(text, group):
                found.setdefault(ep_name, value)
    return found


def load(group: str, name: str, value: str) -> Any | None:
    """The object an entry point names, or None when its module cannot be imported."""
    module, _, attr = value.partition(":")
    attr = attr.split("[", 1)[0].strip()  # "module:attr [extra]"
    try:
        obj: Any = importlib.import_module(module.strip())
    except ImportError as e:
        log.debug("entry point %s: %s = %s skipped: %s", group, name, value, e)
        return None
    try:
        for part in attr.split(".") if attr else ():
            obj = getattr(obj, part)
    except AttributeError as e:
        log.warning("entry point %s: %s = %s is broken, skipped: %s", group, name, value, e)
        return None
    return obj


def add_commands(sub: Any, common: Any) -> None:
    """Add the sub-commands of the ``scanstation.commands`` entry points (in name order)."""
    for name, value in sorted(entry_points(COMMANDS).items()):
        if name in sub.choices:
            log.warning("entry point %s: %s = %s skipped: a core command has that name", COMMANDS, name, value)
            continue
        add = load(COMMANDS, name, value)
        if add is not None:
            add(sub, common)


def start_part(name: str) -> Any | None:
    """The ``scanstation.start`` entry point ``name`` (``window`` or ``demo_station``), or None."""
    value = entry_points(START).get(name)
    return None if value is None else load(START, name, value)

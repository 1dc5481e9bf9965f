"""The ``scanstation`` program: its parser, and the one boundary where errors become messages and exit codes.

The commands live with their kind: :mod:`~scanstation.cli.station_setup` (init, start),
:mod:`~scanstation.cli.people` (users, serve, unlock, lock, audit), :mod:`~scanstation.cli.capture`
(devices, scan, import), :mod:`~scanstation.cli.batches` (status,
process, verify-vault, assemble, cover-sheets) and :mod:`~scanstation.cli.transfer` (seal, unseal,
upload, uploads).  Other installed distributions add commands through entry points
(:mod:`~scanstation.cli.plugins`): the developer tools add ``ocr`` and ``demo``; a production station
has neither.

Building the parser imports only light modules: a command imports what it needs when it runs, so that
``ocr`` (run once per page by benchmarks and scripts) starts fast.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence

from drivers.process_guard import no_core_dumps
from scanstation import __version__
from scanstation.cli import batches, capture, people, plugins, station_setup, transfer
from scanstation.cli.common import CONFIG_ENV, common_options, say, warn
from scanstation.errors import FormatError, ScanStationError, exit_code_table

__all__ = ["CONFIG_ENV", "build_parser", "entry", "main"]


def cmd_exit_codes(args: argparse.Namespace) -> int:
    for code, (meaning, cls) in exit_code_table().items():
        say(f"{code:>4}  {meaning}" + (f" ({cls})" if cls else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = common_options()
    p = argparse.ArgumentParser(
        prog="scanstation", description="Secure scanning station for confidential records.", parents=[common]
    )
    p.add_argument("--version", action="version", version=f"scanstation {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    # the page's path: set up, capture, check and finish the batch, send it
    for commands in (station_setup, people, capture, batches, transfer):
        commands.add_parsers(sub, common)
    plugins.add_commands(sub, common)
    s = sub.add_parser("exit-codes", help="list the exit codes and their meaning")
    s.set_defaults(func=cmd_exit_codes)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    return _run(argv)[0]


def _run(argv: Sequence[str] | None) -> tuple[int, bool]:
    """Run one command: its exit code, and whether its process may end at once (see :func:`entry`)."""
    no_core_dumps()  # before any key or page is in memory: no core file, no ptrace by other processes
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2, False
    ends_at_once = bool(getattr(args, "ends_at_once", False))
    try:
        return int(args.func(args)), ends_at_once
    except (ScanStationError, FormatError) as e:
        warn(e.message)
        return e.exit_code, ends_at_once
    except KeyboardInterrupt:
        warn("interrupted")
        return 130, ends_at_once
    except BrokenPipeError:
        return 1, ends_at_once


def entry() -> None:
    """The ``scanstation`` program (main() is for callers in the same process, tests among them).

    A command that sets the parser default ``ends_at_once`` (the tools' ``ocr``) leaves nothing behind
    when it returns: outputs written and closed, temporary (RAM) directories removed, threads joined,
    child processes reaped.  Its process ends there, without the interpreter's tear-down (freeing every
    object and module one by one: 40-70 ms after OpenCV, numpy and pikepdf, a tenth of a one-page OCR run).
    """
    code, ends_at_once = _run(None)
    if ends_at_once:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()

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
from collections.abc import Callable, Sequence

from drivers.process_guard import no_core_dumps
from scanstation import __version__
from scanstation.cli import (
    batches,
    capture,
    enrol,
    lockdown,
    operations,
    people,
    plugins,
    roster,
    signoff,
    station_setup,
    transfer,
    verification,
)
from scanstation.cli.common import CONFIG_ENV, common_options, say, warn
from scanstation.errors import FormatError, ScanStationError, exit_code_table

__all__ = ["CONFIG_ENV", "build_parser", "entry", "main"]


def cmd_exit_codes(args: argparse.Namespace) -> int:
    # `scanstation health` alone exits in its own range, so that the unit's IT can script on the failing checks
    from scanstation.cli.operations import CHECK_BITS, HEALTH_BASE

    top = HEALTH_BASE + sum(CHECK_BITS.values())
    bits = ", ".join(f"{name} +{bit}" for name, bit in CHECK_BITS.items())
    health = f"{HEALTH_BASE}-{top}  scanstation health: {HEALTH_BASE} plus the bits of the failing checks ({bits})"
    for code, (meaning, cls) in exit_code_table().items():
        if code > HEALTH_BASE and health:
            say(health)
            health = ""
        say(f"{code:>4}  {meaning}" + (f" ({cls})" if cls else ""))
    if health:
        say(health)
    return 0


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``command`` (the command line's, :func:`command_of`) a core command, without the
    commands of other distributions (:mod:`~scanstation.cli.plugins`): their modules are not imported for a
    command that is not theirs (the developer tools' ``ocr`` brings the OCR pipeline's, 30-60 ms)."""
    common = common_options()
    p = argparse.ArgumentParser(
        prog="scanstation", description="Secure scanning station for confidential records.", parents=[common]
    )
    p.add_argument("--version", action="version", version=f"scanstation {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    # the page's path: set up, capture, check and finish the batch, send it
    for commands in (station_setup, people, roster, capture, batches, verification, signoff, transfer, enrol, lockdown,
                     operations):
        commands.add_parsers(sub, common)
    if command is None or (command not in sub.choices and command != "exit-codes"):
        plugins.add_commands(sub, common)
    s = sub.add_parser("exit-codes", help="list the exit codes and their meaning")
    s.set_defaults(func=cmd_exit_codes)
    return p


def command_of(argv: Sequence[str]) -> str | None:
    """The command a command line names: its first word that is neither an option nor the value of
    ``--config`` / ``--user`` (None without one, or after ``--``)."""
    for item in _client_argv(list(argv)):
        if item == "--":
            return None
        if not item.startswith("-"):
            return item
    return None


def main(argv: Sequence[str] | None = None) -> int:
    return _run(argv)[0]


def _run(argv: Sequence[str] | None) -> tuple[int, bool]:
    """Run one command: its exit code, and whether its process may end at once (see :func:`entry`)."""
    no_core_dumps()  # before any key or page is in memory: no core file, no ptrace by other processes
    parser = build_parser(command_of(sys.argv[1:] if argv is None else argv))
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
        if getattr(args, "via_service", False):
            forwarded = _forward(args, list(sys.argv[1:] if argv is None else argv))
            if forwarded is not None:
                return forwarded, ends_at_once
        return int(args.func(args)), ends_at_once
    except (ScanStationError, FormatError) as e:
        warn(e.message)
        return e.exit_code, ends_at_once
    except KeyboardInterrupt:
        warn("interrupted")
        return 130, ends_at_once
    except BrokenPipeError:
        return 1, ends_at_once


def _client_argv(argv: list[str]) -> list[str]:
    """The command line without the options that belong to this side (--config, --user, -v)."""
    out: list[str] = []
    skip = False
    for item in argv:
        if skip:
            skip = False
        elif item in ("--config", "--user"):
            skip = True
        elif not item.startswith(("--config=", "--user=")) and item not in ("-v", "--verbose"):
            out.append(item)
    return out


def _forward(args: argparse.Namespace, argv: list[str]) -> int | None:
    """Run the command inside the station service when one runs (it holds the keys); None when none does."""
    from scanstation.cli.common import IN_SERVICE, load, read_password, user_name
    from scanstation.service.client import RemoteConnection, service_running

    if IN_SERVICE.get() is not None:
        return None
    config = load(args)
    if not service_running(config.socket_path):
        return None
    name = user_name(args)
    password = read_password(f"Password for {name}: ")

    def relay(kind: str, data: dict[str, object]) -> None:
        line = str(data.get("line", ""))
        print(line, file=sys.stderr if kind == "err" else sys.stdout, flush=True)

    with RemoteConnection(config.socket_path, timeout=None) as conn:
        conn.token = conn.call("sign_in", name=name, password=password)["token"]
        try:
            result = conn.call("run", on_event=relay, argv=_client_argv(argv), cwd=os.getcwd())
        finally:
            conn.call("sign_out")
    return int(result["exit"])


def run_for_client(service: object, token: str, argv: list[str], cwd: str,
                   emit: Callable[[str, dict[str, object]], None]) -> int:
    """Inside the service: run one command for a signed-in client, its output going back to them.

    Only commands marked ``via_service`` run here (capture, batches, transfer); the same permission
    checks apply inside (:func:`scanstation.cli.common.open_station`).
    """
    from scanstation.cli.common import IN_SERVICE, InService

    parser = build_parser(command_of(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit:
        emit("err", {"line": f"scanstation: command-line usage error: {' '.join(argv)[:200]}"})
        return 2
    if not getattr(args, "via_service", False):
        emit("err", {"line": f"scanstation: '{getattr(args, 'command', '')}' does not run inside the station service"})
        return 2
    ctx = InService(service, token, lambda stream, line: emit(stream, {"line": line}), cwd)
    reset = IN_SERVICE.set(ctx)
    try:
        return int(args.func(args))
    except (ScanStationError, FormatError) as e:
        warn(e.message)
        return e.exit_code
    finally:
        IN_SERVICE.reset(reset)


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

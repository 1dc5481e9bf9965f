"""What the commands share: output, the configuration, unlocking and opening the station.

Only light modules are imported here at the top: the configuration model (pydantic) costs a tenth of a
second, so commands that never read a configuration (the developer tools' ``ocr``, run once per page by
benchmarks and scripts) do not pay for it; every heavier import is inside the function that needs it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanstation.errors import InputError

if TYPE_CHECKING:
    from scanstation.config import Config
    from scanstation.people.roles import Action

CONFIG_ENV = "SCANSTATION_CONFIG"  # the same name as scanstation.config.CONFIG_ENV (a test checks)


@dataclass(frozen=True)
class InService:
    """A command running inside the station service for a signed-in client (see :func:`connect`)."""

    service: Any  # scanstation.service.core.StationService
    token: str
    output: Callable[[str, str], None]  # (stream "out"/"err", line) back to the client
    cwd: str = "/"  # the client's working directory: relative file names are the client's


def client_path(name: str) -> Path:
    """A file name given on the command line, as the client meant it (inside the service too)."""
    path = Path(name)
    ctx = IN_SERVICE.get()
    if ctx is not None and not path.is_absolute():
        return Path(ctx.cwd) / path
    return path


# Set (per thread) while the service runs a command for a client: its lines go to that client.
IN_SERVICE: ContextVar[InService | None] = ContextVar("scanstation_in_service", default=None)


def say(*args: Any) -> None:
    """A line for the operator on stdout (flushed: other programs read it line by line)."""
    ctx = IN_SERVICE.get()
    if ctx is not None:
        ctx.output("out", " ".join(str(a) for a in args))
        return
    print(*args, flush=True)


def warn(msg: str) -> None:
    ctx = IN_SERVICE.get()
    if ctx is not None:
        ctx.output("err", f"scanstation: {msg}")
        return
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
    common.add_argument(
        "--user",
        default=argparse.SUPPRESS,
        metavar="NAME",
        help="the person this command acts for (default: $SCANSTATION_USER); the password comes from the "
        "terminal or the file named by $SCANSTATION_PASSWORD_FILE (mode 0600)",
    )
    return common


def load(args: argparse.Namespace) -> Config:
    """The configuration named by ``--config`` or $SCANSTATION_CONFIG, else the embedded defaults.

    Inside the service, always the service's own configuration (never a file a client names).
    """
    from scanstation.config import load_config

    ctx = IN_SERVICE.get()
    if ctx is not None:
        return ctx.service.config

    path = getattr(args, "config", None)
    return load_config(Path(path) if path else None)


def config_or_none(args: argparse.Namespace) -> Config | None:
    """The configured station's configuration, or None when nothing is configured."""
    if getattr(args, "config", None) or os.environ.get(CONFIG_ENV):
        return load(args)
    return None


def event_printer(quiet: bool = False) -> Callable[[str, dict[str, Any]], None]:
    def sink(kind: str, data: dict[str, Any]) -> None:
        if kind == "page_acknowledged":
            # This line is the acknowledgement contract: printed only after the page is durable.
            say(f"acknowledged page {data['seq']} of batch {data['batch']} ({data['label']}) [{data['source_key']}]")
        elif kind == "page_duplicate" and not quiet:
            say(f"already stored, skipped: {data['label'] or data['source_key']}")
        elif kind == "input_rejected":
            warn(f"rejected {data['input']}: {data['reason']}")
        elif kind == "index_flagged":  # a cover sheet's index the roster check could not accept (docs/roster.md)
            warn(f"cover sheet {data['label']}: ACR file {data['employee_code']} {data['acr_period']} flagged "
                 f"{', '.join(data['flags'])} for the supervisor: {data['problem']}")
        elif kind == "page_ocr_failed" and data.get("final"):
            warn(f"OCR failed for page id {data['page_id']} (kept, flagged 'ocr_failed'): {data['error']}")
        elif kind == "page_error":
            warn(f"page id {data['page_id']}: {data['error']}")
        elif kind == "page_damaged":
            warn(f"page {data['seq']} (page id {data['page_id']}) is damaged - rescan it (flagged 'damaged'): "
                 f"its {data['object_kind']} object cannot be read: {data['error']}")

    return sink


@contextmanager
def unlocked_here(conn: Any, password: str | None) -> Iterator[None]:
    """In-process only: a supervisor's or unit head's own slot unlocks the station for this command
    (anyone else: nothing happens); a running service is unlocked, or not, by the day's unlock."""
    from scanstation.service.client import LocalConnection

    if isinstance(conn, LocalConnection) and password is not None:
        with conn.service.unlocked_for(conn.service.caller(conn.token), password):
            yield
    else:
        yield


@contextmanager
def open_station(args: argparse.Namespace, action: Action) -> Iterator[Any]:
    """The open station, for a signed-in person allowed ``action`` (the service checks and audits).

    In this process (no service running), a supervisor or unit head unlocks it with their own key
    slot for this one command; anyone else needs the running service, unlocked by one of them.
    """
    with open_station_as(args, action) as (station, _caller):
        yield station


@contextmanager
def open_store_as(args: argparse.Namespace, action: Action) -> Iterator[tuple[Any, Any]]:
    """The station's store (read-only views) and the caller, without taking the data directory's lock."""
    with connect(args) as (conn, password):
        service = conn.service
        caller = service.caller(conn.token)
        with service.read_only_store(caller, password, action) as store:
            yield store, caller


@contextmanager
def open_station_as(args: argparse.Namespace, action: Action) -> Iterator[tuple[Any, Any]]:
    """:func:`open_station`, and the signed-in caller (name and role) it was opened for."""
    with connect(args) as (conn, password):
        service = conn.service
        caller = service.caller(conn.token)
        with service.unlocked_for(caller, password):
            yield service.station(caller, action), caller


def actor(args: argparse.Namespace) -> str:
    """The signed-in person a command acts for (names them in the store and the audit trail)."""
    ctx = IN_SERVICE.get()
    if ctx is not None:
        return str(ctx.service.caller(ctx.token).name)
    return user_name(args)


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


# ---------------------------------------------------------------------------------------------------- people
USER_ENV = "SCANSTATION_USER"
PASSWORD_FILE_ENV = "SCANSTATION_PASSWORD_FILE"
NEW_PASSWORD_FILE_ENV = "SCANSTATION_NEW_PASSWORD_FILE"


def user_name(args: argparse.Namespace) -> str:
    """The person this command acts for: ``--user`` or $SCANSTATION_USER."""
    from scanstation.errors import SignInError

    name = getattr(args, "user", None) or os.environ.get(USER_ENV, "")
    if not name:
        raise SignInError(f"this command acts for a person: give --user NAME (or set {USER_ENV})")
    return str(name)


def read_password(prompt: str = "Password: ") -> str:
    """The acting person's password: the file named by $SCANSTATION_PASSWORD_FILE (mode 0600), else the terminal."""
    from scanstation.vault.identity import read_passphrase

    return read_passphrase(PASSWORD_FILE_ENV, prompt, require_private=True)


def read_new_password(prompt: str) -> str:
    """A new password (a new person's first, or a change): $SCANSTATION_NEW_PASSWORD_FILE, else typed twice."""
    from scanstation.vault.identity import read_passphrase

    return read_passphrase(NEW_PASSWORD_FILE_ENV, prompt, confirm=True, require_private=True)


@contextmanager
def connect(args: argparse.Namespace, *, sign_in: bool = True) -> Iterator[tuple[Any, str | None]]:
    """A connection to the station service (its socket if it runs, else in this process), signed in.

    Yields ``(connection, password)``: the password the person signed in with (None inside the service),
    read once: ``unlock`` and a change of one's own password send it again; in-process, a supervisor's or
    unit head's own key slot unlocks the station with it for the one command (:func:`unlocked_here`).
    """
    from scanstation.service.client import LocalConnection, RemoteConnection, service_running

    ctx = IN_SERVICE.get()
    if ctx is not None:  # already inside the service, for a client who signed in there
        inside = LocalConnection(ctx.service, owns_service=False)
        inside.token = ctx.token
        yield inside, None
        return
    config = load(args)
    if service_running(config.socket_path):
        conn: Any = RemoteConnection(config.socket_path)
        remote = True
    else:
        from scanstation.service.core import StationService

        conn = LocalConnection(StationService(config, events=event_printer()))
        remote = False
    password = None
    try:
        if sign_in:
            name = user_name(args)
            password = read_password(f"Password for {name}: ")
            conn.token = conn.call("sign_in", name=name, password=password)["token"]
        yield conn, password
        if sign_in and remote:
            conn.call("sign_out")
    finally:
        conn.close()

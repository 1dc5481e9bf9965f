"""Commands that bring pages in: ``devices``, ``scan`` (a SANE scanner) and ``import`` (files).

Pages go straight into the station (facade): temporary files only in its RAM directory, acknowledged
pages encrypted in the vault.  Nothing is written anywhere else.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import threading
from typing import TYPE_CHECKING, Any

from scanstation.cli.common import actor, client_path, finish, load, open_station, report_outcome, say, warn
from scanstation.errors import ConfigError, ScanStationError, StateError
from scanstation.people.roles import Action

if TYPE_CHECKING:
    from scanstation.config import Config


def cmd_devices(args: argparse.Namespace) -> int:
    from drivers.registry import list_all_devices

    devices = list_all_devices()
    if args.json:
        rows = [d.__dict__ if hasattr(d, "__dict__") else dataclasses.asdict(d) for d in devices]
        say(json.dumps(rows, indent=2))
    else:
        for d in devices:
            say(f"{d.name}\t{d.vendor} {d.model}\t({d.kind}, {d.backend})")
    return 0


def _settings(args: argparse.Namespace, config: Config) -> Any:
    from drivers.base import ColorMode, ScanSettings, Source

    options = []
    for opt in args.option or []:
        name, sep, value = opt.partition("=")
        if not sep or not name:
            raise ConfigError(f"--option {opt!r}: expected NAME=VALUE")
        options.append((name, value))
    return ScanSettings(
        source=Source(args.source or config.scan.source),
        mode=ColorMode(args.mode or config.scan.mode),
        resolution=args.resolution or config.scan.resolution,
        page_size=config.scan.page_size,
        options=tuple(options),
    )


def _profile_scan(args: argparse.Namespace, config: Config, station: Any, who: str) -> Any:
    """The scan profile's settings (``--profile``, else ``scan.profile``) with the person's changes, or None
    (no profile: the free settings).  A change of a locked value is refused (exit 22) and audited."""
    from scanstation.capture.profiles import ProfileLocked, profile_settings

    name = args.profile or config.scan.profile
    if not name:
        return None
    try:
        return profile_settings(config, name, source=args.source, mode=args.mode, resolution=args.resolution,
                                options=args.option or ())
    except ProfileLocked as e:
        station.store.audit(who, "scan.profile_refused", f"profile:{name}", {"attempts": list(e.attempts)})
        raise


def cmd_profiles(args: argparse.Namespace) -> int:
    """The station's scan profiles: what each fixes and what it leaves to the operator."""
    from scanstation.capture.profiles import describe_profile

    config = load(args)
    rows = [describe_profile(name, p) for name, p in sorted(config.profiles.items())]
    if args.json:
        say(json.dumps({"default": config.scan.profile, "profiles": rows}, indent=2, ensure_ascii=False))
        return 0
    if not rows:
        say(f"no scan profiles in {config.source}")
    for r in rows:
        mark = " (default)" if r["name"] == config.scan.profile else ""
        say(f"{r['name']}{mark}\t{r['source']} {r['mode']} {r['resolution']} dpi {r['page_size']}; "
            f"cover sheets {'on' if r['separators'] else 'off'}; blank pages flagged; "
            f"operator may change: {', '.join(r['unlocked']) or 'nothing'}"
            + (f"; options {' '.join(r['options'])}" if r["options"] else "")
            + (f"\n\t{r['description']}" if r["description"] else ""))
    return 0


def _default_source_for(driver: Any, device: str, settings: Any) -> Any:
    """The configured source when the device has it; else the device's own (a flatbed-only scanner)."""
    sources = driver.capabilities(device).sources
    if sources and settings.source not in sources:
        say(f"{device} has no {settings.source.value} source; using {sources[0].value}")
        return dataclasses.replace(settings, source=sources[0])
    return settings


def _document(station: Any, args: argparse.Namespace, who: str) -> Any:
    """The ACR file named by ``--employee`` and ``--period`` (opened or created), or None; checked against the
    roster first (docs/roster.md): an unknown code is refused (NotInRoster, exit 27) unless
    ``--not-in-roster REASON``, an overlapping period already filed (DuplicateAcr, exit 28) unless
    ``--duplicate-reason TEXT``, an implausible period (exit 7).  Nothing is captured after a refusal."""
    from scanstation.errors import DuplicateAcr, NotInRoster
    from scanstation.roster.indexing import audit_refusal, check_entry, open_checked_document

    if not getattr(args, "employee", None):
        given = [o for o, v in (("--period", args.period), ("--not-in-roster", args.not_in_roster),
                                ("--duplicate-reason", args.duplicate_reason), ("--name", args.name),
                                ("--rank", args.rank)) if v]
        if given:
            raise ConfigError(f"{', '.join(given)} describe an ACR file: give --employee CODE too")
        return None
    if not args.period:
        raise ConfigError(f"--employee {args.employee}: an ACR file is one employee and one period: give --period "
                          "(a financial year like 2019-20, or a range like 2019-04-01..2019-09-30)")
    try:
        check, _continued = check_entry(station.store, args.batch, employee_code=args.employee, period=args.period,
                                        not_in_roster=args.not_in_roster, duplicate_reason=args.duplicate_reason)
    except (NotInRoster, DuplicateAcr, StateError) as e:
        audit_refusal(station.store, who, args.batch, e, employee_code=args.employee, period=args.period)
        raise
    if check.employee is not None and args.name:
        from scanstation.roster.search import RosterIndex

        if not RosterIndex([check.employee]).search(args.name, limit=1):
            warn(f"--name does not look like the roster's name for {check.employee_code} "
                 f"({check.employee.display_name}); the roster's name is used")
    for flag in check.flags:
        warn(f"ACR file {check.employee_code} {check.period.label} filed with the flag '{flag}' for the supervisor")
    if args.not_in_roster and check.employee is not None:
        warn(f"--not-in-roster ignored: {check.employee_code} is in the roster")
    return open_checked_document(station, args.batch, check, operator=who, employee_name=args.name or "",
                                 rank=args.rank or "")


def cmd_scan(args: argparse.Namespace) -> int:
    from drivers.base import CancelToken
    from drivers.registry import get_driver

    config = load(args)
    settings = _settings(args, config)
    cancel = CancelToken()
    if threading.current_thread() is threading.main_thread():  # not inside the service
        signal.signal(signal.SIGTERM, lambda *_: cancel.cancel())
    with open_station(args, Action.SCAN) as station:
        who = actor(args)
        profile = _profile_scan(args, config, station, who)
        if profile is not None:
            settings = profile.settings  # a profile's source is the admin's: never swapped for the device's
        driver = get_driver(args.device, tmp_dir=station.ramdir.path)
        if args.source is None and profile is None:
            settings = _default_source_for(driver, args.device, settings)
        _check_placement(station, args)
        report = station.capture(
            args.batch, driver, args.device, settings, cancel=cancel, document=_document(station, args, who),
            operator=who, separators=True if profile is None else profile.separators,
        )
        _place(station, args, report, who)
        return _finish_capture(station, report, wait_ocr=not args.no_wait)


def cmd_import(args: argparse.Namespace) -> int:
    from drivers.base import CancelToken, ColorMode, ScanSettings, Source
    from drivers.registry import get_driver

    with open_station(args, Action.SCAN) as station:
        who = actor(args)
        files = [client_path(f) for f in args.files]
        driver = get_driver("import", files=files, tmp_dir=station.ramdir.path)
        settings = ScanSettings(source=Source.FLATBED, mode=ColorMode.GRAY, resolution=args.resolution or 300)
        _check_placement(station, args)
        report = station.capture(
            args.batch, driver, "import", settings, cancel=CancelToken(), document=_document(station, args, who),
            operator=who,
        )
        _place(station, args, report, who)
        return _finish_capture(station, report, wait_ocr=not args.no_wait)


def _check_placement(station: Any, args: argparse.Namespace) -> None:
    """--replace-page / --insert-before: the page named exists and its batch takes rescans, before capture."""
    seq = args.replace_page if args.replace_page is not None else args.insert_before
    if seq is None:
        return
    if getattr(args, "employee", None):
        raise ConfigError("--replace-page and --insert-before put pages into the ACR file of the page named: "
                          "--employee does not go with them")
    from scanstation.verify.core import check_placement

    check_placement(station, args.batch, seq)


def _place(station: Any, args: argparse.Namespace, report: Any, who: str) -> None:
    """Put the rescan where the supervisor asked (the pages are stored whatever happens here)."""
    from scanstation.verify import core

    if args.replace_page is not None:
        if len(report.acknowledged) != 1:
            raise StateError(f"--replace-page {args.replace_page} takes exactly one page and "
                             f"{len(report.acknowledged)} were captured (kept as page(s) "
                             f"{', '.join(map(str, report.acknowledged)) or 'none'} of the batch, in no ACR file's "
                             "place): delete the extra ones in verification, or scan again")
        core.replace_page(station, args.batch, args.replace_page, report.acknowledged[0], who)
        say(f"page {report.acknowledged[0]} replaces page {args.replace_page} of batch {args.batch}")
    elif args.insert_before is not None and report.acknowledged:
        core.insert_before(station, args.batch, args.insert_before, list(report.acknowledged), who)
        say(f"page(s) {', '.join(map(str, report.acknowledged))} inserted before page {args.insert_before} "
            f"of batch {args.batch}")


def _finish_capture(station: Any, report: Any, wait_ocr: bool) -> int:
    """Wait (bounded) for cleaning and OCR, print the capture's outcome, then raise what went wrong.

    The acknowledged pages are reported even when the wait gives up; a device fault or rejected input
    sets the exit code before a wait that gave up (pages left pending resume at the next start).
    """
    try:
        finish(station, wait_ocr=wait_ocr)
    except StateError as e:
        try:
            report_outcome(report)
        except ScanStationError:
            warn(e.message)  # the device fault or rejected input sets the exit code
            raise
        raise
    return report_outcome(report)


def _add_index_options(sp: argparse.ArgumentParser) -> None:
    g = sp.add_argument_group("ACR file index (optional)")
    g.add_argument("--employee", metavar="CODE",
                   help="employee code of the ACR file these pages belong to (must be in the roster)")
    g.add_argument("--period", metavar="P",
                   help="ACR period: a financial year (2019-20) or a part-year range (2019-04-01..2019-09-30)")
    g.add_argument("--not-in-roster", metavar="REASON",
                   help="file a code the roster lacks anyway, flagged for the supervisor, with this reason")
    g.add_argument("--duplicate-reason", metavar="TEXT",
                   help="file an ACR whose period overlaps one already filed, flagged for the supervisor")
    g.add_argument("--name", help="employee name (only for a code not in the roster; else the roster's)")
    g.add_argument("--rank", help="rank (only for a code not in the roster; else the roster's)")
    sp.add_argument("--no-wait", action="store_true", help="return after capture; OCR resumes on next start")
    r = sp.add_argument_group("rescans asked for in verification (scanstation rescans)").add_mutually_exclusive_group()
    r.add_argument("--replace-page", type=int, metavar="SEQ",
                   help="capture exactly one page that replaces page SEQ in its ACR file and position (the old "
                   "page is kept, never uploaded)")
    r.add_argument("--insert-before", type=int, metavar="SEQ",
                   help="the captured pages go into page SEQ's ACR file, before it (a missing page)")


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("devices", parents=[common], help="list scanners")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_devices)

    s = sub.add_parser("scan", parents=[common], help="scan pages from a SANE device into a batch")
    s.add_argument("--device", required=True, metavar="DEV")
    s.add_argument("--source", choices=["flatbed", "adf", "duplex"])
    s.add_argument("--resolution", type=int, metavar="N")
    s.add_argument("--mode", choices=["gray", "color", "lineart"])
    s.add_argument("--option", action="append", metavar="NAME=VALUE", help="back-end option (repeatable)")
    s.add_argument("--batch", required=True, metavar="NAME")
    s.add_argument("--profile", metavar="NAME",
                   help="scan profile (see 'scanstation profiles'; default: scan.profile); its locked values "
                        "cannot be changed with --source/--mode/--resolution/--option")
    _add_index_options(s)
    s.set_defaults(func=cmd_scan, via_service=True)

    s = sub.add_parser("profiles", parents=[common], help="list the station's scan profiles")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_profiles)

    s = sub.add_parser("import", parents=[common], help="import image/TIFF/PDF files into a batch")
    s.add_argument("--batch", required=True, metavar="NAME")
    s.add_argument("--resolution", type=int, metavar="N", help="PDF rendering resolution (default 300)")
    s.add_argument("files", nargs="+", metavar="FILE")
    _add_index_options(s)
    s.set_defaults(func=cmd_import, via_service=True)

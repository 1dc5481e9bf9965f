"""Commands on the batches in the store: ``status``, ``process``, ``verify-vault``, ``vault quarantine``,
``assemble``, ``cover-sheets``.

``assemble`` writes each ACR file's searchable PDF into the vault (encrypted), never beside it;
``status`` prints states, counts, hashes and measurements, never page content.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanstation.cli.common import actor, finish, load, open_station, say, warn
from scanstation.errors import ConfigError, ScanStationError, StateError, VaultIntegrityError
from scanstation.people.roles import Action

if TYPE_CHECKING:
    from scanstation.config import Config


def _status_data(config: Config, store: Any, batch: str | None, personal: bool) -> dict[str, Any]:
    """States, counts and measurements; employee codes and source keys only for ``personal`` readers."""
    batches = store.batches()
    if batch is not None:
        batches = [b for b in batches if b.name == batch]
        if not batches:
            raise StateError(f"no batch called '{batch}'")
    out: dict[str, Any] = {
        "station": config.station.id,
        "unit": config.station.unit,
        "data_dir": str(config.data_dir),
        "batches": [],
    }
    destroyed = store.destroyed_object_ids()
    for b in batches:
        pages = store.pages(b.id)
        docs = store.documents(b.id)
        verdicts = store.page_verdicts(b.id)  # verification (issue 14): each page's current verdict
        out["batches"].append(
            {
                "name": b.name,
                "state": b.state.value,
                "operator": b.operator,
                "created_at": b.created_at,
                "pages": len(pages),
                "counts": store.counts(b.id),
                "flags": {
                    f: sum(1 for p in pages if f in p.flags) for f in sorted({f for p in pages for f in p.flags})
                },
                "documents": [
                    {
                        "id": d.id,
                        "seq": d.seq,
                        "employee_code": d.employee_code if personal else "(hidden)",
                        "acr_period": d.acr_period if personal else "(hidden)",
                        "pages": sum(1 for p in pages if p.document_id == d.id),
                        "pdf": store.document_pdf(d.id) is not None,
                        "flags": d.flags,  # the index's own: not_in_roster, duplicate, bad_period (docs/roster.md)
                    }
                    for d in docs
                ],
                "page_list": [
                    {
                        "seq": p.seq,
                        "id": p.id,
                        "state": p.state.value,
                        "ocr": p.ocr_state.value,
                        "flags": p.flags,
                        "side": p.side.value,
                        "device": p.device,
                        "raw_sha256": p.raw_sha256,
                        "image_sha256": p.image_sha256,
                        "source_key": p.source_key if personal else "(hidden)",
                        "document_id": p.document_id,
                        "analysis": p.analysis,  # measurements (skew, borders, ink, quality), no content
                        "objects": _page_objects(store, p, destroyed),
                        "verdict": verdicts[p.id].verdict if p.id in verdicts else None,
                        # free text may name someone: for the readers who see personal fields only
                        "reason": (verdicts[p.id].reason if personal else "(hidden)") if p.id in verdicts else "",
                        "rotation": p.rotation,
                        "deleted": bool(p.deleted_reason),
                        "deleted_reason": p.deleted_reason if personal or not p.deleted_reason else "(hidden)",
                        "replaced_by": p.replaced_by,
                    }
                    for p in pages
                ],
            }
        )
    return out


def _page_objects(store: Any, page: Any, destroyed: set[str]) -> list[dict[str, Any]]:
    """The vault objects of a page (ids and recorded plaintext hashes; nothing secret)."""
    refs = [("raw", page.raw_object), ("image", page.image_object), ("compact", page.compact_object),
            ("ocr_text", page.ocr_object), ("ocr_pdf", store.ocr_pdf_object(page.id))]
    # ``destroyed``: on purpose, before the purge (a sealed batch's raw captures): listed, marked gone
    return [{"kind": kind, "id": oid, "sha256": store.object(oid).sha256, **({"destroyed": True} if oid in destroyed
             else {})} for kind, oid in refs if oid]


def cmd_status(args: argparse.Namespace) -> int:
    """The station overview for the admin (service, unlock, device guard, disk, queue, last upload:
    :mod:`scanstation.cli.operations`), then counts and states of the batches for anyone signed in while the
    store is open; employee codes, periods and source keys only for the roles that may see personal fields
    (supervisor, unit head).  Locked, the overview alone (the batches are in the encrypted store); with
    ``--batch`` that is StationLocked."""
    from scanstation.cli.common import connect
    from scanstation.cli.operations import overview_lines, station_overview
    from scanstation.errors import StationLocked
    from scanstation.people.permissions import sees_personal_fields
    from scanstation.service.health import queue_summary

    config = load(args)
    with connect(args) as (conn, password):
        service = conn.service
        caller = service.caller(conn.token)
        overview = station_overview(conn, config)
        hidden = None
        try:
            with service.read_only_store(caller, password, Action.STATUS) as store:
                data = _status_data(config, store, args.batch, sees_personal_fields(caller.role))
                if overview.get("queue") is None:  # in-process: the store this command opened
                    overview["queue"] = queue_summary(store)
        except StationLocked as e:
            if args.batch is not None:
                raise
            hidden = e.message
            data = {"station": config.station.id, "unit": config.station.unit, "data_dir": str(config.data_dir),
                    "batches": None, "batches_hidden": hidden}
    data.update({k: overview.get(k) for k in ("service", "locked", "unlocked_by", "guard", "disk", "queue")})
    if args.json:
        say(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    say(f"station {data['station']} ({data['unit']}), data in {data['data_dir']}")
    for line in overview_lines(overview):
        say(line)
    if hidden is not None:
        say(f"batches: not shown: {hidden}")
        return 0
    if not data["batches"]:
        say("no batches yet")
    for b in data["batches"]:
        c = b["counts"]
        say(
            f"batch {b['name']}: {b['state']}, {b['pages']} page(s) "
            f"[processed {c.get('state_processed', 0)}, OCR done {c.get('ocr_done', 0)}, "
            f"OCR pending {c.get('ocr_pending', 0)}, OCR failed {c.get('ocr_failed', 0)}]"
        )
        for flag, n in b["flags"].items():
            say(f"  flagged {flag}: {n}")
        for d in b["documents"]:
            say(
                f"  ACR file {d['seq']}: {d['employee_code']} {d['acr_period']} - {d['pages']} page(s)"
                + (", PDF ready" if d["pdf"] else "") + (f", flagged {', '.join(d['flags'])}" if d["flags"] else "")
            )
    return 0


def cmd_verify_vault(args: argparse.Namespace) -> int:
    from scanstation.facade import integrity_error

    with open_station(args, Action.READ_AUDIT) as station:
        problems = station.verify_vault()
        n = len(station.store.objects())
        # destroyed on purpose (purged batches, sealed batches' raw captures): recorded, not checked
        gone = len(station.store.purged_object_ids() | station.store.destroyed_object_ids())
    if problems:
        for p in problems:
            warn(p)
        raise integrity_error(problems)
    say(f"vault verified: {n - gone} object(s), all present, decryptable and matching their hashes"
        + (f"; {gone} destroyed on purpose (purged, or raw captures of sealed batches)" if gone else ""))
    return 0


def cmd_assemble(args: argparse.Namespace) -> int:
    """Every ACR file of the batch that can be assembled is; damaged pages fail their file, named, at the end."""
    failed: list[ScanStationError] = []
    with open_station(args, Action.INDEX) as station:
        batch = station.store.batch(args.batch)
        if batch is None:
            raise StateError(f"no batch called '{args.batch}'")
        station.wait_or_raise(include_ocr=True, batch_id=batch.id, what=f"batch {batch.name}: not assembled")
        for doc in station.store.documents(batch.id):
            try:
                obj = station.assemble_pdf(doc.id, actor(args))
            except VaultIntegrityError as e:
                warn(e.message)
                failed.append(e)
                continue
            say(
                f"ACR file {doc.employee_code} {doc.acr_period}: searchable PDF stored in the vault "
                f"({obj.size} bytes, sha256 {obj.sha256[:16]}…)"
            )
    if failed:
        raise VaultIntegrityError(f"{len(failed)} ACR file(s) of batch {args.batch} not assembled "
                                  "(damaged pages, named above: rescan them)")
    return 0


def cmd_process(args: argparse.Namespace) -> int:
    """Finish cleaning and OCR; pages found damaged are named (exit code of a vault integrity problem)."""
    from scanstation.domain import BatchState
    from scanstation.facade import damaged_pages_error

    with open_station(args, Action.SCAN) as station:
        batch_id = None
        if args.batch is not None:
            batch = station.store.batch(args.batch)
            if batch is None:
                raise StateError(f"no batch called '{args.batch}'")
            batch_id = batch.id
        if args.retry_failed:
            say(f"{station.retry_failed_ocr(args.batch, actor(args))} page(s) queued for another OCR attempt")
        finish(station, wait_ocr=True)
        # every batch not yet sealed (a damaged page there still needs its rescan)
        open_states = (BatchState.SCANNING, BatchState.CLOSED, BatchState.IN_VERIFICATION, BatchState.RETURNED,
                       BatchState.VERIFIED, BatchState.SIGNED)
        damaged: list[tuple[str, list[Any]]] = []
        for b in station.store.batches():
            if b.state in open_states and (batch_id is None or b.id == batch_id):
                pages = station.store.damaged_pages(b.id)
                if pages:
                    damaged.append((b.name, pages))
    if damaged:
        errors = [damaged_pages_error(name, pages, "the other pages are processed") for name, pages in damaged]
        for e in errors[1:]:
            warn(e.message)
        raise errors[0]
    return 0


def cmd_vault_quarantine(args: argparse.Namespace) -> int:
    """Move vault objects the station database does not list into <data_dir>/quarantine/<time>/ (audited).

    The station never deletes such objects itself (start and verify-vault only report them); they stay
    encrypted where they are moved to, and nothing is decrypted.
    """
    with open_station(args, Action.CONFIGURE) as station:
        moved, where = station.quarantine_unlisted(actor(args))
        left = len(station.vault.unlisted(station.store.object_ids()))
    if not moved:
        say("no unlisted objects in the vault: nothing to quarantine")
    else:
        say(f"{len(moved)} unlisted object(s) moved, still encrypted, to {where}:")
        for object_id in moved:
            say(f"  {object_id}")
    if left:
        warn(f"{left} unlisted object(s) were written after this command started and were left in place")
    return 0


def cmd_cover_sheets(args: argparse.Namespace) -> int:
    """Printable separator sheets (QR + text): they carry only the index, never ACR content.

    The one production command that writes a PDF outside the vault: its content is the index given here
    (``--sheet``) or read from a roster file (``--roster``: employee code, period, unit, names and rank
    printed, the QR code holding code, period and unit only), no page image and no OCR text.  With
    ``--roster`` the sheets are made from the file alone: no station, no unlock, any machine.
    """
    from batchformat.atomic import atomic_write
    from scanstation.capture.cover_sheets import CoverInfo, cover_sheet_pdf, encode_payload
    from scanstation.roster.periods import financial_years, parse_period

    config = load(args)
    unit = args.unit or config.station.unit
    infos: list[CoverInfo] = []
    skipped = 0
    if bool(args.sheet) == bool(args.roster):
        raise ConfigError("cover-sheets: give either --sheet CODE:PERIOD[:NAME] (repeatable) or --roster FILE")
    if args.sheet:
        if args.employee or args.all or args.periods or args.period:
            raise ConfigError("--employee, --all, --period and --periods go with --roster, not with --sheet")
        for spec in args.sheet:
            parts = spec.split(":")
            if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
                raise ConfigError(f"--sheet {spec!r}: expected EMPLOYEE_CODE:PERIOD[:NAME]")
            try:
                period = parse_period(parts[1]).label
            except StateError as e:
                raise ConfigError(f"--sheet {spec!r}: {e.message}") from e
            infos.append(CoverInfo(parts[0], period, unit, parts[2] if len(parts) == 3 else ""))
    else:
        from scanstation.roster.reader import read_roster
        from scanstation.roster.sheets import plan_sheets

        if bool(args.employee) == bool(args.all):
            raise ConfigError("--roster: choose the people with --employee CODE (repeatable) or --all")
        periods = []
        try:
            for text in args.periods or []:
                periods.extend(financial_years(text))
            periods.extend(parse_period(text) for text in args.period or [])
            if not periods:
                periods = [parse_period(text) for text in config.roster.periods]
        except StateError as e:
            raise ConfigError(e.message) from e
        periods = list({p.label: p for p in periods}.values())
        roster = read_roster(Path(args.roster), max_bytes=config.roster.max_file_mb * 1024 * 1024)
        plan = plan_sheets(roster, employees=None if args.all else args.employee, periods=periods)
        infos = [CoverInfo(person.employee_code, period.label, unit, name_hi=person.name_hi, name_en=person.name_en,
                           rank=person.rank) for person, period in plan.sheets]
        skipped = plan.skipped_before_joining
    for info in infos:
        try:
            encode_payload(info)
        except ValueError as e:
            raise ConfigError(f"separator sheet {info.employee_code} {info.acr_period}: {e}") from e
    if not infos:
        raise StateError("no separator sheets to print (every period ends before the people chosen joined)")
    atomic_write(Path(args.output), cover_sheet_pdf(infos))
    say(f"{len(infos)} separator sheet(s) written to {args.output}"
        + (f" ({skipped} left out: the period ends before the employee joined)" if skipped else ""))
    return 0


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("status", parents=[common], help="the station (service, unlock, device guard, disk, queue, "
                       "last upload), then its batches, pages and processing state")
    s.add_argument("--batch", metavar="NAME")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status, via_service=True)

    s = sub.add_parser("verify-vault", parents=[common], help="check every vault object against its recorded hash")
    s.set_defaults(func=cmd_verify_vault, via_service=True)

    s = sub.add_parser("process", parents=[common], help="finish cleaning and OCR left over from an earlier run")
    s.add_argument("--batch", metavar="NAME")
    s.add_argument("--retry-failed", action="store_true", help="give pages whose OCR failed another attempt")
    s.set_defaults(func=cmd_process, via_service=True)

    s = sub.add_parser("assemble", parents=[common], help="build each ACR file's searchable PDF (in the vault)")
    s.add_argument("--batch", required=True, metavar="NAME")
    s.set_defaults(func=cmd_assemble, via_service=True)

    s = sub.add_parser("vault", parents=[common], help="vault housekeeping for the station admin (see 'vault -h')")
    vault_sub = s.add_subparsers(dest="vault_command", metavar="ACTION", required=True)
    v = vault_sub.add_parser(
        "quarantine", parents=[common],
        help="move vault objects the station database does not list into <data_dir>/quarantine/<time>/ "
        "(still encrypted; audited with their count and ids)",
    )
    v.set_defaults(func=cmd_vault_quarantine, via_service=True)

    s = sub.add_parser("cover-sheets", parents=[common], help="print QR separator sheets, one per ACR file")
    s.add_argument("--sheet", action="append", metavar="CODE:PERIOD[:NAME]", help="one sheet (repeatable)")
    s.add_argument("--roster", metavar="FILE", help="make the sheets from this roster file (CSV/XLSX; no station "
                   "or unlock needed): names in Devanagari and English printed, not in the QR code")
    s.add_argument("--employee", action="append", metavar="CODE", help="with --roster: this employee (repeatable)")
    s.add_argument("--all", action="store_true", help="with --roster: everyone in the file")
    s.add_argument("--periods", action="append", metavar="FIRST..LAST",
                   help="with --roster: financial years, e.g. 2017-18..2019-20 (default: [roster] periods)")
    s.add_argument("--period", action="append", metavar="P",
                   help="with --roster: one period, a financial year or a part-year range (repeatable)")
    s.add_argument("--unit", metavar="UNIT", help="the unit printed and encoded (default: station.unit)")
    s.add_argument("-o", "--output", required=True, metavar="FILE.pdf")
    s.set_defaults(func=cmd_cover_sheets)

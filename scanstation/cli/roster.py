"""Commands on the unit's roster: ``roster import FILE``, ``roster search TEXT``, ``roster show``.

The roster is personal data: it is read into the station store (SQLCipher) and nowhere else.  Importing
needs the manage-roster permission (supervisor, unit head) and an unlocked store; searching needs
read-roster (the operator too: finding the employee of an ACR file is indexing).  See docs/roster.md.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from scanstation.cli.common import actor, client_path, load, open_station, open_store_as, say
from scanstation.people.roles import Action


def cmd_roster_import(args: argparse.Namespace) -> int:
    from scanstation.roster.imports import import_roster

    config = load(args)
    path = client_path(args.file)
    with open_station(args, Action.MANAGE_ROSTER) as station:
        roster, result = import_roster(station.store, path, actor(args),
                                       max_bytes=config.roster.max_file_mb * 1024 * 1024)
    say(f"roster imported from {args.file}: {result.rows} people (added {result.added}, updated {result.updated}, "
        f"unchanged {result.unchanged}, no longer in the export and marked inactive {result.deactivated})")
    say("columns: " + ", ".join(f"{field} = '{header}'" for field, header in roster.columns.items()))
    if roster.ignored:
        say("ignored columns: " + ", ".join(f"'{h}'" for h in roster.ignored))
    return 0


def cmd_roster_search(args: argparse.Namespace) -> int:
    from scanstation.roster.search import search_roster

    with open_store_as(args, Action.READ_ROSTER) as (store, _caller):
        matches = search_roster(store, args.text, limit=args.limit)
    if args.json:
        say(json.dumps([m.as_dict() for m in matches], indent=2, ensure_ascii=False))
        return 0
    if not matches:
        say(f"nobody in the roster matches {args.text!r}")
    for m in matches:
        p = m.person
        names = " / ".join(n for n in (p.name_hi, p.name_en) if n)
        say(f"{p.employee_code}\t{names}\t{p.rank}\t{p.unit}\t{m.score:.0f}" + ("" if p.active else "\t(inactive)"))
    return 0


def cmd_roster_show(args: argparse.Namespace) -> int:
    """Counts and the last import: no personal data, so the status permission (the admin too)."""
    with open_store_as(args, Action.STATUS) as (store, _caller):
        summary: dict[str, Any] = store.roster_summary()
    if args.json:
        say(json.dumps(summary, indent=2, ensure_ascii=False))
        return 0
    last = summary["last_import"]
    if last is None:
        say("no roster imported yet ('scanstation roster import FILE')")
        return 0
    say(f"roster: {summary['active']} active, {summary['inactive']} inactive (no longer in the export); "
        f"{summary['imports']} import(s)")
    say(f"last import: {last['imported_at']} by {last['imported_by']}, {last['rows']} rows (added {last['added']}, "
        f"updated {last['updated']}, deactivated {last['deactivated']}), file sha256 {last['file_sha256']}")
    return 0


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("roster", parents=[common], help="the unit's staff list: import, search, show")
    roster_sub = s.add_subparsers(dest="roster_command", metavar="ACTION", required=True)
    r = roster_sub.add_parser("import", parents=[common],
                              help="import the HR portal's staff list (CSV or XLSX); every bad row is named and "
                              "nothing is imported while one is bad")
    r.add_argument("file", metavar="FILE")
    r.set_defaults(func=cmd_roster_import, via_service=True)
    r = roster_sub.add_parser("search", parents=[common],
                              help="find people by employee code or name (Devanagari or Latin, typos tolerated)")
    r.add_argument("text", metavar="TEXT")
    r.add_argument("--limit", type=int, default=10, metavar="N")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_roster_search, via_service=True)
    r = roster_sub.add_parser("show", parents=[common], help="how many people, and the last import")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_roster_show, via_service=True)

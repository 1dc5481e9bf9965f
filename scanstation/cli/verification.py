"""Verification commands: ``batch close``, ``review``, ``approve``, ``return``, ``rescans``,
``verification reasons``.

They take the same permission gate as the service's operations
(:func:`scanstation.service.ops_verification.authorized`: the matrix, four eyes, not the batch's own
operator) and call the same core (:mod:`scanstation.verify.core`).  ``review`` is scripted QC from a
shell: the page was never shown, so it is recorded as served with ``how = "script"`` and its audit entry
says so; a person at the kiosk is served each page (``page_image``) instead.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from scanstation.cli.common import connect, load, say, warn
from scanstation.people.roles import Action


@contextmanager
def _verifying(args: argparse.Namespace, action: Action, page_seq: int | None = None) -> Iterator[tuple[Any, Any]]:
    """(open station, caller) for ``action`` on ``args.batch``, checked with the batch's facts."""
    from scanstation.service.ops_verification import authorized

    with connect(args) as (conn, password):
        service = conn.service
        caller = service.caller(conn.token)
        with service.unlocked_for(caller, password):
            yield authorized(service, caller, action, args.batch, page_seq), caller


def cmd_batch_close(args: argparse.Namespace) -> int:
    from scanstation.verify.core import close_batch, find_batch

    with _verifying(args, Action.CLOSE_BATCH) as (station, caller):
        batch = find_batch(station, args.batch)
        # pages still being cleaned are waited for (bounded); close refuses, naming them, if they stall
        station.wait_idle(include_ocr=False, batch_id=batch.id)
        result = close_batch(station, args.batch, caller.name)
    say(f"batch {args.batch} closed by {caller.name}: it waits for a supervisor's verification")
    if result["processing"]:
        warn(f"{result['processing']} page(s) of batch {args.batch} are still being read (OCR); "
             "they are verified once read")
    if result["rescans_outstanding"]:
        warn(f"page(s) {', '.join(map(str, result['rescans_outstanding']))} were to be rescanned and are not: "
             "the supervisor decides (scanstation rescans)")
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    from scanstation.verify.core import review

    with _verifying(args, Action.VERIFY) as (station, caller):
        for seq in args.page:
            page = review(station, args.batch, seq, args.verdict, args.reason, caller.name, via="script")
            extra = f", turned {page.rotation}°" if page.rotation else ""
            extra += ", deleted" if page.deleted_reason else ""
            say(f"batch {args.batch} page {seq}: {args.verdict}{extra} "
                f"(scripted QC by {caller.name}, audited as such)")
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    from scanstation.verify.core import approve, find_batch, processing

    with _verifying(args, Action.APPROVE) as (station, caller):
        batch = find_batch(station, args.batch)
        if processing([p for p in station.store.pages(batch.id) if p.live]):
            # e.g. pages turned in verification being read again: bounded wait, then approve names what is left
            station.wait_idle(include_ocr=True, batch_id=batch.id)
        approve(station, args.batch, caller.name)
    say(f"batch {args.batch} verified: approved by {caller.name}")
    return 0


def cmd_return(args: argparse.Namespace) -> int:
    from scanstation.people.roles import Role
    from scanstation.verify.core import return_batch

    with _verifying(args, Action.RETURN) as (station, caller):
        return_batch(station, args.batch, caller.name, args.reason, unit_head=caller.role is Role.UNIT_HEAD)
    say(f"batch {args.batch} returned to its operator by {caller.name}")
    return 0


def cmd_rescans(args: argparse.Namespace) -> int:
    with connect(args) as (conn, password):
        service = conn.service
        with service.unlocked_for(service.caller(conn.token), password):
            rows = conn.call("rescans", **({"batch": args.batch} if args.batch else {}))
    if args.json:
        say(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    if not rows:
        say("no rescans outstanding")
    for r in rows:
        say(f"batch {r['batch']} page {r['seq']}: rescan ({r['reason']}) - asked by {r['given_by']} at {r['given_at']}")
    return 0


def cmd_reasons(args: argparse.Namespace) -> int:
    for reason in load(args).verification.reasons:
        say(reason)
    return 0


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    from scanstation.verify.verdicts import PAGE_VERDICTS

    s = sub.add_parser("batch", parents=[common], help="a batch's life: close it for verification (see 'batch -h')")
    batch_sub = s.add_subparsers(dest="batch_command", metavar="ACTION", required=True)
    b = batch_sub.add_parser("close", parents=[common],
                             help="end capture of a batch (or of a returned one after its rescans): a supervisor "
                             "verifies it next")
    b.add_argument("--batch", required=True, metavar="NAME")
    b.set_defaults(func=cmd_batch_close, via_service=True)

    s = sub.add_parser("review", parents=[common],
                       help="a page's verdict (scripted QC from a shell: recorded as served by script, audited so)")
    s.add_argument("--batch", required=True, metavar="NAME")
    s.add_argument("--page", required=True, type=int, action="append", metavar="N",
                   help="the page's number in the batch (seq); repeat for several pages with the same verdict")
    s.add_argument("--verdict", required=True, choices=PAGE_VERDICTS,
                   help="ok; rotate-N: turn the page N degrees clockwise from as scanned; rescan and delete need "
                   "--reason")
    s.add_argument("--reason", metavar="TEXT", help="one of 'scanstation verification reasons' or your own words")
    s.set_defaults(func=cmd_review, via_service=True)

    s = sub.add_parser("approve", parents=[common],
                       help="approve a verified batch (every page shown to you and judged, every flag judged)")
    s.add_argument("--batch", required=True, metavar="NAME")
    s.set_defaults(func=cmd_approve, via_service=True)

    s = sub.add_parser("return", parents=[common], help="send a batch back to its operator, with the reason")
    s.add_argument("--batch", required=True, metavar="NAME")
    s.add_argument("--reason", required=True, metavar="TEXT")
    s.set_defaults(func=cmd_return, via_service=True)

    s = sub.add_parser("rescans", parents=[common], help="pages a supervisor asked to be rescanned")
    s.add_argument("--batch", metavar="NAME")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_rescans, via_service=True)

    s = sub.add_parser("verification", parents=[common], help="verification settings (see 'verification -h')")
    v_sub = s.add_subparsers(dest="verification_command", metavar="ACTION", required=True)
    v = v_sub.add_parser("reasons", parents=[common], help="the reasons a supervisor picks from (configured)")
    v.set_defaults(func=cmd_reasons)

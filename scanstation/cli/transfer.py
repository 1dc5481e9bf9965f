"""Commands that move batches to the portal: ``seal``, ``unseal``, ``upload``, ``uploads``.

``seal`` writes the batch's signed, encrypted package into the outbox (ciphertext and signatures only);
nothing else here writes a file.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from scanstation.cli.common import actor, open_station, say, warn
from scanstation.people.roles import Action


def cmd_seal(args: argparse.Namespace) -> int:
    from scanstation.seal.sealing import seal_batch

    with open_station(args, Action.SEAL) as station:
        info = seal_batch(station, args.batch, actor(args))
    say(f"sealed batch {args.batch}: {info.path} ({info.size} bytes, sha256 {info.sha256})")
    return 0


def cmd_unseal(args: argparse.Namespace) -> int:
    from scanstation.seal.sealing import unseal_batch

    with open_station(args, Action.SEAL) as station:
        unseal_batch(station, args.batch, actor(args))
    say(f"batch {args.batch} is returned to its operator (open for rescans; closed and verified again before "
        "the next seal); its package was deleted")
    return 0


def cmd_upload(args: argparse.Namespace) -> int:
    from scanstation.upload.queue import Outcome, UploadQueue

    def progress(kind: str, data: dict[str, Any]) -> None:
        if kind == "upload_progress" and args.verbose:
            say(f"upload {data['batch']}: {data['offset']} of {data['size']} bytes")

    def report(o: Outcome) -> None:
        if o.state == "received":
            say(f"batch {o.batch}: received by the portal, receipt {o.receipt_id}")
        elif o.state == "purged":
            say(f"batch {o.batch}: already received and purged")
        else:
            warn(f"batch {o.batch}: upload {o.state}: {o.detail}")

    with open_station(args, Action.UPLOAD) as station:
        queue = UploadQueue(station, events=progress)
        outcomes = queue.run(args.batch, actor=actor(args), on_outcome=report)
    if not outcomes:
        say("nothing to upload")
    failed = [o for o in outcomes if o.state not in ("received", "purged")]
    if failed:
        from scanstation.errors import UploadError

        # The first failure's kind sets the exit code (19 retry later, 20 refused, 21 bad receipt).
        cls = failed[0].error or UploadError
        detail = "; ".join(f"{o.batch}: {o.detail}" for o in failed)
        raise cls(f"{len(failed)} batch(es) not received: {detail}")
    return 0


def cmd_uploads(args: argparse.Namespace) -> int:
    from scanstation.cli.common import open_store_as
    from scanstation.upload.queue import uploads_report_from_store

    # station.db is encrypted: even this read-only view needs a key (states, no content), not the station lock
    with open_store_as(args, Action.STATUS) as (store, _caller):
        rows = uploads_report_from_store(store)
    if args.json:
        say(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        if not rows:
            say("upload queue is empty")
        for r in rows:
            line = f"{r['batch']}\t{r['state']}\t{r['confirmed_offset']}/{r['size']} bytes\tattempts {r['attempts']}"
            if r["receipt_id"]:
                line += f"\treceipt {r['receipt_id']}"
            if r["last_error"]:
                line += f"\t{r['last_error']}"
            say(line)
    return 0


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("seal", parents=[common], help="seal a batch into a signed, encrypted package for the portal")
    s.add_argument("--batch", required=True, metavar="NAME")
    s.set_defaults(func=cmd_seal, via_service=True)

    s = sub.add_parser("unseal", parents=[common], help="return a sealed (not yet uploading) batch to its operator")
    s.add_argument("--batch", required=True, metavar="NAME")
    s.set_defaults(func=cmd_unseal, via_service=True)

    s = sub.add_parser("upload", parents=[common],
                       help="upload sealed batches; returns when each is received (receipt verified) "
                       "or failed for good")
    s.add_argument("--batch", metavar="NAME", help="this batch (queued if needed); default: every queued batch")
    s.set_defaults(func=cmd_upload, via_service=True)

    s = sub.add_parser("uploads", parents=[common], help="the upload queue: states, progress, receipt ids")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_uploads, via_service=True)

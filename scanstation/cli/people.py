"""Commands for the station's people and its day: ``users``, ``serve``, ``unlock``, ``lock``, ``audit``.

Every one acts for a signed-in person (``--user``) through the station service: over its socket when
``scanstation serve`` runs, else in this process (the same checks either way).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from scanstation.cli.common import connect, load, read_new_password, say, unlocked_here

RECOVERY_FILE_ENV = "SCANSTATION_RECOVERY_FILE"


# ------------------------------------------------------------------------------------------------ users
def _certificate_pem(file_name: str) -> str:
    """The certificate file as PEM text, checked to be one X.509 certificate (StateError naming the file)."""
    from pathlib import Path

    from cryptography.hazmat.primitives import serialization

    from scanstation.errors import StateError
    from scanstation.people.certificates import MAX_PEM_BYTES, parse_certificate

    path = Path(file_name)
    try:
        data = path.read_bytes()[:MAX_PEM_BYTES + 1]
    except OSError as e:
        raise StateError(f"{path}: cannot read the certificate: {e.strerror}") from e
    cert = parse_certificate(data, str(path))
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _say_bound(bound: dict[str, Any]) -> None:
    say(f"certificate bound to {bound['name']}: {bound['subject']} (issuer {bound['issuer']}, serial "
        f"{bound['serial']}, sha256 {bound['certificate_sha256']})")


def cmd_users_add(args: argparse.Namespace) -> int:
    pem = None
    if args.certificate:
        from scanstation.errors import StateError

        if args.role != "unit-head":
            raise StateError(f"--certificate: only a unit head's account has a signing certificate, "
                             f"not a {args.role}'s")
        pem = _certificate_pem(args.certificate)  # checked before the account exists
    with connect(args) as (conn, _):
        password = read_new_password(f"First password for {args.name} (they type it): ")
        person = conn.call("users_add", name=args.name, role=args.role, password=password)
        bound = conn.call("users_certificate", name=person["name"], certificate=pem) if pem else None
    say(f"added {person['name']} ({person['role']})")
    if bound:
        _say_bound(bound)
    return 0


def cmd_users_certificate(args: argparse.Namespace) -> int:
    pem = _certificate_pem(args.certificate)
    with connect(args) as (conn, _):
        bound = conn.call("users_certificate", name=args.name, certificate=pem)
    _say_bound(bound)
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    with connect(args) as (conn, _):
        people = conn.call("users_list")
    if args.json:
        say(json.dumps(people, indent=2))
    for p in [] if args.json else people:
        say(f"{p['name']}\t{p['role']}" + ("\tdisabled" if p["disabled"] else ""))
    return 0


def cmd_users_disable(args: argparse.Namespace) -> int:
    with connect(args) as (conn, _):
        conn.call("users_disable", name=args.name)
    say(f"{args.name} disabled (signed out everywhere)")
    return 0


def cmd_users_enable(args: argparse.Namespace) -> int:
    with connect(args) as (conn, _):
        conn.call("users_enable", name=args.name)
    say(f"{args.name} enabled")
    return 0


def cmd_users_passwd(args: argparse.Namespace) -> int:
    with connect(args) as (conn, password):
        me = conn.call("whoami")["name"]
        new = read_new_password(f"New password for {args.name}: ")
        # Your own password: the one you signed in with is the old one (it re-wraps your key).
        conn.call("users_passwd", name=args.name, password=new, old_password=password if args.name == me else None)
    say(f"password of {args.name} changed")
    return 0


# ------------------------------------------------------------------------------------------------ the day
def cmd_serve(args: argparse.Namespace) -> int:
    from scanstation.cli.common import event_printer
    from scanstation.priorities import SERVICE_NICENESS, lower_this_process
    from scanstation.service.core import StationService
    from scanstation.service.server import serve

    lower_this_process(SERVICE_NICENESS)  # the kiosk's screens come first (scanstation/priorities.py)
    config = load(args)
    service = StationService(config, events=event_printer(quiet=True))
    serve(service, config.socket_path, ready=lambda: say(f"station service listening on {config.socket_path}"))
    return 0


def _recovery_code() -> str:
    from scanstation.vault.identity import read_passphrase

    return read_passphrase(RECOVERY_FILE_ENV, "Recovery code: ", require_private=True)


def cmd_unlock(args: argparse.Namespace) -> int:
    with connect(args) as (conn, password):
        if args.recovery:
            result = conn.call("unlock", recovery_code=_recovery_code())
        else:
            result = conn.call("unlock", password=password)
        status = conn.call("status")
    for name in result["enrolled"]:
        say(f"key slot made for {name}")
    say("station unlocked" if not status["locked"] else "station is locked")
    from scanstation.service.client import LocalConnection

    if isinstance(conn, LocalConnection):
        say("(no station service runs: it was unlocked for this command only; start 'scanstation serve')")
    return 0


def cmd_lock(args: argparse.Namespace) -> int:
    with connect(args) as (conn, _):
        conn.call("lock")
    say("station locked: keys wiped from memory")
    return 0


def cmd_audit_show(args: argparse.Namespace) -> int:
    with connect(args) as (conn, password), unlocked_here(conn, password):  # personal fields need the batch keys
        entries: list[dict[str, Any]] = conn.call("audit_show", batch=args.batch)
    if args.json:
        say(json.dumps(entries, indent=2, ensure_ascii=False))
        return 0
    for e in entries:
        detail = json.dumps(e.get("detail", {}), ensure_ascii=False, separators=(",", ":"))
        personal = e.get("personal")
        sealed = (" " + json.dumps(personal, ensure_ascii=False, separators=(",", ":")) if personal
                  else " [personal fields sealed]" if e.get("sealed") else "")
        say(f"{e['seq']:>7} {e['ts']} {e['actor']} ({e.get('role') or '-'}) {e['action']} {e['subject']} "
            f"{detail}{sealed}")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    with connect(args) as (conn, _):
        report = conn.call("audit_verify")
    say("audit trail intact: " + ", ".join(f"{k} {v}" for k, v in report.items()))
    return 0


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("users", parents=[common], help="the station's people (station admin)")
    users = s.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    u = users.add_parser("add", parents=[common], help="add a person")
    u.add_argument("name")
    u.add_argument("--role", required=True, choices=["operator", "supervisor", "unit-head", "admin"])
    u.add_argument("--certificate", metavar="CERT.pem",
                   help="unit head: the DSC certificate they sign off with (PEM or DER), bound to the account")
    u.set_defaults(func=cmd_users_add)
    u = users.add_parser("certificate", parents=[common],
                         help="bind (or replace) a unit head's DSC certificate (PEM or DER)")
    u.add_argument("name")
    u.add_argument("certificate", metavar="CERT.pem")
    u.set_defaults(func=cmd_users_certificate)
    u = users.add_parser("list", parents=[common], help="everyone with an account")
    u.add_argument("--json", action="store_true")
    u.set_defaults(func=cmd_users_list)
    u = users.add_parser("disable", parents=[common], help="stop a person signing in (kept for the audit)")
    u.add_argument("name")
    u.set_defaults(func=cmd_users_disable)
    u = users.add_parser("enable", parents=[common], help="let a disabled person sign in again")
    u.add_argument("name")
    u.set_defaults(func=cmd_users_enable)
    u = users.add_parser("passwd", parents=[common], help="change your password, or (admin) reset someone's")
    u.add_argument("name")
    u.set_defaults(func=cmd_users_passwd)

    s = sub.add_parser("serve", parents=[common], help="run the station service (holds the keys) in the foreground")
    s.set_defaults(func=cmd_serve)
    s = sub.add_parser("unlock", parents=[common], help="start of day: a supervisor or unit head unlocks the station")
    s.add_argument("--recovery", action="store_true",
                   help=f"unit head: use the recovery code (terminal, or the file named by ${RECOVERY_FILE_ENV})")
    s.set_defaults(func=cmd_unlock)
    s = sub.add_parser("lock", parents=[common], help="end of day: wipe the station's keys from memory")
    s.set_defaults(func=cmd_lock)

    s = sub.add_parser("audit", parents=[common], help="the tamper-evident audit trail")
    audit = s.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    a = audit.add_parser("show", parents=[common], help="list audit entries")
    a.add_argument("--batch", metavar="NAME")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_audit_show)
    a = audit.add_parser("verify", parents=[common], help="check every entry, the tree and every checkpoint")
    a.set_defaults(func=cmd_audit_verify)


"""``scanstation signoff``: the unit head signs a verified batch off with the DSC token, and it is sealed.

It prints the batch's summary first (every ACR file, the flags and their verdicts, who scanned, verified and
approved), then reads the token's PIN - from the terminal without echo, or from the file named by
``$SCANSTATION_PIN_FILE`` (mode 0600, else refused) - and signs: the sign-off sheet (PAdES) and the package's
manifest (CMS), then the package is written.  The PIN goes to the token only (through the station service).
"""

from __future__ import annotations

import argparse
import getpass
import os
import stat
import sys
from pathlib import Path
from typing import Any

from scanstation.cli.common import connect, say, unlocked_here
from scanstation.errors import TokenError

PIN_FILE_ENV = "SCANSTATION_PIN_FILE"
MAX_PIN_FILE_BYTES = 256


def read_pin(token_hint: str = "the DSC token") -> str:
    """The PIN: the file named by $SCANSTATION_PIN_FILE (only if mode 0600 or stricter), else the terminal."""
    name = os.environ.get(PIN_FILE_ENV, "")
    if name:
        path = Path(name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as e:
            raise TokenError(f"PIN file {path} (from ${PIN_FILE_ENV}) cannot be opened: {e.strerror}") from e
        try:
            st = os.fstat(fd)
            mode = stat.S_IMODE(st.st_mode)
            if not stat.S_ISREG(st.st_mode):
                raise TokenError(f"PIN file {path} (from ${PIN_FILE_ENV}) is not a regular file")
            if mode & 0o077:
                raise TokenError(f"PIN file {path} (from ${PIN_FILE_ENV}) is refused: its mode is {mode:04o}, others "
                                 f"may read it; it must be 0600 (chmod 600 {path}) - nothing was signed")
            raw = os.read(fd, MAX_PIN_FILE_BYTES + 1)
        finally:
            os.close(fd)
        if len(raw) > MAX_PIN_FILE_BYTES:
            raise TokenError(f"PIN file {path} (from ${PIN_FILE_ENV}) is too long for a PIN")
        pin = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not pin:
            raise TokenError(f"PIN file {path} (from ${PIN_FILE_ENV}) is empty")
        return pin
    if not sys.stdin.isatty():
        raise TokenError(f"no PIN: type it at a terminal, or set {PIN_FILE_ENV} to a file (mode 0600) holding it")
    pin = getpass.getpass(f"PIN of {token_hint}: ")
    if not pin:
        raise TokenError("no PIN entered; nothing was signed")
    return pin


def print_summary(s: dict[str, Any]) -> None:
    say(f"batch {s['name']} ({s['state']}), unit {s['unit']}, station {s['station']}, uid {s['uid'] or '-'}")
    say(f"{len(s['files'])} ACR file(s), {s['pages']} page(s)")
    for f in s["files"]:
        say(f"  {f['seq']:>3}. {f['employee_code']}  {f['employee_name']}  {f['period']}  {f['pages']} page(s)")
        for flag in f["flags"]:
            say(f"       flag {flag['flag']}: {flag['verdict'] or 'not judged'}"
                + (f" ({flag['reason']})" if flag["reason"] else "")
                + (f" by {flag['given_by']}" if flag["given_by"] else ""))
    for p in s["page_flags"]:
        say(f"  page {p['seq']}: {', '.join(p['flags'])} -> {p['verdict'] or 'not judged'}"
            + (f" ({p['reason']})" if p["reason"] else ""))
    say(f"scanned by {', '.join(s['scanned_by']) or '-'}; closed by {s['closed_by'] or '-'} at {s['closed_at'] or '-'}")
    say(f"verified by {', '.join(s['verified_by']) or '-'}; approved by {s['approved_by'] or '-'} "
        f"at {s['approved_at'] or '-'}")


_STEPS = {"token": "opening the DSC token", "certificate": "checking the signer's certificate",
          "sheet": "signing the sign-off sheet", "package": "signing the manifest and writing the package"}


def cmd_signoff(args: argparse.Namespace) -> int:
    def progress(kind: str, data: dict[str, Any]) -> None:
        if kind in _STEPS:
            say(f"... {_STEPS[kind]}")

    with connect(args) as (conn, password), unlocked_here(conn, password):
        summary = conn.call("signoff_summary", batch=args.batch)
        print_summary(summary)
        pin = read_pin()
        result = conn.call("signoff", on_event=progress, batch=args.batch, pin=pin)
        del pin
    say(f"batch {args.batch} signed off by {result['signer_subject']} at {result['signed_at']} and sealed")
    say(f"package {result['package']} (sha256 {result['package_sha256']})")
    say(f"sign-off sheet {result['sheet_object']} (sha256 {result['sheet_sha256']}); certificate sha256 "
        f"{result['certificate_sha256']}")
    return 0


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("signoff", parents=[common],
                       help="unit head: sign a verified batch off with the DSC token (it is sealed at once)")
    s.add_argument("--batch", required=True, metavar="NAME")
    s.set_defaults(func=cmd_signoff)

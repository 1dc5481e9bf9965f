"""``scanstation enrol``: the station's enrolment request and its client certificate (issue 15, scope 4).

* ``enrol --out FILE`` (admin): a new TLS key, sealed at once to the station's own recipient, and the
  enrolment request (station id, unit, the Ed25519 key that signs ``station.json``, a CSR) written to FILE
  for the portal's ``scanstation-receiver enrol``;
* ``enrol --install CERT`` (admin): the portal's answer (client certificate, then its station CA) checked
  against the pending request and stored; uploads present it from then on;
* ``enrol --status``: what is installed (subject, issuer, serial, not-after) and whether a request is pending.

Only the station's public information is used, so these run on a locked station; both changes are audited
(a refused bundle too).  See docs/enrolment.md.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from scanstation.cli.common import client_path, connect, say
from scanstation.people.roles import Action


def cmd_enrol(args: argparse.Namespace) -> int:
    from scanstation.enrolment.files import EnrolmentFiles

    action = Action.STATUS if args.status else Action.ENROL
    with connect(args) as (conn, _password):
        service = conn.service
        caller = service.caller(conn.token)
        service.authorize(caller, action)
        files = EnrolmentFiles(service.config.data_dir)
        if args.out:
            return _request(args, service, caller.name, files)
        if args.install:
            return _install(args, service, caller.name, files)
        return _status(args, files)


def _request(args: argparse.Namespace, service: Any, actor: str, files: Any) -> int:
    from batchformat.atomic import atomic_write
    from scanstation.enrolment.request import make_request, request_bytes
    from scanstation.errors import EnrolmentError

    config, public = service.config, service.public
    if public.station_id != config.station.id:
        raise EnrolmentError(f"{config.data_dir}/station.pub belongs to station {public.station_id!r}, but the "
                             f"configuration says {config.station.id!r}: use this station's own configuration")
    out = client_path(args.out)
    if not out.parent.is_dir():
        raise EnrolmentError(f"{out}: the folder {out.parent} does not exist")
    request, fingerprint = make_request(files, station_id=config.station.id, unit=config.station.unit,
                                        recipient=public.age_recipient(), signing_key=public.signing_key)
    atomic_write(out, request_bytes(request), mode=0o644)
    service.audit.append(actor, "enrol.request", f"station:{config.station.id}",
                         {"unit": config.station.unit, "tls_key_sha256": fingerprint,
                          "created_at": request["created_at"], "out": str(out)})
    say(f"enrolment request for station {config.station.id} ({config.station.unit}) written to {out}")
    say(f"TLS key {fingerprint[:16]}… made and sealed to the station key in {files.directory}")
    say("give the request to the portal (scanstation-receiver enrol), then install its answer: "
        "scanstation enrol --install CERT")
    return 0


def _install(args: argparse.Namespace, service: Any, actor: str, files: Any) -> int:
    from scanstation.enrolment.install import install_bundle
    from scanstation.errors import EnrolmentError

    config = service.config
    source = client_path(args.install)
    subject = f"station:{config.station.id}"
    try:
        try:
            data = source.read_bytes()
        except OSError as e:
            raise EnrolmentError(f"{source}: the certificate bundle cannot be read ({e.strerror})") from None
        info = install_bundle(files, data, source=str(source), station_id=config.station.id,
                              unit=config.station.unit)
    except EnrolmentError as e:
        service.audit.append(actor, "enrol.install_refused", subject, {"reason": e.message})
        raise
    service.audit.append(actor, "enrol.install", subject, info.as_dict())
    say(f"client certificate installed: {info.subject}, issued by {info.issuer}, serial {info.serial}, "
        f"valid until {info.not_after}")
    say("uploads to the portal present it from now on")
    return 0


def _status(args: argparse.Namespace, files: Any) -> int:
    from scanstation.enrolment.client_tls import installed_certificate
    from scanstation.enrolment.request import pending_request

    info = installed_certificate(files)
    pending = pending_request(files)
    if args.json:
        say(json.dumps({"installed": info.as_dict() if info else None,
                        "pending_request": pending[0]["created_at"] if pending else None}, indent=2))
        return 0
    if info is None:
        say("not enrolled: no client certificate installed (scanstation enrol --out FILE, then --install CERT)")
    else:
        say(f"subject:    {info.subject}")
        say(f"issuer:     {info.issuer}")
        say(f"serial:     {info.serial}")
        say(f"not after:  {info.not_after}")
    if pending is not None:
        say(f"a request made at {pending[0].get('created_at', '?')} waits for the portal's certificate")
    return 0


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("enrol", parents=[common],
                       help="enrol the station at the portal: write the request, install the portal's certificate")
    what = s.add_mutually_exclusive_group(required=True)
    what.add_argument("--out", metavar="FILE", help="make a new TLS key (sealed) and write the enrolment request")
    what.add_argument("--install", metavar="CERT",
                      help="install the portal's certificate bundle (client certificate, then the station CA)")
    what.add_argument("--status", action="store_true", help="show the installed certificate")
    s.add_argument("--json", action="store_true", help="with --status: as JSON")
    s.set_defaults(func=cmd_enrol, via_service=True)

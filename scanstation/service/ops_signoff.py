"""The unit head's sign-off through the station service (issue 15): the kiosk's and the CLI's operations.

* ``signoff_summary {batch}`` -> the verified batch as the unit head reviews it
  (:func:`scanstation.signoff.flow.batch_summary`: ACR files with employee, period, pages; flags and verdicts;
  who scanned, verified and approved);
* ``signoff {batch, pin}`` -> signs it off and seals it (:func:`scanstation.signoff.flow.signoff`), emitting
  progress events ``token``, ``certificate``, ``sheet``, ``package``; the result names the package, the signer
  and the sheet's digest.  The PIN travels only in this request and is never logged or audited;
* ``users_certificate {name, certificate}`` -> the admin binds (or replaces) a unit head's DSC certificate
  (PEM text), audited.

Both sign-off operations check SIGN_OFF with the batch's facts (four eyes: whoever captured, verified or
approved the batch may not sign it off; only the unit head's role may).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scanstation.errors import StateError
from scanstation.people.roles import Action
from scanstation.service.op_types import Emit, Operations, text_arg
from scanstation.service.ops_verification import authorized

if TYPE_CHECKING:
    from scanstation.service.core import Caller, StationService


def _c(caller: Caller | None) -> Caller:
    if caller is None:
        raise StateError("sign in first")
    return caller


def _sign_off_gate(s: StationService, caller: Caller, batch: str) -> Any:
    """The open station for SIGN_OFF on ``batch``.  The role is checked first (an admin or a supervisor is refused
    as such, even while the station is locked), then the four-eyes rules on the batch's facts."""
    from scanstation.people.permissions import allowed

    if not allowed(caller.role, Action.SIGN_OFF):
        s.authorize(caller, Action.SIGN_OFF)  # raises PermissionDenied, audited
    return authorized(s, caller, Action.SIGN_OFF, batch)


def _summary(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    from scanstation.signoff.flow import batch_summary

    caller, batch = _c(c), text_arg(a, "batch")
    station = _sign_off_gate(s, caller, batch)
    summary = batch_summary(station, batch)
    if summary["state"] != "verified":
        raise StateError(f"batch '{batch}' is {summary['state']}; only a verified batch can be signed off")
    return summary


def _signoff(s: StationService, c: Caller | None, a: dict[str, Any], e: Emit) -> Any:
    from scanstation.signoff.flow import signoff

    caller, batch = _c(c), text_arg(a, "batch")
    pin = a.get("pin")
    if not isinstance(pin, str):
        raise StateError("request field 'pin' must be text")
    station = _sign_off_gate(s, caller, batch)
    return signoff(station, batch, caller.name, pin, people=s.people, progress=e).as_dict()


def _users_certificate(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    from scanstation.people.certificates import bind

    caller = _c(c)
    name, pem = text_arg(a, "name"), text_arg(a, "certificate")
    s.authorize(caller, Action.MANAGE_USERS)
    bound = bind(s.people, name, pem, by=caller.name)
    s.audit.append(caller.name, "user.certificate", f"person:{name}",
                   {"subject": bound.subject, "issuer": bound.issuer, "serial": bound.serial,
                    "certificate_sha256": bound.certificate_sha256})
    return {"name": name, "subject": bound.subject, "issuer": bound.issuer, "serial": bound.serial,
            "certificate_sha256": bound.certificate_sha256}


OPERATIONS: Operations = {
    "signoff_summary": (_summary, True),
    "signoff": (_signoff, True),
    "users_certificate": (_users_certificate, True),
}

"""THE permission matrix (role × action) and the four-eyes rules; the service checks every call here.

Nothing else in the station decides who may do what: the UI only hides what :func:`allowed` says no
to, the service calls :func:`check` before each action (and audits a refusal).  The cells follow the
roles table of the mission (../shared/docs/mission.md); each row of :data:`_TABLE` says why.

The decisions that were not obvious
-----------------------------------
* **Operators** (contractor staff) scan, index and close *their* batch and see the station status. They
  see a page only while indexing it: :attr:`Action.VIEW_PAGE` is allowed for an operator only for a page
  *they* captured, of a batch still in capture (:data:`CAPTURE_STATES`: scanning, or returned).  Once
  the batch is closed the operator sees none of it ("never read back earlier batches"); if it comes back
  for rescan they see again only the pages they captured themselves.  INDEX and CLOSE_BATCH likewise
  need their own batch (opened or captured by them) still in capture.  SCAN is not tied to a batch
  (starting a new batch has none yet; adding pages reveals nothing); the batch state machine refuses
  pages for a batch not in capture.  Operators never unlock (no key slot), never lock (an operator
  locking the station mid-day would stop everyone until a supervisor comes; locking their own *session*
  is not a permission), never read the audit trail.
* **Supervisors** verify, return and approve, and see pages to do so.  They may also scan, index and
  close a batch (a small unit, a rescan the operator cannot do, a batch left open at the end of a
  shift); the four-eyes rule then keeps them from verifying it.  Indexing while the batch is in capture
  (``scan``/``import --employee``, the operator's screen) is capture.  Correcting an index *during
  verification* (``reindex`` of a closed batch: the employee or period of an ACR file, checked against
  the roster again, its flags judged again) is verifying, not capturing: it is a VERIFY action, and the
  supervisor who does it may still approve the batch (four eyes counts who captured pages, from the
  pages themselves; the correction is audited with the old and new index sealed).  The batch's own
  operator (whoever opened it) may never VERIFY, RETURN or APPROVE it, even without a page of their own
  (checked with the batch's facts by :func:`scanstation.service.ops_verification.authorized`).
  Supervisors do not sign off, seal,
  manage users or configure.  They may upload: the packages are sealed and signed, sending them (and
  retrying over the unreliable link, purging after the receipt) reveals and changes nothing.
* **Unit heads** see pages (they must not sign without seeing the summary), sign off, seal and upload,
  and may RETURN a batch they refuse to sign (otherwise a bad batch would sit for ever).  They do not
  VERIFY or APPROVE: the supervisor's and the unit head's are the two pairs of eyes.  They do not scan.
* **Station admins** manage users, configure, see the status, and may LOCK: locking only wipes keys
  from memory, reveals nothing, and an admin can stop the service (which drops the keys) anyway.  An
  admin never UNLOCKs (no key slot, :attr:`Role.may_unlock`) and never sees a page (VIEW_PAGE is no in
  every case).  An admin may READ_AUDIT: no auditor role exists; the admin is who answers "why can X not
  sign in" (failures are audited) and runs ``audit verify`` after maintenance; audit entries carry no
  page content, their detail no personal data, and the personal fields are sealed: the service must open
  them only for a reader whose role may view pages unconditionally (:func:`sees_personal_fields`).
  Reading the trail does not let anyone change it (Merkle tree + signed checkpoints).
* Sequence rules (sign off only a verified batch, seal only a signed one) belong to the batch state
  machine (:mod:`scanstation.domain`, StateError), not here.

Four eyes (:data:`FOUR_EYES`), for every role, on the facts the caller gives (:class:`BatchFacts`):
whoever captured (scanned, imported or indexed) a page of a batch may not VERIFY, RETURN or APPROVE it;
whoever captured, verified or approved it may not SIGN_OFF it.  Names are compared case-insensitively
for these refusals (an "Anita"/"anita" mismatch between the store and the account must not open a gap);
the operator's own-batch rules, which *allow*, compare names exactly.

Fail closed: an action with a batch rule for this role (the operator's own-batch cells, every four-eyes
action) without :class:`BatchFacts` is refused.  To ask "may this role ever do this" (menus, screens),
use :func:`allowed`.

A known gap outside this module (for the accounts part): an admin who may add accounts or reset
passwords could make a supervisor account and sign in as it, and so see pages.  Adding, re-enabling or
resetting a supervisor's or unit head's account should need a unit head (or the person's own old
password), which the matrix alone cannot express.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from scanstation.domain import CAPTURE_STATES, BatchState
from scanstation.errors import PermissionDenied
from scanstation.people.roles import Action, Role

__all__ = [
    "FOUR_EYES", "MATRIX", "OWN_BATCH_RULES", "BatchFacts", "allowed", "allowed_actions", "check",
    "matrix_markdown", "sees_personal_fields",
]

_OP, _SUP, _HEAD, _ADMIN = Role.OPERATOR, Role.SUPERVISOR, Role.UNIT_HEAD, Role.ADMIN


def _roles(*roles: Role) -> frozenset[Role]:
    return frozenset(roles)


# The matrix: action -> the roles that may do it (subject to the batch rules below), and why.
_TABLE: tuple[tuple[Action, frozenset[Role], str], ...] = (
    (Action.SCAN, _roles(_OP, _SUP),
     "operators capture; a supervisor may rescan or scan a small batch (and then may not verify it)"),
    (Action.INDEX, _roles(_OP, _SUP),
     "operators index their own batch in capture; a supervisor indexing in capture captures (a correction "
     "in verification is verify)"),
    (Action.VIEW_PAGE, _roles(_OP, _SUP, _HEAD),
     "supervisors verify pages, unit heads review before signing; operators only the page they just "
     "captured; the admin never"),
    (Action.CLOSE_BATCH, _roles(_OP, _SUP),
     "the operator ends capture of their batch; a supervisor closes one left open"),
    (Action.VERIFY, _roles(_SUP),
     "the supervisor's page verdicts are the first pair of eyes"),
    (Action.RETURN, _roles(_SUP, _HEAD),
     "a supervisor sends pages back for rescan; a unit head refusing to sign sends the batch back"),
    (Action.APPROVE, _roles(_SUP),
     "the verified batch goes on to the unit head"),
    (Action.SIGN_OFF, _roles(_HEAD),
     "the unit head's DSC signature is the second pair of eyes"),
    (Action.SEAL, _roles(_HEAD),
     "sealing commits a signed batch to leave the room: the unit head's decision"),
    (Action.UPLOAD, _roles(_SUP, _HEAD),
     "sealed, signed packages reveal nothing; retrying over a bad link (and purging after the receipt) "
     "is daily work"),
    (Action.MANAGE_USERS, _roles(_ADMIN),
     "accounts are the admin's job"),
    (Action.CONFIGURE, _roles(_ADMIN),
     "portal address and keys, station settings, vault maintenance"),
    (Action.READ_AUDIT, _roles(_SUP, _HEAD, _ADMIN),
     "supervisors and unit heads review the work; the admin investigates sign-in failures and runs "
     "audit verify (entries hold no page content; personal fields stay sealed for the admin)"),
    (Action.UNLOCK, _roles(_SUP, _HEAD),
     "only they hold a key slot (Role.may_unlock)"),
    (Action.LOCK, _roles(_SUP, _HEAD, _ADMIN),
     "wiping the keys is safe; the admin can stop the service anyway; an operator could stop the room"),
    (Action.STATUS, _roles(_OP, _SUP, _HEAD, _ADMIN),
     "counts and states, no personal data"),
    (Action.READ_ROSTER, _roles(_OP, _SUP, _HEAD),
     "finding the employee of an ACR file by code or name is indexing work (the ACR itself shows the same "
     "name and rank); the admin never sees personal data"),
    (Action.MANAGE_ROSTER, _roles(_SUP, _HEAD),
     "the staff list decides which codes are accepted at entry: the unit's own officers bring it from the HR "
     "portal (and the import needs the unlocked store); not the contractor operators, not the admin"),
    (Action.ENROL, _roles(_ADMIN),
     "the station's TLS identity at the portal is configuration (like the portal address and keys); the request "
     "and the certificate are public, the TLS key stays sealed to the station key"),
)

MATRIX: Mapping[Action, frozenset[Role]] = MappingProxyType({action: roles for action, roles, _why in _TABLE})
_WHY: Mapping[Action, str] = MappingProxyType({action: why for action, _roles_, why in _TABLE})

# Cells allowed only for the person's own batch still in capture (see _own_batch_refusal).
OWN_BATCH_RULES: Mapping[tuple[Role, Action], str] = MappingProxyType({
    (_OP, Action.VIEW_PAGE): "only a page they captured, of a batch still in capture",
    (_OP, Action.INDEX): "only their own batch, still in capture",
    (_OP, Action.CLOSE_BATCH): "only their own batch, still in capture",
})

# The four-eyes rules: action -> which earlier part in the batch disqualifies the person.
FOUR_EYES: Mapping[Action, str] = MappingProxyType({
    Action.VERIFY: "whoever captured a page of the batch may not verify it",
    Action.RETURN: "whoever captured a page of the batch may not return it",
    Action.APPROVE: "whoever captured a page of the batch may not approve it",
    Action.SIGN_OFF: "whoever captured, verified or approved the batch may not sign it off",
})

# How an action reads in a refusal: "anita (operator) may not <verb>".
_VERB: Mapping[Action, str] = MappingProxyType({
    Action.SCAN: "scan",
    Action.INDEX: "index",
    Action.VIEW_PAGE: "view pages",
    Action.CLOSE_BATCH: "close",
    Action.VERIFY: "verify",
    Action.RETURN: "return",
    Action.APPROVE: "approve",
    Action.SIGN_OFF: "sign off",
    Action.SEAL: "seal",
    Action.UPLOAD: "upload",
    Action.MANAGE_USERS: "manage users",
    Action.CONFIGURE: "configure the station",
    Action.READ_AUDIT: "read the audit trail",
    Action.UNLOCK: "unlock the station",
    Action.LOCK: "lock the station",
    Action.STATUS: "see the status",
    Action.READ_ROSTER: "search the roster",
    Action.MANAGE_ROSTER: "import the roster",
    Action.ENROL: "enrol the station",
})


def _names(value: Iterable[str]) -> frozenset[str]:
    if isinstance(value, str):  # "anita" would otherwise become {"a", "n", "i", "t"}
        raise TypeError(f"expected a collection of names, got the string {value!r}")
    return frozenset(value)


@dataclass(frozen=True)
class BatchFacts:
    """What the caller (the service, from the store) knows about the batch an action touches.

    ``captured_by``: everyone who scanned, imported or indexed a page of it (any time, also before a
    return); ``verified_by``: everyone who gave a page verdict; ``approved_by``: who approved it;
    ``opened_by``: who started it; ``page_captured_by``: for VIEW_PAGE, who captured that page.
    Collections may be given as any iterable of names (not a single string); they are kept as frozensets.
    """

    batch: str
    state: BatchState
    captured_by: frozenset[str] = field(default_factory=frozenset)
    verified_by: frozenset[str] = field(default_factory=frozenset)
    approved_by: str | None = None
    opened_by: str | None = None
    page_captured_by: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "captured_by", _names(self.captured_by))
        object.__setattr__(self, "verified_by", _names(self.verified_by))
        object.__setattr__(self, "state", BatchState(self.state))


def allowed(role: Role, action: Action) -> bool:
    """Whether the role may ever do the action (batch rules aside): the matrix cell."""
    return role in MATRIX[action]


def allowed_actions(role: Role) -> frozenset[Action]:
    """Every action the role may ever do (for menus and screens)."""
    return frozenset(action for action in Action if allowed(role, action))


def sees_personal_fields(role: Role) -> bool:
    """Whether the audit trail's sealed personal fields may be opened for this role: only for roles that
    see pages without a batch rule (supervisor, unit head); never the admin, never an operator."""
    return allowed(role, Action.VIEW_PAGE) and (role, Action.VIEW_PAGE) not in OWN_BATCH_RULES


_STATION_ACTIONS = frozenset({Action.MANAGE_USERS, Action.CONFIGURE, Action.READ_AUDIT, Action.UNLOCK,
                              Action.LOCK, Action.STATUS, Action.READ_ROSTER, Action.MANAGE_ROSTER,
                              Action.ENROL})
_PREPOSITION: Mapping[Action, str] = MappingProxyType({Action.SCAN: " into", Action.VIEW_PAGE: " of"})


def _refuse(person: str, role: Role, action: Action, facts: BatchFacts | None, reason: str) -> PermissionDenied:
    target = ""
    if facts is not None and action not in _STATION_ACTIONS:
        target = f"{_PREPOSITION.get(action, '')} batch {facts.batch}"
    return PermissionDenied(f"{person} ({role.value}) may not {_VERB[action]}{target}: {reason}")


def _own_batch_refusal(person: str, role: Role, action: Action, facts: BatchFacts | None) -> str | None:
    if facts is None:
        return f"'{action.value}' is allowed only on their own batch in capture, and no batch was named"
    rule = f"rule for {role.value} '{action.value}': {OWN_BATCH_RULES[(role, action)]}"
    if facts.state not in CAPTURE_STATES:
        return f"the batch is {facts.state.value}, no longer in capture ({rule})"
    if action is Action.VIEW_PAGE:
        if facts.page_captured_by != person:
            return f"they did not capture this page ({rule})"
        return None
    if person != facts.opened_by and person not in facts.captured_by:
        return f"it is not their batch ({rule})"
    return None


def _four_eyes_refusal(person: str, action: Action, facts: BatchFacts | None) -> str | None:
    if facts is None:
        return f"'{action.value}' needs the batch's facts for the four-eyes rule, and no batch was named"
    rule = f"four-eyes rule for '{action.value}': {FOUR_EYES[action]}"
    me = person.casefold()
    captured = {name.casefold() for name in facts.captured_by}
    verified = {name.casefold() for name in facts.verified_by}
    if me in captured:
        return f"they captured pages of it ({rule})"
    if action is Action.SIGN_OFF:
        if me in verified:
            return f"they verified it ({rule})"
        if facts.approved_by is not None and facts.approved_by.casefold() == me:
            return f"they approved it ({rule})"
    return None


def check(person: str, role: Role, action: Action, facts: BatchFacts | None = None) -> None:
    """Raise PermissionDenied (exit 22) unless ``person``, signed in as ``role``, may do ``action``.

    The message names the person, their role and the action, and the reason: the role's matrix cell, the
    operator's own-batch rule, or the four-eyes rule on ``facts``.
    """
    if not allowed(role, action):
        raise _refuse(person, role, action, facts, f"the {role.value} role does not allow '{action.value}'")
    reason: str | None = None
    if (role, action) in OWN_BATCH_RULES:
        reason = _own_batch_refusal(person, role, action, facts)
    if reason is None and action in FOUR_EYES:
        reason = _four_eyes_refusal(person, action, facts)
    if reason is not None:
        raise _refuse(person, role, action, facts, reason)


def matrix_markdown() -> str:
    """The matrix as a Markdown table (actions down, roles across, why at the end), with its rules."""
    roles = list(Role)
    lines = [
        "| action | " + " | ".join(r.value for r in roles) + " | why |",
        "|---|" + "---|" * len(roles) + "---|",
    ]
    for action in Action:
        cells = []
        for role in roles:
            if not allowed(role, action):
                cells.append("no")
            elif (role, action) in OWN_BATCH_RULES:
                cells.append("own batch¹")
            elif action in FOUR_EYES:
                cells.append("yes²")
            else:
                cells.append("yes")
        lines.append(f"| {action.value} | " + " | ".join(cells) + f" | {_WHY[action]} |")
    lines.append("")
    own = "; ".join(f"{role.value} {action.value}: {text}" for (role, action), text in OWN_BATCH_RULES.items())
    lines.append(f"¹ {own}.")
    lines.append("")
    lines.append("² four eyes: " + "; ".join(FOUR_EYES.values()) + ".")
    return "\n".join(lines) + "\n"

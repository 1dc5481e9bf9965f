"""The four roles of the secure scanning room and the actions the station service guards.

What each role may do is decided in one place, :mod:`scanstation.people.permissions`; these enums are
only the vocabulary (the CLI spells roles with hyphens: ``unit-head``).
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    OPERATOR = "operator"  # contractor staff: scan and index; never read back earlier batches
    SUPERVISOR = "supervisor"  # unit police staff: verify every page, return or approve a batch
    UNIT_HEAD = "unit-head"  # officer commanding: sign a verified batch off with the DSC token
    ADMIN = "admin"  # station admin: accounts and configuration, never a page

    @property
    def may_unlock(self) -> bool:
        """Whether this role holds a key slot that opens the station for the day."""
        return self in (Role.SUPERVISOR, Role.UNIT_HEAD)

    @classmethod
    def parse(cls, text: str) -> Role:
        value = text.strip().lower().replace("_", "-")
        for role in cls:
            if role.value == value:
                return role
        raise ValueError(f"unknown role {text!r}; expected one of: {', '.join(r.value for r in cls)}")


class Action(StrEnum):
    """Everything the service does for a person; each call is checked against the matrix."""

    SCAN = "scan"  # scan or import pages into a batch
    INDEX = "index"  # open an ACR file in a batch, change its employee / period
    VIEW_PAGE = "view-page"  # see a page image or its OCR text
    CLOSE_BATCH = "close-batch"  # end capture of a batch (hand it to verification)
    VERIFY = "verify"  # page verdicts: good, rescan, reorder, reject
    RETURN = "return"  # send a batch back to the operator
    APPROVE = "approve"  # a verified batch goes to the unit head
    SIGN_OFF = "sign-off"  # the unit head's DSC signature
    SEAL = "seal"  # build the sealed package
    UPLOAD = "upload"  # send sealed packages, fetch receipts, purge
    MANAGE_USERS = "manage-users"  # add, disable, reset
    CONFIGURE = "configure"  # station configuration, vault maintenance
    READ_AUDIT = "read-audit"  # show and verify the audit trail
    UNLOCK = "unlock"  # start of day: put the station's keys in memory
    LOCK = "lock"  # end of day: wipe them
    STATUS = "status"  # counts and states, no personal data
    READ_ROSTER = "read-roster"  # look people up in the roster (by code or name) to index an ACR file
    MANAGE_ROSTER = "manage-roster"  # import the unit's staff list (the roster) from the HR portal's export
    ENROL = "enrol"  # the station's enrolment request to the portal, and installing the portal's certificate

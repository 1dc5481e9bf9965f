"""Every error the station raises on purpose, and the exit-code table generated from them.

The root (:class:`ScanStationError`) and the scanner's errors live in :mod:`drivers.errors`, the lowest
layer, because the drivers raise them; the package format's errors live in :mod:`batchformat.errors`,
because the portal receiver shares that package and nothing else.  This module re-exports both beside
the station's own, so the rest of the station imports errors from one place, and the CLI
(:mod:`scanstation.cli.main`) maps all of them to exit codes at its one boundary.
"""

from __future__ import annotations

from batchformat.errors import FormatError, KeyFormatError, PackageError, ReceiptInvalid
from drivers.errors import (
    CoverOpen,
    DeviceBusy,
    DeviceCrashed,
    DeviceError,
    DeviceNotFound,
    DeviceOffline,
    ExternalToolError,
    FeederEmpty,
    InputError,
    PaperJam,
    ScanCancelled,
    ScanStationError,
)

__all__ = [
    "EXIT_CODES", "AuditIntegrityError", "ConfigError", "CoverOpen", "DeviceBusy", "DeviceCrashed", "DeviceError",
    "DeviceNotFound", "DeviceOffline", "ExternalToolError", "FeederEmpty", "FormatError", "InputError",
    "KeyFormatError", "OcrError", "PackageError", "PaperJam", "PermissionDenied", "PortalRejected", "ReceiptInvalid",
    "ScanCancelled", "ScanStationError", "SignInError", "StateError", "StationLocked", "UnlockError", "UploadError",
    "VaultIntegrityError", "exit_code_table",
]


class ConfigError(ScanStationError):
    """A configuration file is missing, unreadable or invalid (names file, key and reason)."""

    exit_code = 3
    summary = "configuration error: file, key and reason are named"


class UnlockError(ScanStationError):
    """The station identity could not be unlocked (wrong passphrase, missing sealed key)."""

    exit_code = 5
    summary = "station identity could not be unlocked"


class VaultIntegrityError(ScanStationError):
    """A vault object is missing, unreadable or does not match its recorded hash."""

    exit_code = 6
    summary = "vault integrity problem"


class StateError(ScanStationError):
    """An operation is not allowed in the current state (batch state machine, station lock)."""

    exit_code = 7
    summary = "operation not allowed in this state (batch state, another station process)"


class OcrError(ScanStationError):
    """Tesseract crashed, timed out or produced no usable output for a page."""

    exit_code = 8
    summary = "OCR failed"


class UploadError(ScanStationError):
    """The portal could not be reached or kept failing (network, 5xx, timeouts); retrying may help."""

    exit_code = 19
    summary = ("upload gave up after `upload.max_attempts` tries (portal unreachable or erroring); "
               "`upload --batch NAME` tries again")


class PortalRejected(UploadError):
    """The portal (or a reply claiming to be it) refused the upload for good, or replied nonsense.

    Covers hostile replies too: bad offsets, oversized headers, redirects to another host.
    Retrying the same bytes will not help; a person must look at the reason.
    """

    exit_code = 20
    summary = "portal refused the upload, or replied nonsense (redirect, bad offset, TLS failure)"


class PermissionDenied(ScanStationError):
    """The signed-in person's role (or the four-eyes rule) does not allow this action.

    The message names the person, their role and the action; the refusal is audited.
    """

    exit_code = 22
    summary = "not permitted: the person's role (or the four-eyes rule) does not allow this action"


class SignInError(ScanStationError):
    """Sign-in failed: unknown person, wrong password, disabled account, slowed down after failures,
    or a session that ended (idle or absolute time-out)."""

    exit_code = 23
    summary = "sign-in failed (wrong name or password, disabled account, too many tries, session ended)"


class StationLocked(ScanStationError):
    """The station's keys are not in memory: a supervisor or unit head must unlock it first."""

    exit_code = 24
    summary = "station locked: a supervisor or unit head must unlock it (scanstation unlock)"


class AuditIntegrityError(ScanStationError):
    """The audit trail fails verification: an entry, the Merkle tree, a checkpoint signature or the
    consistency between checkpoints; the message names the first bad entry."""

    exit_code = 25
    summary = "audit trail failed verification (the first bad entry is named)"


class RosterError(ScanStationError):
    """A roster file (the HR portal's staff list) cannot be imported: every bad row is named with its row,
    column and reason, and nothing of the file is imported."""

    exit_code = 26
    summary = "roster file refused (every bad row named; nothing imported)"


class NotInRoster(ScanStationError):
    """An employee code that is not in the station's roster, given without ``--not-in-roster REASON``."""

    exit_code = 27
    summary = "employee code not in the roster (give --not-in-roster REASON to file it for the supervisor)"


class DuplicateAcr(ScanStationError):
    """The same employee with an overlapping ACR period is already filed (this batch, an earlier one, or an
    uploaded one); the message names where."""

    exit_code = 28
    summary = "duplicate ACR: the same employee and an overlapping period are already filed"


class VerificationIncomplete(ScanStationError):
    """A batch cannot be approved yet: pages not served to the approving supervisor, pages or flags without
    a verdict, rescans outstanding (the message names them)."""

    exit_code = 29
    summary = "verification incomplete: pages unseen or without a verdict, flags without a verdict"


class TokenError(ScanStationError):
    """The unit head's DSC token cannot sign: not present, the PKCS#11 library or the configured token/key not
    found, a wrong PIN (the message says how many tries the token reports left), a locked PIN, or the token
    pulled out during a signature (nothing is half-signed)."""

    exit_code = 30
    summary = "DSC token: absent, PIN wrong or locked, key not found (nothing signed)"


class SignerRefused(ScanStationError):
    """The token's certificate may not sign this batch: not valid now, without digitalSignature or
    non-repudiation key usage, not chaining to the configured trust roots, or not the certificate bound to
    the signed-in unit head.  The message names the check that failed."""

    exit_code = 31
    summary = "signer certificate refused (the failed check is named)"


class EnrolmentError(ScanStationError):
    """A station enrolment request or the portal's certificate bundle is malformed, for another station, or
    does not match this station's keys."""

    exit_code = 32
    summary = "station enrolment refused (request or certificate bundle does not match)"


# Exit codes that no exception class carries.
_PLAIN_CODES = {0: "success", 2: "command-line usage error"}


def _classes(root: type[ScanStationError | FormatError]) -> list[type[ScanStationError | FormatError]]:
    found = [root]
    sub: type[ScanStationError | FormatError]
    for sub in root.__subclasses__():
        found.extend(_classes(sub))
    return found


def exit_code_table() -> dict[int, tuple[str, str]]:
    """Exit code -> (summary, the class that carries it), from the exception classes themselves.

    When several classes share a code (the format's key error and the station's configuration error),
    the first one found names it; their summaries must agree (a test checks).
    """
    table: dict[int, tuple[str, str]] = {code: (text, "") for code, text in _PLAIN_CODES.items()}
    for cls in (*_classes(ScanStationError), *_classes(FormatError)):
        table.setdefault(cls.exit_code, (cls.summary, cls.__name__))
    return dict(sorted(table.items()))


EXIT_CODES: dict[int, str] = {code: text for code, (text, _cls) in exit_code_table().items()}

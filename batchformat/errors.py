"""The format package's own exceptions (it depends on nothing of the station).

Each carries the process exit code and the one-line summary that ``scanstation exit-codes`` and the README
list; the station's CLI maps them at its one boundary, the receiver at its own.
"""

from __future__ import annotations


class FormatError(Exception):
    """Root of every error the package format raises on purpose."""

    exit_code: int = 18
    summary = "batch package malformed or failed verification"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PackageError(FormatError):
    """A sealed batch package is malformed, fails its signature or hash checks, or cannot be built."""

    exit_code = 18
    summary = "batch package malformed or failed verification"


class ReceiptInvalid(FormatError):
    """The portal's receipt is missing, malformed, or not signed by the configured portal key.

    The batch stays on the station (nothing is purged without a valid receipt).
    """

    exit_code = 21
    summary = "portal receipt missing or not validly signed (nothing purged)"


class KeyFormatError(FormatError):
    """A PEM key given to the format is not what it must be (names the source and the reason)."""

    exit_code = 3
    summary = "configuration error: file, key and reason are named"


class PackageCheckError(PackageError):
    """A package failed one named check.

    ``member`` is the archive member (or ``"package"``), ``check`` a stable machine-readable code
    (``member_order``, ``signature``, ``object_sha256``, …, listed in docs/portal-api.md) that the
    receiver returns to the station in its refusal.
    """

    def __init__(self, member: str, check: str, detail: str) -> None:
        super().__init__(f"{member}: {check}: {detail}")
        self.member = member
        self.check = check
        self.detail = detail

    def __reduce__(self) -> tuple[type, tuple[str, str, str]]:
        return (type(self), (self.member, self.check, self.detail))

"""The station's audit log as a sealed package carries it, and the portal's check that the log only grows.

A ``scanstation-manifest/2`` manifest (signed by the station, so nothing here can be swapped) carries::

    "audit_head": {"origin": "scanstation/<station id>", "size": N, "root": "<base64 RFC 6962 root>"},
    "audit_log": {"vkey": "<the station's checkpoint verifier key>",
                  "checkpoint": "<the C2SP signed checkpoint note signed at seal: audit_head>",
                  "proofs": [{"from": "<an earlier signed checkpoint note>",
                              "consistency": ["<base64 hash>", ...]}, ...]}

``proofs`` holds a consistency proof (RFC 9162 §2.1.4.1) from each earlier checkpoint the portal may hold
for the station: the latest one the portal acknowledged in a receipt, and the checkpoints of the
station's packages sealed since but not yet acknowledged (a portal receiving them in any order finds a
proof from the checkpoint it holds).  Sizes strictly increase and are all smaller than ``N``.

:func:`parse_package_log` checks a manifest's log on its own (reader and writer): the vkey is the
station's signing key under the name ``scanstation/<station id>``, the checkpoint verifies with it and is
``audit_head``, every earlier note verifies and every proof holds.  :func:`check_station_log` is the
portal's check against what it keeps per station (the pinned vkey, its latest checkpoint and the
checkpoints it knows to be prefixes of it): a changed key, a log cut back or rewritten is refused with
a named check (``audit_log_key_changed``, ``audit_log_cut_back``, ``audit_log_rewritten``).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from batchformat.checkpoints import SignedCheckpoint, VerifierKey, open_checkpoint, parse_vkey
from batchformat.constants import MANIFEST_NAME
from batchformat.errors import FormatError, PackageCheckError
from batchformat.keys import raw_public_key
from batchformat.log_extension import LOG_EXTENSION_FORMAT, parse_log_extension, verify_extension
from batchformat.manifest import decode_public_key

AUDIT_ORIGIN_PREFIX = "scanstation/"
MAX_LOG_PROOFS = 64  # the last acknowledged checkpoint + the checkpoints of packages sealed since


def _fail(detail: str, check: str = "audit_log") -> PackageCheckError:
    return PackageCheckError(MANIFEST_NAME, check, detail)


@dataclass(frozen=True)
class LogProof:
    """A consistency proof from ``base`` (an earlier checkpoint of the same log) to the package's checkpoint."""

    base: SignedCheckpoint
    consistency: tuple[bytes, ...]


@dataclass(frozen=True)
class PackageLog:
    """A package's verified audit log: verifier key, checkpoint at seal, proofs from earlier checkpoints."""

    vkey: str
    verifier: VerifierKey
    checkpoint: SignedCheckpoint
    proofs: tuple[LogProof, ...]

    @property
    def origin(self) -> str:
        return self.verifier.name

    def proof_from(self, size: int) -> LogProof | None:
        return next((p for p in self.proofs if p.base.size == size), None)


def audit_head(checkpoint: SignedCheckpoint) -> dict[str, Any]:
    """The manifest's ``audit_head``: the checkpoint's origin, size and base64 root."""
    cp = checkpoint.checkpoint
    return {"origin": cp.origin, "size": cp.size, "root": base64.b64encode(cp.root).decode("ascii")}


def audit_log_fields(vkey: str, checkpoint: SignedCheckpoint,
                     proofs: Sequence[tuple[SignedCheckpoint, Sequence[bytes]]]) -> dict[str, Any]:
    """The manifest fields ``audit_head`` and ``audit_log`` for ``checkpoint`` and proofs from earlier ones."""
    ordered = sorted(proofs, key=lambda p: p[0].size)
    return {
        "audit_head": audit_head(checkpoint),
        "audit_log": {"vkey": vkey, "checkpoint": checkpoint.note,
                      "proofs": [{"from": base.note,
                                  "consistency": [base64.b64encode(h).decode("ascii") for h in proof]}
                                 for base, proof in ordered]},
    }


def parse_package_log(manifest: Mapping[str, Any]) -> PackageLog:
    """Check a manifest's ``audit_head``/``audit_log`` on their own; PackageCheckError ``audit_log`` names what failed.

    The manifest's structure must already have been validated (:func:`batchformat.validate_manifest`).
    """
    log = manifest["audit_log"]
    station = manifest["station"]
    origin = AUDIT_ORIGIN_PREFIX + station["id"]
    try:
        verifier = parse_vkey(log["vkey"])
    except FormatError as e:
        raise _fail(f"audit_log.vkey: {e.message}") from None
    if verifier.name != origin:
        raise _fail(f"audit_log.vkey names the log {verifier.name!r}, the station's log is {origin!r}")
    station_key = decode_public_key(station["public_key"], "manifest.station.public_key", MANIFEST_NAME)
    if raw_public_key(verifier.public_key) != station_key:
        raise _fail("audit_log.vkey is not the station's signing key (manifest station.public_key)")
    try:
        checkpoint = open_checkpoint(log["checkpoint"], verifier, origin=origin)
    except FormatError as e:
        raise _fail(f"audit_log.checkpoint: {e.message}") from None
    if manifest["audit_head"] != audit_head(checkpoint):
        raise _fail("audit_head differs from the signed checkpoint in audit_log.checkpoint")
    if len(log["proofs"]) > MAX_LOG_PROOFS:
        raise _fail(f"audit_log.proofs has more than {MAX_LOG_PROOFS} entries")
    proofs: list[LogProof] = []
    for i, entry in enumerate(log["proofs"]):
        where = f"audit_log.proofs[{i}]"
        try:
            base = open_checkpoint(entry["from"], verifier, origin=origin)
        except FormatError as e:
            raise _fail(f"{where}.from: {e.message}") from None
        if proofs and base.size <= proofs[-1].base.size:
            raise _fail(f"{where}: the earlier checkpoints must have strictly increasing sizes")
        if base.size >= checkpoint.size:
            raise _fail(f"{where}: an earlier checkpoint of size {base.size} is not smaller than the "
                        f"checkpoint's {checkpoint.size}")
        try:
            ext = parse_log_extension({"format": LOG_EXTENSION_FORMAT, "checkpoint": checkpoint.note,
                                       "old_size": base.size, "consistency": entry["consistency"]})
            verify_extension(base.note, checkpoint.note, ext.consistency, verifier)
        except FormatError as e:
            raise _fail(f"{where}: the log at seal does not extend the checkpoint of size {base.size}: "
                        f"{e.message}") from None
        proofs.append(LogProof(base, ext.consistency))
    return PackageLog(log["vkey"], verifier, checkpoint, tuple(proofs))


# --------------------------------------------------------------------------------------------------
# the portal's check


@dataclass(frozen=True)
class LogAcceptance:
    """What a portal keeps after accepting a package's log.

    ``latest``: its latest checkpoint for the station now (the package's, or the one it held if the
    package's is an older prefix of it: a package sealed earlier arriving later); ``advanced``: whether
    that changed; ``prefixes``: checkpoints now known to be prefixes of ``latest`` (to remember).
    """

    latest: SignedCheckpoint
    advanced: bool
    prefixes: tuple[SignedCheckpoint, ...]


def check_station_log(
    log: PackageLog,
    *,
    pinned_vkey: str | None,
    latest_note: str | None,
    known_prefix: Callable[[int, bytes], bool],
) -> LogAcceptance:
    """The portal's check of a package's log against what it keeps for the station.

    ``pinned_vkey``: the verifier key pinned at the station's first package (trust on first use), None
    for a station never seen; ``latest_note``: the latest checkpoint the portal accepted from it;
    ``known_prefix(size, root)``: whether a checkpoint is known to be a prefix of that one.  Raises
    :class:`PackageCheckError` with check ``audit_log_key_changed`` (a known station with another key),
    ``audit_log_cut_back`` (a smaller log that is not a known prefix of the portal's checkpoint) or
    ``audit_log_rewritten`` (same size and another root, or no valid consistency proof from the portal's
    checkpoint: the log is not shown to extend it).
    """
    if pinned_vkey is not None and pinned_vkey != log.vkey:
        raise _fail(f"the station's checkpoint key {log.vkey!r} is not the key pinned for it at its first "
                    f"package ({pinned_vkey!r}); a changed station key must be registered at the portal",
                    "audit_log_key_changed")
    new = log.checkpoint
    learned = (new, *(p.base for p in log.proofs))
    if latest_note is None:
        return LogAcceptance(new, True, learned)
    try:
        latest = open_checkpoint(latest_note, log.verifier, origin=log.origin)
    except FormatError as e:  # the portal's own record fails: never accept on top of it
        raise _fail(f"the portal's stored checkpoint for this station does not verify: {e.message}",
                    "audit_log_rewritten") from None
    if new.size < latest.size:
        if known_prefix(new.size, new.root):
            return LogAcceptance(latest, False, ())
        raise _fail(f"the station's log has {new.size} entries, fewer than the {latest.size} of the checkpoint "
                    "the portal acknowledged, and it is not an earlier state of that log (cut back)",
                    "audit_log_cut_back")
    if new.size == latest.size:
        if new.root == latest.root:
            return LogAcceptance(latest, False, ())
        raise _fail(f"the station's log of {new.size} entries has another root than the checkpoint of the same "
                    "size the portal acknowledged (rewritten)", "audit_log_rewritten")
    proof = log.proof_from(latest.size)
    if proof is None:
        sizes = [p.base.size for p in log.proofs]
        raise _fail(f"the package carries no consistency proof from the portal's checkpoint of size {latest.size} "
                    f"(only from sizes {sizes}): the log is not shown to extend it (rewritten, or cut back and "
                    "grown again)", "audit_log_rewritten")
    if proof.base.root != latest.root:
        raise _fail(f"the package's checkpoint of size {latest.size} has another root than the one the portal "
                    "acknowledged (rewritten)", "audit_log_rewritten")
    try:
        verify_extension(latest.note, new.note, proof.consistency, log.verifier)
    except FormatError as e:
        raise _fail(f"the log does not extend the portal's checkpoint of size {latest.size}: {e.message}",
                    "audit_log_rewritten") from None
    return LogAcceptance(new, True, learned)

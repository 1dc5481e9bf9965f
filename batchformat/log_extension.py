"""A station's audit log as a package carries it: the checkpoint at seal time and the consistency proof
from the last checkpoint the portal acknowledged, in one canonical-JSON object, and the receiver's check.

The JSON form (``scanstation-log-extension/1``)::

    {"format": "scanstation-log-extension/1",
     "checkpoint": "<the signed checkpoint note at seal time>",
     "old_size": <size of the checkpoint the proof starts from; 0 when the portal has none>,
     "consistency": ["<base64 hash>", ...]}        (RFC 9162 §2.1.4.1 PROOF(old_size, new tree))

The receiver keeps each station's latest checkpoint and calls :func:`verify_extension` with it: a log
that was cut back or rewritten since cannot produce a valid proof, so its package is refused (the
station's own ``audit verify`` cannot see a cut of its whole data directory; the portal can).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from batchformat.checkpoints import NoteFormatError, SignedCheckpoint, VerifierKey, open_checkpoint, parse_vkey
from batchformat.merkle import HASH_SIZE, MerkleProofError, verify_consistency

LOG_EXTENSION_FORMAT = "scanstation-log-extension/1"
MAX_PROOF_HASHES = 128  # a proof has at most 2·log2(size) hashes; 128 covers any 64-bit size


@dataclass(frozen=True)
class LogExtension:
    """A checkpoint note and the consistency proof from ``old_size`` to its size."""

    checkpoint: str
    old_size: int
    consistency: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        return {"format": LOG_EXTENSION_FORMAT, "checkpoint": self.checkpoint, "old_size": self.old_size,
                "consistency": [base64.b64encode(h).decode("ascii") for h in self.consistency]}


def make_log_extension(new: SignedCheckpoint, old_size: int, proof: Sequence[bytes]) -> LogExtension:
    """The package's log extension: ``new`` and the proof from ``old_size`` (0: the portal has no checkpoint)."""
    if not 0 <= old_size <= new.size:
        raise MerkleProofError(f"log extension: old size {old_size} is outside 0..{new.size}")
    if old_size == 0 and proof:
        raise MerkleProofError("log extension: no proof is carried from the empty log")
    return LogExtension(new.note, old_size, tuple(bytes(h) for h in proof))


def parse_log_extension(obj: Mapping[str, Any]) -> LogExtension:
    """The JSON form back, refusing unknown or missing fields and malformed hashes (:class:`NoteFormatError`)."""
    if not isinstance(obj, Mapping) or set(obj) != {"format", "checkpoint", "old_size", "consistency"}:
        raise NoteFormatError("log extension must have exactly format, checkpoint, old_size and consistency")
    if obj["format"] != LOG_EXTENSION_FORMAT:
        raise NoteFormatError(f"log extension format is {obj['format']!r}, expected {LOG_EXTENSION_FORMAT!r}")
    old_size, note, hashes = obj["old_size"], obj["checkpoint"], obj["consistency"]
    if isinstance(old_size, bool) or not isinstance(old_size, int) or old_size < 0:
        raise NoteFormatError("log extension old_size must be a non-negative integer")
    if not isinstance(note, str):
        raise NoteFormatError("log extension checkpoint must be the signed note text")
    if not isinstance(hashes, list) or len(hashes) > MAX_PROOF_HASHES:
        raise NoteFormatError(f"log extension consistency must be a list of at most {MAX_PROOF_HASHES} hashes")
    proof = []
    for i, text in enumerate(hashes):
        try:
            raw = base64.b64decode(str(text), validate=True)
        except (binascii.Error, ValueError):
            raise NoteFormatError(f"log extension consistency hash {i} is not base64") from None
        if len(raw) != HASH_SIZE or base64.b64encode(raw).decode("ascii") != text:
            raise NoteFormatError(f"log extension consistency hash {i} is not the base64 of {HASH_SIZE} bytes")
        proof.append(raw)
    return LogExtension(note, old_size, tuple(proof))


def verify_extension(old_checkpoint_note: str | None, new_checkpoint_note: str, proof: Sequence[bytes],
                     vkey: str | VerifierKey) -> SignedCheckpoint:
    """Check that the station log behind ``new_checkpoint_note`` extends ``old_checkpoint_note``.

    Both notes must be signed by ``vkey`` (text or parsed) for the origin that is its key name; with no
    old note (the portal's first package from the station) only the new one is checked.  A new log
    smaller than the old one, a different root at the same size, or a proof that does not verify raises
    (:class:`MerkleProofError`, :class:`NoteSignatureError`, :class:`NoteFormatError`: all FormatErrors).
    Returns the new checkpoint, which the receiver then keeps.
    """
    verifier = parse_vkey(vkey) if isinstance(vkey, str) else vkey
    new = open_checkpoint(new_checkpoint_note, verifier, origin=verifier.name)
    if old_checkpoint_note is None:
        if proof:
            raise MerkleProofError("log extension: a proof was given but there is no earlier checkpoint")
        return new
    old = open_checkpoint(old_checkpoint_note, verifier, origin=verifier.name)
    if new.size < old.size:
        raise MerkleProofError(f"log extension: the station's log has {new.size} entries, fewer than the "
                               f"{old.size} of its last acknowledged checkpoint (cut back)")
    if old.size == 0:
        if proof:
            raise MerkleProofError("log extension: no proof exists from the empty log")
        return new
    verify_consistency(old.size, new.size, old.root, new.root, proof)
    return new


def verify_log_extension(old_checkpoint_note: str | None, extension: LogExtension,
                         vkey: str | VerifierKey) -> SignedCheckpoint:
    """:func:`verify_extension` for a parsed :class:`LogExtension`, whose ``old_size`` must be the old note's."""
    if old_checkpoint_note is None:
        if extension.old_size != 0:
            raise MerkleProofError(f"log extension starts at size {extension.old_size}, but no checkpoint is known")
    else:
        verifier = parse_vkey(vkey) if isinstance(vkey, str) else vkey
        old = open_checkpoint(old_checkpoint_note, verifier, origin=verifier.name)
        if extension.old_size != old.size:
            raise MerkleProofError(f"log extension starts at size {extension.old_size}, the last acknowledged "
                                   f"checkpoint has size {old.size}")
    return verify_extension(old_checkpoint_note, extension.checkpoint, extension.consistency, vkey)

"""The portal's signed receipts: made by the receiver, verified by the station before anything is purged."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from batchformat.canonical_json import canonical_json, strict_json
from batchformat.checkpoints import open_checkpoint, parse_vkey
from batchformat.constants import MAX_NOTE_TEXT, MAX_RECEIPT_BYTES, RECEIPT_FORMAT, RECEIPT_FORMAT_V1
from batchformat.errors import FormatError, PackageCheckError, PackageError, ReceiptInvalid
from batchformat.manifest import document_digest
from batchformat.reader import VerifiedPackage

# --------------------------------------------------------------------------------------------------
# receipts


def key_id(public_key: Ed25519PublicKey) -> str:
    """Short identifier of a portal key: hex of the first 16 bytes of SHA-256(raw public key)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).digest()[:16].hex()


def receipt_documents(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The per-document lines a receipt carries for ``manifest`` (also used to check one)."""
    return [{"id": d["id"], "employee_code": d["employee_code"], "acr_period": d["acr_period"],
             "page_count": d["page_count"], "digest": document_digest(manifest, d)} for d in manifest["documents"]]


def make_receipt(
    verified: VerifiedPackage,
    *,
    receipt_id: str,
    received_at: str,
    portal_key: Ed25519PrivateKey,
    audit_checkpoint: str | None = None,
) -> bytes:
    """The portal's signed receipt (``scanstation-receipt/2``, JSON bytes) for a verified package.

    ``audit_checkpoint``: the station's checkpoint note the portal holds after accepting the package (its
    latest for the station); by default the package's own checkpoint.
    """
    if audit_checkpoint is None:
        if verified.audit_log is None:
            raise PackageError("make_receipt: the package carries no audit checkpoint")
        audit_checkpoint = verified.audit_log.checkpoint.note
    receipt = {
        "format": RECEIPT_FORMAT,
        "receipt_id": receipt_id,
        "package_id": verified.envelope["package_id"],
        "package_sha256": verified.sha256,
        "package_size": verified.size,
        "batch_uid": verified.envelope["batch_uid"],
        "station_id": verified.envelope["station_id"],
        "received_at": received_at,
        "documents": receipt_documents(verified.manifest),
        "portal_key_id": key_id(portal_key.public_key()),
        "audit_checkpoint": audit_checkpoint,
    }
    signature = base64.b64encode(portal_key.sign(canonical_json(receipt))).decode()
    return canonical_json({"receipt": receipt, "signature": signature})


_RECEIPT_KEYS_V1 = frozenset({"format", "receipt_id", "package_id", "package_sha256", "package_size", "batch_uid",
                              "station_id", "received_at", "documents", "portal_key_id"})
_RECEIPT_KEYS = {RECEIPT_FORMAT_V1: _RECEIPT_KEYS_V1, RECEIPT_FORMAT: _RECEIPT_KEYS_V1 | {"audit_checkpoint"}}


def receipt_audit_checkpoint(data: bytes) -> str | None:
    """The station checkpoint note a stored (already verified) receipt acknowledges; None for a version 1
    receipt or anything that does not parse.  The caller verifies the note with its own key."""
    try:
        outer = strict_json(data, "receipt", require_canonical=False)
    except PackageCheckError:
        return None
    receipt = outer.get("receipt") if isinstance(outer, dict) else None
    if not isinstance(receipt, dict) or receipt.get("format") != RECEIPT_FORMAT:
        return None
    note = receipt.get("audit_checkpoint")
    return note if isinstance(note, str) else None


def verify_receipt(
    data: bytes,
    portal_public_key: Ed25519PublicKey,
    *,
    package_sha256: str,
    manifest: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Check a receipt's signature and that it is for this package; return the inner ``receipt``.

    Versions 1 and 2 are accepted (each with exactly its own fields).  With ``manifest``, also checks
    package id, batch, station and every document line (digest included) against it, and, for a
    manifest carrying the station's audit log, that the receipt is version 2 and acknowledges a
    checkpoint of that station's log (signed by the manifest's ``audit_log.vkey``) at least as large as
    the package's.  Any problem raises ReceiptInvalid saying what did not match.
    """
    if len(data) > MAX_RECEIPT_BYTES:
        raise ReceiptInvalid(f"receipt is larger than {MAX_RECEIPT_BYTES} bytes")
    try:
        outer = strict_json(data, "receipt", require_canonical=False)
    except PackageCheckError as e:
        raise ReceiptInvalid(f"receipt is not valid JSON: {e.detail}") from None
    if not isinstance(outer, dict) or set(outer) != {"receipt", "signature"}:
        raise ReceiptInvalid("receipt must be a JSON object with exactly 'receipt' and 'signature'")
    receipt, sig_text = outer["receipt"], outer["signature"]
    if not isinstance(receipt, dict):
        raise ReceiptInvalid("receipt must be a JSON object")
    fmt = receipt.get("format")
    keys = _RECEIPT_KEYS.get(fmt) if isinstance(fmt, str) else None
    if keys is None:
        raise ReceiptInvalid(f"receipt format is {receipt.get('format')!r}, expected {RECEIPT_FORMAT!r} "
                             f"(or {RECEIPT_FORMAT_V1!r})")
    if set(receipt) != keys:
        raise ReceiptInvalid(f"{receipt['format']} receipt fields must be exactly {sorted(keys)}")
    if "audit_checkpoint" in receipt and (not isinstance(receipt["audit_checkpoint"], str)
                                          or len(receipt["audit_checkpoint"]) > MAX_NOTE_TEXT):
        raise ReceiptInvalid("receipt audit_checkpoint must be a signed checkpoint note")
    try:
        signature = base64.b64decode(str(sig_text), validate=True)
        portal_public_key.verify(signature, canonical_json(receipt))
    except (binascii.Error, ValueError, PackageError):
        raise ReceiptInvalid("receipt signature is not valid base64 / receipt not canonical") from None
    except InvalidSignature:
        raise ReceiptInvalid("receipt signature does not verify with the configured portal key") from None
    if receipt["portal_key_id"] != key_id(portal_public_key):
        raise ReceiptInvalid("receipt names a different portal key id")
    if receipt["package_sha256"] != package_sha256:
        raise ReceiptInvalid(f"receipt is for package {receipt['package_sha256']!r}, not {package_sha256!r}")
    if manifest is not None:
        for key, expected in (("package_id", manifest["package_id"]), ("batch_uid", manifest["batch"]["uid"]),
                              ("station_id", manifest["station"]["id"])):
            if receipt[key] != expected:
                raise ReceiptInvalid(f"receipt {key} is {receipt[key]!r}, the package's is {expected!r}")
        if receipt["documents"] != receipt_documents(manifest):
            raise ReceiptInvalid("receipt document list or per-document digests differ from the package's manifest")
        if "audit_log" in manifest:
            _check_acknowledged(receipt, manifest)
    return receipt


def _check_acknowledged(receipt: Mapping[str, Any], manifest: Mapping[str, Any]) -> None:
    """A receipt for a package with an audit log acknowledges a checkpoint of that log, no smaller than its own."""
    if receipt["format"] != RECEIPT_FORMAT:
        raise ReceiptInvalid(f"the package carries the station's audit log, so its receipt must be {RECEIPT_FORMAT} "
                             f"with the checkpoint the portal acknowledged, not {receipt['format']}")
    try:
        verifier = parse_vkey(manifest["audit_log"]["vkey"])
        acknowledged = open_checkpoint(receipt["audit_checkpoint"], verifier, origin=verifier.name)
    except FormatError as e:
        raise ReceiptInvalid(f"the receipt's audit_checkpoint is not a checkpoint of this station's log: "
                             f"{e.message}") from None
    head = manifest["audit_head"]
    if acknowledged.size < head["size"] or (acknowledged.size == head["size"]
                                            and base64.b64encode(acknowledged.root).decode() != head["root"]):
        raise ReceiptInvalid(f"the receipt acknowledges the audit checkpoint of size {acknowledged.size}, which does "
                             f"not cover the package's checkpoint of size {head['size']}")

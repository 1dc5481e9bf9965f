"""The sealed batch package format, shared by the station and the portal receiver.

A package is an uncompressed POSIX ustar archive whose members come in a fixed order:

1. ``scanstation-package.json``  plaintext envelope (no personal data)
2. ``manifest.json.age``         canonical-JSON manifest, age-encrypted to the portal and the batch
3. ``signatures/*.json``         ``station.json`` (Ed25519 over the manifest plaintext) plus, later,
                                 other signers; unknown signature members are accepted and ignored
4. ``objects/<id>.age``          every vault object exactly as stored, in manifest ``objects`` order

The reader is strict and hand-written (not :mod:`tarfile`'s lenient reader): one pass over the file,
one member at a time, so a 200 MB package never sits in memory and anything unexpected (links,
devices, GNU extensions, traversal names, extra or missing members, trailing garbage) is refused with
a :class:`PackageCheckError` that names the member and the failed check.  See docs/portal-api.md.

This package imports nothing of the station (store, vault, drivers, Qt): the portal's receiver depends
on it and on nothing else of ours.  Its modules: :mod:`~batchformat.constants` (names, layout, limits),
:mod:`~batchformat.canonical_json`, :mod:`~batchformat.manifest` (structure checks, document digests),
:mod:`~batchformat.writer`, :mod:`~batchformat.reader`, :mod:`~batchformat.receipts`,
:mod:`~batchformat.keys`, :mod:`~batchformat.errors`, :mod:`~batchformat.atomic` (durable file writes,
which both sides need), :mod:`~batchformat.merkle` (RFC 6962 tree heads, inclusion and consistency proofs)
and :mod:`~batchformat.checkpoints` (C2SP signed notes and tlog checkpoints, the station's signed audit
tree heads), :mod:`~batchformat.log_extension` and :mod:`~batchformat.package_log` (the audit checkpoint and
consistency proofs a package carries, and the portal's check that a station's log only grows).
The names below are the public interface.
"""

from batchformat.canonical_json import canonical_json
from batchformat.checkpoints import (
    Checkpoint,
    CheckpointFormatError,
    NoteFormatError,
    NoteSignature,
    NoteSignatureError,
    SignedCheckpoint,
    SignedNote,
    VerifierKey,
    format_checkpoint,
    note_key_id,
    open_checkpoint,
    parse_checkpoint,
    parse_note,
    parse_vkey,
    sign_checkpoint,
    sign_note,
    verify_note,
    vkey,
)
from batchformat.constants import (
    ENVELOPE_NAME,
    FORMAT,
    FORMAT_V1,
    MANIFEST_FORMAT,
    MANIFEST_FORMAT_V2,
    MANIFEST_FORMATS,
    MANIFEST_NAME,
    MEDIA_TYPE,
    RECEIPT_FORMAT,
    RECEIPT_FORMAT_V1,
    STATION_SIGNATURE_NAME,
)
from batchformat.errors import FormatError, KeyFormatError, PackageCheckError, PackageError, ReceiptInvalid
from batchformat.keys import load_public_key_pem, public_key_pem, raw_public_key
from batchformat.log_extension import (
    LOG_EXTENSION_FORMAT,
    LogExtension,
    make_log_extension,
    parse_log_extension,
    verify_extension,
    verify_log_extension,
)
from batchformat.manifest import document_digest, validate_manifest
from batchformat.merkle import (
    EMPTY_ROOT,
    MerkleProofError,
    MerkleTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from batchformat.package_log import (
    MAX_LOG_PROOFS,
    LogAcceptance,
    LogProof,
    PackageLog,
    audit_head,
    audit_log_fields,
    check_station_log,
    parse_package_log,
)
from batchformat.reader import VerifiedPackage, iter_members, read_envelope, verify_package
from batchformat.receipts import (
    key_id,
    make_receipt,
    receipt_audit_checkpoint,
    receipt_documents,
    verify_receipt,
)
from batchformat.writer import ObjectSource, PackageInfo, utc_now_rfc3339, write_package

__all__ = [
    "EMPTY_ROOT", "ENVELOPE_NAME", "FORMAT", "FORMAT_V1", "LOG_EXTENSION_FORMAT", "MANIFEST_FORMAT",
    "MANIFEST_FORMATS", "MANIFEST_FORMAT_V2", "MANIFEST_NAME",
    "MAX_LOG_PROOFS", "MEDIA_TYPE", "RECEIPT_FORMAT", "RECEIPT_FORMAT_V1", "STATION_SIGNATURE_NAME", "Checkpoint",
    "CheckpointFormatError", "FormatError", "KeyFormatError", "LogAcceptance", "LogExtension", "LogProof",
    "MerkleProofError", "MerkleTree", "NoteFormatError", "NoteSignature", "NoteSignatureError", "ObjectSource",
    "PackageCheckError", "PackageError", "PackageInfo", "PackageLog", "ReceiptInvalid", "SignedCheckpoint",
    "SignedNote", "VerifiedPackage", "VerifierKey", "audit_head", "audit_log_fields", "canonical_json",
    "check_station_log", "consistency_proof", "document_digest", "format_checkpoint", "inclusion_proof",
    "iter_members", "key_id", "leaf_hash", "load_public_key_pem", "make_log_extension", "make_receipt", "node_hash",
    "note_key_id", "open_checkpoint", "parse_checkpoint", "parse_log_extension", "parse_note", "parse_package_log",
    "parse_vkey", "public_key_pem", "raw_public_key", "read_envelope", "receipt_audit_checkpoint",
    "receipt_documents", "root_hash", "sign_checkpoint", "sign_note", "utc_now_rfc3339", "validate_manifest",
    "verify_consistency", "verify_extension", "verify_inclusion", "verify_log_extension", "verify_note",
    "verify_package", "verify_receipt", "vkey", "write_package",
]

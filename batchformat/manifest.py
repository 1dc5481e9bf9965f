"""The manifest: its structure checked field by field (shared by writer and reader), per-document digests."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from typing import Any

from batchformat.canonical_json import canonical_json
from batchformat.constants import (
    DOC_ID,
    HEX32,
    HEX64,
    KIND,
    MANIFEST_FORMAT,
    MANIFEST_FORMAT_V2,
    MANIFEST_FORMATS,
    MANIFEST_NAME,
    MAX_NOTE_TEXT,
    MAX_OBJECT_BYTES,
    MAX_TEXT,
    RFC3339,
)
from batchformat.errors import PackageCheckError, PackageError

# --------------------------------------------------------------------------------------------------
# manifest validation (shared by writer and reader)


def _fail(check: str, detail: str, member: str = MANIFEST_NAME) -> PackageCheckError:
    return PackageCheckError(member, check, detail)


def _new_id(entry: Any, here: str, pattern: re.Pattern[str], seen: set[str], bad: str, twice: str) -> str:
    """``entry["id"]``, checked against ``pattern`` and not seen before (then added to ``seen``).
    ``bad`` and ``twice`` are the messages; ``{}`` in them stands for the id."""
    value = _req(entry, "id", str, here)
    if not pattern.match(value):
        raise _fail("manifest_format", f"{here}.id {bad.format(value)}")
    if value in seen:
        raise _fail("manifest_format", twice.format(value))
    seen.add(value)
    return value


def _req(mapping: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(mapping, dict):
        raise _fail("manifest_format", f"{where} is not an object")
    if key not in mapping:
        raise _fail("manifest_format", f"{where}.{key} is missing")
    value = mapping[key]
    # bool is an int subclass; an int field must not accept true/false
    if kind is int and isinstance(value, bool):
        raise _fail("manifest_format", f"{where}.{key} must be an integer")
    if not isinstance(value, kind):
        raise _fail("manifest_format", f"{where}.{key} has the wrong type ({type(value).__name__})")
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise _fail("manifest_format", f"{where}.{key} is longer than {MAX_TEXT} characters")
    if isinstance(value, int) and value < 0:
        raise _fail("manifest_format", f"{where}.{key} is negative")
    return value


def _check_object_ref(value: Any, where: str, known: set[str], nullable: bool) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str) or not HEX32.match(value):
        raise _fail("manifest_format", f"{where} is not an object id (32 hex digits)")
    if value not in known:
        raise _fail("manifest_references", f"{where} refers to object {value} which is not in objects")
    return value


def _validate_pages(pages: Any, where: str, known: set[str], *, raw_required: bool) -> None:
    """Page entries; ``raw_required``: version 2, where every page carried its raw capture (version 3 may not)."""
    if not isinstance(pages, list):
        raise _fail("manifest_format", f"{where} is not a list")
    for i, page in enumerate(pages):
        here = f"{where}[{i}]"
        _req(page, "seq", int, here)
        _req(page, "position", int, here)
        _req(page, "side", str, here)
        flags = _req(page, "flags", list, here)
        if not all(isinstance(f, str) for f in flags):
            raise _fail("manifest_format", f"{here}.flags must be a list of strings")
        _req(page, "ocr_state", str, here)
        if raw_required:
            _check_object_ref(_req(page, "raw", str, here), f"{here}.raw", known, nullable=False)
        for key in ("image", "ocr_text") if raw_required else ("raw", "image", "ocr_text"):
            if key not in page:
                raise _fail("manifest_format", f"{here}.{key} is missing")
            _check_object_ref(page[key], f"{here}.{key}", known, nullable=True)


def validate_manifest(manifest: Any) -> None:
    """Check a manifest's structure and internal references; PackageCheckError names the field."""
    if not isinstance(manifest, dict):
        raise _fail("manifest_format", "manifest is not a JSON object")
    version = manifest.get("format")
    if version not in MANIFEST_FORMATS:
        raise _fail("manifest_format", f"format is {version!r}, expected {MANIFEST_FORMAT!r} "
                                       f"(or {MANIFEST_FORMAT_V2!r})")
    raw_required = version == MANIFEST_FORMAT_V2
    package_id = _req(manifest, "package_id", str, "manifest")
    if not HEX32.match(package_id):
        raise _fail("manifest_format", "package_id must be 32 lowercase hex digits")
    if not RFC3339.match(_req(manifest, "created_at", str, "manifest")):
        raise _fail("manifest_format", "created_at is not an RFC 3339 timestamp")
    _req(manifest, "software_version", str, "manifest")
    _validate_audit_fields(manifest)
    station = _req(manifest, "station", dict, "manifest")
    for key in ("id", "unit", "public_key", "recipient"):
        _req(station, key, str, "manifest.station")
    if not station["id"]:
        raise _fail("manifest_format", "station.id is empty")
    decode_public_key(station["public_key"], "manifest.station.public_key", MANIFEST_NAME)
    batch = _req(manifest, "batch", dict, "manifest")
    for key in ("uid", "name", "unit", "operator", "created_at", "sealed_at"):
        _req(batch, key, str, "manifest.batch")
    if not batch["uid"]:
        raise _fail("manifest_format", "batch.uid is empty")
    _req(batch, "page_count", int, "manifest.batch")

    objects = _req(manifest, "objects", list, "manifest")
    known: set[str] = set()
    for i, entry in enumerate(objects):
        here = f"manifest.objects[{i}]"
        _new_id(entry, here, HEX32, known, "is not 32 lowercase hex digits", "object {} is listed twice")
        if not KIND.match(_req(entry, "kind", str, here)):
            raise _fail("manifest_format", f"{here}.kind is not a valid kind")
        for key in ("sha256", "ct_sha256"):
            if not HEX64.match(_req(entry, key, str, here)):
                raise _fail("manifest_format", f"{here}.{key} is not 64 lowercase hex digits")
        _req(entry, "size", int, here)
        if _req(entry, "ct_size", int, here) > MAX_OBJECT_BYTES:
            raise _fail("manifest_format", f"{here}.ct_size exceeds {MAX_OBJECT_BYTES} bytes")
        if set(entry) != _OBJECT_KEYS:
            raise _fail("manifest_format", f"{here} has unexpected keys {sorted(set(entry) - _OBJECT_KEYS)}")

    documents = _req(manifest, "documents", list, "manifest")
    doc_ids: set[str] = set()
    for i, doc in enumerate(documents):
        here = f"manifest.documents[{i}]"
        _new_id(doc, here, DOC_ID, doc_ids, "{!r} is not of the form doc-<n>",
                "document id {} is listed twice")
        _req(doc, "seq", int, here)
        for key in ("employee_code", "employee_name", "rank", "acr_period"):
            _req(doc, key, str, here)
        _req(doc, "page_count", int, here)
        if "pdf" not in doc:
            raise _fail("manifest_format", f"{here}.pdf is missing")
        _check_object_ref(doc["pdf"], f"{here}.pdf", known, nullable=True)
        _validate_pages(_req(doc, "pages", list, here), f"{here}.pages", known, raw_required=raw_required)
    _validate_pages(_req(manifest, "unfiled_pages", list, "manifest"), "manifest.unfiled_pages", known,
                    raw_required=raw_required)


_OBJECT_KEYS = {"id", "kind", "sha256", "size", "ct_sha256", "ct_size"}


def _validate_audit_fields(manifest: dict[str, Any]) -> None:
    """The structure of ``audit_head`` and ``audit_log`` (their signatures and proofs:
    :func:`batchformat.package_log.parse_package_log`)."""
    head = _req(manifest, "audit_head", dict, "manifest")
    if set(head) != {"origin", "size", "root"}:
        raise _fail("manifest_format", "manifest.audit_head must have exactly origin, size and root")
    _req(head, "origin", str, "manifest.audit_head")
    _req(head, "size", int, "manifest.audit_head")
    root = _req(head, "root", str, "manifest.audit_head")
    try:
        raw = base64.b64decode(root, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32 or base64.b64encode(raw).decode("ascii") != root:
        raise _fail("manifest_format", "manifest.audit_head.root is not the canonical base64 of 32 bytes")
    log = _req(manifest, "audit_log", dict, "manifest")
    if set(log) != {"vkey", "checkpoint", "proofs"}:
        raise _fail("manifest_format", "manifest.audit_log must have exactly vkey, checkpoint and proofs")
    _req(log, "vkey", str, "manifest.audit_log")
    _note(log, "checkpoint", "manifest.audit_log")
    for i, entry in enumerate(_req(log, "proofs", list, "manifest.audit_log")):
        here = f"manifest.audit_log.proofs[{i}]"
        if not isinstance(entry, dict) or set(entry) != {"from", "consistency"}:
            raise _fail("manifest_format", f"{here} must be an object with exactly from and consistency")
        _note(entry, "from", here)
        if not all(isinstance(h, str) for h in _req(entry, "consistency", list, here)):
            raise _fail("manifest_format", f"{here}.consistency must be a list of base64 strings")


def _note(mapping: dict[str, Any], key: str, where: str) -> None:
    value = mapping.get(key)
    if not isinstance(value, str) or len(value.encode("utf-8", "surrogatepass")) > MAX_NOTE_TEXT:
        raise _fail("manifest_format", f"{where}.{key} must be a signed note of at most {MAX_NOTE_TEXT} bytes")


def decode_public_key(value: str, where: str, member: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise PackageCheckError(member, "manifest_format", f"{where} is not base64") from None
    if len(raw) != 32:
        raise PackageCheckError(member, "manifest_format", f"{where} is not a raw 32-byte Ed25519 key")
    return raw


def document_digest(manifest: Mapping[str, Any], doc: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of one document entry plus the object entries it references.

    The objects come in first-reference order (pdf, then per page raw, image, ocr_text; null ones skipped),
    each once.
    Receipts carry this digest per document, so a receipt proves which pages arrived for whom.
    """
    by_id = {o["id"]: o for o in manifest["objects"]}
    order: list[str] = []

    def add(oid: Any) -> None:
        if oid is not None and oid not in order:
            if oid not in by_id:
                raise PackageError(f"document {doc.get('id')!r} refers to object {oid!r} not in the manifest")
            order.append(oid)

    add(doc.get("pdf"))
    for page in doc["pages"]:
        for key in ("raw", "image", "ocr_text"):
            add(page.get(key))
    blob = canonical_json({"document": dict(doc), "objects": [by_id[o] for o in order]})
    return hashlib.sha256(blob).hexdigest()

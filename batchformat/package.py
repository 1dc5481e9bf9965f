"""Sealed batch packages (what leaves the station) and the portal's signed receipts.

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

This module imports nothing from the station (store, vault, Qt): the portal's receiver uses it too.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime as dt
import hashlib
import hmac
import io
import json
import os
import re
import secrets
import tarfile
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pyrage
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from batchformat import atomic
from batchformat.errors import KeyFormatError, PackageError, ReceiptInvalid

FORMAT = "scanstation-package/1"
MANIFEST_FORMAT = "scanstation-manifest/1"
RECEIPT_FORMAT = "scanstation-receipt/1"
MEDIA_TYPE = "application/x-scanstation-package"

ENVELOPE_NAME = "scanstation-package.json"
MANIFEST_NAME = "manifest.json.age"
STATION_SIGNATURE_NAME = "signatures/station.json"
OBJECT_PREFIX = "objects/"
OBJECT_SUFFIX = ".age"

# Size limits a reader enforces before reading a member into memory (hostile input must not make
# the portal allocate gigabytes).  Object ciphertexts are single pages / PDFs: < 50 MB in practice.
MAX_ENVELOPE_BYTES = 64 * 1024
MAX_SIGNATURE_BYTES = 64 * 1024
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
MAX_OBJECT_BYTES = 256 * 1024 * 1024
MAX_SIGNATURE_MEMBERS = 16
MAX_RECEIPT_BYTES = 16 * 1024 * 1024
# tarfile pads archives to 20 blocks; allow that much (and a bit) of zeros after the end marker.
MAX_TRAILING_ZERO_BYTES = 64 * 1024

BLOCK = 512
_COPY_CHUNK = 1024 * 1024

_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_KIND = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_DOC_ID = re.compile(r"^doc-[0-9]{1,9}$")
_SIG_NAME = re.compile(r"^signatures/[a-z0-9][a-z0-9_-]{0,62}\.json$")
_OBJECT_NAME = re.compile(r"^objects/([0-9a-f]{32})\.age$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
# Identifiers that also become file names on the portal side are checked there; here only sanity.
_MAX_TEXT = 4096


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


# --------------------------------------------------------------------------------------------------
# canonical JSON


def canonical_json(obj: Any) -> bytes:
    """The one byte encoding that is signed and hashed: sorted keys, no spaces, UTF-8, NFC strings.

    Only dicts (string keys), lists, strings, ints, bools and None are allowed: floats have no
    canonical text form, so they are refused rather than silently rounded.  Non-NFC strings are
    refused too (write_package normalises before signing) so two spellings of one name can never
    produce two valid signatures.
    """
    _check_canonical_value(obj, "$")
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _check_canonical_value(value: Any, where: str) -> None:
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, str):
        if not unicodedata.is_normalized("NFC", value):
            raise PackageError(f"canonical JSON: string at {where} is not in Unicode NFC")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_canonical_value(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise PackageError(f"canonical JSON: key {key!r} at {where} is not a string")
            _check_canonical_value(key, f"{where} key")
            _check_canonical_value(item, f"{where}.{key}")
        return
    raise PackageError(f"canonical JSON: {type(value).__name__} at {where} is not allowed (no floats, no bytes)")


def _nfc(value: Any) -> Any:
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, list | tuple):
        return [_nfc(v) for v in value]
    if isinstance(value, dict):
        return {_nfc(k): _nfc(v) for k, v in value.items()}
    return value


def _strict_json(data: bytes, member: str, *, require_canonical: bool) -> Any:
    """Parse JSON refusing duplicate keys, floats, NaN; optionally require the canonical encoding."""

    def no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise PackageCheckError(member, "json", f"duplicate key {key!r}")
            out[key] = value
        return out

    def no_float(text: str) -> Any:
        raise PackageCheckError(member, "json", f"float {text} not allowed")

    def no_constant(text: str) -> Any:
        raise PackageCheckError(member, "json", f"{text} not allowed")

    try:
        text = data.decode("utf-8")
        value = json.loads(text, object_pairs_hook=no_dupes, parse_float=no_float, parse_constant=no_constant)
    except PackageCheckError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise PackageCheckError(member, "json", f"not valid UTF-8 JSON ({e})") from None
    if require_canonical:
        try:
            again = canonical_json(value)
        except PackageError as e:
            raise PackageCheckError(member, "json", str(e)) from None
        if again != data:
            raise PackageCheckError(member, "json", "not in canonical JSON form")
    return value


# --------------------------------------------------------------------------------------------------
# data types


@dataclass(frozen=True)
class ObjectSource:
    """One vault object to put in a package: its recorded hashes and the ciphertext file on disk."""

    id: str
    kind: str
    sha256: str  # plaintext
    size: int  # plaintext
    ct_sha256: str  # the .age file
    path: Path  # ciphertext file


@dataclass(frozen=True)
class PackageInfo:
    """What write_package produced; ``manifest`` is the exact manifest inside (objects filled, NFC)."""

    path: Path
    sha256: str
    size: int
    package_id: str
    batch_uid: str
    manifest: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass
class VerifiedPackage:
    """A package that passed every check of :func:`verify_package`.

    ``manifest_bytes`` are the exact signed plaintext bytes (keep them to re-check the signature
    later); ``signatures`` maps each ``signatures/*.json`` member name to its parsed content.
    """

    envelope: dict[str, Any]
    manifest: dict[str, Any]
    station_public_key: bytes
    sha256: str
    size: int
    path: Path | None = None
    manifest_bytes: bytes = field(default=b"", repr=False)
    signatures: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    _object_spans: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)

    def object_member(self, object_id: str) -> bytes:
        """The ciphertext of one object, re-read from the package and re-checked against the manifest."""
        if self.path is None or object_id not in self._object_spans:
            raise PackageError(f"object {object_id!r} is not in verified package {self.path}")
        offset, size = self._object_spans[object_id]
        with open(self.path, "rb") as f:
            f.seek(offset)
            data = f.read(size)
        entry = next(o for o in self.manifest["objects"] if o["id"] == object_id)
        if len(data) != size or hashlib.sha256(data).hexdigest() != entry["ct_sha256"]:
            raise PackageError(f"{self.path}: object {object_id} changed on disk since verification")
        return data


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
    if isinstance(value, str) and len(value) > _MAX_TEXT:
        raise _fail("manifest_format", f"{where}.{key} is longer than {_MAX_TEXT} characters")
    if isinstance(value, int) and value < 0:
        raise _fail("manifest_format", f"{where}.{key} is negative")
    return value


def _check_object_ref(value: Any, where: str, known: set[str], nullable: bool) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str) or not _HEX32.match(value):
        raise _fail("manifest_format", f"{where} is not an object id (32 hex digits)")
    if value not in known:
        raise _fail("manifest_references", f"{where} refers to object {value} which is not in objects")
    return value


def _validate_pages(pages: Any, where: str, known: set[str]) -> None:
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
        _check_object_ref(_req(page, "raw", str, here), f"{here}.raw", known, nullable=False)
        for key in ("image", "ocr_text"):
            if key not in page:
                raise _fail("manifest_format", f"{here}.{key} is missing")
            _check_object_ref(page[key], f"{here}.{key}", known, nullable=True)


def validate_manifest(manifest: Any) -> None:
    """Check a manifest's structure and internal references; PackageCheckError names the field."""
    if not isinstance(manifest, dict):
        raise _fail("manifest_format", "manifest is not a JSON object")
    if manifest.get("format") != MANIFEST_FORMAT:
        raise _fail("manifest_format", f"format is {manifest.get('format')!r}, expected {MANIFEST_FORMAT!r}")
    package_id = _req(manifest, "package_id", str, "manifest")
    if not _HEX32.match(package_id):
        raise _fail("manifest_format", "package_id must be 32 lowercase hex digits")
    if not _RFC3339.match(_req(manifest, "created_at", str, "manifest")):
        raise _fail("manifest_format", "created_at is not an RFC 3339 timestamp")
    _req(manifest, "software_version", str, "manifest")
    _req(manifest, "audit_head", str, "manifest")
    station = _req(manifest, "station", dict, "manifest")
    for key in ("id", "unit", "public_key", "recipient"):
        _req(station, key, str, "manifest.station")
    if not station["id"]:
        raise _fail("manifest_format", "station.id is empty")
    _decode_public_key(station["public_key"], "manifest.station.public_key", MANIFEST_NAME)
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
        _new_id(entry, here, _HEX32, known, "is not 32 lowercase hex digits", "object {} is listed twice")
        if not _KIND.match(_req(entry, "kind", str, here)):
            raise _fail("manifest_format", f"{here}.kind is not a valid kind")
        for key in ("sha256", "ct_sha256"):
            if not _HEX64.match(_req(entry, key, str, here)):
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
        _new_id(doc, here, _DOC_ID, doc_ids, "{!r} is not of the form doc-<n>",
                "document id {} is listed twice")
        _req(doc, "seq", int, here)
        for key in ("employee_code", "employee_name", "rank", "acr_period"):
            _req(doc, key, str, here)
        _req(doc, "page_count", int, here)
        if "pdf" not in doc:
            raise _fail("manifest_format", f"{here}.pdf is missing")
        _check_object_ref(doc["pdf"], f"{here}.pdf", known, nullable=True)
        _validate_pages(_req(doc, "pages", list, here), f"{here}.pages", known)
    _validate_pages(_req(manifest, "unfiled_pages", list, "manifest"), "manifest.unfiled_pages", known)


_OBJECT_KEYS = {"id", "kind", "sha256", "size", "ct_sha256", "ct_size"}


def _decode_public_key(value: str, where: str, member: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise PackageCheckError(member, "manifest_format", f"{where} is not base64") from None
    if len(raw) != 32:
        raise PackageCheckError(member, "manifest_format", f"{where} is not a raw 32-byte Ed25519 key")
    return raw


def document_digest(manifest: Mapping[str, Any], doc: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of one document entry plus the object entries it references.

    The objects come in first-reference order (pdf, then per page raw, image, ocr_text), each once.
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


# --------------------------------------------------------------------------------------------------
# writing


def utc_now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _HashingWriter:
    """File-like sink for tarfile: counts and hashes everything written (the package hash, one pass)."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._f.write(data)
        self.hash.update(data)
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size


class _HashingReader:
    """Wraps an object file while tarfile copies it, so its ct_sha256 is checked in the same pass."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self.hash.update(data)
        return data


def _tarinfo(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o600
    info.type = tarfile.REGTYPE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_package(
    out_path: Path,
    manifest: dict[str, Any],
    objects: Sequence[ObjectSource],
    *,
    signing_key: Ed25519PrivateKey,
    recipients: Sequence[str],
) -> PackageInfo:
    """Write a sealed package atomically; return its hash, size and the exact manifest inside.

    ``manifest`` gets its ``objects`` list from ``objects`` (in that order), ``package_id`` and
    ``created_at`` if absent, ``station.public_key`` from ``signing_key`` if absent; every string is
    NFC-normalised.  The manifest is encrypted to ``recipients`` (portal + batch), signed, and each
    object file is copied while its SHA-256 is checked against ``ct_sha256`` (PackageError naming the
    object and file on mismatch: nothing is left behind).  The file appears at ``out_path`` only
    complete and fsynced (temp file in the same directory, rename, directory fsync).
    """
    out_path = Path(out_path)
    if not recipients:
        raise PackageError("write_package: no recipients given for the manifest")
    try:
        parsed_recipients = [pyrage.x25519.Recipient.from_str(r) for r in recipients]
    except pyrage.RecipientError as e:
        raise PackageError(f"write_package: invalid age recipient ({e})") from None

    public_raw = signing_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    m: dict[str, Any] = _nfc(copy.deepcopy(manifest))
    m.setdefault("format", MANIFEST_FORMAT)
    m.setdefault("package_id", secrets.token_hex(16))
    m.setdefault("created_at", utc_now_rfc3339())
    station = m.get("station")
    if isinstance(station, dict):
        station.setdefault("public_key", base64.b64encode(public_raw).decode())
        if station["public_key"] != base64.b64encode(public_raw).decode():
            raise PackageError("write_package: manifest station.public_key does not match the signing key")

    entries: list[dict[str, Any]] = []
    sizes: list[int] = []
    for src in objects:
        if not _HEX32.match(src.id):
            raise PackageError(f"write_package: object id {src.id!r} is not 32 lowercase hex digits")
        try:
            ct_size = os.stat(src.path).st_size
        except OSError as e:
            raise PackageError(f"write_package: object {src.id}: cannot read {src.path} ({e.strerror})") from None
        sizes.append(ct_size)
        entries.append({"id": src.id, "kind": src.kind, "sha256": src.sha256, "size": src.size,
                        "ct_sha256": src.ct_sha256, "ct_size": ct_size})
    m["objects"] = entries
    try:
        validate_manifest(m)
        manifest_bytes = canonical_json(m)
    except PackageCheckError as e:
        raise PackageError(f"write_package: invalid manifest: {e.detail}") from None

    manifest_ct = pyrage.encrypt(manifest_bytes, parsed_recipients)
    envelope = {
        "format": FORMAT,
        "package_id": m["package_id"],
        "station_id": m["station"]["id"],
        "batch_uid": m["batch"]["uid"],
        "created_at": m["created_at"],
        "manifest_ct_sha256": hashlib.sha256(manifest_ct).hexdigest(),
    }
    signature = {
        "signer": "station",
        "station_id": m["station"]["id"],
        "algorithm": "ed25519",
        "public_key": base64.b64encode(public_raw).decode(),
        "signature": base64.b64encode(signing_key.sign(manifest_bytes)).decode(),
    }
    mtime = int(dt.datetime.now(dt.UTC).timestamp())

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.parent / f"{atomic.TEMP_PREFIX}{secrets.token_hex(8)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb", buffering=_COPY_CHUNK) as raw_out:
            sink = _HashingWriter(raw_out)
            with tarfile.TarFile(fileobj=sink, mode="w", format=tarfile.USTAR_FORMAT,  # type: ignore[arg-type]
                                 copybufsize=_COPY_CHUNK) as tar:
                for name, blob in ((ENVELOPE_NAME, canonical_json(envelope)), (MANIFEST_NAME, manifest_ct),
                                   (STATION_SIGNATURE_NAME, canonical_json(signature))):
                    tar.addfile(_tarinfo(name, len(blob), mtime), io.BytesIO(blob))
                for src, ct_size in zip(objects, sizes, strict=True):
                    _copy_object(tar, src, ct_size, mtime)
            raw_out.flush()
            os.fsync(raw_out.fileno())
        os.replace(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    atomic.fsync_dir(out_path.parent)
    return PackageInfo(path=out_path, sha256=sink.hash.hexdigest(), size=sink.size, package_id=m["package_id"],
                       batch_uid=m["batch"]["uid"], manifest=m)


def _copy_object(tar: tarfile.TarFile, src: ObjectSource, ct_size: int, mtime: int) -> None:
    try:
        with open(src.path, "rb") as f:
            reader = _HashingReader(f)
            tar.addfile(_tarinfo(f"{OBJECT_PREFIX}{src.id}{OBJECT_SUFFIX}", ct_size, mtime), reader)
    except OSError as e:
        raise PackageError(f"write_package: object {src.id}: reading {src.path} failed ({e})") from None
    actual = reader.hash.hexdigest()
    if actual != src.ct_sha256:
        raise PackageError(f"write_package: object {src.id}: {src.path} has ciphertext sha256 {actual}, "
                           f"the vault recorded {src.ct_sha256} (object changed or corrupt)")


# --------------------------------------------------------------------------------------------------
# strict ustar reading


@dataclass(frozen=True)
class _Member:
    name: str
    size: int
    offset: int  # of the data in the file


class _TarReader:
    """Sequential strict reader of POSIX ustar (+ pax ``x`` headers for path/size only).

    Hashes every byte it reads, so the package SHA-256 comes out of the same pass.
    """

    _PAX_IGNORED = frozenset({"mtime", "atime", "ctime", "uid", "gid", "uname", "gname", "comment"})

    def __init__(self, f: BinaryIO, label: str) -> None:
        self._f = f
        self._label = label
        self.hash = hashlib.sha256()
        self.pos = 0
        self.ended = False

    def _read(self, n: int, what: str) -> bytes:
        data = self._f.read(n)
        if len(data) != n:
            raise PackageCheckError(what, "truncated", f"file ends after {self.pos + len(data)} bytes")
        self.hash.update(data)
        self.pos += n
        return data

    def next_member(self) -> _Member | None:
        """The next regular-file member, or None at the end-of-archive marker."""
        pax: dict[str, str] = {}
        while True:
            header = self._read(BLOCK, "tar header")
            if header == bytes(BLOCK):
                second = self._read(BLOCK, "tar end marker")
                if second != bytes(BLOCK):
                    where = f"offset {self.pos - 2 * BLOCK}"
                    raise PackageCheckError("package", "tar_structure", f"lone zero block at {where}")
                self.ended = True
                return None
            name, size, typeflag = self._parse_header(header)
            if typeflag == b"x":
                if pax:
                    raise PackageCheckError(name, "tar_structure", "two pax headers in a row")
                if size > 64 * 1024:
                    raise PackageCheckError(name, "member_size", "pax header larger than 64 KiB")
                pax = self._parse_pax(self._read_padded(size, name), name)
                if not pax:
                    pax = {"": ""}  # remember that a pax header was seen
                continue
            if typeflag not in (b"0", b"\0"):
                kinds = {b"1": "hard link", b"2": "symbolic link", b"3": "character device", b"4": "block device",
                         b"5": "directory", b"6": "FIFO", b"7": "contiguous file", b"g": "pax global header",
                         b"L": "GNU long name", b"K": "GNU long link name"}
                kind = kinds.get(typeflag, f"type {typeflag!r}")
                raise PackageCheckError(name, "member_type", f"{kind} members are not allowed")
            if "path" in pax:
                name = pax["path"]
            if "size" in pax:
                if not pax["size"].isdigit() or len(pax["size"]) > 18:
                    raise PackageCheckError(name, "tar_structure", "pax size is not a decimal number")
                size = int(pax["size"])
            _check_member_name(name)
            member = _Member(name, size, self.pos)
            return member

    def read_data(self, member: _Member, limit: int) -> bytes:
        if member.size > limit:
            raise PackageCheckError(member.name, "member_size", f"{member.size} bytes exceeds the limit of {limit}")
        return self._read_padded(member.size, member.name)

    def _read_padded(self, size: int, what: str) -> bytes:
        data = self._read(size, what)
        pad = (-size) % BLOCK
        if pad and self._read(pad, what) != bytes(pad):
            raise PackageCheckError(what, "tar_structure", "non-zero padding after the member data")
        return data

    def finish(self) -> None:
        """After the end marker only zero padding may follow, and not much of it."""
        trailing = 0
        while True:
            chunk = self._f.read(BLOCK)
            if not chunk:
                break
            self.hash.update(chunk)
            self.pos += len(chunk)
            trailing += len(chunk)
            if len(chunk) != BLOCK:
                raise PackageCheckError("package", "truncated", "file length is not a multiple of 512 bytes")
            if chunk != bytes(BLOCK):
                raise PackageCheckError("package", "tar_structure", "data after the end-of-archive marker")
            if trailing > MAX_TRAILING_ZERO_BYTES:
                raise PackageCheckError("package", "tar_structure", "too much padding after the end-of-archive marker")

    def _parse_header(self, header: bytes) -> tuple[str, int, bytes]:
        offset = self.pos - BLOCK
        where = f"tar header at offset {offset}"
        stored = header[148:156]
        computed = sum(header[:148]) + 8 * 32 + sum(header[156:])
        try:
            stored_value = int(stored.replace(b"\0", b" ").strip() or b"-1", 8)
        except ValueError:
            raise PackageCheckError(where, "tar_structure", "checksum field is not octal") from None
        if stored_value != computed:
            raise PackageCheckError(where, "tar_structure", "header checksum mismatch")
        if header[257:265] != b"ustar\x0000":
            raise PackageCheckError(where, "tar_structure", "not a POSIX ustar header (GNU/v7 tar is not accepted)")
        typeflag = header[156:157]
        try:
            name = _cstr(header[0:100])
            prefix = _cstr(header[345:500])
            linkname = _cstr(header[157:257])
        except UnicodeDecodeError:
            raise PackageCheckError(where, "member_name", "member name is not UTF-8") from None
        if prefix:
            name = f"{prefix}/{name}"
        size_field = header[124:136]
        if size_field[:1] in (b"\x80", b"\xff"):
            raise PackageCheckError(name or where, "member_size", "base-256 sizes are not accepted")
        try:
            size = int(size_field.replace(b"\0", b" ").strip() or b"0", 8)
        except ValueError:
            raise PackageCheckError(name or where, "tar_structure", "size field is not octal") from None
        if linkname and typeflag in (b"0", b"\0"):
            raise PackageCheckError(name, "member_type", "regular file with a link name")
        return name, size, typeflag

    def _parse_pax(self, data: bytes, where: str) -> dict[str, str]:
        out: dict[str, str] = {}
        pos = 0
        while pos < len(data):
            space = data.find(b" ", pos)
            if space < 0 or not data[pos:space].isdigit():
                raise PackageCheckError(where, "tar_structure", "malformed pax record")
            length = int(data[pos:space])
            record = data[space + 1 : pos + length]
            if length <= space - pos or pos + length > len(data) or not record.endswith(b"\n") or b"=" not in record:
                raise PackageCheckError(where, "tar_structure", "malformed pax record")
            key_b, _, value_b = record[:-1].partition(b"=")
            try:
                key, value = key_b.decode("utf-8"), value_b.decode("utf-8")
            except UnicodeDecodeError:
                raise PackageCheckError(where, "tar_structure", "pax record is not UTF-8") from None
            if key in ("path", "size"):
                out[key] = value
            elif key not in self._PAX_IGNORED:
                raise PackageCheckError(where, "tar_structure", f"pax keyword {key!r} is not accepted")
            pos += length
        return out


def _cstr(field_bytes: bytes) -> str:
    return field_bytes.split(b"\0", 1)[0].decode("utf-8")


def _check_member_name(name: str) -> None:
    if not name:
        raise PackageCheckError("(empty name)", "member_name", "empty member name")
    bad = (name.startswith("/") or "\\" in name or "\0" in name or any(ord(c) < 32 for c in name)
           or any(part in ("", ".", "..") for part in name.split("/")))
    if bad:
        raise PackageCheckError(name, "member_name", "absolute path, '..', '.', empty or control characters in name")


def _open_package(path: Path) -> BinaryIO:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as e:
        raise PackageCheckError(str(path), "unreadable", e.strerror or str(e)) from None
    return os.fdopen(fd, "rb", buffering=_COPY_CHUNK)


def _read_envelope_member(reader: _TarReader) -> dict[str, Any]:
    member = reader.next_member()
    if member is None or member.name != ENVELOPE_NAME:
        got = "the end of the archive" if member is None else repr(member.name)
        raise PackageCheckError(got, "member_order", f"first member must be {ENVELOPE_NAME}")
    envelope = _strict_json(reader.read_data(member, MAX_ENVELOPE_BYTES), ENVELOPE_NAME, require_canonical=False)
    _validate_envelope(envelope)
    return envelope


def _validate_envelope(env: Any) -> None:
    def bad(detail: str) -> PackageCheckError:
        return PackageCheckError(ENVELOPE_NAME, "envelope", detail)

    if not isinstance(env, dict):
        raise bad("not a JSON object")
    if env.get("format") != FORMAT:
        raise bad(f"format is {env.get('format')!r}, expected {FORMAT!r}")
    expected = {"format", "package_id", "station_id", "batch_uid", "created_at", "manifest_ct_sha256"}
    if set(env) != expected:
        raise bad(f"keys must be exactly {sorted(expected)}")
    for key in expected:
        if not isinstance(env[key], str) or not env[key] or len(env[key]) > _MAX_TEXT:
            raise bad(f"{key} must be a non-empty string")
    if not _HEX32.match(env["package_id"]):
        raise bad("package_id is not 32 lowercase hex digits")
    if not _HEX64.match(env["manifest_ct_sha256"]):
        raise bad("manifest_ct_sha256 is not 64 lowercase hex digits")
    if not _RFC3339.match(env["created_at"]):
        raise bad("created_at is not an RFC 3339 timestamp")


def read_envelope(path: Path) -> dict[str, Any]:
    """The plaintext envelope (first member); needs no key.  PackageError on any malformation."""
    with _open_package(Path(path)) as f:
        return _read_envelope_member(_TarReader(f, str(path)))


def verify_package(
    path: Path,
    identities: Sequence[Any],
    *,
    trusted_station_keys: Mapping[str, bytes] | None = None,
    on_object: Callable[[dict[str, Any], bytes], None] | None = None,
) -> VerifiedPackage:
    """Check everything about a package in one pass; return its verified content.

    Order of checks (the first failure raises PackageCheckError naming member and check): tar
    structure and member order/names/types/sizes, envelope, manifest ciphertext hash against the
    envelope, manifest decryption with ``identities`` (pyrage identities), canonical form and schema,
    envelope/manifest agreement, the station's Ed25519 signature (and, if ``trusted_station_keys``
    is given, that the station is known and signed with its registered raw key), then per object:
    ciphertext size and SHA-256, decryption, plaintext size and SHA-256.  ``on_object(entry,
    plaintext)`` is called for each verified object (the receiver re-encrypts it for its store
    without reading the package twice); exceptions from it propagate.
    """
    path = Path(path)
    with _open_package(path) as f:
        reader = _TarReader(f, str(path))
        envelope = _read_envelope_member(reader)

        member = reader.next_member()
        if member is None or member.name != MANIFEST_NAME:
            raise PackageCheckError(member.name if member else "end of archive", "member_order",
                                    f"second member must be {MANIFEST_NAME}")
        manifest_ct = reader.read_data(member, MAX_MANIFEST_BYTES)
        if hashlib.sha256(manifest_ct).hexdigest() != envelope["manifest_ct_sha256"]:
            raise PackageCheckError(MANIFEST_NAME, "manifest_sha256", "ciphertext does not match the envelope's hash")
        try:
            manifest_bytes = pyrage.decrypt(manifest_ct, list(identities))
        except pyrage.DecryptError as e:
            raise PackageCheckError(MANIFEST_NAME, "manifest_decrypt",
                                    f"cannot be decrypted with the portal identity ({e})") from None
        manifest = _strict_json(manifest_bytes, MANIFEST_NAME, require_canonical=True)
        validate_manifest(manifest)
        _check_envelope_matches(envelope, manifest)

        signatures, member = _read_signatures(reader)
        station_key = _verify_station_signature(signatures, manifest, manifest_bytes, trusted_station_keys)

        spans: dict[str, tuple[int, int]] = {}
        for entry in manifest["objects"]:
            expected_name = f"{OBJECT_PREFIX}{entry['id']}{OBJECT_SUFFIX}"
            if member is None or member.name != expected_name:
                got = member.name if member else "end of archive"
                raise PackageCheckError(got, "member_order", f"expected {expected_name} (manifest objects order)")
            if member.size != entry["ct_size"]:
                raise PackageCheckError(member.name, "object_size",
                                        f"{member.size} bytes, the manifest says {entry['ct_size']}")
            spans[entry["id"]] = (member.offset, member.size)
            ct = reader.read_data(member, MAX_OBJECT_BYTES)
            _verify_object(member.name, entry, ct, identities, on_object)
            member = reader.next_member()
        if member is not None:
            check = "member_order" if _OBJECT_NAME.match(member.name) else "member_name"
            raise PackageCheckError(member.name, check, "member not listed in the manifest (extra member)")
        reader.finish()
    return VerifiedPackage(envelope=envelope, manifest=manifest, station_public_key=station_key,
                           sha256=reader.hash.hexdigest(), size=reader.pos, path=path,
                           manifest_bytes=manifest_bytes, signatures=signatures, _object_spans=spans)


def _check_envelope_matches(envelope: dict[str, Any], manifest: dict[str, Any]) -> None:
    pairs = (("package_id", manifest["package_id"]), ("station_id", manifest["station"]["id"]),
             ("batch_uid", manifest["batch"]["uid"]), ("created_at", manifest["created_at"]))
    for key, value in pairs:
        if envelope[key] != value:
            raise PackageCheckError(ENVELOPE_NAME, "envelope_mismatch",
                                    f"{key} {envelope[key]!r} differs from the signed manifest's {value!r}")


def _read_signatures(reader: _TarReader) -> tuple[dict[str, dict[str, Any]], _Member | None]:
    """All ``signatures/*.json`` members (after the manifest); returns them and the next member."""
    signatures: dict[str, dict[str, Any]] = {}
    while True:
        member = reader.next_member()
        if member is None or not member.name.startswith("signatures/"):
            break
        if not _SIG_NAME.match(member.name):
            raise PackageCheckError(member.name, "member_name", "signature member names are signatures/<name>.json")
        if member.name in signatures:
            raise PackageCheckError(member.name, "member_name", "duplicate member")
        if len(signatures) >= MAX_SIGNATURE_MEMBERS:
            raise PackageCheckError(member.name, "member_order", f"more than {MAX_SIGNATURE_MEMBERS} signatures")
        value = _strict_json(reader.read_data(member, MAX_SIGNATURE_BYTES), member.name, require_canonical=False)
        if not isinstance(value, dict):
            raise PackageCheckError(member.name, "signature", "not a JSON object")
        signatures[member.name] = value
    if member is not None and member.name in (ENVELOPE_NAME, MANIFEST_NAME):
        raise PackageCheckError(member.name, "member_name", "duplicate member")
    if STATION_SIGNATURE_NAME not in signatures:
        got = member.name if member else "end of archive"
        raise PackageCheckError(got, "member_order", f"{STATION_SIGNATURE_NAME} must follow the manifest")
    return signatures, member


def _verify_station_signature(
    signatures: dict[str, dict[str, Any]],
    manifest: dict[str, Any],
    manifest_bytes: bytes,
    trusted: Mapping[str, bytes] | None,
) -> bytes:
    sig = signatures[STATION_SIGNATURE_NAME]
    name = STATION_SIGNATURE_NAME
    station = manifest["station"]
    if sig.get("signer") != "station" or sig.get("algorithm") != "ed25519":
        raise PackageCheckError(name, "signature", "signer must be 'station' and algorithm 'ed25519'")
    if sig.get("station_id") != station["id"]:
        raise PackageCheckError(name, "signature", f"station_id {sig.get('station_id')!r} is not the manifest's")
    if sig.get("public_key") != station["public_key"]:
        raise PackageCheckError(name, "signature", "public_key differs from the manifest's station.public_key")
    raw_key = _decode_public_key(station["public_key"], "public_key", name)
    try:
        signature = base64.b64decode(str(sig.get("signature", "")), validate=True)
    except (binascii.Error, ValueError):
        raise PackageCheckError(name, "signature", "signature is not base64") from None
    try:
        Ed25519PublicKey.from_public_bytes(raw_key).verify(signature, manifest_bytes)
    except (InvalidSignature, ValueError):
        raise PackageCheckError(name, "signature", "Ed25519 signature over the manifest does not verify") from None
    if trusted is not None:
        known = trusted.get(station["id"])
        if known is None:
            raise PackageCheckError(name, "station_untrusted", f"station {station['id']!r} is not a trusted station")
        if not hmac.compare_digest(bytes(known), raw_key):
            raise PackageCheckError(name, "station_untrusted",
                                    f"signed with a key that is not the registered key of station {station['id']!r}")
    return raw_key


def _verify_object(
    name: str,
    entry: dict[str, Any],
    ct: bytes,
    identities: Sequence[Any],
    on_object: Callable[[dict[str, Any], bytes], None] | None,
) -> None:
    if hashlib.sha256(ct).hexdigest() != entry["ct_sha256"]:
        raise PackageCheckError(name, "object_ct_sha256", "ciphertext SHA-256 differs from the manifest")
    try:
        plain = pyrage.decrypt(ct, list(identities))
    except pyrage.DecryptError as e:
        raise PackageCheckError(name, "object_decrypt", f"cannot be decrypted with the portal identity ({e})") from None
    if len(plain) != entry["size"]:
        raise PackageCheckError(name, "object_size", f"plaintext is {len(plain)} bytes, manifest says {entry['size']}")
    if hashlib.sha256(plain).hexdigest() != entry["sha256"]:
        raise PackageCheckError(name, "object_sha256", "plaintext SHA-256 differs from the manifest")
    if on_object is not None:
        on_object(entry, plain)


def iter_members(path: Path) -> Iterator[tuple[str, int]]:
    """(name, size) of each member, strictly parsed; for diagnostics and tests (reads no keys)."""
    with _open_package(Path(path)) as f:
        reader = _TarReader(f, str(path))
        while (member := reader.next_member()) is not None:
            reader._read_padded(member.size, member.name)
            yield member.name, member.size
        reader.finish()


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
) -> bytes:
    """The portal's signed receipt (JSON bytes) for a verified package."""
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
    }
    signature = base64.b64encode(portal_key.sign(canonical_json(receipt))).decode()
    return canonical_json({"receipt": receipt, "signature": signature})


_RECEIPT_KEYS = {"format", "receipt_id", "package_id", "package_sha256", "package_size", "batch_uid",
                 "station_id", "received_at", "documents", "portal_key_id"}


def verify_receipt(
    data: bytes,
    portal_public_key: Ed25519PublicKey,
    *,
    package_sha256: str,
    manifest: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Check a receipt's signature and that it is for this package; return the inner ``receipt``.

    With ``manifest``, also checks package id, batch, station and every document line (digest
    included) against it.  Any problem raises ReceiptInvalid saying what did not match.
    """
    if len(data) > MAX_RECEIPT_BYTES:
        raise ReceiptInvalid(f"receipt is larger than {MAX_RECEIPT_BYTES} bytes")
    try:
        outer = _strict_json(data, "receipt", require_canonical=False)
    except PackageCheckError as e:
        raise ReceiptInvalid(f"receipt is not valid JSON: {e.detail}") from None
    if not isinstance(outer, dict) or set(outer) != {"receipt", "signature"}:
        raise ReceiptInvalid("receipt must be a JSON object with exactly 'receipt' and 'signature'")
    receipt, sig_text = outer["receipt"], outer["signature"]
    if not isinstance(receipt, dict) or set(receipt) != _RECEIPT_KEYS:
        raise ReceiptInvalid(f"receipt fields must be exactly {sorted(_RECEIPT_KEYS)}")
    if receipt["format"] != RECEIPT_FORMAT:
        raise ReceiptInvalid(f"receipt format is {receipt['format']!r}, expected {RECEIPT_FORMAT!r}")
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
    return receipt


# --------------------------------------------------------------------------------------------------
# PEM helpers


def public_key_pem(key: Ed25519PublicKey | Ed25519PrivateKey) -> bytes:
    """PEM SubjectPublicKeyInfo of an Ed25519 key (what receipt-key.pub holds)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key_pem(data: bytes, source: str) -> Ed25519PublicKey:
    """Parse a PEM Ed25519 public key; KeyFormatError names ``source`` and the reason."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as e:
        raise KeyFormatError(f"{source}: not a PEM public key ({e})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFormatError(f"{source}: the PEM key is {type(key).__name__}, expected an Ed25519 public key")
    return key


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


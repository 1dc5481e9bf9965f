"""Reading a package strictly: a one-pass ustar reader that verifies every member as it goes."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pyrage
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from batchformat.canonical_json import strict_json
from batchformat.constants import (
    AGE_MAGIC,
    BLOCK,
    COPY_CHUNK,
    ENVELOPE_NAME,
    FORMAT,
    FORMAT_V1,
    HEX32,
    HEX64,
    MANIFEST_NAME,
    MAX_AGE_HEADER_BYTES,
    MAX_AGE_RECIPIENTS,
    MAX_AGE_STANZAS,
    MAX_ENVELOPE_BYTES,
    MAX_MANIFEST_BYTES,
    MAX_OBJECT_BYTES,
    MAX_OBJECTS,
    MAX_SIGNATURE_BYTES,
    MAX_SIGNATURE_MEMBERS,
    MAX_TEXT,
    MAX_TRAILING_ZERO_BYTES,
    OBJECT_MEMBER,
    OBJECT_PREFIX,
    OBJECT_SUFFIX,
    RFC3339,
    SIGNATURE_MEMBER,
    STATION_SIGNATURE_NAME,
)
from batchformat.errors import PackageCheckError, PackageError
from batchformat.manifest import decode_public_key, validate_manifest
from batchformat.package_log import PackageLog, parse_package_log


@dataclass
class VerifiedPackage:
    """A package that passed every check of :func:`verify_package`.

    ``manifest_bytes`` are the exact signed plaintext bytes (keep them to re-check the signature
    later); ``signatures`` maps each ``signatures/*.json`` member name to its parsed content;
    ``audit_log`` is the station's verified audit checkpoint and consistency proofs (manifest
    ``audit_log``), which a portal checks against the checkpoint it keeps for the station.
    """

    envelope: dict[str, Any]
    manifest: dict[str, Any]
    station_public_key: bytes
    sha256: str
    size: int
    path: Path | None = None
    manifest_bytes: bytes = field(default=b"", repr=False)
    signatures: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    audit_log: PackageLog | None = field(default=None, repr=False)
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
    return os.fdopen(fd, "rb", buffering=COPY_CHUNK)


def _read_envelope_member(reader: _TarReader) -> dict[str, Any]:
    member = reader.next_member()
    if member is None or member.name != ENVELOPE_NAME:
        got = "the end of the archive" if member is None else repr(member.name)
        raise PackageCheckError(got, "member_order", f"first member must be {ENVELOPE_NAME}")
    envelope = strict_json(reader.read_data(member, MAX_ENVELOPE_BYTES), ENVELOPE_NAME, require_canonical=False)
    _validate_envelope(envelope)
    return envelope


def _validate_envelope(env: Any) -> None:
    def bad(detail: str) -> PackageCheckError:
        return PackageCheckError(ENVELOPE_NAME, "envelope", detail)

    if not isinstance(env, dict):
        raise bad("not a JSON object")
    if env.get("format") == FORMAT_V1:
        raise bad(f"format is {FORMAT_V1!r}: sealed by older software, without the station's audit checkpoint "
                  f"(expected {FORMAT!r}); unseal the batch and seal it again")
    if env.get("format") != FORMAT:
        raise bad(f"format is {env.get('format')!r}, expected {FORMAT!r}")
    expected = {"format", "package_id", "station_id", "batch_uid", "created_at", "manifest_ct_sha256"}
    if set(env) != expected:
        raise bad(f"keys must be exactly {sorted(expected)}")
    for key in expected:
        if not isinstance(env[key], str) or not env[key] or len(env[key]) > MAX_TEXT:
            raise bad(f"{key} must be a non-empty string")
    if not HEX32.match(env["package_id"]):
        raise bad("package_id is not 32 lowercase hex digits")
    if not HEX64.match(env["manifest_ct_sha256"]):
        raise bad("manifest_ct_sha256 is not 64 lowercase hex digits")
    if not RFC3339.match(env["created_at"]):
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
    on_manifest: Callable[[dict[str, Any], bytes, dict[str, dict[str, Any]]], None] | None = None,
    on_object: Callable[[dict[str, Any], bytes], None] | None = None,
) -> VerifiedPackage:
    """Check everything about a package in one pass; return its verified content.

    Order of checks (the first failure raises PackageCheckError naming member and check): tar
    structure and member order/names/types/sizes, envelope, manifest ciphertext hash against the
    envelope, the signature members; with ``trusted_station_keys`` (the portal's enrolled keys) the
    envelope's station must be in it (``station_untrusted``), ``station.json`` must name its key
    (``station_key``) and its ``manifest_ct_signature`` over the manifest ciphertext must verify with
    it (``manifest_ct_signature``) -- all before any decryption; then the age header (at most
    MAX_AGE_RECIPIENTS recipient stanzas, ``age_recipients``), manifest decryption with ``identities``
    (pyrage identities), canonical form and schema, the object count (``object_count``),
    envelope/manifest agreement, the station's Ed25519 signature over the manifest (with the trusted key
    when given, else with the key the manifest names), the station's audit log (checkpoint signature and
    consistency proofs, check ``audit_log``), then per object: ciphertext size and SHA-256, age header,
    decryption, plaintext size and SHA-256.  ``on_object(entry, plaintext)`` is called for each verified
    object (the receiver re-encrypts it for its store without reading the package twice);
    ``on_manifest(manifest, manifest_bytes, signatures)`` is called once the manifest, its signature and
    the audit log are verified and before any object is decrypted (the receiver checks the station's unit
    and the unit head's signature there).  Exceptions from either callback propagate.
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
        # The signatures follow the manifest in the archive; read them before decrypting anything, so a
        # package that its (enrolled) station did not make costs no X25519 or scrypt work.
        signatures, member = _read_signatures(reader)
        trusted_key = _trusted_station_key(signatures, envelope, trusted_station_keys)
        if trusted_key is not None:
            _verify_ct_signature(signatures[STATION_SIGNATURE_NAME], manifest_ct, trusted_key, envelope["station_id"])
        check_age_header(manifest_ct, MANIFEST_NAME)
        try:
            manifest_bytes = pyrage.decrypt(manifest_ct, list(identities))
        except pyrage.DecryptError as e:
            raise PackageCheckError(MANIFEST_NAME, "manifest_decrypt",
                                    f"cannot be decrypted with the portal identity ({e})") from None
        manifest = strict_json(manifest_bytes, MANIFEST_NAME, require_canonical=True)
        _check_object_count(manifest)
        validate_manifest(manifest)
        _check_envelope_matches(envelope, manifest)

        station_key = _verify_station_signature(signatures, manifest, manifest_bytes, trusted_key)
        audit_log = parse_package_log(manifest)
        if on_manifest is not None:
            on_manifest(manifest, manifest_bytes, signatures)

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
            check = "member_order" if OBJECT_MEMBER.match(member.name) else "member_name"
            raise PackageCheckError(member.name, check, "member not listed in the manifest (extra member)")
        reader.finish()
    return VerifiedPackage(envelope=envelope, manifest=manifest, station_public_key=station_key,
                           sha256=reader.hash.hexdigest(), size=reader.pos, path=path,
                           manifest_bytes=manifest_bytes, signatures=signatures, audit_log=audit_log,
                           _object_spans=spans)


def check_age_header(ct: bytes, name: str) -> None:
    """Refuse an age file whose header has more than MAX_AGE_RECIPIENTS recipient stanzas.

    age tries every stanza against every identity (an X25519 or, worse, scrypt computation each): a
    100 KB header of 1,000 stanzas would cost the portal seconds per member.  Only the header lines are
    parsed (no key work), and the header must end within MAX_AGE_HEADER_BYTES.
    """
    if not ct.startswith(AGE_MAGIC):
        raise PackageCheckError(name, "age_header", "not a binary age file (age-encryption.org/v1)")
    stanzas = recipients = 0
    pos = len(AGE_MAGIC)
    limit = min(len(ct), MAX_AGE_HEADER_BYTES)
    while pos < limit:
        end = ct.find(b"\n", pos, limit)
        if end < 0:
            break
        line = ct[pos:end]
        if line.startswith(b"---"):
            return
        if line.startswith(b"-> "):
            stanzas += 1
            # rage adds a "grease" stanza of random type; it costs no key work and is not a recipient
            if not line[3:].split(b" ", 1)[0].endswith(b"-grease"):
                recipients += 1
            if recipients > MAX_AGE_RECIPIENTS or stanzas > MAX_AGE_STANZAS:
                raise PackageCheckError(name, "age_recipients",
                                        f"the age header has more than {MAX_AGE_RECIPIENTS} recipient stanzas "
                                        f"(or {MAX_AGE_STANZAS} stanzas in all)")
        pos = end + 1
    raise PackageCheckError(name, "age_header", f"the age header does not end within {MAX_AGE_HEADER_BYTES} bytes")


def _check_object_count(manifest: Any) -> None:
    objects = manifest.get("objects") if isinstance(manifest, dict) else None
    if isinstance(objects, list) and len(objects) > MAX_OBJECTS:
        raise PackageCheckError(MANIFEST_NAME, "object_count",
                                f"{len(objects)} objects; a package may hold at most {MAX_OBJECTS}")


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
        if not SIGNATURE_MEMBER.match(member.name):
            raise PackageCheckError(member.name, "member_name", "signature member names are signatures/<name>.json")
        if member.name in signatures:
            raise PackageCheckError(member.name, "member_name", "duplicate member")
        if len(signatures) >= MAX_SIGNATURE_MEMBERS:
            raise PackageCheckError(member.name, "member_order", f"more than {MAX_SIGNATURE_MEMBERS} signatures")
        value = strict_json(reader.read_data(member, MAX_SIGNATURE_BYTES), member.name, require_canonical=False)
        if not isinstance(value, dict):
            raise PackageCheckError(member.name, "signature", "not a JSON object")
        signatures[member.name] = value
    if member is not None and member.name in (ENVELOPE_NAME, MANIFEST_NAME):
        raise PackageCheckError(member.name, "member_name", "duplicate member")
    if STATION_SIGNATURE_NAME not in signatures:
        got = member.name if member else "end of archive"
        raise PackageCheckError(got, "member_order", f"{STATION_SIGNATURE_NAME} must follow the manifest")
    return signatures, member


def _trusted_station_key(signatures: dict[str, dict[str, Any]], envelope: dict[str, Any],
                         trusted: Mapping[str, bytes] | None) -> bytes | None:
    """The registered key of the envelope's station (None when no trust list is given).

    ``station.json`` must name that key: a package signed with any other key is refused here, before
    decryption, whatever key the manifest inside claims.
    """
    if trusted is None:
        return None
    name = STATION_SIGNATURE_NAME
    station_id = envelope["station_id"]
    known = trusted.get(station_id)
    if known is None:
        raise PackageCheckError(name, "station_untrusted", f"station {station_id!r} is not an enrolled station")
    sig = signatures[name]
    if sig.get("signer") != "station" or sig.get("algorithm") != "ed25519":
        raise PackageCheckError(name, "signature", "signer must be 'station' and algorithm 'ed25519'")
    if sig.get("station_id") != station_id:
        raise PackageCheckError(name, "signature", f"station_id {sig.get('station_id')!r} is not the envelope's")
    claimed = decode_public_key(str(sig.get("public_key", "")), "public_key", name)
    if not hmac.compare_digest(bytes(known), claimed):
        raise PackageCheckError(name, "station_key",
                                f"signed with a key that is not the enrolled key of station {station_id!r}")
    return bytes(known)


def _verify_ct_signature(sig: dict[str, Any], manifest_ct: bytes, key: bytes, station_id: str) -> None:
    name = STATION_SIGNATURE_NAME
    value = sig.get("manifest_ct_signature")
    if not isinstance(value, str):
        raise PackageCheckError(name, "manifest_ct_signature",
                                "manifest_ct_signature (Ed25519 over the manifest ciphertext) is missing")
    try:
        signature = base64.b64decode(value, validate=True)
        Ed25519PublicKey.from_public_bytes(key).verify(signature, manifest_ct)
    except (binascii.Error, ValueError, InvalidSignature):
        raise PackageCheckError(name, "manifest_ct_signature",
                                f"the signature over the manifest ciphertext does not verify with the enrolled "
                                f"key of station {station_id!r}") from None


def _verify_station_signature(
    signatures: dict[str, dict[str, Any]],
    manifest: dict[str, Any],
    manifest_bytes: bytes,
    trusted_key: bytes | None,
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
    # With a trust list the enrolled key verifies, never the key the package brings along.
    raw_key = trusted_key if trusted_key is not None else decode_public_key(station["public_key"], "public_key", name)
    try:
        signature = base64.b64decode(str(sig.get("signature", "")), validate=True)
    except (binascii.Error, ValueError):
        raise PackageCheckError(name, "signature", "signature is not base64") from None
    try:
        Ed25519PublicKey.from_public_bytes(raw_key).verify(signature, manifest_bytes)
    except (InvalidSignature, ValueError):
        raise PackageCheckError(name, "signature", "Ed25519 signature over the manifest does not verify") from None
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
    check_age_header(ct, name)
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

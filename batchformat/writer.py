"""Writing a sealed package: envelope, encrypted manifest, station signature and objects, in one hashed pass."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import io
import os
import re
import secrets
import tarfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pyrage
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from batchformat import atomic
from batchformat.canonical_json import canonical_json, nfc
from batchformat.constants import (
    COPY_CHUNK,
    ENVELOPE_NAME,
    FORMAT,
    HEX32,
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    OBJECT_PREFIX,
    OBJECT_SUFFIX,
    STATION_SIGNATURE_NAME,
)
from batchformat.errors import PackageCheckError, PackageError
from batchformat.manifest import validate_manifest
from batchformat.package_log import parse_package_log


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
    cosigners: Mapping[str, Callable[[bytes], dict[str, Any]]] | None = None,
) -> PackageInfo:
    """Write a sealed package atomically; return its hash, size and the exact manifest inside.

    ``manifest`` gets its ``objects`` list from ``objects`` (in that order), ``package_id`` and
    ``created_at`` if absent, ``station.public_key`` from ``signing_key`` if absent; every string is
    NFC-normalised; its ``audit_head``/``audit_log`` must verify (the checkpoint signed by ``signing_key``,
    see :mod:`batchformat.package_log`).  The manifest is encrypted to ``recipients`` (portal + batch), signed, and each
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
    m: dict[str, Any] = nfc(copy.deepcopy(manifest))
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
        if not HEX32.match(src.id):
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
        parse_package_log(m)
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
        # Over the ciphertext too (issue 15): the portal checks it with the station's enrolled key before it
        # decrypts anything, so a package its station did not make costs it no decryption work.
        "manifest_ct_signature": base64.b64encode(signing_key.sign(manifest_ct)).decode(),
    }
    # Other signers over the same manifest bytes (the unit head's CMS signature, issue 15): each becomes a
    # signatures/<name>.json member after the station's.  A signer that fails (a token pulled out) raises
    # here, before a byte of the package is written: nothing half-signed.
    members = [(STATION_SIGNATURE_NAME, canonical_json(signature))]
    for name, sign in (cosigners or {}).items():
        member = f"signatures/{name}.json"
        if member == STATION_SIGNATURE_NAME or not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,40}", name):
            raise PackageError(f"write_package: bad cosigner name {name!r}")
        members.append((member, canonical_json(sign(manifest_bytes))))
    mtime = int(dt.datetime.now(dt.UTC).timestamp())

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.parent / f"{atomic.TEMP_PREFIX}{secrets.token_hex(8)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb", buffering=COPY_CHUNK) as raw_out:
            sink = _HashingWriter(raw_out)
            with tarfile.TarFile(fileobj=sink, mode="w", format=tarfile.USTAR_FORMAT,  # type: ignore[arg-type]
                                 copybufsize=COPY_CHUNK) as tar:
                for name, blob in ((ENVELOPE_NAME, canonical_json(envelope)), (MANIFEST_NAME, manifest_ct),
                                   *members):
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

"""Encrypted object store: each object an age file for the portal and its batch key (or the station), hash-checked."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyrage
from pyrage import x25519

from batchformat import atomic
from scanstation.errors import ConfigError, StateError, VaultIntegrityError
from scanstation.vault.identity import AGE_HEADER, StationKey, parse_recipient

OBJECTS_DIR = "objects"
SUFFIX = ".age"
_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_KIND_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """What the database records for a stored object.

    ``sha256`` and ``size`` describe the plaintext (what ``age -d`` yields); ``ct_sha256`` is the
    hash of the file on disk, checkable without any key (e.g. before upload).
    """

    id: str
    sha256: str
    size: int
    ct_sha256: str
    kind: str = ""


def _check_id(object_id: str) -> str:
    # Ids come from the database; a malformed one must never become a path (no "../" tricks).
    if not isinstance(object_id, str) or not _ID_RE.match(object_id):
        raise VaultIntegrityError(f"invalid vault object id {object_id!r} (expected 32 hex digits)")
    return object_id


class Vault:
    """Objects under ``root/objects/ab/<id>.age``, each encrypted to every recipient.

    Ids are random 128-bit values, not content hashes: two scans of the same page must not be
    linkable, and a file name must not reveal anything about its content.  ``identity`` may be None
    for a write-only vault (objects can be stored and their ciphertext checked, but not read).
    The station's own recipient is always added, so the station can read back what it wrote.
    """

    def __init__(
        self,
        root: Path,
        recipients: Sequence[x25519.Recipient | str],
        identity: StationKey | None,
        extra_identities: Callable[[], Sequence[x25519.Identity]] | None = None,
    ) -> None:
        self._root = Path(root)
        self._objects = self._root / OBJECTS_DIR
        self._identity = identity
        # Batch keys (scanstation.vault.batch_keys): objects of a batch are encrypted to the portal and the
        # batch's own key instead of the station key, so destroying the batch key after upload makes
        # every leftover copy unreadable here (crypto-shredding).
        self._extra_identities = extra_identities or (lambda: ())
        self._base: list[x25519.Recipient] = []
        parsed: dict[str, x25519.Recipient] = {}
        for i, recipient in enumerate(recipients):
            if isinstance(recipient, str):
                recipient = parse_recipient(recipient, source=f"vault recipient #{i + 1}")
            parsed.setdefault(str(recipient), recipient)
        if not parsed:
            raise ConfigError("the vault needs at least one recipient (the portal key)")
        station = str(identity.recipient) if identity is not None else None
        self._base = [r for key, r in parsed.items() if key != station]
        if identity is not None:
            parsed.setdefault(identity.recipient, identity.as_recipient())
        self._recipients = list(parsed.values())
        atomic.ensure_dir(self._objects)

    @property
    def root(self) -> Path:
        return self._root

    @property
    def recipients(self) -> list[str]:
        """The ``age1…`` recipients every new object is encrypted to."""
        return [str(r) for r in self._recipients]

    def path_of(self, object_id: str) -> Path:
        _check_id(object_id)
        return self._objects / object_id[:2] / f"{object_id}{SUFFIX}"

    def put(self, data: bytes, kind: str, *, batch_recipient: x25519.Recipient | None = None) -> ObjectRef:
        """Encrypt ``data`` to all recipients and store it durably; return what to record.

        With ``batch_recipient`` the object is encrypted to the configured recipients (the portal)
        and that batch key, not to the station key.

        When this returns, the object is complete on disk (fsynced, renamed, directory fsynced); a
        crash before the caller commits the ref leaves an unlisted object, which the station reports
        at its next start (see :meth:`unlisted`, :meth:`quarantine`).
        """
        if not _KIND_RE.match(kind):
            raise ValueError(f"object kind must be a short lowercase name, got {kind!r}")
        plain_hash = hashlib.sha256(data).hexdigest()
        recipients = self._recipients if batch_recipient is None else [*self._base, batch_recipient]
        if not recipients:
            raise ConfigError("the vault needs at least one recipient (the portal key)")
        ciphertext = pyrage.encrypt(bytes(data), recipients)
        ct_hash = hashlib.sha256(ciphertext).hexdigest()
        while True:
            object_id = secrets.token_hex(16)
            path = self.path_of(object_id)
            if not path.exists():  # 128 random bits: a collision is practically impossible
                break
        atomic.ensure_dir(path.parent)
        atomic.atomic_write(path, ciphertext, mode=0o600)
        return ObjectRef(id=object_id, sha256=plain_hash, size=len(data), ct_sha256=ct_hash, kind=kind)

    def read_ciphertext(self, object_id: str) -> bytes:
        """The raw age file of an object (for upload); VaultIntegrityError if it is missing."""
        path = self.path_of(object_id)
        try:
            return path.read_bytes()
        except FileNotFoundError as e:
            raise VaultIntegrityError(f"vault object {object_id} is missing ({path})") from e
        except OSError as e:
            raise VaultIntegrityError(f"vault object {object_id} cannot be read ({path}): {e.strerror}") from e

    def get(self, ref_or_id: ObjectRef | str, expected_sha256: str | None = None) -> bytes:
        """Decrypt an object with the station key and check its plaintext hash.

        With an ObjectRef the recorded hash is used unless ``expected_sha256`` is given; with a bare
        id ``expected_sha256`` is required: nothing leaves the vault unchecked.
        """
        if isinstance(ref_or_id, ObjectRef):
            object_id = ref_or_id.id
            expected = expected_sha256 if expected_sha256 is not None else ref_or_id.sha256
        else:
            object_id = ref_or_id
            if expected_sha256 is None:
                raise ValueError("get() by id needs the recorded sha256 of the object")
            expected = expected_sha256
        if self._identity is None:
            raise StateError("the vault is locked: unlock the station identity before reading objects")
        ciphertext = self.read_ciphertext(object_id)
        try:
            plaintext = self._decrypt(ciphertext)
        except pyrage.DecryptError as e:
            raise VaultIntegrityError(
                f"vault object {object_id} cannot be decrypted with the station key "
                f"(damaged, altered or not encrypted to this station): {e}"
            ) from e
        actual = hashlib.sha256(plaintext).hexdigest()
        if not hmac.compare_digest(actual, expected.lower()):
            raise VaultIntegrityError(
                f"vault object {object_id} does not match its recorded hash "
                f"(recorded {expected}, found {actual}): it was replaced or altered"
            )
        return plaintext

    def _decrypt(self, ciphertext: bytes) -> bytes:
        assert self._identity is not None
        identities = [self._identity.identity, *self._extra_identities()]
        return pyrage.decrypt(ciphertext, identities)

    def exists(self, object_id: str) -> bool:
        return self.path_of(object_id).is_file()

    def delete(self, object_id: str) -> bool:
        """Remove an object durably; False if it was not there."""
        path = self.path_of(object_id)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        atomic.fsync_dir(path.parent)
        return True

    def iter_ids(self) -> Iterator[str]:
        """Ids of all complete objects (temp files of interrupted writes are not objects)."""
        if not self._objects.is_dir():
            return
        with os.scandir(self._objects) as shards:
            shard_entries = sorted((e for e in shards if e.is_dir(follow_symlinks=False)), key=lambda e: e.name)
        for shard in shard_entries:
            with os.scandir(shard.path) as it:
                names = sorted(e.name for e in it if e.is_file(follow_symlinks=False))
            for name in names:
                if not name.endswith(SUFFIX):
                    continue
                object_id = name[: -len(SUFFIX)]
                if _ID_RE.match(object_id) and object_id[:2] == shard.name:
                    yield object_id

    def verify(self, object_id: str, expected_sha256: str, expected_ct_sha256: str | None = None) -> str | None:
        """Check one object; return a description of the problem, or None if it is sound.

        The ciphertext hash (if given) is checked without any key; the plaintext hash needs the
        station identity.  A write-only vault without a ciphertext hash can only check the age header.
        """
        try:
            ciphertext = self.read_ciphertext(object_id)
        except VaultIntegrityError as e:
            return e.message
        if expected_ct_sha256 is not None:
            actual_ct = hashlib.sha256(ciphertext).hexdigest()
            if not hmac.compare_digest(actual_ct, expected_ct_sha256.lower()):
                return (
                    f"vault object {object_id}: the encrypted file does not match its recorded hash "
                    f"(recorded {expected_ct_sha256}, found {actual_ct})"
                )
        if self._identity is None:
            if not ciphertext.startswith(AGE_HEADER):
                return f"vault object {object_id} is not an age file"
            return None
        try:
            plaintext = self._decrypt(ciphertext)
        except pyrage.DecryptError as e:
            return f"vault object {object_id} cannot be decrypted with the station key: {e}"
        actual = hashlib.sha256(plaintext).hexdigest()
        if not hmac.compare_digest(actual, expected_sha256.lower()):
            return (
                f"vault object {object_id} does not match its recorded hash "
                f"(recorded {expected_sha256}, found {actual})"
            )
        return None

    def check_ciphertext(self, object_id: str, expected_ct_sha256: str) -> str | None:
        """The encrypted file present and matching its recorded hash (no key needed); the problem, or None."""
        try:
            ciphertext = self.read_ciphertext(object_id)
        except VaultIntegrityError as e:
            return e.message
        actual = hashlib.sha256(ciphertext).hexdigest()
        if not hmac.compare_digest(actual, expected_ct_sha256.lower()):
            return (
                f"vault object {object_id}: the encrypted file does not match its recorded hash "
                f"(recorded {expected_ct_sha256}, found {actual})"
            )
        return None

    def unlisted(self, known_ids: set[str]) -> list[str]:
        """Ids of complete objects in the vault that ``known_ids`` (the store's list) does not name.

        Nothing is removed: a crash between put() and the database commit leaves such an object, but so
        can a restore from a backup or a hand-copied file, and only a person can tell which it is (see
        :meth:`quarantine`).
        """
        return [object_id for object_id in self.iter_ids() if object_id not in known_ids]

    def quarantine(self, object_ids: Sequence[str], dest: Path, *, written_before: float | None = None) -> list[str]:
        """Move objects (as they are: encrypted, nothing decrypted) into ``dest``; return the ids moved.

        ``written_before`` (a time.time() value) leaves alone objects whose file is newer than that,
        e.g. objects the running station wrote after it started and may be about to record.
        """
        moved: list[str] = []
        for object_id in object_ids:
            path = self.path_of(object_id)
            try:
                if written_before is not None and path.stat().st_mtime >= written_before:
                    continue
            except FileNotFoundError:
                continue
            if not moved:
                dest.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                os.rename(path, dest / path.name)
            except FileNotFoundError:
                continue
            moved.append(object_id)
        if moved:
            atomic.fsync_dir(dest)
            for shard in {object_id[:2] for object_id in moved}:
                atomic.fsync_dir(self._objects / shard)
        return moved

    def remove_orphans(self, known_ids: set[str], *, min_age_seconds: float = 0.0) -> list[str]:
        """Delete objects the database does not reference; return their ids.

        The station no longer calls this (unlisted objects are reported, and moved aside only by the
        audited ``scanstation vault quarantine``); kept for tools that own a vault of their own.
        Orphans come from a kill -9 between put() and the database commit.  Call at startup, under
        the station lock, after the database is open and before any put(): an object being stored
        right now is not yet known to the database and would be removed.  ``min_age_seconds`` keeps
        objects younger than that, as a guard when this has to run while the station works.
        """
        now = time.time()
        removed: list[str] = []
        for object_id in list(self.iter_ids()):
            if object_id in known_ids:
                continue
            path = self.path_of(object_id)
            if min_age_seconds > 0:
                try:
                    if now - path.stat().st_mtime < min_age_seconds:
                        continue
                except FileNotFoundError:
                    continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                removed.append(object_id)
        for shard in {object_id[:2] for object_id in removed}:
            atomic.fsync_dir(self._objects / shard)
        return removed

    def remove_stale_temps(self) -> int:
        """Remove temp files of interrupted writes (startup only, under the station lock)."""
        return atomic.remove_stale_temps(self._objects, recursive=True)

    def __repr__(self) -> str:
        locked = "locked" if self._identity is None else "unlocked"
        return f"Vault({str(self._root)!r}, {len(self._recipients)} recipients, {locked})"

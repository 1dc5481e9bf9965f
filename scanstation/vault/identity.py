"""Station identity (age X25519) handling: generate, seal with a passphrase, unlock into memory."""

from __future__ import annotations

import getpass
import logging
import os
import stat
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NoReturn, TextIO

import pyrage
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pyrage import passphrase as age_passphrase
from pyrage import x25519

from batchformat.atomic import atomic_write, ensure_dir
from scanstation.errors import ConfigError, StateError, UnlockError

log = logging.getLogger(__name__)

PASSPHRASE_FILE_VAR = "SCANSTATION_PASSPHRASE_FILE"
DEFAULT_PROMPT = "ScanStation passphrase (unlocks the station key): "

# Every age file starts with this line; passphrase files carry exactly one "-> scrypt" stanza.
AGE_HEADER = b"age-encryption.org/v1\n"
SCRYPT_STANZA = b"-> scrypt "


SIGNING_KEY_LABEL = b"scanstation/1 station manifest signing key (Ed25519)"
STORE_KEY_LABEL = b"scanstation/1 station database key (SQLCipher raw key, AES-256)"


class StationKey:
    """The unlocked station identity, held only in memory.

    ``repr``/``str`` show the public recipient only, and pickling is refused, so the secret cannot
    leak into logs, tracebacks with locals, crash dumps written by pickle, or worker-process queues.
    """

    __slots__ = ("_identity", "_recipient", "_signing", "_store_key")

    def __init__(self, identity: x25519.Identity) -> None:
        self._identity = identity
        self._recipient = identity.to_public()
        self._signing: Ed25519PrivateKey | None = None
        self._store_key: bytes | None = None

    @classmethod
    def from_secret(cls, secret: str) -> StationKey:
        """Build from an age secret-key string; raises UnlockError (without the value) if invalid."""
        try:
            return cls(x25519.Identity.from_str(secret.strip()))
        except pyrage.IdentityError as e:
            raise UnlockError("the station identity is not a valid age X25519 secret key") from e

    @property
    def recipient(self) -> str:
        """The public ``age1…`` recipient string of this station."""
        return str(self._recipient)

    def as_recipient(self) -> x25519.Recipient:
        return self._recipient

    @property
    def identity(self) -> x25519.Identity:
        """The pyrage identity, for pyrage.decrypt and friends.  Never ``str()`` it: that is the secret."""
        return self._identity

    def decrypt(self, ciphertext: bytes) -> bytes:
        """Decrypt an age file encrypted to this station (raises pyrage.DecryptError)."""
        return pyrage.decrypt(ciphertext, [self._identity])

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        """The station's Ed25519 signing key (batch manifests), derived from the age identity.

        Derived with HKDF-SHA256 under a fixed label rather than stored, so the one sealed file
        stays the only secret at rest and nothing about the sealed format changes.  The label
        separates the uses: the signing key reveals nothing about the decryption key.
        """
        if self._signing is None:
            seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=SIGNING_KEY_LABEL).derive(
                str(self._identity).encode()
            )
            self._signing = Ed25519PrivateKey.from_private_bytes(seed)
        return self._signing

    @property
    def store_key(self) -> bytes:
        """The 32-byte SQLCipher key of station.db, derived from the age identity like :attr:`signing_key`.

        Its own HKDF label, so it reveals nothing about the identity or the signing key (and they nothing
        about it); used as a raw key (``PRAGMA key = "x'…'"``), so SQLCipher adds no password stretching.
        """
        if self._store_key is None:
            self._store_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=STORE_KEY_LABEL).derive(
                str(self._identity).encode()
            )
        return self._store_key

    def __repr__(self) -> str:
        return f"StationKey(recipient={self.recipient!r})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("StationKey holds a secret and cannot be pickled")


def generate_identity() -> tuple[str, str]:
    """Return a new ``(age secret key, recipient "age1…")`` pair.

    Python strings cannot be wiped: seal the secret at once and drop every reference to it.
    """
    identity = x25519.Identity.generate()
    return str(identity), str(identity.to_public())


def _identity_file_text(identity: x25519.Identity, comment: str) -> bytes:
    # The same layout as age-keygen output, so the decrypted sealed file is a valid age identity file
    # (and age itself accepts the sealed file as a passphrase-protected "-i" identity file).
    return f"# {comment}\n# public key: {identity.to_public()}\n{identity}\n".encode()


def _parse_identity_text(text: str) -> x25519.Identity:
    keys = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if len(keys) != 1:
        raise ValueError(f"expected exactly one secret key line, found {len(keys)}")
    return x25519.Identity.from_str(keys[0])


def _identity_from_secret_or_config_error(secret: str) -> x25519.Identity:
    try:
        return x25519.Identity.from_str(secret.strip())
    except pyrage.IdentityError as e:
        # Never echo the value: it may be a (mistyped) secret.
        raise ConfigError("the station identity to store is not a valid age X25519 secret key") from e


def seal_identity(secret: str, passphrase: str, path: Path, *, overwrite: bool = False) -> None:
    """Store ``secret`` encrypted with ``passphrase`` (age scrypt, memory-hard) at ``path``, mode 0600.

    Takes about a second or more: the scrypt work factor is chosen by age to make each guess costly.
    Refuses to replace an existing sealed identity unless ``overwrite``: the station could no longer
    read objects encrypted to the old key.
    """
    identity = _identity_from_secret_or_config_error(secret)
    if not passphrase:
        raise ConfigError("the passphrase for sealing the station identity is empty; choose a passphrase")
    if path.exists() and not overwrite:
        raise StateError(
            f"a sealed station identity already exists at {path}; refusing to replace it "
            "(objects encrypted to it would become unreadable at this station)"
        )
    sealed = age_passphrase.encrypt(_identity_file_text(identity, "ScanStation station identity"), passphrase)
    ensure_dir(path.parent)
    atomic_write(path, sealed, mode=0o600)


def unlock_identity(path: Path, passphrase: str) -> StationKey:
    """Decrypt the sealed identity at ``path`` into memory; raises UnlockError with what to do next."""
    try:
        sealed = path.read_bytes()
    except FileNotFoundError as e:
        raise UnlockError(
            f"sealed identity file {path} is missing; restore it from the station backup or run the "
            "station setup to create a new identity"
        ) from e
    except OSError as e:
        raise UnlockError(f"sealed identity file {path} cannot be read: {e.strerror}") from e
    if not is_passphrase_sealed(sealed):
        # Also refuses a plaintext identity file put in its place: the key must never lie unsealed.
        raise UnlockError(f"{path} is not a passphrase-sealed age file; the station identity must be sealed")
    try:
        plaintext = age_passphrase.decrypt(sealed, passphrase)
    except pyrage.DecryptError as e:
        raise UnlockError(
            f"wrong passphrase for the sealed station identity {path} (or the file is damaged); try again"
        ) from e
    try:
        identity = _parse_identity_text(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, pyrage.IdentityError) as e:
        raise UnlockError(f"sealed identity file {path} does not contain a valid age identity") from e
    return StationKey(identity)


def is_passphrase_sealed(data: bytes) -> bool:
    """True if ``data`` is an age file whose only recipient stanza is a passphrase (scrypt) one."""
    if not data.startswith(AGE_HEADER):
        return False
    stanzas = [line for line in data.split(b"\n---", 1)[0].split(b"\n") if line.startswith(b"-> ")]
    return len(stanzas) == 1 and stanzas[0].startswith(SCRYPT_STANZA)


def read_passphrase(
    env_file_var: str = PASSPHRASE_FILE_VAR,
    prompt: str = DEFAULT_PROMPT,
    *,
    environ: Mapping[str, str] | None = None,
    stdin: TextIO | None = None,
    ask: Callable[[str], str] = getpass.getpass,
    confirm: bool = False,
    require_private: bool = False,
) -> str:
    """Get the station passphrase: from the file named by ``$env_file_var``, else a TTY prompt.

    The file (e.g. a systemd credential) should not be accessible to other users: that is logged as a
    warning, or refused with ``require_private``.  One trailing newline is stripped.  ``confirm``
    asks twice at the terminal (for a new passphrase: a typo would lock the station out).  Without a
    file and without a terminal, UnlockError explains how to provide it.
    """
    env = os.environ if environ is None else environ
    file_name = env.get(env_file_var, "")
    if file_name:
        return _read_passphrase_file(Path(file_name), env_file_var, require_private)
    stream = sys.stdin if stdin is None else stdin
    if stream is not None and stream.isatty():
        value = ask(prompt)
        if not value:
            raise UnlockError("no passphrase entered; the station identity stays locked")
        if confirm and ask("Repeat the passphrase: ") != value:
            raise UnlockError("the two passphrases do not match; nothing was changed, try again")
        return value
    raise UnlockError(
        f"no passphrase available: set {env_file_var} to a file (mode 0600) containing the station "
        "passphrase, or start the station from a terminal to type it"
    )


def _read_passphrase_file(path: Path, env_file_var: str, require_private: bool) -> str:
    try:
        st = path.stat()
        raw = path.read_bytes()
    except FileNotFoundError as e:
        raise UnlockError(f"passphrase file {path} (from {env_file_var}) does not exist") from e
    except OSError as e:
        raise UnlockError(f"passphrase file {path} (from {env_file_var}) cannot be read: {e.strerror}") from e
    if st.st_mode & (stat.S_IROTH | stat.S_IWOTH):
        advice = f"passphrase file {path} is accessible to all users; run: chmod 600 {path}"
        if require_private:
            raise UnlockError(advice)
        log.warning("%s", advice)  # the path only, never the content
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UnlockError(f"passphrase file {path} is not UTF-8 text") from e
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        raise UnlockError(f"passphrase file {path} (from {env_file_var}) is empty")
    return text


def parse_recipient(text: str, *, source: str = "recipient") -> x25519.Recipient:
    """Parse an ``age1…`` recipient; ConfigError names ``source`` (file/key) and the bad value."""
    value = text.strip()
    if value.upper().startswith("AGE-SECRET-KEY-"):
        # Somebody pasted a secret key where the public one belongs: say so without echoing it.
        raise ConfigError(f"{source}: this is an age SECRET key, not a recipient; use its public 'age1…' key")
    try:
        return x25519.Recipient.from_str(value)
    except pyrage.RecipientError as e:
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise ConfigError(f"{source}: {shown!r} is not a valid age recipient ({e}); expected 'age1…'") from e


def identity_to_age_file(secret: str, path: Path) -> None:
    """Write ``secret`` as an age identity file (mode 0600) usable with ``age -d -i path``.

    For tests and the portal side only: a station identity must never lie unsealed on persistent
    storage (write it into the RamDir if the age CLI needs it).
    """
    identity = _identity_from_secret_or_config_error(secret)
    atomic_write(path, _identity_file_text(identity, "age identity"), mode=0o600)

"""A secret wrapped with AES-256-GCM under an argon2id key derived from a password or recovery code.

Used for a person's private X25519 key (under their password) and for the station secret's recovery
slot (under the recovery code).  The stored text names its own parameters, salt and nonce, so the
cost can be raised later without breaking existing wraps, and it is all one would need to attack it
offline: the argon2id cost is what makes each guess expensive.  The associated data binds a wrap to
its purpose and owner, so a wrap copied from one row to another does not open.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from scanstation.people.passwords import DEFAULT_PARAMS, SALT_LENGTH, Argon2Params, derive_key

FORMAT = "argon2id-aes256gcm"
NONCE_LENGTH = 12
# Bounds for parameters read back from the database: a tampered row must not make us allocate 100 GiB.
_MAX_MEMORY_KIB = 4 * 1024 * 1024
_MAX_TIME_COST = 64
_MAX_PARALLELISM = 16
_PATTERN = re.compile(
    rf"^{FORMAT}\$v=1\$m=(\d{{1,8}}),t=(\d{{1,3}}),p=(\d{{1,2}})\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$"
)


class WrongSecret(Exception):
    """The password or code does not open this wrap (or the wrap is damaged): GCM's tag failed."""


@dataclass(frozen=True, slots=True)
class Wrapped:
    params: Argon2Params
    salt: bytes
    nonce: bytes
    ciphertext: bytes

    def to_text(self) -> str:
        p = self.params
        parts = (_b64(self.salt), _b64(self.nonce), _b64(self.ciphertext))
        return f"{FORMAT}$v=1$m={p.memory_kib},t={p.time_cost},p={p.parallelism}${'$'.join(parts)}"

    @classmethod
    def from_text(cls, text: str) -> Wrapped:
        """Parse a stored wrap; ValueError (naming no secret) if it is not one of ours."""
        match = _PATTERN.match(text)
        if not match:
            raise ValueError("not a wrapped secret of this station")
        m, t, p = (int(g) for g in match.groups()[:3])
        if not (8 * p <= m <= _MAX_MEMORY_KIB and 1 <= t <= _MAX_TIME_COST and 1 <= p <= _MAX_PARALLELISM):
            raise ValueError("the wrapped secret names out-of-range argon2id parameters")
        try:
            salt, nonce, ciphertext = (base64.b64decode(g, validate=True) for g in match.groups()[3:])
        except binascii.Error as e:
            raise ValueError("the wrapped secret is damaged (bad base64)") from e
        if len(salt) < SALT_LENGTH or len(nonce) != NONCE_LENGTH:
            raise ValueError("the wrapped secret is damaged (salt or nonce length)")
        return cls(Argon2Params(m, t, p), salt, nonce, ciphertext)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def wrap(secret: bytes, password: str, *, purpose: bytes, params: Argon2Params = DEFAULT_PARAMS) -> Wrapped:
    """Encrypt ``secret`` under argon2id(``password``, fresh salt); ``purpose`` is the associated data."""
    salt = os.urandom(SALT_LENGTH)
    nonce = os.urandom(NONCE_LENGTH)
    key = derive_key(password, salt, params)
    return Wrapped(params, salt, nonce, AESGCM(key).encrypt(nonce, secret, purpose))


def unwrap(wrapped: Wrapped, password: str, *, purpose: bytes) -> bytes:
    """Decrypt; raises :class:`WrongSecret` if the password, the purpose or the bytes do not match."""
    key = derive_key(password, wrapped.salt, wrapped.params)
    try:
        return AESGCM(key).decrypt(wrapped.nonce, wrapped.ciphertext, purpose)
    except InvalidTag as e:
        raise WrongSecret("the password or code does not open this wrapped secret") from e

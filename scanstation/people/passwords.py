"""Passwords: the policy a new password must meet, argon2id hashing for sign-in, and the raw key
derivation that wraps a person's private key.

Policy (OWASP ASVS 5.0, NIST SP 800-63B): at least 10 characters, at most 1024, no composition rules
(they push people to ``Password1!``), no password from a list of commonly used ones, not the person's
own name.  Passwords are NFC-normalised before anything else, so the same Devanagari password typed on
two keyboards (precomposed or combining marks) is the same password; never NFKC, which folds
compatibility characters and breaks Devanagari text.

Hashing: argon2id through argon2-cffi.  The default cost, m = 64 MiB, t = 3, p = 1, takes about 0.3 s
per hash on the station PC class this was measured on (2 cores, shared): slow enough to make each
guess against a stolen people.db expensive, fast enough for a sign-in.  It is above the ASVS minimum
(19 MiB, t = 2), which stays the floor if a slower PC ever needs less.  The same cost is used for the
raw key that wraps a private key, as the station-service design asks (≥ 64 MiB, t = 3).
"""

from __future__ import annotations

import base64
import functools
import os
import re
import unicodedata
from dataclasses import dataclass

import argon2
from argon2.low_level import Type, hash_secret_raw

from scanstation.errors import SignInError

MIN_LENGTH = 10
MAX_LENGTH = 1024  # a sane ceiling: long passphrases welcome, megabyte "passwords" are not
_NAME_PART_MIN = 3  # shorter parts of a name ("r" of "r.sharma") would refuse too many good passwords
_MIN_DISTINCT = 3  # "aaaaaaaaaa" is on no list but is guessed at once
# What people put around a common word ("monkey123456", "!!dragon2024"): digits, punctuation, spaces.
_PADDING = re.compile(r"^[\W\d_]+|[\W\d_]+$")
_ONLY_PADDING = re.compile(r"^[\W\d_]*$")


class WeakPassword(SignInError):
    """A new password does not meet the policy; the message says why, never what the password was."""


@dataclass(frozen=True, slots=True)
class Argon2Params:
    """argon2id cost: memory in KiB, passes, lanes.

    Injectable so tests can use cheap parameters where speed matters; the station uses the defaults.
    """

    memory_kib: int
    time_cost: int
    parallelism: int = 1

    @property
    def meets_minimum(self) -> bool:
        """True when at least the ASVS 5.0 floor (19 MiB, t = 2)."""
        return self.memory_kib >= ASVS_MINIMUM.memory_kib and self.time_cost >= ASVS_MINIMUM.time_cost


ASVS_MINIMUM = Argon2Params(memory_kib=19456, time_cost=2, parallelism=1)
DEFAULT_PARAMS = Argon2Params(memory_kib=65536, time_cost=3, parallelism=1)
KEY_LENGTH = 32  # AES-256
SALT_LENGTH = 16


def normalise(password: str) -> str:
    """NFC, never NFKC (see the module docstring)."""
    return unicodedata.normalize("NFC", password)


@functools.cache
def _common_passwords() -> frozenset[str]:
    """zxcvbn's frequency list of leaked passwords (30,000 entries), loaded on first use only.

    A maintained list from a well-known package rather than a copy of our own, so it is updated with
    the dependency; casefolded, because ``Password`` is as common as ``password``.
    """
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(word.casefold() for word in FREQUENCY_LISTS["passwords"])


def is_common(password: str) -> bool:
    """Whether the password, or its core without leading/trailing digits and punctuation, is common."""
    folded = normalise(password).casefold()
    common = _common_passwords()
    if folded in common or folded.strip() in common:
        return True
    core = _PADDING.sub("", folded)
    return len(core) >= 4 and core in common


def _built_on_name(folded: str, name: str) -> bool:
    """Whether the password is the name (or a part of it) with only digits or punctuation around it."""
    name_folded = normalise(name).casefold()
    parts = {name_folded, *re.split(r"[._\-\s]+", name_folded)}
    for part in parts:
        if len(part) >= _NAME_PART_MIN and part in folded and _ONLY_PADDING.match(folded.replace(part, "")):
            return True
    return False


def check_policy(password: str, *, name: str = "") -> str:
    """Return the NFC form of ``password`` if it meets the policy, else raise :class:`WeakPassword`.

    ``name`` is the account the password is for: a password built on it is refused.
    """
    value = normalise(password)
    if len(value) < MIN_LENGTH:
        raise WeakPassword(
            f"the password is too short: {len(value)} characters, at least {MIN_LENGTH} are needed "
            "(a few unrelated words make a good password)"
        )
    if len(value) > MAX_LENGTH:
        raise WeakPassword(f"the password is too long: at most {MAX_LENGTH} characters")
    folded = value.casefold()
    if name and _built_on_name(folded, name):
        raise WeakPassword("the password is built on the person's own name; choose one that is not")
    if len(set(folded)) < _MIN_DISTINCT:
        raise WeakPassword("the password repeats one or two characters; choose one that is harder to guess")
    if is_common(value):
        raise WeakPassword(
            "the password is on the list of commonly used passwords; choose another (a few unrelated words work well)"
        )
    return value


class PasswordHashing:
    """argon2id PHC hashes for sign-in: hash, verify, and whether a stored hash needs redoing."""

    def __init__(self, params: Argon2Params = DEFAULT_PARAMS) -> None:
        self.params = params
        self._hasher = argon2.PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
            hash_len=32,
            salt_len=SALT_LENGTH,
            type=Type.ID,
        )
        self._dummy: str | None = None

    def hash(self, password: str) -> str:
        """The PHC string (``$argon2id$v=19$m=…,t=…,p=…$salt$hash``) of the NFC password."""
        return self._hasher.hash(normalise(password))

    def verify(self, phc: str, password: str) -> bool:
        """True if ``password`` matches; False for a wrong password or a damaged/foreign hash."""
        try:
            return self._hasher.verify(phc, normalise(password))
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False

    def needs_rehash(self, phc: str) -> bool:
        """True if ``phc`` was made with other parameters than ours (rehash it at the next sign-in)."""
        try:
            return self._hasher.check_needs_rehash(phc)
        except argon2.exceptions.InvalidHashError:
            return True

    def dummy_verify(self, password: str) -> None:
        """Spend the time of one verification, for an unknown name: timing must not tell who exists."""
        if self._dummy is None:
            # A well-formed PHC string with our parameters and random bytes: verifying against it costs
            # one full argon2id run (and always fails), and making it costs nothing, so even the first
            # unknown name after a start takes no longer than a wrong password.
            p = self.params
            salt, digest = (base64.b64encode(os.urandom(n)).decode().rstrip("=") for n in (SALT_LENGTH, 32))
            self._dummy = f"$argon2id$v=19$m={p.memory_kib},t={p.time_cost},p={p.parallelism}${salt}${digest}"
        self.verify(self._dummy, password)


def derive_key(secret: str | bytes, salt: bytes, params: Argon2Params = DEFAULT_PARAMS) -> bytes:
    """A 32-byte key from a password (NFC) or recovery code, with argon2id and the caller's own salt.

    Separate from the sign-in hash (its own salt, raw output) so the PHC hash in people.db reveals
    nothing of the wrapping key.
    """
    if len(salt) < SALT_LENGTH:
        raise ValueError(f"the salt must be at least {SALT_LENGTH} bytes")
    data = normalise(secret).encode("utf-8") if isinstance(secret, str) else secret
    return hash_secret_raw(
        secret=data,
        salt=salt,
        time_cost=params.time_cost,
        memory_cost=params.memory_kib,
        parallelism=params.parallelism,
        hash_len=KEY_LENGTH,
        type=Type.ID,
    )

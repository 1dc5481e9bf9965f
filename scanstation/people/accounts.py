"""The station's accounts in people.db: who exists, their role, their password, their key pair.

Supervisors and unit heads get an X25519 key pair when they are added: the station secret is given to
them as a key slot encrypted to the *public* half (:mod:`scanstation.vault.key_slots`), so an unlocked
station can enrol a new supervisor without their password.  The private half is stored wrapped with
AES-256-GCM under an argon2id key of their password (:mod:`scanstation.people.key_wrap`), so only the
person's password opens it.  Operators and admins have no key pair: nothing they know opens the station.

Sign-in says the same thing for an unknown name and a wrong password, and spends the same argon2 time
on both, so neither the message nor the timing tells which names exist.
"""

from __future__ import annotations

import builtins
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pyrage import x25519

from scanstation.errors import SignInError, StateError, StationLocked
from scanstation.people.database import Clock, PeopleDatabase, from_text, to_text, utc_now
from scanstation.people.key_wrap import Wrapped, WrongSecret, unwrap, wrap
from scanstation.people.passwords import (
    DEFAULT_PARAMS,
    MAX_LENGTH,
    Argon2Params,
    PasswordHashing,
    check_policy,
)
from scanstation.people.roles import Role
from scanstation.people.throttle import CAP_SECONDS, Throttle

# Login names are typed at a sign-in screen on whatever keyboard layout is active: plain ASCII letters,
# digits and . _ - only, so no two names look alike (no Unicode confusables) and every layout can type them.
NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
WRONG_NAME_OR_PASSWORD = "sign-in refused: the name or the password is wrong"


def name_key(name: str) -> str:
    """The case-insensitive identity of a name: ``R.Sharma`` and ``r.sharma`` are one person."""
    return name.casefold()


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid login name, else raise StateError saying what is allowed."""
    if not NAME_PATTERN.fullmatch(name):
        raise StateError(
            f"{name[:80]!r} is not a valid name: 1 to 64 characters, letters A-Z a-z, digits and . _ - only"
        )
    return name


def _purpose(key: str) -> bytes:
    # Associated data: a wrapped key moved onto another person's row does not open there.
    return f"scanstation/1 private key of {key}".encode()


@dataclass(frozen=True, slots=True)
class Person:
    id: int
    name: str
    role: Role
    disabled: bool
    created_at: datetime
    password_changed_at: datetime
    password_set_by: str


def _person(row: sqlite3.Row) -> Person:
    return Person(
        id=int(row["id"]),
        name=row["name"],
        role=Role(row["role"]),
        disabled=bool(row["disabled"]),
        created_at=from_text(row["created_at"]),
        password_changed_at=from_text(row["password_changed_at"]),
        password_set_by=row["password_set_by"],
    )


class People:
    """Accounts over people.db (created 0600 in a 0700 directory)."""

    def __init__(
        self,
        path: Path,
        *,
        clock: Clock = utc_now,
        hashing: PasswordHashing | None = None,
        key_params: Argon2Params = DEFAULT_PARAMS,
        throttle_cap_seconds: float = CAP_SECONDS,
    ) -> None:
        """``hashing`` and ``key_params`` default to the real argon2id cost; tests may pass cheaper ones."""
        self.database = PeopleDatabase(path, clock=clock)
        self.hashing = hashing if hashing is not None else PasswordHashing()
        self.key_params = key_params
        self.throttle = Throttle(self.database, cap_seconds=throttle_cap_seconds)

    def close(self) -> None:
        self.database.close()

    # ------------------------------------------------------------------ reading
    def _row(self, name: str) -> sqlite3.Row | None:
        return self.database.read_one("SELECT * FROM people WHERE name_key=?", (name_key(name),))

    def get(self, name: str) -> Person | None:
        """The person with this name (any case), or None."""
        row = self._row(name)
        return _person(row) if row else None

    def require(self, name: str) -> Person:
        """The person with this name, or StateError naming the unknown name (for admin commands)."""
        person = self.get(name)
        if person is None:
            raise StateError(f"there is no person named {name[:80]!r} at this station (see: scanstation users list)")
        return person

    def list(self) -> builtins.list[Person]:
        return [_person(row) for row in self.database.read("SELECT * FROM people ORDER BY name_key")]

    def public_key(self, name: str) -> x25519.Recipient | None:
        """The person's X25519 recipient (supervisors and unit heads), else None."""
        row = self._row(name)
        if row is None or row["public_key"] is None:
            return None
        return x25519.Recipient.from_str(row["public_key"])

    def key_holders(self) -> builtins.list[tuple[Person, x25519.Recipient]]:
        """Every enabled person who may unlock and has a key pair, with their public key."""
        rows = self.database.read("SELECT * FROM people WHERE disabled=0 AND public_key IS NOT NULL ORDER BY id")
        found = [(_person(row), x25519.Recipient.from_str(row["public_key"])) for row in rows]
        return [(person, recipient) for person, recipient in found if person.role.may_unlock]

    # ------------------------------------------------------------------ changing
    def _new_key_pair(self, key: str, password: str) -> tuple[str, str]:
        """(public key, wrapped private key text) of a fresh X25519 pair, wrapped under ``password``."""
        identity = x25519.Identity.generate()
        wrapped = wrap(str(identity).encode(), password, purpose=_purpose(key), params=self.key_params)
        return str(identity.to_public()), wrapped.to_text()

    def add(self, name: str, role: Role, password: str, *, by: str) -> Person:
        """Create an account; supervisors and unit heads also get their key pair.

        Raises StateError for a bad or taken name, WeakPassword for a password the policy refuses.
        """
        check_name(name)
        password = check_policy(password, name=name)
        key = name_key(name)
        if self._row(name) is not None:
            raise StateError(f"a person named {name!r} already exists (names are unique regardless of case)")
        phc = self.hashing.hash(password)
        public, wrapped = self._new_key_pair(key, password) if role.may_unlock else (None, None)
        now = to_text(self.database.now())
        try:
            with self.database.write() as db:
                db.execute(
                    "INSERT INTO people (name, name_key, role, password_hash, disabled, created_at, "
                    "password_changed_at, password_set_by, public_key, wrapped_private_key) "
                    "VALUES (?,?,?,?,0,?,?,?,?,?)",
                    (name, key, role.value, phc, now, now, by, public, wrapped),
                )
                db.execute("DELETE FROM sign_in_failures WHERE name_key=?", (key,))
        except sqlite3.IntegrityError as e:
            raise StateError(f"a person named {name!r} already exists (names are unique regardless of case)") from e
        return self.require(name)

    def disable(self, name: str) -> Person:
        """Disable an account and drop its key slot (it is made again at the next unlock after enable).

        The slot is dropped, not just left unusable, because people.db can be copied: a disabled
        supervisor's password must no longer open the station secret anywhere.  The last enabled admin
        cannot be disabled: nobody could manage accounts any more.
        """
        person = self.require(name)
        if person.role is Role.ADMIN and not person.disabled:
            admins = [p for p in self.list() if p.role is Role.ADMIN and not p.disabled]
            if len(admins) <= 1:
                raise StateError(f"{person.name} is the last enabled station admin and cannot be disabled")
        with self.database.write() as db:
            db.execute("UPDATE people SET disabled=1 WHERE id=?", (person.id,))
            db.execute("DELETE FROM key_slots WHERE person_id=?", (person.id,))
        return self.require(name)

    def enable(self, name: str) -> Person:
        person = self.require(name)
        with self.database.write() as db:
            db.execute("UPDATE people SET disabled=0 WHERE id=?", (person.id,))
        return self.require(name)

    def set_password(
        self, name: str, new_password: str, *, old_password: str | None = None, by: str | None = None
    ) -> Person:
        """Change a password.

        With ``old_password`` (the person themself): it is checked like a sign-in (throttled), and the
        private key is re-wrapped under the new password; the key slot stays valid.  Without it (an admin
        reset, ``by`` names the admin): the old private key cannot be opened, so the person gets a new key
        pair and their key slot is dropped; it is re-made at the next unlock by someone else.
        """
        person = self.require(name)
        new_password = check_policy(new_password, name=person.name)
        key = name_key(person.name)
        # Who set it: the person themself, or the admin named by ``by`` (an admin reset that names nobody
        # is still recorded as one, so a forced change at the next sign-in can be decided from it).
        set_by = by if by is not None else person.name if old_password is not None else "(admin reset)"
        phc = self.hashing.hash(new_password)
        now = to_text(self.database.now())
        if old_password is not None:
            self.authenticate(person.name, old_password)
            row = self._row(person.name)
            assert row is not None
            wrapped = row["wrapped_private_key"]
            if wrapped is not None:
                secret = self._unwrap_text(person, wrapped, old_password)
                wrapped = wrap(secret, new_password, purpose=_purpose(key), params=self.key_params).to_text()
            with self.database.write() as db:
                db.execute(
                    "UPDATE people SET password_hash=?, password_changed_at=?, password_set_by=?, "
                    "wrapped_private_key=? WHERE id=?",
                    (phc, now, set_by, wrapped, person.id),
                )
        else:
            public, wrapped = self._new_key_pair(key, new_password) if person.role.may_unlock else (None, None)
            with self.database.write() as db:
                db.execute(
                    "UPDATE people SET password_hash=?, password_changed_at=?, password_set_by=?, public_key=?, "
                    "wrapped_private_key=? WHERE id=?",
                    (phc, now, set_by, public, wrapped, person.id),
                )
                db.execute("DELETE FROM key_slots WHERE person_id=?", (person.id,))
                db.execute("DELETE FROM sign_in_failures WHERE name_key=?", (key,))
        return self.require(name)

    # ------------------------------------------------------------------ signing in
    def authenticate(self, name: str, password: str) -> Person:
        """The person, if ``password`` is theirs; else SignInError (and a failure is counted).

        Refused without checking while the name must still wait (:mod:`scanstation.people.throttle`).
        A disabled account is only reported as such to someone who knows its password.
        """
        if not NAME_PATTERN.fullmatch(name):
            self.hashing.dummy_verify(password[:MAX_LENGTH])
            raise SignInError(WRONG_NAME_OR_PASSWORD)
        key = name_key(name)
        self.throttle.check(key, name)
        row = self._row(name)
        if row is None or len(password) > MAX_LENGTH:
            self.hashing.dummy_verify(password[:MAX_LENGTH])
            self.throttle.record_failure(key)
            raise SignInError(WRONG_NAME_OR_PASSWORD)
        if not self.hashing.verify(row["password_hash"], password):
            self.throttle.record_failure(key)
            raise SignInError(WRONG_NAME_OR_PASSWORD)
        person = _person(row)
        if person.disabled:
            raise SignInError(f"{person.name}'s account is disabled; ask the station admin")
        self.throttle.reset(key)
        if self.hashing.needs_rehash(row["password_hash"]):
            with self.database.write() as db:
                db.execute("UPDATE people SET password_hash=? WHERE id=?", (self.hashing.hash(password), person.id))
        return person

    def _unwrap_text(self, person: Person, wrapped_text: str, password: str) -> bytes:
        try:
            return unwrap(Wrapped.from_text(wrapped_text), password, purpose=_purpose(name_key(person.name)))
        except (ValueError, WrongSecret) as e:
            raise StationLocked(
                f"{person.name}'s private key does not open with their password (people.db damaged?): "
                "another supervisor or unit head can unlock, or the unit head with the recovery code"
            ) from e

    def unwrap_private_key(self, name: str, password: str) -> x25519.Identity:
        """The person's private X25519 key (supervisors and unit heads), opened with their password.

        The password is checked as a sign-in first (throttled, counted), so this is no faster way of
        guessing passwords than the sign-in screen.  Raises SignInError for a wrong password, and
        StationLocked for a role that holds no key.
        """
        person = self.authenticate(name, password)
        row = self._row(person.name)
        assert row is not None
        if not person.role.may_unlock or row["wrapped_private_key"] is None:
            raise StationLocked(
                f"{person.name} is {person.role.value}: only a supervisor or unit head holds a key that "
                "unlocks the station"
            )
        secret = self._unwrap_text(person, row["wrapped_private_key"], password)
        return x25519.Identity.from_str(secret.decode())

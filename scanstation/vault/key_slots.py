"""Key slots: the station secret S, opened at the start of the day by a supervisor's or unit head's password.

A slot is S age-encrypted to one person's X25519 public key (people.db, ``key_slots``).  Because it is
made with the *public* key, an unlocked station enrols a newly added supervisor without their password
(:meth:`KeySlots.enrol_missing`, at each unlock); a person added while the station was locked gets their
slot at the next unlock.  Opening a slot needs the person's private key, which only their password
unwraps (:meth:`scanstation.people.accounts.People.unwrap_private_key`, throttled like a sign-in).

The recovery slot is S wrapped (AES-256-GCM) under an argon2id key of a 160-bit recovery code shown once,
for the unit head when nobody with a slot can come, and for the first unlock of a fresh station.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets

import pyrage

from scanstation.errors import SignInError, StationLocked
from scanstation.people.accounts import People
from scanstation.people.database import to_text
from scanstation.people.key_wrap import Wrapped, WrongSecret, unwrap, wrap
from scanstation.people.passwords import DEFAULT_PARAMS, Argon2Params
from scanstation.vault.identity import StationKey

RECOVERY_BYTES = 20  # 160 bits: 32 base32 characters, no padding
_GROUP = 4
_RECOVERY_PURPOSE = b"scanstation/1 recovery slot of the station secret"
_SEPARATORS = re.compile(r"[\s\-_]+")


def format_recovery_code(raw: bytes) -> str:
    """Base32 (A-Z, 2-7) in groups of four, e.g. ``ABCD-EFGH-…``: easy to copy onto paper and type back."""
    text = base64.b32encode(raw).decode("ascii").rstrip("=")
    return "-".join(text[i : i + _GROUP] for i in range(0, len(text), _GROUP))


def canonical_recovery_code(code: str) -> str:
    """The code as typed, without spaces or dashes, in capitals; SignInError if it cannot be one."""
    text = _SEPARATORS.sub("", code).upper()
    expected = len(format_recovery_code(bytes(RECOVERY_BYTES)).replace("-", ""))
    try:
        raw = base64.b32decode(text + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError) as e:
        raise SignInError("that is not a recovery code: it has letters A-Z and digits 2-7 only") from e
    if len(text) != expected or len(raw) != RECOVERY_BYTES:
        raise SignInError(f"that is not a recovery code: it has {expected} letters and digits (groups of four)")
    return text


class KeySlots:
    """The key slots and the recovery slot, in the people database."""

    def __init__(self, people: People, *, recovery_params: Argon2Params = DEFAULT_PARAMS) -> None:
        self._people = people
        self._db = people.database
        self.recovery_params = recovery_params

    def holders(self) -> list[str]:
        """Names of the people who have a slot now."""
        rows = self._db.read("SELECT p.name FROM key_slots k JOIN people p ON p.id = k.person_id ORDER BY p.name_key")
        return [row["name"] for row in rows]

    def enrol_missing(self, station_key: StationKey) -> list[str]:
        """Give every enabled supervisor and unit head without a (current) slot one; returns their names.

        A slot made for an older public key (the person's key pair was replaced) counts as missing.
        """
        secret = str(station_key.identity).encode()
        enrolled: list[str] = []
        for person, recipient in self._people.key_holders():
            row = self._db.read_one("SELECT recipient FROM key_slots WHERE person_id=?", (person.id,))
            if row is not None and row["recipient"] == str(recipient):
                continue
            slot = pyrage.encrypt(secret, [recipient])
            with self._db.write() as db:
                db.execute(
                    "INSERT INTO key_slots (person_id, recipient, slot, created_at) VALUES (?,?,?,?) "
                    "ON CONFLICT(person_id) DO UPDATE SET recipient=excluded.recipient, slot=excluded.slot, "
                    "created_at=excluded.created_at",
                    (person.id, str(recipient), slot, to_text(self._db.now())),
                )
            enrolled.append(person.name)
        return enrolled

    def _who_can_unlock(self) -> str:
        names = self.holders()
        if names:
            return f"someone who has one ({', '.join(names)}) unlocks the station, or "
        return ""

    def open_with_password(self, name: str, password: str) -> StationKey:
        """The station key, from this person's slot and password.

        SignInError for a wrong password (counted by the throttle); StationLocked, saying who can unlock,
        for a person without a key pair (operators, admins) or without a slot yet.
        """
        identity = self._people.unwrap_private_key(name, password)
        person = self._people.require(name)
        row = self._db.read_one("SELECT slot FROM key_slots WHERE person_id=?", (person.id,))
        if row is None:
            raise StationLocked(
                f"{person.name} has no key slot yet: it is made when {self._who_can_unlock()}"
                "the unit head uses the recovery code (scanstation unlock --recovery)"
            )
        try:
            secret = pyrage.decrypt(bytes(row["slot"]), [identity])
        except pyrage.DecryptError as e:
            raise StationLocked(
                f"{person.name}'s key slot does not open with their key (made for an older key?): "
                f"{self._who_can_unlock()}the unit head uses the recovery code (scanstation unlock --recovery)"
            ) from e
        return StationKey.from_secret(secret.decode())

    # ------------------------------------------------------------------ recovery
    def has_recovery(self) -> bool:
        return self._db.read_one("SELECT 1 FROM recovery_slot WHERE id=1") is not None

    def set_recovery(self, station_key: StationKey) -> str:
        """Make a new recovery code (replacing any old one) and return it: show it once, store it nowhere.

        Only an argon2id-derived AES-GCM wrap of the station secret is kept, under its own salt.
        """
        raw = secrets.token_bytes(RECOVERY_BYTES)
        code = format_recovery_code(raw)
        wrapped = wrap(
            str(station_key.identity).encode(),
            canonical_recovery_code(code),
            purpose=_RECOVERY_PURPOSE,
            params=self.recovery_params,
        )
        with self._db.write() as db:
            db.execute(
                "INSERT INTO recovery_slot (id, wrapped, created_at) VALUES (1,?,?) "
                "ON CONFLICT(id) DO UPDATE SET wrapped=excluded.wrapped, created_at=excluded.created_at",
                (wrapped.to_text(), to_text(self._db.now())),
            )
        return code

    def open_with_recovery(self, code: str) -> StationKey:
        """The station key from the recovery code (spaces, dashes and case do not matter).

        SignInError for a wrong code; StationLocked when no recovery code was ever set.
        """
        text = canonical_recovery_code(code)
        row = self._db.read_one("SELECT wrapped FROM recovery_slot WHERE id=1")
        if row is None:
            raise StationLocked(
                "this station has no recovery code: a supervisor or unit head with a key slot must unlock it"
            )
        try:
            secret = unwrap(Wrapped.from_text(row["wrapped"]), text, purpose=_RECOVERY_PURPOSE)
        except WrongSecret as e:
            raise SignInError("the recovery code is wrong; check it against the paper copy") from e
        except ValueError as e:
            raise StationLocked(f"the recovery slot in {self._db.path} is damaged: {e}") from e
        return StationKey.from_secret(secret.decode())

"""Creating a station's keys and first people (what ``scanstation init`` does after writing the config).

The station secret is generated here and never written down in the clear: it leaves this function
wrapped in the recovery slot (the code is returned once, for the person at the terminal to write on
paper) and, when a unit head is named, in their key slot.  The first admin gets an account and no key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from scanstation.audit.trail import AuditTrail
from scanstation.config import Config
from scanstation.errors import StateError
from scanstation.people.accounts import People
from scanstation.people.passwords import check_policy
from scanstation.people.roles import Role
from scanstation.service.audit_witness import AuditWitness
from scanstation.service.public_info import FILE_NAME, StationPublic
from scanstation.vault.identity import StationKey, generate_identity
from scanstation.vault.key_slots import KeySlots

# What a station's data directory holds before its first page; --force replaces exactly these.
FOUNDING_FILES = (FILE_NAME, "people.db", "people.db-wal", "people.db-shm", "audit.db", "audit.db-wal",
                  "audit.db-shm")


@dataclass(frozen=True)
class Founded:
    recipient: str
    recovery_code: str
    enrolled: list[str]


def found_station(config: Config, admin: str, admin_password: str, *, unit_head: str | None = None,
                  unit_head_password: str | None = None, force: bool = False) -> Founded:
    data_dir = config.data_dir
    existing = [n for n in FOUNDING_FILES if (data_dir / n).exists()]
    if (existing or (data_dir / "station.db").exists()) and not force:
        raise StateError(f"{data_dir}: a station already exists here ({(existing or ['station.db'])[0]}); "
                         "use --force to replace its keys and accounts (everything it holds becomes unreadable)")
    check_policy(admin_password, name=admin)
    if unit_head is not None and unit_head_password is not None:
        check_policy(unit_head_password, name=unit_head)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(data_dir, 0o700)
    for name in existing:
        (data_dir / name).unlink()
    secret, recipient = generate_identity()
    key = StationKey.from_secret(secret)
    del secret
    public = StationPublic.of(config.station.id, key)
    public.write(data_dir)
    people = People(data_dir / "people.db")
    try:
        people.add(admin, Role.ADMIN, admin_password, by="init")
        if unit_head is not None and unit_head_password is not None:
            people.add(unit_head, Role.UNIT_HEAD, unit_head_password, by="init")
        slots = KeySlots(people)
        code = slots.set_recovery(key)
        enrolled = slots.enrol_missing(key)
        trail = AuditTrail(data_dir / "audit.db", station_id=config.station.id,
                           role_of=lambda n: "admin" if n == admin else "unit-head" if n == unit_head else "",
                           batch_recipient=lambda _b: None, station_recipient=key.as_recipient())
        trail.add_checkpoint_listener(AuditWitness(people.database).keep)
        try:
            trail.attach_signer(key.signing_key)
            trail.append(admin, "station.init", "station",
                         {"station": config.station.id, "recipient": recipient, "admin": admin,
                          "unit_head": unit_head or "", "key_slots": enrolled})
            trail.checkpoint()
        finally:
            trail.close()
    finally:
        people.close()
    return Founded(recipient, code, enrolled)

"""Key slots: the station secret opened with a supervisor's or unit head's password, enrolment at unlock,
admin resets and disabling drop a slot, the recovery code, and nothing secret in people.db in the clear.

Real argon2id, real age (pyrage) and real X25519 keys; cheap argon2 parameters except in the one test
that runs the whole path at the station's real cost.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from pyrage import x25519

from scanstation.errors import SignInError, StationLocked
from scanstation.people.accounts import People
from scanstation.people.roles import Role
from scanstation.vault.identity import StationKey
from scanstation.vault.key_slots import RECOVERY_BYTES, KeySlots, canonical_recovery_code
from tests.peoplekit import CHEAP, GOOD, OTHER, FakeClock, cheap_people


def _station_key() -> StationKey:
    return StationKey(x25519.Identity.generate())


@pytest.fixture
def staff(tmp_path: Path) -> tuple[People, KeySlots, FakeClock]:
    clock = FakeClock()
    people = cheap_people(tmp_path, clock)
    people.add("adm", Role.ADMIN, GOOD, by="init")
    people.add("op", Role.OPERATOR, GOOD, by="adm")
    people.add("sup", Role.SUPERVISOR, GOOD, by="adm")
    people.add("head", Role.UNIT_HEAD, OTHER, by="adm")
    return people, KeySlots(people, recovery_params=CHEAP), clock


def test_enrol_and_open_with_password(staff: tuple[People, KeySlots, FakeClock]) -> None:
    _, slots, _ = staff
    key = _station_key()
    assert slots.enrol_missing(key) == ["sup", "head"]  # operators and admins hold no slot
    assert slots.enrol_missing(key) == []  # nothing missing the second time
    assert slots.holders() == ["head", "sup"]
    for name, password in [("sup", GOOD), ("HEAD", OTHER)]:
        opened = slots.open_with_password(name, password)
        assert opened.recipient == key.recipient
        assert str(opened.identity) == str(key.identity)


def test_wrong_password_and_roles_without_a_slot(staff: tuple[People, KeySlots, FakeClock]) -> None:
    people, slots, clock = staff
    slots.enrol_missing(_station_key())
    with pytest.raises(SignInError, match="wrong"):
        slots.open_with_password("sup", OTHER)
    assert people.throttle.failures("sup") == 1  # as throttled as the sign-in screen
    clock.advance(1)
    with pytest.raises(SignInError, match="wrong"):
        slots.open_with_password("ghost", GOOD)
    for name in ("op", "adm"):
        with pytest.raises(StationLocked, match="only a supervisor or unit head"):
            slots.open_with_password(name, GOOD)


def test_a_person_added_while_locked_gets_a_slot_at_the_next_unlock(
    staff: tuple[People, KeySlots, FakeClock],
) -> None:
    people, slots, _ = staff
    key = _station_key()
    slots.enrol_missing(key)
    people.add("sup2", Role.SUPERVISOR, "night shift window 3", by="adm")
    with pytest.raises(StationLocked) as caught:
        slots.open_with_password("sup2", "night shift window 3")
    message = str(caught.value)
    assert "sup2 has no key slot yet" in message
    assert "head, sup" in message and "recovery code" in message
    # the next unlock (by someone with a slot) enrols them: their password is not needed for that
    assert slots.enrol_missing(slots.open_with_password("sup", GOOD)) == ["sup2"]
    assert slots.open_with_password("sup2", "night shift window 3").recipient == key.recipient


def test_admin_reset_drops_the_slot_and_a_self_change_keeps_it(staff: tuple[People, KeySlots, FakeClock]) -> None:
    people, slots, _ = staff
    key = _station_key()
    slots.enrol_missing(key)
    people.set_password("head", "my own new phrase 8", old_password=OTHER)
    assert slots.open_with_password("head", "my own new phrase 8").recipient == key.recipient
    people.set_password("sup", "reset by the admin 5", by="adm")
    assert slots.holders() == ["head"]
    with pytest.raises(StationLocked, match="no key slot yet"):
        slots.open_with_password("sup", "reset by the admin 5")
    assert slots.enrol_missing(key) == ["sup"]
    assert slots.open_with_password("sup", "reset by the admin 5").recipient == key.recipient


def test_disabling_drops_the_slot(staff: tuple[People, KeySlots, FakeClock]) -> None:
    people, slots, _ = staff
    key = _station_key()
    slots.enrol_missing(key)
    people.disable("sup")
    assert slots.holders() == ["head"]
    assert slots.enrol_missing(key) == []  # disabled people are not enrolled
    with pytest.raises(SignInError, match="disabled"):
        slots.open_with_password("sup", GOOD)
    people.enable("sup")
    assert slots.enrol_missing(key) == ["sup"]
    assert slots.open_with_password("sup", GOOD).recipient == key.recipient


def test_a_slot_made_for_an_older_key_is_re_made(staff: tuple[People, KeySlots, FakeClock]) -> None:
    people, slots, _ = staff
    key = _station_key()
    slots.enrol_missing(key)
    # people.db edited behind our back: the slot row points at another key pair than the person's now
    with people.database.write() as db:
        db.execute("UPDATE key_slots SET recipient='age1stale'")
    assert slots.enrol_missing(key) == ["sup", "head"]
    assert slots.open_with_password("sup", GOOD).recipient == key.recipient


def test_recovery_code(staff: tuple[People, KeySlots, FakeClock]) -> None:
    _, slots, _ = staff
    key = _station_key()
    with pytest.raises(StationLocked, match="no recovery code"):
        slots.open_with_recovery("AAAA-" * 7 + "AAAA")
    assert not slots.has_recovery()
    code = slots.set_recovery(key)
    assert slots.has_recovery()
    assert re.fullmatch(r"[A-Z2-7]{4}(-[A-Z2-7]{4}){7}", code)
    assert len(base64.b32decode(code.replace("-", ""))) == RECOVERY_BYTES == 20  # 160 bits
    assert slots.open_with_recovery(code).recipient == key.recipient
    typed = " ".join(code.lower().split("-"))  # spaces, lower case
    assert slots.open_with_recovery(typed).recipient == key.recipient
    assert slots.open_with_recovery(code.replace("-", "")).recipient == key.recipient
    wrong = ("B" if code[0] != "B" else "C") + code[1:]
    with pytest.raises(SignInError, match="recovery code is wrong"):
        slots.open_with_recovery(wrong)
    for garbage in ("", "hello", code + "AAAA", code.replace("A", "1").replace("B", "1") + "1"):
        with pytest.raises(SignInError, match="not a recovery code"):
            slots.open_with_recovery(garbage)
    new_code = slots.set_recovery(key)  # a new code replaces the old one
    assert new_code != code
    with pytest.raises(SignInError, match="wrong"):
        slots.open_with_recovery(code)
    assert slots.open_with_recovery(new_code).recipient == key.recipient
    assert canonical_recovery_code(new_code.lower()) == new_code.replace("-", "")


def test_real_cost_end_to_end(tmp_path: Path) -> None:
    """The station's real argon2id cost (64 MiB, t = 3) for hashing, key wrapping and the recovery slot."""
    people = People(tmp_path / "people.db", clock=FakeClock())
    slots = KeySlots(people)
    people.add("head", Role.UNIT_HEAD, GOOD, by="adm")
    key = _station_key()
    assert slots.enrol_missing(key) == ["head"]
    assert slots.open_with_password("head", GOOD).recipient == key.recipient
    code = slots.set_recovery(key)
    assert slots.open_with_recovery(code).recipient == key.recipient
    stored = people.database.read("SELECT password_hash, wrapped_private_key FROM people")[0]
    assert "$m=65536,t=3,p=1$" in stored["password_hash"]
    assert "$m=65536,t=3,p=1$" in stored["wrapped_private_key"]
    (recovery,) = people.database.read("SELECT wrapped FROM recovery_slot")
    assert "$m=65536,t=3,p=1$" in recovery["wrapped"]


def test_no_secret_or_password_in_people_db(staff: tuple[People, KeySlots, FakeClock], tmp_path: Path) -> None:
    people, slots, clock = staff
    key = _station_key()
    slots.enrol_missing(key)
    code = slots.set_recovery(key)
    private_keys = [str(people.unwrap_private_key(name, pw)) for name, pw in [("sup", GOOD), ("head", OTHER)]]
    clock.advance(1)
    people.set_password("sup", "changed phrase again 6", old_password=GOOD)
    people.set_password("head", "admin reset phrase 4", by="adm")
    slots.enrol_missing(key)
    secrets_in_memory = [
        GOOD,
        OTHER,
        "changed phrase again 6",
        "admin reset phrase 4",
        str(key.identity),
        str(key.identity).lower(),
        *private_keys,
        code,
        code.replace("-", ""),
    ]
    files = sorted(tmp_path.glob("people.db*"))
    assert {f.name for f in files} >= {"people.db", "people.db-wal"}
    data = b"".join(f.read_bytes() for f in files)
    for secret in secrets_in_memory:
        assert secret.encode() not in data, "a secret is readable in people.db"
    # and the station secret's base64/hex forms are not there either
    raw = str(key.identity).encode()
    assert base64.b64encode(raw) not in data and raw.hex().encode() not in data

"""People: the password policy, argon2id hashing, accounts in people.db, sign-in slow-down, sessions.

Real argon2id and real X25519 keys throughout (cheap argon2 parameters where speed matters; the tests of
the station's cost use the defaults), and a hand-moved clock instead of sleeping.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import argon2
import pytest

from scanstation.errors import ConfigError, SignInError, StateError, StationLocked
from scanstation.people.accounts import WRONG_NAME_OR_PASSWORD, People
from scanstation.people.key_wrap import Wrapped, WrongSecret, unwrap, wrap
from scanstation.people.passwords import (
    ASVS_MINIMUM,
    DEFAULT_PARAMS,
    Argon2Params,
    PasswordHashing,
    WeakPassword,
    check_policy,
    derive_key,
)
from scanstation.people.roles import Role
from scanstation.people.schema import MIGRATIONS
from scanstation.people.sessions import Sessions
from scanstation.people.throttle import delay_after
from tests.peoplekit import CHEAP, GOOD, OTHER, FakeClock, cheap_people

# ---------------------------------------------------------------------------------------------- policy


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("nine char", "too short"),
        ("x" * 9, "too short"),
        ("q" * 5 + "z" * 1020, "too long"),
        ("Sharma2024!!", "own name"),
        ("sharma-sharma", "own name"),
        ("rajesh.sharma1", "own name"),
        ("password1234", "commonly used"),
        ("Password!!2024", "commonly used"),
        ("1234567890", "commonly used"),
        ("qwertyuiop", "commonly used"),
        ("1q2w3e4r5t", "commonly used"),
        ("ababababab", "repeats"),
    ],
)
def test_policy_refuses_weak_passwords_without_echoing_them(password: str, why: str) -> None:
    with pytest.raises(WeakPassword, match=why) as caught:
        check_policy(password, name="rajesh.sharma")
    assert password not in str(caught.value)
    # a SignInError: the CLI maps it to the sign-in exit code; its class attributes are SignInError's
    assert isinstance(caught.value, SignInError)
    assert WeakPassword.exit_code == SignInError.exit_code == 23
    assert WeakPassword.summary == SignInError.summary


@pytest.mark.parametrize(
    "password",
    [
        "abcdefghij",  # exactly 10: no composition rules
        "correct horse battery staple",
        "सत्यमेव जयते 1950",  # Devanagari, spaces
        ("lantern monsoon ribbon kettle " * 40)[:1024],  # exactly 1024
        "my name is not here",
    ],
)
def test_policy_accepts_long_enough_uncommon_passwords(password: str) -> None:
    assert check_policy(password, name="rajesh.sharma") == password


def test_policy_normalises_to_nfc_never_nfkc() -> None:
    decomposed = "cafe\u0301 au lait 9"  # e + combining acute
    assert check_policy(decomposed) == "caf\u00e9 au lait 9"
    hashing = PasswordHashing(CHEAP)
    phc = hashing.hash("caf\u00e9 au lait 9")
    assert hashing.verify(phc, decomposed)  # typed either way: the same password
    ligature = hashing.hash("\ufb01nancial ledger 7")  # "ﬁ": NFKC would fold it to "fi"
    assert not hashing.verify(ligature, "financial ledger 7")
    assert hashing.verify(ligature, "\ufb01nancial ledger 7")


def test_length_is_counted_after_nfc() -> None:
    # 10 code points decomposed, 9 composed: NFC decides
    with pytest.raises(WeakPassword, match="9 characters"):
        check_policy("cafe\u0301 teas")


# ---------------------------------------------------------------------------------------------- hashing


def test_default_hash_is_argon2id_with_the_stations_cost() -> None:
    """The real defaults: argon2id, 64 MiB, t = 3, p = 1 (above the ASVS floor of 19 MiB, t = 2)."""
    hashing = PasswordHashing()
    phc = hashing.hash(GOOD)
    assert phc.startswith("$argon2id$v=19$")
    fields = dict(item.split("=") for item in phc.split("$")[3].split(","))
    assert int(fields["m"]) == DEFAULT_PARAMS.memory_kib == 65536
    assert int(fields["t"]) == DEFAULT_PARAMS.time_cost == 3
    assert int(fields["p"]) == 1
    assert int(fields["m"]) >= ASVS_MINIMUM.memory_kib and int(fields["t"]) >= ASVS_MINIMUM.time_cost
    params = argon2.extract_parameters(phc)
    assert params.type is argon2.Type.ID and params.memory_cost == 65536 and params.time_cost == 3
    assert DEFAULT_PARAMS.meets_minimum and not CHEAP.meets_minimum
    assert hashing.verify(phc, GOOD)
    assert not hashing.verify(phc, OTHER)
    assert not hashing.needs_rehash(phc)
    assert GOOD not in phc


def test_verify_and_rehash_of_foreign_or_damaged_hashes() -> None:
    cheap = PasswordHashing(CHEAP)
    phc = cheap.hash(GOOD)
    assert PasswordHashing().needs_rehash(phc)  # other parameters: redo at the next sign-in
    assert not cheap.verify("$argon2id$v=19$m=1024,t=1,p=1$garbage", GOOD)
    assert not cheap.verify("not a hash", GOOD)
    assert cheap.needs_rehash("not a hash")


def test_derive_key_is_salted_and_separate_from_the_hash() -> None:
    salt_a, salt_b = bytes(16), bytes([1] * 16)
    key = derive_key(GOOD, salt_a, CHEAP)
    assert len(key) == 32
    assert derive_key(GOOD, salt_a, CHEAP) == key
    assert derive_key(GOOD, salt_b, CHEAP) != key
    assert derive_key(OTHER, salt_a, CHEAP) != key
    assert derive_key("cafe\u0301 au lait 9", salt_a, CHEAP) == derive_key("caf\u00e9 au lait 9", salt_a, CHEAP)
    with pytest.raises(ValueError, match="salt"):
        derive_key(GOOD, b"short", CHEAP)


def test_key_wrap_round_trip_and_refusals() -> None:
    wrapped = wrap(b"secret bytes", GOOD, purpose=b"one", params=CHEAP)
    text = wrapped.to_text()
    assert text.startswith("argon2id-aes256gcm$v=1$m=1024,t=1,p=1$")
    assert unwrap(Wrapped.from_text(text), GOOD, purpose=b"one") == b"secret bytes"
    with pytest.raises(WrongSecret):
        unwrap(Wrapped.from_text(text), OTHER, purpose=b"one")
    with pytest.raises(WrongSecret):
        unwrap(Wrapped.from_text(text), GOOD, purpose=b"two")  # moved to another row
    with pytest.raises(ValueError, match="out-of-range"):
        Wrapped.from_text(text.replace("m=1024", "m=99999999"))  # a tampered row asks for 95 GiB
    with pytest.raises(ValueError):
        Wrapped.from_text("something else")


# ---------------------------------------------------------------------------------------------- accounts


def test_people_db_is_private_wal_and_migrated(tmp_path: Path) -> None:
    people = cheap_people(tmp_path / "data")
    people.add("anita", Role.OPERATOR, GOOD, by="admin")
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    for name in ("people.db", "people.db-wal", "people.db-shm"):
        assert stat.S_IMODE((tmp_path / "data" / name).stat().st_mode) == 0o600, name
    db = sqlite3.connect(tmp_path / "data" / "people.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    db.close()
    people.close()
    cheap_people(tmp_path / "data").close()  # reopened: no migration runs twice


def test_people_db_in_a_shared_directory_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o755)
    with pytest.raises(ConfigError, match="chmod 700"):
        cheap_people(shared)


def test_add_get_list_and_name_rules(tmp_path: Path) -> None:
    clock = FakeClock()
    people = cheap_people(tmp_path, clock)
    anita = people.add("Anita.K", Role.OPERATOR, GOOD, by="admin")
    assert (anita.name, anita.role, anita.disabled, anita.password_set_by) == ("Anita.K", Role.OPERATOR, False, "admin")
    assert anita.created_at == anita.password_changed_at == clock.now
    assert people.get("anita.k") == anita  # any case
    assert people.get("nobody") is None
    with pytest.raises(StateError, match="already exists"):
        people.add("ANITA.K", Role.SUPERVISOR, OTHER, by="admin")
    for bad in ("", "a" * 65, "has space", "ñandu", "semi;colon", "new\nline"):
        with pytest.raises(StateError, match="not a valid name"):
            people.add(bad, Role.OPERATOR, GOOD, by="admin")
    people.add("a" * 64, Role.ADMIN, GOOD, by="admin")
    with pytest.raises(WeakPassword, match="own name"):
        people.add("vikram", Role.SUPERVISOR, "Vikram@2024", by="admin")
    assert [p.name for p in people.list()] == ["a" * 64, "Anita.K"]
    with pytest.raises(StateError, match="no person named"):
        people.disable("nobody")


def test_only_supervisors_and_unit_heads_get_a_key_pair(tmp_path: Path) -> None:
    people = cheap_people(tmp_path)
    for name, role in [("op", Role.OPERATOR), ("adm", Role.ADMIN), ("sup", Role.SUPERVISOR), ("head", Role.UNIT_HEAD)]:
        people.add(name, role, GOOD, by="adm")
    assert people.public_key("op") is None and people.public_key("adm") is None
    for name in ("sup", "head"):
        identity = people.unwrap_private_key(name, GOOD)
        assert str(identity.to_public()) == str(people.public_key(name))
    assert sorted(p.name for p, _ in people.key_holders()) == ["head", "sup"]
    with pytest.raises(StationLocked, match="only a supervisor or unit head"):
        people.unwrap_private_key("op", GOOD)
    with pytest.raises(SignInError):
        people.unwrap_private_key("sup", OTHER)


def test_authenticate_same_message_for_unknown_and_wrong_and_dummy_work(tmp_path: Path) -> None:
    class CountingHashing(PasswordHashing):
        verifications = 0

        def verify(self, phc: str, password: str) -> bool:
            CountingHashing.verifications += 1
            return super().verify(phc, password)

    people = People(tmp_path / "people.db", clock=FakeClock(), hashing=CountingHashing(CHEAP), key_params=CHEAP)
    people.add("sup", Role.SUPERVISOR, GOOD, by="admin")
    assert people.authenticate("SUP", GOOD).name == "sup"
    messages = []
    for name, password in [("sup", OTHER), ("ghost", OTHER), ("bad name!", OTHER)]:
        before = CountingHashing.verifications
        with pytest.raises(SignInError) as caught:
            people.authenticate(name, password)
        assert CountingHashing.verifications == before + 1  # one argon2 verification either way
        messages.append(str(caught.value))
    assert set(messages) == {WRONG_NAME_OR_PASSWORD}
    # the dummy hash is a real one with the same cost, so its verification is a full argon2id run
    dummy = argon2.extract_parameters(people.hashing._dummy or "")
    assert (dummy.memory_cost, dummy.time_cost) == (CHEAP.memory_kib, CHEAP.time_cost)
    assert OTHER not in WRONG_NAME_OR_PASSWORD


def test_disabled_account_and_the_last_admin(tmp_path: Path) -> None:
    clock = FakeClock()
    people = cheap_people(tmp_path, clock)
    people.add("adm", Role.ADMIN, GOOD, by="init")
    people.add("op", Role.OPERATOR, GOOD, by="adm")
    assert people.disable("op").disabled
    with pytest.raises(SignInError, match="disabled"):
        people.authenticate("op", GOOD)
    with pytest.raises(SignInError, match="wrong"):  # without the password nobody learns it is disabled
        people.authenticate("op", OTHER)
    clock.advance(1)  # the wrong password's 1-second wait
    assert not people.enable("op").disabled
    assert people.authenticate("op", GOOD).name == "op"
    with pytest.raises(StateError, match="last enabled station admin"):
        people.disable("adm")


def test_password_change_by_the_person_rewraps_the_same_key(tmp_path: Path) -> None:
    clock = FakeClock()
    people = cheap_people(tmp_path, clock)
    people.add("sup", Role.SUPERVISOR, GOOD, by="adm")
    public = str(people.public_key("sup"))
    with pytest.raises(SignInError):
        people.set_password("sup", "a brand new phrase", old_password=OTHER)
    with pytest.raises(WeakPassword):
        people.set_password("sup", "short", old_password=GOOD)
    clock.advance(5)
    person = people.set_password("sup", "a brand new phrase", old_password=GOOD)
    assert person.password_set_by == "sup" and person.password_changed_at == clock.now
    assert str(people.public_key("sup")) == public  # same key pair: the key slot stays valid
    assert str(people.unwrap_private_key("sup", "a brand new phrase").to_public()) == public
    with pytest.raises(SignInError):
        people.authenticate("sup", GOOD)


def test_admin_reset_gives_a_new_key_pair(tmp_path: Path) -> None:
    people = cheap_people(tmp_path)
    people.add("sup", Role.SUPERVISOR, GOOD, by="adm")
    public = str(people.public_key("sup"))
    person = people.set_password("sup", "reset by the admin 1", by="adm")
    assert person.password_set_by == "adm"
    assert str(people.public_key("sup")) != public
    assert str(people.unwrap_private_key("sup", "reset by the admin 1").to_public()) == str(people.public_key("sup"))
    people.add("op", Role.OPERATOR, GOOD, by="adm")
    assert people.set_password("op", "reset by the admin 2").password_set_by == "(admin reset)"
    assert people.public_key("op") is None


def test_sign_in_rehashes_a_hash_made_with_other_parameters(tmp_path: Path) -> None:
    cheap_people(tmp_path).add("op", Role.OPERATOR, GOOD, by="adm")
    stronger = PasswordHashing(Argon2Params(memory_kib=2048, time_cost=2))
    people = People(tmp_path / "people.db", clock=FakeClock(), hashing=stronger, key_params=CHEAP)
    people.authenticate("op", GOOD)
    (phc,) = people.database.read_one("SELECT password_hash FROM people")  # type: ignore[misc]
    assert "m=2048,t=2" in phc and not stronger.needs_rehash(phc)
    assert people.authenticate("op", GOOD).name == "op"


# ---------------------------------------------------------------------------------------------- throttle


def test_delays_double_and_are_capped() -> None:
    assert [delay_after(n) for n in range(0, 12)] == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert delay_after(10_000) == 300


def test_throttle_sequence_with_a_fake_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    people = cheap_people(tmp_path, clock)
    people.add("sup", Role.SUPERVISOR, GOOD, by="adm")
    for n in range(1, 11):
        with pytest.raises(SignInError, match="wrong"):
            people.authenticate("sup", OTHER)
        assert people.throttle.failures("sup") == n
        wait = min(2 ** (n - 1), 300)
        # even the right password is refused during the wait, and the refusal does not count
        clock.advance(wait - 0.5)
        with pytest.raises(SignInError, match="too many failed sign-ins") as caught:
            people.authenticate("sup", GOOD)
        assert "wait 1 s" in str(caught.value)
        assert people.throttle.failures("sup") == n
        clock.advance(0.5)
    assert people.throttle.wait_seconds("sup") == 0
    # after the wait (5 minutes at most), the right password always works and clears the count
    assert people.authenticate("sup", GOOD).name == "sup"
    assert people.throttle.failures("sup") == 0
    with pytest.raises(SignInError, match="wrong"):
        people.authenticate("sup", OTHER)
    assert people.throttle.wait_seconds("sup") == 1


def test_throttle_is_persisted_per_name_and_covers_unknown_names(tmp_path: Path) -> None:
    clock = FakeClock()
    people = cheap_people(tmp_path, clock)
    people.add("sup", Role.SUPERVISOR, GOOD, by="adm")
    for _ in range(3):
        with pytest.raises(SignInError):
            people.authenticate("ghost", OTHER)
        clock.advance(300)
    with pytest.raises(SignInError):
        people.authenticate("ghost", OTHER)
    with pytest.raises(SignInError, match="too many"):  # an unknown name slows down like a real one
        people.authenticate("GHOST", OTHER)
    assert people.authenticate("sup", GOOD).name == "sup"  # other accounts are not affected
    people.close()
    reopened = cheap_people(tmp_path, clock)
    assert reopened.throttle.failures("ghost") == 4
    assert reopened.throttle.wait_seconds("ghost") == 8
    clock.now = clock.now.replace(year=2024)  # clock set back a year: the wait is still at most one delay
    assert reopened.throttle.wait_seconds("ghost") == 8


# ---------------------------------------------------------------------------------------------- sessions


@pytest.fixture
def signed_in(tmp_path: Path) -> tuple[People, Sessions, FakeClock]:
    clock = FakeClock()
    people = cheap_people(tmp_path, clock)
    people.add("sup", Role.SUPERVISOR, GOOD, by="adm")
    people.add("op", Role.OPERATOR, OTHER, by="adm")
    return people, Sessions(people, clock=clock), clock


def test_session_token_and_idle_time_out(signed_in: tuple[People, Sessions, FakeClock]) -> None:
    people, sessions, clock = signed_in
    session = sessions.start(people.authenticate("sup", GOOD))
    assert len(session.token) >= 43 and session.role is Role.SUPERVISOR
    assert session.token not in repr(session)
    assert sessions.start(people.authenticate("sup", GOOD)).token != session.token
    clock.advance(14 * 60)
    assert sessions.touch(session.token).last_seen == clock.now  # used: the idle clock restarts
    clock.advance(15 * 60)
    assert sessions.touch(session.token).name == "sup"  # exactly 15 minutes: still alive
    clock.advance(15 * 60 + 1)
    with pytest.raises(SignInError, match="15 minutes idle"):
        sessions.touch(session.token)
    with pytest.raises(SignInError, match="no such session"):
        sessions.touch(session.token)


def test_polling_does_not_keep_an_unattended_session_alive(signed_in: tuple[People, Sessions, FakeClock]) -> None:
    people, sessions, clock = signed_in
    session = sessions.start(people.authenticate("sup", GOOD))
    for _ in range(14):  # a screen refreshing every minute, nobody at the keyboard
        clock.advance(60)
        assert sessions.peek(session.token).name == "sup"
    clock.advance(60 + 1)
    with pytest.raises(SignInError, match="15 minutes idle"):
        sessions.peek(session.token)
    locked = sessions.start(people.authenticate("sup", GOOD))
    sessions.lock(locked.token)
    with pytest.raises(SignInError, match="locked"):
        sessions.peek(locked.token)


def test_session_absolute_limit(signed_in: tuple[People, Sessions, FakeClock]) -> None:
    people, sessions, clock = signed_in
    session = sessions.start(people.authenticate("op", OTHER))
    for _ in range(12 * 6):  # busy all day, every 10 minutes
        clock.advance(10 * 60)
        sessions.touch(session.token)
    clock.advance(1)
    with pytest.raises(SignInError, match="12 hours since sign-in"):
        sessions.touch(session.token)


def test_idle_limit_may_be_lowered_never_raised(signed_in: tuple[People, Sessions, FakeClock]) -> None:
    people, _, clock = signed_in
    short = Sessions(people, idle_seconds=5 * 60, clock=clock)
    session = short.start(people.authenticate("op", OTHER))
    clock.advance(5 * 60 + 1)
    with pytest.raises(SignInError, match="5 minutes idle"):
        short.touch(session.token)
    with pytest.raises(ConfigError, match="at most 15 minutes"):
        Sessions(people, idle_seconds=16 * 60)
    with pytest.raises(ConfigError, match="at most 12 hours"):
        Sessions(people, absolute_seconds=13 * 3600)


def test_locked_session_resumes_only_with_its_owners_password(signed_in: tuple[People, Sessions, FakeClock]) -> None:
    people, sessions, clock = signed_in
    session = sessions.start(people.authenticate("sup", GOOD))
    assert sessions.lock(session.token).locked
    with pytest.raises(SignInError, match="locked"):
        sessions.touch(session.token)
    with pytest.raises(SignInError, match="wrong"):
        sessions.resume(session.token, OTHER)  # the operator's own (correct) password
    assert people.throttle.failures("sup") == 1  # counted against the session's owner
    clock.advance(2)
    resumed = sessions.resume(session.token, GOOD)
    assert not resumed.locked and resumed.name == "sup" and resumed.last_seen == clock.now
    assert sessions.touch(session.token).name == "sup"
    # a locked session still ends when idle too long
    sessions.lock(session.token)
    clock.advance(15 * 60 + 1)
    with pytest.raises(SignInError, match="idle"):
        sessions.resume(session.token, GOOD)


def test_end_and_end_all(signed_in: tuple[People, Sessions, FakeClock]) -> None:
    people, sessions, _ = signed_in
    a = sessions.start(people.authenticate("sup", GOOD))
    b = sessions.start(people.authenticate("sup", GOOD))
    c = sessions.start(people.authenticate("op", OTHER))
    sessions.end(a.token)
    sessions.end(a.token)  # twice: nothing happens
    with pytest.raises(SignInError):
        sessions.touch(a.token)
    assert sessions.end_all("SUP") == 1
    with pytest.raises(SignInError):
        sessions.touch(b.token)
    assert sessions.touch(c.token).name == "op"

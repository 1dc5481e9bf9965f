"""What the people and key-slot tests share: a clock to move by hand, cheap argon2id parameters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from scanstation.people.accounts import People
from scanstation.people.passwords import Argon2Params, PasswordHashing

# Real argon2id, but cheap: the tests that need the station's real cost say so and use the defaults.
CHEAP = Argon2Params(memory_kib=1024, time_cost=1, parallelism=1)

GOOD = "tulsi marg lantern 47"  # passes the policy
OTHER = "kettle monsoon ribbon 9"


class FakeClock:
    """A clock that only moves when told, so throttle and session tests never sleep."""

    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def cheap_people(directory: Path, clock: FakeClock | None = None) -> People:
    return People(
        directory / "people.db",
        clock=clock or FakeClock(),
        hashing=PasswordHashing(CHEAP),
        key_params=CHEAP,
    )

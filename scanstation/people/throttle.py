"""Sign-in slow-down per account: after failures the next try must wait, never a permanent lock-out.

After n consecutive failures for a name, the next attempt is refused until 2^(n-1) seconds after the
last failure (1 s, 2 s, 4 s … capped at 5 minutes).  A correct password after the wait always works
and clears the count: an operator hammering the supervisor's name can slow the supervisor down, never
lock them out for good.  Refused attempts (during a wait) do not count, so they cannot push the wait
further out.  Counts are kept in people.db, so restarting the service does not reset them, and keyed
by the casefolded name typed, known or not, so the throttle does not tell which names exist.
"""

from __future__ import annotations

import math

from scanstation.errors import SignInError
from scanstation.people.database import PeopleDatabase, from_text, to_text

CAP_SECONDS = 300.0
_MAX_EXPONENT = 16  # 2**16 s is far past the cap; keeps the arithmetic small for any stored count


def delay_after(failures: int, cap_seconds: float = CAP_SECONDS) -> float:
    """The wait after ``failures`` consecutive failures (0 for none)."""
    if failures <= 0:
        return 0.0
    return min(float(2 ** min(failures - 1, _MAX_EXPONENT)), cap_seconds)


class Throttle:
    """Failure counts and the waits they impose; time comes from the database's injectable clock."""

    def __init__(self, db: PeopleDatabase, *, cap_seconds: float = CAP_SECONDS) -> None:
        self._db = db
        self.cap_seconds = cap_seconds

    def failures(self, name_key: str) -> int:
        row = self._db.read_one("SELECT failures FROM sign_in_failures WHERE name_key=?", (name_key,))
        return int(row["failures"]) if row else 0

    def wait_seconds(self, name_key: str) -> float:
        """Seconds until the next attempt for this name is allowed (0: now)."""
        row = self._db.read_one("SELECT failures, last_failure FROM sign_in_failures WHERE name_key=?", (name_key,))
        if row is None:
            return 0.0
        delay = delay_after(int(row["failures"]), self.cap_seconds)
        elapsed = (self._db.now() - from_text(row["last_failure"])).total_seconds()
        # A clock set back must not stretch the wait beyond one delay.
        return max(0.0, min(delay - elapsed, delay))

    def check(self, name_key: str, shown_name: str) -> None:
        """Raise SignInError when this name must still wait; the message says how long."""
        wait = self.wait_seconds(name_key)
        if wait > 0:
            seconds = math.ceil(wait)
            raise SignInError(
                f"too many failed sign-ins for {shown_name!r}: wait {seconds} s, then try again "
                "(the wait grows with each failure, at most 5 minutes)"
            )

    def record_failure(self, name_key: str) -> int:
        """Count one more failure now; returns the new count."""
        now = to_text(self._db.now())
        with self._db.write() as db:
            db.execute(
                "INSERT INTO sign_in_failures (name_key, failures, last_failure) VALUES (?, 1, ?) "
                "ON CONFLICT(name_key) DO UPDATE SET failures = failures + 1, last_failure = excluded.last_failure",
                (name_key, now),
            )
            row = db.execute("SELECT failures FROM sign_in_failures WHERE name_key=?", (name_key,)).fetchone()
        return int(row[0])

    def reset(self, name_key: str) -> None:
        """A correct password: the slate is clean."""
        with self._db.write() as db:
            db.execute("DELETE FROM sign_in_failures WHERE name_key=?", (name_key,))

"""Sign-in sessions of the station service, in memory only.

A session ends after at most 15 minutes without use (the issue's ceiling: a station's configuration may
lower it, never raise it) and 12 hours after sign-in whether busy or not, so a kiosk left signed in
does not stay usable by whoever walks up.  A locked session (the kiosk's lock screen) resumes only with
the same person's password: another person's password is a wrong password for the session's owner (and
counts as a failed sign-in for them).  Sessions live in the service's memory: a restart signs everyone
out, which is what a restart should do.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from scanstation.errors import ConfigError, SignInError
from scanstation.people.accounts import People, Person, name_key
from scanstation.people.database import Clock, utc_now
from scanstation.people.roles import Role

MAX_IDLE_SECONDS = 15 * 60.0
MAX_ABSOLUTE_SECONDS = 12 * 3600.0


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    name: str
    role: Role
    started: datetime
    last_seen: datetime
    locked: bool = False

    def __repr__(self) -> str:  # the token is a bearer secret: keep it out of logs and tracebacks
        return f"Session(name={self.name!r}, role={self.role.value!r}, locked={self.locked})"


class Sessions:
    """The open sessions, keyed by their token (``secrets.token_urlsafe(32)``: 256 random bits)."""

    def __init__(
        self,
        people: People,
        *,
        idle_seconds: float = MAX_IDLE_SECONDS,
        absolute_seconds: float = MAX_ABSOLUTE_SECONDS,
        clock: Clock = utc_now,
    ) -> None:
        """``idle_seconds`` may lower the 15-minute idle limit, never raise it (ConfigError); likewise 12 h."""
        if not 0 < idle_seconds <= MAX_IDLE_SECONDS:
            raise ConfigError(
                f"session idle time-out {idle_seconds:g} s: it must be above 0 and at most 15 minutes (900 s)"
            )
        if not 0 < absolute_seconds <= MAX_ABSOLUTE_SECONDS:
            raise ConfigError(
                f"session absolute limit {absolute_seconds:g} s: it must be above 0 and at most 12 hours (43200 s)"
            )
        self._people = people
        self.idle = timedelta(seconds=idle_seconds)
        self.absolute = timedelta(seconds=absolute_seconds)
        self._clock = clock
        self._lock = threading.Lock()
        self._open: dict[str, Session] = {}

    def start(self, person: Person) -> Session:
        """A new session for someone just signed in (People.authenticate)."""
        now = self._clock()
        session = Session(secrets.token_urlsafe(32), person.name, person.role, now, now)
        with self._lock:
            self._open[session.token] = session
        return session

    def _live(self, token: str, now: datetime) -> Session:
        """The session if it has not ended; an ended one is removed.  Caller holds the lock."""
        session = self._open.get(token)
        if session is None:
            raise SignInError("no such session: it ended or was never started; sign in again")
        if now - session.started > self.absolute:
            del self._open[token]
            hours = self.absolute.total_seconds() / 3600
            raise SignInError(f"{session.name}'s session ended: {hours:g} hours since sign-in; sign in again")
        if now - session.last_seen > self.idle:
            del self._open[token]
            minutes = self.idle.total_seconds() / 60
            raise SignInError(f"{session.name}'s session ended after {minutes:g} minutes idle; sign in again")
        return session

    def touch(self, token: str) -> Session:
        """Mark the session used now; SignInError if it ended (idle, absolute) or is locked."""
        now = self._clock()
        with self._lock:
            session = self._live(token, now)
            if session.locked:
                raise SignInError(f"{session.name}'s session is locked: {session.name}'s password resumes it")
            session = replace(session, last_seen=now)
            self._open[token] = session
        return session

    def peek(self, token: str) -> Session:
        """The live, unlocked session without marking it used: a screen polling for updates (the batch
        list refreshing) must not keep an unattended session alive past its idle limit."""
        with self._lock:
            session = self._live(token, self._clock())
        if session.locked:
            raise SignInError(f"{session.name}'s session is locked: {session.name}'s password resumes it")
        return session

    def lock(self, token: str) -> Session:
        """Lock the session (lock screen); it does not end it.  Idle time keeps running."""
        with self._lock:
            session = replace(self._live(token, self._clock()), locked=True)
            self._open[token] = session
        return session

    def resume(self, token: str, password: str) -> Session:
        """Unlock a locked session with its owner's password (checked as a sign-in: throttled, counted)."""
        with self._lock:
            session = self._live(token, self._clock())
        self._people.authenticate(session.name, password)  # outside the lock: argon2 takes a while
        now = self._clock()
        with self._lock:
            session = replace(self._live(token, now), locked=False, last_seen=now)
            self._open[token] = session
        return session

    def end(self, token: str) -> None:
        """Sign out (nothing happens for an unknown or already ended token)."""
        with self._lock:
            self._open.pop(token, None)

    def end_all(self, name: str) -> int:
        """End every session of a person (disabled, password reset); returns how many ended."""
        key = name_key(name)
        with self._lock:
            tokens = [t for t, s in self._open.items() if name_key(s.name) == key]
            for token in tokens:
                del self._open[token]
        return len(tokens)

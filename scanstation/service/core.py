"""The station service: the one place that holds the keys, signs people in and decides what they may do.

:class:`StationService` is the same object whether it runs in ``scanstation serve`` (clients reach it
over the Unix socket, :mod:`scanstation.service.server`) or inside a CLI process when no service runs
(tests, a developer shell): the same sign-in, permission checks and audit either way.

Locked, it has the accounts (people.db) and the audit trail (audit.db) open and nothing else: it can
sign people in, record failures, and verify the audit trail with the station's *public* key.
Unlocked (a supervisor's or unit head's password opened their key slot, or the recovery code), it also
holds the station key, the open store and vault (:class:`~scanstation.facade.Station`), and signs
audit checkpoints.  ``lock`` and ``close`` drop all of that.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyrage import x25519

from scanstation.audit.trail import AuditTrail
from scanstation.config import Config
from scanstation.errors import PermissionDenied, ScanStationError, SignInError, StateError, StationLocked
from scanstation.people.accounts import People, Person
from scanstation.people.permissions import BatchFacts, check
from scanstation.people.roles import Action, Role
from scanstation.people.sessions import Session, Sessions
from scanstation.service.audit_witness import AuditWitness
from scanstation.service.public_info import StationPublic
from scanstation.vault.identity import StationKey
from scanstation.vault.key_slots import KeySlots

log = logging.getLogger(__name__)

EventSink = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class Caller:
    """A signed-in person as the service sees them on one call."""

    token: str
    name: str
    role: Role


class StationService:
    def __init__(self, config: Config, *, events: EventSink | None = None,
                 station_options: dict[str, Any] | None = None) -> None:
        self.config = config
        self.events: EventSink = events or (lambda kind, data: None)
        self._station_options = station_options or {}
        data_dir = config.data_dir
        if not data_dir.is_dir():
            raise StateError(f"{data_dir}: no station here yet (run 'scanstation init')")
        os.chmod(data_dir, 0o700)
        self.public = StationPublic.load(data_dir)
        self.people = People(data_dir / "people.db")
        self.slots = KeySlots(self.people)
        self.sessions = Sessions(self.people, idle_seconds=config.service.idle_minutes * 60,
                                 absolute_seconds=config.service.absolute_hours * 3600)
        self.audit = AuditTrail(data_dir / "audit.db", station_id=config.station.id, role_of=self._role_of,
                                batch_recipient=self._batch_recipient,
                                station_recipient=self.public.age_recipient())
        self.witness = AuditWitness(self.people.database)
        self.audit.add_checkpoint_listener(self.witness.keep)
        self.audit_config()
        self._lock = threading.RLock()
        self._key: StationKey | None = None
        self._station: Any = None  # scanstation.facade.Station while unlocked
        self._unlocked_by: str | None = None
        # Run before the station closes at a lock (capture jobs stop their scans): nothing may still be
        # using the store or the vault when they close.
        self.before_lock: list[Callable[[], None]] = []
        # The device guard (scanstation/guard/) that `scanstation serve` starts: `status` reports it and an
        # unlock clears its trip.  None in-process, where no monitor runs (status says so).
        self.guard: Any = None
        self.started_at = datetime.now(UTC).isoformat(timespec="seconds")

    # ------------------------------------------------------------------ helpers the trail calls back
    def _role_of(self, name: str) -> str:
        person = self.people.get(name)
        return person.role.value if person else "station" if name == "station" else ""

    def _batch_recipient(self, batch_id: int) -> x25519.Recipient | None:
        station = self._station
        return station.batch_recipient(batch_id) if station is not None else None

    # ------------------------------------------------------------------ sign-in and sessions
    def sign_in(self, name: str, password: str) -> Caller:
        try:
            person = self.people.authenticate(name, password)
        except SignInError as e:
            self.audit.append(name, "signin.failed", f"person:{name}", {"reason": e.message})
            raise
        session = self.sessions.start(person)
        self.audit.append(person.name, "signin", f"person:{person.name}", {"role": person.role.value})
        return Caller(session.token, person.name, person.role)

    def caller(self, token: str, *, passive: bool = False) -> Caller:
        """The live session behind ``token`` (SignInError when it timed out or was locked).

        ``passive``: a poll (status, the batch list refreshing) that does not count as use.
        """
        session: Session = self.sessions.peek(token) if passive else self.sessions.touch(token)
        return Caller(session.token, session.name, Role(session.role))

    def sign_out(self, token: str) -> None:
        caller = self.caller(token)
        self.sessions.end(token)
        self.audit.append(caller.name, "signout", f"person:{caller.name}", {})

    def lock_session(self, token: str) -> None:
        caller = self.caller(token)
        self.sessions.lock(token)
        self.audit.append(caller.name, "session.locked", f"person:{caller.name}", {})

    def resume_session(self, token: str, password: str) -> Caller:
        try:
            session = self.sessions.resume(token, password)
        except SignInError as e:
            self.audit.append("?", "session.resume_failed", "session", {"reason": e.message})
            raise
        self.audit.append(session.name, "session.resumed", f"person:{session.name}", {})
        return Caller(session.token, session.name, Role(session.role))

    # ------------------------------------------------------------------ permissions
    def authorize(self, caller: Caller, action: Action, facts: BatchFacts | None = None) -> None:
        """The one gate every call passes: refused calls are audited and raise PermissionDenied."""
        try:
            check(caller.name, caller.role, action, facts)
        except PermissionDenied as e:
            self.audit.append(caller.name, "permission.denied", action.value, {"reason": e.message})
            raise

    # ------------------------------------------------------------------ the day: unlock and lock
    @property
    def unlocked(self) -> bool:
        return self._key is not None

    def unlock(self, caller: Caller, password: str) -> list[str]:
        """Open the caller's key slot with their password; returns the people given a slot just now."""
        self.authorize(caller, Action.UNLOCK)
        with self._lock:
            if self._key is not None:
                return []
            try:
                key = self.slots.open_with_password(caller.name, password)
            except Exception as e:
                self.audit.append(caller.name, "unlock.failed", "station", {"reason": str(e)})
                raise
            return self._open(key, caller.name, "unlock")

    def unlock_with_recovery(self, caller: Caller, code: str) -> list[str]:
        """The unit head's recovery path (the code shown once at init); always audited."""
        if caller.role is not Role.UNIT_HEAD:
            self.audit.append(caller.name, "permission.denied", "unlock-recovery",
                              {"reason": "only a unit head may use the recovery code"})
            raise PermissionDenied(f"{caller.name} ({caller.role.value}) may not unlock with the recovery code: "
                                   "only a unit head may")
        with self._lock:
            try:
                key = self.slots.open_with_recovery(code)
            except Exception as e:
                self.audit.append(caller.name, "unlock.recovery_failed", "station", {"reason": str(e)})
                raise
            if self._key is not None:
                return self.slots.enrol_missing(self._key)
            return self._open(key, caller.name, "unlock.recovery")

    def _open(self, key: StationKey, who: str, how: str) -> list[str]:
        from scanstation.facade import Station

        self.public.check_matches(key)
        self._station = Station(self.config, key, audit=self.audit, events=self.events, **self._station_options)
        self._key = key
        self._unlocked_by = who
        self.audit.attach_signer(key.signing_key, known_checkpoint=self.witness.latest())
        enrolled = self.slots.enrol_missing(key)
        self.audit.append(who, how, "station", {"enrolled": enrolled})
        if self.guard is not None:
            self.guard.unlocked(who)  # a supervisor's or unit head's unlock clears a tripped device guard
        return enrolled

    def lock(self, caller: Caller | None) -> None:
        """End of day: close the store and vault and drop every key from memory."""
        if caller is not None:
            self.authorize(caller, Action.LOCK)
        with self._lock:
            if self._key is None:
                return
            for hook in list(self.before_lock):
                try:
                    hook()
                except Exception:  # the keys must go all the same
                    log.exception("before-lock hook failed")
            try:
                self.audit.append(caller.name if caller else "station", "lock", "station", {})
                try:
                    self.audit.checkpoint()  # the day's last entries signed before the key goes
                except ScanStationError as e:  # a trail the service refuses to sign must not keep the keys
                    log.error("audit checkpoint at lock refused: %s", e)
            finally:
                # The keys go even when the entry cannot be written (a full disk, a broken audit.db): a lock
                # that fails on its audit entry would leave the station unlocked; the error still reaches
                # the caller once the keys are gone.
                self.audit.attach_signer(None)
                station, self._station, self._key, self._unlocked_by = self._station, None, None, None
                station.close()

    def close(self) -> None:
        self.lock(None)
        self.audit.close()
        self.people.close()

    def __enter__(self) -> StationService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the station, for permitted callers
    def station(self, caller: Caller, action: Action, facts: BatchFacts | None = None) -> Any:
        """The open station for one permitted action; StationLocked when nobody unlocked it."""
        self.authorize(caller, action, facts)
        station = self._station
        if station is None:
            raise StationLocked("the station is locked: a supervisor or the unit head must unlock it "
                                "(scanstation unlock, or sign in at the kiosk)")
        return station

    @contextmanager
    def read_only_store(self, caller: Caller, password: str | None, action: Action) -> Iterator[Any]:
        """The store for a read-only view (status, the upload queue), without taking the data directory.

        The open station's store when unlocked; in-process, a supervisor's or unit head's own slot opens
        the store alone (no station lock: a view beside a running upload or scan in another process).
        """
        from scanstation.facade import open_store

        self.authorize(caller, action)
        if self._station is not None:
            yield self._station.store
            return
        if password is None or not caller.role.may_unlock:
            raise StationLocked("the station is locked: a supervisor or the unit head must unlock it "
                                "(scanstation unlock, or sign in at the kiosk)")
        key = self.slots.open_with_password(caller.name, password)
        self.public.check_matches(key)
        self.audit.append(caller.name, "unlock.read_only", "station", {"action": action.value})
        store = open_store(self.config, key, audit=self.audit)
        try:
            yield store
        finally:
            store.close()
            del key

    @contextmanager
    def unlocked_for(self, caller: Caller, password: str | None) -> Iterator[None]:
        """In-process use (no service running): unlock with the caller's own slot for one command.

        Only a person with a key slot can do this; anyone else needs the service, unlocked by one.
        """
        opened = False
        if self._key is None and password is not None and caller.role.may_unlock:
            self.unlock(caller, password)
            opened = True
        try:
            yield
        finally:
            if opened:
                self.lock(caller)

    # ------------------------------------------------------------------ pages, for the people who may see them
    def batch_facts(self, batch_name: str, page_id: int | None = None) -> BatchFacts:
        """What the four-eyes and own-batch rules need to know about a batch (from the open store)."""
        station = self._station
        if station is None:
            raise StationLocked("the station is locked: a supervisor or the unit head must unlock it")
        batch = station.store.batch(batch_name)
        if batch is None:
            raise StateError(f"no batch called '{batch_name}'")
        capturers = station.store.captured_by(batch.id)
        approved_by = station.store.batch_marks(batch.id).get("approved_by") or None
        return BatchFacts(batch=batch.name, state=batch.state,
                          captured_by=frozenset(n for n in capturers.values() if n), opened_by=batch.operator,
                          page_captured_by=capturers.get(page_id) if page_id else None,
                          verified_by=frozenset(station.store.verified_by(batch.id)), approved_by=approved_by)

    def page_image(self, caller: Caller, batch_name: str, seq: int) -> bytes:
        """One page's image (the cleaned one once it exists) as PNG bytes, for display: never a file.

        Turned by the page's quarter turn (losslessly, :mod:`scanstation.verify.images`), and recorded as
        served to the caller: approval needs every page served to the approving supervisor.
        """
        from scanstation.verify.images import rotated_png

        station = self._station
        if station is None:
            raise StationLocked("the station is locked: a supervisor or the unit head must unlock it")
        batch = station.store.batch(batch_name)
        if batch is None:
            raise StateError(f"no page {seq} in batch '{batch_name}'")
        page = station.store.page_by_seq(batch.id, seq)
        station = self.station(caller, Action.VIEW_PAGE, self.batch_facts(batch_name, page.id))
        if page.image_object and page.image_sha256:
            data: bytes = station.vault.get(page.image_object, page.image_sha256)
        else:
            data = station.vault.get(page.raw_object, page.raw_sha256)
        data = rotated_png(data, page.rotation)
        station.store.record_page_view(page.id, caller.name, "screen")
        station.store.audit(caller.name, "page.view", f"page:{page.id}", {"seq": seq, "rotation": page.rotation},
                            batch_id=batch.id)
        return data

    # ------------------------------------------------------------------ accounts (the station admin)
    def add_person(self, caller: Caller, name: str, role: Role, password: str) -> Person:
        self.authorize(caller, Action.MANAGE_USERS)
        person = self.people.add(name, role, password, by=caller.name)
        enrolled = self.slots.enrol_missing(self._key) if self._key is not None and role.may_unlock else []
        self.audit.append(caller.name, "user.add", f"person:{person.name}",
                          {"role": role.value, "key_slot": bool(enrolled)})
        return person

    def list_people(self, caller: Caller) -> list[Person]:
        self.authorize(caller, Action.MANAGE_USERS)
        return self.people.list()

    def disable_person(self, caller: Caller, name: str) -> None:
        self.authorize(caller, Action.MANAGE_USERS)
        if name == caller.name:
            raise StateError(f"{caller.name}: you cannot disable your own account")
        self.people.disable(name)
        self.sessions.end_all(name)
        self.audit.append(caller.name, "user.disable", f"person:{name}", {})

    def enable_person(self, caller: Caller, name: str) -> None:
        self.authorize(caller, Action.MANAGE_USERS)
        self.people.enable(name)
        self.audit.append(caller.name, "user.enable", f"person:{name}", {})

    def change_password(self, caller: Caller, name: str, new_password: str, old_password: str | None) -> None:
        """Anyone changes their own password (with the old one); the admin resets other people's."""
        if name == caller.name and old_password is not None:
            self.people.set_password(name, new_password, old_password=old_password)
            self.audit.append(caller.name, "user.password", f"person:{name}", {"by": "self"})
            return
        self.authorize(caller, Action.MANAGE_USERS)
        if self.people.get(name) is None:
            raise StateError(f"no person called '{name}'")
        self.people.set_password(name, new_password, by=caller.name)
        self.sessions.end_all(name)
        self.audit.append(caller.name, "user.password", f"person:{name}", {"by": "admin reset"})

    # ------------------------------------------------------------------ audit trail
    def audit_entries(self, caller: Caller, batch: str | None = None) -> list[dict[str, Any]]:
        """The trail (or one batch's entries: its own and those about it), as dicts.

        Personal fields are opened (``"personal"``) only for readers whose role may see them and only
        while the station is unlocked (they are sealed to batch keys); others see that they are sealed.
        """
        from scanstation.people.permissions import sees_personal_fields

        self.authorize(caller, Action.READ_AUDIT)
        station = self._station
        if batch is None:
            entries = self.audit.entries()
        else:
            found = station.store.batch(batch) if station is not None else None
            by_id = self.audit.entries(batch_id=found.id) if found is not None else []
            seen = {e.seq for e in by_id}
            entries = sorted(by_id + [e for e in self.audit.entries(subject=batch) if e.seq not in seen],
                             key=lambda e: e.seq)
        identities: list[Any] = []
        if station is not None and sees_personal_fields(caller.role):
            identities = [*station.batch_keys.identities(), self._key.identity] if self._key else []
        rows = []
        for e in entries:
            row = {"seq": e.seq, "ts": e.ts, "actor": e.actor, "role": e.role, "action": e.action,
                   "subject": e.subject, "detail": e.detail, "sealed": e.sealed is not None, "batch_id": e.batch_id}
            if identities and e.sealed is not None:
                row["personal"] = AuditTrail.open_personal(e, identities)
            rows.append(row)
        self.audit.append(caller.name, "audit.read", batch or "all", {"entries": len(rows)})
        return rows

    def audit_config(self) -> None:
        """Record the configuration the service runs with: a changed file between starts is an audited event."""
        import hashlib

        source = Path(self.config.source)
        text = source.read_bytes() if source.is_file() else b""
        digest = hashlib.sha256(text).hexdigest()
        last = next((e for e in reversed(self.audit.entries(subject="configuration"))), None)
        previous = last.detail.get("sha256") if last is not None else None
        if previous != digest:
            self.audit.append("station", "config.changed" if previous else "config.first", "configuration",
                              {"file": str(source) if source.is_file() else "<embedded defaults>",
                               "sha256": digest, "previous": previous})

    def audit_verify(self, caller: Caller) -> Any:
        self.authorize(caller, Action.READ_AUDIT)
        try:
            report = self.audit.verify(self.public.verify_key(), known_checkpoint=self.witness.latest())
        except Exception as e:
            self.audit.append(caller.name, "audit.verify", "audit", {"result": str(e)[:300]})
            raise
        self.audit.append(caller.name, "audit.verify", "audit", {"result": "intact"})
        return report

    # ------------------------------------------------------------------ the kiosk: batch list, lock screen
    def batch_overview(self, caller: Caller) -> list[dict[str, Any]]:
        """One row per batch for the kiosk's home screen: name, state, page counts, flagged pages and the upload
        state.  No personal data (no employee, period, operator or file name), no page content.  The counts are
        of live pages (:attr:`Page.live`: not deleted in verification, not replaced by a rescan); ``deleted``
        counts the pages deleted in verification."""
        store = self.station(caller, Action.STATUS).store
        rows: list[dict[str, Any]] = []
        for b in store.batches():
            pages = store.pages(b.id)
            live = [p for p in pages if p.live]
            up = store.upload(b.id)
            rows.append({
                "name": b.name, "state": b.state.value, "pages": len(live),
                "processed": sum(1 for p in live if p.state == "processed"),
                "ocr_done": sum(1 for p in live if p.ocr_state == "done"),
                "ocr_pending": sum(1 for p in live if p.ocr_state == "pending"),
                "flagged": sum(1 for p in live if p.flags),
                "deleted": sum(1 for p in pages if p.deleted_reason),
                "upload": None if up is None else {
                    k: up[k] for k in ("state", "size", "confirmed_offset", "last_error", "receipt_id")},
            })
        return rows

    def end_locked_session(self, caller: Caller, token: str) -> None:
        """The lock screen's "someone else": the newly signed-in ``caller`` ends the (locked) session left on
        the kiosk, without its owner's password.  Ending a session reveals and grants nothing; audited."""
        if token == caller.token:
            raise StateError("that is your own session: use sign out")
        self.sessions.end(token)
        self.audit.append(caller.name, "session.ended_at_lock_screen", "session", {})

    # ------------------------------------------------------------------ status (no personal data)
    def status(self, caller: Caller, *, detail: bool = False) -> dict[str, Any]:
        """Who is signed in, whether the station is unlocked, the device guard's state; with ``detail`` (the
        admin's ``scanstation status``, ``scanstation health``) also the service's process, the data
        directory's disk and, while unlocked, the queue and the last upload (docs/station-service.md)."""
        self.authorize(caller, Action.STATUS)
        out: dict[str, Any] = {
            "station": self.config.station.id,
            "unit": self.config.station.unit,
            "locked": self._key is None,
            "unlocked_by": self._unlocked_by,
            "signed_in": caller.name,
            "role": caller.role.value,
            "guard": self._guard_state(),
        }
        if detail:
            out.update(self._operations_detail())
        return out

    def health(self) -> dict[str, Any]:
        """``status`` with ``detail`` but without a session: the server offers it only to root and the service's
        own user (SYSTEM_OPERATIONS).  Nothing personal: counts, batch names, the disk, the guard."""
        return {"station": self.config.station.id, "unit": self.config.station.unit, "locked": self._key is None,
                "unlocked_by": self._unlocked_by, "signed_in": None, "role": None, "guard": self._guard_state(),
                **self._operations_detail()}

    def _guard_state(self) -> dict[str, Any]:
        from scanstation.guard import NOT_RUNNING, off_state

        return self.guard.state() if self.guard is not None else off_state(NOT_RUNNING)

    def _operations_detail(self) -> dict[str, Any]:
        from scanstation.service.health import disk_usage, queue_summary

        station = self._station
        return {"service": {"pid": os.getpid(), "started": self.started_at},
                "disk": disk_usage(self.config.data_dir),
                "queue": queue_summary(station.store) if station is not None else None}

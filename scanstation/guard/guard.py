"""The device guard: a udev monitor thread in ``scanstation serve`` that locks the station when storage or a
new network appears.

It listens to udev's netlink source (the events systemd-udevd sends after its rules ran, with their
properties) for the subsystems usb, block and net, decides with :func:`~scanstation.guard.classify.verdict`
and, when a device must not be here:

1. appends ``device_guard_tripped`` to the audit trail (subject ``device-guard``: the device's subsystem,
   devpath, vendor:product, interface classes, product and manufacturer strings, a hash of its serial;
   nothing personal), before the lock, so the lock's checkpoint signs it;
2. locks the station by the same path as the ``lock`` operation (:meth:`StationService.lock`: capture
   stopped, keys dropped, store and vault closed) and ends every session, so the kiosk's next call finds
   itself signed out and the person who signs in next sees the station locked and why;
3. logs CRITICAL (priority 2 in the journal: :mod:`scanstation.guard.alerts`);
4. keeps the trip for ``status`` (:meth:`DeviceGuard.state`): tripped since when, by which devices, and
   whether each is still connected.

One physical device is reported once per trip (a stick's USB device, interface, disk and partitions are
one report).  The trip is cleared only by the next unlock, which only a supervisor or the unit head can
do: the unlock is audited as ``device_guard_cleared`` with who cleared it and which of the devices were
still connected.  A restart does not clear it: the guard reads its last entries back from the audit trail.

When the guard cannot run (``[lockdown] device_guard = false``, no pyudev or libudev, no netlink socket,
no systemd-udevd) the service still starts, and ``status`` says the guard is off and why; that is logged
as an error and audited as ``device_guard_off``: never silently.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from scanstation.audit.sink import AuditSink
from scanstation.guard.alerts import journal_logger
from scanstation.guard.classify import SYS, DeviceFacts, facts_of, net_key, usb_device_path, verdict

log = journal_logger(__name__)

SUBJECT = "device-guard"  # the audit subject of every entry of the guard (the trail indexes subjects)
TRIPPED, CLEARED, OFF = "device_guard_tripped", "device_guard_cleared", "device_guard_off"
WATCHED = ("usb", "block", "net")
KEEP_DEVICES = 20  # devices kept for status per trip (every one is in the audit trail)
NOT_RUNNING = "no station service runs: the device guard runs inside 'scanstation serve'"


class Guarded(Protocol):
    """What the guard needs of the station service (:class:`scanstation.service.core.StationService`)."""

    audit: Any  # AuditSink with entries(subject=...)
    sessions: Any
    people: Any

    @property
    def unlocked(self) -> bool: ...

    def lock(self, caller: None) -> None: ...


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def off_state(reason: str) -> dict[str, Any]:
    """The ``guard`` field of ``status`` when no guard watches (see :meth:`DeviceGuard.state`)."""
    return {"state": "off", "reason": reason, "since": None, "tripped_by": []}


def udev_events_available() -> str | None:
    """None when udev's events can reach this process, else why not.

    libudev itself refuses to subscribe to udev's multicast group when systemd-udevd is not running
    (no /run/udev/control: a container, a chroot); the monitor would then open and stay silent.  Under
    umockdev's preload library (the tests) the testbed delivers the events itself.
    """
    if Path("/run/udev/control").exists():
        return None
    if os.environ.get("UMOCKDEV_DIR") and "libumockdev-preload" in os.environ.get("LD_PRELOAD", ""):
        return None
    return "systemd-udevd is not running (no /run/udev/control): no device events reach the station"


class DeviceGuard:
    def __init__(self, service: Guarded, *, enabled: bool = True, scanner_ids: tuple[str, ...] = (),
                 on_trip: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.service = service
        self.enabled = enabled
        self.scanner_ids = frozenset(scanner_ids)
        self.on_trip = on_trip  # after each trip is handled (tests measure with it; the service needs nothing)
        self._lock = threading.Lock()
        self._state = "off"
        self._reason: str | None = "not started"
        self._since: str | None = None
        self._tripped_by: list[dict[str, Any]] = []
        self._reported: set[str] = set()
        self._known_networks: set[str] = set()
        self._monitor: Any = None
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = -1, -1

    # ------------------------------------------------------------------ start and stop
    def start(self) -> None:
        """Watch from now on; never raises for a guard that cannot run (it says why: :meth:`state`)."""
        if not self.enabled:
            self._go_off("disabled in the configuration ([lockdown] device_guard = false)", level=logging.WARNING)
            return
        why = udev_events_available()
        if why is not None:
            self._go_off(why)
            return
        try:
            import pyudev

            context = pyudev.Context()
            # Network interfaces already here are the station's own (known by their hardware device).
            self._known_networks = {net_key(d.device_path) for d in context.list_devices(subsystem="net")}
            monitor = pyudev.Monitor.from_netlink(context, source="udev")
            for subsystem in WATCHED:
                monitor.filter_by(subsystem)
            monitor.start()
        except Exception as e:  # ImportError (no pyudev/libudev), OSError (no netlink socket: sandbox)
            self._go_off(f"cannot watch udev events: {type(e).__name__}: {e}")
            return
        self._monitor = monitor
        self._wake_r, self._wake_w = os.pipe()
        with self._lock:
            self._state, self._reason, self._since = "on", None, _now()
        self._restore_trip()
        self._thread = threading.Thread(target=self._run, name="device-guard", daemon=True)
        self._thread.start()
        log.info("device guard on: watching %s; %d network interface(s) known", ", ".join(WATCHED),
                 len(self._known_networks))

    def stop(self) -> None:
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._wake_r = self._wake_w = -1
        self._monitor = None

    def _go_off(self, reason: str, *, level: int = logging.ERROR) -> None:
        with self._lock:
            self._state, self._reason, self._since = "off", reason, _now()
        log.log(level, "device guard OFF: %s", reason)
        try:
            self.service.audit.append("station", OFF, SUBJECT, {"reason": reason})
        except Exception:  # the service must still start (status says why the guard is off)
            log.exception("could not audit that the device guard is off")

    # ------------------------------------------------------------------ the monitor thread
    def _run(self) -> None:
        monitor = self._monitor
        try:
            while True:
                ready, _, _ = select.select([monitor.fileno(), self._wake_r], [], [])
                if self._wake_r in ready:
                    return
                while True:
                    device = monitor.poll(timeout=0)
                    if device is None:
                        break
                    received = time.monotonic()
                    try:
                        self.handle(device.action or "", device.device_path, device.subsystem or "",
                                    device.device_type or "", dict(device.properties), received=received)
                    except Exception:  # one event's failure must not stop the watching
                        log.critical("device guard: handling %s of %s failed", device.action, device.device_path,
                                     exc_info=True)
        except Exception as e:  # the guard must not die quietly: status and the journal say it stopped
            log.exception("device guard monitor failed")
            self._go_off(f"the udev monitor stopped: {type(e).__name__}: {e}", level=logging.CRITICAL)

    def handle(self, action: str, devpath: str, subsystem: str, devtype: str, properties: Mapping[str, str],
               *, received: float | None = None) -> str | None:
        """One udev event; returns why it tripped the guard, or None."""
        received = time.monotonic() if received is None else received
        facts = facts_of(action, devpath, subsystem, devtype, properties)
        why = verdict(facts, scanner_ids=self.scanner_ids, known_networks=self._known_networks)
        if why is None:
            log.debug("device guard: %s %s %s: allowed", action, subsystem, devpath)
            return None
        self._trip(facts, why, received)
        return why

    # ------------------------------------------------------------------ tripping and clearing
    def _trip(self, facts: DeviceFacts, why: str, received: float) -> None:
        at = _now()
        with self._lock:
            if facts.root in self._reported:
                return  # the same physical device again (its interface, disk, partition)
            self._reported.add(facts.root)
            first = self._state != "tripped"
            self._state = "tripped"
            if first:
                self._since = at
        detail = {**facts.record(), "action": facts.action, "why": why}
        log.critical("DEVICE GUARD TRIPPED: %s: %s %s (%s) at %s: locking the station", why,
                     facts.manufacturer or "", facts.product or "", facts.vendor_product or "no USB id", facts.devpath)
        audit: AuditSink = self.service.audit
        try:
            audit.append("station", TRIPPED, SUBJECT, detail)
        except Exception:  # the lock matters more than its record: lock all the same
            log.critical("device guard: the audit entry could not be written; locking all the same", exc_info=True)
        was_unlocked = self.service.unlocked
        self.service.lock(None)  # the `lock` operation's path: capture stopped, keys dropped, store closed
        locked = time.monotonic()
        ended = 0
        for person in self.service.people.list():
            ended += self.service.sessions.end_all(person.name)
        record = {**detail, "at": at, "was_unlocked": was_unlocked, "sessions_ended": ended,
                  "lock_ms": round((locked - received) * 1000, 1)}
        with self._lock:
            if len(self._tripped_by) < KEEP_DEVICES:
                self._tripped_by.append(record)
        log.critical("device guard: station locked %.0f ms after the event (%s); %d session(s) ended",
                     record["lock_ms"], "keys dropped" if was_unlocked else "it was locked already", ended)
        if self.on_trip is not None:
            self.on_trip(record)

    def unlocked(self, who: str) -> None:
        """The service calls this after every unlock: a supervisor or unit head clears a trip (audited)."""
        with self._lock:
            if self._state != "tripped":
                return
            devices, since = list(self._tripped_by), self._since
            self._state, self._since, self._tripped_by, self._reported = "on", _now(), [], set()
        still = [d["devpath"] for d in devices if _connected(d["devpath"])]
        self.service.audit.append(who, CLEARED, SUBJECT, {"tripped_since": since, "devices": len(devices),
                                                          "still_connected": still})
        log.warning("device guard cleared by %s's unlock (tripped since %s%s)", who, since,
                    f"; still connected: {', '.join(still)}" if still else "")

    def _restore_trip(self) -> None:
        """A trip not yet cleared when the service last stopped stays tripped (read back from the audit trail)."""
        try:
            entries = self.service.audit.entries(subject=SUBJECT)
        except Exception:
            log.exception("device guard: cannot read its audit entries back")
            return
        open_trip: list[Any] = []
        for e in entries:
            if e.action == CLEARED:
                open_trip = []
            elif e.action == TRIPPED:
                open_trip.append(e)
        if not open_trip:
            return
        with self._lock:
            self._state, self._since = "tripped", open_trip[0].ts
            self._tripped_by = [{**e.detail, "at": e.ts, "restored": True} for e in open_trip[:KEEP_DEVICES]]
            self._reported = {usb_device_path(str(e.detail.get("devpath"))) or str(e.detail.get("devpath"))
                              for e in open_trip}
        log.critical("device guard: still tripped since %s (%d device(s)); an unlock by a supervisor or the unit "
                     "head clears it", open_trip[0].ts, len(open_trip))

    # ------------------------------------------------------------------ status
    def state(self) -> dict[str, Any]:
        """The ``guard`` field of the ``status`` operation (docs/station-service.md, "The device guard")."""
        with self._lock:
            devices = [dict(d) for d in self._tripped_by]
            out: dict[str, Any] = {"state": self._state, "reason": self._reason, "since": self._since}
        for d in devices:
            d["connected"] = _connected(str(d.get("devpath", "")))
        out["tripped_by"] = devices
        return out


def _connected(devpath: str) -> bool:
    return bool(devpath) and (SYS / devpath.lstrip("/")).exists()

"""The runtime device guard (issue 17): storage or a new network appearing locks the station.

:mod:`~scanstation.guard.classify` decides what a udev event's device is and whether it trips the guard;
:mod:`~scanstation.guard.guard` is the monitor thread inside ``scanstation serve`` that acts on it
(audit, lock, journal, ``status``).  :func:`start_guard` is the one call the service makes.
"""

from __future__ import annotations

from typing import Any

from scanstation.guard.guard import NOT_RUNNING, DeviceGuard, off_state

__all__ = ["NOT_RUNNING", "DeviceGuard", "off_state", "start_guard"]


def start_guard(service: Any) -> DeviceGuard:
    """The guard for a running station service (configured by ``[lockdown]``), started and attached to it:
    ``status`` reports it and each unlock clears a trip (:class:`scanstation.service.core.StationService`)."""
    lockdown = service.config.lockdown
    guard = DeviceGuard(service, enabled=lockdown.device_guard, scanner_ids=tuple(lockdown.scanner_usb_ids))
    service.guard = guard
    guard.start()
    return guard

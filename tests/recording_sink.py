"""A recording audit sink for unit tests of the store: entries in memory, in order, personal fields in the clear
(to assert what went where), and a failure on demand (to show the store change rolls back).  Tests of what
reaches the disk use the real :class:`scanstation.audit.trail.AuditTrail`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Entry:
    actor: str
    action: str
    subject: str
    detail: dict[str, Any]
    personal: dict[str, Any]
    batch_id: int | None


@dataclass
class RecordingSink:
    entries: list[Entry] = field(default_factory=list)
    fail_on: str | None = None  # an action whose append raises (the sink's database "fails")
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def append(self, actor: str, action: str, subject: str, detail: Mapping[str, Any], *,
               personal: Mapping[str, Any] | None = None, batch_id: int | None = None) -> int:
        if action == self.fail_on:
            raise OSError(f"audit sink refuses {action}")
        with self._lock:
            self.entries.append(Entry(actor, action, subject, dict(detail), dict(personal or {}), batch_id))
            return len(self.entries)

    def actions(self) -> list[str]:
        return [e.action for e in self.entries]

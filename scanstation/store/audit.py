"""Audit entries for actions that change nothing in the store: a thin pass-through to the audit sink.

The store keeps no audit table any more (issue 13): every entry goes to the injected
:class:`~scanstation.audit.sink.AuditSink` (the station's Merkle audit trail in audit.db).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scanstation.store.connection import StoreConnection


class AuditLog(StoreConnection):
    """``audit(...)``: one entry through the sink, committed before it returns."""

    def audit(self, actor: str, action: str, subject: str, detail: Mapping[str, Any] | None = None, *,
              personal: Mapping[str, Any] | None = None, batch_id: int | None = None) -> int:
        """Record an action (scan start, a rejected input, ...); returns the entry's sequence number.

        ``detail`` holds no personal data: employee code/name/rank/ACR period, file names, source keys
        and labels go in ``personal`` (sealed to the batch's key when ``batch_id`` is given).
        """
        return self._audit_sink.append(actor, action, subject, detail or {}, personal=personal, batch_id=batch_id)

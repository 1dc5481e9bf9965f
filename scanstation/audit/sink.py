"""What every writer of audit entries (store, capture, service) depends on: one ``append``.

The store and the capture session take an :class:`AuditSink`, not the trail itself, so they neither
know how entries are kept (the Merkle trail in :mod:`scanstation.audit.trail`) nor import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class AuditSink(Protocol):
    def append(
        self,
        actor: str,
        action: str,
        subject: str,
        detail: Mapping[str, Any],
        *,
        personal: Mapping[str, Any] | None = None,
        batch_id: int | None = None,
    ) -> int:
        """Record one action durably (committed before this returns); returns its sequence number.

        ``detail`` must hold no personal data; ``personal`` (employee code, name, rank, ACR period,
        file names, source keys) is stored sealed to the batch's key when ``batch_id`` is given, so
        purging the batch shreds it while the log stays verifiable.
        """
        ...

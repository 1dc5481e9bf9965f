"""The hash-chained audit trail: append, verify the chain, read its head."""

from __future__ import annotations

import hashlib
from typing import Any

from scanstation.store.connection import GENESIS_HASH, StoreConnection


class AuditLog(StoreConnection):
    """Audit entries: every write appends one in the same transaction."""

    def audit(self, actor: str, action: str, subject: str, detail: dict[str, Any] | None = None) -> None:
        with self._write() as db:
            self._audit(db, actor, action, subject, detail or {})

    def verify_audit_chain(self) -> list[str]:
        """Problems found re-computing the hash chain (empty when intact)."""
        problems = []
        prev = GENESIS_HASH
        for r in self._read("SELECT * FROM audit ORDER BY id"):
            expect = hashlib.sha256(
                "\x1f".join([prev, r["ts"], r["actor"], r["action"], r["subject"], r["detail"]]).encode()
            ).hexdigest()
            if r["prev_hash"] != prev or r["hash"] != expect:
                problems.append(f"audit entry {r['id']} ({r['action']}) does not chain to its predecessor")
            prev = r["hash"]
        return problems

    def audit_head(self) -> str:
        rows = self._read("SELECT hash FROM audit ORDER BY id DESC LIMIT 1")
        return rows[0][0] if rows else GENESIS_HASH

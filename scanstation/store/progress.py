"""Read-only queries behind the progress dashboard (:mod:`scanstation.reports.progress`).

Plain rows, no arithmetic: the counting, the financial-year matching and the stages live in the report
module (tested there on a real store).  Every query here reads; nothing is written or audited.
"""

from __future__ import annotations

import sqlite3

from scanstation.store.connection import StoreConnection


class ProgressQueries(StoreConnection):
    """The rows the progress report joins: the active roster, ACR files with their batch's state, pages
    with who captured them and when, verdicts with when."""

    def progress_roster(self) -> list[sqlite3.Row]:
        """employee_code of every active roster person (people who left the export are inactive)."""
        return self._read("SELECT employee_code FROM roster WHERE active=1 ORDER BY employee_code")

    def progress_documents(self) -> list[sqlite3.Row]:
        """Every ACR file not removed (merged away) with its batch's state and operator, its index, flags,
        and its first page's capture time (when it was scanned).  A purged batch's files have a blank code and
        period label: their ``employee_digest`` and period dates stand for them."""
        return self._read(
            """SELECT d.id, d.batch_id, d.employee_code, d.employee_digest, d.acr_period, d.period_start,
                      d.period_end,
                      d.not_in_roster, d.flags, b.state AS batch_state, b.operator, b.name AS batch,
                      (SELECT MIN(p.captured_at) FROM pages p WHERE p.document_id = d.id) AS first_captured,
                      (SELECT COUNT(*) FROM pages p WHERE p.document_id = d.id AND p.deleted_reason = ''
                          AND p.replaced_by IS NULL) AS pages
               FROM documents d JOIN batches b ON b.id = d.batch_id
               WHERE d.removed = ''
               ORDER BY d.id"""
        )

    def progress_pages(self) -> list[sqlite3.Row]:
        """Every page: who captured it, when, its flags, and its verdict (who, when) if any."""
        return self._read(
            """SELECT p.id, p.batch_id, p.captured_by, p.captured_at, p.flags, p.deleted_reason,
                      p.replaced_by, v.verdict, v.given_by, v.given_at, b.operator
               FROM pages p JOIN batches b ON b.id = p.batch_id
               LEFT JOIN page_verdicts v ON v.page_id = p.id
               ORDER BY p.id"""
        )

    def progress_batches(self) -> list[sqlite3.Row]:
        """Every batch's id, name, state and when its state last changed (``updated_at``: set at creation and
        by every state move, so a batch moved on a day has ``updated_at`` on that day or later)."""
        return self._read("SELECT id, name, state, updated_at FROM batches ORDER BY id")

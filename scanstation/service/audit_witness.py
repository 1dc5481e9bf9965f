"""The latest signed audit checkpoint, kept in people.db as well as in audit.db.

Someone who cuts back audit.db (entries *and* its checkpoints) leaves a trail that is consistent on its
own; this second copy, outside that file, is what shows it was longer.  The service writes it each time
the trail signs a checkpoint and gives it back to the trail at unlock (it will not sign a log that does
not extend it) and to ``audit verify``.  A cut of the whole data directory is the portal's to catch: it
keeps the last checkpoint it acknowledged for each station.
"""

from __future__ import annotations

from datetime import UTC, datetime

from batchformat.checkpoints import SignedCheckpoint
from scanstation.people.database import PeopleDatabase


class AuditWitness:
    def __init__(self, database: PeopleDatabase) -> None:
        self._db = database

    def keep(self, checkpoint: SignedCheckpoint) -> None:
        """Record a newly signed checkpoint (never a smaller one: the trail only grows)."""
        with self._db.write() as db:
            row = db.execute("SELECT size FROM audit_witness WHERE id = 1").fetchone()
            if row is not None and row[0] > checkpoint.size:
                return
            db.execute(
                "INSERT INTO audit_witness (id, note, size, updated_at) VALUES (1, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET note = excluded.note, size = excluded.size, "
                "updated_at = excluded.updated_at",
                (checkpoint.note, checkpoint.size, datetime.now(UTC).isoformat(timespec="seconds")),
            )

    def latest(self) -> str | None:
        row = self._db.read_one("SELECT note FROM audit_witness WHERE id = 1")
        return str(row[0]) if row is not None else None

"""Importing a roster file into the store: read and validate it whole, then replace the roster in one
transaction (:meth:`~scanstation.store.roster.RosterRepository.replace_roster`).  A refused file is audited
too (its hash and the number of problems, nothing of its content)."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path
from typing import Any

from scanstation.errors import RosterError
from scanstation.roster.reader import MAX_FILE_BYTES, RosterFile, read_roster
from scanstation.store.roster import RosterImportResult


def import_roster(store: Any, path: Path, actor: str, *, max_bytes: int = MAX_FILE_BYTES,
                  today: date | None = None) -> tuple[RosterFile, RosterImportResult]:
    """Read ``path`` (CSV or XLSX) and make it the roster; RosterError (nothing imported) on any bad row."""
    try:
        roster = read_roster(path, today=today, max_bytes=max_bytes)
    except RosterError as e:
        digest = ""
        try:
            if path.is_file() and path.stat().st_size <= max_bytes:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            pass
        store.audit(actor, "roster.import_refused", "roster", {"sha256": digest,
                                                                "problems": e.message.count("\n  ") or 1})
        raise
    return roster, store.replace_roster(roster.rows, actor, file_sha256=roster.sha256)

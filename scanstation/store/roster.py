"""The unit's roster in the station store: one transaction per import, people who left kept inactive.

The roster is personal data, so it lives here, in the SQLCipher store, and nowhere else.  An import's
audit entry carries counts and the file's SHA-256 only (no code, no name): the file itself can be
matched against the hash later, and the store holds who is in it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date
from typing import Any

from scanstation.store.connection import StoreConnection


@dataclass(frozen=True, slots=True)
class RosterPerson:
    """One person of the roster as stored."""

    employee_code: str
    name_hi: str
    name_en: str
    rank: str
    unit: str
    birth_date: date | None
    joining_date: date | None
    active: bool

    @property
    def display_name(self) -> str:
        """Both names, Hindi first, as one line ("रमेश कुमार / Ramesh Kumar")."""
        return " / ".join(n for n in (self.name_hi, self.name_en) if n)

    def as_dict(self) -> dict[str, Any]:
        return {"employee_code": self.employee_code, "name_hi": self.name_hi, "name_en": self.name_en,
                "rank": self.rank, "unit": self.unit,
                "birth_date": self.birth_date.isoformat() if self.birth_date else None,
                "joining_date": self.joining_date.isoformat() if self.joining_date else None,
                "active": self.active}


@dataclass(frozen=True, slots=True)
class RosterImportResult:
    import_id: int
    rows: int
    added: int
    updated: int
    deactivated: int
    unchanged: int


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


class RosterRepository(StoreConnection):
    """The roster and its imports."""

    @staticmethod
    def _person(r: sqlite3.Row) -> RosterPerson:
        return RosterPerson(r["employee_code"], r["name_hi"], r["name_en"], r["rank"], r["unit"],
                            _day(r["birth_date"]), _day(r["joining_date"]), bool(r["active"]))

    def replace_roster(self, people: list[Any], actor: str, *, file_sha256: str) -> RosterImportResult:
        """Make ``people`` (:class:`~scanstation.roster.reader.RosterRow`) the roster, in one transaction.

        New codes are added, changed ones updated (a person back in the export is active again), and
        people missing from the new export become inactive - never deleted: their ACR files are still
        scanned after a transfer.  Audited with the counts and the file's hash only.
        """
        with self._write() as db:
            old = {r["employee_code"]: r for r in db.execute("SELECT * FROM roster")}
            cur = db.execute(
                "INSERT INTO roster_imports (imported_at, imported_by, file_sha256, rows, added, updated, deactivated)"
                " VALUES (?,?,?,?,0,0,0)", (self._now(), actor, file_sha256, len(people)))
            import_id = int(cur.lastrowid or 0)
            added = updated = unchanged = 0
            seen: set[str] = set()
            for p in people:
                values = (p.name_hi, p.name_en, p.rank, p.unit,
                          p.birth_date.isoformat() if p.birth_date else None,
                          p.joining_date.isoformat() if p.joining_date else None)
                seen.add(p.employee_code)
                before = old.get(p.employee_code)
                if before is None:
                    db.execute("INSERT INTO roster (employee_code, name_hi, name_en, rank, unit, birth_date, "
                               "joining_date, active, import_id) VALUES (?,?,?,?,?,?,?,1,?)",
                               (p.employee_code, *values, import_id))
                    added += 1
                    continue
                same = tuple(before[k] for k in ("name_hi", "name_en", "rank", "unit", "birth_date",
                                                 "joining_date")) == values and before["active"] == 1
                db.execute("UPDATE roster SET name_hi=?, name_en=?, rank=?, unit=?, birth_date=?, joining_date=?, "
                           "active=1, import_id=? WHERE employee_code=?", (*values, import_id, p.employee_code))
                if same:
                    unchanged += 1
                else:
                    updated += 1
            gone = [code for code, r in old.items() if code not in seen and r["active"] == 1]
            db.executemany("UPDATE roster SET active=0 WHERE employee_code=?", [(c,) for c in gone])
            db.execute("UPDATE roster_imports SET added=?, updated=?, deactivated=? WHERE id=?",
                       (added, updated, len(gone), import_id))
            self._audit(db, actor, "roster.import", f"roster-import:{import_id}",
                        {"rows": len(people), "added": added, "updated": updated, "deactivated": len(gone),
                         "unchanged": unchanged, "sha256": file_sha256})
        return RosterImportResult(import_id, len(people), added, updated, len(gone), unchanged)

    def roster_person(self, employee_code: str) -> RosterPerson | None:
        rows = self._read("SELECT * FROM roster WHERE employee_code=?", (employee_code,))
        return self._person(rows[0]) if rows else None

    def roster_people(self, *, active_only: bool = False) -> list[RosterPerson]:
        sql = "SELECT * FROM roster" + (" WHERE active=1" if active_only else "") + " ORDER BY employee_code"
        return [self._person(r) for r in self._read(sql)]

    def roster_summary(self) -> dict[str, Any]:
        """Counts and the last import (who, when, the file's hash and its counts); no personal data."""
        active, total = self._read("SELECT COALESCE(SUM(active), 0), COUNT(*) FROM roster")[0]
        last = self._read("SELECT * FROM roster_imports ORDER BY id DESC LIMIT 1")
        imports = self._read("SELECT COUNT(*) FROM roster_imports")[0][0]
        return {"active": int(active), "inactive": int(total) - int(active), "imports": int(imports),
                "last_import": dict(last[0]) if last else None}

    def roster_import_id(self) -> int:
        """The id of the latest import (0 before the first): a cache of derived search keys is keyed on it."""
        return int(self._read("SELECT COALESCE(MAX(id), 0) FROM roster_imports")[0][0])

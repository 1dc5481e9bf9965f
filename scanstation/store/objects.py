"""The vault objects the store knows of."""

from __future__ import annotations

from scanstation.errors import ScanStationError
from scanstation.store.connection import StoreConnection, StoredObject


class ObjectRepository(StoreConnection):
    """Vault object rows."""

    def object(self, obj_id: str) -> StoredObject:
        rows = self._read("SELECT * FROM objects WHERE id=?", (obj_id,))
        if not rows:
            raise ScanStationError(f"vault object {obj_id} is not recorded in the database")
        r = rows[0]
        return StoredObject(r["id"], r["kind"], r["sha256"], r["ct_sha256"], r["size"])

    def objects(self) -> list[StoredObject]:
        return [
            StoredObject(r["id"], r["kind"], r["sha256"], r["ct_sha256"], r["size"])
            for r in self._read("SELECT * FROM objects ORDER BY created_at, id")
        ]

    def object_ids(self) -> set[str]:
        return {r[0] for r in self._read("SELECT id FROM objects")}

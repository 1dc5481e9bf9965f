"""Per-batch age keys: what lets the station forget a batch for good after the portal has it.

Every vault object of a batch is encrypted to the portal and to that batch's own X25519 key; the batch
key is stored only wrapped (age-encrypted) to the station identity, in the station database.  Purging
a batch deletes its objects *and* its wrapped key (``secure_delete`` plus a WAL truncate), so any copy
of the ciphertext the file system or an SSD kept behind is unreadable at the station: only the portal
can still open it.  Deleting files alone could not promise that.
"""

from __future__ import annotations

import threading

import pyrage
from pyrage import x25519

from scanstation.errors import VaultIntegrityError
from scanstation.store.database import Store
from scanstation.vault.identity import StationKey


class BatchKeys:
    """Creates, unwraps (lazily, cached in memory) and destroys batch keys."""

    def __init__(self, store: Store, station_key: StationKey) -> None:
        self._store = store
        self._station = station_key
        self._lock = threading.Lock()
        self._identities: dict[int, x25519.Identity] = {}
        self._recipients: dict[int, x25519.Recipient] = {}
        self._loaded_all = False  # the station process is the only writer (data-dir lock): load once

    def recipient(self, batch_id: int) -> x25519.Recipient:
        """The batch's recipient, creating the key on first use."""
        with self._lock:
            if batch_id in self._recipients:
                return self._recipients[batch_id]
            row = self._store.batch_key(batch_id)
            if row is None:
                identity = x25519.Identity.generate()
                wrapped = pyrage.encrypt(str(identity).encode(), [self._station.as_recipient()])
                row = self._store.add_batch_key(batch_id, str(identity.to_public()), wrapped)
            self._load(batch_id, row[1])
            return self._recipients[batch_id]

    def identities(self) -> list[x25519.Identity]:
        """Every live batch identity (for decrypting vault objects); unwraps new ones on first call."""
        with self._lock:
            if not self._loaded_all:
                for batch_id, _recipient, wrapped in self._store.batch_keys():
                    if batch_id not in self._identities:
                        self._load(batch_id, wrapped)
                self._loaded_all = True
            return list(self._identities.values())

    def _load(self, batch_id: int, wrapped: bytes) -> None:
        try:
            identity = x25519.Identity.from_str(self._station.decrypt(wrapped).decode().strip())
        except (pyrage.DecryptError, pyrage.IdentityError, UnicodeDecodeError) as e:
            raise VaultIntegrityError(
                f"the key of batch #{batch_id} cannot be unwrapped with the station key (damaged database?)"
            ) from e
        self._identities[batch_id] = identity
        self._recipients[batch_id] = identity.to_public()

    def has_key(self, batch_id: int) -> bool:
        return self._store.batch_key(batch_id) is not None

    def destroy(self, batch_id: int, actor: str) -> bool:
        """Forget the batch key everywhere: memory cache and database (zeroed)."""
        with self._lock:
            self._identities.pop(batch_id, None)
            self._recipients.pop(batch_id, None)
            return self._store.destroy_batch_key(batch_id, actor)

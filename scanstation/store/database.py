"""The station's store: one SQLCipher database, one writer, one repository per aggregate.

Each aggregate's queries live in their own module (batches, documents, pages, objects, transfers, audit)
over the shared connection (:mod:`scanstation.store.connection`); :class:`Store` composes them so that a
caller holds one object and every write of any aggregate goes through the same lock and transaction.
"""

from __future__ import annotations

from scanstation.store.audit import AuditLog
from scanstation.store.batches import BatchRepository
from scanstation.store.connection import StoredObject, utc_now
from scanstation.store.documents import DocumentRepository
from scanstation.store.objects import ObjectRepository
from scanstation.store.pages import PageRepository
from scanstation.store.progress import ProgressQueries
from scanstation.store.roster import RosterRepository
from scanstation.store.transfers import TransferRepository
from scanstation.store.verification import VerificationRepository

__all__ = ["Store", "StoredObject", "utc_now"]


class Store(BatchRepository, DocumentRepository, PageRepository, ObjectRepository, TransferRepository, AuditLog,
            ProgressQueries, VerificationRepository, RosterRepository):
    """The station's database.  All writes pass through one lock and one connection (one writer)."""

"""All database access of the receiver (SQLAlchemy Core; SQLite by default, PostgreSQL by URL).

Three tables: ``uploads`` (tus state; ``upload_offset`` is the durable, acknowledged offset),
``packages`` (one row per accepted package, with its receipt; unique package hash and batch uid give
dedup) and ``documents`` (per accepted ACR file: where it is stored and its receipt digest).
Every method is synchronous and short; the async HTTP layer calls them in a worker thread.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

SCHEMA_VERSION = 1

metadata = MetaData()

uploads = Table(
    "uploads", metadata,
    Column("id", String(32), primary_key=True),
    Column("upload_length", BigInteger, nullable=False),
    Column("upload_offset", BigInteger, nullable=False),
    Column("metadata_header", Text, nullable=False),  # the client's Upload-Metadata, returned by HEAD
    Column("metadata_json", Text, nullable=False),
    Column("batch_uid", String(128), nullable=False),
    Column("package_sha256", String(64), nullable=False),
    Column("station_id", String(128), nullable=False),
    # receiving -> verifying -> accepted | refused;  receiving -> expired | terminated
    Column("state", String(16), nullable=False),
    Column("refusal_check", String(64)),
    Column("refusal_reason", Text),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
Index("uploads_state", uploads.c.state)

packages = Table(
    "packages", metadata,
    Column("package_sha256", String(64), primary_key=True),
    Column("batch_uid", String(128), nullable=False, unique=True),
    Column("package_id", String(32), nullable=False),
    Column("station_id", String(128), nullable=False),
    Column("package_size", BigInteger, nullable=False),
    Column("received_at", String(40), nullable=False),
    Column("receipt_id", String(32), nullable=False, unique=True),
    Column("receipt", LargeBinary, nullable=False),
    Column("upload_id", String(32), nullable=False),
)

documents = Table(
    "documents", metadata,
    Column("package_sha256", String(64), ForeignKey("packages.package_sha256"), primary_key=True),
    Column("doc_id", String(16), primary_key=True),
    Column("employee_code", String(256), nullable=False),
    Column("acr_period", String(64), nullable=False),
    Column("page_count", Integer, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("store_path", Text, nullable=False),
)
Index("documents_employee", documents.c.employee_code, documents.c.acr_period)

schema_info = Table("schema_info", metadata, Column("version", Integer, nullable=False))


@dataclass(frozen=True)
class Upload:
    id: str
    length: int
    offset: int
    metadata_header: str
    metadata: dict[str, str]
    batch_uid: str
    package_sha256: str
    station_id: str
    state: str
    refusal_check: str | None
    refusal_reason: str | None
    expires_at: float

    @property
    def complete(self) -> bool:
        return self.offset == self.length


@dataclass(frozen=True)
class AcceptedPackage:
    package_sha256: str
    batch_uid: str
    receipt: bytes
    receipt_id: str


class BatchConflict(Exception):
    """The batch uid was already received as a different package."""

    def __init__(self, existing_sha256: str) -> None:
        super().__init__(existing_sha256)
        self.existing_sha256 = existing_sha256


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL + synchronous=FULL: a committed offset survives a power cut, readers do not block the writer.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = create_engine(url, future=True, pool_pre_ping=not url.startswith("sqlite"))
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        metadata.create_all(self.engine)
        with self.engine.begin() as conn:
            if conn.execute(select(schema_info.c.version)).first() is None:
                conn.execute(insert(schema_info).values(version=SCHEMA_VERSION))

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    # ------------------------------------------------------------------ uploads

    def create_upload(self, upload_id: str, length: int, metadata_header: str, meta: dict[str, str],
                      expires_at: float) -> None:
        now = time.time()
        with self._tx() as conn:
            conn.execute(insert(uploads).values(
                id=upload_id, upload_length=length, upload_offset=0, metadata_header=metadata_header,
                metadata_json=json.dumps(meta, sort_keys=True), batch_uid=meta["batch_uid"],
                package_sha256=meta["package_sha256"], station_id=meta["station_id"], state="receiving",
                created_at=now, expires_at=expires_at, updated_at=now))

    def get_upload(self, upload_id: str) -> Upload | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(uploads).where(uploads.c.id == upload_id)).mappings().first()
        return _upload(row) if row else None

    def uploads_in_state(self, *states: str) -> list[Upload]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(uploads).where(uploads.c.state.in_(states))).mappings().all()
        return [_upload(r) for r in rows]

    def all_upload_ids(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(select(uploads.c.id)).scalars().all())

    def set_offset(self, upload_id: str, offset: int, expires_at: float) -> None:
        with self._tx() as conn:
            conn.execute(update(uploads).where(uploads.c.id == upload_id).values(
                upload_offset=offset, expires_at=expires_at, updated_at=time.time()))

    def set_state(self, upload_id: str, state: str, *, check: str | None = None, reason: str | None = None) -> None:
        with self._tx() as conn:
            conn.execute(update(uploads).where(uploads.c.id == upload_id).values(
                state=state, refusal_check=check, refusal_reason=reason, updated_at=time.time()))

    def expired_uploads(self, now: float) -> list[Upload]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(uploads).where(uploads.c.state == "receiving",
                                                      uploads.c.expires_at < now)).mappings().all()
        return [_upload(r) for r in rows]

    # ------------------------------------------------------------------ packages

    def package_by_sha256(self, sha256: str) -> AcceptedPackage | None:
        return self._package(packages.c.package_sha256 == sha256)

    def package_by_batch(self, batch_uid: str) -> AcceptedPackage | None:
        return self._package(packages.c.batch_uid == batch_uid)

    def _package(self, where: Any) -> AcceptedPackage | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(packages).where(where)).mappings().first()
        if row is None:
            return None
        return AcceptedPackage(row["package_sha256"], row["batch_uid"], bytes(row["receipt"]), row["receipt_id"])

    def record_package(self, *, upload_id: str, package_sha256: str, batch_uid: str, package_id: str,
                       station_id: str, size: int, received_at: str, receipt_id: str, receipt: bytes,
                       docs: list[dict[str, Any]]) -> AcceptedPackage:
        """Insert an accepted package, its documents and mark the upload accepted, in one transaction.

        If the same package was recorded meanwhile (a concurrent upload of the same bytes), that
        record wins and is returned; the same batch uid with another hash raises BatchConflict.
        """
        try:
            with self._tx() as conn:
                conn.execute(insert(packages).values(
                    package_sha256=package_sha256, batch_uid=batch_uid, package_id=package_id,
                    station_id=station_id, package_size=size, received_at=received_at, receipt_id=receipt_id,
                    receipt=receipt, upload_id=upload_id))
                if docs:
                    conn.execute(insert(documents), [{"package_sha256": package_sha256, **d} for d in docs])
                conn.execute(update(uploads).where(uploads.c.id == upload_id).values(
                    state="accepted", updated_at=time.time()))
        except IntegrityError:
            existing = self.package_by_sha256(package_sha256)
            if existing is not None:
                self.set_state(upload_id, "accepted")
                return existing
            other = self.package_by_batch(batch_uid)
            if other is not None:
                raise BatchConflict(other.package_sha256) from None
            raise
        return AcceptedPackage(package_sha256, batch_uid, receipt, receipt_id)


def _upload(row: Any) -> Upload:
    return Upload(id=row["id"], length=row["upload_length"], offset=row["upload_offset"],
                  metadata_header=row["metadata_header"], metadata=json.loads(row["metadata_json"]),
                  batch_uid=row["batch_uid"], package_sha256=row["package_sha256"], station_id=row["station_id"],
                  state=row["state"], refusal_check=row["refusal_check"], refusal_reason=row["refusal_reason"],
                  expires_at=row["expires_at"])

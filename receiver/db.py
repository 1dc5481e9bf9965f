"""All database access of the receiver (SQLAlchemy Core; SQLite by default, PostgreSQL by URL).

Tables: ``uploads`` (tus state; ``upload_offset`` is the durable, acknowledged offset), ``packages``
(one row per accepted package, with its receipt; unique package hash and batch uid give dedup),
``documents`` (per accepted ACR file: where it is stored and its receipt digest), ``station_logs`` (per
station: the checkpoint verifier key pinned at its first package and the latest audit checkpoint
accepted from it), ``station_log_prefixes`` (checkpoints known to be earlier states of that log: a
package sealed before another but received after it is accepted, nothing else smaller), ``stations``
(issue 15: the enrolled stations: unit, Ed25519 key, TLS client certificate, revoked) and
``station_enrolments`` (every enrolment and re-enrolment, kept).

Schema versions: 1 (uploads, packages, documents), 2 (issue 13: station_logs, station_log_prefixes),
3 (issue 15: stations, station_enrolments; ``uploads.station_id`` is the authenticated caller).
``create_all`` adds missing tables on SQLite and PostgreSQL alike; ``schema_info`` records the version.
Every method is synchronous and short; the async HTTP layer calls them in a worker thread.
"""

from __future__ import annotations

import base64
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
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

SCHEMA_VERSION = 3

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
Index("uploads_station", uploads.c.station_id, uploads.c.state)

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

station_logs = Table(
    "station_logs", metadata,
    Column("station_id", String(128), primary_key=True),
    Column("origin", String(256), nullable=False),
    Column("vkey", Text, nullable=False),       # pinned at the station's first package (trust on first use)
    Column("size", BigInteger, nullable=False),
    Column("root", String(64), nullable=False),  # hex
    Column("note", Text, nullable=False),       # the signed checkpoint note, returned in receipts
    Column("package_sha256", String(64), nullable=False),  # the package that brought it
    Column("updated_at", Float, nullable=False),
)

station_log_prefixes = Table(
    "station_log_prefixes", metadata,
    Column("station_id", String(128), primary_key=True),
    Column("size", BigInteger, primary_key=True),
    Column("root", String(64), nullable=False),  # hex
)

stations = Table(
    "stations", metadata,
    Column("station_id", String(128), primary_key=True),
    Column("unit", String(256), nullable=False),
    Column("signing_key", String(64), nullable=False),  # base64 raw Ed25519: signs station.json
    Column("cert_serial", String(64), nullable=False, unique=True),  # hex, of the current client certificate
    Column("cert_sha256", String(64), nullable=False),
    Column("enrolled_at", String(40), nullable=False),
    Column("revoked", Integer, nullable=False, default=0),
    Column("revoked_at", String(40)),
)

station_enrolments = Table(
    "station_enrolments", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("station_id", String(128), nullable=False),
    Column("unit", String(256), nullable=False),
    Column("signing_key", String(64), nullable=False),
    Column("cert_serial", String(64), nullable=False),
    Column("cert_sha256", String(64), nullable=False),
    Column("enrolled_at", String(40), nullable=False),
    Column("replaced_serial", String(64)),  # the certificate this enrolment superseded (re-enrolment)
)

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
    station_id: str


@dataclass(frozen=True)
class Station:
    """An enrolled station: what the portal trusts it with (see receiver.enrolment)."""

    station_id: str
    unit: str
    signing_key: bytes  # raw Ed25519
    cert_serial: str  # hex
    cert_sha256: str
    enrolled_at: str
    revoked: bool


@dataclass(frozen=True)
class OpenUploads:
    count: int
    reserved_bytes: int  # Upload-Length of every open upload: disk the station may still fill


@dataclass(frozen=True)
class StationLog:
    station_id: str
    origin: str
    vkey: str
    size: int
    root: bytes
    note: str


@dataclass(frozen=True)
class StationLogUpdate:
    """What an accepted package changes in its station's log record (see batchformat.check_station_log).

    ``previous``: the record the check was made against (None: the station's first package), so a
    concurrent change is noticed; ``latest``: set when the package's checkpoint becomes the latest;
    ``prefixes``: (size, root) of checkpoints now known to be earlier states of the latest.
    """

    station_id: str
    origin: str
    vkey: str
    previous: StationLog | None
    latest: tuple[int, bytes, str] | None
    prefixes: tuple[tuple[int, bytes], ...]


class StationLogConflict(Exception):
    """The station's log record changed between the check and the commit (a concurrent ingest)."""


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
        metadata.create_all(self.engine)  # versions 1 -> 2 -> 3: the new tables are simply added
        with self.engine.begin() as conn:
            row = conn.execute(select(schema_info.c.version)).first()
            if row is None:
                conn.execute(insert(schema_info).values(version=SCHEMA_VERSION))
            elif row[0] > SCHEMA_VERSION:
                raise RuntimeError(f"receiver database schema {row[0]} is newer than this receiver ({SCHEMA_VERSION})")
            elif row[0] < SCHEMA_VERSION:
                conn.execute(update(schema_info).values(version=SCHEMA_VERSION))

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
        return AcceptedPackage(row["package_sha256"], row["batch_uid"], bytes(row["receipt"]), row["receipt_id"],
                               row["station_id"])

    # ------------------------------------------------------------------ stations

    def enrol_station(self, station: Station) -> Station | None:
        """Insert or replace the station's record (a re-enrolment supersedes the old certificate); return the
        record it replaced.  Every enrolment is also kept in ``station_enrolments``."""
        values = {"unit": station.unit, "signing_key": base64.b64encode(station.signing_key).decode(),
                  "cert_serial": station.cert_serial, "cert_sha256": station.cert_sha256,
                  "enrolled_at": station.enrolled_at, "revoked": 0, "revoked_at": None}
        with self._tx() as conn:
            row = conn.execute(select(stations).where(stations.c.station_id == station.station_id)).mappings().first()
            previous = _station(row) if row else None
            if previous is None:
                conn.execute(insert(stations).values(station_id=station.station_id, **values))
            else:
                conn.execute(update(stations).where(stations.c.station_id == station.station_id).values(**values))
            conn.execute(insert(station_enrolments).values(
                station_id=station.station_id, unit=station.unit, signing_key=values["signing_key"],
                cert_serial=station.cert_serial, cert_sha256=station.cert_sha256, enrolled_at=station.enrolled_at,
                replaced_serial=previous.cert_serial if previous else None))
        return previous

    def station(self, station_id: str) -> Station | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(stations).where(stations.c.station_id == station_id)).mappings().first()
        return _station(row) if row else None

    def station_by_serial(self, cert_serial: str) -> Station | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(stations).where(stations.c.cert_serial == cert_serial)).mappings().first()
        return _station(row) if row else None

    def revoke_station(self, station_id: str, revoked_at: str) -> bool:
        with self._tx() as conn:
            changed = conn.execute(update(stations).where(stations.c.station_id == station_id).values(
                revoked=1, revoked_at=revoked_at))
        return bool(changed.rowcount)

    def enrolments(self, station_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(station_enrolments).where(station_enrolments.c.station_id == station_id)
                                .order_by(station_enrolments.c.id)).mappings().all()
        return [dict(r) for r in rows]

    def open_uploads(self, station_id: str) -> OpenUploads:
        """Uploads of the station still receiving or being verified: what the per-station caps count."""
        with self.engine.connect() as conn:
            row = conn.execute(select(func.count(), func.coalesce(func.sum(uploads.c.upload_length), 0)).where(
                uploads.c.station_id == station_id, uploads.c.state.in_(("receiving", "verifying")))).first()
        return OpenUploads(int(row[0]) if row else 0, int(row[1]) if row else 0)

    # ------------------------------------------------------------------ station logs

    def station_log(self, station_id: str) -> StationLog | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(station_logs).where(station_logs.c.station_id == station_id)).mappings().first()
        if row is None:
            return None
        return StationLog(row["station_id"], row["origin"], row["vkey"], row["size"], bytes.fromhex(row["root"]),
                          row["note"])

    def is_log_prefix(self, station_id: str, size: int, root: bytes) -> bool:
        with self.engine.connect() as conn:
            row = conn.execute(select(station_log_prefixes.c.root).where(
                station_log_prefixes.c.station_id == station_id, station_log_prefixes.c.size == size)).first()
        return row is not None and row[0] == root.hex()

    def _update_station_log(self, conn: Connection, log: StationLogUpdate, package_sha256: str) -> None:
        now = time.time()
        prev = log.previous
        if log.latest is not None:
            size, root, note = log.latest
            values = {"origin": log.origin, "vkey": log.vkey, "size": size, "root": root.hex(), "note": note,
                      "package_sha256": package_sha256, "updated_at": now}
            if prev is None:
                conn.execute(insert(station_logs).values(station_id=log.station_id, **values))
            else:
                changed = conn.execute(update(station_logs).where(
                    station_logs.c.station_id == log.station_id, station_logs.c.size == prev.size,
                    station_logs.c.root == prev.root.hex(), station_logs.c.vkey == prev.vkey).values(**values))
                if changed.rowcount != 1:
                    raise StationLogConflict(log.station_id)
        elif prev is not None:  # the record the check relied on must still be the same
            row = conn.execute(select(station_logs.c.size, station_logs.c.root).where(
                station_logs.c.station_id == log.station_id)).first()
            if row is None or (row[0], row[1]) != (prev.size, prev.root.hex()):
                raise StationLogConflict(log.station_id)
        for size, root in log.prefixes:
            known = conn.execute(select(station_log_prefixes.c.root).where(
                station_log_prefixes.c.station_id == log.station_id, station_log_prefixes.c.size == size)).first()
            if known is None:
                conn.execute(insert(station_log_prefixes).values(station_id=log.station_id, size=size, root=root.hex()))
            elif known[0] != root.hex():  # impossible for checkpoints proven consistent: never overwrite
                raise StationLogConflict(log.station_id)

    def record_package(self, *, upload_id: str, package_sha256: str, batch_uid: str, package_id: str,
                       station_id: str, size: int, received_at: str, receipt_id: str, receipt: bytes,
                       docs: list[dict[str, Any]], station_log: StationLogUpdate | None = None) -> AcceptedPackage:
        """Insert an accepted package, its documents, its station's log update and mark the upload accepted,
        in one transaction.

        If the same package was recorded meanwhile (a concurrent upload of the same bytes), that
        record wins and is returned; the same batch uid with another hash raises BatchConflict; a station
        log record changed since the check raises StationLogConflict (nothing is recorded).
        """
        try:
            with self._tx() as conn:
                if station_log is not None:
                    self._update_station_log(conn, station_log, package_sha256)
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
        return AcceptedPackage(package_sha256, batch_uid, receipt, receipt_id, station_id)


def _station(row: Any) -> Station:
    return Station(station_id=row["station_id"], unit=row["unit"], signing_key=base64.b64decode(row["signing_key"]),
                   cert_serial=row["cert_serial"], cert_sha256=row["cert_sha256"], enrolled_at=row["enrolled_at"],
                   revoked=bool(row["revoked"]))


def _upload(row: Any) -> Upload:
    return Upload(id=row["id"], length=row["upload_length"], offset=row["upload_offset"],
                  metadata_header=row["metadata_header"], metadata=json.loads(row["metadata_json"]),
                  batch_uid=row["batch_uid"], package_sha256=row["package_sha256"], station_id=row["station_id"],
                  state=row["state"], refusal_check=row["refusal_check"], refusal_reason=row["refusal_reason"],
                  expires_at=row["expires_at"])

"""The receiver against a real PostgreSQL server (a throw-away cluster started by the test).

Skipped, with the reason, when the PostgreSQL server programs (Debian package ``postgresql``) are
not installed; as root the cluster runs as the ``postgres`` user (initdb refuses root).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

import batchformat as package

from .packagekit import make_test_package
from .receiverkit import (
    free_port,
    get_receipt,
    package_metadata,
    start_receiver,
    tus_create,
    tus_head,
    tus_patch,
    upload_package,
    write_identity,
)


def _pg_bindir() -> Path | None:
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


@pytest.fixture
def postgres_url() -> Iterator[str]:
    bindir = _pg_bindir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        pytest.skip("PostgreSQL server programs (initdb, pg_ctl) not found: install the Debian package postgresql")
    run_as: list[str] = []
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run initdb as")
        if not shutil.which("runuser"):
            pytest.skip("running as root and runuser(1) is missing")
        run_as = ["runuser", "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="scanstation-pg-"))
    if owner is not None:
        os.chown(base, owner.pw_uid, owner.pw_gid)
    data, port = base / "data", free_port()
    try:
        subprocess.run([*run_as, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                        "-E", "UTF8", "--no-sync"], check=True, capture_output=True, timeout=120)
        options = f"-k {base} -p {port} -c listen_addresses=''"
        subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "log"),
                        "-w", "-t", "60", "start"], check=True, capture_output=True, timeout=90)
        yield f"postgresql+psycopg://postgres@/postgres?host={base}&port={port}"
    finally:
        subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def test_receiver_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    import psycopg
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    identity = write_identity(tmp_path / "portal.txt")
    key = Ed25519PrivateKey.generate()
    info, exp = make_test_package(tmp_path / "p", portal_recipient=str(identity.to_public()), n_docs=2,
                                  signing_key=key)
    with start_receiver(tmp_path, tmp_path / "portal.txt", database_url=postgres_url,
                        dev_station=(exp.station_id, "Test Unit", key)) as rx:
        # resumable state lives in PostgreSQL: kill -9 between chunks, resume from HEAD
        data = info.path.read_bytes()
        url = tus_create(rx.files_url, len(data), package_metadata(info, exp.station_id)).headers["Location"]
        assert tus_patch(url, 0, data[:20_000]).status_code == 204
        rx.kill()
        rx.start()
        assert tus_head(url).headers["Upload-Offset"] == "20000"
        assert tus_patch(url, 20_000, data[20_000:]).status_code == 204
        receipt = get_receipt(url)
        assert receipt.status_code == 200
        package.verify_receipt(receipt.content, rx.receipt_public_key, package_sha256=info.sha256,
                               manifest=info.manifest)
        # dedup through the PostgreSQL unique keys
        assert upload_package(rx, info, exp.station_id)[1].content == receipt.content
        assert requests.get(rx.url + f"receipts/{info.sha256}", timeout=5).content == receipt.content
        assert not (rx.data_dir / "receiver.db").exists()
    conninfo = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM packages").fetchone() == (1,)
        codes = [r[0] for r in conn.execute("SELECT employee_code FROM documents ORDER BY doc_id")]
    assert codes == [d["employee_code"] for d in info.manifest["documents"]]


def test_station_logs_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    """The station log tables on PostgreSQL: the checkpoint kept, a cut-back log refused, the next one accepted."""
    import psycopg
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from .packagekit import FakeLog

    identity = write_identity(tmp_path / "portal.txt")
    log = FakeLog("ST-PG", Ed25519PrivateKey.generate())

    def build(name: str, station_log: FakeLog, grow: int = 7) -> package.PackageInfo:
        return make_test_package(tmp_path / name, portal_recipient=str(identity.to_public()), n_docs=1,
                                 pages_per_doc=1, station_id="ST-PG", log=station_log,
                                 log_fields=station_log.fields(grow))[0]

    with start_receiver(tmp_path, tmp_path / "portal.txt", database_url=postgres_url,
                        dev_station=("ST-PG", "Test Unit", log.key)) as rx:
        first = build("a", log)
        receipt = upload_package(rx, first, "ST-PG")[1]
        assert receipt.status_code == 200, receipt.text
        acknowledged = log.acknowledge(receipt.content)
        cut = FakeLog("ST-PG", log.key)
        cut.tree.append(log.tree.leaf(0))
        refused = upload_package(rx, build("b", cut, grow=2), "ST-PG")[1]  # 3 entries, the portal holds 7
        assert refused.status_code == 422 and refused.json()["check"] == "audit_log_cut_back", refused.text
        assert upload_package(rx, build("c", log), "ST-PG")[1].status_code == 200
    conninfo = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT size, vkey FROM station_logs WHERE station_id = 'ST-PG'").fetchone()
        prefixes = [r[0] for r in conn.execute("SELECT size FROM station_log_prefixes WHERE station_id = 'ST-PG'")]
        version = conn.execute("SELECT version FROM schema_info").fetchone()
    assert row == (log.tree.size, log.vkey) and prefixes == [acknowledged.size] and version == (3,)

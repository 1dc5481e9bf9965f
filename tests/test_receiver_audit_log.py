"""The reference receiver keeps each station's audit checkpoint and refuses a log that is not an extension of it.

Real stations seal and upload to the real receiver (uvicorn subprocess): packages in and out of order are
accepted and their receipts carry the checkpoint the portal holds; a station whose audit log was cut back,
or rewritten with fresh hashes and signatures, is refused at the portal (the station itself refuses to
seal such a log while it still has the portal's acknowledgement).  Stand-in packages cover the pinned
key, and the database tables and their migration.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyrage
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import batchformat as package
from scanstation.audit.entries import AuditEntry, parse_detail

from .packagekit import FakeLog, make_test_package
from .receiverkit import ReceiverProcess, start_receiver, upload_package, write_identity
from .stationkit import StationEnv, make_station

STATION_ID = "station-1"  # scanstation init's default


def _station(tmp: Path, name: str, rx: ReceiverProcess, portal: pyrage.x25519.Identity) -> StationEnv:
    """A real station for this receiver, enrolled there with its signing key (the receiver serves plain HTTP as
    the dev station ``station-1``, the station's default id: these tests are about the audit log, not TLS)."""
    st = make_station(tmp / name, init_args=("--portal-url", rx.url, "--portal-receipt-key",
                                             str(rx.receipt_key_path)),
                      extra_config="\n[upload]\nretention_hours = 72\n", portal=portal)
    st.roster(*(f"E{seed}" for seed in (51, 52, 53, 54, 61, 62)))  # the codes _import files
    rx.enrol(_station_id(st), "Test Unit", st.unlock()[1].signing_key)
    return st


@contextlib.contextmanager
def _dev_receiver(tmp: Path, identity: Path) -> Iterator[ReceiverProcess]:
    rx = ReceiverProcess(tmp, identity, dev_station=STATION_ID)
    rx.start()
    try:
        yield rx
    finally:
        rx.stop()


def _import(st: StationEnv, tmp: Path, batch: str, seed: int) -> None:
    from scanstation_tools.synth import PageSpec, render_acr_page

    page = tmp / f"{st.root.name}-{batch}.png"
    render_acr_page(PageSpec(seed=seed, page_no=1, dpi=100)).image.save(page)
    st.run("import", "--batch", batch, "--employee", f"E{seed}", "--period", "2020-21", str(page), check=True)
    st.verify(batch)  # nothing is sealed unverified


def _seal(st: StationEnv, batch: str) -> Path:
    out = st.run("seal", "--batch", batch, check=True).stdout
    return Path(out.split(f"sealed batch {batch}: ")[1].split(" (")[0])


def _checkpoint(st: StationEnv, path: Path) -> package.SignedCheckpoint:
    portal = pyrage.x25519.Identity.from_str(st.portal_identity_file.read_text().strip())
    log = package.verify_package(path, [portal]).audit_log
    assert log is not None
    return log.checkpoint


def _receipt(st: StationEnv, batch: str) -> dict[str, Any]:
    import sqlcipher3

    with contextlib.closing(sqlcipher3.connect(st.data_dir / "station.db")) as db:
        db.execute(f"PRAGMA key = \"x'{st.unlock()[1].store_key.hex()}'\"")
        row = db.execute("SELECT u.receipt FROM uploads u JOIN batches b ON b.id = u.batch_id WHERE b.name = ?",
                         (batch,)).fetchone()
    assert row is not None and row[0], f"no receipt kept for {batch}"
    receipt: dict[str, Any] = json.loads(row[0])["receipt"]
    return receipt


def _forget_receipts(st: StationEnv) -> None:
    """What an attacker restoring station.db from before the uploads leaves: no acknowledgement on record."""
    import sqlcipher3

    with contextlib.closing(sqlcipher3.connect(st.data_dir / "station.db")) as db:
        db.execute(f"PRAGMA key = \"x'{st.unlock()[1].store_key.hex()}'\"")
        db.execute("UPDATE uploads SET receipt = NULL")
        db.commit()


def _drop_witness(st: StationEnv) -> None:
    """The checkpoint the service keeps outside audit.db goes too (the whole data directory is the attacker's)."""
    with contextlib.closing(sqlite3.connect(st.data_dir / "people.db")) as db:
        db.execute("DELETE FROM audit_witness")
        db.commit()


def _cut_back(st: StationEnv, keep: int) -> None:
    with contextlib.closing(sqlite3.connect(st.data_dir / "audit.db")) as db:
        db.execute("DELETE FROM entries WHERE seq >= ?", (keep,))
        db.execute("DELETE FROM checkpoints WHERE size > ?", (keep,))
        db.commit()
    _drop_witness(st)


def _rewrite(st: StationEnv, seq: int) -> None:
    """Entry ``seq`` changed and re-hashed; the checkpoints that covered it dropped (re-signed at the next unlock)."""
    with contextlib.closing(sqlite3.connect(st.data_dir / "audit.db")) as db:
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT * FROM entries WHERE seq = ?", (seq,)).fetchone()
        entry = AuditEntry(seq=row["seq"], ts="2020-01-01T00:00:00.000+00:00", actor=row["actor"], role=row["role"],
                           action=row["action"], subject=row["subject"], detail=parse_detail(row["detail"]),
                           sealed=row["sealed"], batch_id=row["batch_id"])
        db.execute("UPDATE entries SET ts = ?, leaf_hash = ? WHERE seq = ?", (entry.ts, entry.leaf_hash(), seq))
        db.execute("DELETE FROM checkpoints WHERE size > ?", (seq,))
        db.commit()
    _drop_witness(st)


def _station_log(rx: ReceiverProcess, station_id: str) -> dict[str, Any] | None:
    with contextlib.closing(sqlite3.connect(rx.data_dir / "receiver.db")) as db:
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT * FROM station_logs WHERE station_id = ?", (station_id,)).fetchone()
    return dict(row) if row else None


def _refusal(rx: ReceiverProcess, batch_uid: str) -> str | None:
    with contextlib.closing(sqlite3.connect(rx.data_dir / "receiver.db")) as db:
        row = db.execute("SELECT refusal_check FROM uploads WHERE batch_uid = ? AND state = 'refused'",
                         (batch_uid,)).fetchone()
    return row[0] if row else None


def _station_id(st: StationEnv) -> str:
    from scanstation.service.public_info import StationPublic

    return StationPublic.load(st.data_dir).station_id


# ---------------------------------------------------------------- real stations, real receiver


def test_cut_back_station_log_is_refused_by_the_receiver(tmp_path: Path) -> None:
    identity = tmp_path / "portal.txt"
    portal = write_identity(identity)
    with _dev_receiver(tmp_path, identity) as rx:
        st = _station(tmp_path, "st", rx, portal)
        station_id = _station_id(st)
        _import(st, tmp_path, "B1", 51)
        _import(st, tmp_path, "B2", 52)
        b1, b2 = _seal(st, "B1"), _seal(st, "B2")
        c1, c2 = _checkpoint(st, b1), _checkpoint(st, b2)
        # B2 first: the portal pins the station's key and keeps B2's checkpoint (B1's is proven a prefix of it)
        st.run("upload", "--batch", "B2", check=True, timeout=600)
        kept = _station_log(rx, station_id)
        assert kept is not None and (kept["size"], kept["note"]) == (c2.size, c2.note)
        assert kept["vkey"] == package.vkey(f"scanstation/{station_id}", st.unlock()[1].signing_key.public_key())
        # B1, sealed earlier and received later, is accepted; its receipt acknowledges the portal's latest (B2's)
        st.run("upload", "--batch", "B1", check=True, timeout=600)
        assert _receipt(st, "B1")["audit_checkpoint"] == _receipt(st, "B2")["audit_checkpoint"] == c2.note
        assert _receipt(st, "B1")["format"] == package.RECEIPT_FORMAT
        # A normal next batch carries a proof from the acknowledged checkpoint and is accepted
        _import(st, tmp_path, "B3", 53)
        b3 = _seal(st, "B3")
        portal_id = pyrage.x25519.Identity.from_str(st.portal_identity_file.read_text().strip())
        log3 = package.verify_package(b3, [portal_id]).audit_log
        assert log3 is not None and [p.base.note for p in log3.proofs] == [c2.note]
        st.run("upload", "--batch", "B3", check=True, timeout=600)
        c3 = log3.checkpoint
        assert _receipt(st, "B3")["audit_checkpoint"] == c3.note
        assert _station_log(rx, station_id)["size"] == c3.size  # type: ignore[index]
        assert c1.size < c2.size < c3.size

        # The attacker cuts the log back (entries and checkpoints, and the copy in people.db): on its own it
        # now looks like an intact, shorter log, and the station signs new checkpoints over it.
        _import(st, tmp_path, "B4", 54)
        _cut_back(st, c1.size - 5)
        assert st.run("audit", "verify", "--user", "head").returncode == 0
        # While the station still has the portal's acknowledgement, it refuses to seal by itself ...
        refused = st.run("seal", "--batch", "B4")
        assert refused.returncode == 25 and "cut back" in refused.stderr, refused.stdout + refused.stderr
        # ... and without it (station.db restored from before the uploads) the portal refuses the package.
        _forget_receipts(st)
        b4 = _seal(st, "B4")
        assert _checkpoint(st, b4).size < c3.size
        up = st.run("upload", "--batch", "B4", timeout=600)
        assert up.returncode != 0 and "audit_log_cut_back" in up.stdout + up.stderr, up.stdout + up.stderr
        assert _refusal(rx, package.read_envelope(b4)["batch_uid"]) == "audit_log_cut_back"
        assert _station_log(rx, station_id)["size"] == c3.size  # type: ignore[index]


def test_rewritten_station_log_is_refused_by_the_receiver(tmp_path: Path) -> None:
    identity = tmp_path / "portal.txt"
    portal = write_identity(identity)
    with _dev_receiver(tmp_path, identity) as rx:
        st = _station(tmp_path, "st", rx, portal)
        _import(st, tmp_path, "R1", 61)
        _import(st, tmp_path, "R2", 62)
        c1 = _checkpoint(st, _seal(st, "R1"))
        st.run("upload", "--batch", "R1", check=True, timeout=600)
        assert _receipt(st, "R1")["audit_checkpoint"] == c1.note
        # An entry the portal's checkpoint covers is changed, re-hashed, and the log signed again.
        _rewrite(st, c1.size // 2)
        assert st.run("audit", "verify", "--user", "head").returncode == 0
        refused = st.run("seal", "--batch", "R2")
        assert refused.returncode == 25 and "rewritten" in refused.stderr, refused.stdout + refused.stderr
        _forget_receipts(st)
        r2 = _seal(st, "R2")
        assert _checkpoint(st, r2).size > c1.size
        up = st.run("upload", "--batch", "R2", timeout=600)
        assert up.returncode != 0 and "audit_log_rewritten" in up.stdout + up.stderr, up.stdout + up.stderr
        assert _refusal(rx, package.read_envelope(r2)["batch_uid"]) == "audit_log_rewritten"


# ---------------------------------------------------------------- stand-in packages over HTTP


def test_pinned_key_and_checkpoint_in_receipts(tmp_path: Path) -> None:
    identity_path = tmp_path / "portal.txt"
    identity = write_identity(identity_path)
    log = FakeLog("ST-PIN", Ed25519PrivateKey.generate())

    def build(name: str, **kw: Any) -> tuple[package.PackageInfo, Any]:
        return make_test_package(tmp_path / name, portal_recipient=str(identity.to_public()), n_docs=1,
                                 pages_per_doc=1, station_id="ST-PIN", **kw)

    with start_receiver(tmp_path, identity_path, dev_station=("ST-PIN", "Test Unit", log.key)) as rx:
        first, _ = build("a", log=log)
        _, r = upload_package(rx, first, "ST-PIN")
        assert r.status_code == 200, r.text
        ack = log.acknowledge(r.content)
        package.verify_receipt(r.content, rx.receipt_public_key, package_sha256=first.sha256, manifest=first.manifest)
        # the same package again: the same receipt
        assert upload_package(rx, first, "ST-PIN")[1].content == r.content
        # another key for the enrolled station: refused before anything else, even with a self-consistent log
        other_key = Ed25519PrivateKey.generate()
        impostor, _ = build("b", log=FakeLog("ST-PIN", other_key))
        _, r = upload_package(rx, impostor, "ST-PIN")
        assert r.status_code == 422 and r.json()["check"] == "station_key", r.text
        # re-enrolled with that key, the station's audit log (pinned at its first package) still refuses it
        rx.enrol("ST-PIN", "Test Unit", other_key)
        _, r = upload_package(rx, impostor, "ST-PIN")
        assert r.status_code == 422 and r.json()["check"] == "audit_log_key_changed", r.text
        rx.enrol("ST-PIN", "Test Unit", log.key)
        # a package whose proof does not start at the portal's checkpoint (sealed against an older state)
        stale = FakeLog("ST-PIN", log.key)
        stale.tree = log.tree  # the same log, but no memory of what the portal acknowledged
        orphan, _ = build("c", log=stale)
        _, r = upload_package(rx, orphan, "ST-PIN")
        assert r.status_code == 422 and r.json()["check"] == "audit_log_rewritten", r.text
        # the genuine next one is accepted and its receipt acknowledges it
        nxt, _ = build("d", log=log)
        _, r = upload_package(rx, nxt, "ST-PIN")
        assert r.status_code == 200, r.text
        assert log.acknowledge(r.content).size > ack.size
        assert _station_log(rx, "ST-PIN")["size"] == log.acknowledged.size  # type: ignore[index,union-attr]


def test_database_migration_adds_the_station_log_tables(tmp_path: Path) -> None:
    from receiver.db import SCHEMA_VERSION, Database

    path = tmp_path / "receiver.db"
    Database(f"sqlite:///{path}").close()
    with contextlib.closing(sqlite3.connect(path)) as db:  # a version 1 database
        db.execute("DROP TABLE station_logs")
        db.execute("DROP TABLE station_log_prefixes")
        db.execute("UPDATE schema_info SET version = 1")
        db.commit()
    database = Database(f"sqlite:///{path}")
    try:
        assert database.station_log("ST-X") is None and not database.is_log_prefix("ST-X", 1, bytes(32))
    finally:
        database.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT version FROM schema_info").fetchone()[0] == SCHEMA_VERSION == 3
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"station_logs", "station_log_prefixes"} <= tables


def test_refusal_check_names_are_documented() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "portal-api.md").read_text()
    for check in ("audit_log", "audit_log_key_changed", "audit_log_cut_back", "audit_log_rewritten",
                  # issue 15: who is calling, what the portal trusts the station with, limits
                  "client_certificate", "station_unknown", "station_revoked", "station_mismatch", "station_key",
                  "manifest_ct_signature", "batch_foreign", "unit_mismatch", "unit_head_missing",
                  "unit_head_format", "unit_head_certificate", "unit_head_signing_time", "unit_head_expired",
                  "unit_head_signature", "unit_head_chain", "age_recipients", "age_header", "object_count",
                  "open_uploads", "reserved_bytes", "body_timeout", "request_format", "csr_signature", "csr_cn",
                  "csr_key", "signing_key"):
        assert f"`{check}`" in doc, check

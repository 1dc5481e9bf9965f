"""End to end: scanned pages -> sealed batch -> upload through a faulty link -> verified receipt -> purge.

The reference receiver runs as its own process on 127.0.0.1 behind the fault proxy; nothing is mocked.  It
serves plain HTTP with the station as its one ``--dev-station`` (enrolled with the station's own signing key),
except in the https test, where the station enrols for real (``scanstation enrol``, ``scanstation-receiver
enrol``) and presents its client certificate.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyrage
import pytest

from scanstation_tools.synth import PageSpec, render_acr_page
from tests.faultproxy import Fault, FaultProxy
from tests.receiverkit import ReceiverProcess, free_port, write_identity
from tests.stationkit import REPO, StationEnv, make_station
from tests.tlskit import self_signed


def _pages(tmp: Path, seed: int, n: int) -> list[str]:
    files = []
    for i in range(n):
        f = tmp / f"p-{seed}-{i}.png"
        render_acr_page(PageSpec(seed=seed, page_no=i + 1, dpi=100, noise=0.05)).image.save(f)
        files.append(str(f))
    return files


def _station(tmp: Path, portal_url: str, receipt_key: Path, retention_hours: float,
             portal: pyrage.x25519.Identity) -> StationEnv:
    """A station set up for this portal (its URL, receipt key and age identity)."""
    return make_station(
        tmp / "st",
        init_args=("--portal-url", portal_url, "--portal-receipt-key", str(receipt_key)),
        extra_config=f"\n[upload]\nchunk_bytes = 65536\nretention_hours = {retention_hours}\n",
        portal=portal,
    )


@contextlib.contextmanager
def receiver(tmp: Path, identity_file: Path, **kwargs: object) -> Iterator[ReceiverProcess]:
    """A reference receiver on a free port, not started yet (:func:`start_for` starts it for a station), with
    its receipt key made: a station is set up with the portal's URL and receipt key before it can enrol."""
    from receiver.keys import load_or_create_receipt_key

    rx = ReceiverProcess(tmp, identity_file, port=free_port(), **kwargs)  # type: ignore[arg-type]
    rx.data_dir.mkdir(parents=True, mode=0o700, exist_ok=True)
    load_or_create_receipt_key(rx.data_dir)
    try:
        yield rx
    finally:
        rx.stop()


def start_for(rx: ReceiverProcess, st: StationEnv) -> None:
    """Start ``rx`` serving plain HTTP as the station's dev receiver: the station enrolled with its own key."""
    config, key = st.unlock()
    rx.args += ["--dev-station", config.station.id]
    rx.enrol(config.station.id, config.station.unit, key.signing_key)
    rx.start()


def test_scan_seal_upload_through_faults_receipt_purge(tmp_path: Path) -> None:
    identity_file = tmp_path / "portal.txt"
    portal = write_identity(identity_file)
    with receiver(tmp_path, identity_file) as rx, FaultProxy(rx.port) as proxy:
        st = _station(tmp_path, proxy.url + "/", rx.receipt_key_path, retention_hours=0, portal=portal)
        start_for(rx, st)
        st.roster("E21", "E22")
        for seed, emp in ((21, "E21"), (22, "E22")):
            st.run("import", "--batch", "B1", "--employee", emp, "--period", "2020-21", *_pages(tmp_path, seed, 2),
                   check=True)
        status = json.loads(st.run("status", "--json", check=True).stdout)
        st.verify("B1")  # nothing is sealed unverified
        st.run("seal", "--batch", "B1", check=True)
        # A reset mid-chunk, a 503, and a flipped byte (the receiver's checksum must catch it).
        proxy.set_faults(Fault.reset(30_000, nth=1), Fault.respond(503, nth=2), Fault.flip(1000, nth=3))
        up = st.run("upload", "--batch", "B1", timeout=600)
        assert up.returncode == 0, up.stdout + up.stderr + rx.log_text()
        assert "received by the portal, receipt" in up.stdout
        assert proxy.counters["resets"] >= 1 and proxy.counters["flips"] >= 1, proxy.counters
        queue = json.loads(st.run("uploads", "--json", check=True).stdout)
        assert queue[0]["state"] == "purged" and queue[0]["receipt_id"]
        # Local copies are gone: vault objects, package; verify-vault is still clean.
        assert not list((st.data_dir / "outbox").glob("*.pkg"))
        assert not list((st.data_dir / "vault" / "objects").rglob("*.age"))
        assert st.run("verify-vault").returncode == 0
        import sqlcipher3

        with contextlib.closing(sqlcipher3.connect(st.data_dir / "station.db")) as db:
            db.execute(f"PRAGMA key = \"x'{st.unlock()[1].store_key.hex()}'\"")  # station.db is encrypted
            assert db.execute("SELECT COUNT(*) FROM batch_keys").fetchone()[0] == 0  # crypto-shredded
        after = json.loads(st.run("status", "--json", check=True).stdout)
        assert after["batches"][0]["state"] == "purged"
        # Sending again creates no duplicate and is answered from the receipt on record.
        again = st.run("upload", "--batch", "B1")
        assert again.returncode == 0 and "already received" in again.stdout, again.stdout + again.stderr

    # The receiver's store: per employee, objects re-encrypted to the portal only: the ACR file's PDF (each page
    # travels once, inside it) and the pages' OCR texts, which decrypt to the hashes the station recorded.
    store = rx.data_dir / "store"
    pages = status["batches"][0]["page_list"]
    recorded = {o["sha256"] for p in pages for o in p["objects"] if o["kind"] == "ocr_text"}
    assert len(pages) == 4 and recorded
    found = {}
    for emp in ("E21", "E22"):
        objs = list((store / emp).rglob("objects/*.age"))
        assert objs, f"nothing stored for {emp}"
        plains = [pyrage.decrypt(f.read_bytes(), [portal]) for f in objs]
        assert sum(p.startswith(b"%PDF-") for p in plains) == 1, f"{emp}: not one ACR file PDF"
        found.update({f.name: hashlib.sha256(p).hexdigest() for f, p in zip(objs, plains, strict=True)})
    assert recorded <= set(found.values()) and len(found) == 2 + len(recorded)


@pytest.mark.parametrize("retention", [72.0])
def test_no_purge_before_retention_and_receipt_kept(tmp_path: Path, retention: float) -> None:
    identity_file = tmp_path / "portal.txt"
    portal = write_identity(identity_file)
    with receiver(tmp_path, identity_file) as rx:
        st = _station(tmp_path, rx.url, rx.receipt_key_path, retention_hours=retention, portal=portal)
        start_for(rx, st)
        st.run("import", "--batch", "B2", *_pages(tmp_path, 31, 1), check=True)
        st.verify("B2")  # nothing is sealed unverified
        st.run("seal", "--batch", "B2", check=True)
        st.run("upload", "--batch", "B2", check=True, timeout=600)
        queue = json.loads(st.run("uploads", "--json", check=True).stdout)
        assert queue[0]["state"] == "received" and queue[0]["purge_after"]
        assert list((st.data_dir / "outbox").glob("*.pkg"))  # kept for the retention period
        assert st.run("verify-vault").returncode == 0


def test_receipt_signed_by_another_key_is_refused_and_nothing_purged(tmp_path: Path) -> None:
    identity_file = tmp_path / "portal.txt"
    portal = write_identity(identity_file)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    wrong_key = tmp_path / "wrong-receipt-key.pub"  # another portal's receipt key
    wrong_key.write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    with receiver(tmp_path, identity_file) as rx:
        st = _station(tmp_path, rx.url, wrong_key, retention_hours=0, portal=portal)
        start_for(rx, st)
        st.run("import", "--batch", "B3", *_pages(tmp_path, 41, 1), check=True)
        st.verify("B3")  # nothing is sealed unverified
        st.run("seal", "--batch", "B3", check=True)
        up = st.run("upload", "--batch", "B3", timeout=600)
        assert up.returncode == 21, up.stdout + up.stderr  # ReceiptInvalid
        assert "does not verify with the configured portal key" in up.stderr
        queue = json.loads(st.run("uploads", "--json", check=True).stdout)
        assert queue[0]["state"] == "failed" and not queue[0]["receipt_id"]
        status = json.loads(st.run("status", "--json", check=True).stdout)
        assert status["batches"][0]["state"] == "sealed"  # back for a person to look at; nothing purged
        assert list((st.data_dir / "outbox").glob("*.pkg"))
        assert st.run("verify-vault").returncode == 0


def enrol_at(rx: ReceiverProcess, st: StationEnv, tmp: Path) -> None:
    """The real enrolment: ``scanstation enrol --out``, ``scanstation-receiver enrol``, ``enrol --install``."""
    request, bundle = tmp / "enrolment-request.json", tmp / "enrolment-bundle.pem"
    st.run("enrol", "--out", str(request), "--user", "admin", check=True)
    enrolled = subprocess.run([sys.executable, "-m", "receiver", "enrol", str(request), "--data-dir",
                               str(rx.data_dir), "--out", str(bundle)], cwd=REPO, text=True, capture_output=True,
                              env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert enrolled.returncode == 0, enrolled.stdout + enrolled.stderr
    st.run("enrol", "--install", str(bundle), "--user", "admin", check=True)


def test_station_killed_mid_upload_resumes_and_portal_receives_once(tmp_path: Path) -> None:
    import signal
    import time

    identity_file = tmp_path / "portal.txt"
    portal = write_identity(identity_file)
    with receiver(tmp_path, identity_file) as rx:
        st = _station(tmp_path, rx.url, rx.receipt_key_path, retention_hours=0, portal=portal)
        start_for(rx, st)
        # A slow link, and pages that travel three times (raw capture and cleaned page beside the ACR file's
        # PDF, at the compact encoding): a compact package of these pages would be sent before it could be cut.
        text = st.config.read_text().replace("chunk_bytes = 65536",
                                             "chunk_bytes = 65536\nmax_bytes_per_second = 40000\ninclude_raw = true")
        st.config.write_text(text)
        st.run("import", "--batch", "B4", *_pages(tmp_path, 51, 3), check=True)
        st.verify("B4")  # nothing is sealed unverified
        st.run("seal", "--batch", "B4", check=True)
        size = next((st.data_dir / "outbox").glob("*.pkg")).stat().st_size
        assert size > 2 * 65536, f"a package of {size} bytes is too small to cut an upload in the middle"
        # The station runs as its service (the only process holding the keys, so the only one that can
        # report the upload's progress while it runs); the upload runs inside it and the service is killed.
        with st.serve() as service:
            proc = st.popen("upload", "--batch", "B4")
            deadline = time.monotonic() + 120
            offset = 0
            while time.monotonic() < deadline and proc.poll() is None:
                rows = json.loads(st.run("uploads", "--json", check=True).stdout)
                offset = rows[0]["confirmed_offset"] if rows else 0
                if offset > 0:
                    break
                time.sleep(0.1)
            assert proc.poll() is None and offset > 0, "upload finished before it could be interrupted"
            service.send_signal(signal.SIGKILL)
            service.wait()
            proc.communicate()
        size = json.loads(st.run("uploads", "--json", check=True).stdout)[0]["size"]
        assert offset < size
        # Also restart the receiver (kill -9) while the station is down: both must recover.
        rx.restart(kill=True)
        # The slow link was there to cut the first run mid-upload; the resumed run may send at full speed.
        st.config.write_text(st.config.read_text().replace("max_bytes_per_second = 40000\n", "", 1))
        up = st.run("upload", "--batch", "B4", timeout=600)
        assert up.returncode == 0, up.stdout + up.stderr + rx.log_text()
        queue = json.loads(st.run("uploads", "--json", check=True).stdout)
        assert queue[0]["state"] == "purged"
    # exactly one batch stored at the portal, under one batch uid
    batches = [p for p in (rx.data_dir / "store" / "_batches").iterdir()]
    assert len(batches) == 1


def test_https_portal_verified_against_configured_ca_and_refused_otherwise(tmp_path: Path) -> None:
    identity_file = tmp_path / "portal.txt"
    portal = write_identity(identity_file)
    cert, key = self_signed(tmp_path / "tls")
    with receiver(tmp_path, identity_file, tls=(cert, key)) as rx:
        assert rx.url.startswith("https://")
        st = _station(tmp_path, rx.url, rx.receipt_key_path, retention_hours=72, portal=portal)
        # An https portal needs the station's client certificate (issue 15): the station enrols, then the
        # receiver starts (it trusts the station CA its first enrolment made).
        enrol_at(rx, st, tmp_path)
        rx.start()
        st.run("import", "--batch", "T1", *_pages(tmp_path, 71, 1), check=True)
        st.verify("T1")  # nothing is sealed unverified
        st.run("seal", "--batch", "T1", check=True)
        # Without the portal's CA the station refuses the connection for good (no silent verify=False).
        refused = st.run("upload", "--batch", "T1", timeout=600)
        assert refused.returncode == 20, refused.stdout + refused.stderr
        assert "TLS" in refused.stderr or "certificate" in refused.stderr.lower()
        assert "[portal]\n" in st.config.read_text()  # written by init --portal-url
        text = st.config.read_text().replace("[portal]\n", f'[portal]\nca_bundle = "{cert}"\n', 1)
        st.config.write_text(text)
        ok = st.run("upload", "--batch", "T1", timeout=600)
        assert ok.returncode == 0, ok.stdout + ok.stderr + rx.log_text()
        assert "receipt" in ok.stdout


def test_purge_cut_short_is_finished_at_the_next_run(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from scanstation.facade import Station
    from scanstation.upload.queue import UploadQueue

    identity_file = tmp_path / "portal.txt"
    portal = write_identity(identity_file)
    with receiver(tmp_path, identity_file) as rx:
        st = _station(tmp_path, rx.url, rx.receipt_key_path, retention_hours=72, portal=portal)
        start_for(rx, st)
        st.run("import", "--batch", "B5", *_pages(tmp_path, 81, 2), check=True)
        st.verify("B5")  # nothing is sealed unverified
        st.run("seal", "--batch", "B5", check=True)
        st.run("upload", "--batch", "B5", check=True, timeout=600)
    config, key = st.unlock()
    later = datetime.now(UTC) + timedelta(hours=73)
    with Station(config, key) as station:
        queue = UploadQueue(station, clock=lambda: later)
        assert queue.purge_due(now=datetime.now(UTC)) == []  # retention not over: nothing goes
        real_delete, calls = station.vault.delete, []

        def dying_delete(oid: str) -> bool:  # the power goes after two objects
            calls.append(oid)
            if len(calls) > 2:
                raise OSError("simulated power cut")
            return real_delete(oid)

        station.vault.delete = dying_delete  # type: ignore[method-assign,assignment]
        with pytest.raises(OSError):
            queue.purge_due()
        station.vault.delete = real_delete  # type: ignore[method-assign]
        assert station.verify_vault() == []  # half-purged objects are expected gone, not "missing"
        assert queue.purge_due() == ["B5"]
        assert station.store.batch("B5").state.value == "purged"  # type: ignore[union-attr]
        assert not station.batch_keys.has_key(station.store.batch("B5").id)  # type: ignore[union-attr]
        assert station.verify_vault() == []

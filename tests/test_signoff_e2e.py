"""Issue 15's first acceptance point, end to end on loopback with real parts only.

A station that requires the unit head's sign-off (tests/stationkit.py), a SoftHSM2 token holding an RSA 2048 DSC
from the test CA (tests/dsckit.py, through test_signoff's ``pki``), and the reference receiver serving HTTPS on
127.0.0.1 (a self-signed server certificate made here with ``cryptography``, tests/tlskit.py) with the test
root as its ``--trust-roots``:

import (employee and period from a roster) -> close -> verify every page -> ``scanstation signoff`` (PIN file;
it seals) -> ``scanstation enrol --out`` / ``scanstation-receiver enrol`` / ``scanstation enrol --install`` ->
``scanstation upload`` presenting the client certificate -> the receipt verified (by the station, and here once
more from the receiver's database) -> purged.  At the receiver, the stored sign-off sheet validates with pyHanko
against the test root and the stored manifest's CMS (``signatures/unit-head.json``) with ``openssl cms -verify``.

A second station, never enrolled at this receiver, is refused without anything stored: without a certificate
the station does not even try, with a certificate from another portal's CA the TLS handshake fails, and its
package sent without a certificate gets 401 ``client_certificate``.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyrage
import pytest
import requests

import batchformat
from receiver.keys import load_or_create_receipt_key
from receiver.storage import safe_component
from scanstation_tools.synth import PageSpec, render_acr_page
from tests.receiverkit import ReceiverProcess, run_enrol, tus_create, write_identity
from tests.stationkit import StationEnv, make_station
from tests.test_signoff import (  # noqa: F401  (pki: the module-scoped fixture, SoftHSM2 tokens and the test CA)
    Pki,
    batch_state,
    check_cms_with_openssl,
    check_sheet,
    pin_file,
    pki,
)
from tests.tlskit import self_signed

pytestmark = pytest.mark.timeout(900)

BATCH = "E2E-SIGNED"
FILES = {"E100": ("2019-20", 31), "E200": ("2020-21", 32)}  # employee -> (ACR period, synthetic page seed)


def _pages(tmp: Path, employee: str, seed: int, n: int = 2) -> list[str]:
    out = []
    for i in range(1, n + 1):
        f = tmp / f"{employee}-p{i}.png"
        render_acr_page(PageSpec(seed=seed, page_no=i, dpi=100, noise=0.03)).image.save(f)
        out.append(str(f))
    return out


def _trust_portal(st: StationEnv, server_cert: Path) -> None:
    """``[portal] ca_bundle``: the CA the portal's TLS certificate chains to (here the certificate itself)."""
    text = st.config.read_text()
    assert "[portal]\n" in text
    st.config.write_text(text.replace("[portal]\n", f'[portal]\nca_bundle = "{server_cert}"\n', 1))


def _enrol(st: StationEnv, data_dir: Path, tmp: Path, name: str) -> None:
    """The station's request, registered by ``scanstation-receiver enrol`` in ``data_dir``, its answer installed."""
    request, bundle = tmp / f"{name}-request.json", tmp / f"{name}-bundle.pem"
    st.run("enrol", "--out", str(request), "--user", "admin", check=True)
    assert run_enrol(data_dir, request, bundle) == 0
    st.run("enrol", "--install", str(bundle), "--user", "admin", check=True)


def _uploads(st: StationEnv) -> dict[str, dict[str, Any]]:
    rows = json.loads(st.run("uploads", "--json", "--user", "head", check=True).stdout)
    return {r["batch"]: r for r in rows}


def _receiver_rows(rx: ReceiverProcess, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{rx.data_dir / 'receiver.db'}?mode=ro", uri=True) as db:
        return list(db.execute(sql, args))


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[tuple[ReceiverProcess, Any, Path]]:  # noqa: F811
    """(receiver over TLS with --trust-roots = the test root, not started yet; its age identity; server cert)."""
    root = tmp_path_factory.mktemp("portal")
    identity = write_identity(root / "portal-identity.txt")
    server_cert, server_key = self_signed(root / "tls")
    rx = ReceiverProcess(root, root / "portal-identity.txt", tls=(server_cert, server_key), trust_roots=pki.root_pem)
    rx.data_dir.mkdir(mode=0o700)
    load_or_create_receipt_key(rx.data_dir)  # the stations are set up with it before the receiver first starts
    try:
        yield rx, identity, server_cert
    finally:
        rx.stop()


def test_signed_off_batch_uploaded_over_mtls_and_verified_at_the_portal(
        portal: tuple[ReceiverProcess, Any, Path], pki: Pki, tmp_path: Path) -> None:  # noqa: F811
    rx, identity, server_cert = portal
    st = make_station(tmp_path / "st", signoff=True, portal=identity, extra_env=pki.hsm.env,
                      extra_config=pki.hsm.station_config(pki.tokens["rsa"], pki.root_pem)
                      + "\n[upload]\nretention_hours = 0\n",
                      init_args=("--portal-url", rx.url, "--portal-receipt-key", str(rx.receipt_key_path)))
    _trust_portal(st, server_cert)
    st.env["SCANSTATION_PIN_FILE"] = str(pin_file(tmp_path / "pin.txt"))
    st.run("users", "certificate", "head", str(pki.certs["rsa"]), check=True)  # the admin binds the head's DSC

    # import -> close -> verify every page
    st.roster(*FILES)
    for employee, (period, seed) in FILES.items():
        st.run("import", "--batch", BATCH, "--employee", employee, "--period", period,
               *_pages(tmp_path, employee, seed), check=True)
    st.verify(BATCH)
    assert batch_state(st, BATCH) == "verified"

    # sign off on the token (the PIN from the 0600 file); the sign-off seals
    signed = st.run("signoff", "--batch", BATCH)
    assert signed.returncode == 0, signed.stdout + signed.stderr
    assert "signed off by" in signed.stdout
    assert batch_state(st, BATCH) == "sealed"
    package_path = Path(re.search(r"^package (\S+) ", signed.stdout, re.M).group(1))  # type: ignore[union-attr]
    package_sha256 = hashlib.sha256(package_path.read_bytes()).hexdigest()
    batch_uid = batchformat.read_envelope(package_path)["batch_uid"]

    # enrol at the portal, then upload with the client certificate; the receipt is verified, the copy purged
    _enrol(st, rx.data_dir, tmp_path, "st1")
    rx.start()
    up = st.run("upload", "--batch", BATCH, "--user", "head", timeout=600)
    assert up.returncode == 0, up.stdout + up.stderr + rx.log_text()
    receipt_id = re.search(rf"batch {BATCH}: received by the portal, receipt (\w+)", up.stdout)
    assert receipt_id, up.stdout
    row = _uploads(st)[BATCH]
    assert row["state"] == "purged" and row["receipt_id"] == receipt_id.group(1), row
    assert batch_state(st, BATCH) == "purged"
    assert not package_path.exists()

    # the portal's side: the station that called is the enrolled one, and the package is stored under it
    (stored_station, receipt), = _receiver_rows(
        rx, "SELECT station_id, receipt FROM packages WHERE package_sha256 = ?", package_sha256)
    stations = _receiver_rows(rx, "SELECT station_id, unit, revoked FROM stations")
    assert stations == [(stored_station, "Test Unit", 0)]

    batch_dir = rx.data_dir / "store" / "_batches" / safe_component(batch_uid)
    manifest_bytes = pyrage.decrypt((batch_dir / "manifest.json.age").read_bytes(), [identity])
    manifest = json.loads(manifest_bytes)
    verified = batchformat.verify_receipt(receipt, rx.receipt_public_key, package_sha256=package_sha256,
                                          manifest=manifest)
    assert verified["receipt_id"] == receipt_id.group(1)
    assert verified["station_id"] == stored_station and verified["batch_uid"] == batch_uid
    assert {(d["employee_code"], d["acr_period"]) for d in verified["documents"]} == {
        (e, p) for e, (p, _seed) in FILES.items()}
    for employee, (period, _seed) in FILES.items():
        assert list((rx.data_dir / "store" / employee / period / safe_component(batch_uid)).glob("doc-*.json.age"))

    # the unit head's CMS over the stored manifest bytes, checked by openssl against the test root
    member = json.loads((batch_dir / "signatures" / "unit-head.json").read_text())
    block = manifest["signoff"]
    assert member["certificate_sha256"] == block["signer"]["certificate_sha256"]
    assert block["unit_head"] == "head"
    check_cms_with_openssl(tmp_path, manifest_bytes, member, pki.root_pem)
    # the stored sign-off sheet (an object of no ACR file), validated by pyHanko against the test root
    kinds = {o["id"]: o["kind"] for o in manifest["objects"]}
    assert kinds[block["sheet"]] == "signoff_sheet"
    sheet = pyrage.decrypt((batch_dir / "unfiled" / f"{block['sheet']}.age").read_bytes(), [identity])
    check_sheet(sheet, pki.root_pem)


def test_a_station_not_enrolled_is_refused_and_nothing_is_stored(
        portal: tuple[ReceiverProcess, Any, Path], tmp_path: Path) -> None:
    rx, identity, server_cert = portal
    if not rx.running:  # run on its own: the portal has not been started by the test above
        rx.start()
    before = {p.name for p in (rx.data_dir / "store" / "_batches").glob("*")} \
        if (rx.data_dir / "store" / "_batches").is_dir() else set()
    st = make_station(tmp_path / "st2", portal=identity,
                      init_args=("--station-id", "station-2", "--portal-url", rx.url,
                                 "--portal-receipt-key", str(rx.receipt_key_path)))
    _trust_portal(st, server_cert)
    st.roster("E300")
    st.run("import", "--batch", "NOT-ENROLLED", "--employee", "E300", "--period", "2021-22",
           *_pages(tmp_path, "E300", 33, n=1), check=True)
    st.verify("NOT-ENROLLED")
    sealed = st.run("seal", "--batch", "NOT-ENROLLED", "--user", "head", check=True)
    package_path = Path(re.search(r"(/\S+\.pkg)", sealed.stdout).group(1))  # type: ignore[union-attr]

    # 1. no client certificate: the station does not even call (exit 32, how to enrol), the batch stays queued
    up = st.run("upload", "--batch", "NOT-ENROLLED", "--user", "head", timeout=300)
    assert up.returncode == 32, up.stdout + up.stderr
    assert "station not enrolled" in up.stderr and "scanstation enrol --out" in up.stderr, up.stderr

    # 2. a certificate issued by another portal's station CA (a real enrolment there): the TLS handshake fails
    #    with the receiver's alert, and the upload fails for good (exit 20), naming the enrolment; nothing lost
    _enrol(st, tmp_path / "other-portal", tmp_path, "st2")
    up = st.run("upload", "--batch", "NOT-ENROLLED", "--user", "head", timeout=600)
    assert up.returncode == 20, up.stdout + up.stderr
    assert "refused the station's TLS client certificate" in up.stderr, up.stderr
    assert "scanstation enrol --out" in up.stderr, up.stderr
    assert batch_state(st, "NOT-ENROLLED") == "sealed" and package_path.exists()

    # 3. the package itself sent without a certificate: 401, check client_certificate, before anything is stored
    anonymous = requests.Session()
    anonymous.trust_env = False
    anonymous.verify = str(server_cert)
    data = package_path.read_bytes()
    meta = {"batch_uid": batchformat.read_envelope(package_path)["batch_uid"],
            "package_sha256": hashlib.sha256(data).hexdigest(), "station_id": "station-2"}
    refused = tus_create(rx.files_url, len(data), meta, http=anonymous)
    assert refused.status_code == 401, refused.text
    assert refused.json()["check"] == "client_certificate"

    # nothing of station-2 at the portal: not enrolled, no upload, no package, no file in the store
    assert not _receiver_rows(rx, "SELECT station_id FROM stations WHERE station_id = 'station-2'")
    assert not _receiver_rows(rx, "SELECT id FROM uploads WHERE station_id = 'station-2'")
    assert not _receiver_rows(rx, "SELECT package_sha256 FROM packages WHERE station_id = 'station-2'")
    after = {p.name for p in (rx.data_dir / "store" / "_batches").glob("*")} \
        if (rx.data_dir / "store" / "_batches").is_dir() else set()
    assert after == before
    assert not list((rx.data_dir / "store").glob("E300"))
    uploads_dir = rx.data_dir / "uploads"
    assert not uploads_dir.is_dir() or not list(uploads_dir.iterdir())

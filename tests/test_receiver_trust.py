"""A receiver that trusts only what it must (issue 15): enrolment, mTLS, enrolled keys, unit-head CMS, limits.

The real receiver runs with TLS on 127.0.0.1; stations are enrolled through the real ``scanstation-receiver
enrol`` and call with the client certificates it issued.  Unit-head signatures are real detached CMS
(cryptography's PKCS#7 builder) from a test CA made here, validated by the receiver with pyHanko.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyrage
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import batchformat as package

from .packagekit import FakeLog, make_test_package
from .receiverkit import (
    TUS,
    EnrolledStation,
    ReceiverProcess,
    enrolment_request,
    get_receipt,
    package_metadata,
    tus_create,
    tus_head,
    tus_patch,
    upload_package,
    write_identity,
)
from .tlskit import self_signed

REPO = Path(__file__).resolve().parents[1]
UNIT = "Test Unit"  # packagekit's manifests say this unit


# ---------------------------------------------------------------- certificates for the tests


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str, issuer: tuple[x509.Certificate, Any] | None = None,
            days: tuple[int, int] = (-1, 3650)) -> tuple[x509.Certificate, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = (issuer[0].subject, issuer[1]) if issuer else (_name(cn), key)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(issuer_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + dt.timedelta(days=days[0])).not_valid_after(now + dt.timedelta(days=days[1]))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(issuer_key, hashes.SHA256()))
    return cert, key


def make_leaf(cn: str, issuer: tuple[x509.Certificate, Any], *, not_before: dt.datetime | None = None,
              not_after: dt.datetime | None = None, client_auth: bool = False) -> tuple[x509.Certificate, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(issuer[0].subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before or now - dt.timedelta(days=1))
               .not_valid_after(not_after or now + dt.timedelta(days=365))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                            crl_sign=False, encipher_only=False, decipher_only=False), critical=True))
    if client_auth:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer[1], hashes.SHA256()), key


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def write_key(path: Path, key: Any) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return path


def cert_sha256(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


# ---------------------------------------------------------------- unit-head signatures


def cms_signer(cert: x509.Certificate, key: Any, chain: tuple[x509.Certificate, ...] = (),
               tamper: Callable[[bytes], bytes] = lambda b: b) -> Callable[[bytes], dict[str, Any]]:
    """A cosigner for write_package: detached CMS (DER) over the manifest bytes, as the plan's format says."""

    def sign(manifest_bytes: bytes) -> dict[str, Any]:
        builder = pkcs7.PKCS7SignatureBuilder().set_data(tamper(manifest_bytes)).add_signer(cert, key, hashes.SHA256())
        for extra in chain:
            builder = builder.add_certificate(extra)
        der = builder.sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature,
                                                        pkcs7.PKCS7Options.Binary])
        return {"signer": "unit-head", "format": "cms-detached-1", "cms": base64.b64encode(der).decode(),
                "certificate_sha256": cert_sha256(cert)}

    return sign


def signoff_block(cert: x509.Certificate) -> dict[str, Any]:
    return {"sheet": "0" * 32, "signed_at": "2026-01-02T03:04:05Z", "unit_head": "head",
            "signer": {"subject": cert.subject.rfc4514_string(), "issuer": cert.issuer.rfc4514_string(),
                       "serial": format(cert.serial_number, "x"), "certificate_sha256": cert_sha256(cert)}}


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def portal(tmp_path: Path) -> tuple[Path, pyrage.x25519.Identity]:
    path = tmp_path / "portal-identity.txt"
    return path, write_identity(path)


def build(tmp_path: Path, portal: Any, station: EnrolledStation, name: str, *,
          signing_key: Ed25519PrivateKey | None = None, signoff: x509.Certificate | None = None,
          **kw: Any) -> package.PackageInfo:
    key = signing_key or station.signing_key
    log = FakeLog(station.station_id, key)
    fields = log.fields()
    if signoff is not None:
        fields["signoff"] = signoff_block(signoff)
    info, _ = make_test_package(tmp_path / name, portal_recipient=str(portal[1].to_public()), n_docs=1,
                                pages_per_doc=1, station_id=station.station_id, log=log, log_fields=fields, **kw)
    return info


def stored(rx: ReceiverProcess) -> list[Path]:
    return sorted(p for d in ("store", "uploads") for p in (rx.data_dir / d).rglob("*") if p.is_file())


def upload_rows(rx: ReceiverProcess) -> int:
    with sqlite3.connect(rx.data_dir / "receiver.db") as db:
        return int(db.execute("SELECT count(*) FROM uploads").fetchone()[0])


def tls_receiver(tmp_path: Path, portal: Any, stations: dict[str, str], **kw: Any) -> tuple[ReceiverProcess,
                                                                                           dict[str, EnrolledStation]]:
    cert, key = self_signed(tmp_path / "tls")
    rx = ReceiverProcess(tmp_path, portal[0], tls=(cert, key), **kw)
    enrolled = {sid: rx.enrol(sid, unit) for sid, unit in stations.items()}
    rx.start()
    return rx, enrolled


# ---------------------------------------------------------------- enrolment


def test_enrol_checks_the_request_and_issues_a_client_certificate(tmp_path: Path) -> None:
    data_dir = tmp_path / "rx"
    key = Ed25519PrivateKey.generate()

    def enrol(request: bytes, name: str) -> tuple[int, str]:
        path = tmp_path / f"{name}.json"
        path.write_bytes(request)
        r = subprocess.run([sys.executable, "-m", "receiver", "enrol", str(path), "--data-dir", str(data_dir),
                            "--out", str(tmp_path / f"{name}.pem")], capture_output=True, text=True, timeout=60,
                           cwd=REPO)
        return r.returncode, r.stdout + r.stderr

    good, csr_key = enrolment_request("ST-ENROL-1", "Unit Nord", key)
    rc, out = enrol(good, "good")
    assert rc == 0 and "enrolled station ST-ENROL-1" in out, out
    assert (data_dir / "station-ca.key").stat().st_mode & 0o777 == 0o600
    ca = x509.load_pem_x509_certificate((data_dir / "station-ca.pem").read_bytes())
    bundle = x509.load_pem_x509_certificates((tmp_path / "good.pem").read_bytes())
    assert len(bundle) == 2 and bundle[1] == ca
    client = bundle[0]
    assert client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "ST-ENROL-1"
    assert client.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Unit Nord"
    assert client.public_key() == csr_key.public_key()
    assert ExtendedKeyUsageOID.CLIENT_AUTH in client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert 700 <= (client.not_valid_after_utc - client.not_valid_before_utc).days <= 735
    client.verify_directly_issued_by(ca)
    with sqlite3.connect(data_dir / "receiver.db") as db:
        row = db.execute("SELECT unit, signing_key, cert_serial, revoked FROM stations WHERE station_id = ?",
                         ("ST-ENROL-1",)).fetchone()
    assert row == ("Unit Nord", base64.b64encode(package.raw_public_key(key.public_key())).decode(),
                   format(client.serial_number, "x"), 0)

    # bad requests: refused with exit 32, naming the check; nothing registered
    tampered = json.loads(good)
    der = bytearray(x509.load_pem_x509_csr(tampered["csr"].encode()).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # inside the signature
    tampered["csr"] = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM).decode()
    cases = {
        "csr_signature": json.dumps(tampered).encode(),
        "csr_cn": enrolment_request("ST-ENROL-2", "U", key, cn="ST-OTHER")[0],
        "csr_key": enrolment_request("ST-ENROL-2", "U", key, csr_key=ec.generate_private_key(ec.SECP384R1()))[0],
        "station_id": enrolment_request("../etc", "U", key)[0],
        "signing_key": enrolment_request("ST-ENROL-2", "U", key, override={"signing_key": "AAAA"})[0],
        "request_format": enrolment_request("ST-ENROL-2", "U", key,
                                            override={"format": "scanstation-enrolment-0"})[0],
        "unit": enrolment_request("ST-ENROL-2", "", key)[0],
    }
    small_rsa = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    cases["csr_key "] = enrolment_request("ST-ENROL-2", "U", key, csr_key=small_rsa)[0]  # RSA < 2048
    for check, request in cases.items():
        rc, out = enrol(request, "bad")
        assert rc == 32 and f"refused: {check.strip()}:" in out, (check, out)
    with sqlite3.connect(data_dir / "receiver.db") as db:
        assert db.execute("SELECT count(*) FROM stations").fetchone()[0] == 1

    # re-enrolment of the same id: a new certificate replaces the old one, and it is logged
    again, _ = enrolment_request("ST-ENROL-1", "Unit Nord", key)
    rc, out = enrol(again, "again")
    assert rc == 0 and "re-enrolled station ST-ENROL-1" in out and format(client.serial_number, "x") in out, out
    with sqlite3.connect(data_dir / "receiver.db") as db:
        history = db.execute("SELECT cert_serial, replaced_serial FROM station_enrolments ORDER BY id").fetchall()
    new = x509.load_pem_x509_certificates((tmp_path / "again.pem").read_bytes())[0]
    assert history == [(format(client.serial_number, "x"), None),
                       (format(new.serial_number, "x"), format(client.serial_number, "x"))]


# ---------------------------------------------------------------- mTLS and the enrolled station's trust


def test_mtls_enrolled_keys_units_and_batch_uids(tmp_path: Path, portal: Any) -> None:
    rx, st = tls_receiver(tmp_path, portal, {"ST-A": UNIT, "ST-B": UNIT, "ST-C": "Other Unit"})
    try:
        a, b, c = st["ST-A"], st["ST-B"], st["ST-C"]
        info = build(tmp_path, portal, a, "a1")
        meta = package_metadata(info, "ST-A")
        assert requests.get(rx.url + "health", verify=str(rx.tls[0]), timeout=5).status_code == 200  # type: ignore[index]

        # no client certificate: 401 before anything is stored
        r = tus_create(rx.files_url, info.size, meta, http=_session(rx))
        assert r.status_code == 401 and r.json()["check"] == "client_certificate", r.text
        # a certificate of another CA, with the right CN: the TLS handshake itself fails
        other_ca = make_ca("not the portal's station CA")
        forged, forged_key = make_leaf("ST-A", other_ca, client_auth=True)
        (tmp_path / "forged.pem").write_bytes(pem(forged, other_ca[0]))
        s = _session(rx, (tmp_path / "forged.pem", write_key(tmp_path / "forged.key", forged_key)))
        with pytest.raises(requests.exceptions.SSLError, match=r"(?i)unknown ca|certificate"):  # the alert arrives
            tus_create(rx.files_url, info.size, meta, http=s)
        assert stored(rx) == [] and upload_rows(rx) == 0

        # the enrolled station: accepted, receipt verifies
        url, receipt = upload_package(rx, info, "ST-A", http=a.session())
        assert receipt.status_code == 200, receipt.text
        package.verify_receipt(receipt.content, rx.receipt_public_key, package_sha256=info.sha256)

        # another station sees nothing of A's upload or receipt
        for r in (get_receipt(url, http=b.session()), b.session().get(rx.url + f"receipts/{info.sha256}", timeout=5),
                  tus_head(url, http=b.session()), tus_patch(url, 0, b"x", http=b.session()),
                  b.session().delete(url, headers=TUS, timeout=5)):
            assert r.status_code == 404, (r.request.method, r.status_code, r.text)
        assert a.session().get(rx.url + f"receipts/{info.sha256}", timeout=5).content == receipt.content

        # A's package signed with another key: refused, named, nothing stored
        before = stored(rx)
        impostor = build(tmp_path, portal, a, "a2", signing_key=Ed25519PrivateKey.generate())
        _, r = upload_package(rx, impostor, "ST-A", http=a.session())
        assert r.status_code == 422 and r.json()["check"] == "station_key", r.text
        # B claiming to be A (metadata), or sending A's package: refused
        r = tus_create(rx.files_url, info.size, meta, http=b.session())
        assert r.status_code == 403 and r.json()["check"] == "station_mismatch", r.text
        _, r = upload_package(rx, info, "ST-B", meta=package_metadata(info, "ST-B", batch_uid="B-y"),
                              http=b.session())
        assert r.status_code == 422 and r.json()["check"] == "station_mismatch", r.text
        # B reusing A's batch uid: refused at creation and (metadata hiding it) at verification, never merged
        clash = build(tmp_path, portal, b, "b1", batch_uid=info.batch_uid)
        r = tus_create(rx.files_url, clash.size, package_metadata(clash, "ST-B"), http=b.session())
        assert r.status_code == 409 and r.json()["check"] == "batch_foreign", r.text
        _, r = upload_package(rx, clash, "ST-B", meta=package_metadata(clash, "ST-B", batch_uid="B-x"),
                              http=b.session())
        assert r.status_code == 422 and r.json()["check"] == "batch_foreign", r.text
        # C is enrolled for another unit than its manifest names
        _, r = upload_package(rx, build(tmp_path, portal, c, "c1"), "ST-C", http=c.session())
        assert r.status_code == 422 and r.json()["check"] == "unit_mismatch" and "Other Unit" in r.json()["error"]
        assert stored(rx) == before

        # re-enrolment supersedes the old certificate; revocation ends the station's access
        old = b.session()
        new_b = rx.enrol("ST-B", UNIT, b.signing_key)
        r = tus_create(rx.files_url, clash.size, package_metadata(clash, "ST-B"), http=old)
        assert r.status_code == 403 and r.json()["check"] == "station_unknown", r.text
        assert tus_create(rx.files_url, 10, package_metadata(clash, "ST-B", batch_uid="B-new"),
                          http=new_b.session()).status_code == 201
        revoke = subprocess.run([sys.executable, "-m", "receiver", "revoke", "ST-B", "--data-dir", str(rx.data_dir)],
                                capture_output=True, text=True, timeout=60, cwd=REPO)
        assert revoke.returncode == 0, revoke.stderr
        r = tus_create(rx.files_url, 10, package_metadata(clash, "ST-B", batch_uid="B-new2"), http=new_b.session())
        assert r.status_code == 403 and r.json()["check"] == "station_revoked", r.text
    finally:
        rx.stop()


def _session(rx: ReceiverProcess, cert: tuple[Path, Path] | None = None) -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # else REQUESTS_CA_BUNDLE in the environment overrides the session's verify
    s.verify = str(rx.tls[0])  # type: ignore[index]
    if cert:
        s.cert = (str(cert[0]), str(cert[1]))
    return s


# ---------------------------------------------------------------- the unit head's CMS signature


def test_unit_head_signature_is_required_and_checked(tmp_path: Path, portal: Any) -> None:
    root = make_ca("Test DSC root")
    intermediate = make_ca("Test DSC issuing CA", issuer=root)
    head, head_key = make_leaf("Unit Head Test", intermediate)
    now = dt.datetime.now(dt.UTC)
    expired, expired_key = make_leaf("Unit Head Expired", intermediate, not_before=now - dt.timedelta(days=400),
                                     not_after=now - dt.timedelta(days=30))
    stranger_ca = make_ca("Some other CA")
    stranger, stranger_key = make_leaf("Unit Head Elsewhere", stranger_ca)
    roots = tmp_path / "dsc-roots.pem"
    roots.write_bytes(pem(root[0]))

    rx, st = tls_receiver(tmp_path, portal, {"ST-A": UNIT}, trust_roots=roots)
    try:
        a = st["ST-A"]

        def send(name: str, cert: x509.Certificate | None, signer: Callable[[bytes], dict[str, Any]] | None
                 ) -> requests.Response:
            info = build(tmp_path, portal, a, name, signoff=cert,
                         cosigners={"unit-head": signer} if signer else None)
            return upload_package(rx, info, "ST-A", http=a.session())[1]

        chain = (intermediate[0],)
        r = send("none", None, None)
        assert r.status_code == 422 and r.json()["check"] == "unit_head_missing", r.text
        r = send("stranger", stranger, cms_signer(stranger, stranger_key, (stranger_ca[0],)))
        assert r.status_code == 422 and r.json()["check"] == "unit_head_chain", r.text
        r = send("expired", expired, cms_signer(expired, expired_key, chain))
        assert r.status_code == 422 and r.json()["check"] == "unit_head_expired", r.text
        r = send("altered", head, cms_signer(head, head_key, chain, tamper=lambda b: b.replace(b"Constable", b"Major")))
        assert r.status_code == 422 and r.json()["check"] == "unit_head_signature", r.text
        r = send("othercert", expired, cms_signer(head, head_key, chain))  # the manifest names another certificate
        assert r.status_code == 422 and r.json()["check"] == "unit_head_certificate", r.text
        assert stored(rx) == []

        r = send("good", head, cms_signer(head, head_key, chain))
        assert r.status_code == 200, r.text
        kept = list((rx.data_dir / "store" / "_batches").glob("*/signatures/unit-head.json"))
        assert len(kept) == 1 and json.loads(kept[0].read_text())["certificate_sha256"] == cert_sha256(head)
        # the same CMS verifies with openssl, as the plan requires
        member = json.loads(kept[0].read_text())
        manifest = pyrage.decrypt((kept[0].parents[1] / "manifest.json.age").read_bytes(), [portal[1]])
        (tmp_path / "sig.der").write_bytes(base64.b64decode(member["cms"]))
        (tmp_path / "manifest.json").write_bytes(manifest)
        chain_file = _write(tmp_path / "chain.pem", pem(intermediate[0]))
        ossl = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER",
                               "-in", str(tmp_path / "sig.der"), "-content", str(tmp_path / "manifest.json"),
                               "-CAfile", str(roots), "-certfile", str(chain_file), "-purpose", "any",
                               "-out", "/dev/null"], capture_output=True, text=True, timeout=60)
        assert ossl.returncode == 0, ossl.stderr
    finally:
        rx.stop()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------- limits


def test_limits_stanzas_open_uploads_slow_heads(tmp_path: Path, portal: Any) -> None:
    rx, st = tls_receiver(tmp_path, portal, {"ST-A": UNIT, "ST-FLOOD": UNIT},
                          extra_args=("--max-open-uploads", "4", "--max-reserved-bytes", "1000000",
                                      "--head-timeout", "4", "--body-timeout", "2"))
    try:
        a, flood = st["ST-A"], st["ST-FLOOD"]
        # a package whose manifest is encrypted to 1,000 recipients (made with the enrolled key)
        many = [str(pyrage.x25519.Identity.generate().to_public()) for _ in range(999)]
        log = FakeLog("ST-A", a.signing_key)
        info, exp = make_test_package(tmp_path / "many", portal_recipient=str(portal[1].to_public()), n_docs=1,
                                      pages_per_doc=1, object_size=1024, station_id="ST-A", log=log)
        big = package.write_package(tmp_path / "many.pkg", {k: v for k, v in info.manifest.items() if k != "objects"},
                                    exp.sources, signing_key=a.signing_key,
                                    recipients=[str(portal[1].to_public()), *many])
        assert 100_000 < big.size < 300_000
        started = time.perf_counter()
        with pytest.raises(package.PackageCheckError) as err:
            package.verify_package(big.path, [portal[1]], trusted_station_keys={"ST-A": a.public_raw})
        took = time.perf_counter() - started
        print(f"\n{big.size} byte package, 1,000 age stanzas: refused ({err.value.check}) in {took * 1000:.1f} ms")
        assert err.value.check == "age_recipients" and took < 1.0
        _, r = upload_package(rx, big, "ST-A", http=a.session())
        assert r.status_code == 422 and r.json()["check"] == "age_recipients", r.text

        # per-station caps: 4 open uploads, then 300 more creations refused; other stations unaffected
        s = flood.session()
        for i in range(4):
            assert tus_create(rx.files_url, 1000, {"batch_uid": f"F-{i}", "package_sha256": "a" * 64,
                                                    "station_id": "ST-FLOOD"}, http=s).status_code == 201
        refused = [tus_create(rx.files_url, 1000, {"batch_uid": f"G-{i}", "package_sha256": "a" * 64,
                                                    "station_id": "ST-FLOOD"}, http=s) for i in range(300)]
        assert {(r.status_code, r.json()["check"]) for r in refused} == {(429, "open_uploads")}
        r = tus_create(rx.files_url, 2_000_000, {"batch_uid": "H", "package_sha256": "a" * 64,
                                                 "station_id": "ST-A"}, http=a.session())
        assert r.status_code == 413 and r.json()["check"] == "reserved_bytes", r.text
        assert upload_rows(rx) == 4 + 1  # the flood's four and A's refused package

        # a request head trickled one line every 5 s is cut off (head timeout 4 s)
        ctx = ssl.create_default_context(cafile=str(rx.tls[0]))  # type: ignore[index]
        ctx.load_cert_chain(str(a.bundle), str(a.client_key))
        with socket.create_connection(("127.0.0.1", rx.port), timeout=30) as raw, \
                ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            started = time.monotonic()
            closed_at = None
            for line in (b"POST /files/ HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n", b"Tus-Resumable: 1.0.0\r\n",
                         b"X-Slow: 1\r\n"):
                try:
                    tls.sendall(line)
                    tls.settimeout(5)
                    if tls.recv(1) == b"":
                        closed_at = time.monotonic() - started
                        break
                except TimeoutError:
                    continue
                except (ssl.SSLError, OSError):
                    closed_at = time.monotonic() - started
                    break
        print(f"trickled head cut off after {closed_at} s")
        assert closed_at is not None and 3.5 <= closed_at < 9

        # a body that stops arriving is cut off too (body timeout 2 s) and nothing of it is kept
        url = tus_create(rx.files_url, 1000, {"batch_uid": "F-0", "package_sha256": "b" * 64,
                                              "station_id": "ST-A"}, http=a.session()).headers["Location"]

        def stalled() -> Iterator[bytes]:
            yield b"x" * 100
            time.sleep(4)
            yield b"y" * 100

        headers = {**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
        try:
            r = a.session().patch(url, data=stalled(), headers=headers, timeout=20)
            assert r.status_code == 408 and r.json()["check"] == "body_timeout", r.text
        except requests.exceptions.ConnectionError:
            pass  # the server closed the connection while the client was still sending
        assert tus_head(url, http=a.session()).headers["Upload-Offset"] == "0"
    finally:
        rx.stop()

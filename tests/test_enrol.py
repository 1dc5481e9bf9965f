"""The station's enrolment (issue 15, scope 4): request, sealed TLS key, certificate install, mTLS uploads.

Real parts only: the station's CLI in subprocesses, the openssl CLI on the CSR, a test CA made with
cryptography (what ``scanstation-receiver enrol`` does), and a real TLS server on 127.0.0.1 (the tests' tus
server with an ``ssl`` context that requires client certificates from the test CA and records the verified peer
certificate of every connection).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import io
import json
import os
import socket
import ssl
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from scanstation.upload.tus_client import RetryPolicy, TusClient
from tests.minitus import MiniTus
from tests.stationkit import REPO, StationEnv, make_station
from tests.tlskit import self_signed

UNIT = "Test Unit"  # what stationkit's init names the unit


# ------------------------------------------------------------------------------------------ a test station CA


@dataclass
class PortalCA:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def make(cls, name: str = "Test Portal Station CA") -> PortalCA:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, public_key: ec.EllipticCurvePublicKey, *, cn: str, unit: str = UNIT,
              eku: tuple[x509.ObjectIdentifier, ...] = (ExtendedKeyUsageOID.CLIENT_AUTH,),
              not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
              issuer: x509.Name | None = None) -> x509.Certificate:
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                                     x509.NameAttribute(NameOID.ORGANIZATION_NAME, unit)]))
            .issuer_name(issuer or self.cert.subject).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - dt.timedelta(minutes=5))
            .not_valid_after(not_after or now + dt.timedelta(days=730))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if eku:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def answer(self, request: dict[str, object], **kwargs: object) -> bytes:
        """The bundle the portal sends back for ``request``: client certificate, then this CA."""
        csr = x509.load_pem_x509_csr(str(request["csr"]).encode())
        key = csr.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        cert = self.issue(key, cn=str(request["station_id"]), **kwargs)  # type: ignore[arg-type]
        return cert.public_bytes(serialization.Encoding.PEM) + self.pem


def _request(st: StationEnv, tmp: Path, name: str = "request.json") -> dict[str, object]:
    out = tmp / name
    st.run("enrol", "--out", str(out), "--user", "admin", check=True)
    data: dict[str, object] = json.loads(out.read_text())
    return data


def _install(st: StationEnv, bundle: bytes, tmp: Path, name: str = "bundle.pem") -> subprocess.CompletedProcess[str]:
    f = tmp / name
    f.write_bytes(bundle)
    return st.run("enrol", "--install", str(f), "--user", "admin")


def _station_id(st: StationEnv) -> str:
    from scanstation.config import load_config

    return load_config(st.config).station.id


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> StationEnv:
    return make_station(tmp_path_factory.mktemp("enrol") / "st")


# ------------------------------------------------------------------------------------------ the request


def test_request_format_csr_and_sealed_key(station: StationEnv, tmp_path: Path) -> None:
    st = station
    request = _request(st, tmp_path)
    assert set(request) == {"format", "station_id", "unit", "signing_key", "csr", "created_at"}
    assert request["format"] == "scanstation-enrolment-1"
    assert request["station_id"] == _station_id(st) and request["unit"] == UNIT
    dt.datetime.fromisoformat(str(request["created_at"]).replace("Z", "+00:00"))
    # The signing key is the station's Ed25519 key: the one that signs station.json (derived from the identity).
    _config, key = st.unlock()
    raw = base64.b64decode(str(request["signing_key"]))
    assert raw == key.signing_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                            serialization.PublicFormat.Raw)
    Ed25519PublicKey.from_public_bytes(raw)
    # The CSR verifies (openssl), names the station and its unit, for a P-256 key.
    csr_file = tmp_path / "csr.pem"
    csr_file.write_text(str(request["csr"]))
    check = subprocess.run(["openssl", "req", "-verify", "-noout", "-in", str(csr_file)], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "verify ok" in (check.stdout + check.stderr).lower()
    csr = x509.load_pem_x509_csr(str(request["csr"]).encode())
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == _station_id(st)
    assert csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == UNIT
    csr_key = csr.public_key()
    assert isinstance(csr_key, ec.EllipticCurvePublicKey) and csr_key.curve.name == "secp256r1"
    # The TLS key is on disk only sealed: no PEM private key anywhere in the data directory, and the sealed
    # file (0600) opens with the station key to the CSR's key.
    for f in st.data_dir.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert b"PRIVATE KEY" not in data, f
    sealed = list((st.data_dir / "enrolment").glob("tls-key-*.age"))
    assert len(sealed) == 1
    assert sealed[0].stat().st_mode & 0o777 == 0o600
    assert sealed[0].read_bytes().startswith(b"age-encryption.org/v1\n")
    opened = serialization.load_pem_private_key(key.decrypt(sealed[0].read_bytes()), None)
    assert isinstance(opened, ec.EllipticCurvePrivateKey)
    assert opened.public_key().public_numbers() == csr_key.public_numbers()
    # Audited, with the key's fingerprint.
    entries = json.loads(st.run("audit", "show", "--json", "--user", "admin", check=True).stdout)
    assert any(e["action"] == "enrol.request" and e["actor"] == "admin" for e in entries)


def test_only_the_admin_enrols(station: StationEnv, tmp_path: Path) -> None:
    for user in ("sup", "head", "op"):
        refused = station.run("enrol", "--out", str(tmp_path / f"{user}.json"), "--user", user)
        assert refused.returncode == 22, refused.stdout + refused.stderr
        assert "enrol" in refused.stderr
    assert not list(tmp_path.glob("*.json"))


def test_enrol_runs_inside_the_running_service(station: StationEnv, tmp_path: Path) -> None:
    """With ``scanstation serve`` running, the commands run inside it (it holds the data directory)."""
    with station.serve():
        out = tmp_path / "in-service.json"
        made = station.run("enrol", "--out", str(out), "--user", "admin")
        assert made.returncode == 0, made.stdout + made.stderr
        assert json.loads(out.read_text())["station_id"] == _station_id(station)
        shown = station.run("enrol", "--status", "--json", "--user", "op")  # anyone may look
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["pending_request"]
        refused = station.run("enrol", "--out", str(tmp_path / "op.json"), "--user", "op")
        assert refused.returncode == 22 and not (tmp_path / "op.json").exists()


# ------------------------------------------------------------------------------------------ install refusals


def test_install_refuses_bundles_that_do_not_match(station: StationEnv, tmp_path: Path) -> None:
    st = station
    ca, other_ca = PortalCA.make(), PortalCA.make("Another CA")
    request = _request(st, tmp_path)
    csr_key = x509.load_pem_x509_csr(str(request["csr"]).encode()).public_key()
    assert isinstance(csr_key, ec.EllipticCurvePublicKey)
    sid = _station_id(st)
    now = dt.datetime.now(dt.UTC)
    stranger = ec.generate_private_key(ec.SECP256R1()).public_key()

    def pem(cert: x509.Certificate, *rest: bytes) -> bytes:
        return cert.public_bytes(serialization.Encoding.PEM) + b"".join(rest)

    cases = {
        "public key": pem(ca.issue(stranger, cn=sid), ca.pem),
        "subject CN": pem(ca.issue(csr_key, cn="another-station"), ca.pem),
        "subject O": pem(ca.issue(csr_key, cn=sid, unit="Another Unit"), ca.pem),
        "extended key usage": pem(ca.issue(csr_key, cn=sid, eku=(ExtendedKeyUsageOID.SERVER_AUTH,)), ca.pem),
        "validity": pem(ca.issue(csr_key, cn=sid, not_before=now - dt.timedelta(days=800),
                                 not_after=now - dt.timedelta(days=1)), ca.pem),
        # issued by one CA, bundled with another
        "issuer": pem(ca.issue(csr_key, cn=sid), other_ca.pem),
        "format": pem(ca.issue(csr_key, cn=sid)),  # the CA is missing
    }
    # the right issuer name but another CA's key: the signature does not verify
    forged = other_ca.issue(csr_key, cn=sid, issuer=ca.cert.subject)
    for check, bundle in [*cases.items(), ("issuer", pem(forged, ca.pem))]:
        refused = _install(st, bundle, tmp_path)
        assert refused.returncode == 32, (check, refused.stdout + refused.stderr)
        assert f"({check})" in refused.stderr, (check, refused.stderr)
    assert _install(st, b"not a certificate", tmp_path).returncode == 32
    status = st.run("enrol", "--status", "--json", "--user", "admin", check=True)
    assert json.loads(status.stdout)["installed"] is None  # nothing stored by any refusal
    entries = json.loads(st.run("audit", "show", "--json", "--user", "admin", check=True).stdout)
    assert sum(e["action"] == "enrol.install_refused" for e in entries) >= len(cases)
    # The right answer installs; --status shows it; the request is answered.
    good = _install(st, ca.answer(request), tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    shown = st.run("enrol", "--status", "--user", "admin", check=True).stdout
    cert = x509.load_pem_x509_certificate((st.data_dir / "enrolment" / "client-cert.pem").read_bytes())
    assert f"serial:     {cert.serial_number:x}" in shown
    assert f"CN={sid}" in shown and "CN=Test Portal Station CA" in shown and "not after:" in shown
    assert not (st.data_dir / "enrolment" / "request.json").exists()
    # A bundle for the old request's key after a new request: the installed certificate stays.
    newer = _request(st, tmp_path, "newer.json")
    assert newer["csr"] != request["csr"]
    assert len(list((st.data_dir / "enrolment").glob("tls-key-*.age"))) == 2  # installed + pending
    status_after = json.loads(st.run("enrol", "--status", "--json", "--user", "admin", check=True).stdout)
    assert status_after["installed"]["serial"] == f"{cert.serial_number:x}" and status_after["pending_request"]


# ------------------------------------------------------------------------------------------ uploads over mTLS


class _RecordingSocket(ssl.SSLSocket):
    """A server-side TLS socket that records each handshake's verified client certificate (or its failure).

    On a failed handshake it reads what the client already sent before the socket closes, so the client
    receives the TLS alert (and not a reset that would hide it).
    """

    peers: list[dict[str, str] | str]

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except ssl.SSLError as e:
            self.peers.append(f"refused: {e.reason}")
            with contextlib.suppress(OSError):
                self.settimeout(0.5)
                while socket.socket.recv(self, 65536):
                    pass
            raise
        peer = self.getpeercert()
        subject: dict[str, str] = {}
        for rdn in peer["subject"] if peer else ():
            for name, value in rdn:  # type: ignore[str-unpack]
                subject[str(name)] = str(value)
        self.peers.append(subject or "no certificate")


def _recorded(peers: list[dict[str, str] | str], timeout: float = 10.0) -> bool:
    """Whether the server's thread recorded a handshake: it records a refusal after the client has already seen
    the connection fail, so the client's error can come first."""
    import time

    deadline = time.monotonic() + timeout
    while not peers and time.monotonic() < deadline:
        time.sleep(0.01)
    return bool(peers)


def _mtls_context(root: Path, client_ca: bytes) -> tuple[ssl.SSLContext, Path, list[dict[str, str] | str]]:
    """A server context on 127.0.0.1 requiring client certificates from ``client_ca``; (context, its server
    certificate for the client to trust, the recorded peers)."""
    cert, key = self_signed(root / "tls")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=client_ca.decode())
    peers: list[dict[str, str] | str] = []
    recording = type("Recording", (_RecordingSocket,), {"peers": peers})
    ctx.sslsocket_class = recording
    return ctx, cert, peers


def _upload(minitus: MiniTus, server_cert: Path, client_cert: tuple[str, str] | None) -> bytes:
    data = os.urandom(200_000)
    with TusClient(minitus.endpoint, ca_bundle=str(server_cert), client_cert=client_cert, chunk_bytes=65536,
                   retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02)) as client:
        url = client.upload(io.BytesIO(data), len(data))
    assert minitus.data(url) == data
    return data


def _pages(tmp: Path, seed: int) -> list[str]:
    from scanstation_tools.synth import PageSpec, render_acr_page

    f = tmp / f"p-{seed}.png"
    render_acr_page(PageSpec(seed=seed, page_no=1, dpi=100, noise=0.05)).image.save(f)
    return [str(f)]


def test_uploads_present_the_certificate_and_need_enrolment(tmp_path: Path) -> None:
    from scanstation.enrolment import EnrolmentFiles, client_credentials
    from scanstation.errors import EnrolmentError, PortalRejected
    from scanstation.vault.ramdir import RamDir

    ca, rogue_ca = PortalCA.make(), PortalCA.make("Rogue CA")
    ctx, server_cert, peers = _mtls_context(tmp_path, ca.pem)
    receipt_key = tmp_path / "receipt-key.pub"
    receipt_key.write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    with MiniTus(tls=ctx) as minitus:
        st = make_station(tmp_path / "st", init_args=("--portal-url", minitus.url + "/", "--portal-receipt-key",
                                                      str(receipt_key)))
        text = st.config.read_text().replace("[portal]\n", f'[portal]\nca_bundle = "{server_cert}"\n', 1)
        st.config.write_text(text)
        st.run("import", "--batch", "M1", *_pages(tmp_path, 91), check=True)
        st.verify("M1")
        st.run("seal", "--batch", "M1", "--user", "head", check=True)

        # Not enrolled: nothing is sent, the message says how to enrol, the batch stays queued.
        up = st.run("upload", "--batch", "M1", timeout=600)
        assert up.returncode == 32, up.stdout + up.stderr
        assert "station not enrolled: run scanstation enrol --out" in up.stderr
        queue = json.loads(st.run("uploads", "--json", check=True).stdout)
        assert queue[0]["state"] == "queued" and queue[0]["attempts"] == 0
        assert peers == []  # not even a connection

        config, key = st.unlock()
        files = EnrolmentFiles(config.data_dir)
        with RamDir(prefix="scanstation-enrol-test") as ram:
            with pytest.raises(EnrolmentError, match="station not enrolled"):
                client_credentials(files, key, ram)
            # The server requires a client certificate: without one the handshake fails, and the message
            # names the station's enrolment.
            with pytest.raises(PortalRejected, match=r"client certificate.*scanstation enrol"):
                _upload(minitus, server_cert, None)
            assert _recorded(peers) and str(peers[-1]).startswith("refused")

            # Enrolled: the certificate and the unsealed key are RAM files (0600) and every connection presents it.
            assert _install(st, ca.answer(_request(st, tmp_path)), tmp_path).returncode == 0
            creds = client_credentials(files, key, ram)
            assert creds.key_path.parent == ram.path and creds.key_path.stat().st_mode & 0o777 == 0o600
            assert client_credentials(files, key, ram) == creds  # kept for the process's life
            peers.clear()
            _upload(minitus, server_cert, creds.for_requests)
            assert peers and all(p == {"commonName": _station_id(st), "organizationName": UNIT} for p in peers)

            # A certificate from a CA the portal does not know: refused in the handshake, enrolment named.
            rogue_bundle = rogue_ca.answer(_request(st, tmp_path, "r2.json"))
            assert _install(st, rogue_bundle, tmp_path, "rogue.pem").returncode == 0
            rogue = client_credentials(files, key, ram)
            assert rogue.key_path != creds.key_path and not creds.key_path.exists()  # the old key left RAM
            with pytest.raises(PortalRejected, match=r"client certificate.*scanstation enrol"):
                _upload(minitus, server_cert, rogue.for_requests)
        assert not ram.path.exists()  # closed with the station: the key is gone
    # The key went through RAM only: still no PEM private key in the data directory.
    assert not [f for f in st.data_dir.rglob("*") if f.is_file() and b"PRIVATE KEY" in f.read_bytes()]


# ------------------------------------------------------------------------------------------ the real receiver


def _receiver_enrols() -> bool:
    return (REPO / "receiver" / "enrolment.py").exists()


@pytest.mark.skipif(not _receiver_enrols(), reason="the receiver's enrolment (issue 15, scope 5) is not here yet")
def test_station_enrolled_at_the_reference_receiver_uploads_over_mtls(tmp_path: Path) -> None:
    """The whole way: enrol --out, scanstation-receiver enrol, enrol --install, upload over mutual TLS."""
    import requests

    from receiver.keys import load_or_create_receipt_key
    from tests.receiverkit import ReceiverProcess, free_port, write_identity

    identity = tmp_path / "portal.txt"
    portal = write_identity(identity)
    server_cert, server_key = self_signed(tmp_path / "tls")
    rx = ReceiverProcess(tmp_path, identity, tls=(server_cert, server_key), port=free_port())
    rx.data_dir.mkdir(mode=0o700)
    load_or_create_receipt_key(rx.data_dir)  # the station is set up with it before the receiver first starts
    st = make_station(tmp_path / "st", portal=portal, extra_config="\n[upload]\nmax_attempts = 2\n",
                      init_args=("--portal-url", rx.url, "--portal-receipt-key", str(rx.receipt_key_path)))
    st.config.write_text(st.config.read_text().replace("[portal]\n", f'[portal]\nca_bundle = "{server_cert}"\n', 1))
    st.run("import", "--batch", "R1", *_pages(tmp_path, 93), check=True)
    st.verify("R1")
    st.run("seal", "--batch", "R1", "--user", "head", check=True)

    # A certificate the portal never issued is installed first (its bundle is self-consistent).
    rogue = _install(st, PortalCA.make("Rogue CA").answer(_request(st, tmp_path, "r0.json")), tmp_path, "r0.pem")
    assert rogue.returncode == 0, rogue.stderr
    # The portal enrols the station's next request (and makes its station CA on the way).
    request = _request(st, tmp_path, "r1.json")
    enrolled = subprocess.run([sys.executable, "-m", "receiver", "enrol", str(tmp_path / "r1.json"), "--data-dir",
                               str(rx.data_dir), "--out", str(tmp_path / "bundle.pem")], cwd=REPO, text=True,
                              capture_output=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert enrolled.returncode == 0, enrolled.stdout + enrolled.stderr
    rx.start()
    try:
        # No certificate at all: the portal answers nothing but 401.
        anonymous = requests.get(f"{rx.url}receipts/{'0' * 64}", verify=str(server_cert), timeout=10)
        assert anonymous.status_code == 401, anonymous.text
        # The rogue certificate fails the handshake: with the TLS alert, refused for good (20); a server that drops
        # the connection without the alert looks like a dropped link: retried, then given up (19).  Either way
        # the message names the client certificate and the enrolment, and the batch is kept.
        up = st.run("upload", "--batch", "R1", timeout=600)
        assert up.returncode in (19, 20), up.stdout + up.stderr
        assert "client certificate" in up.stderr and "scanstation enrol" in up.stderr, up.stderr
        # The portal's answer installs (it is for the pending request r1) and the upload goes through.
        assert request["station_id"] == _station_id(st)
        good = st.run("enrol", "--install", str(tmp_path / "bundle.pem"), "--user", "admin")
        assert good.returncode == 0, good.stdout + good.stderr
        ok = st.run("upload", "--batch", "R1", timeout=600)
        assert ok.returncode == 0, ok.stdout + ok.stderr + rx.log_text()
        assert "received by the portal, receipt" in ok.stdout
    finally:
        rx.stop()

"""Test helpers for the unit head's DSC sign-off: a test CA and SoftHSM2 tokens, all real.

* :func:`make_ca` builds a root and an intermediate CA with ``cryptography``; :meth:`TestCA.issue` a signer
  certificate under the intermediate (RSA 2048 or ECDSA P-256; validity and key usage chosen by the test).
* :class:`SoftHsm` is one SoftHSM2 installation per test session: a private ``softhsm2.conf`` with its own
  token directory (``SOFTHSM2_CONF`` points at it in the test process and in every station the tests run).
  :meth:`SoftHsm.token` initialises a token (``softhsm2-util --init-token --free``), imports the signer's key
  (``softhsm2-util --import``, PKCS#8) and stores the certificate on the token with the key's CKA_ID and label
  (python-pkcs11, in a child process so the test process's loaded module sees every token at its next
  ``C_Initialize``).

Run as ``python -m tests.dsckit store-cert LABEL PIN DER_FILE ID_HEX OBJECT_LABEL`` for that last step.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "246810"
SO_PIN = "13579024"
REPO = Path(__file__).resolve().parents[1]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def softhsm_available() -> bool:
    return Path(MODULE).is_file() and shutil.which("softhsm2-util") is not None


def require_softhsm() -> None:
    if not softhsm_available():
        pytest.skip(f"SoftHSM2 is not installed ({MODULE} and softhsm2-util are needed for token tests)")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_key(kind: str) -> PrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"key kind {kind!r}: rsa or p256")


def _name(cn: str, org: str = "ScanStation Test PKI") -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "IN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                         encipher_only=False, decipher_only=False)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Signer:
    """A signer's certificate and key (the key also lives on a token once :meth:`SoftHsm.token` ran)."""

    cert: x509.Certificate
    key: PrivateKey
    chain: list[x509.Certificate]  # intermediates, signer's issuer first

    def write_pem(self, path: Path) -> Path:
        path.write_bytes(pem(self.cert))
        return path


@dataclass
class TestCA:
    """A root and an intermediate; :meth:`issue` makes signer certificates under the intermediate."""

    __test__ = False  # not a pytest test class

    name: str
    root: x509.Certificate
    root_key: PrivateKey
    inter: x509.Certificate
    inter_key: PrivateKey
    serial: int = field(default=1000)

    def root_pem(self, path: Path) -> Path:
        path.write_bytes(pem(self.root))
        return path

    def issue(self, cn: str, *, kind: str = "rsa", not_before: dt.datetime | None = None,
              not_after: dt.datetime | None = None, digital_signature: bool = True,
              non_repudiation: bool = True, key_encipherment: bool = False) -> Signer:
        key = new_key(kind)
        self.serial += 1
        start = not_before or _now() - dt.timedelta(days=1)
        end = not_after or _now() + dt.timedelta(days=365)
        usage = x509.KeyUsage(digital_signature=digital_signature, content_commitment=non_repudiation,
                              key_encipherment=key_encipherment and kind == "rsa", data_encipherment=False,
                              key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False,
                              decipher_only=False)
        cert = (x509.CertificateBuilder()
                .subject_name(_name(cn, "Test Police Unit"))
                .issuer_name(self.inter.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(start)
                .not_valid_after(end)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(usage, critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.inter_key.public_key()),
                               critical=False)
                .sign(self.inter_key, hashes.SHA256()))
        return Signer(cert, key, [self.inter])


def issue_tsa(ca: TestCA, cn: str = "Test TSA") -> Signer:
    """A time-stamping authority's certificate under ``ca``'s intermediate (EKU timeStamping, critical; RSA,
    the only kind pyHanko's DummyTimeStamper signs with)."""
    key = new_key("rsa")
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(ca.inter.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
            .sign(ca.inter_key, hashes.SHA256()))
    return Signer(cert, key, [ca.inter])


class TsaServer:
    """An RFC 3161 time-stamping authority over HTTP on 127.0.0.1 (pyHanko's DummyTimeStamper answers), for
    PAdES B-T: the station reaches it by URL like any TSA."""

    def __init__(self, tsa: Signer) -> None:
        import http.server
        import threading

        from asn1crypto import keys as asn1_keys
        from asn1crypto import tsp
        from asn1crypto import x509 as asn1_x509
        from pyhanko.sign.timestamps import DummyTimeStamper
        from pyhanko_certvalidator.registry import SimpleCertificateStore

        stamper = DummyTimeStamper(
            tsa_cert=asn1_x509.Certificate.load(tsa.cert.public_bytes(serialization.Encoding.DER)),
            tsa_key=asn1_keys.PrivateKeyInfo.load(tsa.key.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())),
            certs_to_embed=SimpleCertificateStore.from_certs(
                [asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)) for c in tsa.chain]))
        self.requests = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                reply = stamper.request_tsa_response(tsp.TimeStampReq.load(body)).dump()
                outer.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def make_ca(name: str = "Test CCA") -> TestCA:
    """A self-signed root (10 years) and an intermediate under it (5 years), both ECDSA P-256."""
    root_key = ec.generate_private_key(ec.SECP256R1())
    start = _now() - dt.timedelta(days=30)
    root = (x509.CertificateBuilder()
            .subject_name(_name(f"{name} Root"))
            .issuer_name(_name(f"{name} Root"))
            .public_key(root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(_ca_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = (x509.CertificateBuilder()
             .subject_name(_name(f"{name} Sub-CA"))
             .issuer_name(root.subject)
             .public_key(inter_key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(start)
             .not_valid_after(start + dt.timedelta(days=1825))
             .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
             .add_extension(_ca_usage(), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(inter_key.public_key()), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
                            critical=False)
             .sign(root_key, hashes.SHA256()))
    return TestCA(name, root, root_key, inter, inter_key)


@dataclass
class Token:
    label: str
    pin: str
    key_label: str
    signer: Signer


class SoftHsm:
    """One SoftHSM2 configuration (its own token directory) for a test session."""

    def __init__(self, root: Path) -> None:
        require_softhsm()
        self.root = root
        self.tokens = root / "tokens"
        self.tokens.mkdir(parents=True, exist_ok=True)
        self.conf = root / "softhsm2.conf"
        self.conf.write_text(f"directories.tokendir = {self.tokens}\nobjectstore.backend = file\n"
                             "log.level = ERROR\nslots.removable = false\n")
        self.module = MODULE
        self._count = 0

    @property
    def env(self) -> dict[str, str]:
        return {"SOFTHSM2_CONF": str(self.conf)}

    def _util(self, *args: str) -> str:
        env = {**os.environ, **self.env}
        proc = subprocess.run(["softhsm2-util", *args], env=env, text=True, capture_output=True, timeout=60)
        if proc.returncode != 0:
            raise AssertionError(f"softhsm2-util {args[0]} failed: {proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def token(self, signer: Signer, *, label: str | None = None, key_label: str = "unit head DSC",
              pin: str = PIN, extra_certs: bool = True) -> Token:
        """A fresh token holding ``signer``'s key pair and certificate (and the intermediates when
        ``extra_certs``, as Indian DSC tokens carry their chain)."""
        self._count += 1
        label = label or f"dsc{self._count}"
        self._util("--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", SO_PIN)
        key_file = self.root / f"{label}.key.pem"
        key_file.write_bytes(signer.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
        key_id = f"{self._count:04x}"
        try:
            self._util("--import", str(key_file), "--token", label, "--label", key_label, "--id", key_id,
                       "--pin", pin)
        finally:
            key_file.unlink()
        certs = [(signer.cert, key_id, key_label)]
        if extra_certs:
            certs += [(c, f"ca{i:02x}", f"CA {i}") for i, c in enumerate(signer.chain)]
        for cert, cid, clabel in certs:
            der = self.root / f"{label}-{cid}.der"
            der.write_bytes(cert.public_bytes(serialization.Encoding.DER))
            proc = subprocess.run([sys.executable, "-m", "tests.dsckit", "store-cert", label, pin, str(der), cid,
                                   clabel], env={**os.environ, **self.env, "PYTHONPATH": str(REPO)}, cwd=REPO,
                                  text=True, capture_output=True, timeout=60)
            if proc.returncode != 0:
                raise AssertionError(f"storing a certificate on token {label} failed: {proc.stderr}")
        return Token(label, pin, key_label, signer)

    def station_config(self, token: Token, trust_roots: Path, *, key_label: str | None = None) -> str:
        """The ``[signoff]`` section of a station that signs with ``token``."""
        return (f'\n[signoff]\npkcs11_module = "{self.module}"\ntoken_label = "{token.label}"\n'
                f'key_label = "{token.key_label if key_label is None else key_label}"\n'
                f'trust_roots = "{trust_roots}"\n')


@contextmanager
def softhsm_conf(hsm: SoftHsm) -> Iterator[None]:
    """``SOFTHSM2_CONF`` set to ``hsm``'s configuration in this process (an in-process station loads the module
    with it), and put back as it was afterwards."""
    before = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(hsm.conf)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = before


def _store_cert(label: str, pin: str, der_file: str, id_hex: str, object_label: str) -> None:
    import pkcs11
    from pkcs11 import Attribute, CertificateType, ObjectClass

    der = Path(der_file).read_bytes()
    cert = x509.load_der_x509_certificate(der)
    lib = pkcs11.lib(MODULE)
    token = lib.get_token(token_label=label)
    with token.open(user_pin=pin, rw=True) as session:
        session.create_object({
            Attribute.CLASS: ObjectClass.CERTIFICATE,
            Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
            Attribute.TOKEN: True,
            Attribute.PRIVATE: False,
            Attribute.LABEL: object_label,
            Attribute.ID: bytes.fromhex(id_hex),
            Attribute.SUBJECT: cert.subject.public_bytes(),
            Attribute.ISSUER: cert.issuer.public_bytes(),
            Attribute.VALUE: der,
        })


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "store-cert":
        _store_cert(*sys.argv[2:])
    else:
        sys.exit("usage: python -m tests.dsckit store-cert LABEL PIN DER_FILE ID_HEX OBJECT_LABEL")

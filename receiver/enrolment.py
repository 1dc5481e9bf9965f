"""Station enrolment: check a station's enrolment request, issue its TLS client certificate from the
portal's station CA, and register what the portal will trust it with (docs/portal-api.md, "Enrolment").

The request (``scanstation enrol --out FILE``) is JSON::

    {"format": "scanstation-enrolment-1", "station_id": "...", "unit": "...",
     "signing_key": "<base64 raw Ed25519 public key>", "csr": "<PEM PKCS#10>", "created_at": "<RFC 3339>"}

The station CA (``DATA_DIR/station-ca.pem``, key ``station-ca.key`` 0600) is made on first use.  The
portal then knows a station by three things only: its client certificate (serial and SHA-256: who is
calling), its Ed25519 key (what signed a package) and its unit (what it may deliver for).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from batchformat import atomic

from .db import Station

REQUEST_FORMAT = "scanstation-enrolment-1"
CA_CERT = "station-ca.pem"
CA_KEY = "station-ca.key"
CLIENT_CERT_DAYS = 2 * 365
CA_DAYS = 20 * 365
MAX_REQUEST_BYTES = 64 * 1024
# Station ids become certificate CNs, database keys and log fields: a conservative syntax.
STATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
_REQUEST_KEYS = {"format", "station_id", "unit", "signing_key", "csr", "created_at"}


class EnrolmentRefused(Exception):
    """The request failed one named check (``check``); the message says what was wrong."""

    def __init__(self, check: str, reason: str) -> None:
        super().__init__(f"{check}: {reason}")
        self.check = check
        self.reason = reason


@dataclass(frozen=True)
class EnrolmentRequest:
    station_id: str
    unit: str
    signing_key: bytes  # raw Ed25519
    csr: x509.CertificateSigningRequest
    created_at: str


@dataclass(frozen=True)
class Enrolled:
    station: Station
    bundle: bytes  # client certificate PEM + station CA PEM
    replaced: Station | None


def parse_request(data: bytes, source: str = "request") -> EnrolmentRequest:
    """The request, every field checked; EnrolmentRefused names the failed check."""
    if len(data) > MAX_REQUEST_BYTES:
        raise EnrolmentRefused("request_format", f"{source} is larger than {MAX_REQUEST_BYTES} bytes")
    try:
        doc: Any = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise EnrolmentRefused("request_format", f"{source} is not UTF-8 JSON ({e})") from None
    if not isinstance(doc, dict):
        raise EnrolmentRefused("request_format", f"{source} is not a JSON object")
    if doc.get("format") != REQUEST_FORMAT:
        raise EnrolmentRefused("request_format", f"format is {doc.get('format')!r}, expected {REQUEST_FORMAT!r}")
    if set(doc) != _REQUEST_KEYS:
        raise EnrolmentRefused("request_format", f"keys must be exactly {sorted(_REQUEST_KEYS)}")
    for key in _REQUEST_KEYS:
        if not isinstance(doc[key], str):
            raise EnrolmentRefused("request_format", f"{key} must be a string")
    station_id, unit = doc["station_id"], doc["unit"]
    if not STATION_ID.match(station_id):
        raise EnrolmentRefused("station_id", f"station id {station_id[:80]!r} is not 1-64 characters of "
                                             "A-Z a-z 0-9 . _ - starting with a letter or digit")
    if not unit.strip() or len(unit) > 256 or any(ord(c) < 32 or ord(c) == 127 for c in unit):
        raise EnrolmentRefused("unit", "unit must be 1-256 characters without control characters")
    if not _RFC3339.match(doc["created_at"]):
        raise EnrolmentRefused("created_at", "created_at is not an RFC 3339 timestamp")
    try:
        signing_key = base64.b64decode(doc["signing_key"], validate=True)
        Ed25519PublicKey.from_public_bytes(signing_key)
    except (binascii.Error, ValueError):
        raise EnrolmentRefused("signing_key", "signing_key is not a base64 raw 32-byte Ed25519 public key") from None
    csr = _check_csr(doc["csr"], station_id)
    return EnrolmentRequest(station_id, unit, signing_key, csr, doc["created_at"])


def _check_csr(pem: str, station_id: str) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_pem_x509_csr(pem.encode("ascii"))
    except (UnicodeEncodeError, ValueError) as e:
        raise EnrolmentRefused("csr", f"csr is not a PEM PKCS#10 certificate request ({e})") from None
    if not csr.is_signature_valid:
        raise EnrolmentRefused("csr_signature", "the CSR's self-signature does not verify with its public key")
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(cns) != 1 or cns[0].value != station_id:
        got = [c.value for c in cns]
        raise EnrolmentRefused("csr_cn", f"the CSR's common name {got!r} is not the station id {station_id!r}")
    key = csr.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise EnrolmentRefused("csr_key", f"EC key on {key.curve.name}; only P-256 is accepted")
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise EnrolmentRefused("csr_key", f"RSA key of {key.key_size} bits; at least 2048 are required")
    else:
        raise EnrolmentRefused("csr_key", f"{type(key).__name__} keys are not accepted (ECDSA P-256 or RSA >= 2048)")
    return csr


# ------------------------------------------------------------------ the station CA


def load_or_create_ca(data_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The portal's station CA, made on first use (key 0600); it signs only station client certificates."""
    cert_path, key_path = data_dir / CA_CERT, data_dir / CA_KEY
    if cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_path}: expected an EC private key")
        return cert, key
    if cert_path.exists() or key_path.exists():
        raise ValueError(f"{data_dir}: only one of {CA_CERT} and {CA_KEY} exists; restore the other")
    atomic.ensure_dir(data_dir, 0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ScanStation portal"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "ScanStation station CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    # the key first: a CA certificate without its key would be useless, a key without certificate is re-made
    atomic.atomic_write(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()), mode=0o600)
    atomic.atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return cert, key


def issue_certificate(request: EnrolmentRequest, ca_cert: x509.Certificate,
                      ca_key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    """The station's TLS client certificate: CN = station id, O = unit, EKU clientAuth, 2 years."""
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, request.unit),
                         x509.NameAttribute(NameOID.COMMON_NAME, request.station_id)])
    public_key = request.csr.public_key()
    assert isinstance(public_key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey))  # _check_csr made sure
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject).public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=CLIENT_CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def cert_serial(cert: x509.Certificate) -> str:
    return format(cert.serial_number, "x")


def cert_sha256(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def enrol(request: EnrolmentRequest, data_dir: Path, db: Any) -> Enrolled:
    """Issue the certificate and register the station (``db``: receiver.db.Database)."""
    ca_cert, ca_key = load_or_create_ca(data_dir)
    cert = issue_certificate(request, ca_cert, ca_key)
    station = Station(station_id=request.station_id, unit=request.unit, signing_key=request.signing_key,
                      cert_serial=cert_serial(cert), cert_sha256=cert_sha256(cert),
                      enrolled_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), revoked=False)
    replaced = db.enrol_station(station)
    bundle = cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM)
    return Enrolled(station, bundle, replaced)

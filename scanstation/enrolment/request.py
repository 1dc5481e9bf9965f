"""``scanstation enrol --out FILE``: the station's enrolment request (format: docs/plans/issue-15.md).

The request carries what the portal must know to trust this station: its id and unit, the Ed25519 public key
that signs ``station.json`` and the audit checkpoints, and a PKCS#10 CSR (CN = station id, O = unit) for a
fresh ECDSA P-256 TLS client key.  Everything here is public except that TLS key, which is sealed to the
station's own age recipient before the request exists (:mod:`scanstation.enrolment.files`).  Only public
information is needed (``station.pub``), so an admin makes the request on a locked station.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyrage import x25519

from batchformat.atomic import atomic_write
from scanstation.enrolment.files import EnrolmentFiles, key_fingerprint
from scanstation.errors import EnrolmentError

REQUEST_FORMAT = "scanstation-enrolment-1"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def build_csr(key: ec.EllipticCurvePrivateKey, station_id: str, unit: str) -> x509.CertificateSigningRequest:
    subject = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, station_id),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, unit),
    ])
    return x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())


def make_request(files: EnrolmentFiles, *, station_id: str, unit: str, recipient: x25519.Recipient,
                 signing_key: bytes, now: datetime | None = None) -> tuple[dict[str, Any], str]:
    """Make a new TLS key (sealed at once to ``recipient``), its CSR, and the request, kept as the pending one;
    returns the request and the key's fingerprint.

    ``recipient`` and ``signing_key`` (raw Ed25519 public key) are the station's public ones (``station.pub``).
    A new request replaces an earlier pending one (its key is deleted); an installed certificate and its key
    stay in use until the certificate answering this request is installed.
    """
    if len(signing_key) != 32:
        raise EnrolmentError("the station's signing key is not a raw 32-byte Ed25519 public key")
    key = ec.generate_private_key(ec.SECP256R1())
    fingerprint = key_fingerprint(key.public_key())
    files.seal_key(key, recipient)
    csr = build_csr(key, station_id, unit)
    del key  # from here on it exists only sealed
    request = {
        "format": REQUEST_FORMAT,
        "station_id": station_id,
        "unit": unit,
        "signing_key": base64.b64encode(signing_key).decode("ascii"),
        "csr": csr.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        "created_at": rfc3339(now or datetime.now(UTC)),
    }
    atomic_write(files.request, request_bytes(request), mode=0o644)
    installed = installed_fingerprint(files)
    files.remove_keys_except({fingerprint} | ({installed} if installed else set()))
    return request, fingerprint


def request_bytes(request: dict[str, Any]) -> bytes:
    return (json.dumps(request, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def pending_request(files: EnrolmentFiles) -> tuple[dict[str, Any], x509.CertificateSigningRequest] | None:
    """The pending request and its CSR, or None when there is none (never made, or answered by an install)."""
    try:
        request = json.loads(files.request.read_text("utf-8"))
        csr = x509.load_pem_x509_csr(request["csr"].encode("ascii"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise EnrolmentError(f"{files.request}: the pending enrolment request is damaged ({e}); make a new "
                             "one with scanstation enrol --out FILE") from e
    return request, csr


def installed_fingerprint(files: EnrolmentFiles) -> str | None:
    """The key fingerprint of the installed certificate, or None."""
    try:
        cert = x509.load_pem_x509_certificate(files.certificate.read_bytes())
    except FileNotFoundError:
        return None
    except ValueError as e:
        raise EnrolmentError(f"{files.certificate}: the installed client certificate is damaged ({e})") from e
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise EnrolmentError(f"{files.certificate}: the installed client certificate has no ECDSA key")
    return key_fingerprint(key)

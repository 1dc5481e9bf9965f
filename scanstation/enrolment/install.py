"""``scanstation enrol --install CERT``: check the portal's certificate bundle, then store the certificate.

The bundle (docs/plans/issue-15.md) is one PEM file: the station's client certificate, then the portal's
station CA certificate.  Nothing is stored unless every check passes; each refusal is an EnrolmentError
(exit 32) naming the check:

* the bundle holds exactly two PEM certificates;
* the certificate's public key is the key of this station's pending request (or of the certificate already
  installed: installing the same answer twice is harmless);
* subject CN is the station id, and O the unit;
* extended key usage includes clientAuth;
* it is valid now;
* the second certificate is a CA (basicConstraints cA) valid now, whose name is the issuer and whose key
  verifies the certificate's signature.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from batchformat.atomic import atomic_write
from scanstation.enrolment.files import EnrolmentFiles, key_fingerprint
from scanstation.enrolment.request import installed_fingerprint, pending_request, rfc3339
from scanstation.errors import EnrolmentError

MAX_BUNDLE_BYTES = 256 * 1024  # two certificates are a few KB; anything this big is not a bundle


@dataclass(frozen=True)
class CertificateInfo:
    """What ``enrol --status`` shows and the audit trail records about a client certificate."""

    subject: str  # RFC 4514
    issuer: str
    serial: str  # hex
    not_before: str  # RFC 3339
    not_after: str
    certificate_sha256: str
    key_fingerprint: str

    def as_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


def describe(cert: x509.Certificate) -> CertificateInfo:
    key = cert.public_key()
    fingerprint = key_fingerprint(key) if isinstance(key, ec.EllipticCurvePublicKey) else ""
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(), issuer=cert.issuer.rfc4514_string(), serial=f"{cert.serial_number:x}",
        not_before=rfc3339(cert.not_valid_before_utc), not_after=rfc3339(cert.not_valid_after_utc),
        certificate_sha256=cert.fingerprint(hashes.SHA256()).hex(), key_fingerprint=fingerprint,
    )


def _refuse(source: str, check: str, detail: str) -> EnrolmentError:
    return EnrolmentError(f"{source}: certificate bundle refused ({check}): {detail}")


def parse_bundle(data: bytes, source: str) -> tuple[x509.Certificate, x509.Certificate]:
    """(client certificate, CA certificate) from the bundle, or EnrolmentError naming what is wrong."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise _refuse(source, "format", f"{len(data)} bytes is too large for a certificate bundle")
    if b"PRIVATE KEY" in data:
        # A portal must never send a key; refusing keeps a pasted key from being stored as "public".
        raise _refuse(source, "format", "the file contains a private key; the portal sends certificates only")
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as e:
        raise _refuse(source, "format", f"not a PEM certificate bundle ({e})") from None
    if len(certs) != 2:
        raise _refuse(source, "format", f"expected 2 certificates (the station's client certificate, then the "
                                        f"portal's station CA), found {len(certs)}")
    return certs[0], certs[1]


def _names(name: x509.Name, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(a.value) for a in name.get_attributes_for_oid(oid)]


def check_bundle(files: EnrolmentFiles, cert: x509.Certificate, ca: x509.Certificate, *, source: str,
                 station_id: str, unit: str, now: datetime) -> str:
    """Every check of the module docstring; returns the certificate's key fingerprint."""
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise _refuse(source, "public key", "the certificate's key is not this station's ECDSA TLS key")
    fingerprint = key_fingerprint(key)
    pending = pending_request(files)
    accepted = set()
    if pending is not None:
        csr_key = pending[1].public_key()
        if isinstance(csr_key, ec.EllipticCurvePublicKey):
            accepted.add(key_fingerprint(csr_key))
    installed = installed_fingerprint(files)
    if installed:
        accepted.add(installed)
    if fingerprint not in accepted:
        what = (f"the pending request made at {pending[0].get('created_at', '?')}" if pending is not None
                else "no pending request (run scanstation enrol --out FILE first)")
        raise _refuse(source, "public key", f"the certificate is for another key than this station's: {what}")
    if not files.sealed_key(fingerprint).exists():
        raise _refuse(source, "public key", f"the sealed TLS key {files.sealed_key(fingerprint)} is missing; "
                                            "make a new request with scanstation enrol --out FILE")
    cns = _names(cert.subject, NameOID.COMMON_NAME)
    if cns != [station_id]:
        raise _refuse(source, "subject CN", f"the certificate is for {', '.join(cns) or 'no CN'}, this station is "
                                            f"{station_id!r}")
    orgs = _names(cert.subject, NameOID.ORGANIZATION_NAME)
    if orgs != [unit]:
        raise _refuse(source, "subject O", f"the certificate names unit {', '.join(orgs) or 'none'}, this station's "
                                           f"unit is {unit!r}")
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    if eku is None or ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        raise _refuse(source, "extended key usage", "the certificate is not for TLS client authentication "
                                                    "(no clientAuth)")
    _check_validity(source, "validity", cert, now)
    try:
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise _refuse(source, "issuer", f"the second certificate ({ca.subject.rfc4514_string()}) is not a CA")
    _check_validity(source, "issuer validity", ca, now)
    try:
        cert.verify_directly_issued_by(ca)
    except ValueError:
        raise _refuse(source, "issuer", f"the certificate was issued by {cert.issuer.rfc4514_string()}, not by the "
                                        f"bundle's CA {ca.subject.rfc4514_string()}") from None
    except (InvalidSignature, TypeError, UnsupportedAlgorithm):
        raise _refuse(source, "issuer", f"the certificate's signature does not verify with the key of the bundle's "
                                        f"CA {ca.subject.rfc4514_string()}") from None
    return fingerprint


def _check_validity(source: str, check: str, cert: x509.Certificate, now: datetime) -> None:
    if now < cert.not_valid_before_utc:
        raise _refuse(source, check, f"{cert.subject.rfc4514_string()} is not valid before "
                                     f"{rfc3339(cert.not_valid_before_utc)} (now {rfc3339(now)})")
    if now > cert.not_valid_after_utc:
        raise _refuse(source, check, f"{cert.subject.rfc4514_string()} expired at "
                                     f"{rfc3339(cert.not_valid_after_utc)} (now {rfc3339(now)})")


def install_bundle(files: EnrolmentFiles, data: bytes, *, source: str, station_id: str, unit: str,
                   now: datetime | None = None) -> CertificateInfo:
    """Check the bundle and store its certificate (and CA); from then on uploads present it."""
    cert, ca = parse_bundle(data, source)
    fingerprint = check_bundle(files, cert, ca, source=source, station_id=station_id, unit=unit,
                               now=now or datetime.now(UTC))
    files.ensure()
    atomic_write(files.ca_certificate, ca.public_bytes(serialization.Encoding.PEM), mode=0o644)
    # The commit point: uploads from now on use this certificate and the key its public key names.
    atomic_write(files.certificate, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    pending = pending_request(files)
    if pending is not None:
        csr_key = pending[1].public_key()
        if isinstance(csr_key, ec.EllipticCurvePublicKey) and key_fingerprint(csr_key) == fingerprint:
            with contextlib.suppress(FileNotFoundError):
                files.request.unlink()  # answered
            pending = None
    keep = {fingerprint}
    if pending is not None:
        csr_key = pending[1].public_key()
        if isinstance(csr_key, ec.EllipticCurvePublicKey):
            keep.add(key_fingerprint(csr_key))  # a newer request still waiting for its answer
    files.remove_keys_except(keep)
    return describe(cert)

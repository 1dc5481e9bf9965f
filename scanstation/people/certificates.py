"""The unit heads' DSC certificates in people.db: which certificate each unit head signs with.

The station admin binds a unit-head account to its certificate (``users add --certificate``, ``users
certificate``); at sign-off the token's certificate must be exactly the bound one: the same issuer and serial
number, and the same public key (:func:`scanstation.signoff.certificates.check_bound`).  Only the certificate
is stored (public data): the key never leaves the token.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from scanstation.errors import StateError
from scanstation.people.accounts import People
from scanstation.people.database import to_text
from scanstation.people.roles import Role

MAX_PEM_BYTES = 64 * 1024  # a DSC certificate is 1-2 kB; anything this large is not one


@dataclass(frozen=True, slots=True)
class CertificateBinding:
    """What identifies a unit head's certificate (all hex lower case)."""

    subject: str
    issuer: str
    issuer_der_sha256: str
    serial: str
    spki_sha256: str
    certificate_sha256: str
    pem: str
    bound_at: str = ""
    bound_by: str = ""


def serial_hex(serial: int) -> str:
    return format(serial, "x")


def describe(cert: x509.Certificate) -> CertificateBinding:
    """The binding fields of a certificate (not yet bound to anyone)."""
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return CertificateBinding(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        issuer_der_sha256=hashlib.sha256(cert.issuer.public_bytes()).hexdigest(),
        serial=serial_hex(cert.serial_number),
        spki_sha256=hashlib.sha256(spki).hexdigest(),
        certificate_sha256=hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest(),
        pem=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
    )


def parse_certificate(data: bytes, where: str) -> x509.Certificate:
    """One X.509 certificate from PEM (the first in the file) or DER; StateError naming ``where`` otherwise."""
    if len(data) > MAX_PEM_BYTES:
        raise StateError(f"{where}: {len(data)} bytes is too large for a certificate")
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as e:
        raise StateError(f"{where}: not an X.509 certificate (PEM or DER): {e}") from e


def bind(people: People, name: str, pem: str, *, by: str) -> CertificateBinding:
    """Bind (or replace) the certificate of unit head ``name``; StateError for another role or a bad PEM."""
    person = people.require(name)
    if person.role is not Role.UNIT_HEAD:
        raise StateError(f"{person.name} is {person.role.value}: only a unit head's account has a signing "
                         "certificate")
    found = describe(parse_certificate(pem.encode("ascii", "replace"), f"the certificate for {person.name}"))
    now = to_text(people.database.now())
    with people.database.write() as db:
        db.execute(
            "INSERT OR REPLACE INTO signer_certificates (person_id, subject, issuer, issuer_der_sha256, serial, "
            "spki_sha256, certificate_sha256, pem, bound_at, bound_by) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (person.id, found.subject, found.issuer, found.issuer_der_sha256, found.serial, found.spki_sha256,
             found.certificate_sha256, found.pem, now, by))
    bound = binding(people, person.name)
    assert bound is not None
    return bound


def binding(people: People, name: str) -> CertificateBinding | None:
    """The certificate bound to ``name``, or None."""
    person = people.get(name)
    if person is None:
        return None
    row = people.database.read_one("SELECT * FROM signer_certificates WHERE person_id=?", (person.id,))
    if row is None:
        return None
    return CertificateBinding(subject=row["subject"], issuer=row["issuer"],
                              issuer_der_sha256=row["issuer_der_sha256"], serial=row["serial"],
                              spki_sha256=row["spki_sha256"], certificate_sha256=row["certificate_sha256"],
                              pem=row["pem"], bound_at=row["bound_at"], bound_by=row["bound_by"])

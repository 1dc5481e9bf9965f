"""The checks on the token's certificate before the unit head signs: each refusal a SignerRefused naming it.

1. validity: valid now (not before its start, not after its end);
2. key usage: digitalSignature or nonRepudiation (a DSC for signing, not an encryption-only certificate);
3. chain: to the configured trust roots (``[signoff] trust_roots``, a PEM bundle: the India CCA root in
   production), validated by pyhanko-certvalidator with the intermediates the token carries;
4. binding: the certificate is the one the admin bound to the signed-in unit head (issuer + serial and the
   public key: :mod:`scanstation.people.certificates`).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from asn1crypto import pem as asn1_pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509

from scanstation.errors import ConfigError, SignerRefused
from scanstation.people.certificates import CertificateBinding, describe

MAX_BUNDLE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SignerInfo:
    """The signer as the manifest's ``signoff.signer`` block names it."""

    subject: str
    issuer: str
    serial: str
    certificate_sha256: str

    def as_dict(self) -> dict[str, str]:
        return {"subject": self.subject, "issuer": self.issuer, "serial": self.serial,
                "certificate_sha256": self.certificate_sha256}


def to_crypto(cert: asn1_x509.Certificate) -> x509.Certificate:
    return x509.load_der_x509_certificate(cert.dump())


def signer_info(cert: asn1_x509.Certificate) -> SignerInfo:
    d = describe(to_crypto(cert))
    return SignerInfo(d.subject, d.issuer, d.serial, d.certificate_sha256)


def load_trust_roots(path_text: str) -> list[asn1_x509.Certificate]:
    """The roots of ``[signoff] trust_roots`` (PEM bundle); ConfigError naming the file when unusable."""
    if not path_text:
        raise ConfigError("[signoff] trust_roots is not set: name the PEM bundle of the signers' trust roots "
                          "(the India CCA root in production)")
    path = Path(path_text)
    try:
        data = path.read_bytes()[:MAX_BUNDLE_BYTES + 1]
    except OSError as e:
        raise ConfigError(f"{path} ([signoff] trust_roots): cannot read the trust roots: {e.strerror}") from e
    if len(data) > MAX_BUNDLE_BYTES:
        raise ConfigError(f"{path} ([signoff] trust_roots): larger than {MAX_BUNDLE_BYTES} bytes")
    roots = []
    try:
        for kind, _headers, der in asn1_pem.unarmor(data, multiple=True):
            if kind == "CERTIFICATE":
                roots.append(asn1_x509.Certificate.load(der))
    except ValueError as e:
        raise ConfigError(f"{path} ([signoff] trust_roots): not a PEM certificate bundle: {e}") from e
    if not roots:
        raise ConfigError(f"{path} ([signoff] trust_roots): no certificate in it")
    return roots


def check_validity(cert: x509.Certificate, now: datetime) -> None:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    who = cert.subject.rfc4514_string()
    if now < start:
        raise SignerRefused(f"validity check: the certificate of {who} is not valid yet (from {start:%Y-%m-%d %H:%M} "
                            "UTC)")
    if now > end:
        raise SignerRefused(f"validity check: the certificate of {who} expired on {end:%Y-%m-%d %H:%M} UTC: renew "
                            "the DSC and have the admin bind the new certificate")


def check_key_usage(cert: x509.Certificate) -> None:
    who = cert.subject.rfc4514_string()
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound as e:
        raise SignerRefused(f"key usage check: the certificate of {who} has no key usage extension; a signing DSC "
                            "has digitalSignature or nonRepudiation") from e
    if not (usage.digital_signature or usage.content_commitment):
        raise SignerRefused(f"key usage check: the certificate of {who} allows neither digitalSignature nor "
                            "nonRepudiation: it is not a signing certificate (an encryption DSC?)")


def check_chain(cert: asn1_x509.Certificate, intermediates: Iterable[asn1_x509.Certificate],
                roots: list[asn1_x509.Certificate], now: datetime) -> list[asn1_x509.Certificate]:
    """The validated path (root first), or SignerRefused naming the chain check and why."""
    from pyhanko_certvalidator import CertificateValidator, ValidationContext
    from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError, ValidationError

    others = list(intermediates)
    context = ValidationContext(trust_roots=roots, other_certs=others, moment=now, allow_fetching=False,
                                revocation_mode="soft-fail")
    validator = CertificateValidator(cert, intermediate_certs=others, validation_context=context)
    who = cert.subject.human_friendly
    try:
        path = asyncio.run(validator.async_validate_path())
    except PathBuildingError as e:
        raise SignerRefused(f"chain check: the certificate of {who} does not chain to the configured trust roots "
                            f"([signoff] trust_roots): {e}") from e
    except (PathValidationError, ValidationError) as e:
        raise SignerRefused(f"chain check: the certificate path of {who} is not valid: {e}") from e
    return list(path)


def check_bound(cert: x509.Certificate, bound: CertificateBinding | None, unit_head: str) -> None:
    """The token's certificate must be the one bound to ``unit_head`` (issuer + serial and public key)."""
    if bound is None:
        raise SignerRefused(f"binding check: no certificate is bound to {unit_head}: the station admin binds it "
                            f"(scanstation users certificate {unit_head} CERT.pem)")
    mine = describe(cert)
    if (mine.issuer_der_sha256, mine.serial) != (bound.issuer_der_sha256, bound.serial):
        raise SignerRefused(f"binding check: the token's certificate ({mine.subject}, issuer {mine.issuer}, serial "
                            f"{mine.serial}) is not the one bound to {unit_head} ({bound.subject}, issuer "
                            f"{bound.issuer}, serial {bound.serial})")
    if mine.spki_sha256 != bound.spki_sha256:
        raise SignerRefused(f"binding check: the token's certificate has the bound issuer and serial but another "
                            f"public key than the one bound to {unit_head}")


@dataclass(frozen=True)
class CheckedSigner:
    """A signer that passed every check: who it is, and the certificates between it and the root (from the
    validated path), which the signatures carry so that a verifier holding only the root can build the chain."""

    info: SignerInfo
    chain: list[asn1_x509.Certificate]


def check_signer(cert: asn1_x509.Certificate, intermediates: Iterable[asn1_x509.Certificate], *,
                 trust_roots: str, bound: CertificateBinding | None, unit_head: str,
                 now: datetime | None = None) -> CheckedSigner:
    """Every check, in order (validity, key usage, chain, binding); the signer and its chain when all pass."""
    moment = now or datetime.now(UTC)
    crypto = to_crypto(cert)
    check_validity(crypto, moment)
    check_key_usage(crypto)
    path = check_chain(cert, intermediates, load_trust_roots(trust_roots), moment)
    check_bound(crypto, bound, unit_head)
    # Everything on the path but the signer itself and a self-signed root (a trusted sub-CA stays: a verifier
    # trusting only the CCA root needs it).
    chain = [c for c in path if c.dump() != cert.dump() and c.self_signed == "no"]
    return CheckedSigner(signer_info(cert), chain)


def certificate_sha256(cert: asn1_x509.Certificate) -> str:
    return hashlib.sha256(cert.dump()).hexdigest()

"""The unit head's signature on a package: ``signatures/unit-head.json``, a detached CMS over the manifest.

Checked (each failure names its check, see docs/portal-api.md):

``unit_head_missing``      no member although the portal requires one (``--trust-roots``, production)
``unit_head_format``       the member or the manifest's ``signoff`` block is malformed, the CMS is not a
                           detached SignedData, or it has no signing-time attribute
``unit_head_certificate``  the signer certificate is not the one ``signoff.signer.certificate_sha256``
                           (and the member's ``certificate_sha256``) name
``unit_head_signing_time`` the signing time lies in the future
``unit_head_expired``      the signer certificate was not valid at the signing time
``unit_head_signature``    the CMS does not verify over the exact manifest bytes
``unit_head_chain``        the signer certificate does not chain to the portal's trust roots (at signing time)

The cryptography is pyHanko's (``generic_cms.async_validate_detached_cms`` with pyhanko-certvalidator);
this module only decides which facts must hold.  Revocation is not checked here (no network access on
the receiver; soft-fail): a portal with CRLs configures them in front of this check.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hashlib
import re
from pathlib import Path
from typing import Any

from asn1crypto import cms, pem
from asn1crypto import x509 as asn1_x509
from pyhanko.sign.general import extract_certificate_info, extract_signer_info
from pyhanko.sign.validation.generic_cms import async_validate_detached_cms
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko_certvalidator import ValidationContext

MEMBER = "signatures/unit-head.json"
FORMAT = "cms-detached-1"
CLOCK_SKEW = dt.timedelta(minutes=5)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
# A signing certificate for documents: non-repudiation (content commitment) or digital signature will do.
_KEY_USAGE = KeyUsageConstraints(key_usage={"non_repudiation", "digital_signature"}, match_all_key_usages=False)


class UnitHeadRefused(Exception):
    def __init__(self, check: str, reason: str) -> None:
        super().__init__(f"{check}: {reason}")
        self.check = check
        self.reason = reason


def load_trust_roots(path: Path) -> list[asn1_x509.Certificate]:
    """Certificates of a PEM (or single DER) file; ValueError names the file when there are none."""
    data = path.read_bytes()
    roots: list[asn1_x509.Certificate] = []
    if pem.detect(data):
        for kind, _headers, der in pem.unarmor(data, multiple=True):
            if kind == "CERTIFICATE":
                roots.append(asn1_x509.Certificate.load(der))
    else:
        roots.append(asn1_x509.Certificate.load(data))
    if not roots:
        raise ValueError(f"{path}: no certificate found")
    for cert in roots:
        cert.native  # noqa: B018 - parse fully now: a broken file fails at start, not at the first package
    return roots


def verify_unit_head(member: dict[str, Any] | None, manifest: dict[str, Any], manifest_bytes: bytes,
                     trust_roots: list[asn1_x509.Certificate], *, now: dt.datetime | None = None) -> dict[str, Any]:
    """Check the unit head's signature; return what was verified (signer, signing time) for the record."""
    if member is None:
        raise UnitHeadRefused("unit_head_missing", f"the package has no {MEMBER}; this portal requires the unit "
                                                   "head's signature")
    if member.get("signer") != "unit-head" or member.get("format") != FORMAT:
        raise UnitHeadRefused("unit_head_format", f"{MEMBER}: signer must be 'unit-head' and format {FORMAT!r}")
    named = member.get("certificate_sha256")
    if not isinstance(named, str) or not _HEX64.match(named):
        raise UnitHeadRefused("unit_head_format", f"{MEMBER}: certificate_sha256 is not 64 lowercase hex digits")
    signoff = manifest.get("signoff")
    signer_block = signoff.get("signer") if isinstance(signoff, dict) else None
    if not isinstance(signer_block, dict) or not isinstance(signer_block.get("certificate_sha256"), str):
        raise UnitHeadRefused("unit_head_format", "the manifest has no signoff.signer.certificate_sha256")
    try:
        der = base64.b64decode(str(member.get("cms", "")), validate=True)
        info = cms.ContentInfo.load(der)
        if info["content_type"].native != "signed_data":
            raise ValueError("not a SignedData")
        signed_data = info["content"]
        if signed_data["encap_content_info"]["content"].native is not None:
            raise ValueError("the content is embedded; a detached signature is required")
        signer_info = extract_signer_info(signed_data)
        signer_cert = extract_certificate_info(signed_data).signer_cert
        signing_time = _signing_time(signer_info)
    except (binascii.Error, ValueError, TypeError, KeyError) as e:
        raise UnitHeadRefused("unit_head_format", f"{MEMBER}: the CMS cannot be used ({e})") from None

    cert_sha = hashlib.sha256(signer_cert.dump()).hexdigest()
    if cert_sha != named or cert_sha != signer_block["certificate_sha256"]:
        raise UnitHeadRefused("unit_head_certificate",
                              f"the CMS signer certificate (sha256 {cert_sha}) is not the one the manifest's "
                              f"signoff names ({signer_block['certificate_sha256']})")
    now = now or dt.datetime.now(dt.UTC)
    if signing_time > now + CLOCK_SKEW:
        raise UnitHeadRefused("unit_head_signing_time", f"signing time {signing_time.isoformat()} is in the future")
    validity = signer_cert["tbs_certificate"]["validity"]
    not_before, not_after = validity["not_before"].native, validity["not_after"].native
    if not (not_before <= signing_time <= not_after):
        raise UnitHeadRefused("unit_head_expired",
                              f"the signer certificate ({signer_cert.subject.human_friendly}) was valid from "
                              f"{not_before.isoformat()} to {not_after.isoformat()}, not at the signing time "
                              f"{signing_time.isoformat()}")

    context = ValidationContext(trust_roots=list(trust_roots), moment=signing_time, allow_fetching=False,
                                revocation_mode="soft-fail")
    try:
        status = asyncio.run(async_validate_detached_cms(manifest_bytes, signed_data,
                                                         signer_validation_context=context,
                                                         key_usage_settings=_KEY_USAGE))
    except Exception as e:  # pyHanko raises several types for malformed signatures; all mean the same here
        raise UnitHeadRefused("unit_head_signature", f"the CMS cannot be validated ({type(e).__name__}: {e})") from None
    if not (status.intact and status.valid):
        raise UnitHeadRefused("unit_head_signature", "the unit head's CMS signature does not verify over the "
                                                     "manifest (the manifest was changed after signing, or the "
                                                     "signature is broken)")
    if not status.trusted:
        problem = str(status.trust_problem_indic or "untrusted")
        raise UnitHeadRefused("unit_head_chain", f"the signer certificate ({signer_cert.subject.human_friendly}) "
                                                 f"does not chain to the portal's trust roots at the signing time "
                                                 f"({problem})")
    return {"subject": signer_cert.subject.human_friendly, "certificate_sha256": cert_sha,
            "signing_time": signing_time.isoformat()}


def _signing_time(signer_info: cms.SignerInfo) -> dt.datetime:
    attrs = signer_info["signed_attrs"]
    if attrs.native is None:
        raise ValueError("no signed attributes")
    for attr in attrs:
        if attr["type"].native == "signing_time":
            value = attr["values"][0].native
            if isinstance(value, dt.datetime):
                return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    raise ValueError("no signing-time attribute")

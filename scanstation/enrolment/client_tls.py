"""What an upload presents to the portal: the installed client certificate and its key, in RAM.

``requests`` takes a client certificate only as files (``cert=(cert, key)``), so the unlocked station writes
the pair into its RAM directory (tmpfs, 0700; the key file 0600) the first time an upload needs it, and
reuses it for the life of the process; the RAM directory goes when the station closes (and a crashed
process's is swept at the next start).  A newly installed certificate is noticed (by its hash) and replaces
the pair.  The key is never written anywhere else in the clear.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from scanstation.enrolment.files import EnrolmentFiles, key_fingerprint
from scanstation.enrolment.install import CertificateInfo, describe
from scanstation.enrolment.request import rfc3339
from scanstation.errors import EnrolmentError
from scanstation.vault.identity import StationKey
from scanstation.vault.ramdir import RamDir

NOT_ENROLLED = ("station not enrolled: run scanstation enrol --out FILE, give FILE to the portal, and install the "
                "portal's certificate with scanstation enrol --install CERT")


@dataclass(frozen=True)
class ClientCertificate:
    """The client certificate and its key as RAM files, for ``requests``' ``cert=``."""

    cert_path: Path
    key_path: Path
    info: CertificateInfo

    @property
    def for_requests(self) -> tuple[str, str]:
        return str(self.cert_path), str(self.key_path)


def _load_installed(files: EnrolmentFiles) -> tuple[bytes, x509.Certificate] | None:
    try:
        pem = files.certificate.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return pem, x509.load_pem_x509_certificate(pem)
    except ValueError as e:
        raise EnrolmentError(f"{files.certificate}: the installed client certificate is damaged ({e}); install "
                             "the portal's certificate again (scanstation enrol --install CERT)") from e


def installed_certificate(files: EnrolmentFiles) -> CertificateInfo | None:
    """The installed certificate (``enrol --status``), or None when the station is not enrolled."""
    loaded = _load_installed(files)
    return describe(loaded[1]) if loaded is not None else None


_lock = threading.Lock()
# Per RAM directory (so per open station): the hash of the certificate materialised there, and its files.
_materialised: weakref.WeakKeyDictionary[RamDir, tuple[str, ClientCertificate]] = weakref.WeakKeyDictionary()


def client_credentials(files: EnrolmentFiles, station_key: StationKey, ramdir: RamDir, *,
                       now: datetime | None = None) -> ClientCertificate:
    """The installed certificate and its unsealed key as files in ``ramdir``; EnrolmentError if there is none
    (the message says how to enrol) or it is not valid now."""
    loaded = _load_installed(files)
    if loaded is None:
        raise EnrolmentError(NOT_ENROLLED)
    pem, cert = loaded
    moment = now or datetime.now(UTC)
    if moment > cert.not_valid_after_utc:
        raise EnrolmentError(f"the station's client certificate expired at {rfc3339(cert.not_valid_after_utc)}: "
                             f"{NOT_ENROLLED}")
    if moment < cert.not_valid_before_utc:
        raise EnrolmentError(f"the station's client certificate is not valid before "
                             f"{rfc3339(cert.not_valid_before_utc)} (check the station's clock)")
    digest = hashlib.sha256(pem).hexdigest()
    with _lock:
        cached = _materialised.get(ramdir)
        if cached is not None and cached[0] == digest and cached[1].key_path.exists():
            return cached[1]
        public = cert.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey):
            raise EnrolmentError(f"{files.certificate}: the installed client certificate has no ECDSA key")
        key = files.unseal_key(key_fingerprint(public), station_key)
        cert_path = ramdir.new_file(".pem", prefix="tls-client-cert-")
        key_path = ramdir.new_file(".pem", prefix="tls-client-key-")  # created 0600 by new_file
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        del key
        cert_path.write_bytes(pem)
        fresh = ClientCertificate(cert_path, key_path, describe(cert))
        _materialised[ramdir] = (digest, fresh)
        if cached is not None:  # a replaced certificate: its key leaves RAM now
            for old in (cached[1].key_path, cached[1].cert_path):
                with contextlib.suppress(FileNotFoundError):
                    old.unlink()
        return fresh

"""Where the station's enrolment lives in its data directory, and how the TLS key is sealed there.

``data_dir/enrolment/`` (0700):

* ``tls-key-<fingerprint>.age``: the ECDSA P-256 TLS client key (PKCS#8), age-encrypted to the station's own
  recipient, mode 0600, named by the SHA-256 of its public key (SubjectPublicKeyInfo DER).  Never in the clear
  on disk: only the unlocked station can open it, and it does so into its RAM directory;
* ``request.json``: the pending enrolment request (public: exactly what ``enrol --out`` wrote);
* ``client-cert.pem``: the installed client certificate (public), and ``station-ca.pem``: the portal's station
  CA that issued it (kept for ``enrol --status`` and for checking a renewal).

The certificate file is the single commit point of an installation: the key it uses is found by the
fingerprint of its public key, so a crash between steps never pairs a certificate with the wrong key.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import pyrage
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pyrage import x25519

from batchformat.atomic import atomic_write, ensure_dir
from scanstation.errors import EnrolmentError
from scanstation.vault.identity import StationKey

DIR_NAME = "enrolment"
_KEY_PREFIX = "tls-key-"
_KEY_SUFFIX = ".age"


def key_fingerprint(public_key: ec.EllipticCurvePublicKey) -> str:
    """Hex SHA-256 of the key's SubjectPublicKeyInfo (DER): names the key and its sealed file."""
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


@dataclass(frozen=True)
class EnrolmentFiles:
    """The enrolment files of one station's data directory."""

    data_dir: Path

    @property
    def directory(self) -> Path:
        return self.data_dir / DIR_NAME

    @property
    def request(self) -> Path:
        return self.directory / "request.json"

    @property
    def certificate(self) -> Path:
        return self.directory / "client-cert.pem"

    @property
    def ca_certificate(self) -> Path:
        return self.directory / "station-ca.pem"

    def sealed_key(self, fingerprint: str) -> Path:
        return self.directory / f"{_KEY_PREFIX}{fingerprint}{_KEY_SUFFIX}"

    def sealed_keys(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir()
                      if p.name.startswith(_KEY_PREFIX) and p.name.endswith(_KEY_SUFFIX))

    def ensure(self) -> None:
        ensure_dir(self.directory, 0o700)

    def seal_key(self, key: ec.EllipticCurvePrivateKey, recipient: x25519.Recipient) -> Path:
        """Store ``key`` encrypted to the station's ``recipient`` (0600); returns its file."""
        self.ensure()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        path = self.sealed_key(key_fingerprint(key.public_key()))
        atomic_write(path, pyrage.encrypt(pem, [recipient]), mode=0o600)
        return path

    def unseal_key(self, fingerprint: str, station_key: StationKey) -> ec.EllipticCurvePrivateKey:
        """The TLS key with this fingerprint, decrypted into memory with the unlocked station key."""
        path = self.sealed_key(fingerprint)
        try:
            sealed = path.read_bytes()
        except FileNotFoundError:
            raise EnrolmentError(
                f"{path}: the sealed TLS key of the installed certificate is missing; enrol the station again "
                "(scanstation enrol --out FILE, then --install the portal's certificate)"
            ) from None
        try:
            pem = station_key.decrypt(sealed)
            key = serialization.load_pem_private_key(pem, password=None)
        except (pyrage.DecryptError, ValueError) as e:
            raise EnrolmentError(f"{path}: the sealed TLS key cannot be opened with this station's key ({e})") from e
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key_fingerprint(key.public_key()) != fingerprint:
            raise EnrolmentError(f"{path}: the sealed TLS key is not the key its name says (damaged or replaced)")
        return key

    def remove_keys_except(self, keep: set[str]) -> list[Path]:
        """Delete sealed TLS keys whose fingerprint is not in ``keep`` (superseded requests and certificates)."""
        removed = []
        for path in self.sealed_keys():
            if path.name[len(_KEY_PREFIX):-len(_KEY_SUFFIX)] not in keep:
                os.unlink(path)
                removed.append(path)
        return removed

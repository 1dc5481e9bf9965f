"""The receiver's keys: the portal's age identity and its receipt-signing key (stations: receiver.enrolment)."""

from __future__ import annotations

import os
from pathlib import Path

import pyrage
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import batchformat
from batchformat import atomic

RECEIPT_KEY = "receipt-key"
RECEIPT_KEY_PUB = "receipt-key.pub"


class KeyFileError(Exception):
    """A key file is missing or malformed (message names the file; never echoes a secret)."""


def load_identities(path: Path) -> list[pyrage.x25519.Identity]:
    """Identities from an age identity file as written by ``age-keygen`` (comments and blanks ignored).

    The first identity is the portal's: its recipient is what the store re-encrypts to.
    """
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise KeyFileError(f"{path}: cannot read the identity file ({e})") from None
    identities = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(pyrage.x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            raise KeyFileError(
                f"{path}: line {lineno} is not an age X25519 identity (as written by age-keygen)"
            ) from None
    if not identities:
        raise KeyFileError(f"{path}: no age identity found")
    return identities


def load_or_create_receipt_key(data_dir: Path) -> Ed25519PrivateKey:
    """``DATA_DIR/receipt-key`` (PEM PKCS#8, 0600), created on first start; ``receipt-key.pub`` kept in step."""
    key_path = data_dir / RECEIPT_KEY
    if key_path.exists():
        try:
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except (ValueError, TypeError, OSError) as e:
            raise KeyFileError(f"{key_path}: not a readable unencrypted PEM private key ({e})") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError(f"{key_path}: expected an Ed25519 private key, found {type(key).__name__}")
        if key_path.stat().st_mode & 0o077:
            os.chmod(key_path, 0o600)
    else:
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        atomic.atomic_write(key_path, pem, mode=0o600)
    pub_path = data_dir / RECEIPT_KEY_PUB
    pub = batchformat.public_key_pem(key)
    if not pub_path.exists() or pub_path.read_bytes() != pub:
        atomic.atomic_write(pub_path, pub, mode=0o644)
    return key

"""Ed25519 public keys in PEM and raw form, and their key ids."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from batchformat.errors import KeyFormatError

# --------------------------------------------------------------------------------------------------
# PEM helpers


def public_key_pem(key: Ed25519PublicKey | Ed25519PrivateKey) -> bytes:
    """PEM SubjectPublicKeyInfo of an Ed25519 key (what receipt-key.pub holds)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key_pem(data: bytes, source: str) -> Ed25519PublicKey:
    """Parse a PEM Ed25519 public key; KeyFormatError names ``source`` and the reason."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as e:
        raise KeyFormatError(f"{source}: not a PEM public key ({e})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFormatError(f"{source}: the PEM key is {type(key).__name__}, expected an Ed25519 public key")
    return key


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

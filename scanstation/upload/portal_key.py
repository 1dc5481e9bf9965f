"""The portal's receipt key as the station configures it (a PEM Ed25519 public key)."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from batchformat import load_public_key_pem
from batchformat.errors import KeyFormatError
from scanstation.errors import ConfigError


def load_portal_key(pem: bytes, source: str) -> Ed25519PublicKey:
    """Parse the configured receipt key; a bad one is a configuration error naming ``source``."""
    try:
        return load_public_key_pem(pem, source)
    except KeyFormatError as e:
        raise ConfigError(e.message) from None

"""A self-signed TLS certificate for 127.0.0.1 (its own CA), for https tests on loopback."""

from __future__ import annotations

from pathlib import Path

from scanstation_tools.demo import loopback_certificate


def self_signed(root: Path) -> tuple[Path, Path]:
    """(certificate PEM, key PEM) written under ``root``; the certificate is also the CA bundle to trust."""
    cert_pem, key_pem = loopback_certificate("scanstation test portal")
    root.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = root / "portal.pem", root / "portal.key"
    cert_path.write_bytes(cert_pem)
    key_path.write_bytes(key_pem)
    return cert_path, key_path

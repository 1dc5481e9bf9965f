"""What anyone may know about a station without unlocking it: ``station.pub`` in the data directory.

Written by ``init``: the station's age recipient (audit entries made while the station is locked are
sealed to it), the Ed25519 public key its checkpoints and manifests are signed with, and the origin
line of its audit checkpoints.  ``audit verify`` runs on a locked station with this alone; at every
unlock the service checks that the unlocked key matches it (a swapped file is caught there).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pyrage import x25519

from batchformat.atomic import atomic_write
from scanstation.errors import StateError, UnlockError
from scanstation.vault.identity import StationKey, parse_recipient

FILE_NAME = "station.pub"


@dataclass(frozen=True)
class StationPublic:
    station_id: str
    recipient: str
    signing_key: bytes  # raw 32-byte Ed25519 public key

    @property
    def origin(self) -> str:
        """The checkpoint origin (C2SP tlog-checkpoint): names this station's log."""
        return f"scanstation/{self.station_id}"

    def age_recipient(self) -> x25519.Recipient:
        return parse_recipient(self.recipient, source=FILE_NAME)

    def verify_key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.signing_key)

    @classmethod
    def of(cls, station_id: str, key: StationKey) -> StationPublic:
        raw = key.signing_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return cls(station_id, key.recipient, raw)

    def check_matches(self, key: StationKey) -> None:
        """The unlocked key is this station's (a replaced station.pub or key slot is refused)."""
        if StationPublic.of(self.station_id, key) != self:
            raise UnlockError(f"the unlocked station key does not match {FILE_NAME}: the key slots or "
                              f"{FILE_NAME} were replaced; restore them from the station backup")

    def write(self, data_dir: Path) -> None:
        text = json.dumps({"station_id": self.station_id, "recipient": self.recipient,
                           "signing_key": base64.b64encode(self.signing_key).decode()}, indent=2) + "\n"
        atomic_write(data_dir / FILE_NAME, text.encode(), mode=0o644)

    @classmethod
    def load(cls, data_dir: Path) -> StationPublic:
        path = data_dir / FILE_NAME
        try:
            data = json.loads(path.read_text("utf-8"))
            key = base64.b64decode(data["signing_key"], validate=True)
            if len(key) != 32:
                raise ValueError("signing_key is not 32 bytes")
            return cls(str(data["station_id"]), str(data["recipient"]), key)
        except FileNotFoundError as e:
            raise StateError(f"{data_dir}: no station here yet (run 'scanstation init')") from e
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise StateError(f"{path}: damaged station public information ({e}); restore it from the backup") from e

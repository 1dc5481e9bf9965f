"""The USB interface classes that can carry a page off the station: one table for the two places that judge a
USB device, USBGuard's policy (:mod:`scanstation.lockdown.usb_policy`, before the device is authorised) and
the service's device guard (:mod:`scanstation.guard.classify`, when a device appears anyway).  Kept in one
place so that the two can never disagree about what is dangerous.

Class codes are usb.org's "Defined Class Codes"; sysfs and USBGuard both write them as two hex digits.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

Kind = Literal["storage", "still-image", "network"]


@dataclasses.dataclass(frozen=True)
class DangerousClass:
    cls: int
    subclass: int | None  # None: any
    kind: Kind
    words: str  # for the audit trail, the admin's screen and the policy's comments

    @property
    def pattern(self) -> str:
        """USBGuard's interface pattern: "08:*:*", "ef:04:*"."""
        sub = "*" if self.subclass is None else f"{self.subclass:02x}"
        return f"{self.cls:02x}:{sub}:*"

    def matches(self, cls: int, subclass: int) -> bool:
        return cls == self.cls and (self.subclass is None or subclass == self.subclass)


DANGEROUS: tuple[DangerousClass, ...] = (
    DangerousClass(0x08, None, "storage", "USB mass storage (class 08)"),
    DangerousClass(0x06, None, "still-image", "still-image / MTP / PTP interface (class 06: a phone or a camera)"),
    DangerousClass(0x02, None, "network", "CDC communications (class 02: a network adapter, modem or phone tethering)"),
    DangerousClass(0x0A, None, "network", "CDC data (class 0a: a network adapter or modem)"),
    DangerousClass(0xE0, None, "network", "wireless controller (class e0: RNDIS tethering, Bluetooth)"),
    # Microsoft's RNDIS under the miscellaneous class (protocols 01-03: Ethernet, Wi-Fi, WiMAX): phone tethering
    DangerousClass(0xEF, 0x04, "network", "RNDIS interface (class ef/04: phone tethering)"),
)

# A configured scanner may have a still-image interface (some speak PTP-like protocols); storage and network never.
SCANNER_MAY_HAVE: frozenset[Kind] = frozenset({"still-image"})


def of_kind(kind: Kind) -> tuple[DangerousClass, ...]:
    return tuple(d for d in DANGEROUS if d.kind == kind)


def dangerous(cls: int, subclass: int) -> DangerousClass | None:
    """The entry an interface of this class and subclass falls under, or None."""
    return next((d for d in DANGEROUS if d.matches(cls, subclass)), None)

"""The USBGuard policy of a kiosk: which USB devices the kernel may use at all (issue 17, docs/lockdown.md).

USBGuard authorizes a whole device, never one interface of it, and the first rule that matches a device
decides.  So the policy rejects first every device that has any interface of a class that can carry a page
out (mass storage, still image/MTP, networking, wireless), whatever else it offers (a keyboard with a card
reader inside is rejected), then allows what a station needs: the configured scanners by vendor:product
(document scanners often report class ff, "vendor specific"), CCID smart-card readers and tokens (the unit
head's DSC), hubs, and the keyboards and mice present when the policy is made (read from sysfs).  Anything
else falls to USBGuard's ImplicitPolicyTarget=block.

This module only reads sysfs and writes text; USBGuard's own parser checks the text
(:mod:`scanstation.lockdown.checks`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from scanstation.errors import ConfigError
from scanstation.lockdown.usb_classes import dangerous, of_kind

RULES_PATH = "etc/usbguard/rules.d/50-scanstation.conf"  # relative to the target root

# Interface classes that can move data off the station (scanstation/lockdown/usb_classes.py, shared with the
# service's device guard).
MASS_STORAGE = " ".join(d.pattern for d in of_kind("storage"))
STILL_IMAGE = " ".join(d.pattern for d in of_kind("still-image"))  # PTP cameras and phones in PTP/MTP mode
NETWORK = tuple(d.pattern for d in of_kind("network"))  # CDC comms/data, wireless controllers (Bluetooth,
#                                                         RNDIS e0:01:03), Microsoft's RNDIS over class ef
CCID = "0b:*:*"
HUB = "09:*:*"
HID_CLASS = 0x03
VENDOR_CLASS = 0xFF

_USB_ID = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{4}$")


@dataclasses.dataclass(frozen=True)
class UsbInterface:
    cls: int
    subclass: int
    protocol: int

    def text(self) -> str:
        return f"{self.cls:02x}:{self.subclass:02x}:{self.protocol:02x}"


@dataclasses.dataclass(frozen=True)
class UsbDevice:
    """One USB device as sysfs shows it (/sys/bus/usb/devices/<port>)."""

    port: str  # the sysfs name, which is USBGuard's via-port: "1-1.2"; root hubs are "usb1"
    vendor: str  # 4 lower-case hex digits
    product: str
    name: str  # the product string ("" when the device has none)
    serial: str  # "" when the device has none
    device_class: int
    interfaces: tuple[UsbInterface, ...]

    @property
    def usb_id(self) -> str:
        return f"{self.vendor}:{self.product}"

    @property
    def is_root_hub(self) -> bool:
        return self.port.startswith("usb")

    @property
    def is_hid_only(self) -> bool:
        """Every interface is HID (keyboards, mice, their wireless receivers): nothing else rides along."""
        return bool(self.interfaces) and all(i.cls == HID_CLASS for i in self.interfaces)

    @property
    def is_input_device(self) -> bool:
        """A keyboard or mouse: HID, and at most vendor-specific interfaces besides (a gaming keyboard's
        lighting control, a receiver's pairing channel).  No kernel driver binds a vendor-specific interface by
        its class (only a driver that names the device's id), so it carries no storage or network function the
        earlier rules would not see; refusing such keyboards would leave the kiosk without one."""
        classes = {i.cls for i in self.interfaces}
        return HID_CLASS in classes and classes <= {HID_CLASS, VENDOR_CLASS}

    def describe(self) -> str:
        classes = " ".join(i.text() for i in self.interfaces) or "no interfaces"
        label = f" {self.name!r}" if self.name else ""
        return f"{self.port} {self.usb_id}{label} [{classes}]"


@dataclasses.dataclass(frozen=True)
class Decision:
    """What the policy does with a device present now, and why (for ``scanstation lockdown show``)."""

    device: UsbDevice
    allowed: bool
    reason: str


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="surrogateescape").strip()
    except FileNotFoundError:
        return ""


def _hex(path: Path) -> int:
    text = _read(path)
    try:
        return int(text, 16)
    except ValueError:
        raise ConfigError(f"{path}: not a hexadecimal USB descriptor field: {text!r}") from None


def read_usb_devices(sysfs: Path) -> list[UsbDevice]:
    """The USB devices under ``sysfs``/bus/usb/devices (a real /sys or a test's tree of the same shape).

    Entries with a ':' are interfaces ("1-1:1.0"); a device's interfaces are the entries named after it
    in its own directory, as in the kernel's tree.  A sysfs without ``bus/usb`` is a machine with no USB
    host controller (a virtual machine, a container's host): no devices, so no keyboard or mouse to allow,
    and the policy blocks whatever appears later.  A path that is no sysfs at all is a mistake, named.
    """
    root = sysfs / "bus" / "usb" / "devices"
    if not (sysfs / "bus").is_dir():
        raise ConfigError(f"{sysfs / 'bus'}: no such directory (is {sysfs} a sysfs tree?)")
    if not (sysfs / "bus" / "usb").exists():
        return []
    if not root.is_dir():
        raise ConfigError(f"{root}: no such directory (is {sysfs} a sysfs tree?)")
    devices = []
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if ":" in entry.name or not (entry / "idVendor").exists():
            continue
        interfaces = []
        for sub in sorted(entry.iterdir(), key=lambda p: p.name):
            if sub.name.startswith(entry.name + ":") and (sub / "bInterfaceClass").exists():
                interfaces.append(UsbInterface(_hex(sub / "bInterfaceClass"), _hex(sub / "bInterfaceSubClass"),
                                               _hex(sub / "bInterfaceProtocol")))
        devices.append(UsbDevice(
            port=entry.name,
            vendor=_read(entry / "idVendor").lower(),
            product=_read(entry / "idProduct").lower(),
            name=_read(entry / "product"),
            serial=_read(entry / "serial"),
            device_class=_hex(entry / "bDeviceClass") if (entry / "bDeviceClass").exists() else 0,
            interfaces=tuple(interfaces),
        ))
    return devices


def quote(text: str) -> str:
    """``text`` as a USBGuard rule string: double quotes, backslash escapes, \\xHH for other bytes."""
    out = []
    for byte in text.encode("utf-8", errors="surrogateescape"):
        ch = chr(byte)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= byte < 0x7f:
            out.append(ch)
        else:
            out.append(f"\\x{byte:02x}")
    return '"' + "".join(out) + '"'


def _iface_set(interfaces: Iterable[UsbInterface]) -> str:
    return "{ " + " ".join(sorted({i.text() for i in interfaces})) + " }"


def hid_rule(device: UsbDevice) -> str:
    """The allow rule for a keyboard or mouse present at install: pinned as narrowly as the device allows.

    id and the exact interface set always; the serial when the device has one; when it has none, also the
    port (via-port), so that a clone of the same model plugged elsewhere is not let in by its id alone.
    (A device with a serial may move between ports.)
    """
    parts = [f"allow id {device.usb_id}"]
    if device.serial:
        parts.append(f"serial {quote(device.serial)}")
    if device.name:
        parts.append(f"name {quote(device.name)}")
    if not device.serial:
        parts.append(f"via-port {quote(device.port)}")
    parts.append(f"with-interface equals {_iface_set(device.interfaces)}")
    return " ".join(parts)


def check_usb_ids(ids: Sequence[str]) -> list[str]:
    for text in ids:
        if not _USB_ID.match(text):
            raise ConfigError(f"lockdown.scanner_usb_ids: {text!r} is not vendor:product in lower-case hex "
                              "(like \"04c5:132e\")")
    return list(ids)


def build_rules(devices: Sequence[UsbDevice], scanner_ids: Sequence[str]) -> tuple[str, list[Decision]]:
    """The policy file's text and what it decides for each device present now."""
    scanners = check_usb_ids(scanner_ids)
    net = " ".join(NETWORK)
    lines = [
        "# ScanStation's USBGuard policy, written by `scanstation lockdown apply` (docs/lockdown.md); do not edit:",
        "# the next apply rewrites it.  USBGuard applies the first rule that matches a device; a device no rule",
        "# matches is blocked (ImplicitPolicyTarget=block).",
        "#",
        "# 1. Mass storage, in any device, composites included (a keyboard with a card reader is rejected whole).",
        f"reject with-interface one-of {{ {MASS_STORAGE} }}",
    ]
    if scanners:
        lines += [
            "# 2. The station's scanners by vendor:product (lockdown.scanner_usb_ids), some of which are still-image",
            "#    class 06 or vendor class ff; never with a networking interface.",
        ]
        lines += [f"allow id {s} with-interface none-of {{ {net} }}" for s in scanners]
    lines += [
        "# 3. Still image (PTP/MTP phones and cameras): rejected unless a scanner above.",
        f"reject with-interface one-of {{ {STILL_IMAGE} }}",
        "# 4. Networking: CDC Ethernet/ECM/NCM/MBIM (02, 0a), wireless controllers and RNDIS (e0, ef:04).",
        f"reject with-interface one-of {{ {net} }}",
        "# 5. Smart-card readers and tokens (CCID) with nothing else on them: the unit head's DSC token.",
        f"allow with-interface equals {{ {CCID} }}",
        "# 6. Hubs (each device behind a hub is judged by these rules on its own).",
        f"allow with-interface equals {{ {HUB} }}",
    ]
    decisions: list[Decision] = []
    hid_lines: list[str] = []
    for d in devices:
        decisions.append(_decide(d, scanners))
        if d.is_input_device and not d.is_root_hub:
            hid_lines.append(hid_rule(d))
    lines.append("# 7. The keyboards and mice present when this policy was made (HID, and at most vendor-specific")
    lines.append("#    interfaces besides), each pinned to its id, interfaces, name and serial (or port).")
    lines += hid_lines or ["# (none was present)"]
    return "\n".join(lines) + "\n", decisions


def _decide(d: UsbDevice, scanners: Sequence[str]) -> Decision:
    """The same order as the rules, in words (the tests check the rules themselves with USBGuard's parser and
    their own matcher; this is for the administrator's screen)."""
    classes = {i.cls for i in d.interfaces}
    kinds = {hit.kind for i in d.interfaces if (hit := dangerous(i.cls, i.subclass)) is not None}
    if d.is_root_hub:
        return Decision(d, True, "root hub (the controller: PresentControllerPolicy=keep)")
    if "storage" in kinds:
        return Decision(d, False, "rejected: a mass-storage interface")
    if d.usb_id in scanners and "network" not in kinds:
        return Decision(d, True, "allowed: a configured scanner (lockdown.scanner_usb_ids)")
    if "still-image" in kinds:
        return Decision(d, False, "rejected: a still-image (PTP/MTP) interface")
    if "network" in kinds:
        return Decision(d, False, "rejected: a networking or wireless interface")
    if classes == {0x0B}:
        return Decision(d, True, "allowed: a smart-card reader or token (CCID)")
    if classes == {0x09}:
        return Decision(d, True, "allowed: a hub")
    if d.is_input_device:
        extra = "" if d.is_hid_only else ", with a vendor-specific interface"
        return Decision(d, True, f"allowed: a keyboard or mouse present now{extra} (pinned by id"
                        + (", serial" if d.serial else ", port") + " and interfaces)")
    return Decision(d, False, "blocked: no rule allows it")

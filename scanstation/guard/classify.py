"""What a udev event's device is, and whether it must trip the device guard.

The facts come from the event (udev's properties) and from sysfs, read the way the kernel lays it out:
a USB device's interfaces are its children named ``<device>:<config>.<interface>``, each with
``bInterfaceClass``/``bInterfaceSubClass``/``bInterfaceProtocol`` (hex) and the interface string
``interface``; a block device or network interface belongs to a USB device when one of its sysfs
ancestors has ``idVendor``.  Devices under ``/sys/devices/virtual`` (loop, dm, md, lo, veth, bridges,
tun) are made by software on this machine, never plugged in: they are ignored.

:func:`verdict` is the policy, kept as a pure function of the facts so that the decision is the same
whoever asks: the USB classes that carry data off the station or bring a network in (08 mass storage,
06 still image / MTP / PTP, 02 and 0a CDC, e0 wireless incl. RNDIS, ef/04 RNDIS), an ff (vendor)
interface that calls itself "MTP" (Android phones), any block device that appears, a removable
medium put into a drive, and a network interface that was not there when the guard started.  A
keyboard (03), a smart-card token (0b), a hub (09) or the configured scanner (by vendor:product, many
report ff) never trip it.  USBGuard blocks these devices first (docs/lockdown.md); this is the belt to
its braces.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from scanstation.lockdown import usb_classes

SYS = Path("/sys")
VIRTUAL_PREFIX = "/devices/virtual/"

PRINTABLE_MAX = 64


def _read(path: Path) -> str | None:
    """One sysfs attribute as text, or None (absent, unreadable, gone: the device may leave at any time)."""
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return None


def clean_text(value: str | None) -> str | None:
    """A descriptor string fit for a log line and the audit trail: printable, at most 64 characters."""
    if not value:
        return None
    text = "".join(ch for ch in value if ch.isprintable()).strip()
    return text[:PRINTABLE_MAX] or None


@dataclass(frozen=True)
class UsbInterface:
    cls: str  # "08"
    subclass: str
    protocol: str
    name: str | None = None  # the interface string ("MTP"), when the device gives one

    @property
    def code(self) -> str:
        return f"{self.cls}/{self.subclass}/{self.protocol}"


@dataclass(frozen=True)
class DeviceFacts:
    """One device of one udev event, with what the guard decides on (no personal data)."""

    action: str
    subsystem: str
    devtype: str
    devpath: str  # "/devices/pci0000:00/..." (sysfs path without /sys)
    sys_name: str
    properties: Mapping[str, str] = field(default_factory=dict, repr=False)
    usb_devpath: str | None = None  # the USB device it is (usb_device) or belongs to
    vendor_product: str | None = None  # "0781:5567"
    device_class: str | None = None  # bDeviceClass
    interfaces: tuple[UsbInterface, ...] = ()
    product: str | None = None
    manufacturer: str | None = None
    serial_sha256: str | None = None  # a serial is not secret, but the trail needs only to tell devices apart
    size_sectors: int | None = None  # block devices

    @property
    def virtual(self) -> bool:
        return self.devpath.startswith(VIRTUAL_PREFIX)

    @property
    def root(self) -> str:
        """What one physical device is known by: its USB device's path, else its own (a stick's disk, its
        partitions and its interfaces are one device to report)."""
        return self.usb_devpath or self.devpath

    def record(self) -> dict[str, object]:
        """The facts for the audit entry, the log and ``status`` (hardware descriptors only)."""
        return {"subsystem": self.subsystem, "devtype": self.devtype, "devpath": self.devpath,
                "name": self.sys_name, "vendor_product": self.vendor_product,
                "interface_classes": [i.code for i in self.interfaces],
                "product": self.product, "manufacturer": self.manufacturer, "serial_sha256": self.serial_sha256}


def _descriptor_interfaces(path: Path) -> list[tuple[str, str, str]]:
    """(class, subclass, protocol) of every interface descriptor in the device's raw ``descriptors`` (the
    device descriptor, then each configuration's).  The kernel keeps them for a device it has not authorised
    (USBGuard blocked it: no interface directories exist then) as for any other."""
    try:
        raw = path.read_bytes()
    except OSError:
        return []
    out = []
    i = 0
    while i + 2 <= len(raw):
        length, kind = raw[i], raw[i + 1]
        if length < 2:
            break  # malformed: stop rather than loop
        if kind == 4 and length >= 9 and i + 9 <= len(raw):  # INTERFACE descriptor
            out.append((f"{raw[i + 5]:02x}", f"{raw[i + 6]:02x}", f"{raw[i + 7]:02x}"))
        i += length
    return out


def _usb_interfaces(usb_dir: Path, properties: Mapping[str, str]) -> tuple[UsbInterface, ...]:
    """The interfaces of the USB device at ``usb_dir``: its interface directories (with their names), the
    interface descriptors in its raw ``descriptors``, and those udev's usb_id listed in ID_USB_INTERFACES
    (":080650:"): at a usb_device's event the interface directories may not exist yet, or ever (blocked)."""
    found: dict[tuple[str, str, str], UsbInterface] = {}
    prefix = usb_dir.name + ":"
    try:
        children = sorted(os.listdir(usb_dir))
    except OSError:
        children = []
    for child in children:
        if not child.startswith(prefix):
            continue
        d = usb_dir / child
        cls = _read(d / "bInterfaceClass")
        if cls is None:
            continue
        sub, proto = _read(d / "bInterfaceSubClass") or "00", _read(d / "bInterfaceProtocol") or "00"
        key = (cls.lower(), sub.lower(), proto.lower())
        found[key] = UsbInterface(*key, name=clean_text(_read(d / "interface")))
    for key in _descriptor_interfaces(usb_dir / "descriptors"):
        found.setdefault(key, UsbInterface(*key))
    listed = properties.get("ID_USB_INTERFACES", "")
    for code in filter(None, listed.split(":")):
        if len(code) == 6:
            key = (code[0:2].lower(), code[2:4].lower(), code[4:6].lower())
            found.setdefault(key, UsbInterface(*key))
    return tuple(found.values())


# Below a root hub ("usbN"), a USB device's sysfs name is "<bus>-<port>[.<port>...]" ("1-1", "3-2.4"); its
# interfaces are "<device>:<configuration>.<interface>".
_ROOT_HUB = re.compile(r"^usb\d+$")
_USB_DEVICE = re.compile(r"^\d+-\d+(?:\.\d+)*$")


def usb_device_path(devpath: str) -> str | None:
    """The devpath of the USB device that ``devpath`` is or sits under (the deepest one: not its hub),
    from the path alone: an event may arrive after the device has gone from sysfs."""
    parts = devpath.split("/")
    hubs = [i for i, part in enumerate(parts) if _ROOT_HUB.match(part)]
    if not hubs:
        return None
    found = hubs[-1]
    for i in range(found + 1, len(parts)):
        if _USB_DEVICE.match(parts[i]):
            found = i
    return "/".join(parts[: found + 1])


def _vendor_product(properties: Mapping[str, str]) -> str | None:
    """vendor:product from the event itself: PRODUCT=781/5567/100 (USB events), else udev's ID_*_ID."""
    try:
        vid, pid, _bcd = properties.get("PRODUCT", "").split("/")
        return f"{int(vid, 16):04x}:{int(pid, 16):04x}"
    except ValueError:
        pass
    if properties.get("ID_VENDOR_ID") and properties.get("ID_MODEL_ID"):
        return f"{properties['ID_VENDOR_ID']}:{properties['ID_MODEL_ID']}".lower()
    return None


def _interface_from_event(properties: Mapping[str, str]) -> UsbInterface | None:
    """A usb_interface event's own class from INTERFACE=8/6/80 (decimal, as the kernel writes it)."""
    try:
        cls, sub, proto = (int(x) for x in properties.get("INTERFACE", "").split("/"))
    except ValueError:
        return None
    return UsbInterface(f"{cls:02x}", f"{sub:02x}", f"{proto:02x}")


def facts_of(action: str, devpath: str, subsystem: str, devtype: str, properties: Mapping[str, str]) -> DeviceFacts:
    """The facts of one event's device: ``devpath`` without /sys, udev's ``properties``; sysfs for the rest."""
    sys_path = SYS / devpath.lstrip("/")
    sys_name = sys_path.name
    usb_devpath = usb_device_path(devpath)
    usb_dir = SYS / usb_devpath.lstrip("/") if usb_devpath else None
    vendor_product = product = manufacturer = serial = device_class = None
    interfaces: tuple[UsbInterface, ...] = ()
    if usb_dir is not None:  # its attributes, while it is still there
        vid, pid = _read(usb_dir / "idVendor"), _read(usb_dir / "idProduct")
        vendor_product = f"{vid}:{pid}".lower() if vid and pid else None
        product = clean_text(_read(usb_dir / "product"))
        manufacturer = clean_text(_read(usb_dir / "manufacturer"))
        serial = _read(usb_dir / "serial")
        device_class = (_read(usb_dir / "bDeviceClass") or "").lower() or None
        interfaces = _usb_interfaces(usb_dir, properties)
    if subsystem == "usb" and devtype == "usb_interface":
        own = _interface_from_event(properties)
        if own is not None and all(i.code != own.code for i in interfaces):
            interfaces = (*interfaces, own)
    if vendor_product is None:
        vendor_product = _vendor_product(properties)
    size = None
    if subsystem == "block":
        text = _read(sys_path / "size")
        size = int(text) if text and text.isdigit() else None
    serial_hash = (hashlib.sha256(f"{vendor_product}/{serial}".encode()).hexdigest()[:16] if serial else None)
    return DeviceFacts(action=action, subsystem=subsystem, devtype=devtype, devpath=devpath, sys_name=sys_name,
                       properties=dict(properties), usb_devpath=usb_devpath,
                       vendor_product=vendor_product, device_class=device_class, interfaces=interfaces,
                       product=product or clean_text(properties.get("ID_MODEL")),
                       manufacturer=manufacturer or clean_text(properties.get("ID_VENDOR")),
                       serial_sha256=serial_hash, size_sectors=size)


def net_key(devpath: str) -> str:
    """What a network interface is known by across a rename or a driver reload: the hardware device it
    belongs to (its sysfs parent), not its name."""
    parent, _, _name = devpath.rstrip("/").rpartition("/net/")
    return parent or devpath


def _hex_or(text: str | None) -> int:
    """A class code as sysfs writes it ("08"), as a number; -1 when absent or garbled (matches no class)."""
    try:
        return int(text or "", 16)
    except ValueError:
        return -1


def usb_verdict(facts: DeviceFacts, scanner_ids: Iterable[str]) -> str | None:
    """Why this USB device must trip the guard, or None."""
    is_scanner = facts.vendor_product is not None and facts.vendor_product in set(scanner_ids)
    classes = [(i.cls, i.subclass) for i in facts.interfaces]
    if facts.device_class:
        classes.append((facts.device_class, "00"))  # a class given for the whole device (02 CDC, e0)
    for cls, subclass in classes:
        hit = usb_classes.dangerous(_hex_or(cls), _hex_or(subclass))
        if hit is not None and not (is_scanner and hit.kind in usb_classes.SCANNER_MAY_HAVE):
            return hit.words
    for i in facts.interfaces:
        if i.cls == "ff" and i.name and "MTP" in i.name.upper() and not is_scanner:
            return "MTP interface (vendor class ff named 'MTP': a phone)"
    return None


def verdict(facts: DeviceFacts, *, scanner_ids: Iterable[str], known_networks: Iterable[str]) -> str | None:
    """Why this event must trip the guard, or None (the policy of the module docstring)."""
    if facts.virtual:
        return None
    if facts.subsystem == "usb" and facts.action in ("add", "bind"):
        return usb_verdict(facts, scanner_ids)
    if facts.subsystem == "block":
        if facts.action == "add":
            return f"a block device appeared ({facts.devtype or 'disk'} {facts.sys_name}: storage)"
        media = facts.properties.get("DISK_MEDIA_CHANGE") == "1" or facts.properties.get("ID_CDROM_MEDIA") == "1"
        if facts.action == "change" and media and (facts.size_sectors or 0) > 0:
            return f"a medium was put into {facts.sys_name} (storage)"
        return None
    if facts.subsystem == "net" and facts.action == "add" and net_key(facts.devpath) not in set(known_networks):
        return f"a new network interface appeared ({facts.sys_name})"
    return None

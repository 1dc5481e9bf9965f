"""``scanstation lockdown apply``: the files made from this station's configuration and hardware.

The package ships the fixed locks as files (installer/system/); what depends on the station is written
here, into a target root (``/`` on a station, a temp directory in tests, a staging root in the installer):

* the USBGuard policy (:mod:`~scanstation.lockdown.usb_policy`), from the configured scanner ids and the
  keyboards and mice in sysfs now, and the settings of USBGuard's own daemon configuration that make it the
  only policy (that file belongs to the usbguard package, so it is edited in place, never shipped);
* the nftables ruleset (:mod:`~scanstation.lockdown.firewall`) from ``portal.url`` (and ``signoff.tsa_url``);
* a drop-in for scanstation.service with the same addresses as ``IPAddressAllow=`` (the unit itself allows
  loopback only).

Every file is written atomically (temp file, fsync, rename); a file whose content is already right is not
touched, so applying twice changes nothing.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from pathlib import Path

from batchformat.atomic import atomic_write
from scanstation.config import Config
from scanstation.errors import PermissionDenied
from scanstation.lockdown import firewall, usb_policy

USBGUARD_DAEMON_CONF = "etc/usbguard/usbguard-daemon.conf"
SERVICE_DROPIN = "etc/systemd/system/scanstation.service.d/50-lockdown-network.conf"

# USBGuard's daemon settings this station needs, and why (docs/lockdown.md).  Only these keys are touched.
USBGUARD_SETTINGS: dict[str, str] = {
    # our policy is the only policy: Debian's postinst fills rules.conf with every device present when
    # usbguard was installed (a pen drive plugged in then would be allowed for ever)
    "RuleFile": "/" + usb_policy.RULES_PATH,
    "ImplicitPolicyTarget": "block",
    "PresentDevicePolicy": "apply-policy",
    # the controllers (root hubs) stay as they are: blocking one would take the keyboard with it
    "PresentControllerPolicy": "keep",
    "InsertedDevicePolicy": "apply-policy",
    # the kernel authorizes nothing new by itself before the daemon has decided
    "AuthorizedDefault": "none",
    "RestoreControllerDeviceState": "false",
    "DeviceManagerBackend": "uevent",
    # only root may change the policy at run time (Debian also lets the group plugdev)
    "IPCAllowedUsers": "root",
    "IPCAllowedGroups": "root",
}
# RuleFolder would add every *.conf under /etc/usbguard/rules.d/ after our rules: commented out.
USBGUARD_DISABLED = ("RuleFolder",)
_MARK = "# scanstation lockdown apply:"


@dataclasses.dataclass(frozen=True)
class PlannedFile:
    path: str  # relative to the target root
    content: str
    mode: int
    what: str


@dataclasses.dataclass(frozen=True)
class Plan:
    files: tuple[PlannedFile, ...]
    decisions: tuple[usb_policy.Decision, ...]
    ruleset: firewall.Ruleset


def edit_usbguard_daemon_conf(text: str) -> str:
    """``text`` (the usbguard package's daemon configuration, or "") with this station's settings.

    Each key keeps its place: the first active ``Key=`` line is replaced and later ones are removed; a key
    the file lacks is appended under a marked comment.  Idempotent: editing the result changes nothing.
    """
    lines = text.splitlines()
    seen: set[str] = set()
    out: list[str] = []
    for line in lines:
        m = re.match(r"^\s*([A-Za-z]+)\s*=", line)
        key = m.group(1) if m else None
        if key in USBGUARD_SETTINGS:
            if key not in seen:
                out.append(f"{key}={USBGUARD_SETTINGS[key]}")
                seen.add(key)
            continue
        if key in USBGUARD_DISABLED:
            out.append(f"#{line.strip()}  {_MARK} ScanStation's policy file is the only policy")
            continue
        out.append(line)
    missing = [k for k in USBGUARD_SETTINGS if k not in seen]
    if missing:
        if out and out[-1].strip():
            out.append("")
        out.append(f"{_MARK} settings ScanStation needs (docs/lockdown.md)")
        out += [f"{k}={USBGUARD_SETTINGS[k]}" for k in missing]
    return "\n".join(out) + "\n"


def service_dropin(ruleset: firewall.Ruleset) -> str:
    lines = [
        "# Written by `scanstation lockdown apply` with the firewall's addresses (docs/lockdown.md): the service",
        "# may reach these besides loopback (scanstation.service has IPAddressDeny=any, IPAddressAllow=localhost).",
        "[Service]",
    ]
    allowed = [a for a in ruleset.allowed_addresses if not a.is_loopback]
    if allowed:
        lines.append("IPAddressAllow=" + " ".join(str(a) for a in allowed))
    else:
        lines.append("# no destination off this machine: loopback only")
    return "\n".join(lines) + "\n"


def make_plan(config: Config, *, root: Path, sysfs: Path, resolve: firewall.Resolver = firewall.system_resolver,
              resolv_confs: Sequence[Path] | None = None) -> Plan:
    """What apply would write into ``root`` (nothing is written here)."""
    devices = usb_policy.read_usb_devices(sysfs)
    rules, decisions = usb_policy.build_rules(devices, config.lockdown.scanner_usb_ids)
    if resolv_confs is None:
        # The resolvers of the machine the ruleset is for: the target root's files.
        resolv_confs = [root / "etc/resolv.conf", root / "run/systemd/resolve/resolv.conf"]
    ruleset = firewall.ruleset_for(config.portal.url, config.signoff.tsa_url, resolve=resolve,
                                   resolv_confs=resolv_confs)
    current = root / USBGUARD_DAEMON_CONF
    try:
        daemon_conf = current.read_text(encoding="utf-8") if current.exists() else ""
    except PermissionError:
        raise PermissionDenied(f"{current} is readable by root only: run scanstation lockdown as root") from None
    files = (
        PlannedFile(usb_policy.RULES_PATH, rules, 0o600, "USBGuard policy"),
        PlannedFile(USBGUARD_DAEMON_CONF, edit_usbguard_daemon_conf(daemon_conf), 0o600,
                    "USBGuard daemon settings"),
        PlannedFile(firewall.RULESET_PATH, ruleset.text, 0o644, "nftables ruleset"),
        PlannedFile(SERVICE_DROPIN, service_dropin(ruleset), 0o644, "scanstation.service IPAddressAllow"),
    )
    return Plan(files, tuple(decisions), ruleset)


def write_plan(plan: Plan, root: Path) -> list[PlannedFile]:
    """Write the plan's files under ``root``; the ones that changed (content or mode)."""
    changed = []
    for f in plan.files:
        target = root / f.path
        data = f.content.encode("utf-8")
        try:
            same = target.read_bytes() == data and (target.stat().st_mode & 0o7777) == f.mode
        except FileNotFoundError:
            same = False
        if same:
            continue
        try:
            _mkdirs(target.parent)
            atomic_write(target, data, mode=f.mode)
        except PermissionError:
            raise PermissionDenied(f"{target}: not writable by this user: run scanstation lockdown apply as "
                                   "root") from None
        changed.append(f)
    return changed


def _mkdirs(path: Path) -> None:
    """Missing directories 0755, except USBGuard's rules.d: 0700 as the usbguard package makes it."""
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for d in reversed(missing):
        mode = 0o700 if d.name == "rules.d" and d.parent.name == "usbguard" else 0o755
        os.mkdir(d, mode)
        os.chmod(d, mode)

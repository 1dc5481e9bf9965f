"""``scanstation lockdown apply|show``: the USBGuard policy and the firewall made from this station's
configuration and hardware (issue 17, docs/lockdown.md).

``apply`` runs as root, from the package's postinst and whenever ``portal.url``, ``signoff.tsa_url`` or
``lockdown.scanner_usb_ids`` change or a keyboard is replaced.  ``--root`` and ``--sysfs`` let it write into
another root (an installer's staging root, a test's temp directory) from another device tree.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from scanstation.cli.common import load, say, warn


def _plan(args: argparse.Namespace) -> Any:
    from scanstation.lockdown.apply import make_plan

    return make_plan(load(args), root=Path(args.root), sysfs=Path(args.sysfs))


def _show_decisions(plan: Any) -> None:
    say("USB devices present now:")
    for d in plan.decisions:
        say(f"  {'allow' if d.allowed else 'NO   '}  {d.device.describe()}: {d.reason}")
    if not plan.decisions:
        say("  (none)")
    dests = plan.ruleset.destinations
    say("network: " + ("; ".join(f"{d.endpoint.setting} -> {', '.join(map(str, d.addresses))} port "
                                 f"{d.endpoint.port}" for d in dests) if dests else "loopback only (no portal)"))
    if plan.ruleset.resolvers:
        say("DNS: " + ", ".join(map(str, plan.ruleset.resolvers)))


def cmd_lockdown_show(args: argparse.Namespace) -> int:
    plan = _plan(args)
    _show_decisions(plan)
    root = Path(args.root)
    for f in plan.files:
        target = root / f.path
        try:
            same = target.read_text(encoding="utf-8") == f.content
            state = "up to date" if same else "differs: apply would rewrite it"
        except FileNotFoundError:
            state = "missing: apply would write it"
        except PermissionError:
            state = "not readable by this user"
        say(f"{target}: {f.what}, {state}")
    if args.print_files:
        for f in plan.files:
            say(f"----- {root / f.path} ({f.mode:04o})")
            say(f.content.rstrip("\n"))
    return 0


def _activate(changed: list[Any]) -> None:
    """On a running system (root /, systemd as PID 1), make the new files take effect."""
    if not Path("/run/systemd/system").is_dir() or shutil.which("systemctl") is None:
        say("systemd is not running: the files take effect at the next boot")
        return
    paths = {f.path for f in changed}
    steps: list[tuple[str, list[str]]] = []
    if any("systemd/system" in p for p in paths):
        steps.append(("systemd reloaded", ["systemctl", "daemon-reload"]))
    if any(p.endswith("firewall.nft") for p in paths):
        # nft itself, not a restart of scanstation-firewall.service: scanstation.service Requires= that unit,
        # so restarting it would restart the service and lock the station.  One nft transaction, as at boot.
        nft = shutil.which("nft") or "/usr/sbin/nft"
        steps.append(("firewall reloaded", [nft, "-f", "/etc/scanstation/firewall.nft"]))
    if any("usbguard" in p for p in paths):
        steps.append(("USBGuard restarted with the policy", ["systemctl", "try-restart", "usbguard.service"]))
    for what, argv in steps:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            say(what)
        else:
            warn(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
    if any("systemd/system" in p for p in paths):
        say("scanstation.service takes its new IPAddressAllow= at its next start (restarting it locks the station)")


def cmd_lockdown_apply(args: argparse.Namespace) -> int:
    from scanstation.lockdown.apply import write_plan

    plan = _plan(args)
    _show_decisions(plan)
    root = Path(args.root)
    changed = write_plan(plan, root)
    for f in plan.files:
        say(f"{root / f.path}: {'written' if f in changed else 'unchanged'} ({f.what})")
    if changed and os.path.realpath(root) == "/" and not args.no_activate:
        _activate(changed)
    return 0


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("lockdown", parents=[common], help="the kiosk's USB policy and firewall (docs/lockdown.md)")
    ls = s.add_subparsers(dest="lockdown_command", metavar="ACTION", required=True)

    def where(p: argparse.ArgumentParser) -> None:
        p.add_argument("--root", default="/", metavar="DIR", help="target root (default /)")
        p.add_argument("--sysfs", default="/sys", metavar="DIR", help="sysfs to read USB devices from (default /sys)")

    a = ls.add_parser("apply", parents=[common],
                      help="write the USBGuard policy, USBGuard's settings, the nftables ruleset and the service's "
                      "IP allow list (as root)")
    where(a)
    a.add_argument("--no-activate", action="store_true",
                   help="write the files only (default on a running system: reload the firewall and USBGuard)")
    a.set_defaults(func=cmd_lockdown_apply)

    w = ls.add_parser("show", parents=[common], help="what apply would write, and whether the files are up to date")
    where(w)
    w.add_argument("--print-files", action="store_true", help="print each file's content")
    w.set_defaults(func=cmd_lockdown_show)

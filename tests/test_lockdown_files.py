"""The kiosk's system locks as shipped (installer/system/) and as `scanstation lockdown apply` writes them,
checked with the tools that read them (scanstation/lockdown/checks.py), and hostile variants that the same
checks must catch (issue 17, docs/lockdown.md)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from scanstation.config import load_config
from scanstation.errors import ConfigError
from scanstation.lockdown import apply, checks, firewall, usb_policy

REPO = Path(__file__).resolve().parent.parent
TREE = REPO / "installer" / "system"
UNIT = TREE / "lib/systemd/system/scanstation.service"


SHARED = Path("/usr/lib/x86_64-linux-gnu/systemd/libsystemd-shared-252.so")  # systemd's config parsers live here


# ----------------------------------------------------------------------------------------------- fake sysfs

def add_usb_device(sysfs: Path, port: str, usb_id: str, interfaces: list[str], *, serial: str = "",
                   product: str = "", device_class: str = "00") -> None:
    """A device in the shape of /sys/bus/usb/devices/<port>, with its interfaces <port>:1.<n> inside it."""
    vendor, prod = usb_id.split(":")
    d = sysfs / "bus/usb/devices" / port
    d.mkdir(parents=True)
    (d / "idVendor").write_text(vendor + "\n")
    (d / "idProduct").write_text(prod + "\n")
    (d / "bDeviceClass").write_text(device_class + "\n")
    if serial:
        (d / "serial").write_text(serial + "\n")
    if product:
        (d / "product").write_text(product + "\n")
    for n, text in enumerate(interfaces):
        cls, sub, proto = text.split(":")
        i = d / f"{port}:1.{n}"
        i.mkdir()
        (i / "bInterfaceClass").write_text(cls + "\n")
        (i / "bInterfaceSubClass").write_text(sub + "\n")
        (i / "bInterfaceProtocol").write_text(proto + "\n")


@pytest.fixture()
def sysfs(tmp_path: Path) -> Path:
    """At install: a root hub, a keyboard without a serial, a mouse with one, and a USB stick left plugged in."""
    s = tmp_path / "sys"
    add_usb_device(s, "usb1", "1d6b:0002", ["09:00:00"], product="xHCI Host Controller", device_class="09")
    add_usb_device(s, "1-1", "413c:2113", ["03:01:01", "03:00:00"], product="Dell KB216 Wired Keyboard")
    add_usb_device(s, "1-2", "046d:c077", ["03:01:02"], serial="A1B2C3", product='USB "Optical" Mouse')
    add_usb_device(s, "1-3", "0781:5567", ["08:06:50"], serial="4C530001120115117115", product="Cruzer Blade")
    # a keyboard with a card reader inside, and a "keyboard" that is also a network adapter: neither is let in
    add_usb_device(s, "1-5", "05e3:0751", ["03:01:01", "08:06:50"], product="Keyboard Hub Reader")
    add_usb_device(s, "1-6", "0bda:8153", ["03:00:00", "02:06:00", "0a:00:00"], product="Dock")
    # a gaming keyboard with a vendor-specific lighting interface: a keyboard
    add_usb_device(s, "1-7", "1532:0226", ["03:01:01", "03:00:02", "ff:00:00"], serial="PM1234", product="Huntsman")
    return s


def station_config(tmp_path: Path, portal: str = "", scanners: tuple[str, ...] = (), tsa: str = "") -> Path:
    path = tmp_path / "station.toml"
    ids = ", ".join(f'"{s}"' for s in scanners)
    path.write_text(f'[portal]\nurl = "{portal}"\n[signoff]\ntsa_url = "{tsa}"\n'
                    f"[lockdown]\nscanner_usb_ids = [{ids}]\n")
    return path


def target_root(tmp_path: Path) -> Path:
    """A target root holding what the usbguard package installs (its daemon configuration) and a resolv.conf."""
    root = tmp_path / "root"
    (root / "etc/usbguard/rules.d").mkdir(parents=True)
    (root / "etc/usbguard/usbguard-daemon.conf").write_text(DEBIAN_USBGUARD_CONF)
    (root / "etc/resolv.conf").write_text("# from DHCP\nsearch example.org\nnameserver 192.0.2.53\n"
                                          "nameserver 2001:db8::53%eth0\n")
    return root


# The settings lines of Debian 12's usbguard 1.1.2 /etc/usbguard/usbguard-daemon.conf (its comments shortened).
DEBIAN_USBGUARD_CONF = """\
# RuleFile=/path/to/rules.conf
#
RuleFile=/etc/usbguard/rules.conf
#
# RuleFolder=/path/to/rulesfolder/
#
RuleFolder=/etc/usbguard/rules.d/
ImplicitPolicyTarget=block
PresentDevicePolicy=apply-policy
PresentControllerPolicy=keep
InsertedDevicePolicy=apply-policy
AuthorizedDefault=none
RestoreControllerDeviceState=false
DeviceManagerBackend=uevent
IPCAllowedUsers=root
IPCAllowedGroups=root plugdev
IPCAccessControlFiles=/etc/usbguard/IPCAccessControl.d/
DeviceRulesWithPort=false
AuditBackend=FileAudit
AuditFilePath=/var/log/usbguard/usbguard-audit.log
HidePII=false
"""


def run_cli(*argv: str, config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SCANSTATION_CONFIG": str(config)}
    return subprocess.run([sys.executable, "-m", "scanstation.cli", *argv], capture_output=True, text=True,
                          env=env, timeout=120, check=False)


def fake_resolver(table: dict[str, list[str]]) -> firewall.Resolver:
    """Name resolution for names that do not exist (DNS is outside the test machine): raises like getaddrinfo."""
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(-2, "Name or service not known")
        return table[host]
    return resolve


# ----------------------------------------------------------------------------------- the shipped tree

def test_shipped_tree_passes_every_check() -> None:
    problems = checks.check_root(TREE)
    assert checks.errors(problems) == [], "\n".join(map(str, problems))


def test_service_rated_ok_by_systemd_analyze_security() -> None:
    rating = checks.security_rating(TREE, "scanstation.service")
    print(rating.line)
    assert rating.exposure <= 2.0, rating.report
    assert rating.verdict in ("OK", "SAFE")


def test_units_pass_verify_in_a_root_and_a_missing_program_fails_it(tmp_path: Path) -> None:
    # (the tree holds /usr/bin/scanstation, the command that runs the venv's with the station's configuration)
    assert checks.check_units_verify(TREE, checks.SERVICE_UNITS, provided=()) == []
    # without the package's program the same check fails: it is real, not skipped
    tree = tmp_path / "tree"
    shutil.copytree(TREE, tree, symlinks=True)
    (tree / "usr/bin/scanstation").unlink()
    problems = checks.check_units_verify(tree, ["scanstation.service"], provided=())
    assert any("/usr/bin/scanstation" in p.message for p in problems), problems


def test_a_unit_with_a_typo_fails_verify(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(TREE / "lib", tree / "lib")
    unit = tree / "lib/systemd/system/scanstation.service"
    unit.write_text(unit.read_text().replace("ProtectSystem=strict", "ProtectSystem=strict\nProtectSistem=yes"))
    problems = checks.check_units_verify(tree, ["scanstation.service"], provided=("/usr/bin/scanstation",))
    assert any("ProtectSistem" in p.message for p in problems), problems


def test_a_weakly_sandboxed_unit_rates_above_two(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    unit = tree / "lib/systemd/system/scanstation.service"
    unit.parent.mkdir(parents=True)
    # the usual unit a developer would write: a user, a program, nothing else
    unit.write_text("[Unit]\nDescription=weak\n[Service]\nUser=scanstation\nExecStart=/usr/bin/scanstation serve\n")
    problems = checks.check_unit_security(tree, "scanstation.service")
    assert problems and "above 2.0" in problems[0].message, problems
    # and one setting less than ours is noticed too: dropping the syscall filter costs more than the margin
    strong = UNIT.read_text()
    weaker = "\n".join(line for line in strong.splitlines() if not line.startswith(("SystemCallFilter",
                                                                                  "RestrictAddressFamilies",
                                                                                  "ProtectSystem")))
    unit.write_text(weaker + "\n")
    assert checks.security_rating(tree, "scanstation.service").exposure > 2.0


def test_the_service_unit_keeps_what_the_station_needs() -> None:
    """The lines the station's own code depends on (a filter that killed them would stop the service)."""
    text = "\n".join(ln for ln in UNIT.read_text().splitlines() if not ln.startswith("#"))
    for line in ("User=scanstation", "SupplementaryGroups=scanstation-kiosk", "ExecStart=/usr/bin/scanstation serve",
                 "Environment=SCANSTATION_CONFIG=/etc/scanstation/station.toml", "RuntimeDirectory=scanstation",
                 "StateDirectory=scanstation", "DeviceAllow=char-usb_device rw", "LimitCORE=0", "UMask=0077",
                 "MemoryDenyWriteExecute=yes", "SystemCallFilter=setpriority fchownat chown capset",
                 "NoNewPrivileges=yes",
                 "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK", "TemporaryFileSystem=/dev/shm:"):
        assert line in text, line
    # the pcscd socket (the DSC token) must stay reachable: nothing hides /run/pcscd
    assert "InaccessiblePaths" not in text and "PrivateDevices=yes" not in text


def test_the_syscall_filter_allows_what_the_service_calls() -> None:
    """The service lowers its priority (setpriority, in @resources, which the filter removes) and gives its socket
    to the kiosk's group (chown, in @privileged): both allowed back, as systemd-analyze's own reading shows."""
    report = checks.security_rating(TREE, "scanstation.service").report
    assert "@resources is included (e.g. setpriority is allowed)" in report
    assert "@privileged is included (e.g. chown is allowed)" in report
    # and nothing else of @privileged: systemd-analyze's own list of the group, against the unit's allow list
    out = subprocess.run(["systemd-analyze", "syscall-filter", "@privileged"], capture_output=True, text=True,
                         check=True).stdout
    assert "setuid" in out and "setuid" not in UNIT.read_text()


def test_closed_ruleset_is_the_generated_one() -> None:
    assert (TREE / firewall.CLOSED_RULESET_PATH).read_text() == firewall.closed_ruleset()


def test_masks_are_symlinks_to_dev_null(tmp_path: Path) -> None:
    assert checks.check_masks(TREE) == []
    tree = tmp_path / "tree"
    shutil.copytree(TREE / "etc/systemd/system", tree / "etc/systemd/system", symlinks=True)
    (tree / "etc/systemd/system/swap.target").unlink()
    assert [p.file for p in checks.check_masks(tree)] == [str(tree / "etc/systemd/system/swap.target")]


def test_sysctl_hostile_files_fail(tmp_path: Path) -> None:
    good = TREE / "etc/sysctl.d/90-scanstation.conf"
    assert checks.errors(checks.check_sysctl(good)) == []
    typo = tmp_path / "typo.conf"
    typo.write_text(good.read_text().replace("fs.suid_dumpable", "fs.suid_dumpabel"))
    messages = [p.message for p in checks.errors(checks.check_sysctl(typo))]
    assert any("fs.suid_dumpabel: no such kernel setting" in m for m in messages), messages
    assert any("fs.suid_dumpable must be '0'" in m for m in messages), messages
    dumps = tmp_path / "dumps.conf"
    dumps.write_text(good.read_text().replace("kernel.core_pattern = |/bin/false", "kernel.core_pattern = core"))
    assert any("kernel.core_pattern" in p.message for p in checks.errors(checks.check_sysctl(dumps)))
    words = tmp_path / "words.conf"
    words.write_text(good.read_text().replace("kernel.dmesg_restrict = 1", "kernel.dmesg_restrict = yes"))
    assert any("takes numbers" in p.message for p in checks.errors(checks.check_sysctl(words)))


def test_modprobe_hostile_files_fail(tmp_path: Path) -> None:
    good = TREE / "etc/modprobe.d/scanstation.conf"
    assert checks.check_modprobe(good) == []
    blacklist_only = tmp_path / "only-blacklist.conf"
    blacklist_only.write_text(good.read_text().replace("install usb-storage /bin/false\n", ""))
    problems = checks.check_modprobe(blacklist_only)
    assert [p.message.split(":")[0] for p in problems] == ["usb-storage"], problems
    garbage = tmp_path / "garbage.conf"
    garbage.write_text(good.read_text() + "instal uas /bin/true\n")
    assert any("ignoring bad line" in p.message for p in checks.check_modprobe(garbage))


def test_polkit_rule_in_polkits_engine(tmp_path: Path) -> None:
    rule = TREE / "etc/polkit-1/rules.d/00-scanstation.rules"
    assert checks.check_polkit(rule) == []
    # an allowing rule named before ours wins in polkit's order, and the check sees it
    (tmp_path / "rules.d").mkdir()
    early = tmp_path / "rules.d/00-aaa.rules"
    early.write_text('polkit.addRule(function (action, subject) {\n'
                     '  if (action.id.indexOf("org.freedesktop.udisks2.") === 0 && subject.isInGroup("plugdev"))\n'
                     '    return polkit.Result.YES;\n});\n')
    files = checks.polkit_order(rule, [tmp_path / "rules.d", Path("/usr/share/polkit-1/rules.d")])
    results = checks.polkit_results(files, [("org.freedesktop.udisks2.encrypted-unlock", "kiosk", ("plugdev",))])
    assert results == ["yes"]
    # a syntax error is caught by the engine
    broken = tmp_path / "broken.rules"
    broken.write_text(rule.read_text().replace("return polkit.Result.NO;", "return polkit.Result.NO", 1)
                      .replace("var id = action.id;", "var id = = action.id;"))
    assert any("SyntaxError" in p.message for p in checks.check_polkit(broken, with_installed=False))
    # and a rule that forgets udisks2 fails the check
    lax = tmp_path / "lax.rules"
    lax.write_text(rule.read_text().replace('"org.freedesktop.udisks2."', '"org.freedesktop.udisks3."'))
    assert any("udisks2.filesystem-mount" in p.message for p in checks.check_polkit(lax, with_installed=False))


def test_shipped_conffiles_are_what_the_issue_asks() -> None:
    sleep = (TREE / "etc/systemd/sleep.conf.d/90-scanstation.conf").read_text()
    for key in ("AllowSuspend=no", "AllowHibernation=no", "AllowSuspendThenHibernate=no", "AllowHybridSleep=no"):
        assert key in sleep
    assert "Storage=none" in (TREE / "etc/systemd/coredump.conf.d/90-scanstation.conf").read_text()
    journal = (TREE / "etc/systemd/journald.conf.d/90-scanstation.conf").read_text()
    assert "Storage=volatile" in journal and "ForwardToSyslog=no" in journal
    # each key is one the reading daemon knows (its binary holds the name; a typo would be ignored silently)
    for daemon, conf in (("systemd-journald", "journald.conf.d"), ("systemd-logind", "logind.conf.d"),
                         ("systemd-sleep", "sleep.conf.d")):
        binary = (Path("/lib/systemd") / daemon).read_bytes() + SHARED.read_bytes()
        for line in (TREE / "etc/systemd" / conf / "90-scanstation.conf").read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                assert line.split("=")[0].encode() in binary, (conf, line)


# ------------------------------------------------------------------------------------------- USB policy

def test_usb_policy_from_sysfs_allows_keyboard_and_mouse_not_the_stick(tmp_path: Path, sysfs: Path) -> None:
    devices = usb_policy.read_usb_devices(sysfs)
    assert [d.port for d in devices] == ["1-1", "1-2", "1-3", "1-5", "1-6", "1-7", "usb1"]
    text, decisions = usb_policy.build_rules(devices, ["04c5:132e"])
    rules_file = tmp_path / "50-scanstation.conf"
    rules_file.write_text(text)
    parsed = checks.parse_usbguard_rules(rules_file)
    assert parsed.problems == ()
    present = [checks.SimDevice(d.describe(), d.usb_id, tuple(i.text() for i in d.interfaces), d.serial, d.name,
                                d.port) for d in devices]
    verdicts = {d.label.split()[0]: checks.usb_verdict(parsed.rules, d)[0] for d in present}
    assert verdicts == {"1-1": "allow", "1-2": "allow", "1-3": "reject", "1-5": "reject", "1-6": "reject",
                        "1-7": "allow", "usb1": "allow"}
    assert checks.check_usb_policy(rules_file, scanner_ids=["04c5:132e"],
                                   present=[present[0], present[1], present[5]]) == []
    # the keyboard without a serial is pinned to its port; the mouse by its serial (quotes escaped for USBGuard)
    # (USBGuard prints a set without its operator when it is "equals", the default)
    assert 'allow id 413c:2113 name "Dell KB216 Wired Keyboard" via-port "1-1" with-interface ' \
           '{ 03:00:00 03:01:01 }' in parsed.rules
    assert any(r.startswith('allow id 046d:c077 serial "A1B2C3" name "USB \\"Optical\\" Mouse"') for r in parsed.rules)
    moved = checks.SimDevice("keyboard in another port", "413c:2113", ("03:01:01", "03:00:00"),
                             name="Dell KB216 Wired Keyboard", port="1-4")
    assert checks.usb_verdict(parsed.rules, moved)[0] == "block"
    assert [d.reason.split(":")[0] for d in decisions] == ["allowed", "allowed", "rejected", "rejected", "rejected",
                                                           "allowed", "root hub (the controller"]
    assert "with a vendor-specific interface" in decisions[5].reason


def test_usb_policy_without_scanner_ids_still_blocks_the_matrix(tmp_path: Path) -> None:
    text, _ = usb_policy.build_rules([], [])
    rules_file = tmp_path / "rules.conf"
    rules_file.write_text(text)
    problems = checks.check_usb_policy(rules_file)
    # no scanner configured: the scanner of the matrix is blocked, and that is the only difference
    assert [p.message.split(" (04c5")[0] for p in problems] == ["scanner (vendor class)"], problems


def test_hostile_usb_policies_are_caught(tmp_path: Path) -> None:
    good, _ = usb_policy.build_rules([], ["04c5:132e"])
    cases = {
        # a catch-all allow at the top
        "allow-all": "allow\n" + good,
        # mass storage no longer rejected first: the composite keyboard+card reader passes the HID... and the stick
        # passes an 'allow with-interface one-of { 08:*:* }' someone added for a "backup"
        "storage": good.replace("reject with-interface one-of { 08:*:* }",
                                "allow with-interface one-of { 08:*:* }"),
        # the scanner allowed by id alone: a device faking its id with a network interface gets in
        "scanner-by-id": good.replace("allow id 04c5:132e with-interface none-of { 02:*:* 0a:*:* e0:*:* ef:04:* }",
                                      "allow id 04c5:132e"),
        # the order: the scanner allowed before storage is rejected, so a device with its id and a disk gets in
        "order": good.replace("reject with-interface one-of { 08:*:* }\n", "").replace(
            "# 3. Still image", "reject with-interface one-of { 08:*:* }\n# 3. Still image"),
        # tokens allowed when they have a CCID interface among others: a token that also types (HID) gets in
        "ccid-one-of": good.replace("allow with-interface equals { 0b:*:* }", "allow with-interface one-of { 0b:*:* }"),
    }
    expected = {"allow-all": "USB stick", "storage": "USB stick", "scanner-by-id": "scanner spoof with a network",
                "order": "scanner spoof with storage", "ccid-one-of": "token with a keyboard interface"}
    for name, text in cases.items():
        f = tmp_path / f"{name}.conf"
        f.write_text(text)
        problems = checks.check_usb_policy(f, scanner_ids=["04c5:132e"])
        assert any(p.message.startswith(expected[name]) for p in problems), (name, problems)
    # a rule USBGuard cannot parse is reported by USBGuard's parser, with its line
    bad = tmp_path / "bad.conf"
    bad.write_text(good + "allow with-interfaces equals { 03:*:* }\n")
    problems = checks.check_usb_policy(bad)
    assert problems and problems[0].check == "usbguard-rule-parser" and problems[0].file.endswith(
        f":{len(good.splitlines()) + 1}"), problems


def test_usb_policy_refuses_bad_scanner_ids() -> None:
    with pytest.raises(ConfigError, match="04C5:132E"):
        usb_policy.build_rules([], ["04C5:132E"])


def test_usb_strings_are_escaped_for_usbguard(tmp_path: Path) -> None:
    device = usb_policy.UsbDevice("1-5", "1a2b", "3c4d", 'Kbd "X" \\ é\x01', "", 0,
                                  (usb_policy.UsbInterface(3, 1, 1),))
    f = tmp_path / "r.conf"
    f.write_text(usb_policy.hid_rule(device) + "\n")
    parsed = checks.parse_usbguard_rules(f)
    assert parsed.problems == ()
    sim = checks.SimDevice("k", "1a2b:3c4d", ("03:01:01",), name='Kbd "X" \\ é\x01', port="1-5")
    assert checks.usb_verdict(parsed.rules, sim)[0] == "allow"


# --------------------------------------------------------------------------------------------- firewall

def test_firewall_for_an_ip_portal(tmp_path: Path) -> None:
    rs = firewall.ruleset_for("https://192.0.2.10:8443/acr/", resolve=fake_resolver({}),
                              resolv_confs=[tmp_path / "none"])
    assert "ip daddr { 192.0.2.10 } tcp dport 8443 accept" in rs.text
    assert "dport 53" not in rs.text  # an address needs no DNS
    f = tmp_path / "fw.nft"
    f.write_text(rs.text)
    assert checks.check_nft(f, closed=TREE / firewall.CLOSED_RULESET_PATH) == []


def test_firewall_for_a_name_allows_its_addresses_and_the_resolvers(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 192.0.2.53\nnameserver 2001:db8::53%eth0\noptions edns0\n")
    rs = firewall.ruleset_for("https://portal.example.gov.in/", "http://tsa.example.org/tsr",
                              resolve=fake_resolver({"portal.example.gov.in": ["198.51.100.7", "2001:db8:1::7"],
                                                     "tsa.example.org": ["203.0.113.5"]}),
                              resolv_confs=[resolv])
    for line in ("ip daddr { 198.51.100.7 } tcp dport 443 accept", "ip6 daddr { 2001:db8:1::7 } tcp dport 443 accept",
                 "ip daddr { 203.0.113.5 } tcp dport 80 accept", "ip daddr { 192.0.2.53 } udp dport 53 accept",
                 "ip6 daddr { 2001:db8::53 } tcp dport 53 accept"):
        assert line in rs.text, line
    f = tmp_path / "fw.nft"
    f.write_text(rs.text)
    assert checks.check_nft(f) == []
    assert [str(a) for a in rs.allowed_addresses] == ["198.51.100.7", "2001:db8:1::7", "203.0.113.5", "192.0.2.53",
                                                      "2001:db8::53"]


def test_firewall_for_an_ipv6_portal_and_localhost(tmp_path: Path) -> None:
    rs = firewall.ruleset_for("https://[2001:db8::10]:9443/", resolve=fake_resolver({}), resolv_confs=[])
    assert "ip6 daddr { 2001:db8::10 } tcp dport 9443 accept" in rs.text and "ip daddr" not in rs.text
    f = tmp_path / "v6.nft"
    f.write_text(rs.text)
    assert checks.check_nft(f) == []
    # a demo portal on this machine: loopback is open anyway, no DNS needed (really resolved: /etc/hosts)
    local = firewall.ruleset_for("http://localhost:8080/", resolve=firewall.system_resolver, resolv_confs=[])
    assert local.text == firewall.build_ruleset(local.destinations).text
    assert "tcp dport" not in local.text and "loopback only" in local.text


def test_empty_portal_is_loopback_only(tmp_path: Path) -> None:
    rs = firewall.ruleset_for("", resolve=fake_resolver({}), resolv_confs=[])
    closed = firewall.closed_ruleset()
    assert rs.text[rs.text.index("\ntable"):] == closed[closed.index("\ntable"):]
    body = rs.text[rs.text.index("table inet scanstation {"):]
    assert "accept" in body and body.count("accept") == 2  # lo in, lo out: nothing else


@pytest.mark.parametrize("url, words", [
    ("portal.example.gov.in", "not an https://"),
    ("ftp://portal.example/", "not an https://"),
    ("https:///files/", "names no host"),
    ("https://portal.example:99999/", "not a valid URL"),
    ("https://[2001:db8::1/", "not a valid URL"),
    ("https://user:secret@portal.example/", "credentials"),
])
def test_bad_url_fails_naming_it(url: str, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        firewall.ruleset_for(url, resolve=fake_resolver({}), resolv_confs=[])
    assert f"portal.url {url!r}" in e.value.message and words in e.value.message


def test_unresolvable_name_and_unknown_resolvers_fail(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot resolve 'portal\.invalid'"):
        firewall.ruleset_for("https://portal.invalid/", resolve=fake_resolver({}), resolv_confs=[])
    stub = tmp_path / "resolv.conf"
    stub.write_text("nameserver 127.0.0.53\n")
    with pytest.raises(ConfigError, match="no DNS resolver is known"):
        firewall.ruleset_for("https://portal.example/", resolve=fake_resolver({"portal.example": ["192.0.2.1"]}),
                             resolv_confs=[stub, tmp_path / "missing"])
    # systemd-resolved's stub: its upstream servers are used
    upstream = tmp_path / "upstream.conf"
    upstream.write_text("nameserver 192.0.2.99\n")
    rs = firewall.ruleset_for("https://portal.example/", resolve=fake_resolver({"portal.example": ["192.0.2.1"]}),
                              resolv_confs=[stub, upstream])
    assert "ip daddr { 192.0.2.99 } udp dport 53 accept" in rs.text


def test_a_hostile_ruleset_fails_the_nft_check(tmp_path: Path) -> None:
    good = firewall.ruleset_for("https://192.0.2.10/", resolve=fake_resolver({}), resolv_confs=[]).text
    accept = tmp_path / "accept.nft"
    accept.write_text(good.replace("type filter hook output priority filter; policy drop;",
                                   "type filter hook output priority filter; policy accept;"))
    assert any("chain output" in p.message for p in checks.check_nft(accept))
    syntax = tmp_path / "syntax.nft"
    syntax.write_text(good.replace("tcp dport 443 accept", "tcp dport 443 acept"))
    assert checks.check_nft(syntax)[0].check == "nft -c -f"


# ------------------------------------------------------------------------------------------------ apply

def test_lockdown_apply_into_a_root(tmp_path: Path, sysfs: Path) -> None:
    root = target_root(tmp_path)
    config = station_config(tmp_path, "https://192.0.2.10:8443/", ("04c5:132e",))
    proc = run_cli("lockdown", "apply", "--root", str(root), "--sysfs", str(sysfs), config=config)
    assert proc.returncode == 0, proc.stderr
    assert "NO     1-3 0781:5567 'Cruzer Blade' [08:06:50]: rejected: a mass-storage interface" in proc.stdout
    rules = root / usb_policy.RULES_PATH
    assert stat.S_IMODE(rules.stat().st_mode) == 0o600
    assert stat.S_IMODE((root / apply.USBGUARD_DAEMON_CONF).stat().st_mode) == 0o600
    # USBGuard's daemon settings: our file is the only policy, plugdev may no longer change it
    conf = (root / apply.USBGUARD_DAEMON_CONF).read_text()
    assert "RuleFile=/etc/usbguard/rules.d/50-scanstation.conf" in conf.splitlines()
    assert "RuleFolder=/etc/usbguard/rules.d/" not in conf.splitlines()
    assert "IPCAllowedGroups=root" in conf.splitlines() and "IPCAllowedGroups=root plugdev" not in conf
    assert conf.count("ImplicitPolicyTarget=") == 1
    # the firewall and the service's drop-in
    assert "ip daddr { 192.0.2.10 } tcp dport 8443 accept" in (root / firewall.RULESET_PATH).read_text()
    assert "IPAddressAllow=192.0.2.10\n" in (root / apply.SERVICE_DROPIN).read_text()
    # the generated files pass the same checks as the shipped ones, in a root with the shipped tree
    full = tmp_path / "full"
    shutil.copytree(TREE, full, symlinks=True)
    shutil.copytree(root, full, symlinks=True, dirs_exist_ok=True)
    present = [checks.SimDevice(d.port, d.usb_id, tuple(i.text() for i in d.interfaces), d.serial, d.name, d.port)
               for d in usb_policy.read_usb_devices(sysfs) if d.is_input_device]
    problems = checks.check_root(full, generated=True, scanner_ids=["04c5:132e"])
    problems += checks.check_usb_policy(full / usb_policy.RULES_PATH, scanner_ids=["04c5:132e"], present=present)
    assert checks.errors(problems) == [], "\n".join(map(str, problems))
    # the drop-in keeps the service's rating
    assert checks.security_rating(full, "scanstation.service").exposure <= 2.0
    # applying again changes nothing
    again = run_cli("lockdown", "apply", "--root", str(root), "--sysfs", str(sysfs), config=config)
    assert again.returncode == 0 and " written " not in again.stdout and again.stdout.count("unchanged") == 4


def test_lockdown_apply_edits_usbguards_conf_idempotently() -> None:
    once = apply.edit_usbguard_daemon_conf(DEBIAN_USBGUARD_CONF)
    assert apply.edit_usbguard_daemon_conf(once) == once
    assert once.count("RuleFile=") == 2  # the commented example and ours
    assert [ln for ln in once.splitlines() if ln.startswith("RuleFile=")] == [
        "RuleFile=/etc/usbguard/rules.d/50-scanstation.conf"]
    # a file that lacks keys (or no file: usbguard not installed yet) gets them appended
    fresh = apply.edit_usbguard_daemon_conf("")
    assert all(f"{k}={v}" in fresh.splitlines() for k, v in apply.USBGUARD_SETTINGS.items())
    assert apply.edit_usbguard_daemon_conf(fresh) == fresh


def test_lockdown_show_and_a_bad_url_from_the_config(tmp_path: Path, sysfs: Path) -> None:
    root = target_root(tmp_path)
    config = station_config(tmp_path, "https://192.0.2.10/")
    proc = run_cli("lockdown", "show", "--root", str(root), "--sysfs", str(sysfs), "--print-files", config=config)
    assert proc.returncode == 0, proc.stderr
    assert "missing: apply would write it" in proc.stdout and "reject with-interface one-of { 08:*:* }" in proc.stdout
    assert not (root / usb_policy.RULES_PATH).exists()  # show writes nothing
    # a URL that config validation lets through but nft could not express fails with the URL named
    bad = station_config(tmp_path, "https://portal.invalid/")
    proc = run_cli("lockdown", "apply", "--root", str(root), "--sysfs", str(sysfs), config=bad)
    assert proc.returncode == 3 and "portal.url 'https://portal.invalid/'" in proc.stderr, proc.stderr
    assert not (root / firewall.RULESET_PATH).exists()


def test_lockdown_apply_needs_a_sysfs(tmp_path: Path) -> None:
    config = station_config(tmp_path)
    root = target_root(tmp_path)
    proc = run_cli("lockdown", "apply", "--root", str(root), "--sysfs", str(tmp_path / "nosys"), config=config)
    assert proc.returncode == 3 and "nosys/bus: no such directory" in proc.stderr
    assert not (root / usb_policy.RULES_PATH).exists()


def test_lockdown_apply_without_usb_allows_no_device(tmp_path: Path) -> None:
    # a sysfs with no bus/usb (no USB host controller: a virtual machine) has no device to allow; the policy
    # still rejects the dangerous classes and blocks by default
    sysfs = tmp_path / "sys"
    (sysfs / "bus" / "pci" / "devices").mkdir(parents=True)
    assert usb_policy.read_usb_devices(sysfs) == []
    root = target_root(tmp_path)
    proc = run_cli("lockdown", "apply", "--root", str(root), "--sysfs", str(sysfs), "--no-activate",
                   config=station_config(tmp_path))
    assert proc.returncode == 0, proc.stderr
    rules = (root / usb_policy.RULES_PATH).read_text()
    assert "reject with-interface one-of { 08:*:* }" in rules
    assert not [ln for ln in rules.splitlines() if ln.startswith("allow") and "03:" in ln]
    # (usb_policy.read_usb_devices on a bus/usb without devices/ is still a broken tree, named)
    (sysfs / "bus" / "usb").mkdir()
    with pytest.raises(ConfigError, match="bus/usb/devices: no such directory"):
        usb_policy.read_usb_devices(sysfs)


# -------------------------------------------------------------------- the service inside its unit's filters

def _proc_status(pid: int) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":\t" in line)


def _nice(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def _descendants(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            out += [int(child), *_descendants(int(child))]
    return out


def test_the_service_works_inside_its_units_seccomp_filters(tmp_path: Path) -> None:
    """`scanstation serve` under the unit's syscall filter, MemoryDenyWriteExecute, RestrictAddressFamilies,
    NoNewPrivileges and LimitCORE (unit_sandbox: libseccomp, as systemd builds them): pages are imported and
    OCR'd by its niced workers (ctypes into libtesseract, OpenCV, SQLCipher, pikepdf), the socket goes to the
    client group (chown), and the filters really hold in the service and its workers."""
    import grp
    import json
    import time

    from scanstation_tools.synth import PageSpec, render_acr_page
    from tests.stationkit import make_station
    from tests.unit_sandbox import UnitSandbox

    sandbox = UnitSandbox.from_unit(UNIT.read_text())
    assert sandbox.deny_write_execute and sandbox.error_number is not None and "setpriority" in (
        sandbox.allowed_syscalls or ())
    group = grp.getgrgid(100).gr_name  # "users": a group that is not the service's own
    st = make_station(tmp_path / "st", extra_config=f'[service]\nclient_group = "{group}"\n')
    proc = subprocess.Popen([sys.executable, "-m", "scanstation.cli.main", "serve"], env=st.env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
                            preexec_fn=sandbox.preexec())
    sock = st.data_dir / "station.sock"
    try:
        deadline = time.monotonic() + 60
        while not sock.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate(timeout=5)
            time.sleep(0.05)
        status = _proc_status(proc.pid)
        assert status["Seccomp"].strip() == "2" and int(status["Seccomp_filters"]) == 3, status
        assert status["NoNewPrivs"].strip() == "1"
        assert sock.stat().st_gid == 100  # the chown the filter allows back
        st.run("unlock", "--user", "head", check=True)
        pages = []
        for i in range(2):
            f = tmp_path / f"page{i}.png"
            render_acr_page(PageSpec(seed=11, page_no=i + 1, dpi=100)).image.save(f)
            pages.append(str(f))
        st.run("import", "--batch", "SB1", *pages, check=True)  # forwarded to the running service
        children: dict[int, tuple[int, str]] = {}  # pid -> (niceness, seccomp filters), as seen while OCR runs
        while True:
            listing = json.loads(st.run("status", "--batch", "SB1", "--json", check=True).stdout)
            states = [p["ocr"] for p in listing["batches"][0]["page_list"]]
            for c in _descendants(proc.pid):
                with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                    children[c] = (_nice(c), _proc_status(c)["Seccomp_filters"].strip())
            if "pending" not in states or time.monotonic() > deadline + 240:
                break
            time.sleep(0.2)
        assert states == ["done", "done"], states  # (the service's log is in the assertion after it stops)
        assert _nice(proc.pid) == 5  # the service lowered its own priority (setpriority, allowed back)
        # every child (OCR pool workers, tesseract) runs under the same three filters; the pool workers are
        # 10 steps nicer still (os.nice in scanstation/ocr/pool.py)
        assert children and {f for _, f in children.values()} == {"3"}, children
        assert max(n for n, _ in children.values()) == 15, children
        assert proc.poll() is None
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "MemoryError" not in err and "Operation not permitted" not in err, err


_COMPACT_PAGE = r"""
import io
import pikepdf
from scanstation.pdf import jbig2
from scanstation.pdf.page_encoding import encode_page
from scanstation_tools.synth import PageSpec, render_acr_page
page = encode_page(render_acr_page(PageSpec(seed=5, page_no=1, dpi=300, noise=0.2)).image, 300)
with pikepdf.open(io.BytesIO(page.pdf)) as pdf:
    images = [o for o in pdf.objects if isinstance(o, pikepdf.Stream) and o.get("/Subtype") == "/Image"]
    filters = sorted({str(o.get("/Filter")) for o in images})
print(jbig2.AVAILABLE, page.method, " ".join(filters))
"""


def test_compact_pages_are_coded_inside_the_units_filters() -> None:
    """The compact page's JBIG2 coder is compiled ahead of time, not by a JIT: under MemoryDenyWriteExecute a
    JIT (numba, tried first) cannot even be imported.  A grey page encoded under the unit's filters keeps its
    JBIG2 stencils."""
    from tests.unit_sandbox import UnitSandbox

    sandbox = UnitSandbox.from_unit(UNIT.read_text())
    assert sandbox.deny_write_execute
    proc = subprocess.run([sys.executable, "-c", _COMPACT_PAGE], capture_output=True, text=True, cwd=REPO,
                          preexec_fn=sandbox.preexec(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "mrc", "/DCTDecode", "/JBIG2Decode"], proc.stdout


# ---------------------------------------------------------------- the firewall between two network namespaces

_PORTAL_SIDE = r"""
import socket, subprocess, sys, threading, time
# the portal's side of the link: wait for the station to hand us our end of the veth, then serve
while subprocess.run(["ip", "link", "show", "v1"], capture_output=True).returncode != 0:
    time.sleep(0.02)
for argv in (["ip", "link", "set", "lo", "up"], ["ip", "link", "set", "v1", "up"],
             ["ip", "addr", "add", "192.0.2.10/24", "dev", "v1"], ["ip", "addr", "add", "192.0.2.53/24", "dev", "v1"],
             ["ip", "-6", "addr", "add", "2001:db8::10/64", "dev", "v1", "nodad"]):
    subprocess.run(argv, check=True)
def serve(family, addr, port):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port)); s.listen(8)
    while True:
        c, _ = s.accept(); c.sendall(b"portal\n"); c.close()
def dns():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("192.0.2.53", 53))
    while True:
        data, peer = u.recvfrom(512); u.sendto(b"answer", peer)
for args in ((socket.AF_INET, "192.0.2.10", 443), (socket.AF_INET, "192.0.2.10", 80),
             (socket.AF_INET6, "2001:db8::10", 443)):
    threading.Thread(target=serve, args=args, daemon=True).start()
threading.Thread(target=dns, daemon=True).start()
print("READY", flush=True)
sys.stdin.readline()  # the station listens now: try to reach it from outside
try:
    socket.create_connection(("192.0.2.1", 2222), timeout=3).close(); print("inbound connected", flush=True)
except OSError as e:
    print("inbound refused:", type(e).__name__, flush=True)
sys.stdin.readline()
"""

_STATION_SIDE = r"""
import errno, socket, subprocess, sys, time
portal_pid, ruleset = sys.argv[1], sys.argv[2]
for argv in (["ip", "link", "set", "lo", "up"],
             ["ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", portal_pid],
             ["ip", "link", "set", "v0", "up"], ["ip", "addr", "add", "192.0.2.1/24", "dev", "v0"],
             ["ip", "-6", "addr", "add", "2001:db8::1/64", "dev", "v0", "nodad"],
             ["nft", "-f", ruleset]):
    subprocess.run(argv, check=True)
sys.stdin.readline()  # the portal side is up
def tcp(family, addr, port):
    try:
        with socket.create_connection((addr, port), timeout=5) as c:
            return c.recv(16).decode().strip()
    except OSError as e:
        return errno.errorcode.get(e.errno, type(e).__name__) if e.errno else type(e).__name__
def udp(addr):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(3)
    try:
        u.sendto(b"q", (addr, 53)); return u.recv(16).decode()
    except OSError as e:
        return errno.errorcode.get(e.errno, type(e).__name__) if e.errno else type(e).__name__
results = {"portal 443": tcp(socket.AF_INET, "192.0.2.10", 443), "portal 80": tcp(socket.AF_INET, "192.0.2.10", 80),
           "portal v6 443": tcp(socket.AF_INET6, "2001:db8::10", 443), "dns": udp("192.0.2.53"),
           "udp 53 elsewhere": udp("192.0.2.10"), "loopback": None}
lo = socket.socket(); lo.bind(("127.0.0.1", 0)); lo.listen(1)
try:
    socket.create_connection(("127.0.0.1", lo.getsockname()[1]), timeout=3).close(); results["loopback"] = "connected"
except OSError as e:
    results["loopback"] = type(e).__name__
listener = socket.socket(); listener.bind(("192.0.2.1", 2222)); listener.listen(1)
print(repr(results), flush=True)
sys.stdin.readline()
"""


@pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2's ip")
def test_the_ruleset_between_a_station_and_a_portal(tmp_path: Path) -> None:
    """Two network namespaces joined by a veth pair: the station (with the generated ruleset loaded) reaches
    the portal's address and port over IPv4 and IPv6 (neighbour discovery passes) and its resolver, nothing
    else there, and the portal cannot open a connection to the station."""
    import ast

    ruleset = firewall.ruleset_for("https://portal.example/", resolve=fake_resolver(
        {"portal.example": ["192.0.2.10", "2001:db8::10"]}), resolv_confs=[_write(tmp_path / "r", "nameserver "
                                                                                   "192.0.2.53\n")])
    nft_file = tmp_path / "fw.nft"
    nft_file.write_text(ruleset.text)
    netns = checks._netns_prefix()
    portal = subprocess.Popen([*netns, sys.executable, "-c", _PORTAL_SIDE], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    station = None
    try:
        # unshare execs python in the namespace, so the portal's pid is the namespace to move v1 into
        station = subprocess.Popen([*netns, sys.executable, "-c", _STATION_SIDE, str(portal.pid), str(nft_file)],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert portal.stdout is not None and station.stdin is not None and station.stdout is not None
        assert portal.stdin is not None
        assert portal.stdout.readline().strip() == "READY", portal.stderr.read() if portal.stderr else ""
        station.stdin.write("go\n")
        station.stdin.flush()
        line = station.stdout.readline()
        assert line, station.communicate(timeout=30)
        results = ast.literal_eval(line)
        portal.stdin.write("try\n")
        portal.stdin.flush()
        inbound = portal.stdout.readline().strip()
    finally:
        for p in (station, portal):
            if p is not None:
                p.kill()
                p.communicate(timeout=30)
    # a TCP SYN dropped on the way out is retried until connect() times out; a UDP datagram fails at once
    assert results == {"portal 443": "portal", "portal 80": "TimeoutError", "portal v6 443": "portal",
                       "dns": "answer", "udp 53 elsewhere": "EPERM", "loopback": "connected"}, results
    assert inbound == "inbound refused: TimeoutError", inbound  # dropped, not even a reset


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_lockdown_apply_into_an_empty_root_makes_the_directories(tmp_path: Path, sysfs: Path) -> None:
    """usbguard not installed yet in the root: its directories are made as the package makes them, and its daemon
    configuration holds our settings (USBGuard's defaults fill the rest)."""
    root = tmp_path / "empty"
    root.mkdir()
    config = load_config(station_config(tmp_path))
    plan = apply.make_plan(config, root=root, sysfs=sysfs, resolve=fake_resolver({}))
    written = apply.write_plan(plan, root)
    assert len(written) == 4 and apply.write_plan(plan, root) == []
    assert stat.S_IMODE((root / "etc/usbguard").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "etc/usbguard/rules.d").stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "etc/scanstation/firewall.nft").stat().st_mode) == 0o644
    conf = (root / apply.USBGUARD_DAEMON_CONF).read_text().splitlines()
    assert "ImplicitPolicyTarget=block" in conf and "RuleFile=/etc/usbguard/rules.d/50-scanstation.conf" in conf
    assert "# no destination off this machine: loopback only" in (root / apply.SERVICE_DROPIN).read_text()


# ------------------------------------------------------------------- USBGuard's daemon deciding, under umockdev

UMOCKDEV = Path(__file__).parent / "vectors" / "umockdev"
MATRIX = {  # the device guard's recorded devices (tests/vectors/umockdev/README.md) and USBGuard's verdict
    "usb-stick-sandisk-cruzer-blade": ("0781:5567", "reject"),
    "phone-samsung-galaxy-mtp": ("04e8:6860", "reject"),  # still image 06/01/01
    "phone-google-pixel-mtp": ("18d1:4ee1", "block"),  # MTP on a vendor-class interface: nothing allows it
    "usb-ethernet-asix-ax88179": ("0b95:1790", "block"),  # vendor class ff: nothing allows it
    "keyboard-dell-kb216": ("413c:2113", "allow"),  # present when the policy was made
    "token-feitian-epass2003": ("096e:0807", "allow"),  # CCID
    "scanner-fujitsu-fi-7160": ("04c5:132e", "allow"),  # lockdown.scanner_usb_ids
}

_UNDER_UMOCKDEV = r"""
import os, re, subprocess, sys, time
from pathlib import Path
from scanstation.lockdown import apply, usb_policy
work = Path(sys.argv[1])
sysfs = Path(os.environ["UMOCKDEV_DIR"]) / "sys"
devices = usb_policy.read_usb_devices(sysfs)
if sys.argv[2] == "no-keyboard":  # the policy of a station whose keyboard was not there at install
    devices = [d for d in devices if not d.is_input_device]
text, _ = usb_policy.build_rules(devices, ["04c5:132e"])
(work / "rules.conf").write_text(text)
conf = apply.edit_usbguard_daemon_conf(Path(sys.argv[3]).read_text())
conf = conf.replace("RuleFile=/etc/usbguard/rules.d/50-scanstation.conf", f"RuleFile={work}/rules.conf")
conf = re.sub(r"(?m)^AuditFilePath=.*$", f"AuditFilePath={work}/audit.log", conf)
conf = re.sub(r"(?m)^AuditBackend=.*$", "AuditBackend=FileAudit", conf)
conf = re.sub(r"(?m)^IPCAccessControlFiles=.*$", f"IPCAccessControlFiles={work}/ipc/", conf)
(work / "ipc").mkdir()
(work / "daemon.conf").write_text(conf)
for f in ("rules.conf", "daemon.conf"):
    os.chmod(work / f, 0o600)
daemon = subprocess.Popen(["usbguard-daemon", "-k", "-P", "-c", str(work / "daemon.conf")],
                          stdout=subprocess.DEVNULL, stderr=open(work / "daemon.log", "w"))
deadline = time.monotonic() + 30
want = int(sys.argv[4])
while time.monotonic() < deadline and daemon.poll() is None:
    audit = (work / "audit.log").read_text() if (work / "audit.log").exists() else ""
    if audit.count("type='Policy.Device.Update'") >= want:
        break
    time.sleep(0.1)
daemon.terminate()
daemon.wait(timeout=10)
"""


def _testbed_host(tmp_path: Path) -> Path:
    """host.umockdev with the root hubs' authorized_default, which usbguard-daemon reads from each controller
    (the recording lacks it; the kernel always has it)."""
    blocks = (UMOCKDEV / "host.umockdev").read_text().split("\n\n")
    for i, block in enumerate(blocks):
        lines = block.strip().splitlines()
        if lines and lines[0].startswith("P: ") and lines[0].rsplit("/", 1)[1].startswith("usb"):
            blocks[i] = block.replace("A: authorized=1", "A: authorized=1\nA: authorized_default=1", 1)
    out = tmp_path / "host.umockdev"
    out.write_text("\n\n".join(blocks))
    return out


def _usbguard_verdicts(tmp_path: Path, mode: str) -> dict[str, str]:
    work = tmp_path / mode
    work.mkdir()
    devices = [str(UMOCKDEV / f"{name}.umockdev") for name in MATRIX]
    argv = ["umockdev-run", "-d", str(_testbed_host(tmp_path))]
    for d in devices:
        argv += ["-d", d]
    argv += ["--", sys.executable, "-c", _UNDER_UMOCKDEV, str(work), mode, "/etc/usbguard/usbguard-daemon.conf",
             str(len(MATRIX) + 2)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    audit = (work / "audit.log").read_text()
    ids = {path: usb_id for usb_id, path in re.findall(
        r"device\.rule='\w+ id (\S+) [^']*' device\.system_name='(\S+)' type='Device\.Present'", audit)}
    verdicts = {}
    for path, target in re.findall(r"device\.system_name='(\S+)' target\.new='(\w+)'", audit):
        verdicts[ids[path]] = target
    return verdicts


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("umockdev-run") is None or shutil.which("usbguard-daemon")
                    is None, reason="needs root, umockdev and usbguard")
def test_usbguard_daemon_applies_the_policy_to_the_device_matrix(tmp_path: Path) -> None:
    """USBGuard's own daemon, on the device guard's recorded devices (umockdev gives it them as its /sys), with
    the policy made from that sysfs and USBGuard's settings as apply writes them: it allows the keyboard, the
    token, the scanner and the root hubs, rejects the stick and the MTP phone, and blocks the rest."""
    verdicts = _usbguard_verdicts(tmp_path, "at-install")
    expected = {usb_id: target for usb_id, target in MATRIX.values()}
    expected |= {"1d6b:0002": "allow", "1d6b:0003": "allow"}  # the root hubs (controllers kept)
    assert verdicts == expected, verdicts
    # a keyboard that was not there when the policy was made is blocked like any other device
    assert _usbguard_verdicts(tmp_path, "no-keyboard")["413c:2113"] == "block"


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root to become nobody")
def test_lockdown_as_an_unprivileged_user_says_run_as_root(sysfs: Path) -> None:
    import tempfile

    # pytest's tmp_path is under a 0700 directory: this test's files go where nobody can reach them
    with tempfile.TemporaryDirectory(prefix="scanstation-lockdown-") as tmp:
        base = Path(tmp)
        os.chmod(base, 0o755)
        root = target_root(base)
        os.chmod(root / apply.USBGUARD_DAEMON_CONF, 0o600)  # as Debian ships it
        shutil.copytree(sysfs, base / "sys")
        config = station_config(base)
        env = {**os.environ, "SCANSTATION_CONFIG": str(config)}
        for action in ("show", "apply"):
            proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
                                   "-m", "scanstation.cli", "lockdown", action, "--root", str(root), "--sysfs",
                                   str(base / "sys")], capture_output=True, text=True, env=env, timeout=120,
                                  check=False)
            assert proc.returncode == 22 and "run scanstation lockdown as root" in proc.stderr, proc.stderr
        # and with the usbguard file readable, apply still cannot write: the same message, naming the file
        os.chmod(root / apply.USBGUARD_DAEMON_CONF, 0o644)
        proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
                               "scanstation.cli", "lockdown", "apply", "--root", str(root), "--sysfs",
                               str(base / "sys")], capture_output=True, text=True, env=env, timeout=120, check=False)
        assert proc.returncode == 22 and "not writable by this user" in proc.stderr, proc.stderr

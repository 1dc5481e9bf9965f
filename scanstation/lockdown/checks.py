"""Checks of the lockdown's files as they are shipped and generated, with the tools that read them.

Used by tests/test_lockdown_files.py on installer/system/ and on what ``lockdown apply`` writes, and by the
package's test on the .deb's extracted root (:func:`check_root`).  Each check runs the real reader where
there is one: ``systemd-analyze verify`` and ``security``, USBGuard's ``usbguard-rule-parser``, ``nft``
(loading the ruleset in a network namespace of its own, so the machine's rules are never touched),
``sysctl --dry-run``, ``modprobe -C``, and polkit's own JavaScript engine (duktape) for the polkit rule.
Each returns a list of :class:`Problem` naming the file; an empty list means the check passed.  A tool
that is missing is a problem too, never a silent pass.

The USB policy is also judged by what it does: :func:`usb_verdict` runs a device through the rules in
USBGuard's order (first match wins), on the rules as USBGuard's parser printed them back.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

TOOL_TIMEOUT = 120.0
UNIT_DIR = "lib/systemd/system"
MAX_EXPOSURE = 2.0  # issue 17: systemd-analyze security must rate the service "OK" at 2.0 or better


@dataclasses.dataclass(frozen=True)
class Problem:
    file: str
    check: str
    message: str
    # "error" fails the check; "note" says what could not be checked on this machine, and why
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.file}: {self.check}: {self.message}" + (" (note)" if self.severity == "note" else "")


def errors(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def _run(argv: Sequence[str], *, input_text: str | None = None, env: dict[str, str] | None = None,
         cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, input=input_text, timeout=TOOL_TIMEOUT,
                          env=env, cwd=cwd, check=False)


def _tool(name: str, file: str, check: str) -> tuple[str | None, list[Problem]]:
    found = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)),
                                       None)
    if found is None:
        return None, [Problem(file, check, f"{name} is not installed, so this was not checked "
                                           "(installer/setup.sh --dev installs it)")]
    return found, []


# ------------------------------------------------------------------------------------------- systemd units

_EXEC = re.compile(r"^\s*Exec[A-Za-z]*\s*=\s*(.*)$")


def exec_paths(unit_text: str) -> list[str]:
    """The absolute program paths of a unit's Exec*= lines (prefixes such as "-", "+", "!" stripped)."""
    out = []
    for line in unit_text.splitlines():
        m = _EXEC.match(line)
        if m and m.group(1).strip():
            program = m.group(1).split()[0].lstrip("-@:+!|")
            if program.startswith("/") and program not in out:
                out.append(program)
    return out


def _unit_root(tree: Path, units: Sequence[Path], provided: Sequence[str], work: Path) -> list[Problem]:
    """A root for ``systemd-analyze --root``: the host's units (the targets ours name), ``tree``'s unit files
    and drop-ins and configuration, and each program an Exec line names.

    A program is copied from ``tree`` when the tree has it; otherwise it must be one that the package or a
    dependency provides (``provided``) or that exists on this machine (nft, ...): then an executable stub
    stands for it.  A program that is none of these is left out, so verify reports it.
    """
    problems: list[Problem] = []
    host_units = Path("/usr/lib/systemd/system")
    shutil.copytree(host_units, work / "usr/lib/systemd/system", symlinks=True)
    (work / "lib").symlink_to("usr/lib")  # Debian 12 is merged-/usr
    for sub in ("lib/systemd/system", "usr/lib/systemd/system", "etc/systemd/system"):
        src = tree / sub
        if src.is_dir():
            dest = work / sub
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
    for unit in units:
        for program in exec_paths(unit.read_text(encoding="utf-8")):
            target = work / program.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            inside = tree / program.lstrip("/")
            if inside.exists() or inside.is_symlink():
                if inside.is_file() and os.access(inside, os.X_OK):
                    shutil.copy2(inside, target)
                    continue
                if inside.is_symlink():  # e.g. /usr/bin/scanstation -> /opt/scanstation/venv/bin/scanstation
                    resolved = tree / os.readlink(inside).lstrip("/")
                    if resolved.is_file() and os.access(resolved, os.X_OK):
                        target.write_text("#!/bin/sh\n")
                        target.chmod(0o755)
                        continue
                problems.append(Problem(str(unit), "exec", f"{program} is in the tree but not an executable file"))
                continue
            if program in provided or os.access(program, os.X_OK):
                target.write_text("#!/bin/sh\n")
                target.chmod(0o755)
    return problems


def check_units_verify(tree: Path, unit_names: Sequence[str], *, provided: Sequence[str] = ()) -> list[Problem]:
    """``systemd-analyze verify`` of ``tree``'s units (with their drop-ins) in a root built around them."""
    analyze, missing = _tool("systemd-analyze", str(tree), "systemd-analyze verify")
    if analyze is None:
        return missing
    units = [tree / UNIT_DIR / n for n in unit_names]
    with tempfile.TemporaryDirectory(prefix="scanstation-verify-") as tmp:
        work = Path(tmp)
        problems = _unit_root(tree, units, provided, work)
        # verify looks units up by name in the root's unit path, so the drop-ins under etc/ are read too
        proc = _run([analyze, "verify", f"--root={work}", *[str(work / UNIT_DIR / n) for n in unit_names]])
        for line in (proc.stdout + proc.stderr).splitlines():
            line = line.strip()
            if line:
                name = next((n for n in unit_names if line.startswith(n) or n in line), unit_names[0])
                problems.append(Problem(str(tree / UNIT_DIR / name), "systemd-analyze verify", line))
        if proc.returncode != 0 and not problems:
            problems.append(Problem(str(tree), "systemd-analyze verify", f"exit status {proc.returncode}"))
    return problems


_EXPOSURE = re.compile(r"Overall exposure level for (\S+): (\d+(?:\.\d+)?) (\S+)")


@dataclasses.dataclass(frozen=True)
class SecurityRating:
    unit: str
    exposure: float
    verdict: str  # "OK", "MEDIUM", ...
    line: str  # the summary line as systemd-analyze printed it
    report: str  # the whole table


def security_rating(tree: Path, unit_name: str) -> SecurityRating:
    """``systemd-analyze security --offline=true`` of a unit in ``tree`` (its drop-ins included)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        raise FileNotFoundError("systemd-analyze is not installed")
    with tempfile.TemporaryDirectory(prefix="scanstation-security-") as tmp:
        work = Path(tmp)
        _unit_root(tree, [tree / UNIT_DIR / unit_name], (), work)
        proc = _run([analyze, "security", "--offline=true", f"--root={work}", "--no-pager",
                     str(work / UNIT_DIR / unit_name)], env={**os.environ, "SYSTEMD_COLORS": "0"})
    text = proc.stdout + proc.stderr
    m = _EXPOSURE.search(text)
    if m is None:
        raise ValueError(f"systemd-analyze security printed no exposure level for {unit_name}: {text[-500:]}")
    return SecurityRating(unit_name, float(m.group(2)), m.group(3), m.group(0).strip(), proc.stdout)


def check_unit_security(tree: Path, unit_name: str, *, maximum: float = MAX_EXPOSURE) -> list[Problem]:
    """The unit's exposure is at most ``maximum`` (checked on the parsed number and by ``--threshold``)."""
    file = str(tree / UNIT_DIR / unit_name)
    analyze, missing = _tool("systemd-analyze", file, "systemd-analyze security")
    if analyze is None:
        return missing
    try:
        rating = security_rating(tree, unit_name)
    except (ValueError, FileNotFoundError) as e:
        return [Problem(file, "systemd-analyze security", str(e))]
    problems = []
    if rating.exposure > maximum:
        problems.append(Problem(file, "systemd-analyze security",
                                f"exposure {rating.exposure} {rating.verdict} is above {maximum}: {rating.line}"))
    # The tool's own verdict too: --threshold (tenths) makes it exit non-zero above the limit.
    with tempfile.TemporaryDirectory(prefix="scanstation-security-") as tmp:
        work = Path(tmp)
        _unit_root(tree, [tree / UNIT_DIR / unit_name], (), work)
        proc = _run([analyze, "security", "--offline=true", f"--threshold={round(maximum * 10)}", f"--root={work}",
                     "--no-pager", str(work / UNIT_DIR / unit_name)])
    if proc.returncode != 0 and not problems:
        problems.append(Problem(file, "systemd-analyze security --threshold",
                                f"exit status {proc.returncode}: {proc.stderr.strip()[-300:]}"))
    return problems


# ------------------------------------------------------------------------------------------------ USBGuard

@dataclasses.dataclass(frozen=True)
class ParsedRules:
    rules: tuple[str, ...]  # as usbguard-rule-parser printed them back (its normal form)
    problems: tuple[Problem, ...]


def parse_usbguard_rules(path: Path) -> ParsedRules:
    """Each rule line of ``path`` through ``usbguard-rule-parser`` (USBGuard's own grammar)."""
    parser, missing = _tool("usbguard-rule-parser", str(path), "usbguard-rule-parser")
    if parser is None:
        return ParsedRules((), tuple(missing))
    rules: list[str] = []
    problems: list[Problem] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        proc = _run([parser, line])
        out = [x[len("OUTPUT: "):] for x in proc.stdout.splitlines() if x.startswith("OUTPUT: ")]
        if proc.returncode != 0 or len(out) != 1:
            detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
            problems.append(Problem(f"{path}:{number}", "usbguard-rule-parser",
                                    f"{line!r}: {detail[0] if detail else f'exit status {proc.returncode}'}"))
        else:
            rules.append(out[0])
    # The whole file as the daemon reads it, too (the same parser, its file mode).
    proc = _run([parser, "-f", str(path)])
    if proc.returncode != 0:
        problems.append(Problem(str(path), "usbguard-rule-parser -f", proc.stderr.strip()[-300:] or
                                f"exit status {proc.returncode}"))
    return ParsedRules(tuple(rules), tuple(problems))


@dataclasses.dataclass(frozen=True)
class SimDevice:
    """A USB device as the policy sees it: id, serial, name, port, interface types "cc:ss:pp"."""

    label: str
    usb_id: str
    interfaces: tuple[str, ...]
    serial: str = ""
    name: str = ""
    port: str = "1-9"


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\{|\}|[^\s{}]+')
_SET_OPS = ("all-of", "one-of", "none-of", "equals", "equals-ordered", "match-all")


def _unquote(token: str) -> str:
    body = token[1:-1]
    raw = bytearray()
    i = 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            if body[i + 1] == "x" and i + 3 < len(body):
                raw.append(int(body[i + 2:i + 4], 16))
                i += 4
                continue
            raw += body[i + 1].encode()
            i += 2
            continue
        raw += body[i].encode()
        i += 1
    return raw.decode("utf-8", errors="surrogateescape")


def _value_matches(pattern: str, value: str, attribute: str) -> bool:
    if attribute in ("id", "with-interface"):
        return all(p == "*" or p == v for p, v in zip(pattern.split(":"), value.split(":"), strict=True))
    return pattern == value


def _attribute_matches(attribute: str, op: str, values: list[str], device_values: list[str]) -> bool:
    def has(v: str) -> bool:
        return any(_value_matches(v, d, attribute) for d in device_values)

    def covered(d: str) -> bool:
        return any(_value_matches(v, d, attribute) for v in values)

    if op == "all-of":
        return all(has(v) for v in values)
    if op == "one-of":
        return any(has(v) for v in values)
    if op == "none-of":
        return not any(has(v) for v in values)
    if op == "equals":
        return all(has(v) for v in values) and all(covered(d) for d in device_values)
    if op == "equals-ordered":
        return len(values) == len(device_values) and all(
            _value_matches(v, d, attribute) for v, d in zip(values, device_values, strict=True))
    if op == "match-all":
        return all(covered(d) for d in device_values)
    raise ValueError(f"set operator {op!r} is not understood by this matcher")


def _rule_matches(rule: str, device: SimDevice) -> bool:
    tokens = _TOKEN.findall(rule)
    fields = {"id": [device.usb_id], "serial": [device.serial], "name": [device.name],
              "via-port": [device.port], "with-interface": list(device.interfaces)}
    i = 1  # tokens[0] is the target
    while i < len(tokens):
        attribute = tokens[i]
        if attribute not in fields:
            # hash, parent-hash, with-connect-type, label, conditions: this policy uses none of them, and a
            # matcher that guessed would judge a device wrongly
            raise ValueError(f"attribute {attribute!r} is not understood by this matcher: {rule}")
        i += 1
        op = "equals"  # USBGuard's default: its parser prints an "equals" set without the operator
        if tokens[i] in _SET_OPS:
            op = tokens[i]
            i += 1
        if tokens[i] == "{":
            end = tokens.index("}", i)
            values = tokens[i + 1:end]
            i = end + 1
        else:
            values = [tokens[i]]
            i += 1
        values = [_unquote(v) if v.startswith('"') else v for v in values]
        if not _attribute_matches(attribute, op, values, fields[attribute]):
            return False
    return True


def usb_verdict(rules: Sequence[str], device: SimDevice, implicit: str = "block") -> tuple[str, str | None]:
    """(target, the rule that decided) for ``device``: USBGuard applies the first rule that matches."""
    for rule in rules:
        if _rule_matches(rule, device):
            return rule.split()[0], rule
    return implicit, None


def _device_matrix(scanner_ids: Sequence[str]) -> list[tuple[SimDevice, bool]]:
    """Devices a station meets and whether the policy may let each in (descriptors as such devices report)."""
    scanner = scanner_ids[0] if scanner_ids else "04c5:132e"
    matrix = [
        (SimDevice("USB stick", "0781:5567", ("08:06:50",), serial="4C530001"), False),
        (SimDevice("USB disk (UAS)", "152d:0578", ("08:06:50", "08:06:62")), False),
        (SimDevice("keyboard with a card reader", "05e3:0751", ("03:01:01", "08:06:50")), False),
        (SimDevice("phone in MTP mode", "18d1:4ee1", ("06:01:01",), serial="HT7A1"), False),
        (SimDevice("phone in MTP mode, vendor class", "04e8:6860", ("ff:ff:00", "06:01:01")), False),
        (SimDevice("phone tethering (RNDIS)", "18d1:4ee3", ("e0:01:03", "0a:00:00")), False),
        (SimDevice("phone tethering (RNDIS, misc class)", "04e8:6863", ("ef:04:01", "0a:00:00")), False),
        (SimDevice("USB Ethernet adapter (CDC ECM)", "0bda:8153", ("02:06:00", "0a:00:00")), False),
        (SimDevice("USB Ethernet adapter (NCM)", "0b95:1790", ("02:0d:00", "0a:00:01")), False),
        (SimDevice("Bluetooth dongle", "0a12:0001", ("e0:01:01",)), False),
        (SimDevice("Wi-Fi dongle (vendor class)", "0bda:8179", ("ff:ff:ff",)), False),
        (SimDevice("printer", "03f0:0c17", ("07:01:02",)), False),
        (SimDevice("webcam", "046d:0825", ("0e:01:00", "0e:02:00", "01:01:00", "01:02:00")), False),
        (SimDevice("keyboard not present at install", "413c:2113", ("03:01:01", "03:00:00")), False),
        (SimDevice("smart-card token (CCID)", "096e:0807", ("0b:00:00",)), True),
        (SimDevice("token with a keyboard interface (types by itself)", "1050:0407", ("03:01:01", "0b:00:00")),
         False),
        (SimDevice("scanner (vendor class)", scanner, ("ff:ff:ff",)), True),
        (SimDevice("scanner spoof with a network interface", scanner, ("ff:ff:ff", "02:06:00", "0a:00:00")), False),
        (SimDevice("scanner spoof with storage", scanner, ("ff:ff:ff", "08:06:50")), False),
    ]
    return matrix


def check_usb_policy(path: Path, *, scanner_ids: Sequence[str] = (),
                     present: Sequence[SimDevice] = ()) -> list[Problem]:
    """USBGuard parses every rule, and the policy lets in what a station needs and nothing that can carry a
    page out: the device matrix above, plus ``present`` (keyboards and mice in sysfs at install: allowed)."""
    parsed = parse_usbguard_rules(path)
    problems = list(parsed.problems)
    if problems:
        return problems
    cases = _device_matrix(scanner_ids) + [(d, True) for d in present]
    for device, may_enter in cases:
        try:
            target, rule = usb_verdict(parsed.rules, device)
        except ValueError as e:
            return [Problem(str(path), "USB policy", str(e))]
        if (target == "allow") != may_enter:
            problems.append(Problem(str(path), "USB policy",
                                    f"{device.label} ({device.usb_id} {' '.join(device.interfaces)}): {target} "
                                    f"by {rule or 'the implicit policy'}; expected "
                                    f"{'allow' if may_enter else 'block or reject'}"))
    return problems


# ---------------------------------------------------------------------------------------------- nftables

def _netns_prefix() -> list[str]:
    """Run in a network namespace of its own: root uses ``unshare -n``; others also map themselves to root in
    a user namespace (``-r``), which gives CAP_NET_ADMIN over that namespace only."""
    unshare = shutil.which("unshare") or "unshare"
    return [unshare, "-n"] if os.geteuid() == 0 else [unshare, "-r", "-n"]


def nft_load(paths: Sequence[Path]) -> subprocess.CompletedProcess[str]:
    """Load rulesets one after the other into a fresh network namespace, then list it as JSON."""
    nft = shutil.which("nft") or "/usr/sbin/nft"
    script = " && ".join(f'"$NFT" -f "${i + 1}"' for i in range(len(paths))) + ' && "$NFT" -j list ruleset'
    return _run([*_netns_prefix(), "/bin/sh", "-c", script, "sh", *map(str, paths)], env={**os.environ, "NFT": nft})


def check_nft(path: Path, *, closed: Path | None = None) -> list[Problem]:
    """The ruleset parses (``nft -c``), loads, reloads over itself (as a restart of the unit does), and leaves
    table inet scanstation with input, output and forward chains whose policy is drop.  With ``closed``, it
    also loads over the closed ruleset, as scanstation-firewall.service does."""
    nft, missing = _tool("nft", str(path), "nft")
    if nft is None:
        return missing
    if shutil.which("unshare") is None:
        return [Problem(str(path), "nft", "unshare (util-linux) is not installed: no namespace to load into")]
    proc = _run([*_netns_prefix(), nft, "-c", "-f", str(path)])
    if proc.returncode != 0:
        return [Problem(str(path), "nft -c -f", (proc.stderr.strip() or proc.stdout.strip())[-500:])]
    sequence = [closed, path, path] if closed is not None else [path, path]
    proc = nft_load([p for p in sequence if p is not None])
    if proc.returncode != 0:
        return [Problem(str(path), "nft -f (load, reload)", (proc.stderr.strip() or proc.stdout.strip())[-500:])]
    try:
        listing = json.loads(proc.stdout)["nftables"]
    except (ValueError, KeyError) as e:
        return [Problem(str(path), "nft -j list ruleset", f"unreadable listing: {e}")]
    problems = []
    chains = {c["chain"]["name"]: c["chain"] for c in listing if "chain" in c}
    tables = [t["table"] for t in listing if "table" in t]
    if [(t["family"], t["name"]) for t in tables] != [("inet", "scanstation")]:
        problems.append(Problem(str(path), "nft ruleset", f"expected the one table inet scanstation, found {tables}"))
    for name, hook in (("input", "input"), ("output", "output"), ("forward", "forward")):
        c = chains.get(name)
        if c is None or c.get("hook") != hook or c.get("policy") != "drop":
            problems.append(Problem(str(path), "nft ruleset", f"chain {name}: expected hook {hook} policy drop, "
                                                              f"found {c}"))
    return problems


# ------------------------------------------------------------------------------------------ sysctl, modprobe

# Keys that exist only when the kernel was built with an option; Debian 12's kernel has each one.  On a
# kernel without the option (a container's, a VM's minimal kernel) the key cannot be checked here: a note.
OPTIONAL_SYSCTL = {
    "kernel.yama.ptrace_scope": "CONFIG_SECURITY_YAMA",
    "kernel.sysrq": "CONFIG_MAGIC_SYSRQ",
    "kernel.kexec_load_disabled": "CONFIG_KEXEC_CORE",
}
# What the issue requires of the file (a file that lost one of these fails the check).
REQUIRED_SYSCTL = {
    "kernel.core_pattern": "|/bin/false",
    "fs.suid_dumpable": "0",
    "kernel.yama.ptrace_scope": "2",
    "kernel.sysrq": "0",
    "net.ipv4.ip_forward": "0",
    "net.ipv6.conf.all.forwarding": "0",
}


def parse_sysctl_file(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip().lstrip("-")] = value.strip()
    return out


def check_sysctl(path: Path, proc_sys: Path = Path("/proc/sys")) -> list[Problem]:
    """procps' ``sysctl --dry-run -p`` parses the file and finds each key; values are of the key's type."""
    sysctl, missing = _tool("sysctl", str(path), "sysctl")
    if sysctl is None:
        return missing
    problems: list[Problem] = []
    proc = _run([sysctl, "--dry-run", "-p", str(path)])
    unknown = set(re.findall(r"cannot stat /proc/sys/(\S+?):", proc.stderr))
    settings = parse_sysctl_file(path)
    for key, value in settings.items():
        node = proc_sys / key.replace(".", "/")
        if key.replace(".", "/") in unknown or not node.exists():
            if key in OPTIONAL_SYSCTL:
                problems.append(Problem(str(path), "sysctl", f"{key}: this kernel lacks {OPTIONAL_SYSCTL[key]} (Debian "
                                                             "12's kernel has it), not checked here", "note"))
            else:
                problems.append(Problem(str(path), "sysctl", f"{key}: no such kernel setting"))
            continue
        try:
            current = node.read_text().split()
        except OSError:
            continue
        if current and all(re.fullmatch(r"-?\d+", c) for c in current) and not all(
                re.fullmatch(r"-?\d+", v) for v in value.split()):
            problems.append(Problem(str(path), "sysctl", f"{key} = {value!r}: the setting takes numbers"))
    other = [ln for ln in proc.stderr.splitlines() if ln.strip() and "cannot stat" not in ln]
    problems += [Problem(str(path), "sysctl --dry-run", ln.strip()) for ln in other]
    for key, value in REQUIRED_SYSCTL.items():
        if settings.get(key) != value:
            problems.append(Problem(str(path), "sysctl", f"{key} must be {value!r}, is {settings.get(key)!r}"))
    return problems


# Modules whose loading must run /bin/false instead (issue 17: usb-storage and uas at least).
REFUSED_MODULES = ("usb-storage", "uas", "firewire-sbp2", "thunderbolt", "bluetooth", "btusb", "sr_mod")


def check_modprobe(path: Path, refused: Sequence[str] = REFUSED_MODULES) -> list[Problem]:
    """kmod reads the file without complaint (``modprobe -C``), and loading each refused module would run
    ``/bin/false`` (``modprobe -n -v``, which prints what it would do)."""
    modprobe, missing = _tool("modprobe", str(path), "modprobe")
    if modprobe is None:
        return missing
    problems = []
    proc = _run([modprobe, "-C", str(path), "--showconfig"])
    for line in proc.stderr.splitlines():
        if line.strip():
            problems.append(Problem(str(path), "modprobe -C --showconfig", line.strip()))
    shown = proc.stdout.splitlines()
    for module in refused:
        name = module.replace("-", "_")
        dry = _run([modprobe, "-C", str(path), "-n", "-v", module])
        if "install /bin/false" not in dry.stdout:
            problems.append(Problem(str(path), "modprobe -n -v", f"{module}: would not be refused "
                                                                 f"({(dry.stdout + dry.stderr).strip()[-200:]})"))
        if f"blacklist {name}" not in shown:
            problems.append(Problem(str(path), "modprobe --showconfig", f"{module} is not blacklisted"))
    return problems


# ------------------------------------------------------------------------------------------------ polkit

_DUK_PEVAL = (1 << 3) | (1 << 7) | (1 << 9) | (1 << 10) | (1 << 11)  # duk_peval_string's flags (duktape.h)

# polkitd's own definitions (src/polkitbackend/init.js): rules run in order, the first truthy result wins.
_POLKIT_PRELUDE = """
var polkit = {};
polkit.Result = {NO: "no", YES: "yes", AUTH_SELF: "auth_self", AUTH_SELF_KEEP: "auth_self_keep",
                 AUTH_ADMIN: "auth_admin", AUTH_ADMIN_KEEP: "auth_admin_keep", NOT_HANDLED: null};
polkit._ruleFuncs = [];
polkit._adminRuleFuncs = [];
polkit.addRule = function (f) { this._ruleFuncs.push(f); };
polkit.addAdminRule = function (f) { this._adminRuleFuncs.push(f); };
polkit.log = function (m) {};
polkit.spawn = function (argv) { throw new Error("spawn is not available in this check"); };
polkit._runRules = function (action, subject) {
    for (var n = 0; n < this._ruleFuncs.length; n++) {
        var r = this._ruleFuncs[n](action, subject);
        if (r) { return r; }
    }
    return null;
};
function Subject(user, groups) {
    this.user = user; this.groups = groups; this.local = true; this.active = true; this.pid = 4242;
    this.isInGroup = function (g) { return this.groups.indexOf(g) >= 0; };
    this.isInNetGroup = function (g) { return false; };
}
function Action(id) { this.id = id; this.lookup = function (k) { return undefined; }; }
"""

# (action, user, groups, expected result): udisks2 for everyone, sleep for everyone, and what a member of
# the groups Debian's own rules favour (sudo, plugdev, netdev) may not do at the kiosk.
POLKIT_CASES: tuple[tuple[str, str, tuple[str, ...], str | None], ...] = (
    ("org.freedesktop.udisks2.filesystem-mount", "kiosk", ("scanstation-kiosk",), "no"),
    ("org.freedesktop.udisks2.filesystem-mount-system", "admin", ("sudo", "plugdev"), "no"),
    ("org.freedesktop.udisks2.encrypted-unlock", "kiosk", ("plugdev",), "no"),
    ("org.freedesktop.udisks2.modify-device", "root", ("root",), "no"),
    ("org.freedesktop.login1.suspend", "kiosk", ("scanstation-kiosk",), "no"),
    ("org.freedesktop.login1.hibernate", "admin", ("sudo",), "no"),
    ("org.freedesktop.NetworkManager.settings.modify.system", "kiosk", ("netdev",), "no"),
    ("org.freedesktop.packagekit.upgrade-system", "admin", ("sudo",), "no"),
    ("org.usbguard.Policy1.appendRule", "admin", ("plugdev", "sudo"), "no"),
    ("org.usbguard1.setParameter", "kiosk", ("plugdev",), "no"),
)


def polkit_results(rule_files: Sequence[Path],
                   cases: Sequence[tuple[str, str, tuple[str, ...]]]) -> list[str | None]:
    """Evaluate polkit rules files, in the order given, in duktape (the engine polkitd 122 embeds)."""
    lib = ctypes.CDLL("libduktape.so.207")
    lib.duk_create_heap.restype = ctypes.c_void_p
    lib.duk_create_heap.argtypes = [ctypes.c_void_p] * 5
    lib.duk_eval_raw.restype = ctypes.c_int
    lib.duk_eval_raw.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint]
    lib.duk_safe_to_lstring.restype = ctypes.c_char_p
    lib.duk_safe_to_lstring.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    lib.duk_pop.argtypes = [ctypes.c_void_p]
    lib.duk_destroy_heap.argtypes = [ctypes.c_void_p]
    ctx = lib.duk_create_heap(None, None, None, None, None)
    if not ctx:
        raise RuntimeError("duktape: no heap")

    def evaluate(source: str, what: str) -> str:
        rc = lib.duk_eval_raw(ctx, source.encode("utf-8"), 0, _DUK_PEVAL)
        result = (lib.duk_safe_to_lstring(ctx, -1, None) or b"").decode("utf-8", errors="replace")
        lib.duk_pop(ctx)
        if rc != 0:
            raise ValueError(f"{what}: {result}")
        return result

    try:
        evaluate(_POLKIT_PRELUDE, "polkit prelude")
        for f in rule_files:
            evaluate(f.read_text(encoding="utf-8"), str(f))
        calls = ",".join(f"polkit._runRules(new Action({json.dumps(a)}), new Subject({json.dumps(u)}, "
                         f"{json.dumps(list(g))}))" for a, u, g in cases)
        return list(json.loads(evaluate(f"JSON.stringify([{calls}])", "rules")))
    finally:
        lib.duk_destroy_heap(ctx)


def polkit_order(ours: Path, dirs: Sequence[Path] = (Path("/etc/polkit-1/rules.d"),
                                                      Path("/usr/share/polkit-1/rules.d"))) -> list[Path]:
    """``ours`` among the machine's rules files in polkitd's order: by file name across both directories,
    /etc first on a tie (and replacing a file of the same name)."""
    by_name: dict[str, Path] = {}
    for d in reversed(dirs):
        if d.is_dir():
            for f in d.glob("*.rules"):
                by_name[f.name] = f
    by_name[ours.name] = ours
    return [by_name[n] for n in sorted(by_name)]


def check_polkit(path: Path, *, with_installed: bool = True) -> list[Problem]:
    """duktape runs the rule (with the machine's other rules files, in polkitd's order) and it answers NO to
    each case of :data:`POLKIT_CASES`."""
    try:
        files = polkit_order(path) if with_installed else [path]
        results = polkit_results(files, [(a, u, g) for a, u, g, _ in POLKIT_CASES])
    except OSError as e:
        return [Problem(str(path), "polkit (duktape)", f"libduktape (polkitd's engine) not loadable: {e}")]
    except ValueError as e:
        return [Problem(str(path), "polkit (duktape)", str(e))]
    problems = []
    for (action, user, groups, expected), got in zip(POLKIT_CASES, results, strict=True):
        if got != expected:
            problems.append(Problem(str(path), "polkit", f"{action} for {user} ({', '.join(groups)}): {got!r}, "
                                                         f"expected {expected!r}"))
    return problems


# ------------------------------------------------------------------------------------------- the whole root

SERVICE_UNITS = ("scanstation.service", "scanstation-firewall.service")


def check_root(root: Path, *, provided: Sequence[str] = ("/usr/bin/scanstation",),
               generated: bool = False, scanner_ids: Sequence[str] = ()) -> list[Problem]:
    """Every check on a root holding the lockdown's files (installer/system/, or a package's extracted root).

    With ``generated``, the files ``scanstation lockdown apply`` writes must be there too and pass.
    """
    problems: list[Problem] = []
    units = [u for u in SERVICE_UNITS if (root / UNIT_DIR / u).exists()]
    problems += [Problem(str(root / UNIT_DIR / u), "present", "missing") for u in SERVICE_UNITS if u not in units]
    if units:
        problems += check_units_verify(root, units, provided=provided)
    if "scanstation.service" in units:
        problems += check_unit_security(root, "scanstation.service")
    problems += check_sysctl(root / "etc/sysctl.d/90-scanstation.conf")
    problems += check_modprobe(root / "etc/modprobe.d/scanstation.conf")
    problems += check_polkit(root / "etc/polkit-1/rules.d/00-scanstation.rules")
    closed = root / "usr/share/scanstation/firewall-closed.nft"
    problems += check_nft(closed)
    problems += check_masks(root)
    if generated:
        problems += check_nft(root / "etc/scanstation/firewall.nft", closed=closed)
        problems += check_usb_policy(root / "etc/usbguard/rules.d/50-scanstation.conf", scanner_ids=scanner_ids)
    return problems


# Units that must be masked (a symlink to /dev/null under etc/systemd/system), and why (docs/lockdown.md).
MASKED_UNITS = {
    "sleep.target": "no suspend or hibernation", "suspend.target": "no suspend",
    "hibernate.target": "no hibernation image", "hybrid-sleep.target": "no hibernation image",
    "suspend-then-hibernate.target": "no hibernation image", "swap.target": "no swap",
    "ctrl-alt-del.target": "the kiosk's keyboard does not reboot the station",
    "debug-shell.service": "no root shell on tty9",
    "cups.service": "no printing", "cups.socket": "no printing", "cups.path": "no printing",
    "cups-browsed.service": "no printers from the network",
    "bluetooth.service": "no Bluetooth", "bluetooth.target": "no Bluetooth",
}


def check_masks(root: Path) -> list[Problem]:
    problems = []
    for unit, why in MASKED_UNITS.items():
        link = root / "etc/systemd/system" / unit
        if not link.is_symlink() or os.readlink(link) != "/dev/null":
            problems.append(Problem(str(link), "mask", f"must be a symlink to /dev/null ({why})"))
    return problems

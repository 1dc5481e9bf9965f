"""The .deb installed into a fresh Debian 12 root, upgraded, removed and purged (slow: SCANSTATION_SLOW=1, as root).

    SCANSTATION_SLOW=1 .venv/bin/python -m pytest -p no:cacheprovider -q -s tests/test_deb_install.py

The root is debootstrap's bookworm (minbase) from the Debian archive this machine uses (its
/etc/apt/sources.list.d/debian.sources, also the root's sources), made once and kept as a tarball under
/var/cache/scanstation-test/; apt's downloads are kept there too.  In the root: /proc, a read-only /sys and
/dev/shm as a tmpfs (as on a booted system), policy-rc.d 101 (nothing starts, as in a chroot).  Then what an
admin does (README: Production install): `apt-get install ./scanstation_…deb`, `scanstation init` as the
service's user, an upgrade to a second build, `apt-get remove`, `apt-get purge`.  First run 10-20 minutes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pyrage
import pytest

from .stationkit import PASSWORD
from .test_deb import build_deb

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("SCANSTATION_SLOW") != "1", reason="slow (10-20 min): SCANSTATION_SLOW=1"),
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("debootstrap") is None,
                       reason="needs root and debootstrap"),
]

CACHE = Path("/var/cache/scanstation-test")
BASE = CACHE / "bookworm-minbase.tar"
ARCHIVES = CACHE / "apt-archives"
SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
DATA = "/var/lib/scanstation"
CONFIG = "/etc/scanstation/station.toml"
# A command as the kiosk's account: runuser (setuid, groups from the account).  Not setpriv: it execs with
# root's capabilities still in effect, so a 0750 root program would run.
KIOSK = ("runuser", "-u", "kiosk", "--")
# The test's roots and mounts live here, not in pytest's temporary directories: another pytest run (of another
# session on this machine) may delete old ones, and must never walk into a mounted /proc or the apt cache.
WORK = Path("/var/tmp/scanstation-deb-install")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _mirror() -> str:
    """The first archive URI of this machine's Debian sources (not the security one)."""
    for stanza in SOURCES.read_text().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line.startswith("#"))
        if "bookworm" in fields.get("Suites", "").split():
            return fields["URIs"].split()[0]
    raise AssertionError(f"no bookworm archive in {SOURCES}")


def base_tarball() -> Path:
    """debootstrap's bookworm minbase, made once (a few minutes) and kept as a tarball."""
    if BASE.exists():
        return BASE
    CACHE.mkdir(parents=True, exist_ok=True)
    work = CACHE / "debootstrap.tmp"
    shutil.rmtree(work, ignore_errors=True)
    log(f"debootstrap bookworm from {_mirror()} (once; kept in {BASE})")
    subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(work), _mirror()], check=True,
                   timeout=3600, stdout=subprocess.DEVNULL)
    partial = BASE.with_suffix(".partial")
    subprocess.run(["tar", "--numeric-owner", "-C", str(work), "-cf", str(partial), "."], check=True, timeout=1200)
    partial.rename(BASE)
    shutil.rmtree(work)
    return BASE


class Root:
    """A Debian root under ``path`` with what a booted system has mounted; commands run in it by chroot."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.mounts: list[Path] = []

    def mount(self, target: str, *args: str) -> None:
        where = self.path / target.lstrip("/")
        where.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", *args, str(where)], check=True)
        self.mounts.append(where)

    def unmount_all(self) -> None:
        for where in reversed(self.mounts):
            subprocess.run(["umount", "-l", str(where)], check=False)
        self.mounts.clear()

    def run(self, *argv: str, check: bool = True, timeout: float = 1800,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        base = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive",
                "HOME": "/root"}
        proc = subprocess.run(["chroot", str(self.path), *argv], capture_output=True, text=True, timeout=timeout,
                              env={**base, **(env or {})})
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout[-4000:]}\n"
                                 f"{proc.stderr[-4000:]}")
        return proc

    def sh(self, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("sh", "-c", script, check=check)

    def stat(self, path: str) -> str:
        return self.run("stat", "-c", "%U:%G %a", path).stdout.strip()

    def apt(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = self.run("apt-get", "-y", "-o", "Dpkg::Options::=--force-confdef", "-o",
                        "Dpkg::Options::=--force-confold", *args)
        log(f"apt-get {' '.join(args)}: ok")
        return proc


def _mounted_under(path: Path) -> list[str]:
    return [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
            if line.split()[1].startswith(f"{path}/")]


@contextlib.contextmanager
def fresh_root() -> Iterator[Root]:
    root = Root(WORK / f"root-{os.getpid()}")
    root.path.mkdir(parents=True)
    # (tar rather than tarfile: device nodes, owners and a few hundred MB, fast)
    subprocess.run(["tar", "--numeric-owner", "-xpf", str(base_tarball()), "-C", str(root.path)], check=True,
                   timeout=1200)
    try:
        root.mount("/proc", "-t", "proc", "proc")
        root.mount("/sys", "-t", "sysfs", "-o", "ro", "sysfs")
        root.mount("/dev/shm", "-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "tmpfs")
        root.mount("/dev/pts", "-t", "devpts", "-o", "newinstance,ptmxmode=0666", "devpts")
        ARCHIVES.mkdir(parents=True, exist_ok=True)
        root.mount("/var/cache/apt/archives", "--bind", str(ARCHIVES))
        (root.path / "etc/apt/sources.list").unlink(missing_ok=True)
        shutil.copy(SOURCES, root.path / "etc/apt/sources.list.d/debian.sources")
        shutil.copy("/etc/resolv.conf", root.path / "etc/resolv.conf")
        policy = root.path / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\n# a chroot: no service starts\nexit 101\n")
        policy.chmod(0o755)
        # keep the downloaded packages for the next run (docker-style images delete them)
        (root.path / "etc/apt/apt.conf.d/99keep").write_text('Binary::apt::APT::Keep-Downloaded-Packages "true";\n')
        yield root
    finally:
        root.unmount_all()
        left = _mounted_under(root.path)
        if left:
            log(f"still mounted, {root.path} kept: {left}")
        else:
            shutil.rmtree(root.path)


def snapshot(root: Root, *paths: str) -> dict[str, str]:
    """Every file and directory under ``paths``: owner, mode and (files) sha256."""
    out = root.run("sh", "-c", "find " + " ".join(paths) + " -exec stat -c '%n %U:%G %a %F' {} + | sort").stdout
    result = {}
    for line in out.splitlines():
        name, rest = line.split(" ", 1)
        if "regular" in rest:
            rest += " " + hashlib.sha256((root.path / name.lstrip("/")).read_bytes()).hexdigest()
        result[name] = rest
    return result


def test_install_init_upgrade_remove_purge(tmp_path: Path) -> None:
    started = time.time()
    log("building the .deb and its upgrade")
    first = build_deb(tmp_path / "dist1")
    second = build_deb(tmp_path / "dist2", version=f"{first.version}+upgrade1")
    log(f"built {first.path.name} ({first.path.stat().st_size >> 20} MiB), {second.path.name}")

    with fresh_root() as root:
        root.apt("update", "-q")
        for deb in (first, second):
            shutil.copy(deb.path, root.path / "tmp")
        install = root.apt("install", f"/tmp/{first.path.name}")
        log(install.stdout.splitlines()[-1] if install.stdout else "")
        said = [ln for ln in (install.stdout + install.stderr).splitlines() if ln.startswith("scanstation:")]
        print("\n".join(said))
        # the lockdown part ran: its files written, or its failure said (on a machine without a USB bus, say)
        assert any("lockdown" in ln or "USBGuard" in ln for ln in said), install.stdout[-3000:]

        # --- accounts
        passwd = {line.split(":")[0]: line.split(":") for line in root.run("getent", "passwd").stdout.splitlines()}
        assert passwd["scanstation"][5:] == [DATA, "/usr/sbin/nologin"]
        assert passwd["kiosk"][6] == "/usr/sbin/nologin"
        assert int(passwd["scanstation"][2]) < 1000 and int(passwd["kiosk"][2]) < 1000
        assert root.run("id", "-Gn", "kiosk").stdout.split() == ["scanstation-kiosk"]
        assert root.run("id", "-gn", "scanstation").stdout.strip() == "scanstation"
        assert sorted(root.run("id", "-Gn", "scanstation").stdout.split()) == ["scanstation", "scanstation-kiosk"]

        # --- directories and permissions
        assert root.stat(DATA) == "scanstation:scanstation 700"
        assert root.stat("/etc/scanstation") == "root:scanstation-kiosk 750"
        assert root.stat(CONFIG) == "root:scanstation-kiosk 640"
        assert root.stat("/opt/scanstation/venv") == "root:root 755"
        assert root.stat("/usr/bin/scanstation") == "root:root 755"
        overrides = root.run("dpkg-statoverride", "--list").stdout
        for tool in ("/usr/bin/age", "/usr/bin/sqlite3", "/usr/bin/scanimage"):
            assert f"root root 750 {tool}" in overrides.splitlines(), overrides
        # scanimage comes with sane-utils, which libsane1 recommends: present, and root's only
        present = [t for t in ("/usr/bin/age", "/usr/bin/sqlite3", "/usr/bin/scanimage")
                   if (root.path / t.lstrip("/")).exists()]
        log(f"tools present: {present}")
        for tool in present:
            assert root.stat(tool) == "root:root 750"
            denied = root.run(*KIOSK, tool, "--version", check=False)
            assert denied.returncode != 0 and "Permission denied" in denied.stderr, (tool, denied.stderr)
        # the units are enabled without a running systemd (deb-systemd-helper's links), none was started
        wants = root.path / "etc/systemd/system/multi-user.target.wants"
        assert (wants / "scanstation.service").is_symlink(), sorted(p.name for p in wants.iterdir())
        assert os.readlink(wants / "scanstation.service") == "/lib/systemd/system/scanstation.service"
        # the bytecode postinst compiled
        assert root.sh("find /opt/scanstation/venv -name '*.pyc' | head -1").stdout.strip()

        # --- the station runs as its users
        version = root.run("runuser", "-u", "scanstation", "--", "scanstation", "--version").stdout.strip()
        assert version.startswith("scanstation "), version
        log(f"runuser -u scanstation -- scanstation --version: {version}")
        # the compact pages' JBIG2 coder is the wheel's compiled module, loaded by the target's Python 3.11
        coder = root.run("runuser", "-u", "scanstation", "--", "/opt/scanstation/venv/bin/python", "-c",
                         "from scanstation.pdf import jbig2; print(jbig2.AVAILABLE)")
        assert coder.stdout.strip() == "True", coder.stdout + coder.stderr
        # and the SANE worker's preload (drivers/_deferred_cancel.c) is there for the driver to use
        preload = root.run("runuser", "-u", "scanstation", "--", "/opt/scanstation/venv/bin/python", "-c",
                           "from drivers import sane_driver; print(sane_driver._DEFERRED_CANCEL)")
        assert preload.stdout.strip().startswith("/opt/scanstation/venv/"), preload.stdout + preload.stderr
        # the kiosk's account loads the whole UI stack (Qt, its wayland platform's libraries from Depends)
        ui = root.run(*KIOSK, "env",
                      "HOME=/tmp", "QT_QPA_PLATFORM=offscreen", "/opt/scanstation/venv/bin/python", "-c",
                      "from PySide6 import QtWidgets; import ui.app, cv2; "
                      "print(QtWidgets.QApplication([]).platformName())")
        assert ui.stdout.strip() == "offscreen", ui.stdout + ui.stderr
        ldd = root.sh("ldd /opt/scanstation/venv/lib/python3.11/site-packages/PySide6/Qt/plugins/platforms/"
                      "libqwayland.so /opt/scanstation/venv/lib/python3.11/site-packages/PySide6/Qt/lib/"
                      "libQt6WaylandClient.so.6").stdout
        assert "not found" not in ldd, ldd
        # the kiosk reads the configuration (its UI needs the socket's path), not the station's data; an account
        # of neither group reads neither
        assert "client_group" in root.run(*KIOSK, "cat", CONFIG).stdout
        assert root.run(*KIOSK, "ls", DATA, check=False).returncode != 0
        assert root.run("runuser", "-u", "nobody", "--", "cat", CONFIG, check=False).returncode != 0

        # --- first run, as README's Production install says
        portal = pyrage.x25519.Identity.generate()
        (root.path / "tmp/pw").write_text(PASSWORD + "\n")
        root.run("chown", "scanstation:scanstation", "/tmp/pw")
        os.chmod(root.path / "tmp/pw", 0o600)
        env = {"SCANSTATION_PASSWORD_FILE": "/tmp/pw", "SCANSTATION_NEW_PASSWORD_FILE": "/tmp/pw"}
        conf_before = (root.path / CONFIG.lstrip("/")).read_text()
        init = root.run("env", *(f"{k}={v}" for k, v in env.items()),
                        "scanstation", "init", "--config", CONFIG,
                        "--station-id", "unit-042-station-1", "--unit", "42nd Battalion PAC",
                        "--portal-recipient", str(portal.to_public()), "--admin", "admin", "--unit-head", "head")
        assert "RECOVERY CODE" in init.stdout and "given to scanstation" in init.stdout, init.stdout
        log("scanstation init (as root): " + " | ".join(init.stdout.splitlines()[:3]))
        check_init_values(conf_before, root.path / CONFIG.lstrip("/"))
        assert root.stat(CONFIG) == "root:scanstation-kiosk 640"
        # the station as the package's configuration names it: its people, read by the service's user
        people = root.run("runuser", "-u", "scanstation", "--", "env", f"SCANSTATION_CONFIG={CONFIG}",
                          *(f"{k}={v}" for k, v in env.items()), "scanstation", "users", "list", "--user", "admin")
        assert people.stdout.split() == ["admin", "admin", "head", "unit-head"], people.stdout
        station_files = root.sh(f"find {DATA} -type f | wc -l").stdout.strip()
        assert int(station_files) >= 3
        owners = root.sh(f"find {DATA} ! -user scanstation").stdout.split()
        assert not owners, owners
        before = snapshot(root, DATA, "/etc/scanstation")
        log(f"station made: {station_files} files in {DATA}")

        # --- upgrade: data and configuration unchanged
        upgrade = root.apt("install", f"/tmp/{second.path.name}")
        print("\n".join(ln for ln in (upgrade.stdout + upgrade.stderr).splitlines() if ln.startswith("scanstation:")))
        assert "Unpacking scanstation" in upgrade.stdout and f"over ({first.version})" in upgrade.stdout
        installed = root.run("dpkg-query", "-W", "-f", "${Version}", "scanstation").stdout
        assert installed == second.version
        assert snapshot(root, DATA, "/etc/scanstation") == before
        root.run("runuser", "-u", "scanstation", "--", "scanstation", "--version")
        again = root.run("runuser", "-u", "scanstation", "--", "env", f"SCANSTATION_CONFIG={CONFIG}",
                         *(f"{k}={v}" for k, v in env.items()), "scanstation", "users", "list", "--user", "admin")
        assert again.stdout == people.stdout
        before = snapshot(root, DATA, "/etc/scanstation")  # (a sign-in may write to the station's databases)
        log(f"upgraded to {installed}: {len(before)} paths of data and configuration unchanged")

        # --- remove: the program goes, data and configuration stay
        remove = root.apt("remove", "scanstation")
        print("\n".join(ln for ln in remove.stdout.splitlines() if ln.startswith("scanstation:")))
        assert not (root.path / "opt/scanstation").exists(), root.sh("find /opt/scanstation | head").stdout
        assert not (root.path / "usr/bin/scanstation").exists()
        assert snapshot(root, DATA, "/etc/scanstation") == before

        # --- purge: says what it leaves; configuration, overrides and the kiosk's account go; the data stays
        purge = root.apt("purge", "scanstation")
        said = [ln for ln in (purge.stdout + purge.stderr).splitlines() if ln.startswith("scanstation:")]
        print("\n".join(said))
        files_now = sum(1 for k, v in before.items() if k.startswith(DATA) and "regular" in v)
        assert any(f"left {DATA} ({files_now} files)" in ln for ln in said), purge.stdout
        assert not (root.path / "etc/scanstation").exists()
        assert snapshot(root, DATA) == {k: v for k, v in before.items() if k.startswith(DATA)}
        overrides = root.run("dpkg-statoverride", "--list").stdout
        assert "scanstation" not in overrides and "/usr/bin/scanimage" not in overrides, overrides
        for tool in present:
            assert root.stat(tool) == "root:root 755"
        assert root.run("getent", "passwd", "kiosk", check=False).returncode == 2
        assert root.run("getent", "group", "scanstation-kiosk", check=False).returncode == 2
        assert root.run("getent", "passwd", "scanstation").returncode == 0  # owns the data left behind
        assert not (wants / "scanstation.service").exists() and not (wants / "scanstation.service").is_symlink()
        status = root.run("dpkg-query", "-W", "-f", "${db:Status-Abbrev}", "scanstation", check=False)
        assert status.returncode != 0 or status.stdout.strip() in ("", "un", "pn"), status.stdout
    log(f"done in {time.time() - started:.0f} s")


def check_init_values(before: str, config: Path) -> None:
    """`scanstation init` set the station's values in the package's configuration and kept the rest: its
    production settings and every comment."""
    text = config.read_text()
    values = tomllib.loads(text)
    assert values["station"]["id"] == "unit-042-station-1" and values["station"]["unit"] == "42nd Battalion PAC"
    assert values["keys"]["portal_recipient"].startswith("age1")
    kept = tomllib.loads(before)
    assert values["service"] == kept["service"]
    assert values["station"]["data_dir"] == kept["station"]["data_dir"] == DATA
    assert values["station"]["mode"] == "production"
    assert all(line in text.splitlines() for line in before.splitlines() if line.startswith("#"))


"""The station's Debian package as installer/build-deb.sh writes it: contents, control fields, maintainer scripts,
and the packaged venv run from an extracted copy at its real path.

The package is built once for the module, into a temporary directory (about a minute on 2 cores).  Installing it
into a fresh Debian root is tests/test_deb_install.py (slow, by hand).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib
import io
import os
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from .stationkit import REPO

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None or not Path("/usr/bin/python3.11").exists(),
                                reason="needs dpkg-deb and Debian's /usr/bin/python3.11 (Debian 12)")

VENV = "opt/scanstation/venv"
SITE = f"{VENV}/lib/python3.11/site-packages"
# Debian packages the station cannot run without (installer/setup.sh's PKGS at run time, and issue 17's locks)
REQUIRED_DEPENDS = {"python3.11", "tesseract-ocr", "libtesseract5", "tesseract-ocr-eng", "tesseract-ocr-hin",
                    "tesseract-ocr-osd", "tesseract-ocr-script-deva", "libsane1", "poppler-utils", "fonts-noto-core",
                    "fonts-lohit-deva", "libgl1", "libegl1", "libxkbcommon0", "libfontconfig1", "libdbus-1-3",
                    "libglib2.0-0", "libwayland-client0", "libwayland-cursor0", "libwayland-egl1", "pcscd", "opensc",
                    "cage", "usbguard", "nftables", "polkitd", "adduser", "init-system-helpers", "ca-certificates"}


@dataclass
class Deb:
    path: Path
    version: str
    build_output: str


def build_deb(out: Path, version: str | None = None) -> Deb:
    """``bash installer/build-deb.sh --out OUT [--version V]``: the .deb it wrote."""
    args = ["bash", str(REPO / "installer" / "build-deb.sh"), "--out", str(out)]
    if version:
        args += ["--version", version]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    built = Path(proc.stdout.strip().splitlines()[-1])
    expected = version or tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert built == out / f"scanstation_{expected}_amd64.deb" and built.is_file(), proc.stdout
    return Deb(built, expected, proc.stderr)


@dataclass
class Entry:
    mode: str  # as ls shows it: drwxr-x---
    owner: str  # user/group
    path: str  # without the leading ./
    target: str  # a symlink's target, else ""


def listing(deb: Path) -> dict[str, Entry]:
    out = subprocess.run(["dpkg-deb", "-c", str(deb)], check=True, capture_output=True, text=True).stdout
    entries: dict[str, Entry] = {}
    for line in out.splitlines():
        mode, owner, _size, _date, _time, name = line.split(None, 5)
        name, _, target = name.partition(" -> ")
        path = name.removeprefix("./").rstrip("/")
        entries[path] = Entry(mode, owner, path, target)
    return entries


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Deb:
    return build_deb(tmp_path_factory.mktemp("deb"))


@pytest.fixture(scope="module")
def contents(deb: Deb) -> dict[str, Entry]:
    return listing(deb.path)


@pytest.fixture(scope="module")
def extracted(deb: Deb, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("root")
    subprocess.run(["dpkg-deb", "-x", str(deb.path), str(root)], check=True, timeout=300)
    subprocess.run(["dpkg-deb", "-e", str(deb.path), str(root / "DEBIAN")], check=True, timeout=60)
    return root


def _field(control: str, name: str) -> str:
    m = re.search(rf"^{name}: (.*(?:\n .*)*)", control, re.M)
    assert m, f"no {name} in control"
    return " ".join(m.group(1).split())


def _package_names(field: str) -> set[str]:
    return {alt.split("(")[0].strip() for dep in field.split(",") for alt in dep.split("|")}


def test_control_fields(deb: Deb) -> None:
    control = subprocess.run(["dpkg-deb", "-f", str(deb.path)], check=True, capture_output=True, text=True).stdout
    assert _field(control, "Package") == "scanstation"
    assert _field(control, "Version") == deb.version
    assert _field(control, "Architecture") == "amd64"
    depends = _field(control, "Depends")
    missing = REQUIRED_DEPENDS - _package_names(depends)
    assert not missing, f"Depends lacks {sorted(missing)}: {depends}"
    # the venv links to Debian's 3.11: another minor version could not load its extension modules
    assert "python3.11 (>= 3.11.2)" in depends and "python3.11 (<< 3.12)" in depends
    # a station prints nothing and pairs with nothing (README: Production install)
    assert {"cups-daemon", "bluez"} <= _package_names(_field(control, "Conflicts"))
    # tools that read our formats are not pulled in (postinst locks them away when something else brings them)
    assert not {"age", "sqlite3", "sane-utils"} & _package_names(depends)
    size = int(_field(control, "Installed-Size"))
    assert 100_000 < size < 2_000_000, size  # KiB: the venv with Qt and OpenCV, not an empty or doubled tree


def test_the_files_and_their_modes(contents: dict[str, Entry]) -> None:
    assert {e.owner for e in contents.values()} == {"root/root"}
    # the command: the venv's, with this station's configuration unless the caller names another
    assert contents["usr/bin/scanstation"].mode == "-rwxr-xr-x"
    assert contents[f"{VENV}/bin/python3.11"].target == "/usr/bin/python3.11"
    assert contents[f"{VENV}/bin/scanstation"].mode == "-rwxr-xr-x"
    # the configuration is not world-readable even for the moment before postinst hands it to group scanstation
    assert contents["etc/scanstation"].mode == "drwxr-x---"
    assert contents["etc/scanstation/station.toml"].mode == "-rw-r-----"
    # the data directory is not the package's: dpkg would remove or reset it; postinst makes it
    assert not [p for p in contents if p.startswith("var/")]
    assert f"{SITE}/scanstation/__init__.py" in contents and f"{SITE}/batchformat/__init__.py" in contents
    assert f"{SITE}/ui/app.py" in contents and f"{SITE}/drivers/__init__.py" in contents
    writable = [p for p, e in contents.items() if e.mode[0] in "-d" and (e.mode[5] == "w" or e.mode[8] == "w")]
    assert not writable, writable[:10]
    for path, e in contents.items():
        if e.mode[0] == "-" and "x" in e.mode:
            assert e.mode == "-rwxr-xr-x", (path, e.mode)
        elif e.mode[0] == "-" and not path.startswith("etc/scanstation/"):
            assert e.mode == "-rw-r--r--", (path, e.mode)
    # what installer/system/ holds is installed at its path (files other parts of issue 17 add there)
    system = REPO / "installer" / "system"
    shipped = [p for p in system.rglob("*") if p.is_file() or p.is_symlink()] if system.is_dir() else []
    for file in shipped:
        entry = contents.get(str(file.relative_to(system)))
        assert entry is not None, f"{file} is not in the package"
        if file.is_symlink():
            assert entry.mode[0] == "l" and entry.target == os.readlink(file), (file, entry)


def test_nothing_of_the_developer_checkout(contents: dict[str, Entry]) -> None:
    top = {p.split("/")[6] for p in contents if p.startswith(f"{SITE}/")}
    assert {"scanstation", "batchformat", "drivers", "ui"} <= top
    ours = top & {"tests", "receiver", "scanstation_tools", "bench"}
    assert not ours, sorted(ours)
    dists = {p.split("/")[6] for p in contents if p.startswith(f"{SITE}/") and p.endswith(".dist-info")}
    assert not [d for d in dists if d.lower().startswith(("scanstation_receiver", "scanstation_tools", "pytest",
                                                            "mypy", "ruff", "pip-", "setuptools"))], sorted(dists)
    assert not [p for p in contents if "__pycache__" in p or p.endswith((".pyc", ".pyo"))]
    # the station's one command; no pip, no developer launchers (designer, f2py, ...), no activation scripts
    assert sorted(p.rsplit("/", 1)[1] for p in contents if p.startswith(f"{VENV}/bin/")) == \
        ["python", "python3", "python3.11", "scanstation"]
    # Qt parts that are a way out of the kiosk: the VNC platform (the screen over the network), the QML
    # debugger (a listening port), printing
    qt = f"{SITE}/PySide6/Qt/plugins"
    assert f"{qt}/platforms/libqwayland.so" in contents and f"{qt}/platforms/libqoffscreen.so" in contents
    assert not [p for p in contents if p.startswith((f"{qt}/platforms/libqvnc", f"{qt}/qmltooling",
                                                     f"{qt}/printsupport"))]


def test_conffiles_and_the_production_configuration(extracted: Path) -> None:
    from scanstation.config import load_config

    conffiles = (extracted / "DEBIAN" / "conffiles").read_text().split()
    etc = sorted("/" + str(p.relative_to(extracted)) for p in (extracted / "etc").rglob("*") if p.is_file())
    assert conffiles == etc and "/etc/scanstation/station.toml" in conffiles
    config = load_config(extracted / "etc" / "scanstation" / "station.toml")  # strict: unknown keys refused
    assert config.station.data_dir == "/var/lib/scanstation"
    assert config.station.mode == "production"
    assert config.service.socket == "/run/scanstation/station.sock"
    assert config.service.client_group == "scanstation-kiosk"
    # the socket's directory is the one the service's unit makes
    unit = extracted / "lib" / "systemd" / "system" / "scanstation.service"
    if unit.exists():
        text = unit.read_text()
        assert "RuntimeDirectory=scanstation" in text and "/etc/scanstation/station.toml" in text


def test_maintainer_scripts(extracted: Path) -> None:
    control = extracted / "DEBIAN"
    for name in ("postinst", "prerm", "postrm"):
        script = control / name
        assert script.stat().st_mode & 0o777 == 0o755
        text = script.read_text()
        assert text.startswith("#!/bin/sh\n") and re.search(r"^set -e$", text, re.M), name
        assert "@UNITS@" not in text, name
        proc = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{name}: {proc.stderr}"
        if shutil.which("dash"):  # Debian's /bin/sh: no bashisms
            assert subprocess.run(["dash", "-n", str(script)], capture_output=True).returncode == 0, name
        if shutil.which("shellcheck"):  # when installed (not by installer/setup.sh)
            lint = subprocess.run(["shellcheck", "-s", "sh", str(script)], capture_output=True, text=True)
            assert lint.returncode == 0, f"{name}: {lint.stdout}"
        # never a question: no debconf, no read from the terminal
        assert not re.search(r"^\s*(read|db_input|db_go)\b", text, re.M), name
    units = sorted(p.name for p in (extracted / "lib" / "systemd" / "system").glob("*")
                   if "[Install]" in p.read_text()) if (extracted / "lib/systemd/system").is_dir() else []
    assert re.search(r'^UNITS="(.*)"$', (control / "postinst").read_text(), re.M).group(1).split() == units  # type: ignore[union-attr]
    postrm = (control / "postrm").read_text()
    assert "left $DATA" in postrm and "rm -rf \"$DATA\"" not in postrm  # purge keeps the data, and says so


def _venv_env(home: Path) -> dict[str, str]:
    """Nothing of the development checkout or its venv on the path: the packaged venv must stand alone."""
    drop = ("SCANSTATION_", "PYTHON", "VIRTUAL_ENV", "DISPLAY", "WAYLAND_DISPLAY", "QT_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(HOME=str(home), QT_QPA_PLATFORM="offscreen", PATH="/usr/sbin:/usr/bin:/sbin:/bin")
    return env


def test_the_packaged_venv_runs_from_its_own_path(extracted: Path, tmp_path: Path) -> None:
    """The extracted /opt/scanstation is bind-mounted at /opt/scanstation in a mount namespace of its own, so the
    command's shebang, the venv's pyvenv.cfg and every path inside are the ones a station runs; Debian's
    /usr/bin/python3.11 is the interpreter, as on the target."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare (a private mount namespace)")
    probe = ("import sys, scanstation, ui.app, cv2, sane, numpy, pyrage, sqlcipher3; "
             "from PySide6 import QtWidgets; app = QtWidgets.QApplication([]); "
             "print(sys.prefix, scanstation.__file__, app.platformName(), sep='\\n')")
    script = (f"set -e; mount -t tmpfs tmpfs /opt; mkdir /opt/scanstation; "
              f"mount --bind {extracted}/opt/scanstation /opt/scanstation; "
              f"/opt/scanstation/venv/bin/scanstation --version; "
              f"/opt/scanstation/venv/bin/scanstation --help; "
              f"/opt/scanstation/venv/bin/python -c \"{probe}\"")
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path, env=_venv_env(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    from scanstation import __version__

    assert lines[0] == f"scanstation {__version__}"
    commands = set(re.findall(r"^ {4}([a-z][a-z-]+)", proc.stdout, re.M))
    assert {"init", "serve", "scan", "start"} <= commands and not commands & {"ocr", "demo"}
    assert lines[-3:] == [f"/{VENV}", f"/{SITE}/scanstation/__init__.py", "offscreen"]
    assert "Traceback" not in proc.stderr, proc.stderr


def test_every_record_names_the_files_as_packaged(extracted: Path) -> None:
    """pip's RECORD of each distribution lists files that are there, with their hashes as packaged (the build
    removes developer launchers and rewrites shebangs; its RECORDs say so, and two builds of a commit agree)."""
    site = extracted / SITE
    records = sorted(site.glob("*.dist-info/RECORD"))
    assert len(records) > 20
    for record in records:
        for row in csv.reader(io.StringIO(record.read_text())):
            path = Path(os.path.normpath(site / row[0]))
            assert os.path.lexists(path), f"{record.parent.name}: {row[0]} is not in the package"
            if row[1]:
                digest = base64.urlsafe_b64encode(hashlib.sha256(path.read_bytes()).digest()).rstrip(b"=").decode()
                assert row[1] == f"sha256={digest}", f"{record.parent.name}: {row[0]}"
    scripts = [r for r in csv.reader(io.StringIO(next(site.glob("scanstation-*.dist-info")).joinpath("RECORD")
                                                 .read_text())) if r[0].startswith("../../../bin/")]
    assert [r[0] for r in scripts] == ["../../../bin/scanstation"]


def test_the_lockdown_checks_pass_on_the_packaged_files(extracted: Path) -> None:
    """The system files as packaged (units, sysctl, modprobe, polkit, ...) pass the lockdown part's own checks."""
    try:
        checks = importlib.import_module("scanstation.lockdown.checks")
    except ModuleNotFoundError:
        pytest.skip("scanstation.lockdown.checks does not exist yet (issue 17's lockdown part)")
    problems = checks.check_root(extracted)
    for note in problems:
        if note.severity != "error":
            print(note)  # what could not be checked on this machine, and why
    failed = checks.errors(problems)
    assert not failed, "\n".join(map(str, failed))


def test_the_readme_names_the_production_install() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Production install", 1)[1].split("\n## ", 1)[0]
    assert "bash installer/build-deb.sh" in section and "apt install ./dist/scanstation_" in section
    assert "scanstation init --config /etc/scanstation/station.toml" in section
    assert "systemctl start scanstation" in section

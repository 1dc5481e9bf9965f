"""A production install, as installer/build-wheels.sh defines it: no developer tools, no page data outside the vault.

The production wheels (scanstation-batchformat, scanstation) are built and unpacked into a throw-away venv.  Their
third-party dependencies come from the development venv through one plain path entry (a ``.pth`` line): the
``.pth`` files inside that directory, which hold the editable installs of this repository, are then not processed.
So the production venv sees the developer tools' distribution metadata (their ``scanstation.commands`` entry
points) but cannot import them, as on a station from which they were removed: the CLI must skip them silently.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import time
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage
import pytest

from scanstation_tools.synth import PageSpec, SyntheticPage, render_acr_page

from .sane_env import sane_test_env
from .stationkit import PASSWORD, REPO, make_station
from .test_confidentiality import SIGNATURES, _files, _leaks_in

# the developer tools' modules (synth*, demo, ocr_command, ...): none may turn up anywhere in a production wheel
TOOL_MODULES = {p.stem for p in (REPO / "scanstation_tools").glob("*.py")} - {"__init__"}
STATION_ONLY = ("pyside6", "python-sane", "opencv", "pytesseract", "tesseract")
RECEIVER_ONLY = ("starlette", "uvicorn", "sqlalchemy", "psycopg")


@dataclass
class ProductionInstall:
    wheels: list[Path]
    python: Path
    site: Path
    root: Path

    def env(self, home: Path, **extra: str) -> dict[str, str]:
        """No display, no configuration, nothing of the development checkout on the path."""
        drop = ("SCANSTATION_", "PYTHON", "VIRTUAL_ENV", "DISPLAY", "WAYLAND_DISPLAY", "QT_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        env.update({"HOME": str(home), **extra})
        return env

    def run(self, *args: str, env: dict[str, str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``python -m scanstation.cli ARGS`` in the production venv (``cwd`` lands first on sys.path: not the repo)."""
        assert not cwd.resolve().is_relative_to(REPO)
        proc = subprocess.run([str(self.python), "-m", "scanstation.cli", *args], env=env, cwd=cwd, text=True,
                              capture_output=True, timeout=timeout)
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> ProductionInstall:
    root = tmp_path_factory.mktemp("production")
    out = root / "wheels"
    build = subprocess.run(["bash", str(REPO / "installer" / "build-wheels.sh"), str(out)], capture_output=True,
                           text=True, timeout=600)
    assert build.returncode == 0, build.stdout + build.stderr
    wheels = sorted(out.glob("*.whl"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as z:
            z.extractall(site)
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "zz-third-party-from-dev-venv.pth").write_text("".join(f"{d}\n" for d in deps))
    return ProductionInstall(wheels, python, site, root)


def _page(seed: int = 7301) -> SyntheticPage:
    return render_acr_page(PageSpec(seed=seed, dpi=200))


def test_the_station_wheel_carries_the_compiled_jbig2_coder(production: ProductionInstall) -> None:
    """The station's wheel is built for its platform, with the JBIG2 coder compiled in (without it every compact
    page's stencils would be CCITT G4), and the production install loads it."""
    (station,) = [w for w in production.wheels if w.name.startswith("scanstation-")]
    with zipfile.ZipFile(station) as z:
        assert any(n.startswith("scanstation/pdf/_jbig2_mq.") and n.endswith(".so") for n in z.namelist())
    proc = subprocess.run([str(production.python), "-c", "from scanstation.pdf import jbig2; print(jbig2.AVAILABLE)"],
                          capture_output=True, text=True, cwd=production.root, timeout=60)
    assert proc.stdout.strip() == "True", proc.stderr


def test_the_station_wheel_carries_the_sane_workers_preload(production: ProductionInstall) -> None:
    """drivers/_deferred_cancel.c (kept deferred, a back end's reader-thread cancel cannot hang a scan) is in the
    wheel, and the production install's driver finds it for the SANE worker's LD_PRELOAD."""
    (station,) = [w for w in production.wheels if w.name.startswith("scanstation-")]
    with zipfile.ZipFile(station) as z:
        assert any(n.startswith("drivers/_deferred_cancel.") and n.endswith(".so") for n in z.namelist())
    proc = subprocess.run([str(production.python), "-c", "from drivers import sane_driver; "
                           "print(sane_driver._DEFERRED_CANCEL)"],
                          capture_output=True, text=True, cwd=production.root, timeout=60)
    assert proc.stdout.strip().endswith(".so") and "/drivers/_deferred_cancel." in proc.stdout, proc.stderr


def test_the_production_wheels_are_the_station_and_the_format_only(production: ProductionInstall) -> None:
    assert {"synth", "demo", "ocr_command"} <= TOOL_MODULES
    assert sorted(w.name.split("-")[0] for w in production.wheels) == ["scanstation", "scanstation_batchformat"]
    for wheel in production.wheels:
        with zipfile.ZipFile(wheel) as z:
            names = z.namelist()
            meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
            requires = [line.split(":", 1)[1].strip().lower() for line in z.read(meta).decode().splitlines()
                        if line.startswith("Requires-Dist:") and "extra ==" not in line]
        tops = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
        assert tops <= {"scanstation", "drivers", "ui", "batchformat"}, tops
        tools = [n for n in names if n.endswith(".py") and Path(n).stem in TOOL_MODULES]
        assert not tools, f"{wheel.name} holds developer tools: {tools}"
        assert not [r for r in requires if r.startswith((*RECEIVER_ONLY, "psutil", "pytesseract"))], requires
    # in the venv: the station is the wheel's, the tools are not importable
    probe = ("import importlib.util, scanstation; print(scanstation.__file__); "
             "print([m for m in ('scanstation_tools', 'receiver') if importlib.util.find_spec(m)])")
    out = subprocess.run([str(production.python), "-c", probe], check=True, capture_output=True, text=True,
                         cwd=production.root, env=production.env(production.root)).stdout.split("\n")
    assert Path(out[0]).is_relative_to(production.site) and out[1] == "[]", out


def test_the_receiver_and_the_format_need_no_scanner_stack() -> None:
    def requires(pyproject: Path) -> list[str]:
        return [r.lower() for r in tomllib.loads(pyproject.read_text())["project"]["dependencies"]]

    assert not [r for r in requires(REPO / "receiver" / "pyproject.toml") if r.startswith(STATION_ONLY)]
    assert not [r for r in requires(REPO / "batchformat" / "pyproject.toml")
                if r.startswith((*STATION_ONLY, *RECEIVER_ONLY, "scanstation"))]
    assert not [r for r in requires(REPO / "pyproject.toml") if r.startswith(RECEIVER_ONLY)]


def test_the_production_cli_has_no_ocr_or_demo_command(production: ProductionInstall, tmp_path: Path) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = production.env(home)
    listed = production.run("--help", env=env, cwd=work)
    assert listed.returncode == 0
    commands = set(re.findall(r"^ {4}([a-z][a-z-]+)", listed.stdout, re.M))
    assert {"init", "scan", "import", "seal", "upload", "start"} <= commands
    assert not commands & {"ocr", "demo"}, listed.stdout

    _page().image.save(work / "x.png")
    before = sorted(p.name for p in work.iterdir())
    ocr = production.run("ocr", "x.png", "-o", "y.pdf", "--sidecar", "y.txt", env=env, cwd=work)
    assert ocr.returncode == 2 and "invalid choice: 'ocr'" in ocr.stderr, ocr.stderr
    demo = production.run("demo", env=env, cwd=work)
    assert demo.returncode == 2 and "invalid choice: 'demo'" in demo.stderr, demo.stderr
    assert sorted(p.name for p in work.iterdir()) == before

    # nothing configured and no demo station to fall back on: a clear error, nothing created
    start = production.run("start", "--headless", env=env, cwd=work)
    assert start.returncode == 3 and "scanstation init" in start.stderr, start.stdout + start.stderr
    assert list(home.iterdir()) == []


def test_a_production_station_writes_no_page_data_outside_the_vault(production: ProductionInstall,
                                                                   tmp_path: Path) -> None:
    """Every production command that touches pages or batches, on a configured production station: afterwards
    the only files outside the data directory are the configuration and the cover sheets (index data only), and
    nothing anywhere holds a page image, a PDF of a page or a line of its text in plaintext."""
    home, work, tmp, inputs, out = (tmp_path / n for n in ("home", "work", "tmp", "inputs", "out"))
    for d in (home, work, tmp, inputs, out):
        d.mkdir()
    portal = pyrage.x25519.Identity.generate()
    password = tmp_path / "password.txt"  # everyone's, for the test: admin, head (unit head), sup, op
    password.write_text(PASSWORD + "\n")
    password.chmod(0o600)
    config, data = tmp_path / "station.toml", tmp_path / "data"
    env = production.env(home, TMPDIR=str(tmp), SCANSTATION_CONFIG=str(config), SCANSTATION_USER="sup",
                         SCANSTATION_PASSWORD_FILE=str(password), SCANSTATION_NEW_PASSWORD_FILE=str(password),
                         **sane_test_env(tmp_path))
    page = _page()
    page.image.save(inputs / "page.png")
    page.image.convert("L").save(inputs / "page.pgm")
    (inputs / "roster.csv").write_text("Employee Code,Name,Rank,Unit\nUP-12-004512,Test Officer,SI,Unit\n"
                                       "UP-12-004513,Other Officer,SI,Unit\n", encoding="utf-8")
    given = set(_files(tmp_path, None))  # the test's own: inputs, password, SANE configuration

    def ok(*args: str) -> subprocess.CompletedProcess[str]:
        proc = production.run(*args, env=env, cwd=work)
        assert proc.returncode == 0, f"scanstation {' '.join(args)}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    ok("init", "--config", str(config), "--data-dir", str(data), "--portal-recipient", str(portal.to_public()),
       "--admin", "admin", "--unit-head", "head")
    assert 'mode = "production"' in config.read_text()
    with config.open("a") as f:  # no DSC token here: sealing without the unit head's sign-off (tests/test_signoff.py)
        f.write('\n[ocr]\nlanguages = "eng"\n[upload]\nrequire_signoff = false\n')
    ok("users", "add", "sup", "--role", "supervisor", "--user", "admin")
    ok("users", "add", "op", "--role", "operator", "--user", "admin")
    ok("users", "add", "sup2", "--role", "supervisor", "--user", "admin")  # verifies what sup scans
    ok("unlock", "--user", "head")  # gives sup a key slot: the supervisor unlocks for each command below
    ok("roster", "import", str(inputs / "roster.csv"))
    ok("devices")
    ok("scan", "--device", "pnm:0", "--option", f"filename={inputs / 'page.pgm'}", "--batch", "B1",
       "--employee", "UP-12-004512", "--name", "Test Officer", "--period", "2019-20")
    ok("import", "--batch", "B2", "--employee", "UP-12-004513", "--period", "2020-21", str(inputs / "page.png"))
    ok("process", "--retry-failed")
    ok("status")
    batches = {b["name"]: b for b in json.loads(ok("status", "--json").stdout)["batches"]}
    pages = [(p["state"], p["ocr"]) for b in ("B1", "B2") for p in batches[b]["page_list"]]
    assert pages == [("processed", "done")] * 2
    ok("verify-vault")
    ok("assemble", "--batch", "B1")
    ok("assemble", "--batch", "B2")
    ok("cover-sheets", "--sheet", "UP-12-004514:2021-22:Next Officer", "-o", str(out / "cover-sheets.pdf"))
    for batch in ("B1", "B2"):  # nothing is sealed unverified
        ok("batch", "close", "--batch", batch)
        ok("review", "--batch", batch, "--page", "1", "--verdict", "ok", "--user", "sup2")
        ok("approve", "--batch", batch, "--user", "sup2")
    ok("seal", "--batch", "B1", "--user", "head")
    ok("uploads")
    ok("unseal", "--batch", "B1", "--user", "head")
    ok("seal", "--batch", "B2", "--user", "head")
    upload = production.run("upload", "--batch", "B2", env=env, cwd=work)  # no portal set up: refused, nothing sent
    assert upload.returncode != 0 and upload.stderr.startswith("scanstation: "), upload.stderr
    start = ok("start", "--headless")
    assert "no display" in start.stdout and "demo" not in start.stdout

    # what to look for: the page's printed lines and every line the station OCR'd (from its vault)
    sentences = [ln.encode() for ln in page.text.splitlines() if len(ln.strip()) >= 16]
    objects = sorted((data / "vault").rglob("*.age"))
    assert objects
    for obj in objects:
        plain = pyrage.decrypt(obj.read_bytes(), [portal])
        if not plain.startswith((SIGNATURES["PNG"], SIGNATURES["PDF"])):
            sentences += [ln.strip().encode() for ln in plain.decode("utf-8", "replace").splitlines()
                          if len(ln.strip()) >= 16]
    assert len(sentences) > 10

    written = set(_files(tmp_path, None)) - given
    outside = sorted(str(p.relative_to(tmp_path)) for p in written if not p.is_relative_to(data))
    assert outside == ["out/cover-sheets.pdf", "station.toml"]
    leaks = []
    for f in sorted(written):
        if f == out / "cover-sheets.pdf":
            # index data only (QR + typed text): a PDF, but no page image and no OCR text
            assert f.read_bytes().startswith(SIGNATURES["PDF"])
            leaks += [leak for leak in _leaks_in(f, sentences) if "OCR text" in leak]
        else:
            leaks += _leaks_in(f, sentences)
    assert not leaks, "\n".join(leaks[:20])


def _listing(folder: Path) -> list[tuple[str, int]]:
    """Every entry under ``folder`` with its modification time (ns): what opening a station would change."""
    return sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns) for p in folder.rglob("*"))


def test_demo_refuses_a_production_station_in_the_developer_install(tmp_path: Path) -> None:
    st = make_station(tmp_path / "st")
    assert 'mode = "production"' in st.config.read_text()
    st.env["HOME"] = str(tmp_path / "home")  # no demo station of the developer's own is touched
    st.env.pop("DISPLAY", None)
    st.env.pop("WAYLAND_DISPLAY", None)
    st.env.pop("QT_QPA_PLATFORM", None)
    before = _listing(st.data_dir)
    proc = st.run("demo", "--files", "1", "--pages", "1")
    assert proc.returncode == 7, proc.stdout + proc.stderr
    assert 'station.mode is "production"' in proc.stderr and "synthetic" in proc.stderr, proc.stderr
    # start on a production station: no demo batch either, headless or not
    start = st.run("start", "--headless", check=True)
    assert "no display" in start.stdout and "demo" not in start.stdout
    # the station was not even opened: no store, no demo portal key; nothing in its data directory changed
    assert _listing(st.data_dir) == before
    assert not (tmp_path / "home").exists()

    training = make_station(tmp_path / "training", init_args=("--training",))
    assert 'mode = "training"' in training.config.read_text()


def test_the_window_offers_the_demo_only_when_handed_the_action(tmp_path: Path) -> None:
    pytest.importorskip("PySide6")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from scanstation.config import load_config
    from ui.app import StationWindow
    from ui.qt import QApplication

    st = make_station(tmp_path / "st")
    app = QApplication.instance() or QApplication([])
    production = StationWindow(load_config(st.config))
    assert production.demo_button is None
    ran: list[bool] = []
    training = StationWindow(load_config(st.config), demo_action=lambda: ran.append(True))
    assert training.demo_button is not None
    training.demo_button.click()
    for _ in range(200):
        app.processEvents()
        if ran and training.demo_button.isEnabled():
            break
        time.sleep(0.01)
    assert ran == [True] and training.demo_button.isEnabled()
    production.close()
    training.close()


def test_start_hands_the_window_the_demo_only_off_production(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``scanstation start`` with a display: a production station's window has no demo action; with nothing
    configured, the developer tools' demo station is created and its window gets one."""
    from scanstation.cli import main as cli
    from scanstation.cli import plugins

    opened: list[tuple[str, bool]] = []

    def window(config: Any, demo_action: Any = None) -> int:
        opened.append((config.station.mode, demo_action is not None))
        return 0

    real = plugins.start_part
    monkeypatch.setattr(plugins, "start_part", lambda name: window if name == "window" else real(name))
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")  # a display, as far as start can tell
    st = make_station(tmp_path / "st")
    monkeypatch.setenv("SCANSTATION_CONFIG", str(st.config))
    monkeypatch.setenv("SCANSTATION_PASSWORD_FILE", st.env["SCANSTATION_PASSWORD_FILE"])
    assert cli.main(["start"]) == 0
    monkeypatch.delenv("SCANSTATION_CONFIG")
    monkeypatch.delenv("SCANSTATION_PASSWORD_FILE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cli.main(["start"]) == 0
    assert opened == [("production", False), ("demo", True)]
    assert (tmp_path / "home" / ".local" / "share" / "scanstation" / "station.toml").exists()

"""`scanstation init` on a packaged station: it founds the station in the configuration the Debian package
installed (installer/deb/station.toml), keeping that file's settings, comments, mode and owner, and as root
gives the station's files to the data directory's owner (the service's user)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pyrage
import pytest

from tests.stationkit import PASSWORD, REPO

PACKAGE_CONFIG = REPO / "installer" / "deb" / "station.toml"
NOBODY = 65534


def _init(config: Path, *args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    pass_file = tmp / "password.txt"
    pass_file.write_text(PASSWORD + "\n")
    pass_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCANSTATION_")}
    env.update({"SCANSTATION_PASSWORD_FILE": str(pass_file), "SCANSTATION_NEW_PASSWORD_FILE": str(pass_file),
                "PYTHONPATH": str(REPO)})
    recipient = str(pyrage.x25519.Identity.generate().to_public())
    return subprocess.run([sys.executable, "-m", "scanstation.cli.main", "init", "--config", str(config),
                           "--portal-recipient", recipient, "--admin", "admin", *args],
                          env=env, text=True, capture_output=True, timeout=300, cwd=REPO)


def _package_config(tmp: Path, data_dir: Path) -> Path:
    """The package's station.toml, its data directory moved under the test's directory (the only edit)."""
    text = PACKAGE_CONFIG.read_text()
    assert 'data_dir = "/var/lib/scanstation"' in text
    config = tmp / "etc" / "station.toml"
    config.parent.mkdir()
    config.write_text(text.replace("/var/lib/scanstation", str(data_dir)))
    config.chmod(0o640)
    return config


def test_init_merges_into_the_package_configuration(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    config = _package_config(tmp_path, data_dir)
    before = config.read_text()
    proc = _init(config, "--station-id", "unit-042-station-1", "--unit", "42nd Battalion PAC", "--unit-head", "head",
                 tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"configuration updated in {config}" in proc.stdout and "RECOVERY CODE" in proc.stdout
    after = config.read_text()
    values = tomllib.loads(after)
    assert values["station"] == {"id": "unit-042-station-1", "unit": "42nd Battalion PAC", "data_dir": str(data_dir),
                                 "mode": "production"}
    assert values["keys"]["portal_recipient"].startswith("age1")
    assert values["service"] == tomllib.loads(before)["service"]
    # the package's comments are the admin's guide to the file: every one of them stays
    comments = [ln for ln in before.splitlines() if ln.lstrip().startswith("#")]
    assert comments and all(c in after.splitlines() for c in comments)
    assert config.stat().st_mode & 0o777 == 0o640
    assert (data_dir / "station.pub").exists() and (data_dir / "people.db").exists()
    _assert_the_stations_argon2_cost(data_dir / "people.db")


def _assert_the_stations_argon2_cost(people_db: Path) -> None:
    """A station founded by `scanstation init` hashes passwords and wraps the unit head's key and the recovery slot
    at the station's real argon2id cost (tests/stationkit.py's stations use a cheap one, tests/cheap_argon2)."""
    from scanstation.people.passwords import DEFAULT_PARAMS

    real = f"m={DEFAULT_PARAMS.memory_kib},t={DEFAULT_PARAMS.time_cost},p={DEFAULT_PARAMS.parallelism}"
    assert real == "m=65536,t=3,p=1"
    with contextlib.closing(sqlite3.connect(f"file:{people_db}?mode=ro", uri=True)) as db:
        people = {name: (phc, wrapped) for name, phc, wrapped in
                  db.execute("SELECT name, password_hash, wrapped_private_key FROM people")}
        (recovery,) = db.execute("SELECT wrapped FROM recovery_slot").fetchone()
    assert set(people) == {"admin", "head"}
    assert all(phc.startswith(f"$argon2id$v=19${real}$") for phc, _ in people.values()), people
    assert people["admin"][1] is None and people["head"][1].startswith(f"argon2id-aes256gcm$v=1${real}$")
    assert recovery.startswith(f"argon2id-aes256gcm$v=1${real}$")


def test_init_refuses_a_configuration_naming_a_station(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    config = _package_config(tmp_path, data_dir)
    assert _init(config, tmp=tmp_path).returncode == 0
    founded = config.read_text()
    key = (data_dir / "station.pub").read_bytes()
    again = _init(config, "--station-id", "other", tmp=tmp_path)
    assert again.returncode == 7 and "already exists" in again.stderr and str(data_dir) in again.stderr
    # nor may another data directory take the configuration away from the station it names
    elsewhere = _init(config, "--data-dir", str(tmp_path / "other"), tmp=tmp_path)
    assert elsewhere.returncode == 7 and str(data_dir) in elsewhere.stderr
    assert config.read_text() == founded and (data_dir / "station.pub").read_bytes() == key
    assert not (tmp_path / "other").exists()


def test_init_needs_a_data_dir_for_a_new_file_and_names_a_broken_one(tmp_path: Path) -> None:
    missing = _init(tmp_path / "new.toml", tmp=tmp_path)
    assert missing.returncode != 0 and "--data-dir" in missing.stderr and "new.toml" in missing.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text('[station]\ndata_dir = "/x"\nmode = \n')
    proc = _init(broken, tmp=tmp_path)
    assert proc.returncode != 0 and "broken.toml" in proc.stderr and "TOML" in proc.stderr
    assert broken.read_text() == '[station]\ndata_dir = "/x"\nmode = \n'


def test_new_file_gets_the_defaults(tmp_path: Path) -> None:
    config = tmp_path / "station.toml"
    proc = _init(config, "--data-dir", str(tmp_path / "d"), "--training", tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr
    station = tomllib.loads(config.read_text())["station"]
    assert station == {"id": "station-1", "unit": "Unit 1", "operator": "operator", "data_dir": str(tmp_path / "d"),
                       "mode": "training"}
    assert config.stat().st_mode & 0o777 == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to another user needs root")
def test_init_as_root_gives_the_station_to_the_data_dirs_owner(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)  # (pytest's directories are 0700: the owner below must reach its own)
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    os.chown(data_dir, NOBODY, NOBODY)
    config = _package_config(tmp_path, data_dir)
    os.chown(config, 0, NOBODY)
    proc = _init(config, "--unit-head", "head", tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "given to nobody" in proc.stdout
    paths = [data_dir, *data_dir.rglob("*")]
    assert len(paths) > 3
    assert [p for p in paths if p.lstat().st_uid != NOBODY] == []
    assert data_dir.stat().st_mode & 0o777 == 0o700
    # the configuration keeps its owner and group (root:scanstation-kiosk on a station)
    assert (config.stat().st_uid, config.stat().st_gid, config.stat().st_mode & 0o777) == (0, NOBODY, 0o640)
    # the owner, not root, can now use the station: read and write each file, and make new ones beside them
    # (SQLite's journal and WAL), as the service's user will
    assert _as_owner_open_all(data_dir, NOBODY) == sorted(p.name for p in data_dir.iterdir())


def _as_owner_open_all(folder: Path, uid: int) -> list[str]:
    """The files of ``folder`` that ``uid`` can open for reading and writing, after making a file there."""
    def work() -> str:
        os.close(os.open("new-journal", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        os.unlink("new-journal")
        opened = []
        for name in sorted(os.listdir(".")):
            os.close(os.open(name, os.O_RDWR))
            opened.append(name)
        return "\n".join(opened)

    said, ok = _as_user(folder, uid, work)
    assert ok, said
    return said.split("\n")


def _as_user(folder: Path, uid: int, work: Callable[[], str]) -> tuple[str, bool]:
    """``work``'s answer (or its traceback, and False) in a forked child that became ``uid`` (as systemd starts
    the service, or logind the kiosk).  The child enters ``folder`` first and names files relative to it:
    pytest's own directories above it are root's alone."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read)
            os.chdir(folder)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            os.write(write, ("1" + work()).encode())
        except BaseException as e:  # (told to the test, which fails on it)
            import traceback

            os.write(write, f"0raised {e!r}\n{traceback.format_exc()}".encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        said = f.read()
    os.waitpid(pid, 0)
    return said[1:], said[:1] == "1"


def test_start_as_the_kiosk_account_leaves_the_question_to_the_service() -> None:
    # The kiosk's account cannot look into the service's 0700 data directory: `scanstation start` must not call
    # the station uninitialised then (the kiosk would restart in a loop before a service that starts late); the
    # window asks the service.  Headless, it says what a production station's terminal offers.
    import shutil
    import tempfile

    # (not under pytest's directories, which are root's alone: nobody must reach the configuration by its path)
    tmp_path = Path(tempfile.mkdtemp(prefix="scanstation-kiosk-start-", dir="/var/tmp"))
    try:
        _start_as_nobody_cases(tmp_path)
    finally:
        shutil.rmtree(tmp_path)


def _start_as_nobody_cases(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    data_dir = tmp_path / "data"
    config = _package_config(tmp_path, data_dir)
    config.chmod(0o644)
    data_dir.mkdir(mode=0o700)
    said = _as_nobody_start(tmp_path, config)
    assert said.startswith("0\n") and "no display" in said, said
    # where the account can look, an empty data directory is an uninitialised station, named
    data_dir.chmod(0o755)
    said = _as_nobody_start(tmp_path, config)
    assert said.startswith("7\n") and "not initialised" in said, said


def _as_nobody_start(folder: Path, config: Path) -> str:
    """`scanstation start --headless` run by ``main`` as nobody: its exit code and what it printed."""
    import contextlib
    import io

    # (imported here, by root: the interpreter's own files are not nobody's to read where the tests run)
    import scanstation.config
    import scanstation.service.client
    from scanstation.cli.main import main

    scanstation.config.load_config(config)

    def work() -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = main(["start", "--headless", "--config", str(config)])
        return f"{code}\n{out.getvalue()}"

    said, _ok = _as_user(folder, NOBODY, work)
    return said

"""CLI behaviour around the edges: version, devices, init errors, bad input files, wrong password."""

from __future__ import annotations

import json
from pathlib import Path

import pyrage

from scanstation import __version__
from scanstation_tools.synth import PageSpec, render_acr_page

from .sane_env import sane_test_env
from .stationkit import make_station


def test_version_and_exit_codes(tmp_path: Path) -> None:
    st = make_station(tmp_path / "st")
    proc = st.run("--version", check=True)
    assert __version__ in proc.stdout
    assert "paper jam" in st.run("exit-codes", check=True).stdout


def test_cli_config_env_name_matches_the_config_module() -> None:
    # The CLI keeps its own copy of the name so that commands without a configuration (ocr) need not
    # import the configuration model; the two must not drift apart.
    from scanstation import config
    from scanstation.cli import main as cli

    assert cli.CONFIG_ENV == config.CONFIG_ENV


def test_ocr_command_does_not_import_the_configuration_model(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from scanstation.cli import main as cli\n"
        "cli.build_parser().parse_args(['ocr', 'x.png', '-o', 'x.pdf'])\n"
        "import scanstation_tools.ocr_command\n"
        "print('scanstation.config' in sys.modules, 'pydantic' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_devices_lists_sane_test_devices_and_import(tmp_path: Path) -> None:
    st = make_station(tmp_path / "st", extra_env=sane_test_env(tmp_path))
    out = st.run("devices", check=True).stdout
    assert "test:0" in out and "pnm:0" in out and "import" in out


def test_init_refuses_bad_recipient_and_overwrite(tmp_path: Path) -> None:
    st = make_station(tmp_path / "st")
    proc = st.run("init", "--config", str(tmp_path / "x.toml"), "--data-dir", str(tmp_path / "d"),
                  "--portal-recipient", "age1notarecipient")
    assert proc.returncode == 3 and "age1notarecipient" in proc.stderr
    again = st.run("init", "--config", str(st.config), "--data-dir", str(st.data_dir), "--portal-recipient",
                   str(pyrage.x25519.Identity.generate().to_public()))
    assert again.returncode == 7 and "already exists" in again.stderr


def test_wrong_password_exits_23_and_nothing_opens(tmp_path: Path) -> None:
    # Issue 13: the shared passphrase is gone; a person's wrong password is a refused sign-in.
    st = make_station(tmp_path / "st")
    bad = tmp_path / "bad-pass"
    bad.write_text("not the password of anyone\n")
    bad.chmod(0o600)
    st.env["SCANSTATION_PASSWORD_FILE"] = str(bad)
    proc = st.run("verify-vault")
    assert proc.returncode == 23, proc.stderr
    assert "name or the password is wrong" in proc.stderr


def test_malformed_config_exits_3_naming_file_and_key(tmp_path: Path) -> None:
    st = make_station(tmp_path / "st")
    st.config.write_text(st.config.read_text() + "\n[scan]\nresolution = 5\n")
    proc = st.run("status")
    assert proc.returncode == 3
    assert str(st.config) in proc.stderr and "scan.resolution" in proc.stderr


def test_import_bad_files_are_named_and_good_pages_kept(tmp_path: Path) -> None:
    st = make_station(tmp_path / "st")
    good = tmp_path / "good.png"
    render_acr_page(PageSpec(seed=7, dpi=100)).image.save(good)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:2000])
    notimage = tmp_path / "notes.tif"
    notimage.write_text("this is not a TIFF")
    proc = st.run("import", "--batch", "BAD", str(empty), str(good), str(truncated), str(notimage), "--no-wait")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    for f in (empty, truncated, notimage):
        assert str(f) in proc.stderr
    assert proc.stdout.count("acknowledged page") == 1
    data = json.loads(st.run("status", "--json", check=True).stdout)
    assert data["batches"][0]["pages"] == 1
    # the same import again stores nothing twice
    again = st.run("import", "--batch", "BAD", str(good), "--no-wait")
    assert again.returncode == 0 and "already stored" in again.stdout
    assert json.loads(st.run("status", "--json", check=True).stdout)["batches"][0]["pages"] == 1


def test_status_before_init_is_a_clear_error(tmp_path: Path) -> None:
    st = make_station(tmp_path / "st")
    other = tmp_path / "other.toml"
    other.write_text(f'[station]\ndata_dir = "{tmp_path / "nothing"}"\n')
    proc = st.run("--config", str(other), "status")
    assert proc.returncode == 7 and "scanstation init" in proc.stderr

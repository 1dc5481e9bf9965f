"""Configuration: embedded defaults, overrides, and errors that name the file, key and reason."""

from pathlib import Path

import pytest

from scanstation.config import load_config
from scanstation.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_embedded_defaults_are_valid() -> None:
    c = load_config(None)
    assert c.scan.resolution == 300
    assert c.ocr.languages == "hin+eng"


def test_example_file_is_valid() -> None:
    c = load_config(REPO / "config" / "station.example.toml")
    assert c.scan.source == "duplex"
    assert c.keys.portal_recipient.startswith("age1")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[scan]\nresolution = 20\n", "key 'scan.resolution'"),
        ("[scan]\nresolutoin = 300\n", "unknown key 'scan.resolutoin'"),
        ("[keys]\nportal_recipient = 'age1nope'\n", "key 'keys.portal_recipient'"),
        ("[scan\nresolution = 300\n", "not valid TOML"),
        ("scan = 3\n", "must be a table"),
        ("[ocr]\nworkers = 'two'\n", "key 'ocr.workers'"),
        ("[bogus]\nx = 1\n", "unknown key 'bogus'"),
    ],
)
def test_bad_config_names_file_key_and_reason(tmp_path: Path, text: str, needle: str) -> None:
    f = tmp_path / "station.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(f)
    assert str(f) in str(e.value)
    assert needle in str(e.value)
    assert e.value.exit_code == 3


def test_missing_and_binary_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    f = tmp_path / "bin.toml"
    f.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(f)


def test_env_var_selects_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "s.toml"
    f.write_text("[station]\nunit = 'Env Unit'\n")
    monkeypatch.setenv("SCANSTATION_CONFIG", str(f))
    assert load_config(None).station.unit == "Env Unit"


def test_include_raw_defaults_off_and_is_strict(tmp_path: Path) -> None:
    # Off by default: a page travels once (in its ACR file's PDF/A), the raw capture is destroyed at the seal.
    assert load_config(None).upload.include_raw is False
    f = tmp_path / "station.toml"
    f.write_text("[upload]\ninclude_raw = true\n")
    assert load_config(f).upload.include_raw is True
    f.write_text("[upload]\ninclude_raw = 'sometimes'\n")
    with pytest.raises(ConfigError, match=r"key 'upload\.include_raw'"):
        load_config(f)

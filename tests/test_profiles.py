"""Scan profiles (issue 14, item 3): admin-defined in the configuration, validated, locked against the operator.

The configuration tests load real TOML files through :func:`load_config`; the CLI tests scan from SANE's
``test`` back end (tests/sane_env.py) on a station made by the real CLI, and read the refusal back from
the audit trail.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from scanstation.capture.profiles import ProfileLocked, describe_profile, profile_settings
from scanstation.config import load_config
from scanstation.errors import ConfigError, PermissionDenied

from .sane_env import sane_test_env
from .stationkit import StationEnv, make_station

PROFILES = """
[profiles.test-adf]
description = "the SANE test back end's feeder, small pages"
source = "adf"
mode = "gray"
resolution = 75
page_size = "A4"
separators = false
options = ["test-picture=Grid"]

[profiles.test-free-dpi]
source = "adf"
mode = "gray"
resolution = 75
unlocked = ["resolution", "options"]
"""


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "station.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_embedded_default_profile_is_duplex_gray_300_all_locked() -> None:
    config = load_config(None)
    profile = config.profiles["acr-duplex-gray-300"]
    assert (profile.source, profile.mode, profile.resolution, profile.page_size) == ("duplex", "gray", 300, "A4")
    assert profile.blank_pages == "flag" and profile.separators is True
    assert profile.unlocked == ()
    assert all(profile.locked(f) for f in ("source", "mode", "resolution", "page_size", "separators", "options"))
    assert config.scan.profile == ""  # no default profile: the free settings, as before


def test_station_file_adds_profiles_and_overrides_the_embedded_one_key_by_key(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, PROFILES + """
[profiles.acr-duplex-gray-300]
resolution = 200
unlocked = ["resolution"]

[scan]
profile = "test-adf"
"""))
    assert set(config.profiles) == {"acr-duplex-gray-300", "test-adf", "test-free-dpi"}
    default = config.profiles["acr-duplex-gray-300"]
    assert (default.source, default.resolution, default.unlocked) == ("duplex", 200, ("resolution",))
    assert config.profiles["test-adf"].options == ("test-picture=Grid",)
    assert config.profiles["test-free-dpi"].page_size == "A4"  # defaults fill what a new profile leaves out
    assert config.scan.profile == "test-adf"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[profiles.p]\nsource = "adf"\nmode = "gray"\nresolution = 300\nbrightness = 5\n',
         "profiles.p.brightness"),
        ('[profiles.p]\nsource = "adf"\nmode = "gray"\nresolution = 300\nblank_pages = "drop"\n',
         "profiles.p.blank_pages"),
        ('[profiles.p]\nsource = "adf"\nmode = "gray"\nresolution = 300\nunlocked = ["blank_pages"]\n',
         "'blank_pages' cannot be unlocked"),
        ('[profiles.p]\nsource = "adf"\nmode = "sepia"\nresolution = 300\n', "profiles.p.mode"),
        ('[profiles.p]\nsource = "adf"\nmode = "gray"\nresolution = 5000\n', "profiles.p.resolution"),
        ('[profiles.p]\nsource = "adf"\nmode = "gray"\n', "profiles.p.resolution"),
        ('[profiles.p]\nsource = "adf"\nmode = "gray"\nresolution = 300\noptions = ["brightness"]\n',
         "expected NAME=VALUE"),
        ('[profiles."bad name!"]\nsource = "adf"\nmode = "gray"\nresolution = 300\n', "profile name 'bad name!'"),
        ("profiles = 3\n", "profiles"),
        ("[profiles]\np = 3\n", "profiles.p"),
        ('[scan]\nprofile = "nope"\n', "scan.profile names no profile: 'nope'"),
        ('[profiles.acr-duplex-gray-300]\ncolour = true\n', "unknown key 'profiles.acr-duplex-gray-300.colour'"),
    ],
)
def test_malformed_profiles_are_refused_naming_the_key(tmp_path: Path, text: str, fragment: str) -> None:
    path = _config(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert fragment in info.value.message
    assert str(path) in info.value.message
    assert info.value.exit_code == 3


def test_locked_values_are_refused_and_unlocked_ones_pass(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, PROFILES))
    scan = profile_settings(config, "test-adf")
    assert (scan.settings.source.value, scan.settings.mode.value, scan.settings.resolution) == ("adf", "gray", 75)
    assert scan.settings.options == (("test-picture", "Grid"),) and scan.separators is False
    # the profile's own value is not a change
    assert profile_settings(config, "test-adf", mode="gray", resolution=75).settings.resolution == 75

    with pytest.raises(ProfileLocked) as info:
        profile_settings(config, "test-adf", mode="color", resolution=300)
    assert isinstance(info.value, PermissionDenied) and info.value.exit_code == 22
    assert "mode (profile: gray, asked: color)" in info.value.message
    assert "resolution (profile: 75, asked: 300)" in info.value.message
    with pytest.raises(ProfileLocked, match="back-end options"):
        profile_settings(config, "test-adf", options=["brightness=10"])
    with pytest.raises(ProfileLocked, match="separators"):
        profile_settings(config, "test-adf", separators=True)

    free = profile_settings(config, "test-free-dpi", resolution=150, options=["brightness=10"])
    assert free.settings.resolution == 150 and free.settings.options == (("brightness", "10"),)
    # options are unlocked there, but one that sets a locked value is a change of that value
    for opt in ("mode=Color", "page3:mode=Color", "depth=1", "br-y=100", "source=Flatbed"):
        with pytest.raises(ProfileLocked, match="through option"):
            profile_settings(config, "test-free-dpi", options=[opt])
    assert profile_settings(config, "test-free-dpi", options=["x-resolution=100"]).settings.options
    with pytest.raises(ConfigError, match="no scan profile called 'nope'"):
        profile_settings(config, "nope")
    with pytest.raises(ConfigError, match="pages are numbered from 1"):
        profile_settings(config, "test-free-dpi", options=["page0:brightness=1"])
    assert describe_profile("test-adf", config.profiles["test-adf"])["unlocked"] == []


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> StationEnv:
    root = tmp_path_factory.mktemp("profiles")
    return make_station(root / "st", extra_env=sane_test_env(root), extra_config="enabled = false\n" + PROFILES)


def _audit(st: StationEnv, action: str) -> list[tuple[str, str, dict[str, Any]]]:
    db = sqlite3.connect(f"file:{st.data_dir / 'audit.db'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT actor, subject, detail FROM entries WHERE action = ? ORDER BY seq",
                          (action,)).fetchall()
    finally:
        db.close()
    return [(actor, subject, json.loads(detail)) for actor, subject, detail in rows]


def test_cli_lists_profiles(station: StationEnv) -> None:
    listed = json.loads(station.run("profiles", "--json", check=True).stdout)
    names = [p["name"] for p in listed["profiles"]]
    assert names == sorted(["acr-duplex-gray-300", "test-adf", "test-free-dpi"])
    text = station.run("profiles", check=True).stdout
    assert "test-free-dpi\tadf gray 75 dpi A4; cover sheets on; blank pages flagged; operator may change: " \
           "resolution, options" in text


def test_cli_scan_with_a_profile_and_a_locked_value_refused(station: StationEnv) -> None:
    ok = station.run("scan", "--device", "test:0", "--profile", "test-adf", "--batch", "PROF1", "--no-wait")
    assert ok.returncode == 0, ok.stderr
    assert "batch PROF1: 10 page(s) acknowledged" in ok.stdout  # the feeder's ten sheets, at the profile's 75 dpi

    for extra, fragment in [(("--mode", "color"), "mode (profile: gray, asked: color)"),
                            (("--resolution", "300"), "resolution (profile: 75, asked: 300)"),
                            (("--source", "flatbed"), "source (profile: adf, asked: flatbed)"),
                            (("--option", "mode=Color"), "back-end options (asked: mode=Color)")]:
        refused = station.run("scan", "--device", "test:0", "--profile", "test-adf", "--batch", "PROF2", *extra)
        assert refused.returncode == 22, (extra, refused.stdout, refused.stderr)
        assert fragment in refused.stderr and "scan profile 'test-adf' locks" in refused.stderr
        assert "acknowledged" not in refused.stdout  # refused before the scanner moved
    refusals = _audit(station, "scan.profile_refused")
    assert [(a, s) for a, s, _d in refusals[-4:]] == [("sup", "profile:test-adf")] * 4
    assert "mode (profile: gray, asked: color)" in refusals[-4][2]["attempts"][0]

    touching = station.run("scan", "--device", "test:0", "--profile", "test-free-dpi", "--batch", "PROF2",
                           "--option", "page2:depth=1")
    assert touching.returncode == 22 and "mode (through option depth=1)" in touching.stderr

    unknown = station.run("scan", "--device", "test:0", "--profile", "nope", "--batch", "PROF2")
    assert unknown.returncode == 3 and "no scan profile called 'nope'" in unknown.stderr
    status = json.loads(station.run("status", "--json", check=True).stdout)
    assert "PROF2" not in [b["name"] for b in status["batches"]]  # nothing was opened by a refused scan


def test_default_profile_applies_without_profile_option(station: StationEnv, tmp_path: Path) -> None:
    # a kiosk station names a default profile: leaving out --profile does not get round its locks
    with station.config.open("a") as f:
        f.write('\n[scan]\nprofile = "test-adf"\n')
    try:
        refused = station.run("scan", "--device", "test:0", "--batch", "PROF3", "--mode", "color")
        assert refused.returncode == 22 and "scan profile 'test-adf' locks mode" in refused.stderr
    finally:
        text = station.config.read_text()
        station.config.write_text(text.replace('\n[scan]\nprofile = "test-adf"\n', ""))

"""Enable SANE's virtual ``test`` and ``pnm`` back ends for one test, without touching /etc/sane.d."""

from __future__ import annotations

from pathlib import Path

# Defaults for the test back end (its built-in resolution default is garbage without a test.conf).  One
# device is enough and keeps discovery quick.
_TEST_CONF = """\
number_of_devices 2
mode Gray
depth 8
resolution 300
test-picture "Solid black"
read-return-value "Default"
"""


def sane_test_env(tmp_path: Path) -> dict[str, str]:
    """Write a private SANE config dir enabling only ``test`` and ``pnm``; return the env vars to set.

    SANE_CONFIG_DIR without a trailing colon replaces the system directories, so no other back end (net,
    airscan, USB scanners on the test machine) is probed.  The worker process inherits the variable.
    """
    config = tmp_path / "sane.d"
    config.mkdir(parents=True, exist_ok=True)
    (config / "dll.conf").write_text("test\npnm\n")
    (config / "test.conf").write_text(_TEST_CONF)
    return {"SANE_CONFIG_DIR": str(config)}

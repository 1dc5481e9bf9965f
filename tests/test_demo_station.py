"""The developer tools' demo station (issue 13: a station with people, not a shared passphrase).

``scanstation start --headless`` with nothing configured founds the demo station (the admin ``demo-admin``
and the unit head ``demo-head`` as ``init --admin --unit-head`` would, the operator ``demo-operator`` and
the supervisor ``demo-supervisor`` added by the admin), keeps their generated passwords and the demo portal's
key in DEMO-ONLY files (0600), and runs a demo batch: scanned and closed by the operator, verified by the
supervisor, sealed and uploaded by the unit head over mutual TLS (the admin enrolled the station at the demo
portal first), all in the audit trail.  A demo station of wave 1 (one
passphrase, no people) is moved aside, not deleted.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from .stationkit import REPO, cheap_process_env

WAVE1_FILES = {"station.toml": '[station]\nid = "demo-station"\nunit = "Demo Unit"\nmode = "demo"\n',
               "DEMO-ONLY-passphrase.txt": "old demo passphrase\n", "station-identity.age": "old\n",
               "demo-portal-identity.age": "old\n"}


def _cli(*args: str, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scanstation.cli.main", *args], env=env, cwd=REPO, text=True,
                          capture_output=True, timeout=timeout)


@pytest.mark.slow
def test_start_headless_founds_the_demo_station_with_people_and_runs_a_batch(tmp_path: Path) -> None:
    home = tmp_path / "home"
    data = home / ".local" / "share" / "scanstation"
    data.mkdir(parents=True)
    for name, text in WAVE1_FILES.items():  # a developer's demo station from before people existed
        (data / name).write_text(text)
    drop = ("SCANSTATION_", "DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update({"HOME": str(home), "PYTHONPATH": str(REPO), "TMPDIR": "/tmp"})
    env = cheap_process_env(env)  # the demo's people at a cheap argon2id cost, our modules compiled once

    start = _cli("start", "--headless", env=env)
    assert start.returncode == 0, start.stdout + start.stderr
    assert "demo station initialised" in start.stdout and "vault verified" in start.stdout, start.stdout
    assert "signed receipt" in start.stdout, start.stdout
    # uploaded the real way: enrolled at the demo portal, then over mutual TLS
    assert "enrolled at the local demo portal" in start.stdout, start.stdout
    assert "to the local demo portal (https://127.0.0.1:" in start.stdout, start.stdout

    # the wave-1 station was moved aside as it was
    (aside,) = data.glob("wave1-demo-*")
    assert {p.name: p.read_text() for p in aside.iterdir() if p.is_file()} == WAVE1_FILES
    # the new one: people and keys, no shared passphrase, the DEMO-ONLY secrets private
    assert 'mode = "demo"' in (data / "station.toml").read_text()
    assert not (data / "DEMO-ONLY-passphrase.txt").exists() and not (data / "station-identity.age").exists()
    secrets = [data / f"DEMO-ONLY-password-{n}.txt"
               for n in ("demo-admin", "demo-head", "demo-operator", "demo-supervisor")]
    secrets.append(data / "demo-portal" / "DEMO-ONLY-portal-identity.txt")
    for f in secrets:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert "DEMO ONLY" in secrets[-1].read_text()

    def as_person(name: str) -> dict[str, str]:
        return {**env, "SCANSTATION_CONFIG": str(data / "station.toml"), "SCANSTATION_USER": name,
                "SCANSTATION_PASSWORD_FILE": str(data / f"DEMO-ONLY-password-{name}.txt")}

    listed = _cli("users", "list", "--json", env=as_person("demo-admin"), timeout=300)
    assert listed.returncode == 0, listed.stderr
    roles = {p["name"]: p["role"] for p in json.loads(listed.stdout)}
    assert roles == {"demo-admin": "admin", "demo-head": "unit-head", "demo-operator": "operator",
                     "demo-supervisor": "supervisor"}
    verify = _cli("audit", "verify", env=as_person("demo-head"), timeout=300)
    assert verify.returncode == 0 and "intact" in verify.stdout, verify.stdout + verify.stderr
    shown = _cli("audit", "show", "--json", env=as_person("demo-head"), timeout=300)
    assert shown.returncode == 0, shown.stderr
    done = {(e["actor"], e["action"]) for e in json.loads(shown.stdout)}
    assert ("demo-head", "unlock") in done and ("demo-admin", "user.add") in done, sorted(done)
    assert any(actor == "demo-operator" for actor, _ in done), sorted(done)
    assert any(actor == "demo-head" and "seal" in action for actor, action in done), sorted(done)
    # nothing is sealed unverified: the operator closed the batch, the supervisor (shown every page) approved it
    assert ("demo-operator", "batch.close") in done and ("demo-supervisor", "batch.approve") in done, sorted(done)
    assert ("demo-supervisor", "page.view") in done, sorted(done)
    # the station's enrolment was the admin's (enrol --out, then --install of the demo portal's answer)
    assert {("demo-admin", "enrol.request"), ("demo-admin", "enrol.install")} <= done, sorted(done)
    assert (data / "enrolment" / "client-cert.pem").is_file()
    assert stat.S_IMODE((data / "demo-portal" / "tls" / "server.key").stat().st_mode) == 0o600

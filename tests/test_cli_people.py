"""The people commands end to end (real CLI processes): refusals exit 22 naming person, role and action;
the audit trail records them and verifies; the configuration the station runs with is audited."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from .stationkit import make_station


def test_an_operators_sign_off_type_calls_are_refused_with_the_permission_exit_code(tmp_path: Path) -> None:
    st = make_station(tmp_path / "st")
    for args in (("seal", "--batch", "B-1"), ("unlock",), ("users", "add", "eve", "--role", "admin"),
                 ("audit", "show"), ("upload",)):
        proc = st.run(*args, "--user", "op")
        assert proc.returncode == 22, (args, proc.stdout, proc.stderr)
        assert "op (operator) may not" in proc.stderr, proc.stderr
    admin_unlock = st.run("unlock", "--user", "admin")
    assert admin_unlock.returncode == 22 and "admin (admin) may not unlock" in admin_unlock.stderr
    shown = json.loads(st.run("audit", "show", "--json", "--user", "head", check=True).stdout)
    denied = [e for e in shown if e["action"] == "permission.denied"]
    assert len(denied) >= 6 and {e["actor"] for e in denied} == {"op", "admin"}
    verified = st.run("audit", "verify", "--user", "admin", check=True)
    assert "audit trail intact" in verified.stdout


def test_users_commands_and_the_configuration_audit(tmp_path: Path) -> None:
    st = make_station(tmp_path / "st")
    listed = json.loads(st.run("users", "list", "--json", check=True).stdout)
    assert {(p["name"], p["role"]) for p in listed} == {("admin", "admin"), ("head", "unit-head"),
                                                        ("sup", "supervisor"), ("sup2", "supervisor"),
                                                        ("op", "operator")}
    st.run("users", "disable", "op", check=True)
    refused = st.run("status", "--user", "op")
    assert refused.returncode == 23, refused.stderr
    st.run("users", "enable", "op", check=True)
    weak = tmp_path / "weak.txt"
    weak.write_text("password123\n")
    weak.chmod(0o600)
    st.env["SCANSTATION_NEW_PASSWORD_FILE"] = str(weak)
    proc = st.run("users", "add", "kiran", "--role", "operator")
    assert proc.returncode == 23 and "password" in proc.stderr and "password123" not in proc.stderr
    page = tmp_path / "page.png"
    Image.new("L", (850, 1100), 255).save(page, dpi=(100, 100))
    st.roster("UP-11-223344")
    st.run("import", "--batch", "B-2", "--employee", "UP-11-223344", "--period", "2015-16", "--no-wait", str(page),
           check=True)
    # the station file has an [upload] table already (stationkit: require_signoff = false): add to it
    st.config.write_text(st.config.read_text().replace("[upload]\n", "[upload]\nretention_hours = 1\n", 1))
    st.run("status", check=True)
    shown = json.loads(st.run("audit", "show", "--json", "--user", "sup", check=True).stdout)
    config_entries = [e["action"] for e in shown if e["subject"] == "configuration"]
    assert config_entries[0] == "config.first" and "config.changed" in config_entries
    # the supervisor sees personal fields of the entries (unlocked for the command); the admin does not
    opened = [e["personal"] for e in shown if e.get("personal")]
    assert {"employee_code": "UP-11-223344"}.items() <= next(
        p for p in opened if "employee_code" in p).items()
    admin_view = json.loads(st.run("audit", "show", "--json", "--user", "admin", check=True).stdout)
    assert not [e for e in admin_view if e.get("personal")]
    assert [e for e in admin_view if e["sealed"]]  # the admin sees that they exist, not what they say

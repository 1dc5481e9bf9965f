"""Test helpers: a fresh initialised station (real CLI, real keys, real people) and the portal identity.

A station here has five people, all with the password in ``password.txt``: ``admin`` (created by
``init``), ``head`` (the unit head, created by ``init --unit-head`` with a key slot), ``sup`` and
``sup2`` (supervisors, given a key slot at the first unlock) and ``op`` (an operator).  ``sup`` scans by
default, so ``sup2`` verifies (four eyes): :meth:`StationEnv.verify` takes a scanned batch to VERIFIED,
as nothing is sealed unverified.  Commands run as ``sup`` by
default, in-process (a supervisor's own key slot unlocks the station for the command); the commands
that only the unit head or the admin may run go as them (:data:`COMMAND_USERS`).  :meth:`StationEnv.serve`
starts ``scanstation serve`` instead, unlocked by the unit head, for tests of the running service.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "scanning room test words 2026"
PEOPLE = {"admin": "admin", "head": "unit-head", "sup": "supervisor", "sup2": "supervisor", "op": "operator"}
# Who runs a command when the test does not say (--user): the role the permission matrix wants.
COMMAND_USERS = {"seal": "head", "unseal": "head", "vault": "admin", "users": "admin", "signoff": "head"}


@dataclass
class StationEnv:
    root: Path
    config: Path
    data_dir: Path
    portal_identity_file: Path  # an age identity file for `age -d -i`
    env: dict[str, str]
    recovery_code: str = ""

    def _argv(self, args: tuple[str, ...]) -> list[str]:
        if "--user" in args or not args:
            return list(args)
        user = COMMAND_USERS.get(args[0])
        return [*args, "--user", user] if user else list(args)

    def run(self, *args: str, timeout: float = 300, check: bool = False) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "scanstation.cli.main", *self._argv(args)], env=self.env,
                              text=True, capture_output=True, timeout=timeout, cwd=REPO)
        if check and proc.returncode != 0:
            cmd = " ".join(args)
            raise AssertionError(f"scanstation {cmd} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def roster(self, *codes: str, names: dict[str, str] | None = None, user: str = "sup") -> None:
        """Import a roster naming these employee codes (``names``: code -> name, in either script; default
        "Person CODE"): ``--employee`` refuses a code the roster lacks, and files take the roster's name.
        A later call replaces the roster (people left out are kept, inactive)."""
        names = names or {}
        f = self.root / "roster.csv"
        f.write_text("Employee Code,Name,Rank,Unit\n"
                     + "".join(f"{code},{names.get(code, f'Person {code}')},SI,Test Unit\n" for code in codes),
                     encoding="utf-8")
        self.run("roster", "import", str(f), "--user", user, check=True)

    def verify(self, batch: str, *, closed_by: str = "sup", verifier: str = "sup2") -> None:
        """Take a scanned batch to VERIFIED the way a station does: ``closed_by`` (who scanned it) closes it,
        ``verifier`` gives every live page the verdict ok (scripted QC) and approves it."""
        import json

        self.run("batch", "close", "--batch", batch, "--user", closed_by, check=True)
        status = json.loads(self.run("status", "--batch", batch, "--json", "--user", verifier, check=True).stdout)
        pages = [str(p["seq"]) for p in status["batches"][0]["page_list"]
                 if not p["deleted"] and p["replaced_by"] is None]
        self.run("review", "--batch", batch, *(a for seq in pages for a in ("--page", seq)), "--verdict", "ok",
                 "--user", verifier, check=True)
        self.run("approve", "--batch", batch, "--user", verifier, check=True)

    def unlock(self) -> tuple[Any, Any]:
        """(config, unlocked station key) for driving a Station in this process (the unit head's slot)."""
        from scanstation.config import load_config
        from scanstation.people.accounts import People
        from scanstation.vault.key_slots import KeySlots

        config = load_config(self.config)
        people = People(config.data_dir / "people.db")
        try:
            return config, KeySlots(people).open_with_password("head", PASSWORD)
        finally:
            people.close()

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "scanstation.cli.main", *self._argv(args)], env=self.env,
                                text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)

    @contextmanager
    def serve(self, unlock_as: str | None = "head") -> Iterator[subprocess.Popen[str]]:
        """``scanstation serve`` running (unlocked by ``unlock_as``); stopped (SIGTERM) afterwards."""
        proc = subprocess.Popen([sys.executable, "-m", "scanstation.cli.main", "serve"], env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
        try:
            from scanstation.config import load_config

            sock = load_config(self.config).socket_path
            deadline = time.monotonic() + 60
            while not sock.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"scanstation serve did not start: {proc.communicate(timeout=5)}")
                time.sleep(0.05)
            if unlock_as:
                self.run("unlock", "--user", unlock_as, check=True)
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


def _no_signoff_required(text: str) -> str:
    """The station file with ``[upload] require_signoff = false`` (inside the file's ``[upload]`` table when it
    has one: TOML allows a table only once)."""
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.strip() == "[upload]":
            lines.insert(i + 1, "require_signoff = false\n")
            return "".join(lines)
    return text + "\n[upload]\nrequire_signoff = false\n"


def make_station(root: Path, *, ocr_languages: str = "eng", extra_env: dict[str, str] | None = None,
                 extra_config: str = "", init_args: tuple[str, ...] = (),
                 portal: pyrage.x25519.Identity | None = None, signoff: bool = False) -> StationEnv:
    """``portal``: the portal identity to encrypt to (e.g. a running receiver's); a fresh one by default.

    ``signoff``: the station requires the unit head's DSC sign-off before sealing (the production default);
    without it (most tests) ``[upload] require_signoff = false`` is written, so ``seal`` takes a verified batch.
    """
    root.mkdir(parents=True, exist_ok=True)
    portal = portal or pyrage.x25519.Identity.generate()
    portal_file = root / "portal-identity.txt"
    portal_file.write_text(f"{portal}\n")
    os.chmod(portal_file, 0o600)
    pass_file = root / "password.txt"
    pass_file.write_text(PASSWORD + "\n")
    os.chmod(pass_file, 0o600)
    config = root / "station.toml"
    data_dir = root / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCANSTATION_")}
    env.update({"SCANSTATION_CONFIG": str(config), "SCANSTATION_PASSWORD_FILE": str(pass_file),
                "SCANSTATION_NEW_PASSWORD_FILE": str(pass_file), "SCANSTATION_USER": "sup",
                "PYTHONPATH": str(REPO)})
    env.update(extra_env or {})
    st = StationEnv(root, config, data_dir, portal_file, env)
    init = st.run("init", "--config", str(config), "--data-dir", str(data_dir), "--admin", "admin",
                  "--unit-head", "head", "--portal-recipient", str(portal.to_public()), "--unit", "Test Unit",
                  *init_args, check=True)
    code = re.search(r"^\s+([A-Z2-7]{4}(?:-[A-Z2-7]{4}){7})\s*$", init.stdout, re.M)
    assert code, f"init printed no recovery code:\n{init.stdout}"
    st.recovery_code = code.group(1)
    recovery_file = root / "recovery.txt"
    recovery_file.write_text(st.recovery_code + "\n")
    os.chmod(recovery_file, 0o600)
    st.env["SCANSTATION_RECOVERY_FILE"] = str(recovery_file)
    with config.open("a") as f:
        f.write(f"\n[ocr]\nlanguages = \"{ocr_languages}\"\n{extra_config}")
    if not signoff:
        config.write_text(_no_signoff_required(config.read_text()))
    st.run("users", "add", "sup", "--role", "supervisor", check=True)
    st.run("users", "add", "sup2", "--role", "supervisor", check=True)
    st.run("users", "add", "op", "--role", "operator", check=True)
    st.run("unlock", "--user", "head", check=True)  # gives sup and sup2 a key slot
    return st

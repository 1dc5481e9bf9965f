"""Test helpers: a fresh initialised station (real CLI, real keys) and the portal identity that reads it."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage

REPO = Path(__file__).resolve().parents[1]


@dataclass
class StationEnv:
    root: Path
    config: Path
    data_dir: Path
    portal_identity_file: Path  # an age identity file for `age -d -i`
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 300, check: bool = False) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "scanstation.cli.main", *args], env=self.env, text=True,
                              capture_output=True, timeout=timeout, cwd=REPO)
        if check and proc.returncode != 0:
            cmd = " ".join(args)
            raise AssertionError(f"scanstation {cmd} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def unlock(self) -> tuple[Any, Any]:
        """(config, unlocked station key) for driving a Station in this process."""
        from scanstation.config import load_config
        from scanstation.vault.identity import read_passphrase, unlock_identity

        config = load_config(self.config)
        passphrase = read_passphrase(environ={"SCANSTATION_PASSPHRASE_FILE": self.env["SCANSTATION_PASSPHRASE_FILE"]})
        return config, unlock_identity(config.sealed_identity_path, passphrase)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "scanstation.cli.main", *args], env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)


def make_station(root: Path, *, ocr_languages: str = "eng", extra_env: dict[str, str] | None = None,
                 extra_config: str = "", init_args: tuple[str, ...] = (),
                 portal: pyrage.x25519.Identity | None = None) -> StationEnv:
    """``portal``: the portal identity to encrypt to (e.g. a running receiver's); a fresh one by default."""
    root.mkdir(parents=True, exist_ok=True)
    portal = portal or pyrage.x25519.Identity.generate()
    portal_file = root / "portal-identity.txt"
    portal_file.write_text(f"{portal}\n")
    os.chmod(portal_file, 0o600)
    pass_file = root / "passphrase.txt"
    pass_file.write_text("correct horse battery staple\n")
    os.chmod(pass_file, 0o600)
    config = root / "station.toml"
    data_dir = root / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCANSTATION_")}
    env.update({"SCANSTATION_CONFIG": str(config), "SCANSTATION_PASSPHRASE_FILE": str(pass_file),
                "PYTHONPATH": str(REPO)})
    env.update(extra_env or {})
    st = StationEnv(root, config, data_dir, portal_file, env)
    st.run("init", "--config", str(config), "--data-dir", str(data_dir),
           "--portal-recipient", str(portal.to_public()), "--unit", "Test Unit", *init_args, check=True)
    with config.open("a") as f:
        f.write(f"\n[ocr]\nlanguages = \"{ocr_languages}\"\n{extra_config}")
    return st

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

import contextlib
import json
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


# StationEnv.verify's commands, run by scanstation.cli.main.main in one interpreter (argv: batch, closed_by,
# verifier); a command that fails ends it with its output.
_VERIFIER = """
import contextlib, io, json, sys
from scanstation.cli.main import main

batch, closed_by, verifier = sys.argv[1:4]


def run(*argv):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(argv))
    if code != 0:
        sys.exit(f"scanstation {' '.join(argv)} exited {code}:\\n{out.getvalue()}")
    return out.getvalue()


run("batch", "close", "--batch", batch, "--user", closed_by)
status = json.loads(run("status", "--batch", batch, "--json", "--user", verifier))
pages = [str(p["seq"]) for p in status["batches"][0]["page_list"] if not p["deleted"] and p["replaced_by"] is None]
run("review", "--batch", batch, *(a for seq in pages for a in ("--page", seq)), "--verdict", "ok", "--user", verifier)
run("approve", "--batch", batch, "--user", verifier)
"""


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
        ``verifier`` gives every live page the verdict ok (scripted QC) and approves it.

        The four commands (``batch close``, ``status``, ``review``, ``approve``) run one after the other in one
        process (:data:`_VERIFIER`), each as ``scanstation`` runs it: this is every test's way to a verified
        batch, not a test of these commands (tests/test_cli_verification.py runs them each on their own)."""
        proc = subprocess.run([sys.executable, "-c", _VERIFIER, batch, closed_by, verifier], env=self.env,
                              text=True, capture_output=True, timeout=600, cwd=REPO)
        if proc.returncode != 0:
            raise AssertionError(f"verifying batch {batch} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")

    def unlock(self) -> tuple[Any, Any]:
        """(config, unlocked station key) for driving a Station in this process (the unit head's slot)."""
        from scanstation.config import load_config
        from scanstation.people.accounts import People
        from scanstation.people.passwords import PasswordHashing
        from scanstation.vault.key_slots import KeySlots

        from .peoplekit import CHEAP

        config = load_config(self.config)
        # the stations' own cost (tests/cheap_argon2): a sign-in at another cost would rehash the password
        people = People(config.data_dir / "people.db", hashing=PasswordHashing(CHEAP), key_params=CHEAP)
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


@dataclass(frozen=True)
class _Template:
    """A founded station built once in this test process, copied into each test's root (:func:`make_station`)."""

    root: Path  # its station.toml (as init wrote it) and data/
    config_text: str  # init's configuration, before make_station's [ocr] and [upload] additions
    recovery_code: str
    portal: pyrage.x25519.Identity


_TEMPLATES: dict[tuple[tuple[str, ...], str], _Template] = {}
_TEMPLATE_USERS: dict[tuple[tuple[str, ...], str], str] = {}  # template key -> the test that last got a copy
_TEMPLATE_DIR: list[Path] = []
_SESSION_PORTAL: list[pyrage.x25519.Identity] = []


def _template_dir() -> Path:
    """This process's directory of templates (each pytest-xdist worker has its own), removed when it exits."""
    if not _TEMPLATE_DIR:
        import atexit
        import shutil
        import tempfile

        path = Path(tempfile.mkdtemp(prefix="scanstation-templates-"))
        atexit.register(shutil.rmtree, path, True)
        _TEMPLATE_DIR.append(path)
    return _TEMPLATE_DIR[0]


def _session_portal() -> pyrage.x25519.Identity:
    """The portal identity of every station made without ``portal`` in this process (the first of each test)."""
    if not _SESSION_PORTAL:
        _SESSION_PORTAL.append(pyrage.x25519.Identity.generate())
    return _SESSION_PORTAL[0]


def _current_test() -> str:
    """The test being set up, run or torn down (pytest's PYTEST_CURRENT_TEST without the phase), or ''."""
    return os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]


# The founding, run in one process of its own (see _build_template): the real CLI commands a station's first
# day runs - init, users add x3, the unit head's first unlock - through scanstation.cli.main.main, as
# `scanstation ...` runs them.  One change: the service records no configuration entry
# (StationService.audit_config: "config.first" with the file's path and digest); each copy records its own at
# its first start, naming its own file, exactly as a station founded in place would.
_FOUNDER = """
import contextlib, io, json, sys
from scanstation.cli.main import main
from scanstation.service.core import StationService

assert callable(getattr(StationService, "audit_config", None)), "StationService.audit_config is gone"
StationService.audit_config = lambda self: None
steps, tail, config = json.loads(sys.argv[1])
printed = io.StringIO()
for n, argv in enumerate(steps):
    with contextlib.redirect_stdout(printed):
        code = main(argv)
    if code != 0:
        sys.exit(f"scanstation {' '.join(argv)} exited {code}:\\n{printed.getvalue()}")
    if n == 0:
        init_output = printed.getvalue()
        with open(config, "a", encoding="utf-8") as f:
            f.write(tail)
print(json.dumps(init_output))
"""


# First on the stations' PYTHONPATH: its sitecustomize gives their processes cheap argon2id parameters (see there).
CHEAP_ARGON2_SITE = Path(__file__).resolve().parent / "cheap_argon2"


def cheap_process_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` (which sets PYTHONPATH to the checkout) for a station process that tests nothing of the argon2id cost
    or of bytecode: cheap argon2id (:data:`CHEAP_ARGON2_SITE`), and our modules compiled once, not at every start.

    Each command is a fresh interpreter; with PYTHONDONTWRITEBYTECODE in the environment (as where this suite runs)
    it compiled ~105 of our modules from source every time, a fifth of a second.  The bytecode goes to the user's
    cache directory, not beside the sources and not under /tmp (tests/test_confidentiality.py searches /tmp for
    leaked plaintext, and compiled modules hold the PDF and PNG signatures they check for).
    """
    env = dict(env)
    env["PYTHONPATH"] = os.pathsep.join([str(CHEAP_ARGON2_SITE), *filter(None, [env.get("PYTHONPATH")])])
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    env["PYTHONPYCACHEPREFIX"] = str(cache / "scanstation-tests" / "pycache")
    return env


@contextmanager
def cheap_argon2_here() -> Iterator[None]:
    """While it lasts, this process's station code uses the test stations' argon2id cost (tests/cheap_argon2's, which
    is tests/peoplekit.py's CHEAP), for a test that drives a station's service in the test process: at the real cost
    each sign-in and unlock there took three argon2id runs, and the first also rehashed the password at the real
    cost (the stations are founded at the cheap one).  The real cost is restored afterwards (tests/test_people.py
    checks it in this process)."""
    from scanstation.people.passwords import DEFAULT_PARAMS

    from .peoplekit import CHEAP

    names = ("memory_kib", "time_cost", "parallelism")
    saved = {name: getattr(DEFAULT_PARAMS, name) for name in names}
    try:
        for name in names:
            object.__setattr__(DEFAULT_PARAMS, name, getattr(CHEAP, name))  # see tests/cheap_argon2/sitecustomize.py
        yield
    finally:
        for name, value in saved.items():
            object.__setattr__(DEFAULT_PARAMS, name, value)


def _station_env(root: Path, config: Path, pass_file: Path, extra_env: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCANSTATION_")}
    env.update({"SCANSTATION_CONFIG": str(config), "SCANSTATION_PASSWORD_FILE": str(pass_file),
                "SCANSTATION_NEW_PASSWORD_FILE": str(pass_file), "SCANSTATION_USER": "sup",
                "PYTHONPATH": str(REPO)})
    env = cheap_process_env(env)
    env.update(extra_env or {})
    return env


def _build_template(root: Path, init_args: tuple[str, ...], portal: pyrage.x25519.Identity) -> _Template:
    """Found a station in ``root`` as make_station always did (init, users add sup/sup2/op, the unit head's
    unlock), in one process instead of five."""
    root.mkdir(parents=True)
    pass_file = root / "password.txt"
    pass_file.write_text(PASSWORD + "\n")
    os.chmod(pass_file, 0o600)
    config = root / "station.toml"
    env = _station_env(root, config, pass_file, None)
    init = ["init", "--config", str(config), "--data-dir", str(root / "data"), "--admin", "admin",
            "--unit-head", "head", "--portal-recipient", str(portal.to_public()), "--unit", "Test Unit", *init_args]
    users = [["users", "add", name, "--role", role, "--user", "admin"]
             for name, role in (("sup", "supervisor"), ("sup2", "supervisor"), ("op", "operator"))]
    steps = [init, *users, ["unlock", "--user", "head"]]  # the unlock gives sup and sup2 a key slot
    # what make_station adds to every station file (its own [ocr] and [upload] replace these in a copy)
    tail = '\n[ocr]\nlanguages = "eng"\n\n[upload]\nrequire_signoff = false\n'
    proc = subprocess.run([sys.executable, "-c", _FOUNDER, json.dumps([steps, tail, str(config)])], env=env,
                          text=True, capture_output=True, timeout=600, cwd=REPO)
    if proc.returncode != 0:
        raise AssertionError(f"founding a station failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    init_output = json.loads(proc.stdout.strip().splitlines()[-1])
    code = re.search(r"^\s+([A-Z2-7]{4}(?:-[A-Z2-7]{4}){7})\s*$", init_output, re.M)
    assert code, f"init printed no recovery code:\n{init_output}"
    import sqlite3

    with contextlib.closing(sqlite3.connect(f"file:{root / 'data' / 'audit.db'}?mode=ro", uri=True)) as db:
        recorded = db.execute("SELECT count(*) FROM entries WHERE subject = 'configuration'").fetchone()[0]
    assert recorded == 0, "the founding recorded the template's configuration: copies would name its file"
    from .peoplekit import CHEAP

    cheap = f"$argon2id$v=19$m={CHEAP.memory_kib},t={CHEAP.time_cost},p={CHEAP.parallelism}$"
    with contextlib.closing(sqlite3.connect(f"file:{root / 'data' / 'people.db'}?mode=ro", uri=True)) as db:
        hashes = [phc for (phc,) in db.execute("SELECT password_hash FROM people")]
    assert hashes and all(h.startswith(cheap) for h in hashes), f"not founded at tests/cheap_argon2's cost: {hashes}"
    text = config.read_text(encoding="utf-8")
    return _Template(root, text[:len(text) - len(tail)] if text.endswith(tail) else text, code.group(1), portal)


def _template(init_args: tuple[str, ...], portal: pyrage.x25519.Identity | None, fresh: bool) -> _Template:
    """The founded station to copy: this process's template for (init_args, portal), or a new one when the
    caller asks for ``fresh``, or when the running test already has a copy of it (stations made in one test
    have distinct keys, and without ``portal`` distinct portal identities, as stations founded apart do)."""
    test = _current_test()
    shared_portal = portal or _session_portal()
    key = (init_args, str(shared_portal.to_public()))
    if not fresh and (key not in _TEMPLATES or _TEMPLATE_USERS.get(key) != test or not test):
        if key not in _TEMPLATES:
            _TEMPLATES[key] = _build_template(_template_dir() / f"t{len(_TEMPLATES)}", init_args, shared_portal)
        _TEMPLATE_USERS[key] = test
        return _TEMPLATES[key]
    own = _template_dir() / f"once-{os.urandom(6).hex()}"
    return _build_template(own, init_args, portal or pyrage.x25519.Identity.generate())


def make_station(root: Path, *, ocr_languages: str = "eng", extra_env: dict[str, str] | None = None,
                 extra_config: str = "", init_args: tuple[str, ...] = (),
                 portal: pyrage.x25519.Identity | None = None, signoff: bool = False,
                 fresh: bool = False) -> StationEnv:
    """A founded station in ``root``: ``scanstation init`` (admin, unit head ``head``), ``users add`` sup, sup2
    and op, the unit head's first unlock (sup's and sup2's key slots); then the station file gets ``[ocr]
    languages`` and ``extra_config``.

    ``portal``: the portal identity to encrypt to (e.g. a running receiver's); by default one identity shared
    by this test process's stations (a second station of the same test gets a fresh one).

    ``signoff``: the station requires the unit head's DSC sign-off before sealing (the production default);
    without it (most tests) ``[upload] require_signoff = false`` is written, so ``seal`` takes a verified batch.

    The founding (five CLI commands, a few seconds of argon2 and imports) runs once per test process for each
    (init_args, portal): each station is a copy of that founded one (its data directory, its configuration with
    this root's paths), so stations of different tests share their station key and recovery code.  Stations
    made in the same test never do; ``fresh``: found this one on its own anyway.
    """
    import shutil

    template = _template(init_args, portal, fresh)
    root.mkdir(parents=True, exist_ok=True)
    portal_file = root / "portal-identity.txt"
    portal_file.write_text(f"{template.portal}\n")
    os.chmod(portal_file, 0o600)
    pass_file = root / "password.txt"
    pass_file.write_text(PASSWORD + "\n")
    os.chmod(pass_file, 0o600)
    config = root / "station.toml"
    data_dir = root / "data"
    shutil.copytree(template.root / "data", data_dir, symlinks=True)  # nothing in it names its own path
    text = template.config_text.replace(str(template.root), str(root))
    text += f"\n[ocr]\nlanguages = \"{ocr_languages}\"\n{extra_config}"
    config.touch(mode=0o600)
    shutil.copymode(template.root / "station.toml", config)
    config.write_text(text if signoff else _no_signoff_required(text), encoding="utf-8")
    st = StationEnv(root, config, data_dir, portal_file, _station_env(root, config, pass_file, extra_env),
                    template.recovery_code)
    recovery_file = root / "recovery.txt"
    recovery_file.write_text(st.recovery_code + "\n")
    os.chmod(recovery_file, 0o600)
    st.env["SCANSTATION_RECOVERY_FILE"] = str(recovery_file)
    return st

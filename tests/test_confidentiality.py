"""After a full demo batch nothing readable lies on disk: no image/PDF signatures, no OCR'd text.

The station's plaintext working files live in its private RAM directory, ``<base>/scanstation-<pid>-<hex12>``
(scanstation/vault/ramdir.py; base /dev/shm, else $XDG_RUNTIME_DIR), named after the station process's
own PID.  The demo runs as a child process here, so these tests watch that child's directory (and those
of its descendants) while it runs - it must exist and be used - and check that it is gone afterwards.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from scanstation.vault.ramdir import candidate_bases

from .stationkit import REPO, cheap_process_env, make_station

SIGNATURES = {
    "PNG": b"\x89PNG\r\n\x1a\n",
    "TIFF-LE": b"II*\x00",
    "TIFF-BE": b"MM\x00*",
    "JPEG": b"\xff\xd8\xff",
    "PDF": b"%PDF-",
    "PNM-P4": b"P4\n",
    "PNM-P5": b"P5\n",
    "PNM-P6": b"P6\n",
}


def _files(root: Path, since: float | None):  # type: ignore[no-untyped-def]
    # Stay on root's filesystem (like find -xdev): a station's temp file lands there, while a mount below
    # /tmp (say a throw-away chroot with its /proc, whose kmsg blocks on read) holds nothing of the station.
    try:
        root_dev = root.stat().st_dev
    except OSError:
        return
    for dirpath, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if _same_device(Path(dirpath) / d, root_dev)]
        for n in names:
            p = Path(dirpath) / n
            try:
                st = p.lstat()
            except OSError:
                continue
            if not p.is_file() or p.is_symlink():
                continue
            if since is not None and st.st_mtime < since and st.st_ctime < since:
                continue
            yield p


def _same_device(path: Path, dev: int) -> bool:
    try:
        return path.lstat().st_dev == dev
    except OSError:
        return False


def _leaks_in(f: Path, sentences: list[bytes]) -> list[str]:
    """What in file ``f`` looks like plaintext: an image/PDF signature or a sentence that was OCR'd."""
    try:
        data = f.read_bytes()
    except OSError:
        return []
    found = []
    for name, sig in SIGNATURES.items():
        # short signatures only at the start (random ciphertext contains 3-byte runs by chance)
        if data.startswith(sig) or (name in ("PNG", "PDF") and sig in data):
            found.append(f"{f}: {name} signature")
    for s in sentences[:200]:
        if s in data:
            found.append(f"{f}: OCR text {s[:40]!r}")
            break
    return found


RAM_DIR_NAME = re.compile(r"^scanstation(?:-[A-Za-z0-9_.]+)?-(\d+)-[0-9a-f]{12}$")


def _ram_bases(env: Mapping[str, str]) -> list[Path]:
    """Where a station process with environment ``env`` may put its RAM directory."""
    return candidate_bases(env)


def _process_tree(pid: int) -> set[int]:
    """``pid`` and its live descendants (OCR workers, the demo receiver), from /proc."""
    tree, todo = set(), [pid]
    while todo:
        p = todo.pop()
        if p in tree:
            continue
        tree.add(p)
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                todo += [int(c) for c in Path(f"/proc/{p}/task/{t}/children").read_text().split()]
            except OSError:
                continue
    return tree


@dataclass
class WatchedRun:
    """A station command run as a child process, with what was seen of its RAM directories."""

    pid: int
    returncode: int
    stdout: str
    stderr: str
    # RAM directories named after the station process or a descendant -> file names seen in them
    ram_dirs: dict[Path, set[str]] = field(default_factory=dict)
    ram_dir_modes: dict[Path, int] = field(default_factory=dict)

    def station_dirs(self) -> list[Path]:
        """The RAM directories that carry the station process's own PID."""
        return [d for d in self.ram_dirs if d.name.startswith(f"scanstation-{self.pid}-")]


def _run_watching_ram_dirs(args: Sequence[str], env: Mapping[str, str], logs: Path, timeout: float) -> WatchedRun:
    """Run ``python -m scanstation.cli.main ARGS`` and poll its RAM directory (and its children's) while it runs."""
    logs.mkdir(parents=True, exist_ok=True)
    out_path, err_path = logs / "stdout.txt", logs / "stderr.txt"
    bases = _ram_bases(env)
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "scanstation.cli.main", *args], env=dict(env), cwd=REPO,
                                stdout=out, stderr=err, text=True)
        run = WatchedRun(proc.pid, -1, "", "")
        deadline = time.monotonic() + timeout
        try:
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{' '.join(args)} still running after {timeout} s")
                pids = _process_tree(proc.pid)
                for base in bases:
                    try:
                        entries = list(os.scandir(base))
                    except OSError:
                        continue
                    for entry in entries:
                        m = RAM_DIR_NAME.match(entry.name)
                        if m is None or int(m.group(1)) not in pids:
                            continue
                        d = Path(entry.path)
                        names = run.ram_dirs.setdefault(d, set())
                        try:
                            run.ram_dir_modes.setdefault(d, entry.stat(follow_symlinks=False).st_mode & 0o777)
                            names.update(os.listdir(d))
                        except OSError:
                            pass  # removed meanwhile
                time.sleep(0.02)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    run.returncode = proc.returncode
    run.stdout, run.stderr = out_path.read_text(), err_path.read_text()
    return run


def _assert_ram_dirs_used_and_removed(run: WatchedRun, env: Mapping[str, str], sentences: list[bytes]) -> None:
    """The station process had its own private RAM directory, worked in it, and removed it on exit.

    Fails if the directory was never seen (then this test would be looking in the wrong place), if
    nothing was ever written there, or if it - or any RAM directory of a descendant process - is still
    there after the station exited (listing any plaintext left in it).
    """
    where = ", ".join(str(b) for b in _ram_bases(env))
    mine = run.station_dirs()
    assert mine, (f"never saw the station process's RAM directory scanstation-{run.pid}-* in {where} while it "
                  f"ran (saw: {sorted(map(str, run.ram_dirs))})")
    assert any(run.ram_dirs[d] for d in mine), f"the station never wrote a working file to {mine}"
    assert all(run.ram_dir_modes.get(d) == 0o700 for d in mine), {str(d): oct(m) for d, m in run.ram_dir_modes.items()}
    left = sorted({d for d in run.ram_dirs if d.exists()}
                  | {p for b in _ram_bases(env) for p in b.glob(f"scanstation*-{run.pid}-*")})
    leaks = [leak for d in left for f in _files(d, None) for leak in _leaks_in(f, sentences)]
    assert not left, (f"RAM directories left after the station process {run.pid} exited: "
                      f"{[str(d) for d in left]}; plaintext in them: {leaks[:20]}")


def _age_decrypt(identity: Path, obj: Path) -> bytes:
    return subprocess.run(["age", "-d", "-i", str(identity), str(obj)], check=True, capture_output=True).stdout


@pytest.mark.slow
def test_no_plaintext_after_demo(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    # a training station: the demo's synthetic pages never go into a production one
    st = make_station(tmp_path / "st", ocr_languages="hin+eng", init_args=("--training",))
    st.env["TMPDIR"] = "/tmp"  # a leak through tempfile would land in /tmp, which we scan
    start = time.time() - 1
    proc = _run_watching_ram_dirs(["--config", str(st.config), "demo", "--files", "2", "--pages", "2"], st.env,
                                  st.root / "logs", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "vault verified" in proc.stdout

    # Collect the OCR'd text (decrypting with the portal identity) to search for it in plaintext.
    objects = sorted((st.data_dir / "vault").rglob("*.age"))
    assert objects, "demo stored no objects"
    sentences: list[bytes] = []
    kinds = {"png": 0, "pdf": 0, "text": 0}
    for obj in objects:
        plain = _age_decrypt(st.portal_identity_file, obj)
        if plain.startswith(SIGNATURES["PNG"]):
            kinds["png"] += 1
        elif plain.startswith(SIGNATURES["PDF"]):
            kinds["pdf"] += 1
        else:
            kinds["text"] += 1
            for line in plain.decode("utf-8", "replace").splitlines():
                line = line.strip()
                if len(line) >= 16:
                    sentences.append(line.encode("utf-8"))
    assert kinds["png"] >= 8 and kinds["pdf"] >= 2  # raw + cleaned per page; one PDF per ACR file
    assert sentences, "no OCR text found in the vault"

    pytest_root = tmp_path_factory.getbasetemp().parent.parent
    roots = [(st.data_dir, None), (Path("/tmp"), start), (Path("/var/tmp"), start)]
    leaks = []
    for root, since in roots:
        for f in _files(root, since):
            if f.is_relative_to(st.root) and not f.is_relative_to(st.data_dir):
                continue  # the test's own key and passphrase files, not the station's
            if f.is_relative_to(pytest_root) and not f.is_relative_to(st.data_dir):
                # other tests' inputs (running in parallel); the demo's TMPDIR is /tmp itself, so a
                # leak from the station would land outside this tree
                continue
            leaks.extend(_leaks_in(f, sentences))
    assert not leaks, "\n".join(leaks[:20])
    # the station process's private RAM directory held its working files and is gone once it stopped
    _assert_ram_dirs_used_and_removed(proc, st.env, sentences)


@pytest.mark.slow
def test_demo_full_flow_leaves_no_plaintext_at_station_or_receiver(tmp_path: Path) -> None:
    """`scanstation demo` on a fresh demo station: scan, seal, upload to the local reference receiver,
    verify the receipt.  Afterwards neither the station's nor the receiver's data holds a readable page."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCANSTATION_")}
    env.update({"HOME": str(home), "PYTHONPATH": str(REPO), "TMPDIR": "/tmp"})
    env = cheap_process_env(env)  # the demo's people at a cheap argon2id cost, our modules compiled once
    proc = _run_watching_ram_dirs(["demo", "--files", "1", "--pages", "2"], env, tmp_path / "logs", timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "signed receipt" in proc.stdout and "verified" in proc.stdout, proc.stdout
    data_dir = home / ".local" / "share" / "scanstation"
    portal_dir = data_dir / "demo-portal"
    identity = portal_dir / "DEMO-ONLY-portal-identity.txt"
    stored = sorted((portal_dir / "store").rglob("*.age"))
    assert stored, "the receiver stored nothing"
    sentences: list[bytes] = []
    for obj in stored:
        plain = _age_decrypt(identity, obj)
        if not plain.startswith((SIGNATURES["PNG"], SIGNATURES["PDF"])) and not plain.startswith(b"{"):
            sentences += [ln.strip().encode() for ln in plain.decode("utf-8", "replace").splitlines()
                          if len(ln.strip()) >= 16]
    assert sentences, "no OCR text reached the receiver"
    leaks = []
    for f in _files(home, None):
        leaks.extend(_leaks_in(f, sentences))
    assert not leaks, "\n".join(leaks[:20])
    _assert_ram_dirs_used_and_removed(proc, env, sentences)
    # a second demo run uses a new batch (the first is sealed and uploaded) and succeeds again
    again = subprocess.run([sys.executable, "-m", "scanstation.cli.main", "demo", "--files", "1", "--pages", "1"],
                           env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and "demo-2026-2" in again.stdout, again.stdout + again.stderr

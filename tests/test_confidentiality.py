"""After a full demo batch nothing readable lies on disk: no image/PDF signatures, no OCR'd text."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .stationkit import REPO, make_station

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
    for dirpath, _dirs, names in os.walk(root):
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


def _age_decrypt(identity: Path, obj: Path) -> bytes:
    return subprocess.run(["age", "-d", "-i", str(identity), str(obj)], check=True, capture_output=True).stdout


@pytest.mark.slow
def test_no_plaintext_after_demo(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    # a training station: the demo's synthetic pages never go into a production one
    st = make_station(tmp_path / "st", ocr_languages="hin+eng", init_args=("--training",))
    st.env["TMPDIR"] = "/tmp"  # a leak through tempfile would land in /tmp, which we scan
    start = time.time() - 1
    proc = st.run("--config", str(st.config), "demo", "--files", "2", "--pages", "2", timeout=600)
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
    # the private RAM directory is gone once the station stopped
    assert not [p for p in Path("/dev/shm").glob("scanstation*") if str(os.getpid()) in p.name]


@pytest.mark.slow
def test_demo_full_flow_leaves_no_plaintext_at_station_or_receiver(tmp_path: Path) -> None:
    """`scanstation demo` on a fresh demo station: scan, seal, upload to the local reference receiver,
    verify the receipt.  Afterwards neither the station's nor the receiver's data holds a readable page."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCANSTATION_")}
    env.update({"HOME": str(home), "PYTHONPATH": str(REPO), "TMPDIR": "/tmp"})
    proc = subprocess.run([sys.executable, "-m", "scanstation.cli.main", "demo", "--files", "1", "--pages", "2"],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
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
    # a second demo run uses a new batch (the first is sealed and uploaded) and succeeds again
    again = subprocess.run([sys.executable, "-m", "scanstation.cli.main", "demo", "--files", "1", "--pages", "1"],
                           env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and "demo-2026-2" in again.stdout, again.stdout + again.stderr

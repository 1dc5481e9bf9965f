"""Acceptance: scanning through the real SANE `test` and `pnm` back ends with the CLI, end to end."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from scanstation.errors import PaperJam

from .corpus import corpus_file
from .sane_env import sane_test_env
from .stationkit import StationEnv, make_station


def _station(tmp_path: Path) -> StationEnv:
    return make_station(tmp_path / "st", ocr_languages="eng", extra_env=sane_test_env(tmp_path))


def _pages(st: StationEnv, batch: str) -> list[dict]:  # type: ignore[type-arg]
    data = json.loads(st.run("status", "--batch", batch, "--json", check=True).stdout)
    return data["batches"][0]["page_list"]  # type: ignore[no-any-return]


def _decrypt(st: StationEnv, obj_id: str) -> bytes:
    [path] = list((st.data_dir / "vault").rglob(f"{obj_id}.age"))
    assert path.read_bytes().startswith(b"age-encryption.org/v1\n")
    return subprocess.run(["age", "-d", "-i", str(st.portal_identity_file), str(path)], check=True,
                          capture_output=True).stdout


def _audit(st: StationEnv, subject: str) -> list[tuple[str, dict]]:  # type: ignore[type-arg]
    """(action, detail) of the station's audit entries about ``subject``, oldest first (read-only)."""
    db = sqlite3.connect(f"file:{st.data_dir / 'audit.db'}?mode=ro", uri=True)  # the audit trail (issue 13)
    try:
        rows = db.execute("SELECT action, detail FROM entries WHERE subject = ? ORDER BY seq", (subject,)).fetchall()
    finally:
        db.close()
    return [(action, json.loads(detail)) for action, detail in rows]


ACK = re.compile(r"^acknowledged page (\d+) of batch (\S+) \((.*)\) \[(.+)\]$", re.M)
SCAN_KEY = re.compile(r"sane:test:0:([0-9a-f]{32}):(\d+)")


def _scan_key(key: str) -> tuple[str, int]:
    """(scan id, sheet index within that scan) of a SANE page's source key."""
    m = SCAN_KEY.fullmatch(key)
    assert m, key
    return m.group(1), int(m.group(2))


def test_adf_batch_of_ten_then_jam(tmp_path: Path) -> None:
    """A clean ADF batch of ten; then a paper jam on the 4th sheet, and the batch resumed afterwards.

    SANE's ``test`` back end feeds ten identical sheets (the Grid picture) on every scan: it does not
    remember what an earlier scan took.  ``page4:read-return-value=SANE_STATUS_JAMMED`` fails the read
    of the 4th sheet.  What happens, and is asserted:

    * Jammed scan: sheets 1-3 are acknowledged and stored as pages 1-3; the 4th sheet delivered nothing
      and no page is stored for it.  stdout has the three acknowledgements and "batch JAM1: 3 page(s)
      acknowledged"; stderr names the device, the jam in English and Hindi (what to do: take the jammed
      sheet out, put it back on top of the stack, resume) and where ("sheet 4, read"); exit code 12
      (PaperJam).  The batch stays open ("scanning") and its audit trail records the fault with
      pages_received 3.
    * Resumed scan (``scan --batch JAM1`` again): a new scan session appends whatever the feeder gives
      after the kept pages - here ten more sheets, stored as pages 4-13 (their labels count from "page 1"
      again, within the new scan), exit code 0.  Pages 1-3 are not stored again nor changed (same ids,
      source keys and hashes); every page has its own source key (scan id + sheet index), so the batch
      holds 13 pages, numbered 1-13 without a gap or a repeat.  The station does not merge pages by
      content: the resumed Grid sheets are pixel-identical to the kept ones and are stored all the
      same.  Which sheets go back into the feeder is the operator's call, as the message says.
    """
    st = _station(tmp_path)
    proc = st.run("scan", "--device", "test:0", "--source", "adf", "--resolution", "150",
                  "--option", "test-picture=Grid", "--batch", "ADF1", "--no-wait")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("acknowledged page") == 10
    pages = _pages(st, "ADF1")
    assert [p["seq"] for p in pages] == list(range(1, 11))
    assert all(p["device"] == "test:0" for p in pages)
    for p in pages:
        raw = next(o for o in p["objects"] if o["kind"] == "raw")
        plain = _decrypt(st, raw["id"])
        assert hashlib.sha256(plain).hexdigest() == raw["sha256"] == p["raw_sha256"]

    # A jam on the 4th sheet: pages 1-3 are kept, the CLI names the paper jam and exits 12.
    proc = st.run("scan", "--device", "test:0", "--source", "adf", "--resolution", "150",
                  "--option", "test-picture=Grid", "--option", "page4:read-return-value=SANE_STATUS_JAMMED",
                  "--batch", "JAM1", "--no-wait")
    assert proc.returncode == 12 == PaperJam.exit_code, proc.stdout + proc.stderr
    assert "Paper jam" in proc.stderr and "कागज़ फँस गया" in proc.stderr
    assert proc.stderr.startswith(f"scanstation: test:0: {PaperJam.message_en} / {PaperJam.message_hi}"), proc.stderr
    assert "(sheet 4, read)" in proc.stderr, proc.stderr
    assert proc.stdout.count("acknowledged page") == 3
    acks = ACK.findall(proc.stdout)
    assert [(int(seq), batch, label) for seq, batch, label, _key in acks] == [
        (n, "JAM1", f"test:0 page {n}") for n in (1, 2, 3)]
    assert proc.stdout.rstrip().endswith("batch JAM1: 3 page(s) acknowledged"), proc.stdout
    kept = _pages(st, "JAM1")
    assert len(kept) == 3
    assert [p["seq"] for p in kept] == [1, 2, 3]
    assert [p["source_key"] for p in kept] == [key for *_rest, key in acks]
    jam_scan = {_scan_key(p["source_key"])[0] for p in kept}
    assert len(jam_scan) == 1
    assert [_scan_key(p["source_key"])[1] for p in kept] == [0, 1, 2]
    status = json.loads(st.run("status", "--batch", "JAM1", "--json", check=True).stdout)["batches"][0]
    assert status["state"] == "scanning"  # still open: the batch can be resumed
    audit = _audit(st, "JAM1")
    faults = [d for action, d in audit if action == "scan.device_error"]
    assert len(faults) == 1, audit
    assert {k: v for k, v in faults[0].items() if k != "detail"} == {"device": "test:0", "error": "PaperJam",
                                                                      "pages_received": 3}
    assert "sheet 4" in faults[0]["detail"], faults
    assert [d for action, d in audit if action == "scan.end"] == [{"acknowledged": 3, "duplicates": 0}]

    # Resuming the same batch after clearing the jam: the new scan's sheets follow the kept pages.  (The
    # test back end feeds ten fresh Grid sheets; on a real scanner the re-fed jammed sheet is page 4.)
    proc = st.run("scan", "--device", "test:0", "--source", "adf", "--resolution", "150",
                  "--option", "test-picture=Grid", "--batch", "JAM1", "--no-wait")
    assert proc.returncode == 0, proc.stderr
    acks = ACK.findall(proc.stdout)
    assert [(int(seq), label) for seq, _batch, label, _key in acks] == [
        (n + 3, f"test:0 page {n}") for n in range(1, 11)]
    assert proc.stdout.rstrip().endswith("batch JAM1: 10 page(s) acknowledged"), proc.stdout  # none "already stored"
    assert "already stored" not in proc.stdout
    pages = _pages(st, "JAM1")
    assert [p["seq"] for p in pages] == list(range(1, 14))
    keys = [p["source_key"] for p in pages]
    assert len(set(keys)) == len(keys) == 13  # no page stored twice
    same = ("id", "seq", "source_key", "raw_sha256", "image_sha256")
    assert [{k: p[k] for k in same} for p in pages[:3]] == [{k: p[k] for k in same} for p in kept]
    resumed = [_scan_key(k) for k in keys[3:]]
    resume_scan = {scan for scan, _index in resumed}
    assert len(resume_scan) == 1 and not resume_scan & jam_scan  # one new scan session
    assert [index for _scan, index in resumed] == list(range(10))
    # identical sheets are stored again, not merged by content
    assert {p["raw_sha256"] for p in pages[3:]} == {p["raw_sha256"] for p in kept}
    assert [d for action, d in _audit(st, "JAM1") if action == "scan.end"][-1] == {"acknowledged": 10,
                                                                                   "duplicates": 0}
    assert st.run("verify-vault").returncode == 0


@pytest.mark.parametrize(("status", "code", "needle"), [
    ("SANE_STATUS_NO_DOCS", 11, "feeder is empty"),
    ("SANE_STATUS_COVER_OPEN", 13, "cover is open"),
    ("SANE_STATUS_IO_ERROR", 15, "not responding"),
])
def test_device_faults_exit_codes(tmp_path: Path, status: str, code: int, needle: str) -> None:
    st = _station(tmp_path)
    proc = st.run("scan", "--device", "test:0", "--source", "adf", "--resolution", "75",
                  "--option", f"read-return-value={status}", "--batch", "F", "--no-wait")
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert needle in proc.stderr


def test_unknown_device(tmp_path: Path) -> None:
    st = _station(tmp_path)
    proc = st.run("scan", "--device", "nosuch:0", "--batch", "X", "--no-wait")
    assert proc.returncode == 16, proc.stderr


@pytest.mark.slow
def test_corpus_page_through_pnm_is_analysed_ocrd_and_decryptable(tmp_path: Path) -> None:
    st = _station(tmp_path)
    src = tmp_path / "page.pgm"
    Image.open(corpus_file("tess_phototest.tif")).convert("L").save(src)
    proc = st.run("scan", "--device", "pnm:0", "--option", f"filename={src}", "--batch", "PNM1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [page] = _pages(st, "PNM1")
    assert page["state"] == "processed" and page["ocr"] == "done"
    assert "orientation" in page["analysis"] and "skew" in page["analysis"]
    kinds = {o["kind"]: o for o in page["objects"]}
    assert set(kinds) == {"raw", "image", "compact", "ocr_text", "ocr_pdf"}
    for obj in kinds.values():
        plain = _decrypt(st, obj["id"])
        assert hashlib.sha256(plain).hexdigest() == obj["sha256"]
    text = _decrypt(st, kinds["ocr_text"]["id"]).decode("utf-8")
    assert "quick brown" in text and "lazy fox" in text
    assert _decrypt(st, kinds["image"]["id"]).startswith(b"\x89PNG")

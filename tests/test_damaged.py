"""One damaged vault object: its page is flagged "damaged - rescan", the rest of the batch is processed, and
no command hangs.  Unlisted vault objects are reported (start, verify-vault), never deleted; only the
audited ``vault quarantine`` moves them aside.

Real vault, real station, real tesseract (language eng); one byte of one object is flipped on disk.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from scanstation_tools.synth import PageSpec, render_acr_page
from tests.stationkit import StationEnv, make_station

PAGES = 4
VICTIM = 2  # the seq of the page whose object is damaged
FAST = 120  # seconds: every command here finishes far sooner, or it hangs
PIPELINE = "\n[pipeline]\nwait_timeout_seconds = 90.0\n"


def _pages(tmp: Path, n: int = PAGES) -> list[str]:
    files = []
    for i in range(n):
        f = tmp / f"page-{i}.png"
        render_acr_page(PageSpec(seed=300 + i, page_no=1 + i, dpi=120)).image.save(f, dpi=(120, 120))
        files.append(str(f))
    return files


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _object_path(st: StationEnv, object_id: str) -> Path:
    return st.data_dir / "vault" / "objects" / object_id[:2] / f"{object_id}.age"


def _page_list(st: StationEnv, batch: str) -> list[dict[str, Any]]:
    status = json.loads(st.run("status", "--batch", batch, "--json", check=True, timeout=FAST).stdout)
    pages: list[dict[str, Any]] = status["batches"][0]["page_list"]
    return pages


def _audit(st: StationEnv, action: str) -> list[dict[str, Any]]:
    """The details of the audit trail's entries of one action, oldest first."""
    db = sqlite3.connect(f"file:{st.data_dir / 'audit.db'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT detail FROM entries WHERE action = ? ORDER BY seq", (action,)).fetchall()
    finally:
        db.close()
    return [json.loads(d) for (d,) in rows]


def _assert_fails_naming_victim(st: StationEnv, *args: str) -> str:
    proc = st.run(*args, timeout=FAST)
    assert proc.returncode == 6, (args, proc.returncode, proc.stdout, proc.stderr)  # VaultIntegrityError
    assert f"page {VICTIM} " in proc.stderr and "rescan" in proc.stderr, proc.stderr
    return proc.stderr


def _assert_approval_refused_naming_victim(st: StationEnv, batch: str) -> None:
    """Nothing is sealed unverified, and a batch with a damaged page cannot be approved: it names the page."""
    st.run("batch", "close", "--batch", batch, check=True, timeout=FAST)
    pages = [str(p["seq"]) for p in _page_list(st, batch)]
    st.run("review", "--batch", batch, *(a for seq in pages for a in ("--page", seq)), "--verdict", "ok",
           "--user", "sup2", check=True, timeout=FAST)
    proc = st.run("approve", "--batch", batch, "--user", "sup2", timeout=FAST)
    assert proc.returncode == 29, (proc.returncode, proc.stdout, proc.stderr)  # VerificationIncomplete
    assert f"damaged page(s) to be rescanned: {VICTIM}" in proc.stderr, proc.stderr
    seal = st.run("seal", "--batch", batch, timeout=FAST)
    assert seal.returncode == 7 and "only a verified batch" in seal.stderr, seal.stderr


def _assert_rest_processed(pages: list[dict[str, Any]]) -> None:
    victim = next(p for p in pages if p["seq"] == VICTIM)
    assert "damaged" in victim["flags"] and victim["ocr"] == "failed"
    assert "rescan" in victim["analysis"]["damage"]["message_en"]
    rest = [p for p in pages if p["seq"] != VICTIM]
    assert len(rest) == PAGES - 1
    assert all(p["state"] == "processed" and p["ocr"] == "done" and "damaged" not in p["flags"] for p in rest), rest


@pytest.mark.timeout(900)
def test_damaged_raw_object_before_cleaning(tmp_path: Path) -> None:
    """The raw capture of page 2 is damaged before the analysis thread reads it back from the vault."""
    from drivers.base import CancelToken, ColorMode, ScanSettings, Source
    from drivers.registry import get_driver
    from scanstation.facade import Station

    st = make_station(tmp_path / "st", extra_config=PIPELINE)
    files = _pages(tmp_path)
    config, key = st.unlock()
    events: list[tuple[str, dict[str, Any]]] = []
    station = Station(config, key, events=lambda kind, data: events.append((kind, data)))
    try:
        gate = threading.Event()
        clean = station._process

        def after_the_gate(page_id: int, image: Any) -> None:
            gate.wait(FAST)
            clean(page_id, None)  # read back from the vault, as after a restart

        station._process = after_the_gate  # type: ignore[method-assign]
        doc = station.open_document("DMG", "E1001", "Test Person", "", "2019-20")
        driver = get_driver("import", files=[Path(f) for f in files], tmp_dir=station.ramdir.path)
        settings = ScanSettings(source=Source.FLATBED, mode=ColorMode.GRAY, resolution=300)
        report = station.capture("DMG", driver, "import", settings, cancel=CancelToken(), document=doc)
        assert len(report.acknowledged) == PAGES and not report.problems
        batch = station.store.batch("DMG")
        assert batch is not None
        victim = station.store.pages(batch.id)[VICTIM - 1]
        _flip_byte(station.vault.path_of(victim.raw_object))

        # While the pages are held back, a wait gives up (it is bounded) and says what is pending.
        assert not station.wait_idle(include_ocr=True, stall_timeout=0.5)
        assert "DMG page 1" in station.pending_summary(batch.id)

        gate.set()
        assert station.wait_idle(include_ocr=True, timeout=600)
        damaged = [d for kind, d in events if kind == "page_damaged"]
        assert [(d["seq"], d["object_kind"]) for d in damaged] == [(VICTIM, "raw")]
    finally:
        station.close()

    pages = _page_list(st, "DMG")
    victim_row = next(p for p in pages if p["seq"] == VICTIM)
    assert victim_row["state"] == "captured"  # never cleaned: its capture cannot be read
    _assert_rest_processed(pages)
    assert _audit(st, "page.damaged")[0]["object_kind"] == "raw"

    # Every command ends promptly, naming the page and asking for a rescan.
    _assert_fails_naming_victim(st, "process")
    _assert_fails_naming_victim(st, "assemble", "--batch", "DMG")
    _assert_approval_refused_naming_victim(st, "DMG")
    verify = st.run("verify-vault", timeout=FAST)
    assert verify.returncode == 6 and victim_row["objects"][0]["id"] in verify.stderr, verify.stderr
    # the restarts did not try to clean the damaged page again
    assert all(s["pages_to_process"] == 0 for s in _audit(st, "station.start")[1:])


@pytest.mark.timeout(900)
def test_damaged_image_object_before_ocr(tmp_path: Path) -> None:
    """The cleaned image of page 2 is damaged before OCR reads it: OCR used to retry it for ever."""
    st = make_station(tmp_path / "st", extra_config="enabled = false\n" + PIPELINE)
    files = _pages(tmp_path)
    st.roster("E2002")
    st.run("import", "--batch", "IMG", "--employee", "E2002", "--period", "2020-21", *files, check=True,
           timeout=FAST)
    pages = _page_list(st, "IMG")
    assert all(p["state"] == "processed" and p["ocr"] == "pending" for p in pages)
    image = next(o["id"] for o in pages[VICTIM - 1]["objects"] if o["kind"] == "image")
    _flip_byte(_object_path(st, image))
    st.config.write_text(st.config.read_text().replace("enabled = false", "enabled = true"))

    stderr = _assert_fails_naming_victim(st, "process")  # OCR of the other pages done, then the report
    assert "damaged" in stderr
    pages = _page_list(st, "IMG")
    _assert_rest_processed(pages)
    assert _audit(st, "page.damaged")[0]["object"] == image
    assert len(_audit(st, "page.damaged")) == 1  # flagged once, not retried

    _assert_fails_naming_victim(st, "assemble", "--batch", "IMG")
    _assert_approval_refused_naming_victim(st, "IMG")
    assert not list((st.data_dir / "outbox").glob("*.pkg"))


@pytest.mark.timeout(600)
def test_object_damaged_after_processing_stops_the_seal(tmp_path: Path) -> None:
    """A byte flipped in a processed page's raw object: the seal checks every object before writing."""
    st = make_station(tmp_path / "st", extra_config=PIPELINE)  # OCR on: a verified batch has been read
    files = _pages(tmp_path, 3)
    st.run("import", "--batch", "LATE", *files, check=True, timeout=FAST)
    st.verify("LATE")  # verified, then damaged before the seal
    pages = _page_list(st, "LATE")
    raw = next(o["id"] for o in pages[VICTIM - 1]["objects"] if o["kind"] == "raw")
    _flip_byte(_object_path(st, raw))
    _assert_fails_naming_victim(st, "seal", "--batch", "LATE")
    pages = _page_list(st, "LATE")
    assert "damaged" in pages[VICTIM - 1]["flags"]
    assert not list((st.data_dir / "outbox").glob("*.pkg"))


@pytest.mark.timeout(600)
def test_unlisted_object_is_reported_kept_and_quarantined_on_request(tmp_path: Path) -> None:
    st = make_station(tmp_path / "st", extra_config="enabled = false\n" + PIPELINE)
    st.run("import", "--batch", "Q", *_pages(tmp_path, 1), check=True, timeout=FAST)
    listed = _page_list(st, "Q")[0]["objects"][0]["id"]
    stray = secrets.token_hex(16)
    planted = _object_path(st, stray)
    planted.parent.mkdir(parents=True, exist_ok=True)
    content = _object_path(st, listed).read_bytes()  # a complete, valid age file the store does not list
    planted.write_bytes(content)

    verify = st.run("verify-vault", timeout=FAST)
    assert verify.returncode == 6 and stray in verify.stderr and "not listed" in verify.stderr, verify.stderr
    assert planted.read_bytes() == content

    start = st.run("process", timeout=FAST)  # a station start
    assert start.returncode == 0, start.stderr
    assert "1 vault object(s) are not listed" in start.stderr
    assert _audit(st, "station.start")[-1]["unlisted_objects"] == 1
    assert planted.read_bytes() == content  # reported, never deleted

    with st.serve():  # the admin's command; only a running service unlocked by the unit head lets it act
        moved = st.run("vault", "quarantine", check=True, timeout=FAST)
    assert stray in moved.stdout
    assert not planted.exists()
    (where,) = (st.data_dir / "quarantine").iterdir()
    assert (where / planted.name).read_bytes() == content  # moved as it was: still encrypted
    (entry,) = _audit(st, "vault.quarantine")
    assert entry["count"] == 1 and entry["ids"] == [stray]
    assert _object_path(st, listed).is_file()  # listed objects stay

    assert st.run("verify-vault", timeout=FAST).returncode == 0
    with st.serve():
        again = st.run("vault", "quarantine", check=True, timeout=FAST)
    assert "nothing to quarantine" in again.stdout

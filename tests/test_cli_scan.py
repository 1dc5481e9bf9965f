"""Acceptance: scanning through the real SANE `test` and `pnm` back ends with the CLI, end to end."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from PIL import Image

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


def test_adf_batch_of_ten_then_jam(tmp_path: Path) -> None:
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
    assert proc.returncode == 12, proc.stdout + proc.stderr
    assert "Paper jam" in proc.stderr and "कागज़ फँस गया" in proc.stderr
    assert proc.stdout.count("acknowledged page") == 3
    assert len(_pages(st, "JAM1")) == 3
    # resuming the same batch after clearing the jam adds the remaining sheets after the kept ones
    proc = st.run("scan", "--device", "test:0", "--source", "adf", "--resolution", "150", "--batch", "JAM1",
                  "--no-wait")
    assert proc.returncode == 0, proc.stderr
    assert [p["seq"] for p in _pages(st, "JAM1")] == list(range(1, 14))
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
    assert set(kinds) == {"raw", "image", "ocr_text", "ocr_pdf"}
    for obj in kinds.values():
        plain = _decrypt(st, obj["id"])
        assert hashlib.sha256(plain).hexdigest() == obj["sha256"]
    text = _decrypt(st, kinds["ocr_text"]["id"]).decode("utf-8")
    assert "quick brown" in text and "lazy fox" in text
    assert _decrypt(st, kinds["image"]["id"]).startswith(b"\x89PNG")

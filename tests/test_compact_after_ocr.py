"""Compact pages are made once OCR has had its turn (issue 16, scope 4: encoding costs 0.5-0.6 s of CPU a page, and
made before OCR it put OCR's end 22 s after the last sheet instead of 10 on two cores).

Real station, real vault, real Tesseract (eng).  The OCR pool is the real one behind a gate, so that the test
decides when OCR has a backlog: while it has one, no compact page is made; once it drains, every page gets one,
and a wait for the pipeline waits for them.  Assembly meanwhile makes a missing one itself, once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from scanstation_tools.synth import PageSpec, render_acr_page
from tests.stationkit import make_station

PAGES = 3
FAST = 300  # seconds: every wait here finishes far sooner, or it hangs


class GatedPool:
    """The station's real OCR pool; pages are handed to it only once the gate opens."""

    def __init__(self, real: Any, gate: threading.Event | Callable[[int | str], threading.Event]) -> None:
        """``gate``: one for every page, or the gate of each page."""
        self.real, self.gate_of = real, gate if callable(gate) else (lambda _page: gate)
        self.closed = threading.Event()

    def submit(self, page_id: int | str, image_png: bytes, dpi: int, **kw: Any) -> Future[Any]:
        out: Future[Any] = Future()
        gate = self.gate_of(page_id)

        def run() -> None:
            while not gate.wait(0.1):
                if self.closed.is_set():
                    out.cancel()  # the station is closing: the page stays pending for the next start
                    return
            try:
                out.set_result(self.real.submit(page_id, image_png, dpi, **kw).result())
            except BaseException as e:  # the station's callback reports it
                out.set_exception(e)

        threading.Thread(target=run, daemon=True).start()
        return out

    def shutdown(self, wait: bool = True) -> None:
        self.closed.set()
        self.real.shutdown(wait)


def _scan(station: Any, tmp_path: Path, name: str) -> Any:
    """PAGES synthetic ACR pages imported into batch ``name``, cleaned; the batch."""
    from drivers.base import CancelToken, ColorMode, ScanSettings, Source
    from drivers.registry import get_driver

    files = []
    for i in range(PAGES):
        f = tmp_path / f"{name}-{i}.png"
        render_acr_page(PageSpec(seed=500 + i, page_no=1 + i, dpi=150)).image.save(f, dpi=(150, 150))
        files.append(f)
    doc = station.open_document(name, "E1001", "Test Person", "", "2019-20")
    driver = get_driver("import", files=files, tmp_dir=station.ramdir.path)
    settings = ScanSettings(source=Source.FLATBED, mode=ColorMode.GRAY, resolution=150)
    report = station.capture(name, driver, "import", settings, cancel=CancelToken(), document=doc)
    assert len(report.acknowledged) == PAGES
    assert station.wait_idle(include_ocr=False, timeout=FAST)  # cleaned
    return station.store.batch(name)


def _gated(config: Any, gate: threading.Event | Callable[[int | str], threading.Event]) -> Any:
    from scanstation.ocr.pool import OcrWorkerPool

    def pool(work_dir: Path) -> GatedPool:
        return GatedPool(OcrWorkerPool(work_dir=work_dir, max_workers=config.ocr.workers, lang=config.ocr.languages,
                                       timeout=config.ocr.timeout_seconds), gate)

    return pool


@pytest.mark.timeout(900)
def test_compact_pages_wait_for_ocr_then_are_made_once(tmp_path: Path) -> None:
    from scanstation.facade import Station

    st = make_station(tmp_path / "st")
    config, key = st.unlock()
    gate = threading.Event()
    station = Station(config, key, ocr_pool_factory=_gated(config, gate))
    try:
        batch = _scan(station, tmp_path, "CMP")

        # OCR has a backlog (the gate is shut): the compact pages wait, and a wait for everything says so
        assert not station.wait_idle(include_ocr=True, stall_timeout=2.0)
        pages = station.store.pages(batch.id)
        assert all(p.image_object and not p.compact_object for p in pages), pages
        summary = station.pending_summary(batch.id)
        assert f"{PAGES} page(s) waiting for OCR" in summary and \
            f"{PAGES} page(s) whose compact page is still to be made" in summary, summary

        # assembly does not wait: it makes the first page's compact page itself, and the worker never makes it again
        first = station.compact_page(pages[0])
        made = station.store.page(pages[0].id).compact_object
        assert made and first.size < 100_000

        gate.set()
        assert station.wait_idle(include_ocr=True, timeout=FAST), station.pending_summary(batch.id)
        pages = station.store.pages(batch.id)
        assert all(p.ocr_state.value == "done" for p in pages), [p.ocr_state for p in pages]
        assert all(p.compact_object for p in pages)
        assert pages[0].compact_object == made  # made once
        for p in pages:
            assert p.compact_object and p.analysis["compact"]["bytes"] == station.store.object(p.compact_object).size
            assert p.analysis["compact"]["method"] in ("mrc", "jpeg", "jbig2", "g4", "flate", "jpx")
        assert station.pending_summary(batch.id) == "nothing pending"
    finally:
        station.close()


@pytest.mark.timeout(900)
def test_a_stop_before_the_compact_pages_leaves_them_to_the_next_start(tmp_path: Path) -> None:
    from scanstation.facade import Station

    st = make_station(tmp_path / "st")
    config, key = st.unlock()
    station = Station(config, key, ocr_pool_factory=_gated(config, threading.Event()))  # OCR never has room
    try:
        batch = _scan(station, tmp_path, "STOP")
    finally:
        station.close()  # without waiting: the pages stay pending for OCR, and without their compact pages
    config, key = st.unlock()
    station = Station(config, key)
    try:
        assert not any(p.compact_object for p in station.store.pages(batch.id))
        assert station.wait_idle(include_ocr=True, timeout=FAST), station.pending_summary(batch.id)
        pages = station.store.pages(batch.id)
        assert all(p.ocr_state.value == "done" and p.compact_object for p in pages), pages
    finally:
        station.close()


@pytest.mark.timeout(900)
def test_a_batch_waited_for_gets_its_compact_pages_without_waiting_for_another_batchs_ocr(tmp_path: Path) -> None:
    """Sealing batch A while batch B is scanned: B's OCR backlog holds the compact worker back, but a wait for
    A (the seal's) makes A's compact pages itself once A's own pages are read."""
    from scanstation.facade import Station

    st = make_station(tmp_path / "st")
    config, key = st.unlock()
    gate_a, gate_b = threading.Event(), threading.Event()
    of_a: set[int] = set()
    station = Station(config, key, ocr_pool_factory=_gated(config, lambda pid: gate_a if pid in of_a else gate_b))
    try:
        of_a.update(range(1, PAGES + 1))  # page ids: A's pages are the station's first
        a = _scan(station, tmp_path, "A")
        assert {p.id for p in station.store.pages(a.id)} == of_a
        b = _scan(station, tmp_path, "B")
        gate_a.set()  # A is read; B's pages wait for OCR
        deadline = time.monotonic() + FAST
        while any(p.ocr_state.value != "done" for p in station.store.pages(a.id)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(p.compact_object for p in station.store.pages(a.id))  # the worker waits for B's OCR
        assert station.wait_idle(include_ocr=True, batch_id=a.id, stall_timeout=30), station.pending_summary(a.id)
        assert all(p.compact_object for p in station.store.pages(a.id))
        assert not any(p.compact_object for p in station.store.pages(b.id))
        assert station.pending_summary(a.id) == "nothing pending"
        gate_b.set()
        assert station.wait_idle(include_ocr=True, timeout=FAST), station.pending_summary()
        assert all(p.compact_object for p in station.store.pages(b.id))
    finally:
        station.close()

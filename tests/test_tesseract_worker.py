"""The tesseract library worker: same text as the program, timeouts, crashes, bad requests, clean exits."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pikepdf
import pytest
from PIL import Image

from scanstation.errors import ExternalToolError, OcrError
from scanstation.ocr import pages as ocr
from scanstation.ocr import tesseract_library as tesseract_api
from scanstation.ocr import tesseract_program as tesseract
from scanstation.ocr import tesseract_worker
from scanstation.ocr.strategy import PreparedPage, prepare_page
from scanstation.ocr.tesseract_worker import TesseractWorker
from tests.corpus import corpus_file

pytestmark = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract is not installed")


def prepared(name: str, dpi: int, lang: str = "eng") -> PreparedPage:
    with Image.open(corpus_file(name)) as im:
        im.load()
        page = im.convert("L")
    return prepare_page(page, dpi, lang, tesseract.installed_languages(), keep_pixels=True)


def send(worker: TesseractWorker, image: Image.Image, dpi: int, lang: str = "eng", *, timeout: float = 60,
         label: str = "page") -> tuple[str, bytes]:
    read = worker.read(image.tobytes(), image.mode, image.size, dpi, lang, 3, timeout=timeout, label=label)
    return read.text, read.pdf


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    d = tmp_path / "work"
    d.mkdir()
    return d


@pytest.fixture
def worker(work_dir: Path) -> Iterator[TesseractWorker]:
    with TesseractWorker(work_dir) as w:
        yield w
    assert list(work_dir.iterdir()) == []  # its private directory went with it


@pytest.mark.parametrize("mode", ["1", "L"])
def test_library_reads_a_page_as_the_program_does(mode: str, worker: TesseractWorker, work_dir: Path) -> None:
    with Image.open(corpus_file("tess_phototest.tif")) as im:
        image = im.convert(mode)
    text, layer = send(worker, image, 200)
    # The program, on the same pixels at the same resolution, with the same parameters.
    path = work_dir / f"page.{'tif' if mode == '1' else 'png'}"
    image.save(path, dpi=(200, 200))
    program = tesseract.recognise(path, work_dir, "eng", psm=3, dpi=200, confidence=False)
    path.unlink()
    assert text == program.text and "quick brown dog" in text
    with pikepdf.open(io.BytesIO(layer)) as doc:  # one text-only page, the page's size in points
        assert len(doc.pages) == 1 and not doc.pages[0].images
        assert [round(float(v)) for v in doc.pages[0].mediabox][2:] == [
            round(image.width * 72 / 200), round(image.height * 72 / 200)]
    assert worker.version is not None and worker.version.startswith(("4.", "5."))


def test_prepared_pages_give_the_same_result_through_the_worker(worker: TesseractWorker, work_dir: Path) -> None:
    page = prepared("tess_phototest.tif", 200)
    via_worker = ocr.ocr_prepared_in(worker, page, label="phototest")
    via_program = ocr.ocr_prepared(page, work_dir, label="phototest")
    assert via_worker.text == via_program.text
    # tesseract's own mean (an integer, weighted by word length) against the plain mean of its TSV words
    assert via_worker.confidence is not None and via_program.confidence is not None
    assert abs(via_worker.confidence - via_program.confidence) <= 2.0
    assert via_worker.plan == via_program.plan


def test_a_page_past_its_timeout_fails_as_timed_out_and_the_worker_reads_on(worker: TesseractWorker) -> None:
    with Image.open(corpus_file("oldbooks_a065.tiff")) as im:
        big = im.convert("1")
    with pytest.raises(OcrError, match=r"timed out after 0\.05 s on big page") as caught:
        send(worker, big, 300, timeout=0.05, label="big page")
    assert isinstance(caught.value.__cause__, subprocess.TimeoutExpired)  # as the program's timeout
    with Image.open(corpus_file("tess_phototest.tif")) as im:
        assert "quick brown" in send(worker, im.convert("1"), 200)[0]


def test_a_crashed_worker_fails_only_its_page(worker: TesseractWorker, work_dir: Path) -> None:
    with Image.open(corpus_file("oldbooks_a065.tiff")) as im:
        big = im.convert("1")
    first = worker.pid
    assert first is not None
    send(worker, big.crop((0, 0, 400, 400)), 300)  # the model is loaded: the crash comes while reading
    killer = threading.Timer(0.3, os.kill, (first, signal.SIGSEGV))
    killer.start()
    with pytest.raises(OcrError, match=r"tesseract crashed \(SIGSEGV\) on big page"):
        send(worker, big, 300, label="big page")
    killer.join()
    assert [p.name for p in work_dir.iterdir()] == []  # the dead worker's files are gone
    with Image.open(corpus_file("tess_phototest.tif")) as im:
        assert "quick brown" in send(worker, im.convert("1"), 200)[0]
    assert worker.pid != first and worker.starts == 2


def test_a_missing_language_names_the_package(worker: TesseractWorker) -> None:
    with Image.open(corpus_file("tess_phototest.tif")) as im:
        page = im.convert("1")
    with pytest.raises(ExternalToolError, match="tesseract-ocr-xyz"):
        send(worker, page, 200, lang="xyz")
    assert "quick brown" in send(worker, page, 200)[0]  # the worker is still there for the next page


def test_a_bad_request_fails_the_page_not_the_worker(worker: TesseractWorker) -> None:
    pid = worker.pid
    with pytest.raises(OcrError, match=r"tesseract failed on odd page: .*bytes do not make"):
        worker.read(b"\x00" * 10, "L", (100, 100), 300, "eng", 3, timeout=10, label="odd page")
    with pytest.raises(OcrError, match=r"tesseract failed on rgb page: .*mode 1 or L"):
        worker.read(b"\x00" * 30, "RGB", (10, 1), 300, "eng", 3, timeout=10, label="rgb page")
    assert worker.pid == pid


def test_preloading_a_model_is_answered_before_the_page(worker: TesseractWorker) -> None:
    worker.preload("eng", 3)
    worker.preload("xyz", 3)  # a bad preload is only reported by a page that needs the model
    with Image.open(corpus_file("tess_phototest.tif")) as im:
        assert "quick brown" in send(worker, im.convert("1"), 200)[0]


def test_a_garbled_reply_fails_the_page(worker: TesseractWorker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tesseract_worker, "_MAX_PAYLOAD", 10)  # every real reply is now "oversized"
    with Image.open(corpus_file("tess_phototest.tif")) as im, pytest.raises(OcrError, match="malformed reply"):
        send(worker, im.convert("1"), 200, label="p")
    assert worker.pid is None  # stopped; the next read starts a new one


def test_the_worker_dies_with_its_parent(tmp_path: Path) -> None:
    script = (
        "import sys; from pathlib import Path; from scanstation.ocr.tesseract_worker import TesseractWorker\n"
        "w = TesseractWorker(Path(sys.argv[1])); w.preload('eng', 3); print(w.pid, flush=True)\n"
        "import time; time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[1])
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        os.kill(child, 0)  # alive
        parent.kill()
        parent.wait()
        for _ in range(100):
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"the worker {child} outlived its parent")
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()


def test_without_the_library_the_worker_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def missing() -> object:
        raise tesseract_api.LibraryError("libtesseract not found (test)")

    monkeypatch.setattr(tesseract_api, "library", missing)
    replies = io.BytesIO()
    assert tesseract_worker._serve(tmp_path, io.BytesIO(), replies) == 3
    replies.seek(0)
    header, _ = tesseract_worker._read_frame(replies)
    assert header == {"ok": False, "kind": "library", "message": "libtesseract not found (test)"}


def test_a_worker_that_cannot_start_is_unavailable_not_a_page_failure(
    work_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 'ImportError: no module named scanstation' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setattr(tesseract_worker, "_PYTHON", str(broken))
    with (
        TesseractWorker(work_dir) as worker,
        Image.open(corpus_file("tess_phototest.tif")) as im,
        pytest.raises(tesseract_worker.WorkerUnavailable, match=r"did not start .*ImportError"),
    ):
        send(worker, im.convert("1"), 200)
    assert list(work_dir.iterdir()) == []


def test_the_program_is_used_when_one_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(tesseract.TESSERACT_ENV, raising=False)
    monkeypatch.delenv(tesseract_worker.ENGINE_ENV, raising=False)
    assert tesseract_worker.engine_wanted()
    assert not tesseract_worker.engine_wanted("/usr/bin/tesseract")
    monkeypatch.setenv(tesseract_worker.ENGINE_ENV, "program")
    assert not tesseract_worker.engine_wanted()
    monkeypatch.delenv(tesseract_worker.ENGINE_ENV)
    monkeypatch.setenv(tesseract.TESSERACT_ENV, "/opt/other/tesseract")
    assert not tesseract_worker.engine_wanted()


def test_frames_round_trip_and_refuse_nonsense() -> None:
    frame = tesseract_worker._frame({"op": "load", "lang": "eng", "psm": 3}, b"xyz")
    assert tesseract_worker._read_frame(io.BytesIO(frame)) == ({"op": "load", "lang": "eng", "psm": 3}, b"xyz")
    with pytest.raises(EOFError):
        tesseract_worker._read_frame(io.BytesIO(frame[:-1]))
    with pytest.raises(ValueError, match="oversized"):
        tesseract_worker._read_frame(io.BytesIO(b"\xff\xff\xff\xff\x00\x00\x00\x00"))
    with pytest.raises(ValueError, match="not an object"):
        tesseract_worker._read_frame(io.BytesIO(tesseract_worker._HEADER.pack(2, 0) + b"[]"))

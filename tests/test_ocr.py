"""Tests of the tesseract wrapper, page OCR and the OCR worker pool, against the real tesseract."""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import shutil
import signal
import time
import unicodedata
from pathlib import Path

import numpy as np
import pikepdf
import psutil
import pytest
from PIL import Image

from scanstation.errors import ExternalToolError, InputError, OcrError
from scanstation.ocr import pages as ocr
from scanstation.ocr import pool as ocr_pool
from scanstation.ocr import tesseract_program as tesseract
from scanstation.ocr import tesseract_worker
from tests.corpus import corpus_file

REAL_TESSERACT = shutil.which("tesseract")

pytestmark = pytest.mark.skipif(REAL_TESSERACT is None, reason="tesseract is not installed")


def png_bytes(path: Path, crop: tuple[int, int, int, int] | None = None) -> bytes:
    with Image.open(path) as im:
        page = im.crop(crop) if crop else im.copy()
    buf = io.BytesIO()
    page.save(buf, format="PNG")
    return buf.getvalue()


def devanagari_share(text: str) -> float:
    letters = [c for c in text if c.isalpha() or unicodedata.category(c).startswith("M")]
    deva = [c for c in letters if "\u0900" <= c <= "\u097f"]
    return len(deva) / max(1, len(letters))


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    d = tmp_path / "work"
    d.mkdir(mode=0o700)
    return d


@pytest.fixture(scope="module")
def phototest_png() -> bytes:
    return png_bytes(corpus_file("tess_phototest.tif"))


@pytest.fixture(scope="module")
def devatest_png() -> bytes:
    return png_bytes(corpus_file("tess_devatest.png"))


def fake_tesseract(tmp_path: Path, body: str, name: str = "fake-tesseract") -> Path:
    """A stand-in binary: answers --version/--list-langs like the real one, runs ``body`` otherwise."""
    script = tmp_path / name
    script.write_text(f'#!/bin/sh\ncase "$1" in --version|--list-langs) exec {REAL_TESSERACT} "$@";; esac\n{body}\n')
    script.chmod(0o755)
    return script


# ---------------------------------------------------------------- tesseract wrapper


def test_version_and_languages() -> None:
    assert tesseract.version().split(".")[0].isdigit()
    assert {"eng", "hin"} <= tesseract.languages()


def test_english_page(phototest_png: bytes, work_dir: Path) -> None:
    result = ocr.ocr_page(phototest_png, 200, work_dir, lang="eng")
    text = " ".join(result.text.split()).lower()
    # The page reads "The quick brown dog jumped over the lazy fox."
    assert "quick brown dog" in text
    assert "lazy fox" in text
    assert result.text_pdf.startswith(b"%PDF")
    assert result.confidence is not None and result.confidence > 80
    assert result.lang_used == "eng"
    assert result.seconds > 0
    assert list(work_dir.iterdir()) == []


def test_devanagari_page_is_nfc(devatest_png: bytes, work_dir: Path) -> None:
    result = ocr.ocr_page(devatest_png, 300, work_dir, lang="hin")
    assert devanagari_share(result.text) > 0.8
    assert "मनुष्यों" in result.text
    assert unicodedata.is_normalized("NFC", result.text)
    assert list(work_dir.iterdir()) == []


def test_default_parameters_keep_the_text(work_dir: Path) -> None:
    """Skipping the fixed-pitch test (tesseract.DEFAULT_VARIABLES) must not change what is read, even on
    a typewritten page, the kind the test exists for; a caller's own value still wins."""
    image = work_dir / "typewriter.png"
    image.write_bytes(png_bytes(corpus_file("ocrmypdf_typewriter.png")))
    ours = tesseract.recognise(image, work_dir, lang="eng", confidence=False)
    stock = tesseract.recognise(
        image, work_dir, lang="eng", confidence=False,
        variables={"textord_all_prop": "0", "textord_disable_pitch_test": "0"},
    )
    assert len(ours.text.split()) > 100
    assert ours.text == stock.text
    assert list(work_dir.iterdir()) == [image]


@pytest.mark.parametrize("size", [(1, 1), (7, 3), (9, 5), (640, 480)])
def test_bilevel_tiff_round_trips_through_pillow(size: tuple[int, int]) -> None:
    rng = np.random.default_rng(size[0])
    bits = rng.random((size[1], size[0])) > 0.4
    image = Image.fromarray((bits * 255).astype(np.uint8), "L").convert("1")
    with Image.open(io.BytesIO(ocr.bilevel_tiff(image, 301))) as back:
        back.load()
        assert back.mode == "1" and back.size == size
        assert back.info["dpi"] == (301, 301)
        assert np.array_equal(np.asarray(back), np.asarray(image))
    with pytest.raises(ValueError):
        ocr.bilevel_tiff(image.convert("L"), 300)


def test_tesseract_reads_our_bilevel_tiff_like_pillows(work_dir: Path) -> None:
    with Image.open(corpus_file("tess_phototest.tif")) as im:
        page = im.convert("L").point(lambda v: 255 if v > 128 else 0).convert("1")
    ours, pillows = work_dir / "ours.tif", work_dir / "pillow.tif"
    ours.write_bytes(ocr.bilevel_tiff(page, 200))
    page.save(pillows, dpi=(200, 200))
    a = tesseract.recognise(ours, work_dir, lang="eng", dpi=None, confidence=False, outputs=("txt", "pdf"))
    b = tesseract.recognise(pillows, work_dir, lang="eng", dpi=None, confidence=False, outputs=("txt", "pdf"))
    assert "lazy fox" in a.text and a.text == b.text
    assert a.pdf is not None and b.pdf is not None
    with pikepdf.open(io.BytesIO(a.pdf)) as pa, pikepdf.open(io.BytesIO(b.pdf)) as pb:
        # the page size comes from the resolution tag: both say 200 dpi
        assert [float(v) for v in pa.pages[0].mediabox] == [float(v) for v in pb.pages[0].mediabox]


def test_recognise_hocr_only_on_request(work_dir: Path) -> None:
    image = work_dir / "crop.png"
    image.write_bytes(png_bytes(corpus_file("tess_phototest.tif"), (0, 0, 640, 120)))
    result = tesseract.recognise(image, work_dir, lang="eng", dpi=200, outputs=("txt", "hocr"))
    assert result.hocr is not None and "ocrx_word" in result.hocr
    assert result.pdf is None
    assert "12 point text" in result.text
    image.unlink()
    assert list(work_dir.iterdir()) == []


def test_timeout_leaves_nothing(devatest_png: bytes, work_dir: Path) -> None:
    with pytest.raises(OcrError, match=r"tesseract timed out after 0\.01 s on page 7"):
        ocr.ocr_page(devatest_png, 300, work_dir, lang="hin", timeout=0.01, label="page 7")
    assert list(work_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('touch "$2.txt" "$2.pdf"\nkill -SEGV $$', r"crashed \(SIGSEGV\)"),
        ('touch "$2.txt"\necho "Segmentation fault" >&2\nexit 139', r"crashed \(exit 139\).*Segmentation"),
        ('echo "Error in pixReadStream" >&2\nexit 1', r"failed \(exit 1\).*pixReadStream"),
    ],
)
def test_crash_leaves_nothing(body: str, expected: str, phototest_png: bytes, work_dir: Path, tmp_path: Path) -> None:
    fake = fake_tesseract(tmp_path, body)
    with pytest.raises(OcrError, match=expected):
        ocr.ocr_page(phototest_png, 200, work_dir, lang="eng", tesseract_cmd=fake)
    assert list(work_dir.iterdir()) == []


def test_crash_via_environment_variable(
    phototest_png: bytes, work_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_tesseract(tmp_path, "kill -SEGV $$")
    monkeypatch.setenv(tesseract.TESSERACT_ENV, str(fake))
    with pytest.raises(OcrError, match="SIGSEGV"):
        ocr.ocr_page(phototest_png, 200, work_dir, lang="eng")
    assert list(work_dir.iterdir()) == []


def test_missing_output_is_an_error(phototest_png: bytes, work_dir: Path, tmp_path: Path) -> None:
    fake = fake_tesseract(tmp_path, 'touch "$2.txt" "$2.tsv"\nexit 0')
    with pytest.raises(OcrError, match="produced no pdf output"):
        ocr.ocr_page(phototest_png, 200, work_dir, lang="eng", tesseract_cmd=fake)
    assert list(work_dir.iterdir()) == []


def test_missing_binary(phototest_png: bytes, work_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ExternalToolError, match="tesseract-ocr"):
        ocr.ocr_page(phototest_png, 200, work_dir, lang="eng", tesseract_cmd=tmp_path / "no-such-tesseract")
    with pytest.raises(ExternalToolError, match="tesseract-ocr"):
        tesseract.version(tmp_path / "no-such-tesseract")
    assert list(work_dir.iterdir()) == []


def test_missing_language_names_the_package(phototest_png: bytes, work_dir: Path) -> None:
    with pytest.raises(ExternalToolError, match="apt-get install tesseract-ocr-xyz"):
        ocr.ocr_page(phototest_png, 200, work_dir, lang="eng+xyz")
    assert list(work_dir.iterdir()) == []


def test_debian_package_names() -> None:
    assert tesseract.debian_package("hin") == "tesseract-ocr-hin"
    assert tesseract.debian_package("chi_sim") == "tesseract-ocr-chi-sim"
    assert tesseract.debian_package("Devanagari") == "tesseract-ocr-script-deva"


def test_not_a_png(work_dir: Path) -> None:
    with pytest.raises(InputError, match="not a PNG"):
        ocr.ocr_page(b"GIF89a....", 300, work_dir)


def test_errors_survive_pickling() -> None:
    # Worker errors cross the process boundary by pickle; a failure here would break the pool.
    for err in (OcrError("x on page 1"), ExternalToolError("install y")):
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err) and str(back) == str(err)


# ---------------------------------------------------------------- worker pool


def test_pool_completes_all_pages(work_dir: Path) -> None:
    crops = [(0, y, 640, y + 120) for y in (0, 120, 240, 360)]
    pages = [png_bytes(corpus_file("tess_phototest.tif"), c) for c in crops]
    with ocr_pool.OcrWorkerPool(work_dir, max_workers=2, lang="eng", timeout=60) as pool:
        futures = [pool.submit(i, png, 200) for i, png in enumerate(pages)]
        results = [f.result(timeout=120) for f in futures]
    assert all(isinstance(r, ocr.PageOcr) for r in results)
    assert "12 point" in results[0].text
    assert "quick brown" in " ".join(r.text for r in results)
    assert list(work_dir.iterdir()) == []


def test_pool_timeout_is_ocr_error(devatest_png: bytes, work_dir: Path) -> None:
    with ocr_pool.OcrWorkerPool(work_dir, max_workers=1, lang="hin", timeout=0.01) as pool:
        future = pool.submit("p1", devatest_png, 300)
        with pytest.raises(OcrError, match=r"timed out after 0\.01 s on page p1"):
            future.result(timeout=60)
    assert list(work_dir.iterdir()) == []


def _wait_for(path: Path, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear within {seconds} s")


def test_pool_survives_killed_worker(phototest_png: bytes, devatest_png: bytes, work_dir: Path, tmp_path: Path) -> None:
    hang_flag = tmp_path / "hang-once"
    hang_flag.touch()
    pids = tmp_path / "pids"
    # The first page hangs (recording the worker's pid and its own); every later call is the real thing.
    fake = fake_tesseract(
        tmp_path,
        f'if mv "{hang_flag}" "{hang_flag}.taken" 2>/dev/null; then\n'
        f'  echo "$PPID $$" > "{pids}"\n'
        "  exec sleep 60\n"
        "fi\n"
        f'exec {REAL_TESSERACT} "$@"',
    )
    with ocr_pool.OcrWorkerPool(work_dir, max_workers=1, lang="eng", timeout=60, tesseract_cmd=fake) as pool:
        doomed = pool.submit(1, phototest_png, 200)
        queued = pool.submit(2, phototest_png, 200)
        worker_pid, child_pid = (int(p) for p in _wait_for(pids, 60).split())
        assert any(work_dir.iterdir())  # page 1's image is in its job directory
        # Workers run niced so that scanning is never starved.
        assert psutil.Process(worker_pid).nice() == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)
        os.kill(worker_pid, signal.SIGKILL)

        with pytest.raises(OcrError, match="worker process died while reading page 1"):
            doomed.result(timeout=60)
        # The page that was only queued is not punished for its neighbour's death.
        assert "quick brown" in queued.result(timeout=60).text
        assert "quick brown" in pool.submit(3, phototest_png, 200).result(timeout=60).text
        assert pool.restarts == 1
    # The orphaned "tesseract" died with its worker (parent-death signal) instead of running on.
    assert _dead_or_zombie(child_pid, 10)
    assert list(work_dir.iterdir()) == []


def _tesseract_worker_of(pool_worker: psutil.Process, seconds: float) -> psutil.Process:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for child in pool_worker.children():
            with contextlib.suppress(psutil.Error):
                if "scanstation.ocr.tesseract_worker" in " ".join(child.cmdline()):
                    return child
        time.sleep(0.02)
    raise AssertionError(f"pool worker {pool_worker.pid} started no tesseract worker within {seconds} s")


def test_pool_reads_with_the_library_and_survives_a_killed_worker(
    phototest_png: bytes, work_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(tesseract.TESSERACT_ENV, raising=False)
    monkeypatch.delenv(tesseract_worker.ENGINE_ENV, raising=False)
    big = png_bytes(corpus_file("oldbooks_a065.tiff"))  # a second or so of reading
    with ocr_pool.OcrWorkerPool(work_dir, max_workers=1, lang="eng", timeout=60) as pool:
        # The pool process keeps one tesseract worker (models loaded) for page after page.
        first = pool.submit(1, phototest_png, 200).result(timeout=60)
        assert "quick brown" in first.text and first.confidence is not None
        pool_worker, reader = next(
            (child, grandchild)
            for child in psutil.Process().children()
            for grandchild in child.children()
            if "scanstation.ocr.tesseract_worker" in " ".join(grandchild.cmdline())
        )
        assert "quick brown" in pool.submit(2, phototest_png, 200).result(timeout=60).text
        assert _tesseract_worker_of(pool_worker, 10).pid == reader.pid
        doomed = pool.submit(3, big, 300)
        time.sleep(0.3)
        assert [p.name.startswith("tessworker-") for p in work_dir.iterdir()].count(True) == 1
        pool_worker.kill()
        with pytest.raises(OcrError, match="worker process died while reading page 3"):
            doomed.result(timeout=60)
        assert _dead_or_zombie(reader.pid, 10)  # the library worker died with its owner ...
        assert not any(p.name.startswith("tessworker-") for p in work_dir.iterdir())  # ... and was swept
        assert "quick brown" in pool.submit(4, phototest_png, 200).result(timeout=60).text
        assert pool.restarts == 1
    assert list(work_dir.iterdir()) == []  # the new one was closed with the pool


def _dead_or_zombie(pid: int, seconds: float) -> bool:
    # Without a reaping init (containers) a killed orphan may linger as a zombie: dead all the same.
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_pool_rejects_after_shutdown(phototest_png: bytes, work_dir: Path) -> None:
    pool = ocr_pool.OcrWorkerPool(work_dir, max_workers=1, lang="eng")
    pool.shutdown()
    with pytest.raises(OcrError, match="shut down"):
        pool.submit(1, phototest_png, 200)
    with ocr_pool.OcrWorkerPool(work_dir, max_workers=1) as pool, pytest.raises(InputError, match="not a PNG"):
        pool.submit(1, b"not png", 300)


def test_missing_work_dir_is_ocr_error(phototest_png: bytes, tmp_path: Path) -> None:
    with pytest.raises(OcrError, match="cannot stage page"):
        ocr.ocr_page(phototest_png, 200, tmp_path / "gone", lang="eng")


# ---------------------------------------------------------------- per-page choices (scanstation.ocr.strategy)


@pytest.fixture(scope="module")
def synthetic_pages() -> dict[str, Image.Image]:
    from scanstation_tools.synth import PageSpec, render_acr_page

    return {
        content: render_acr_page(PageSpec(seed=61, content=content, page_no=1, dpi=200)).image
        for content in ("english", "hindi", "form")
    }


def test_script_of_each_page(synthetic_pages: dict[str, Image.Image]) -> None:
    from scanstation.ocr.strategy import prepare_page

    installed = {"eng", "hin", "Devanagari"}
    plans = {k: prepare_page(im, 200, "hin+eng", installed).plan for k, im in synthetic_pages.items()}
    assert {k: p.script for k, p in plans.items()} == {"english": "latin", "hindi": "devanagari", "form": "mixed"}
    assert plans["english"].lang == "eng"
    assert plans["hindi"].lang == "Devanagari"
    assert plans["form"].lang == "Devanagari+eng"
    # Without the script model the Devanagari language itself is used, alone.
    assert prepare_page(synthetic_pages["hindi"], 200, "hin+eng", {"eng", "hin"}).plan.lang == "hin"


def test_language_choice_stays_within_what_is_allowed() -> None:
    from scanstation.ocr.strategy import choose_language

    installed = {"eng", "hin", "Devanagari", "osd"}
    assert choose_language("devanagari", "eng", installed)[0] == "eng"
    assert choose_language("latin", "hin", installed)[0] == "Devanagari"
    assert choose_language("latin", "hin", {"hin"})[0] == "hin"
    assert choose_language("mixed", "hin+eng", installed)[0] == "Devanagari+eng"
    assert choose_language("unknown", "hin+eng", installed)[0] == "hin+eng"
    assert choose_language("devanagari", "script/Devanagari+eng", {"script/Devanagari", "eng"})[0] == (
        "script/Devanagari"
    )


@pytest.mark.parametrize("turn", [90, 180, 270])
def test_turned_pages_are_turned_back(turn: int, synthetic_pages: dict[str, Image.Image]) -> None:
    from scanstation.ocr.strategy import prepare_page

    for key in ("english", "hindi"):
        upright = synthetic_pages[key]
        prepared = prepare_page(upright.rotate(turn, expand=True), 200, "hin+eng", {"eng", "hin", "Devanagari"})
        assert prepared.geometry.turn == turn, key
        assert prepared.geometry.turn_checked
        assert prepared.page_image.size == upright.size


def test_keep_pixels_turns_only_the_image_tesseract_reads(synthetic_pages: dict[str, Image.Image]) -> None:
    from scanstation.ocr.strategy import prepare_page

    upright = synthetic_pages["english"]
    scanned = upright.rotate(90, expand=True).rotate(3.0, resample=Image.Resampling.BICUBIC, fillcolor=255)
    kept = prepare_page(scanned, 200, "eng", {"eng"}, keep_pixels=True)
    straightened = prepare_page(scanned, 200, "eng", {"eng"})
    assert kept.page_image is scanned  # the scan itself, for the PDF to draw turned back
    assert (kept.page_turn, round(kept.page_skew)) == (90, 3) == (kept.geometry.turn, round(kept.geometry.skew))
    assert (straightened.page_turn, straightened.page_skew) == (0, 0.0)
    assert straightened.page_image.size == upright.size
    # tesseract reads the same straightened page either way
    assert kept.ocr_image.size == straightened.ocr_image.size
    a, b = (np.asarray(p.ocr_image.convert("L"), dtype=np.int16) for p in (kept, straightened))
    assert np.mean(a != b) < 0.01


def test_upright_page_skips_the_orientation_estimator(synthetic_pages: dict[str, Image.Image]) -> None:
    from scanstation.ocr.strategy import prepare_page

    for image in synthetic_pages.values():
        prepared = prepare_page(image, 200, "hin+eng", {"eng", "hin", "Devanagari"})
        assert prepared.geometry.turn == 0 and not prepared.geometry.turn_checked
        assert prepared.page_image is image  # nothing to correct: the page is stored as it came


def test_uneven_paper_is_flattened(synthetic_pages: dict[str, Image.Image]) -> None:
    import numpy as np

    from scanstation.ocr.strategy import prepare_page

    page = np.asarray(synthetic_pages["english"]).astype(np.float32)
    h, w = page.shape
    shade = np.linspace(1.0, 0.45, h, dtype=np.float32)[:, None] * np.ones((1, w), np.float32)
    shaded = Image.fromarray((page * shade).astype(np.uint8))
    assert prepare_page(shaded, 200, "eng", {"eng"}).plan.flatten
    assert not prepare_page(synthetic_pages["english"], 200, "eng", {"eng"}).plan.flatten


def test_large_devanagari_text_is_read_smaller(work_dir: Path) -> None:
    from scanstation_tools.synth import PageSpec, render_acr_page

    page = render_acr_page(PageSpec(seed=62, content="hindi", dpi=400))
    buf = io.BytesIO()
    page.image.save(buf, format="PNG")
    result = ocr.ocr_page(buf.getvalue(), 400, work_dir, lang="hin")
    assert result.plan["scale"] < 0.8
    assert result.lang_used == "Devanagari"
    assert "निर्देश" in result.text
    assert list(work_dir.iterdir()) == []


def test_fixed_strategy_runs_the_language_as_given(devatest_png: bytes, work_dir: Path) -> None:
    result = ocr.ocr_page(devatest_png, 300, work_dir, lang="hin+eng", strategy="fixed")
    assert result.lang_used == "hin+eng"
    with pytest.raises(ValueError, match="strategy"):
        ocr.ocr_page(devatest_png, 300, work_dir, lang="hin", strategy="guess")  # type: ignore[arg-type]


def test_clean_text() -> None:
    assert ocr.clean_text("inhab-\nited land\f") == "inhabited land"
    assert ocr.clean_text("Anglo-\nSaxon") == "Anglo-\nSaxon"  # a capital after the break: a real hyphen
    assert ocr.clean_text("क\u093f  \n") == "कि"
    assert ocr.clean_text("ﬁ") == "ﬁ"  # NFC, never NFKC


def test_batch_reads_pages_like_single_runs(synthetic_pages: dict[str, Image.Image], work_dir: Path) -> None:
    from scanstation.ocr.strategy import prepare_page

    english = synthetic_pages["english"]
    pages = [
        prepare_page(english, 200, "eng", {"eng"}),
        prepare_page(english.crop((0, 0, english.width, english.height // 2)), 200, "eng", {"eng"}),
        prepare_page(english.resize((english.width // 2, english.height // 2)), 100, "eng", {"eng"}),
    ]
    batch = ocr.ocr_prepared_batch(pages, work_dir, labels=["p1", "p2", "p3"])
    single = [ocr.ocr_prepared(p, work_dir, confidence=False) for p in pages]
    assert [b.text for b in batch] == [s.text for s in single]
    for b, p in zip(batch, pages, strict=True):
        with pikepdf.open(io.BytesIO(b.text_pdf)) as layer:
            assert len(layer.pages) == 1
            width = float(layer.pages[0].mediabox[2])
        assert abs(width - p.ocr_image.width * 72 / p.ocr_dpi) < 1  # each page keeps its own resolution
    with pytest.raises(ValueError, match="one model"):
        ocr.ocr_prepared_batch([pages[0], prepare_page(english, 200, "hin", {"hin"})], work_dir, labels=["a", "b"])
    assert list(work_dir.iterdir()) == []


def test_batch_failure_is_all_or_nothing(
    synthetic_pages: dict[str, Image.Image], work_dir: Path, tmp_path: Path
) -> None:
    from scanstation.ocr.strategy import prepare_page

    pages = [prepare_page(synthetic_pages["english"], 200, "eng", {"eng"})] * 2
    fake = fake_tesseract(tmp_path, "kill -SEGV $$")
    with pytest.raises(OcrError, match="crashed"):
        ocr.ocr_prepared_batch(pages, work_dir, labels=["p1", "p2"], tesseract_cmd=fake)
    assert list(work_dir.iterdir()) == []


def test_warm_run_loads_first_and_reads_the_pages_it_is_given_later(work_dir: Path) -> None:
    page = work_dir / "page.tif"
    with Image.open(corpus_file("tess_phototest.tif")) as im:
        im.save(page, dpi=(200, 200))
    warm = tesseract.WarmRun(work_dir, "eng", 3, ("txt", "pdf"))
    time.sleep(0.3)  # the model loads meanwhile; the run waits for its page list
    result = warm.finish([page, page], 60, "two pages")
    texts = result.text.split("\f")
    assert len([t for t in texts if t.strip()]) == 2 and all("quick brown dog" in t for t in texts if t.strip())
    assert result.pdf is not None
    with pikepdf.open(io.BytesIO(result.pdf)) as doc:
        assert len(doc.pages) == 2
    assert sorted(p.name for p in work_dir.iterdir()) == ["page.tif"]  # outputs read and deleted
    with pytest.raises(OcrError, match="already used"):
        warm.finish([page], 60, "again")


def test_abandoned_warm_run_is_killed_and_leaves_nothing(work_dir: Path) -> None:
    warm = tesseract.WarmRun(work_dir, "eng", 3, ("txt", "pdf"))
    proc = warm._proc
    assert proc is not None and proc.poll() is None
    warm.abandon()
    warm.abandon()  # twice is harmless
    assert proc.returncode is not None
    assert list(work_dir.iterdir()) == []

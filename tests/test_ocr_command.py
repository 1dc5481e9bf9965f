"""`scanstation ocr` end to end: synthetic English, Devanagari and mixed ACR pages, PDF/A, failures, bad input."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import unicodedata
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import pikepdf
import pytest
from PIL import Image
from rapidfuzz.distance import Levenshtein

from scanstation.cli import main as cli
from scanstation.ocr import tesseract_program as tesseract
from scanstation.ocr import tesseract_worker
from scanstation.pdf import searchable as pdf
from scanstation.pdf.searchable import pdf_text
from scanstation_tools.synth import PageSpec, SyntheticPage, render_acr_page
from tests.corpus import corpus_file
from tests.test_pdf import pdfa_structural_problems

REAL_TESSERACT = shutil.which("tesseract")
pytestmark = pytest.mark.skipif(REAL_TESSERACT is None, reason="tesseract is not installed")


def cer(reference: str, hypothesis: str) -> float:
    """The peer bench's measure: Levenshtein / reference length after NFC and whitespace collapse."""

    def norm(t: str) -> str:
        return re.sub(r"\s+", " ", unicodedata.normalize("NFC", t)).strip()

    ref = norm(reference)
    return Levenshtein.distance(ref, norm(hypothesis)) / max(1, len(ref))


def run(*args: str | Path) -> int:
    return cli.main(["ocr", *(str(a) for a in args)])


def fake_tesseract(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "fake-tesseract"
    script.write_text(f'#!/bin/sh\ncase "$1" in --version|--list-langs) exec {REAL_TESSERACT} "$@";; esac\n{body}\n')
    script.chmod(0o755)
    return script


def ram_dirs() -> list[Path]:
    return sorted(Path("/dev/shm").glob(f"scanstation-ocr-{os.getpid()}-*"))


# ---------------------------------------------------------------- three ACR pages in one TIFF


@pytest.fixture(scope="module")
def acr_pages() -> list[SyntheticPage]:
    return [
        render_acr_page(PageSpec(seed=41, content="english", noise=0.1)),
        render_acr_page(PageSpec(seed=42, content="hindi", noise=0.1)),
        render_acr_page(PageSpec(seed=43, page_no=1, content="form", noise=0.1, skew_deg=0.6)),
    ]


@pytest.fixture(scope="module")
def acr_run(acr_pages: list[SyntheticPage], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("acr")
    tiff = d / "acr.tif"
    first, *rest = (p.image for p in acr_pages)
    first.save(tiff, save_all=True, append_images=rest, compression="tiff_deflate", dpi=(300, 300))
    out = {"input": tiff, "pdf": d / "acr.pdf", "txt": d / "acr.txt", "report": d / "acr.json"}
    rc = run(tiff, "-o", out["pdf"], "--sidecar", out["txt"], "--lang", "hin+eng", "--report", out["report"],
             "--jobs", "2", "--suggest-index", "--employee", "MC-00-000043", "--period", "2019-20")
    assert rc == 0
    return out


def test_text_of_english_devanagari_and_mixed_pages(acr_run: dict[str, Path], acr_pages: list[SyntheticPage]) -> None:
    texts = acr_run["txt"].read_text(encoding="utf-8").split("\f")
    assert len(texts) == 3
    english, hindi, form = texts
    assert cer(acr_pages[0].text, english) < 0.03
    assert cer(acr_pages[1].text, hindi) < 0.05
    # The form's handwriting is not in its ground truth but is read too: a looser bound, plus its fields.
    assert cer(acr_pages[2].text, form) < 0.35
    fields = acr_pages[2].fields
    for value in (fields["employee_code"], fields["name"], fields["acr_period"], "ANNUAL CONFIDENTIAL REPORT"):
        assert value in form
    assert "वार्षिक गोपनीय प्रविष्टि" in form


def test_sidecar_is_nfc_utf8(acr_run: dict[str, Path]) -> None:
    text = acr_run["txt"].read_bytes().decode("utf-8")
    assert unicodedata.is_normalized("NFC", text)


def test_model_chosen_per_page(acr_run: dict[str, Path]) -> None:
    report = json.loads(acr_run["report"].read_text(encoding="utf-8"))
    langs = [p["plan"]["lang"] for p in report["pages"]]
    scripts = [p["plan"]["script"] for p in report["pages"]]
    assert scripts == ["latin", "devanagari", "mixed"]
    deva_model = "Devanagari" if "Devanagari" in tesseract.installed_languages() else "hin"
    assert langs[0] == "eng"
    assert langs[1] == deva_model  # never hin+eng on a Devanagari page
    assert set(langs[2].split("+")) == {deva_model, "eng"}
    assert not any(p["ocr_failed"] for p in report["pages"])
    # Suggestions are offered, never accepted.
    suggestions = report["index_suggestions"]
    assert suggestions["needs_confirmation"] is True
    assert all(v is None or v["confirmed"] is False for k, v in suggestions.items() if isinstance(v, dict))


def test_devanagari_copy_paste_round_trip(acr_run: dict[str, Path]) -> None:
    copied = pdf_text(acr_run["pdf"].read_bytes()).split("\f")
    sidecar = acr_run["txt"].read_text(encoding="utf-8").split("\f")
    assert unicodedata.is_normalized("NFC", copied[1])
    words = [w for w in sidecar[1].split() if any("\u0900" <= c <= "\u097f" for c in w)]
    assert len(words) > 50
    pasted = set(copied[1].split())
    assert sum(w in pasted for w in words) / len(words) > 0.95
    assert "निर्देश" in copied[1]


def test_pdf_is_pdfa_with_metadata_and_lossless_pages(acr_run: dict[str, Path], acr_pages: list[SyntheticPage]) -> None:
    data = acr_run["pdf"].read_bytes()
    assert pdfa_structural_problems(data) == []
    with pikepdf.open(io.BytesIO(data)) as doc:
        assert len(doc.pages) == 3
        meta = doc.open_metadata()
        assert "MC-00-000043" in str(meta.get("pdf:Keywords")) and "2019-20" in str(meta.get("pdf:Keywords"))
        # An unchanged page is stored pixel for pixel (the form was straightened, so it differs).
        (xobj,) = doc.pages[0].images.values()
        assert isinstance(xobj, pikepdf.Stream)
        pixels = np.asarray(pikepdf.PdfImage(xobj).as_pil_image().convert("L"))
        assert np.array_equal(pixels, np.asarray(acr_pages[0].image))
        # Page size follows the scan's resolution: A4 at 300 dpi.
        box = [float(v) for v in doc.pages[1].mediabox]
        assert abs(box[2] - 595.2) < 1 and abs(box[3] - 841.9) < 1
    try:
        from pikepdf import pdfa
    except ImportError:
        return
    report = pdfa.validate_written(io.BytesIO(data), "2b")
    assert report.passed, [str(f) for f in report.findings]


def test_ram_directory_removed(acr_run: dict[str, Path]) -> None:
    assert ram_dirs() == []
    assert sorted(p.name for p in acr_run["pdf"].parent.iterdir()) == ["acr.json", "acr.pdf", "acr.tif", "acr.txt"]


# ---------------------------------------------------------------- geometry


def test_devanagari_page_turned_five_degrees_is_straightened(tmp_path: Path) -> None:
    page = render_acr_page(PageSpec(seed=44, content="hindi", skew_deg=4.9, noise=0.1))
    src = tmp_path / "turned.png"
    page.image.save(src, dpi=(300, 300))
    assert run(src, "-o", tmp_path / "o.pdf", "--sidecar", tmp_path / "o.txt", "--lang", "hin",
               "--report", tmp_path / "r.json") == 0
    report = json.loads((tmp_path / "r.json").read_text())["pages"][0]
    assert abs(report["plan"]["skew"] - 4.9) < 0.3
    assert cer(page.text, (tmp_path / "o.txt").read_text(encoding="utf-8")) < 0.05
    # The PDF shows the page straight but stores the scan itself: the PNG's own data, not resampled.
    assert report["image"] == "png passthrough"
    with pikepdf.open(tmp_path / "o.pdf") as doc:
        (xobj,) = doc.pages[0].images.values()
        assert xobj.read_raw_bytes() == _idat(src.read_bytes())
        drawn = [op for op in pikepdf.parse_content_stream(doc.pages[0]) if str(op.operator) == "cm"]
        b = float(drawn[-1].operands[1])  # the image's matrix: turned, not just scaled
        assert b != 0


def test_skewed_bitonal_page_stays_bitonal_and_lossless(tmp_path: Path) -> None:
    with Image.open(corpus_file("oldbooks_h033.tiff")) as im:
        turned = im.convert("L").rotate(3.0, resample=Image.Resampling.NEAREST, expand=True, fillcolor=255)
    scan = turned.convert("1", dither=Image.Dither.NONE)
    src = tmp_path / "bitonal.tif"
    scan.save(src, compression="group4", dpi=(300, 300))
    assert run(src, "-o", tmp_path / "o.pdf", "--sidecar", tmp_path / "o.txt", "--lang", "eng",
               "--report", tmp_path / "r.json") == 0
    assert abs(json.loads((tmp_path / "r.json").read_text())["pages"][0]["plan"]["skew"] - 3.0) < 0.3
    with pikepdf.open(tmp_path / "o.pdf") as doc:
        (xobj,) = doc.pages[0].images.values()
        assert isinstance(xobj, pikepdf.Stream) and xobj.Filter == pikepdf.Name.CCITTFaxDecode
        pixels = np.asarray(pikepdf.PdfImage(xobj).as_pil_image().convert("1"))
    assert np.array_equal(pixels, np.asarray(scan))
    assert "Horton" in (tmp_path / "o.txt").read_text(encoding="utf-8")


def test_upside_down_page_is_turned(tmp_path: Path) -> None:
    page = render_acr_page(PageSpec(seed=45, content="english", rotation=180, dpi=200))
    src = tmp_path / "upside-down.png"
    page.image.save(src, dpi=(200, 200))
    assert run(src, "-o", tmp_path / "o.pdf", "--sidecar", tmp_path / "o.txt", "--lang", "eng",
               "--report", tmp_path / "r.json") == 0
    assert json.loads((tmp_path / "r.json").read_text())["pages"][0]["plan"]["turn"] == 180
    assert cer(page.text, (tmp_path / "o.txt").read_text(encoding="utf-8")) < 0.03


# ---------------------------------------------------------------- image stored as it came


def test_png_stored_bit_for_bit(tmp_path: Path) -> None:
    src = tmp_path / "photo.png"
    with Image.open(corpus_file("tess_phototest.tif")) as im:
        im.save(src, dpi=(200, 200))
    assert run(src, "-o", tmp_path / "o.pdf", "--lang", "eng") == 0
    with pikepdf.open(tmp_path / "o.pdf") as doc:
        (xobj,) = doc.pages[0].images.values()
        assert xobj.read_raw_bytes() == _idat(src.read_bytes())
    assert "quick brown dog" in pdf_text((tmp_path / "o.pdf").read_bytes())


def _idat(png: bytes) -> bytes:
    return b"".join(
        png[i + 8 : i + 8 + int.from_bytes(png[i : i + 4], "big")]
        for i in _chunk_offsets(png)
        if png[i + 4 : i + 8] == b"IDAT"
    )


def _chunk_offsets(png: bytes) -> list[int]:
    offsets, pos = [], 8
    while pos + 8 <= len(png):
        offsets.append(pos)
        pos += 12 + int.from_bytes(png[pos : pos + 4], "big")
    return offsets


# ---------------------------------------------------------------- failures


@pytest.fixture
def small_page(tmp_path: Path) -> Path:
    src = tmp_path / "small.png"
    with Image.open(corpus_file("tess_phototest.tif")) as im:
        im.save(src, dpi=(200, 200))
    return src


@pytest.mark.parametrize(
    ("body", "extra", "expected"),
    [
        ("kill -SEGV $$", (), "crashed"),
        ('touch "$2.txt" "$2.tsv"\nexit 0', (), "produced no pdf output"),
        ("exec sleep 30", ("--timeout", "0.5"), "timed out after 0.5 s"),
    ],
)
def test_failed_ocr_keeps_the_page_image(
    body: str,
    extra: tuple[str, ...],
    expected: str,
    small_page: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(tesseract.TESSERACT_ENV, str(fake_tesseract(tmp_path, body)))
    out = tmp_path / "o.pdf"
    rc = run(small_page, "-o", out, "--sidecar", tmp_path / "o.txt", "--lang", "eng", *extra)
    assert rc == 8  # OcrError: the PDF is complete, the page is flagged
    err = capsys.readouterr().err
    assert "OCR failed" in err and expected in err and "small.png page 1" in err and "retry" in err
    with pikepdf.open(out) as doc:
        assert len(doc.pages) == 1 and len(doc.pages[0].images) == 1
        assert "/XObject" in doc.pages[0].Resources and "/OCR0" not in doc.pages[0].Resources.XObject
    assert (tmp_path / "o.txt").read_text(encoding="utf-8").strip() == ""
    assert ram_dirs() == []
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def _flagged_without_text(out: Path, sidecar: Path) -> None:
    with pikepdf.open(out) as doc:
        assert len(doc.pages) == 1 and len(doc.pages[0].images) == 1
        assert "/XObject" in doc.pages[0].Resources and "/OCR0" not in doc.pages[0].Resources.XObject
    assert sidecar.read_text(encoding="utf-8").strip() == ""
    assert ram_dirs() == []


def test_library_worker_timeout_keeps_the_page_image(
    small_page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(tesseract.TESSERACT_ENV, raising=False)
    monkeypatch.delenv(tesseract_worker.ENGINE_ENV, raising=False)
    out, side = tmp_path / "o.pdf", tmp_path / "o.txt"
    assert run(small_page, "-o", out, "--sidecar", side, "--lang", "eng", "--timeout", "0.01") == 8
    err = capsys.readouterr().err
    assert "small.png page 1: OCR failed: tesseract timed out after 0.01 s" in err and "retry" in err
    _flagged_without_text(out, side)


def test_library_worker_crash_is_retried_once_then_flagged(
    small_page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import signal

    monkeypatch.delenv(tesseract.TESSERACT_ENV, raising=False)
    monkeypatch.delenv(tesseract_worker.ENGINE_ENV, raising=False)
    real_send = tesseract_worker.TesseractWorker._send
    crashes: list[int] = []

    def crashing(worker: tesseract_worker.TesseractWorker, frame: bytes, *args: Any) -> None:
        # The real worker process, killed as a crash in the library would kill it, with the page in hand.
        real_send(worker, frame, *args)
        if b'"op":"read"' in frame[:200]:
            assert worker.pid is not None
            crashes.append(worker.pid)
            os.kill(worker.pid, signal.SIGSEGV)

    monkeypatch.setattr(tesseract_worker.TesseractWorker, "_send", crashing)
    out, side = tmp_path / "o.pdf", tmp_path / "o.txt"
    assert run(small_page, "-o", out, "--sidecar", side, "--lang", "eng", "--jobs", "1") == 8
    err = capsys.readouterr().err
    assert "small.png page 1: OCR failed: tesseract crashed (SIGSEGV)" in err
    assert len(crashes) == 2 and crashes[0] != crashes[1]  # tried once more, in a fresh worker
    _flagged_without_text(out, side)


@pytest.mark.parametrize(("pages", "preloads"), [(1, 1), (3, 2)])
def test_only_workers_with_pages_to_read_preload_their_model(
    pages: int, preloads: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(tesseract.TESSERACT_ENV, raising=False)
    monkeypatch.delenv(tesseract_worker.ENGINE_ENV, raising=False)
    real = tesseract_worker.TesseractWorker.preload
    calls: list[tuple[str, int]] = []

    def counted(worker: tesseract_worker.TesseractWorker, lang: str, psm: int) -> None:
        calls.append((lang, psm))
        real(worker, lang, psm)

    monkeypatch.setattr(tesseract_worker.TesseractWorker, "preload", counted)
    tiff = tmp_path / "in.tif"
    with Image.open(corpus_file("tess_phototest.tif")) as im:
        page = im.convert("L")
    page.save(tiff, save_all=True, append_images=[page] * (pages - 1), dpi=(200, 200))
    assert run(tiff, "-o", tmp_path / "o.pdf", "--sidecar", tmp_path / "o.txt", "--lang", "eng", "--jobs", "2") == 0
    assert calls == [("eng", 3)] * preloads  # a one-page input loads the model in one worker only
    texts = (tmp_path / "o.txt").read_text(encoding="utf-8").split("\f")
    assert len(texts) == pages and all("quick brown" in t for t in texts)


def test_without_the_library_the_program_reads_the_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(tesseract.TESSERACT_ENV, raising=False)
    monkeypatch.delenv(tesseract_worker.ENGINE_ENV, raising=False)

    def unavailable(*_a: object, **_k: object) -> Any:
        raise tesseract_worker.WorkerUnavailable("the tesseract library cannot be used: not found (test)")

    monkeypatch.setattr(tesseract_worker.TesseractWorker, "read", unavailable)
    tiff = tmp_path / "three.tif"
    with Image.open(corpus_file("tess_phototest.tif")) as im:
        page = im.convert("L")
    page.save(tiff, save_all=True, append_images=[page, page], dpi=(200, 200))
    assert run(tiff, "-o", tmp_path / "o.pdf", "--sidecar", tmp_path / "o.txt", "--lang", "eng", "--jobs", "2") == 0
    texts = (tmp_path / "o.txt").read_text(encoding="utf-8").split("\f")
    assert len(texts) == 3 and all("quick brown dog" in t for t in texts)
    assert "running the tesseract program instead" in caplog.text


def test_no_partial_pdf_when_assembly_fails(small_page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "o.pdf"
    out.write_bytes(b"old result")

    def broken(*_a: object, **_k: object) -> bytes:
        raise pikepdf.PdfError("disk on fire")

    monkeypatch.setattr(pdf, "build_searchable_pdf", broken)
    with pytest.raises(pikepdf.PdfError):
        run(small_page, "-o", out, "--sidecar", tmp_path / "o.txt", "--lang", "eng")
    assert out.read_bytes() == b"old result"
    assert not (tmp_path / "o.txt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    assert ram_dirs() == []


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scanstation.cli.main", "ocr", *(str(a) for a in args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )


def test_bad_input_exits_4_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "notes.png"
    bad.write_text("not an image at all\n")
    proc = _cli(bad, "-o", tmp_path / "o.pdf", "--sidecar", tmp_path / "o.txt")
    assert proc.returncode == 4
    assert str(bad) in proc.stderr
    missing = _cli(tmp_path / "missing.tif", "-o", tmp_path / "o.pdf")
    assert missing.returncode == 4 and "missing.tif" in missing.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.png"]


def test_the_program_ends_at_once_with_its_outputs_complete(small_page: Path, tmp_path: Path) -> None:
    # `scanstation ocr` skips the interpreter's tear-down (cli.entry): everything must be out by then.
    out, side = tmp_path / "o.pdf", tmp_path / "o.txt"
    proc = _cli(small_page, "-o", out, "--sidecar", side, "--lang", "eng", "--suggest-index")
    assert proc.returncode == 0, proc.stderr
    assert "1 page(s), 1 with text" in proc.stderr and json.loads(proc.stdout).keys() >= {"employee_code"}
    assert "quick brown" in side.read_text(encoding="utf-8")
    assert pdfa_structural_problems(out.read_bytes()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.pdf", "o.txt", "small.png"]


def test_refuses_to_overwrite_input_and_bad_options(small_page: Path, tmp_path: Path) -> None:
    assert run(small_page, "-o", small_page) == 4
    assert run(small_page, "-o", tmp_path / "nowhere" / "o.pdf") == 4
    assert run(small_page, "-o", tmp_path / "o.pdf", "--lang", "eng;rm") == 4
    assert run(small_page, "-o", tmp_path / "o.pdf", "--jobs", "0") == 4
    assert run(small_page, "-o", tmp_path / "o.pdf", "--lang", "xyz") == 9  # not installed: names the package
    assert not (tmp_path / "o.pdf").exists()


def test_sixteen_bit_png_is_read_and_reencoded(tmp_path: Path) -> None:
    src = tmp_path / "deep.png"
    with Image.open(corpus_file("tess_phototest.tif")) as im:
        deep = np.asarray(im.convert("L")).astype(np.uint16) * 257
    Image.fromarray(deep).save(src, dpi=(200, 200))
    assert run(src, "-o", tmp_path / "o.pdf", "--sidecar", tmp_path / "o.txt", "--lang", "eng") == 0
    assert "quick brown" in (tmp_path / "o.txt").read_text(encoding="utf-8")


def test_scanned_pdf_keeps_its_page_image(tmp_path: Path) -> None:
    src = corpus_file("ocrmypdf_c02-22.pdf")  # one JPEG page at 150 dpi
    out = tmp_path / "o.pdf"
    assert run(src, "-o", out, "--sidecar", tmp_path / "o.txt", "--lang", "eng", "--report", tmp_path / "r.json") == 0
    page = json.loads((tmp_path / "r.json").read_text())["pages"][0]
    assert page["image"] == "pdf passthrough"
    with pikepdf.open(src) as original, pikepdf.open(out) as result:
        assert [float(v) for v in result.pages[0].mediabox] == [float(v) for v in original.pages[0].mediabox]
        (theirs,) = original.pages[0].images.values()
        (ours,) = result.pages[0].images.values()
        assert ours.read_raw_bytes() == theirs.read_raw_bytes()
        assert "/OCR0" in result.pages[0].Resources.XObject
    assert pdfa_structural_problems(out.read_bytes()) == []
    assert "tip-toeing" in pdf_text(out.read_bytes())


def test_failed_batch_is_read_page_by_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A tesseract that dies on a list of pages (a batch, from a file or on stdin) but reads single pages:
    # every page still gets text.
    fake = fake_tesseract(tmp_path, f'case "$1" in *.txt|-) kill -SEGV $$;; esac\nexec {REAL_TESSERACT} "$@"')
    monkeypatch.setenv(tesseract.TESSERACT_ENV, str(fake))
    tiff = tmp_path / "three.tif"
    with Image.open(corpus_file("tess_phototest.tif")) as im:
        page = im.convert("L")
    page.save(tiff, save_all=True, append_images=[page, page], dpi=(200, 200))
    out = tmp_path / "o.pdf"
    assert run(tiff, "-o", out, "--sidecar", tmp_path / "o.txt", "--lang", "eng", "--jobs", "1") == 0
    texts = (tmp_path / "o.txt").read_text(encoding="utf-8").split("\f")
    assert len(texts) == 3 and all("quick brown dog" in t for t in texts)


def _pipeline_with(jobs: int, library: bool = False) -> Any:
    from types import SimpleNamespace

    from scanstation_tools import ocr_command

    pipeline = object.__new__(ocr_command._Pipeline)
    pipeline.settings = SimpleNamespace(jobs=jobs)  # type: ignore[assignment]
    pipeline._library = library  # False: the tesseract program, one run per batch
    pipeline._reading = {}
    pipeline._expected_done = pipeline._took_done = 0.0
    return pipeline


def _ready(side: int, work: float = 0.0, number: int = 0, lang: str = "eng") -> Any:
    from types import SimpleNamespace

    from scanstation_tools import ocr_command

    plan = SimpleNamespace(lang=lang, psm=3)
    prepared = SimpleNamespace(plan=plan, ocr_image=Image.new("1", (side, side)))
    page = SimpleNamespace(number=number)
    return ocr_command._Ready(page, prepared, None, 300, 0.0, work)  # type: ignore[arg-type]


def test_recognisers_avoid_tiny_runs_while_pages_come_in() -> None:
    def sides(batch: list[Any]) -> list[int]:
        return [r.prepared.ocr_image.size[0] for r in batch]

    pipeline = _pipeline_with(2)
    small, big = 600, 1800  # a big page is nine small ones' work; a small one is less than a model load
    pipeline._loading = True
    # While pages are still coming in, one small page is not worth a tesseract run of its own ...
    pipeline._ready = deque([_ready(small)])
    assert not pipeline._worth_a_run()
    pipeline._ready.append(_ready(small))
    pipeline._ready.append(_ready(small))
    assert not pipeline._worth_a_run()
    pipeline._ready.append(_ready(small))
    pipeline._ready.append(_ready(big))
    assert pipeline._worth_a_run()
    # ... and a recogniser takes its share by count, or more until its run is worth the model load.
    assert sides(pipeline._take_batch(0)) == [small, small, small, small, big]
    pipeline._ready = deque(_ready(s) for s in (big, big, small, small, small, small))
    assert sides(pipeline._take_batch(0)) == [big, big, small]


def test_library_workers_take_one_page_at_a_time_and_the_heaviest_last_pages_first() -> None:
    def sides(batch: list[Any]) -> list[int]:
        return [r.prepared.ocr_image.size[0] for r in batch]

    pipeline = _pipeline_with(2, library=True)
    pipeline._loading = True
    pipeline._ready = deque()
    assert not pipeline._worth_a_run()  # nothing to read yet
    # A worker has its models loaded: one small page is worth reading at once, in page order.
    pipeline._ready = deque([_ready(600, 0.1, 1), _ready(1800, 1.0, 2)])
    assert pipeline._worth_a_run()
    assert sides(pipeline._take_batch(0)) == [600]
    # Once every page is in, the heaviest left goes first.
    pipeline._loading = False
    pipeline._ready = deque([_ready(600, 0.1, 3), _ready(1800, 1.0, 4), _ready(900, 0.3, 5)])
    assert [r.page.number for r in pipeline._take_batch(1)] == [4]
    assert [r.page.number for r in pipeline._take_batch(0)] == [5]
    assert [r.page.number for r in pipeline._take_batch(1)] == [3]


def test_last_pages_are_dealt_so_that_the_recognisers_finish_together(monkeypatch: pytest.MonkeyPatch) -> None:
    from scanstation_tools import ocr_command

    clock = [100.0]
    monkeypatch.setattr(ocr_command.time, "perf_counter", lambda: clock[0])

    def numbers(batch: list[Any]) -> list[int]:
        return [r.page.number for r in batch]

    def pages(works: list[float], lang: str = "eng") -> deque[Any]:
        return deque(_ready(100, w, n, lang) for n, w in enumerate(works, 1))

    pipeline = _pipeline_with(2)
    pipeline._loading = False
    # Light pages first, heavy ones last (the corpus's English document): split by count or by pixels,
    # one recogniser got four light pages and both heavy ones.  Dealt heaviest first, each takes one.
    pipeline._ready = pages([0.2, 0.2, 0.2, 0.2, 1.0, 1.0])
    assert pipeline._worth_a_run()
    assert numbers(pipeline._take_batch(0)) == [1, 3, 5]
    pipeline._reading = {0: (clock[0], 1.4)}  # as the recogniser records it
    assert numbers(pipeline._take_batch(1)) == [2, 4, 6]
    assert not pipeline._ready
    # The other recogniser still has 1.5 s of a batch to read: this one takes both heavy pages.
    pipeline._reading = {1: (clock[0] - 0.5, 2.0)}
    pipeline._ready = pages([1.0, 1.0, 0.5, 0.5])
    assert numbers(pipeline._take_batch(0)) == [1, 2, 4]
    # ... but if the finished batches took a fifth of their estimates, it is done already: one each.
    pipeline._expected_done, pipeline._took_done = 10.0, 2.0
    pipeline._ready = pages([1.0, 1.0, 0.5, 0.5])
    assert numbers(pipeline._take_batch(0)) == [1, 3]
    # One run reads one model: pages for another are left for the next run.
    pipeline._reading = {}
    pipeline._ready = pages([1.0, 0.3, 0.3])
    pipeline._ready.append(_ready(100, 0.4, 4, "Devanagari"))
    assert numbers(pipeline._take_batch(0)) == [1]
    assert numbers(pipeline._ready) == [2, 3, 4]

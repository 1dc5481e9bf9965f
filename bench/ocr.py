"""OCR benchmark: `scanstation ocr` beside plain tesseract and `ocrmypdf --deskew`, in one run, same pages.

Run by hand (never as a timed unit test), from the repository root::

    .venv/bin/python bench/ocr.py                    # everything (about 10-15 minutes on 2 cores)
    .venv/bin/python bench/ocr.py --quick            # GT pages only, no rotated group, no synthetic set
    .venv/bin/python bench/ocr.py --json /tmp/ocr.json

Protocol (the peer measurement script ../shared/bench/ocr_peer_bench.py is imported and reused: its
page list, its CER and its tesseract call):

1. **Ground-truth pages** (the peer's list, each with its language(s); Devanagari with ``hin`` and
   ``hin+eng``): plain ``tesseract IMG - -l L`` (the floor), ``scanstation ocr IMG -o .. --sidecar ..
   --lang L --jobs 1`` and ``ocrmypdf --deskew -l L --jobs 1 --sidecar .. --output-type pdf``, one page
   per invocation, one after the other, ``OMP_THREAD_LIMIT=1``.  CER = Levenshtein / reference length
   after NFC and whitespace collapse (the peer's ``cer``).  Wall time and CPU time (user+sys of the
   process and everything it waited for) per page.
2. **Rotated group**: every ground-truth page turned by +4.9 and -4.9 degrees (bicubic, white corners,
   as the issue describes), read by the three with the page's first language.
3. **Document runs, same cores**: the English pages (with ``--lang eng``), the Devanagari pages
   (``hin``) and all of them (``hin+eng``), upright and turned, each set as one multi-page TIFF:
   ``scanstation ocr --jobs 1`` and ``--jobs J`` against ``ocrmypdf --deskew --jobs J`` writing PDF/A
   (its default; the same work as ours) and plain PDF (the peer script's ``--output-type pdf``), and
   plain tesseract as the floor, both ways: one process reading the whole TIFF, and one run per page.
   Each tool reads the TIFF ``--repeat`` times in a row (default 3); wall and CPU are the medians.
   Pages per minute, peak RSS of each tool's whole process tree (sampled every 50 ms), PDF size per
   page against the input's size.
4. **Synthetic ACR files** (``--synthetic N``): N files of three pages (particulars form, an English
   and a Hindi instruction page) with ground truth from ``scanstation_tools.synth``; CER against tesseract
   ``hin+eng``, and the precision of the index suggestions against the files' known fields.

The load average is printed before and after: other work on the machine slows every tool alike in
wall time; CPU time is less sensitive, so both ratios are shown.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
PEER_DIR = REPO.parent / "shared" / "bench"
sys.path.insert(0, str(PEER_DIR))

import ocr_peer_bench as peer  # noqa: E402  (the shared yardstick: page list, CER, tesseract call)
import psutil  # noqa: E402
from PIL import Image  # noqa: E402

from scanstation.ocr.tesseract_worker import ENGINE_ENV  # noqa: E402

CORPUS = REPO.parent / "shared" / "corpus"
ENV = dict(os.environ, OMP_THREAD_LIMIT="1")
# The tools installed from packages (ocrmypdf, pikepdf, OpenCV ...) come with compiled bytecode; the
# project's own modules, run from the source tree, have none when the shell sets PYTHONDONTWRITEBYTECODE
# (this one does), and every `scanstation` run would then compile them again (~0.05-0.1 s a run).  As
# an installed package would, they get their bytecode once, in the bench's temporary directory (set up
# in main()), outside the repository.
SS_ENV = {k: v for k, v in ENV.items() if k != "PYTHONDONTWRITEBYTECODE"}
ROTATIONS = (4.9, -4.9)
TARGET_THROUGHPUT_VS_OCRMYPDF = 2.0
TARGET_TIME_VS_TESSERACT = 1.3


def scanstation_cmd() -> list[str]:
    exe = REPO / ".venv" / "bin" / "scanstation"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "scanstation.cli.main"]


def scanstation_python() -> str:
    exe = REPO / ".venv" / "bin" / "python"
    return str(exe) if exe.exists() else sys.executable


# ------------------------------------------------------------------------------------------ measuring


@dataclass
class Run:
    tool: str
    page: str
    lang: str
    group: str
    cer: float | None
    wall: float
    cpu: float
    rc: int
    pdf_bytes: int | None = None
    input_bytes: int | None = None
    note: str = ""


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class RssSampler:
    """Peak resident memory of a process and all its descendants, sampled every ``period`` seconds."""

    def __init__(self, pid: int, period: float = 0.05) -> None:
        self.pid, self.period, self.peak = pid, period, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                root = psutil.Process(self.pid)
                total = root.memory_info().rss
                for child in root.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        total += child.memory_info().rss
                self.peak = max(self.peak, total)
            except psutil.Error:
                pass
            self._stop.wait(self.period)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def timed(
    cmd: Sequence[str], *, rss: bool = False, timeout: float = 1800, env_extra: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], float, float, int]:
    """Run ``cmd``; returns (process, wall s, CPU s of it and its waited-for descendants, peak tree RSS)."""
    c0, t0 = _children_cpu(), time.perf_counter()
    env = SS_ENV if list(cmd[: len(scanstation_cmd())]) == scanstation_cmd() else ENV
    env = {**env, **(env_extra or {})}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    sampler = RssSampler(proc.pid) if rss else None
    out, err = proc.communicate(timeout=timeout)
    wall = time.perf_counter() - t0
    peak = sampler.stop() if sampler else 0
    done = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    return done, wall, _children_cpu() - c0, peak


def page_dpi(path: Path) -> int:
    with Image.open(path) as im:
        dpi = im.info.get("dpi")
    value = round(float(dpi[0])) if isinstance(dpi, tuple) else 0
    return value if 10 <= value <= 9600 else 300


def run_tesseract(img: Path, lang: str, ref: str, page: str, group: str) -> Run:
    proc, wall, cpu, _ = timed(["tesseract", str(img), "-", "-l", lang])
    return Run("tesseract", page, lang, group, peer.cer(ref, proc.stdout)[0], wall, cpu, proc.returncode)


def run_scanstation(img: Path, lang: str, ref: str, page: str, group: str, td: Path, jobs: int = 1) -> Run:
    out, side = td / "ss.pdf", td / "ss.txt"
    for p in (out, side):
        p.unlink(missing_ok=True)
    cmd = [
        *scanstation_cmd(),
        "ocr",
        str(img),
        "-o",
        str(out),
        "--sidecar",
        str(side),
        "--lang",
        lang,
        "--jobs",
        str(jobs),
    ]
    return _timed_run("scanstation", cmd, img, out, side, ref, page, lang, group)


def _timed_run(tool: str, cmd: list[str], img: Path, out: Path, side: Path, ref: str, page: str, lang: str,
               group: str) -> Run:
    """Run one tool's command on one page; CER from its sidecar, sizes of input and output."""
    proc, wall, cpu, _ = timed(cmd)
    ok = proc.returncode == 0 and side.exists()
    c = peer.cer(ref, side.read_text(encoding="utf-8"))[0] if ok else None
    note = "" if ok else f"FAILED rc={proc.returncode}: {proc.stderr.strip()[-300:]}"
    return Run(tool, page, lang, group, c, wall, cpu, proc.returncode,
               out.stat().st_size if out.exists() else None, img.stat().st_size, note)


def run_ocrmypdf(img: Path, lang: str, ref: str, page: str, group: str, td: Path, dpi: int) -> Run:
    out, side = td / "om.pdf", td / "om.txt"
    for p in (out, side):
        p.unlink(missing_ok=True)
    cmd = [
        "ocrmypdf",
        "--deskew",
        "-l",
        lang,
        "--jobs",
        "1",
        "--image-dpi",
        str(dpi),
        "--sidecar",
        str(side),
        "--output-type",
        "pdf",
        "--quiet",
        str(img),
        str(out),
    ]
    return _timed_run("ocrmypdf", cmd, img, out, side, ref, page, lang, group)


# ------------------------------------------------------------------------------------------ the page sets


@dataclass
class Page:
    name: str
    path: Path
    ref: str
    langs: list[str]
    group: str  # "English" / "Devanagari"
    dpi: int
    rotation: float = 0.0


def gt_pages(corpus: Path) -> list[Page]:
    pages = []
    for page, gt, langs, _psm, _note in peer.PAGES:
        path = corpus / page
        ref = (corpus / gt).read_text(encoding="utf-8")
        group = "Devanagari" if any(lang.startswith("hin") for lang in langs) else "English"
        dpi = peer.DPI.get(page, page_dpi(path))
        pages.append(Page(page, path, ref, list(langs), group, dpi))
    return pages


def rotated_pages(pages: list[Page], td: Path) -> list[Page]:
    out = []
    for p in pages:
        with Image.open(p.path) as im:
            base = im.convert("L")
        for rot in ROTATIONS:
            path = td / f"rot{rot:+.1f}_{Path(p.name).stem}.png"
            base.rotate(rot, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255).save(
                path, dpi=(p.dpi, p.dpi)
            )
            out.append(Page(f"{p.name} {rot:+.1f}°", path, p.ref, p.langs[:1], p.group, p.dpi, rot))
    return out


def synthetic_files(n: int, td: Path) -> list[tuple[Path, list[Any]]]:
    from scanstation_tools.synth import PageSpec, render_acr_page

    files = []
    for i in range(n):
        seed = 9100 + i
        specs = [
            PageSpec(seed=seed, page_no=1, content="form", noise=0.15, skew_deg=0.8 * (-1) ** i),
            PageSpec(seed=seed, page_no=2, content="english", noise=0.15, dpi=200 if i % 2 else 300),
            PageSpec(seed=seed, page_no=3, content="hindi", noise=0.15, mode="1" if i % 2 else "L"),
        ]
        pages = [render_acr_page(s) for s in specs]
        path = td / f"acr_{seed}.tif"
        first, *rest = [p.image.convert("L") for p in pages]
        first.save(path, save_all=True, append_images=rest, compression="tiff_deflate", dpi=(300, 300))
        files.append((path, pages))
    return files


def write_tiff(pages: list[Page], path: Path) -> None:
    """One multi-page TIFF of the pages, each frame keeping its own mode and resolution."""
    from PIL import TiffImagePlugin

    with path.open("w+b") as fp, TiffImagePlugin.AppendingTiffWriter(fp, new=True) as tf:
        for p in pages:
            with Image.open(p.path) as im:
                frame = im.convert("1") if im.mode == "1" else im.convert("L")
            frame.encoderinfo = {
                "compression": "group4" if frame.mode == "1" else "tiff_deflate",
                "dpi": (p.dpi, p.dpi),
            }
            frame.encoderconfig = ()
            TiffImagePlugin._save(frame, tf, str(path))
            tf.newFrame()


# ------------------------------------------------------------------------------------------ report


def f(x: float | None, n: int = 3) -> str:
    return "-" if x is None else f"{x:.{n}f}"


def ratio(a: float | None, b: float | None, n: int = 2) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.{n}f}"


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--jobs", type=int, default=2, help="cores for the document runs (both tools)")
    ap.add_argument("--synthetic", type=int, default=4, metavar="N", help="synthetic ACR files (0 skips)")
    ap.add_argument("--skip-ocrmypdf", action="store_true")
    ap.add_argument("--skip-rotated", action="store_true")
    ap.add_argument("--quick", action="store_true", help="GT pages only")
    ap.add_argument(
        "--repeat", type=int, default=3, metavar="N", help="document runs: each tool N times, medians (default 3)"
    )
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.quick:
        args.skip_rotated, args.synthetic = True, 0
    have_ocrmypdf = shutil.which("ocrmypdf") is not None and not args.skip_ocrmypdf

    load_before = os.getloadavg()
    started = time.perf_counter()
    td = Path(tempfile.mkdtemp(prefix="bench-ocr-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    SS_ENV["PYTHONPYCACHEPREFIX"] = str(td / "pycache")
    modules = ("scanstation.cli.main, scanstation_tools.ocr_command, scanstation.ocr.strategy, "
               "scanstation.pdf.searchable, scanstation.ocr.pages")
    subprocess.run(
        [scanstation_python(), "-c", f"import {modules}, scanstation.ocr.index_suggestions, "
         "drivers.image_loading"], env=SS_ENV, cwd=REPO, check=True,
    )
    runs: list[Run] = []
    docs: list[dict[str, Any]] = []
    synth: dict[str, Any] = {}
    loads: list[float] = []

    def note(r: Run) -> None:
        runs.append(r)
        loads.append(os.getloadavg()[0])
        print(
            f"  {r.tool:11} {r.page[:34]:34} {r.lang:8} CER {f(r.cer)}  {r.wall:6.2f} s wall  {r.cpu:6.2f} s CPU"
            f"{'  ' + r.note if r.note else ''}",
            file=sys.stderr,
            flush=True,
        )

    try:
        pages = gt_pages(args.corpus)
        print(f"[1/4] ground-truth pages: {len(pages)}", file=sys.stderr)
        for p in pages:
            for lang in p.langs:
                note(run_tesseract(p.path, lang, p.ref, p.name, p.group))
                note(run_scanstation(p.path, lang, p.ref, p.name, p.group, td))
                if have_ocrmypdf:
                    note(run_ocrmypdf(p.path, lang, p.ref, p.name, p.group, td, p.dpi))
        rotated: list[Page] = []
        if not args.skip_rotated:
            rotated = rotated_pages(pages, td)
            print(f"[2/4] rotated pages: {len(rotated)}", file=sys.stderr)
            for p in rotated:
                lang = p.langs[0]
                group = f"{p.group} turned ±4.9°"
                note(run_tesseract(p.path, lang, p.ref, p.name, group))
                note(run_scanstation(p.path, lang, p.ref, p.name, group, td))
                if have_ocrmypdf:
                    note(run_ocrmypdf(p.path, lang, p.ref, p.name, group, td, p.dpi))

        print("[3/4] document runs", file=sys.stderr)
        every = pages + rotated
        doc_sets = [
            ("English pages", "eng", [p for p in every if p.group == "English"]),
            ("Devanagari pages", "hin", [p for p in every if p.group == "Devanagari"]),
            ("all pages", "hin+eng", every),
        ]
        for title, lang, doc_pages in doc_sets:
            if not doc_pages:
                continue
            tiff = td / f"document-{lang}.tif"
            write_tiff(doc_pages, tiff)
            docs.append(document_runs(title, lang, tiff, doc_pages, args.jobs, td, have_ocrmypdf, args.repeat))
            print(f"  {title}: done", file=sys.stderr, flush=True)

        if args.synthetic:
            print(f"[4/4] synthetic ACR files: {args.synthetic}", file=sys.stderr)
            synth = synthetic_runs(args.synthetic, td, note)
    finally:
        shutil.rmtree(td, ignore_errors=True)
    load_after = os.getloadavg()
    report(runs, docs, synth, load_before, load_after, loads, time.perf_counter() - started, args)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "runs": [asdict(r) for r in runs],
                    "documents": docs,
                    "synthetic": synth,
                    "load_before": load_before,
                    "load_after": load_after,
                },
                indent=1,
            )
        )
    return 0


def _tool_result(
    proc: subprocess.CompletedProcess[str], wall: float, cpu: float, peak: int, out: Path | None
) -> dict[str, Any]:
    return {
        "wall": wall,
        "cpu": cpu,
        "rss": peak,
        "rc": proc.returncode,
        "pdf_bytes": out.stat().st_size if out is not None and out.exists() else None,
        "stderr": proc.stderr.strip()[-300:] if proc.returncode else "",
    }


def document_runs(
    title: str, lang: str, tiff: Path, pages: list[Page], jobs: int, td: Path, have_ocrmypdf: bool, repeat: int = 1
) -> dict[str, Any]:
    """One multi-page TIFF through plain tesseract (one process), scanstation (1 and ``jobs`` jobs) and
    ocrmypdf --deskew (``jobs`` jobs), all with ``lang``; ``repeat`` rounds of each in turn (medians)."""
    n = len(pages)
    result: dict[str, Any] = {
        "title": title,
        "lang": lang,
        "pages": n,
        "jobs": jobs,
        "input_bytes": tiff.stat().st_size,
    }
    # Every tool's command, run in rounds (one run of each per round, in turn), so that a slow spell of
    # a shared machine falls on all of them alike rather than on whichever tool it happened to meet.
    commands: dict[str, tuple[list[str], Path | None]] = {
        "tesseract": (["tesseract", str(tiff), str(td / "tess_doc"), "-l", lang], None)
    }
    # The same command with tesseract run as a program per batch instead of as a library in workers.
    env_extra: dict[str, dict[str, str]] = {f"scanstation-program_j{jobs}": {ENGINE_ENV: "program"}}
    rep_path = td / "ss_doc.json"
    for j in sorted({1, jobs}):
        out = td / f"ss_doc_j{j}.pdf"
        cmd = [*scanstation_cmd(), "ocr", str(tiff), "-o", str(out), "--sidecar", str(td / "ss_doc.txt")]
        cmd += ["--lang", lang, "--jobs", str(j)]
        if j == jobs:
            cmd += ["--report", str(rep_path)]
        commands[f"scanstation_j{j}"] = (cmd, out)
        if j == jobs:
            program_out = td / f"ss_doc_program_j{j}.pdf"
            program_cmd = [*scanstation_cmd(), "ocr", str(tiff), "-o", str(program_out), "--sidecar",
                           str(td / "ss_doc_program.txt"), "--lang", lang, "--jobs", str(j)]
            commands[f"scanstation-program_j{j}"] = (program_cmd, program_out)
    if have_ocrmypdf:
        # Its default output, PDF/A (the same work as ours), and plain PDF (the peer script's protocol).
        for key, output_type in ((f"ocrmypdf_j{jobs}", "pdfa"), (f"ocrmypdf-pdf_j{jobs}", "pdf")):
            out = td / f"om_doc_{output_type}.pdf"
            cmd = ["ocrmypdf", "--deskew", "-l", lang, "--jobs", str(jobs), "--output-type", output_type, "--quiet"]
            commands[key] = ([*cmd, str(tiff), str(out)], out)
    runs: dict[str, list[tuple[subprocess.CompletedProcess[str], float, float, int]]] = {k: [] for k in commands}
    for _round in range(max(1, repeat)):
        for key, (cmd, output) in commands.items():
            if output is not None:
                output.unlink(missing_ok=True)
            runs[key].append(timed(cmd, rss=True, env_extra=env_extra.get(key)))
    for key, (_cmd, output) in commands.items():
        results = runs[key]
        failed = [r for r in results if r[0].returncode]
        proc = failed[0][0] if failed else results[-1][0]
        wall = statistics.median(r[1] for r in results)
        cpu = statistics.median(r[2] for r in results)
        result[key] = _tool_result(proc, wall, cpu, max(r[3] for r in results), output)
    # The peer protocol's floor: one tesseract run per page (its models loaded for every page).
    walls, cpus, peaks = [], [], []
    for p in pages:
        proc, wall, cpu, peak = timed(["tesseract", str(p.path), str(td / "tess_page"), "-l", lang], rss=True)
        walls.append(wall)
        cpus.append(cpu)
        peaks.append(peak)
    result["tesseract_per_page"] = {"wall": sum(walls), "cpu": sum(cpus), "rss": max(peaks), "rc": 0}
    if rep_path.exists():
        rep = json.loads(rep_path.read_text())
        result["scanstation_pages"] = [
            {
                "label": pg["label"],
                "lang": pg["plan"]["lang"],
                "scale": pg["plan"]["scale"],
                "turn": pg["plan"]["turn"],
                "skew": pg["plan"]["skew"],
                "flatten": pg["plan"]["flatten"],
                "image": pg["image"],
                "image_bytes": pg["image_bytes"],
                "seconds": pg["seconds"],
            }
            for pg in rep["pages"]
        ]
    return result


def synthetic_runs(n: int, td: Path, note: Callable[[Run], None]) -> dict[str, Any]:
    from scanstation.ocr.index_suggestions import FIELDS

    made = right = total = 0
    wrong: list[str] = []
    for path, pages in synthetic_files(n, td):
        side, out, rep = td / "syn.txt", td / "syn.pdf", td / "syn.json"
        cmd = [
            *scanstation_cmd(),
            "ocr",
            str(path),
            "-o",
            str(out),
            "--sidecar",
            str(side),
            "--lang",
            "hin+eng",
            "--jobs",
            "1",
            "--report",
            str(rep),
            "--suggest-index",
        ]
        proc, wall, cpu, _ = timed(cmd)
        texts = side.read_text(encoding="utf-8").split("\f") if proc.returncode == 0 else [""] * len(pages)
        tess_texts = []
        for i, p in enumerate(pages):
            img = td / f"syn_{i}.png"
            p.image.save(img, dpi=(p.spec.dpi, p.spec.dpi))
            r = run_tesseract(
                img, "hin+eng", p.text, f"{path.stem} p{i + 1} {p.spec.content}", f"synthetic {p.spec.content}"
            )
            note(r)
            tess_texts.append(r)
        for i, p in enumerate(pages):
            share = 1.0 / len(pages)
            note(
                Run(
                    "scanstation",
                    f"{path.stem} p{i + 1} {p.spec.content}",
                    "hin+eng",
                    f"synthetic {p.spec.content}",
                    peer.cer(p.text, texts[i])[0],
                    wall * share,
                    cpu * share,
                    proc.returncode,
                )
            )
        suggestions = json.loads(rep.read_text())["index_suggestions"] if rep.exists() else {}
        for name in FIELDS:
            total += 1
            s = suggestions.get(name) if suggestions else None
            if s:
                made += 1
                ok = s["value"] == pages[0].fields[name]
                right += ok
                if not ok:
                    wrong.append(f"{path.stem} {name}: {s['value']!r} != {pages[0].fields[name]!r}")
    return {"files": n, "fields": total, "suggested": made, "right": right, "wrong": wrong}


def val(run: Run | None, attr: str, scale: float = 1.0) -> float | None:
    v = getattr(run, attr) if run is not None else None
    return None if v is None else v * scale


def _mean(xs: list[float]) -> float | None:
    return statistics.mean(xs) if xs else None


def report(
    runs: list[Run],
    docs: list[dict[str, Any]],
    synth: dict[str, Any],
    load_before: tuple[float, ...],
    load_after: tuple[float, ...],
    loads: list[float],
    seconds: float,
    args: argparse.Namespace,
) -> None:
    tv = subprocess.run(["tesseract", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    ov = (
        subprocess.run(["ocrmypdf", "--version"], capture_output=True, text=True).stdout.strip()
        if shutil.which("ocrmypdf")
        else "-"
    )
    L: list[str] = []
    L.append("# OCR benchmark: scanstation ocr vs plain tesseract vs ocrmypdf --deskew\n")
    L.append(
        f"{tv}; ocrmypdf {ov}; CPU: {os.cpu_count()} logical, {len(os.sched_getaffinity(0))} usable. "
        f"Load average before {load_before[0]:.2f}/{load_before[1]:.2f}/{load_before[2]:.2f}, after "
        f"{load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f}, during (1-min, sampled per run) "
        f"median {f(statistics.median(loads) if loads else None, 2)}, max {f(max(loads) if loads else None, 2)}. "
        f"Whole bench {seconds / 60:.1f} min. Document runs: median of {args.repeat} interleaved rounds "
        "(each tool once per round).\n"
    )
    L.append(
        "CER = Levenshtein / reference length after NFC + whitespace collapse (the peer script's). Time per page "
        "includes process start-up for every tool (one invocation per page); CPU = user+sys of the tool and its "
        "children.\n"
    )

    by_key: dict[tuple[str, str, str], dict[str, Run]] = {}
    for r in runs:
        by_key.setdefault((r.group, r.page, r.lang), {})[r.tool] = r
    L.append("## Per page\n")
    L.append(
        "| group | page | lang | tesseract CER | scanstation CER | ocrmypdf CER | ss/tess CER | ss ≤ tess | "
        "tess s | ss s | om s | ss/tess wall | ss/tess CPU | PDF KiB (ss) | input KiB |"
    )
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (group, page, lang), tools in by_key.items():
        t, s, o = tools.get("tesseract"), tools.get("scanstation"), tools.get("ocrmypdf")
        not_worse = "yes" if t and s and s.cer is not None and t.cer is not None and s.cer <= t.cer + 1e-12 else "NO"
        L.append(
            f"| {group} | {page} | {lang} | {f(val(t, 'cer'))} | {f(val(s, 'cer'))} | {f(val(o, 'cer'))} | "
            f"{ratio(val(s, 'cer'), val(t, 'cer'))} | {not_worse} | "
            f"{f(val(t, 'wall'), 2)} | {f(val(s, 'wall'), 2)} | {f(val(o, 'wall'), 2)} | "
            f"{ratio(val(s, 'wall'), val(t, 'wall'))} | {ratio(val(s, 'cpu'), val(t, 'cpu'))} | "
            f"{f(val(s, 'pdf_bytes', 1 / 1024), 0)} | {f(val(s, 'input_bytes', 1 / 1024), 0)} |"
        )

    L.append("\n## Per group (mean CER; time = sum over the group's pages)\n")
    L.append(
        "| group | lang | pages | tesseract | scanstation | ocrmypdf --deskew | ss better than tess | "
        "every page ≤ tess | "
        "tess s | ss s | om s | ss/tess wall | ss/tess CPU | ss pages/min | om pages/min | ss/om throughput |"
    )
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    groups: dict[tuple[str, str], list[dict[str, Run]]] = {}
    for (group, _page, lang), tools in by_key.items():
        groups.setdefault((group, lang), []).append(tools)
    summary: dict[str, Any] = {}

    def column(rows: list[dict[str, Run]], tool: str, attr: str) -> list[float]:
        return [getattr(r[tool], attr) for r in rows if tool in r and getattr(r[tool], attr) is not None]

    for (group, lang), rows in groups.items():
        col = functools.partial(column, rows)

        tc, sc, oc = _mean(col("tesseract", "cer")), _mean(col("scanstation", "cer")), _mean(col("ocrmypdf", "cer"))
        tw, sw, ow = sum(col("tesseract", "wall")), sum(col("scanstation", "wall")), sum(col("ocrmypdf", "wall"))
        tcpu, scpu = sum(col("tesseract", "cpu")), sum(col("scanstation", "cpu"))
        every = all(
            (ss_cer := r["scanstation"].cer) is not None and ss_cer <= (r["tesseract"].cer or 0.0) + 1e-12
            for r in rows
            if "scanstation" in r and "tesseract" in r
        )
        n = len(rows)
        sppm = 60 * n / sw if sw else None
        oppm = 60 * n / ow if ow else None
        summary[f"{group} {lang}"] = dict(tess=tc, ss=sc, om=oc, every=every, wall_ratio=sw / tw if tw else None)
        L.append(
            f"| {group} | {lang} | {n} | {f(tc)} | {f(sc)} | {f(oc)} | "
            f"{'yes' if sc is not None and tc is not None and sc < tc else 'NO'} | {'yes' if every else 'NO'} | "
            f"{f(tw, 1)} | {f(sw, 1)} | {f(ow, 1) if ow else '-'} | {ratio(sw, tw)} | {ratio(scpu, tcpu)} | "
            f"{f(sppm, 1)} | {f(oppm, 1)} | {ratio(sppm, oppm)} |"
        )

    for doc in docs:
        n = doc["pages"]
        L.append(
            f"\n## Document run, {doc['title']}: {n} pages in one multi-page TIFF "
            f"({doc['input_bytes'] / 1024:.0f} KiB), --lang {doc['lang']}\n"
        )
        L.append(
            "| tool | jobs | wall s | CPU s | pages/min | s/page | vs tesseract (wall) | vs tesseract (CPU) | "
            "peak RSS MiB (tree) | PDF KiB/page | PDF/input |"
        )
        L.append("|---|---|---|---|---|---|---|---|---|---|---|")
        t = doc["tesseract"]
        doc_tools: list[tuple[str, int, dict[str, Any]]] = [("tesseract, one run for the TIFF", 1, t)]
        if "tesseract_per_page" in doc:
            doc_tools.append(("tesseract, one run per page", 1, doc["tesseract_per_page"]))
        doc_tools += [
            (key.split("_j")[0], int(key.split("_j")[1]), doc[key])
            for key in doc
            if key.startswith(("scanstation_j", "scanstation-program_j", "ocrmypdf_j", "ocrmypdf-pdf_j"))
        ]
        for tool, jobs_used, d in doc_tools:
            pdfb = d.get("pdf_bytes")
            L.append(
                f"| {tool} | {jobs_used} | {d['wall']:.1f} | {d['cpu']:.1f} | {60 * n / d['wall']:.1f} | "
                f"{d['wall'] / n:.2f} | "
                f"{d['wall'] / t['wall']:.2f} | {d['cpu'] / t['cpu']:.2f} | {d['rss'] / 2**20:.0f} | "
                f"{f(pdfb / 1024 / n if pdfb else None, 0)} | {ratio(pdfb, doc['input_bytes'])} |"
                + (f" rc={d['rc']} {d.get('stderr', '')}" if d["rc"] else "")
            )
        jobs = doc["jobs"]
        ss, om, omp = doc.get(f"scanstation_j{jobs}"), doc.get(f"ocrmypdf_j{jobs}"), doc.get(f"ocrmypdf-pdf_j{jobs}")
        ss1 = doc.get("scanstation_j1")
        if ss and om and omp:
            thr, thr_pdf = om["wall"] / ss["wall"], omp["wall"] / ss["wall"]
            cpu, cpu_pdf = om["cpu"] / ss["cpu"], omp["cpu"] / ss["cpu"]
            L.append(
                f"\nThroughput, {jobs} jobs each: scanstation {60 * n / ss['wall']:.1f} pages/min; ocrmypdf --deskew "
                f"{60 * n / om['wall']:.1f} pages/min writing PDF/A (its default, the same work as ours): "
                f"**{thr:.2f}×**; {60 * n / omp['wall']:.1f} pages/min writing plain PDF: **{thr_pdf:.2f}×** "
                f"(target ≥ {TARGET_THROUGHPUT_VS_OCRMYPDF}×: {verdict(thr >= TARGET_THROUGHPUT_VS_OCRMYPDF)} / "
                f"{verdict(thr_pdf >= TARGET_THROUGHPUT_VS_OCRMYPDF)}). CPU time, ocrmypdf over scanstation: "
                f"{cpu:.2f}× (PDF/A) / {cpu_pdf:.2f}× (PDF)."
            )
            summary.setdefault("throughput_vs_ocrmypdf", {})[doc["title"]] = (thr, thr_pdf, cpu, cpu_pdf)
        program = doc.get(f"scanstation-program_j{jobs}")
        if ss and program:
            L.append(
                f"Tesseract as a library in worker processes against the program run per batch (same pages, "
                f"same jobs, same text): {program['wall'] / ss['wall']:.2f}× faster, "
                f"{program['cpu'] / ss['cpu']:.2f}× less CPU."
            )
        if ss1 and ss1.get("pdf_bytes"):
            summary.setdefault("size_vs_input", {})[doc["title"]] = (
                ss1["pdf_bytes"] / doc["input_bytes"], ss1["pdf_bytes"] / n / 1024,
            )
        if ss1:
            tr = ss1["wall"] / t["wall"]
            cr = ss1["cpu"] / t["cpu"]
            L.append(
                f"Time per page, 1 job, whole pipeline (load, preprocessing, recognition, PDF/A) against plain "
                f"tesseract reading the same TIFF in one run: **{tr:.2f}×** wall, {cr:.2f}× CPU (target ≤ "
                f"{TARGET_TIME_VS_TESSERACT}×: {verdict(tr <= TARGET_TIME_VS_TESSERACT)})."
            )
            summary.setdefault("time_vs_tesseract", {})[doc["title"]] = (tr, cr)
            per = doc.get("tesseract_per_page")
            if per:
                tr2, cr2 = ss1["wall"] / per["wall"], ss1["cpu"] / per["cpu"]
                L.append(
                    f"Against plain tesseract run once per page (the peer protocol): **{tr2:.2f}×** wall, "
                    f"{cr2:.2f}× CPU ({verdict(tr2 <= TARGET_TIME_VS_TESSERACT)})."
                )
                summary.setdefault("time_vs_tesseract_per_page", {})[doc["title"]] = (tr2, cr2)
        if "scanstation_pages" in doc:
            L.append(
                "\nPer-page choices in the document run: "
                + "; ".join(
                    f"{p['label'].split(' page ')[-1]}: {p['lang']}, scale {p['scale']}, turn {p['turn']}, "
                    f"skew {p['skew']}, "
                    f"{p['image']}"
                    for p in doc["scanstation_pages"]
                )
            )

    if synth:
        made, right, total = synth["suggested"], synth["right"], synth["fields"]
        L.append(f"\n## Index suggestions on {synth['files']} synthetic ACR files (OCR text of their pages)\n")
        L.append(
            f"Fields suggested {made}/{total} (recall {right / total:.2f}); right {right}/{made}: "
            f"**precision {right / max(1, made):.2f}**."
            + (" Wrong: " + "; ".join(synth["wrong"]) if synth["wrong"] else "")
        )

    L.append("\n## Targets\n")
    for key in ("English eng", "Devanagari hin", "Devanagari hin+eng"):
        if key in summary:
            s = summary[key]
            L.append(
                f"- {key}: mean CER {f(s['ss'])} vs tesseract {f(s['tess'])}: better on the mean "
                f"{verdict(s['ss'] is not None and s['tess'] is not None and s['ss'] < s['tess'])}; "
                f"no worse on every page {verdict(s['every'])}."
            )
    for key, s in summary.items():
        if "turned" in key and s.get("om") is not None:
            L.append(
                f"- {key}: mean CER {f(s['ss'])} vs ocrmypdf --deskew {f(s['om'])}: "
                f"{verdict(s['ss'] is not None and s['ss'] < s['om'])}."
            )
    for title, (thr, thr_pdf, cpu, cpu_pdf) in summary.get("throughput_vs_ocrmypdf", {}).items():
        L.append(
            f"- Throughput vs ocrmypdf --deskew, same cores, {title}: {thr:.2f}× against its PDF/A output "
            f"({verdict(thr >= TARGET_THROUGHPUT_VS_OCRMYPDF)}), {thr_pdf:.2f}× against its plain-PDF output "
            f"({verdict(thr_pdf >= TARGET_THROUGHPUT_VS_OCRMYPDF)}); CPU time {cpu:.2f}× / {cpu_pdf:.2f}×."
        )
    for title, (rel, kib) in summary.get("size_vs_input", {}).items():
        L.append(
            f"- PDF size, {title}: {kib:.0f} KiB/page, {rel:.2f}× the input's size "
            f"({verdict(rel < 1.0)}: aim below the input's)."
        )
    for title, (tr, cr) in summary.get("time_vs_tesseract", {}).items():
        L.append(
            f"- Time per page vs plain tesseract reading the whole TIFF in one run (1 job), {title}: {tr:.2f}× wall, "
            f"{cr:.2f}× CPU "
            f"({verdict(tr <= TARGET_TIME_VS_TESSERACT)})."
        )
    for title, (tr, cr) in summary.get("time_vs_tesseract_per_page", {}).items():
        L.append(
            f"- Time per page vs plain tesseract run once per page, {title}: {tr:.2f}× wall, {cr:.2f}× CPU "
            f"({verdict(tr <= TARGET_TIME_VS_TESSERACT)})."
        )
    single = [(r.wall, r.cpu) for r in runs if r.tool == "scanstation" and r.group in ("English", "Devanagari")]
    floor = [(r.wall, r.cpu) for r in runs if r.tool == "tesseract" and r.group in ("English", "Devanagari")]
    if single and floor:
        L.append(
            f"- One page per invocation (interpreter start-up paid per page), ground-truth pages: "
            f"{sum(w for w, _ in single) / sum(w for w, _ in floor):.2f}× wall, "
            f"{sum(c for _, c in single) / sum(c for _, c in floor):.2f}× CPU of plain tesseract."
        )
    L.extend(_peer_protocol_lines(runs))
    print("\n".join(L), flush=True)


def _peer_protocol_lines(runs: list[Run]) -> list[str]:
    """Throughput against ocrmypdf as the shared peer script measures it: one invocation per page, one
    job, ocrmypdf --deskew writing plain PDF, on the pages it runs ocrmypdf on (upright and turned 4.9°),
    and on every ground-truth and turned page."""
    wanted = {(name, lang) for name, lang in peer.OCRMYPDF_PAGES}
    wanted |= {(f"{name} +4.9°", lang) for name, lang in peer.OCRMYPDF_PAGES}
    lines = []
    for title, pick in (
        ("the peer script's ocrmypdf pages (upright and +4.9°)", lambda r: (r.page, r.lang) in wanted),
        ("every ground-truth and turned page", lambda r: not r.group.startswith("synthetic")),
    ):
        tools: dict[str, dict[tuple[str, str], Run]] = {}
        for r in runs:
            if pick(r) and r.rc == 0:
                tools.setdefault(r.tool, {})[(r.page, r.lang)] = r
        common = set.intersection(*(set(t) for t in tools.values())) if len(tools) == 3 else set()
        if not common:
            continue
        wall = {tool: sum(t[k].wall for k in common) for tool, t in tools.items()}
        speed = wall["ocrmypdf"] / wall["scanstation"]
        lines.append(
            f"- Peer protocol (one invocation per page, 1 job, ocrmypdf plain PDF), {title}, {len(common)} runs: "
            f"scanstation {wall['scanstation']:.1f} s, ocrmypdf {wall['ocrmypdf']:.1f} s, tesseract "
            f"{wall['tesseract']:.1f} s; throughput vs ocrmypdf **{speed:.2f}×** (target ≥ "
            f"{TARGET_THROUGHPUT_VS_OCRMYPDF:.1f}×: {verdict(speed >= TARGET_THROUGHPUT_VS_OCRMYPDF)}); "
            f"ocrmypdf takes {wall['ocrmypdf'] / wall['tesseract']:.2f}× plain tesseract's time."
        )
    return lines


if __name__ == "__main__":
    sys.exit(main())

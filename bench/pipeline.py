"""ScanStation pipeline benchmark: capture-to-vault speed, OCR drain rate, ocrmypdf ratio, peak memory.

Run by hand (never as a timed unit test), from the repository root::

    .venv/bin/python bench/pipeline.py                      # full default run (takes a while)
    .venv/bin/python bench/pipeline.py --pages 6 --memory-pages 40 --skip-ocrmypdf   # quick check

See bench/README.md for what each number means and the protocol used for the ocrmypdf comparison.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import psutil  # noqa: E402
from PIL import Image  # noqa: E402

from drivers.base import CapturedPage  # noqa: E402
from scanstation.config import Config, load_config, render_config  # noqa: E402
from scanstation.facade import Station  # noqa: E402
from scanstation.vault.identity import StationKey, generate_identity  # noqa: E402

CORPUS = REPO.parent / "shared" / "corpus"
CORPUS_SUFFIXES = {".png", ".tif", ".tiff", ".jpg", ".jpeg", ".pdf"}
TARGET_CAPTURE_PPM = 60.0  # a production ADF scanner
TARGET_PEAK_MIB = 1024.0
MIB = 1024 * 1024
DATA_BASE = Path("/var/tmp")  # station data dirs hold only ciphertext
SHM = Path("/dev/shm")  # plaintext work files of the ocrmypdf peer stay in RAM
SAMPLE_EVERY_S = 0.2


# ------------------------------------------------------------------------------------------ helpers


def _ram_base() -> str | None:
    return str(SHM) if SHM.is_dir() and os.access(SHM, os.W_OK) else None


def _ppm(pages: float, seconds: float) -> float:
    return pages / seconds * 60.0 if seconds > 0 else float("nan")


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _fmt(v: float | None, nd: int = 1) -> str:
    if v is None or v != v:  # None or NaN
        return "n/a"
    return f"{v:.{nd}f}"


def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unavailable ({e})"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unavailable"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _cgroup_cpu_quota() -> str:
    with contextlib.suppress(OSError):
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return "none" if quota == "max" else f"{int(quota) / int(period):.2f} CPUs"
    return "unknown"


def _spin(seconds: float) -> int:
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def _spin_child(seconds: float, out: Any) -> None:  # multiprocessing target (module level: picklable)
    out.put(_spin(seconds))


def effective_cores(seconds: float = 1.0) -> float:
    """How many cores' worth of CPU two busy processes really get (the sandbox may give ~1)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_spin_child, args=(seconds, q)) for _ in range(2)]
    one = ctx.Process(target=_spin_child, args=(seconds, q))
    one.start()
    single = q.get()
    one.join()
    for p in procs:
        p.start()
    both = q.get() + q.get()
    for p in procs:
        p.join()
    return both / single if single else float("nan")


def machine_info(ocr_workers: int) -> dict[str, Any]:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "cpus_usable": affinity,
        "cgroup_cpu_quota": _cgroup_cpu_quota(),
        "effective_cores_2proc": round(effective_cores(), 2),
        "memory_total_mib": round(psutil.virtual_memory().total / MIB),
        "python": platform.python_version(),
        "tesseract": _first_line(["tesseract", "--version"]),
        "ocrmypdf": _first_line(["ocrmypdf", "--version"]) if shutil.which("ocrmypdf") else "not installed",
        "ocr_workers": ocr_workers,
        "kernel": platform.release(),
    }


class RssSampler:
    """RSS of a process plus all its descendants, sampled every 0.2 s in a thread; keeps the peak."""

    def __init__(self, pid: int | None = None, interval: float = SAMPLE_EVERY_S) -> None:
        self._proc = psutil.Process(pid or os.getpid())
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.peak = 0
        self.peak_children = 0
        self.samples = 0
        self.max_procs = 0

    def measure(self) -> tuple[int, int, int]:
        """(total RSS, RSS of descendants only, number of processes) right now."""
        own = self._proc.memory_info().rss
        kids = 0
        n = 1
        for child in self._proc.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                kids += child.memory_info().rss
                n += 1
        return own + kids, kids, n

    def _run(self) -> None:
        while not self._stop.is_set():
            total, kids, n = self.measure()
            self.peak = max(self.peak, total)
            self.peak_children = max(self.peak_children, kids)
            self.max_procs = max(self.max_procs, n)
            self.samples += 1
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _own_cpu_seconds() -> float:
    """CPU of this process plus every descendant already waited for (OCR workers after close, ocrmypdf)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _machine_busy_seconds() -> float:
    c = psutil.cpu_times()
    return c.user + c.nice + c.system + getattr(c, "irq", 0.0) + getattr(c, "softirq", 0.0)


class CpuAccount:
    """How much CPU other processes on the machine used during a phase (numbers from a busy machine mislead).

    Other = machine-wide busy CPU seconds minus this process tree's; read it after every child of the
    phase has been waited for (the station closed, ocrmypdf returned), else their CPU counts as "other".
    """

    def __enter__(self) -> CpuAccount:
        self._t, self._own, self._busy = time.perf_counter(), _own_cpu_seconds(), _machine_busy_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._t
        self.own = _own_cpu_seconds() - self._own
        self.other = max(0.0, _machine_busy_seconds() - self._busy - self.own)

    def as_dict(self) -> dict[str, float]:
        wall = self.wall or float("nan")
        return {"wall_s": round(self.wall, 1), "own_cores": self.own / wall, "other_cores": self.other / wall}


class EventLog:
    """Station event sink: timestamps (perf_counter) of acknowledgements, cleaning and OCR results."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.times: dict[str, list[float]] = {}
        self.errors: list[str] = []

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        now = time.perf_counter()
        with self._lock:
            self.times.setdefault(kind, []).append(now)
            if kind in ("page_error", "page_ocr_failed", "input_rejected", "device_error"):
                self.errors.append(f"{kind}: {data}")

    def last(self, kind: str) -> float | None:
        with self._lock:
            ts = self.times.get(kind, [])
            return max(ts) if ts else None

    def count(self, kind: str, until: float | None = None) -> int:
        with self._lock:
            ts = self.times.get(kind, [])
            return len(ts) if until is None else sum(1 for t in ts if t <= until)


# ------------------------------------------------------------------------------------------ page sets


@dataclass
class BenchPage:
    image: Image.Image
    dpi: int
    label: str
    doc: str  # pages with the same doc key form one ACR document (one searchable PDF)


@dataclass
class PageSet:
    name: str
    pages: list[BenchPage]
    note: str = ""
    load_seconds: float = 0.0


def synthetic_specs(n: int, seed0: int = 7100) -> list[Any]:
    """N distinct 300-dpi A4 ACR pages: 3 pages per employee file, small skew, some noise."""
    from scanstation_tools.synth import PageSpec

    rng = random.Random(seed0)
    specs = []
    for i in range(n):
        specs.append(
            PageSpec(
                seed=seed0 + i // 3,
                page_no=i % 3 + 1,
                dpi=300,
                skew_deg=round(rng.uniform(-2.0, 2.0), 2),
                noise=rng.choice((0.0, 0.15, 0.3)),
            )
        )
    return specs


def synthetic_set(n: int) -> PageSet:
    from scanstation_tools.synth import render_acr_page

    t = time.perf_counter()
    pages = [
        BenchPage(render_acr_page(spec).image, 300, f"synth seed {spec.seed} p{spec.page_no}", f"S{spec.seed}")
        for spec in synthetic_specs(n)
    ]
    w, h = pages[0].image.size if pages else (0, 0)
    mode = pages[0].image.mode if pages else "-"
    return PageSet("synthetic", pages, f"{n} distinct A4 ACR pages, 300 dpi, {w}x{h} {mode}", time.perf_counter() - t)


def corpus_set(directory: Path) -> PageSet:
    """Every page image of the corpus at its own resolution (PDF pages rendered at 300 dpi by the driver code)."""
    from drivers.image_loading import load_pages

    t = time.perf_counter()
    pages: list[BenchPage] = []
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in CORPUS_SUFFIXES and p.is_file())
    with tempfile.TemporaryDirectory(prefix="bench-render-", dir=_ram_base()) as tmp:
        for path in files:
            for lp in load_pages(path, 300, Path(tmp)):
                img = lp.image
                img.load()
                pages.append(BenchPage(img, lp.dpi, lp.label, f"C{path.stem}"))
    mp = sum(p.image.width * p.image.height for p in pages) / 1e6
    note = f"{len(pages)} pages from {len(files)} files in {directory}, own dpi, {mp:.1f} Mpx in all"
    return PageSet("corpus", pages, note, time.perf_counter() - t)


# ------------------------------------------------------------------------------------------ station set-up


@dataclass
class BenchStation:
    root: Path
    config: Config
    key: StationKey


def make_station(tag: str, ocr_workers: int, analysis_workers: int | None) -> BenchStation:
    """A fresh data dir under /var/tmp, new keys, and a TOML config file written for it."""
    root = Path(tempfile.mkdtemp(prefix=f"scanstation-bench-{tag}-", dir=DATA_BASE if DATA_BASE.is_dir() else None))
    os.chmod(root, 0o700)
    station_secret, _station_recipient = generate_identity()
    _portal_secret, portal_recipient = generate_identity()  # the portal keeps its secret; we only need the recipient
    key = StationKey.from_secret(station_secret)
    del station_secret, _portal_secret
    values: dict[str, dict[str, Any]] = {
        "station": {"id": "bench", "unit": "Bench Unit", "data_dir": str(root / "data"), "operator": "bench"},
        "keys": {"portal_recipient": portal_recipient},
        "ocr": {"enabled": True, "languages": "hin+eng", "workers": ocr_workers},
    }
    if analysis_workers is not None:
        values["pipeline"] = {"analysis_workers": analysis_workers}
    cfg_path = root / "station.toml"
    cfg_path.write_text(render_config(values), encoding="utf-8")
    return BenchStation(root, load_config(cfg_path), key)


# ------------------------------------------------------------------------------------------ measures 1 + 2


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def run_station(ps: PageSet, ocr_workers: int, analysis_workers: int | None, profile: Path | None,
                scanner_ppm: float = 0.0) -> dict[str, Any]:
    """Capture every page as fast as a scanner callback would (or paced at ``scanner_ppm``, a real
    scanner's speed), OCR behind; then drain, assemble PDFs."""
    bs = make_station(ps.name, ocr_workers, analysis_workers)
    events = EventLog()
    n = len(ps.pages)
    res: dict[str, Any] = {"set": ps.name, "pages": n, "note": ps.note, "data_dir": str(bs.root)}
    try:
        with CpuAccount() as cpu, RssSampler() as rss:
            station = Station(bs.config, bs.key, events=events)
            try:
                batch_name = f"bench-{ps.name}"
                batch = station.store.open_batch(batch_name, bs.config.station.unit, bs.config.station.operator)
                docs = {}
                for p in ps.pages:
                    if p.doc not in docs:
                        docs[p.doc] = station.open_document(batch_name, p.doc, acr_period="2019-20")
                latencies: list[float] = []
                backlog: list[int] = []  # pages acknowledged but not yet OCR'd, after each acknowledgement
                interval = 60.0 / scanner_ppm if scanner_ppm > 0 else 0.0
                prof = cProfile.Profile() if profile else None
                t0 = time.perf_counter()
                if prof:
                    prof.enable()
                for i, p in enumerate(ps.pages):
                    cp = CapturedPage(
                        image=p.image, dpi=p.dpi, device="bench", side="front", sheet=i + 1,
                        source_key=f"bench:{ps.name}:{i}", label=p.label,
                    )
                    if interval:  # the sheet leaves the scanner at its own pace, not ours
                        time.sleep(max(0.0, t0 + i * interval - time.perf_counter()))
                    ts = time.perf_counter()
                    page = station.add_page(batch, cp, document=docs[p.doc])
                    latencies.append(time.perf_counter() - ts)
                    now = time.perf_counter()
                    backlog.append(i + 1 - events.count("page_ocr_done", now))
                    if page is None:
                        raise RuntimeError(f"page {i} was not acknowledged (duplicate source key?)")
                t_cap = time.perf_counter()
                if prof:
                    prof.disable()
                    prof.dump_stats(str(profile))
                    res["profile"] = _profile_summary(prof)
                ocr_at_cap = events.count("page_ocr_done", t_cap)
                processed_at_cap = events.count("page_processed", t_cap)
                if not station.wait_idle(include_ocr=False, timeout=max(600.0, 30.0 * n)):
                    raise RuntimeError("cleaning did not catch up within the time limit")
                t_clean = time.perf_counter()
                ocr_at_clean = events.count("page_ocr_done", t_clean)
                # OCR and then the compact pages (made once OCR has room): OCR's end is its last page read
                drained = station.wait_idle(include_ocr=True, timeout=max(1800.0, 120.0 * n))
                t_all = time.perf_counter()
                t_ocr = max(t_cap, events.last("page_ocr_done") or t_cap)
                counts = station.store.counts(batch.id)
                pdf_bytes = 0
                for doc in docs.values():
                    obj = station.assemble_pdf(doc.id)
                    pdf_bytes += obj.size
                t_pdf = time.perf_counter()
            finally:
                station.close()
        ocr_done = counts.get("ocr_done", 0)
        ocr_expected = ocr_done + counts.get("ocr_failed", 0) + counts.get("ocr_pending", 0)
        backlog_at_cap = ocr_expected - ocr_at_cap
        cap_s, clean_s, ocr_s, pdf_s = t_cap - t0, t_clean - t0, t_ocr - t0, t_pdf - t0
        res.update(
            {
                "capture_seconds": round(cap_s, 3),
                "capture_ppm": _ppm(n, cap_s),
                "add_page_ms_p50": 1000 * _pct(latencies, 0.5),
                "add_page_ms_p95": 1000 * _pct(latencies, 0.95),
                "add_page_ms_max": 1000 * max(latencies),
                "scanner_ppm": scanner_ppm,
                "ocr_backlog_max": max(backlog),
                "processed_at_capture_end": processed_at_cap,
                "ocr_done_at_capture_end": ocr_at_cap,
                "ocr_backlog_at_capture_end": backlog_at_cap,
                "cleaned_seconds": round(clean_s, 3),
                "cleaned_ppm": _ppm(n, clean_s),
                "ocr_done_at_clean_end": ocr_at_clean,
                "ocr_drained": drained,
                "ocr_seconds": round(ocr_s, 3),
                "ocr_done": ocr_done,
                "ocr_failed": counts.get("ocr_failed", 0),
                "ocr_skipped_blank": counts.get("ocr_skipped", 0),
                "ocr_ppm_whole_run": _ppm(ocr_done, ocr_s),
                "ocr_drain_seconds": round(t_ocr - t_cap, 3),
                "ocr_drain_ppm": _ppm(ocr_done - ocr_at_cap, t_ocr - t_cap),
                "ocr_ppm_per_worker": _ppm(ocr_done, ocr_s) / ocr_workers,
                "documents": len(docs),
                "compact_done_seconds": round(t_all - t_cap, 3),
                "pdf_seconds": round(t_pdf - t_all, 3),
                "pdf_mib": pdf_bytes / MIB,
                "end_to_end_seconds": round(pdf_s, 3),
                "end_to_end_ppm": _ppm(n, pdf_s),
                "peak_rss_mib": rss.peak / MIB,
                "peak_children_mib": rss.peak_children / MIB,
                "cpu": cpu.as_dict(),
                "errors": events.errors[:10],
            }
        )
        return res
    finally:
        shutil.rmtree(bs.root, ignore_errors=True)


def _profile_summary(prof: cProfile.Profile, top: int = 18) -> str:
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).strip_dirs().sort_stats("cumulative").print_stats(top)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------ ocrmypdf peer


def run_ocrmypdf(ps: PageSet, jobs: int) -> dict[str, Any]:
    """The same pages as ONE multi-page PDF (img2pdf, lossless, each page's dpi) through ocrmypdf -j JOBS.

    Timed: the ocrmypdf run only (input preparation is reported separately, as the station's pages
    were also prepared in memory before its clock started).  Work matched to the station's: orientation
    (--rotate-pages), deskew (--deskew), OCR hin+eng, PDF/A-2b output (--output-type pdfa).
    """
    import img2pdf

    from scanstation.cleanup.pipeline import encode_png

    work = Path(tempfile.mkdtemp(prefix="bench-ocrmypdf-", dir=_ram_base()))
    res: dict[str, Any] = {"set": ps.name, "pages": len(ps.pages), "jobs": jobs}
    try:
        t = time.perf_counter()
        blobs = []
        for p in ps.pages:
            img = p.image
            img.info["dpi"] = (p.dpi, p.dpi)
            blobs.append(encode_png(img, 1))
        src = work / "in.pdf"
        src.write_bytes(img2pdf.convert(blobs))
        del blobs
        res["prepare_seconds"] = round(time.perf_counter() - t, 3)
        out = work / "out.pdf"
        cmd = [
            "ocrmypdf", "-l", "hin+eng", "-j", str(jobs), "--rotate-pages", "--deskew",
            "--output-type", "pdfa", "--quiet", str(src), str(out),
        ]
        env = {k: v for k, v in os.environ.items() if k != "OMP_THREAD_LIMIT"}  # ocrmypdf applies its own policy
        env["TMPDIR"] = str(work)
        res["command"] = " ".join([*cmd[:-2], "in.pdf", "out.pdf"])
        with CpuAccount() as cpu, RssSampler() as rss:
            t = time.perf_counter()
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=max(1800, 120 * len(ps.pages)))
            secs = time.perf_counter() - t
        res["returncode"] = proc.returncode
        if proc.returncode != 0:
            res["stderr"] = proc.stderr[-2000:]
        res["seconds"] = round(secs, 3)
        res["ppm"] = _ppm(len(ps.pages), secs) if proc.returncode == 0 else float("nan")
        res["peak_rss_mib"] = rss.peak / MIB
        res["cpu"] = cpu.as_dict()
        if out.exists():
            import pikepdf

            with pikepdf.open(out) as pdf:
                res["out_pages"] = len(pdf.pages)
            res["out_mib"] = out.stat().st_size / MIB
        return res
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------------------------------ peak memory (child)


def memory_child(params: dict[str, Any]) -> dict[str, Any]:
    """Runs in a fresh process so the other phases' page sets do not count: capture N pages, OCR behind.

    The page source holds the distinct synthetic pages as PNG bytes and decodes one per delivery, as a
    driver hands over one page at a time; its share is in the baseline measured before the station starts.
    """
    from scanstation.cleanup.pipeline import encode_png
    from scanstation_tools.synth import render_acr_page

    n_pages: int = params["pages"]
    t = time.perf_counter()
    source = []
    for spec in synthetic_specs(params["distinct"]):
        img = render_acr_page(spec).image
        img.info["dpi"] = (300, 300)
        source.append(encode_png(img, 6))
        del img
    gc.collect()
    render_s = time.perf_counter() - t
    bs = make_station("memory", params["ocr_workers"], params["analysis_workers"])
    events = EventLog()
    sampler = RssSampler()
    baseline, _, _ = sampler.measure()
    checkpoints: list[dict[str, Any]] = []
    try:
        with sampler:
            station = Station(bs.config, bs.key, events=events)
            try:
                batch = station.store.open_batch("bench-memory", bs.config.station.unit, bs.config.station.operator)
                t0 = time.perf_counter()
                for i in range(n_pages):
                    data = source[i % len(source)]
                    img = Image.open(io.BytesIO(data))
                    img.load()
                    cp = CapturedPage(img, 300, "bench", "front", i + 1, f"bench:memory:{i}", f"mem {i}")
                    if station.add_page(batch, cp) is None:
                        raise RuntimeError(f"page {i} not acknowledged")
                    del img, cp
                    if (i + 1) % 100 == 0 or i + 1 == n_pages:
                        now, kids, nproc = sampler.measure()
                        checkpoints.append(
                            {
                                "pages": i + 1,
                                "seconds": round(time.perf_counter() - t0, 1),
                                "rss_mib": now / MIB,
                                "children_mib": kids / MIB,
                                "processes": nproc,
                                "peak_so_far_mib": max(sampler.peak, now) / MIB,
                                "processed": events.count("page_processed"),
                                "ocr_done": events.count("page_ocr_done"),
                            }
                        )
                t_cap = time.perf_counter() - t0
                caught_up = station.wait_idle(include_ocr=False, timeout=max(600.0, 10.0 * n_pages))
                t_clean = time.perf_counter() - t0
                after, _, _ = sampler.measure()
                ocr_done = events.count("page_ocr_done")
                pending = len(station.store.pages_to_ocr())
            finally:
                station.close()
    finally:
        shutil.rmtree(bs.root, ignore_errors=True)
    return {
        "pages": n_pages,
        "distinct": len(source),
        "render_seconds": round(render_s, 1),
        "baseline_mib": baseline / MIB,
        "source_mib": sum(len(b) for b in source) / MIB,
        "capture_seconds": round(t_cap, 1),
        "capture_ppm": _ppm(n_pages, t_cap),
        "cleaning_caught_up": caught_up,
        "cleaned_seconds": round(t_clean, 1),
        "rss_after_cleaning_mib": after / MIB,
        "ocr_done": ocr_done,
        "ocr_pending_at_close": pending,
        "peak_rss_mib": sampler.peak / MIB,
        "peak_children_mib": sampler.peak_children / MIB,
        "max_processes": sampler.max_procs,
        "samples": sampler.samples,
        "checkpoints": checkpoints,
        "errors": events.errors[:10],
    }


def run_memory(pages: int, distinct: int, ocr_workers: int, analysis_workers: int | None) -> dict[str, Any]:
    params = {"pages": pages, "distinct": distinct, "ocr_workers": ocr_workers, "analysis_workers": analysis_workers}
    with tempfile.TemporaryDirectory(prefix="bench-mem-", dir=_ram_base()) as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_memory-child", json.dumps(params), "--json", str(out)]
        with CpuAccount() as cpu:
            proc = subprocess.run(cmd, cwd=REPO, text=True, capture_output=True)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"memory phase failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr[-3000:]}")
        result = json.loads(out.read_text())
        result["cpu"] = cpu.as_dict()
        return result


# ------------------------------------------------------------------------------------------ report


def _line(label: str, value: str, target: str = "", verdict: str = "") -> None:
    tail = f"   target {target:<10} {verdict}" if target else ""
    print(f"  {label:<48} {value:>14}{tail}")


def print_cpu(cpu: dict[str, float] | None, what: str) -> None:
    if not cpu:
        return
    _line(f"  CPU cores used on average: {what} / other processes",
          f"{_fmt(cpu['own_cores'], 2)} / {_fmt(cpu['other_cores'], 2)}")
    if (cpu.get("other_cores") or 0) > 0.25:
        print("  !! other processes were busy during this phase: the numbers above are pessimistic")


def print_set(st: dict[str, Any], peer: dict[str, Any] | None, workers: int) -> None:
    print(f"\n== {st['set']} pages: {st['note']}")
    cap = st["capture_ppm"]
    if st.get("scanner_ppm"):
        print(f"  Measure 1 - capture paced like a {st['scanner_ppm']:.0f} pages/min scanner; OCR running behind")
        keeps_up = st["ocr_drain_seconds"] <= 2 * 60.0 / st["scanner_ppm"] * (workers + 1)
        _line("OCR finished after the last sheet, s", _fmt(st["ocr_drain_seconds"], 1),
              f"<= {2 * 60.0 / st['scanner_ppm'] * (workers + 1):.0f}", _verdict(keeps_up))
        _line("  OCR backlog: most at any time / at the last sheet, pages",
              f"{st['ocr_backlog_max']} / {st['ocr_backlog_at_capture_end']}")
    else:
        print("  Measure 1 - capture to vault (add_page on the main thread, back to back; OCR running behind)")
    _line("capture-to-vault pages/min", _fmt(cap), f">= {TARGET_CAPTURE_PPM:.0f}", _verdict(cap >= TARGET_CAPTURE_PPM))
    _line("  capture time (first delivery -> last ack), s", _fmt(st["capture_seconds"], 2))
    _line("  add_page latency p50 / p95 / max, ms",
          f"{st['add_page_ms_p50']:.0f} / {st['add_page_ms_p95']:.0f} / {st['add_page_ms_max']:.0f}")
    _line("  cleaned by end of capture / OCR'd by then", f"{st['processed_at_capture_end']} / "
          f"{st['ocr_done_at_capture_end']} of {st['pages']}")
    _line("pages/min until cleaning caught up", _fmt(st["cleaned_ppm"]))
    _line("  cleaning caught up after, s", _fmt(st["cleaned_seconds"], 2))
    print(f"  Measure 2 - OCR backlog (tesseract hin+eng, {workers} niced workers)")
    _line("OCR pages/min, whole run (first capture -> empty)", _fmt(st["ocr_ppm_whole_run"]))
    _line("OCR backlog at end of capture, pages", str(st["ocr_backlog_at_capture_end"]))
    _line("OCR drain rate after capture, pages/min", _fmt(st["ocr_drain_ppm"]))
    _line("  drain time after capture, s", _fmt(st["ocr_drain_seconds"], 1))
    _line("  OCR done / failed / skipped (blank)",
          f"{st['ocr_done']} / {st['ocr_failed']} / {st['ocr_skipped_blank']}")
    _line("  OCR pages/min per worker", _fmt(st["ocr_ppm_per_worker"]))
    if not st["ocr_drained"]:
        print("  !! OCR backlog did not drain within the time limit")
    print("  End to end (capture + clean + OCR + compact pages + searchable PDF/A per document)")
    if st.get("compact_done_seconds") is not None:
        _line("  compact pages all made after the last sheet, s", _fmt(st["compact_done_seconds"], 1))
    _line(f"  {st['documents']} PDFs assembled in, s", _fmt(st["pdf_seconds"], 2))
    _line("station end-to-end pages/min", _fmt(st["end_to_end_ppm"]))
    _line("  end-to-end time, s", _fmt(st["end_to_end_seconds"], 1))
    _line("  peak RSS, bench+station process + children / children, MiB",
          f"{_fmt(st['peak_rss_mib'], 0)} / {_fmt(st['peak_children_mib'], 0)}")
    print_cpu(st.get("cpu"), "station")
    if peer is not None:
        print("  Peer - ocrmypdf, same pages, same run")
        print(f"    $ {peer['command']}")
        if peer.get("returncode") != 0:
            print(f"  !! ocrmypdf failed (exit {peer.get('returncode')}): {peer.get('stderr', '')[-500:]}")
        else:
            _line("ocrmypdf pages/min", _fmt(peer["ppm"]))
            _line("  ocrmypdf time, s (input PDF prepared before, in)",
                  f"{peer['seconds']:.1f} ({peer['prepare_seconds']:.1f})")
            _line("  output pages / MiB", f"{peer.get('out_pages', '?')} / {_fmt(peer.get('out_mib'), 1)}")
            ratio = st["end_to_end_ppm"] / peer["ppm"] if peer["ppm"] else float("nan")
            st["ratio_vs_ocrmypdf"] = ratio
            _line("ratio station end-to-end / ocrmypdf (x)", _fmt(ratio, 2))
            print_cpu(peer.get("cpu"), "ocrmypdf")
    if st.get("errors"):
        print("  station errors/events:", *st["errors"], sep="\n    ")
    if st.get("profile"):
        print("  cProfile of the capture loop (main thread, cumulative):")
        print("    " + st["profile"].replace("\n", "\n    "))


def print_memory(m: dict[str, Any]) -> None:
    print(f"\n== peak memory over a {m['pages']}-page batch (synthetic, {m['distinct']} distinct pages cycled; "
          "OCR running behind)")
    print(f"  page source: {m['distinct']} PNGs = {m['source_mib']:.0f} MiB, decoded one per delivery; "
          f"process baseline before Station start {m['baseline_mib']:.0f} MiB (included below)")
    print(f"  {'pages':>6} {'t (s)':>7} {'RSS MiB':>8} {'children':>9} {'procs':>6} {'peak so far':>12} "
          f"{'cleaned':>8} {'OCR done':>9}")
    for c in m["checkpoints"]:
        print(f"  {c['pages']:>6} {c['seconds']:>7.1f} {c['rss_mib']:>8.0f} {c['children_mib']:>9.0f} "
              f"{c['processes']:>6} {c['peak_so_far_mib']:>12.0f} {c['processed']:>8} {c['ocr_done']:>9}")
    rss = [c["rss_mib"] for c in m["checkpoints"]]
    flat = ""
    if len(rss) >= 2:
        spread = max(rss[1:] if len(rss) > 2 else rss) - min(rss[1:] if len(rss) > 2 else rss)
        flat = f"{spread:.0f} MiB spread across checkpoints after the first"
        m["rss_spread_mib"] = spread
    _line("peak RSS, station process + all children, MiB", _fmt(m["peak_rss_mib"], 0),
          f"< {TARGET_PEAK_MIB:.0f}", _verdict(m["peak_rss_mib"] < TARGET_PEAK_MIB))
    _line("  peak RSS of children alone (OCR workers), MiB", _fmt(m["peak_children_mib"], 0))
    _line("  peak minus baseline, MiB", _fmt(m["peak_rss_mib"] - m["baseline_mib"], 0))
    if flat:
        _line("  flatness", flat)
    _line("  capture pages/min (incl. per-page PNG decode)", _fmt(m["capture_ppm"]))
    _line("  cleaning caught up / after, s", f"{m['cleaning_caught_up']} / {m['cleaned_seconds']:.0f}")
    _line("  sustained cleaning pages/min (pages / that time)", _fmt(_ppm(m["pages"], m["cleaned_seconds"])))
    _line("  OCR pages/min while capturing + cleaning", _fmt(_ppm(m["ocr_done"], m["cleaned_seconds"])))
    _line("  RSS after cleaning caught up, MiB", _fmt(m["rss_after_cleaning_mib"], 0))
    _line("  OCR'd before close / still pending", f"{m['ocr_done']} / {m['ocr_pending_at_close']}")
    _line("  RSS samples taken (every 0.2 s)", str(m["samples"]))
    print_cpu(m.get("cpu"), "memory phase")
    if m.get("errors"):
        print("  station errors/events:", *m["errors"], sep="\n    ")


def summary(results: dict[str, Any]) -> None:
    print("\n== summary")
    for st in results["station"]:
        cap = st["capture_ppm"]
        line = (f"  {st['set']:<24} capture {cap:6.1f} p/min [{_verdict(cap >= TARGET_CAPTURE_PPM)} >= 60]  "
                f"OCR whole-run {st['ocr_ppm_whole_run']:5.1f} p/min, drain {st['ocr_drain_ppm']:5.1f} p/min  "
                f"end-to-end {st['end_to_end_ppm']:5.1f} p/min")
        if "ratio_vs_ocrmypdf" in st:
            line += f"  vs ocrmypdf x{st['ratio_vs_ocrmypdf']:.2f}"
        print(line)
    m = results.get("memory")
    if m:
        print(f"  memory     peak {m['peak_rss_mib']:.0f} MiB over {m['pages']} pages "
              f"[{_verdict(m['peak_rss_mib'] < TARGET_PEAK_MIB)} < 1024]")


# ------------------------------------------------------------------------------------------ main


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_jsonable(v) for v in obj]
    return obj


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=30, help="synthetic pages (default 30; the corpus uses all its pages)")
    ap.add_argument("--memory-pages", type=int, default=500, help="pages in the peak-memory batch (0 skips it)")
    ap.add_argument("--memory-distinct", type=int, default=12, help="distinct synthetic pages cycled in that batch")
    ap.add_argument("--skip-ocrmypdf", action="store_true", help="do not run the ocrmypdf peer")
    ap.add_argument("--scanner-ppm", type=float, default=0.0,
                    help="pace capture like a scanner of this speed (e.g. 60) and report whether OCR keeps up")
    ap.add_argument("--skip-corpus", action="store_true", help="synthetic pages only")
    ap.add_argument("--corpus", type=Path, default=CORPUS, help=f"corpus directory (default {CORPUS})")
    ap.add_argument("--ocr-workers", type=int, default=2, help="station OCR workers and ocrmypdf -j (default 2)")
    ap.add_argument("--analysis-workers", type=int, default=None, help="override pipeline.analysis_workers")
    ap.add_argument("--profile", type=Path, default=None,
                    help="cProfile the capture loop of each set; writes FILE.<set>.prof and prints the top")
    ap.add_argument("--json", type=Path, default=None, help="also write all numbers to this JSON file")
    ap.add_argument("--compare-compact", action="store_true",
                    help="run each set twice, side by side: first without the compact page encoding after "
                         "cleaning (the station before issue 16), then as it is")
    ap.add_argument("--_memory-child", dest="memory_child", default=None, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def _drop_compact_pages(station: Any) -> None:
    """Station._compact_loop for --compare-compact's first run: cleaned pages are left without a compact page."""
    while not station._closing.is_set():
        with station._busy_cv:
            station._compacting.clear()
            station._busy_cv.notify_all()
            station._busy_cv.wait(timeout=0.2)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # run the finally blocks: close the station, remove temp dirs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if args.memory_child is not None:
        result = memory_child(json.loads(args.memory_child))
        args.json.write_text(json.dumps(_jsonable(result)))
        return 0

    started = time.time()
    info = machine_info(args.ocr_workers)
    print("ScanStation pipeline benchmark", time.strftime("%Y-%m-%d %H:%M:%S"))
    print(f"  CPU: {info['cpu_model']}; {info['logical_cpus']} logical CPUs, {info['cpus_usable']} usable, "
          f"cgroup quota {info['cgroup_cpu_quota']}; 2 busy processes get {info['effective_cores_2proc']:.2f} cores")
    print(f"  RAM {info['memory_total_mib']} MiB; Python {info['python']}; kernel {info['kernel']}")
    print(f"  {info['tesseract']}; ocrmypdf {info['ocrmypdf']}")
    print(f"  station: OCR hin+eng, {args.ocr_workers} workers (nice 10); analysis workers "
          f"{args.analysis_workers or 'config default'}; data dirs under {DATA_BASE}")

    sets: list[Callable[[], PageSet]] = []
    if args.pages > 0:
        sets.append(lambda: synthetic_set(args.pages))
    if not args.skip_corpus:
        sets.append(lambda: corpus_set(args.corpus))
    results: dict[str, Any] = {"machine": info, "args": {k: str(v) for k, v in vars(args).items()},
                               "station": [], "ocrmypdf": []}
    for make in sets:
        ps = make()
        print(f"\n-- loaded {ps.name}: {ps.note} (prepared in {ps.load_seconds:.1f} s, before timing)", flush=True)
        prof = args.profile.with_suffix(f".{ps.name}.prof") if args.profile else None
        if args.compare_compact:
            # The station before issue 16, on the same pages in the same run: the compact worker drops its pages
            # unencoded (assembly would then encode them: that cost is printed with the PDFs).
            from unittest import mock

            from scanstation.facade import Station

            print("  [without the compact page encoding after cleaning]", flush=True)
            with mock.patch.object(Station, "_compact_loop", _drop_compact_pages):
                before = run_station(ps, args.ocr_workers, args.analysis_workers, None, args.scanner_ppm)
            before["set"] = f"{ps.name} (no compact)"
            print_set(before, None, args.ocr_workers)
            results["station"].append(before)
            gc.collect()
            print("  [as it is: the compact page made once OCR has room]", flush=True)
        st = run_station(ps, args.ocr_workers, args.analysis_workers, prof, args.scanner_ppm)
        peer = None
        if not args.skip_ocrmypdf:
            if shutil.which("ocrmypdf"):
                peer = run_ocrmypdf(ps, args.ocr_workers)
                results["ocrmypdf"].append(peer)
            else:
                print("  (ocrmypdf not installed: peer skipped)")
        print_set(st, peer, args.ocr_workers)
        results["station"].append(st)
        del ps
        gc.collect()
        sys.stdout.flush()

    if args.memory_pages > 0:
        print(f"\n-- memory phase: {args.memory_pages} pages in a fresh process ...", flush=True)
        m = run_memory(args.memory_pages, min(args.memory_distinct, max(1, args.memory_pages)),
                       args.ocr_workers, args.analysis_workers)
        results["memory"] = m
        print_memory(m)

    summary(results)
    print(f"\n  total benchmark wall time {time.time() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(_jsonable(results), indent=2))
        print(f"  numbers written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The stored forms bench/size.py compares: ScanStation's compact page and its peers, one cleaned page each.

Each ``make_*`` function takes the cleaned page (the lossless reference) and writes what the encoder
stores plus the image a reader sees (decoded, or rendered by pdftoppm) into the scratch directory, and
returns a :class:`Stored` with its bytes and time.  Nothing here runs OCR; bench/size.py does.
"""

from __future__ import annotations

import functools
import io
import math
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# One tesseract/OpenJPEG thread per process: the bench decides the parallelism (--jobs), and on a shared
# 2-core machine a tool that takes every core would slow the others it is compared with.
TOOL_ENV = dict(os.environ, OMP_THREAD_LIMIT="1")
JPEG_QUALITY = 85
# recode_pdf's background downsampling: the examples in archive-pdf-tools' README (its package metadata) use 3,
# scanning at 300 dpi included; its default is 1 (a full-resolution background, larger).
RECODE_BG_DOWNSAMPLE = 3
# Renderers of the stored PDFs.  pdftocairo is the default: poppler's cairo backend (the one GNOME's viewers
# use) draws a page's pixels exactly at the page's own resolution.  pdftoppm (poppler's Splash backend)
# smooths 1-bit images even at 1:1 — a lossless G4 page comes back with 12 % of its pixels grey and the
# small print read worse (lept_pageseg2.tif: CER +0.73 against its own pixels) — which would charge every
# CCITT layer (ours, ocrmypdf's, recode_pdf's mask) with a loss the encoding did not make.
RENDERERS = ("pdftocairo", "pdftoppm", "mupdf")
# JPEG 2000 at a matched size: stop when within this fraction of the target bytes.
JP2_SIZE_TOLERANCE = 0.03


@dataclass
class Stored:
    """One stored form of one page."""

    encoder: str
    nbytes: int = 0
    wall_ms: float = 0.0
    cpu_ms: float = 0.0
    view: Path | None = None  # what a reader sees, as a lossless PNG at the page's resolution
    method: str = ""  # ScanStation: the encoding chosen; PDFs: the image filters inside
    image_bytes: int | None = None  # PDFs: bytes of the image streams; the rest is the PDF's fixed overhead
    layers: tuple[tuple[str, int], ...] = ()
    note: str = ""
    error: str = ""
    cer: float | None = None
    cer_delta: float | None = None
    # the reference's words it reads (ground truth, else the lossless page's OCR; order ignored, see size.words_read)
    words_read: int | None = None
    words_delta: int | None = None  # minus: words of the reference the lossless page reads and this one does not
    # its reading's CER against the lossless page's reading (what CER Δ is where there is no ground truth)
    reading_delta: float | None = None
    delta_e: dict[str, float] = field(default_factory=dict)
    # every region's ΔE2000 (kind, origin "mark"/"form", pixels, mean, p95), for the JSON
    regions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def overhead(self) -> int | None:
        return None if self.image_bytes is None else self.nbytes - self.image_bytes

    def as_dict(self) -> dict[str, Any]:
        return {
            "encoder": self.encoder, "bytes": self.nbytes, "wall_ms": round(self.wall_ms, 1),
            "cpu_ms": round(self.cpu_ms, 1), "method": self.method, "image_bytes": self.image_bytes,
            "overhead_bytes": self.overhead, "layers": [list(x) for x in self.layers], "note": self.note,
            "error": self.error, "cer": self.cer, "cer_delta": self.cer_delta,
            "words_read": self.words_read, "words_delta": self.words_delta, "reading_delta": self.reading_delta,
            "delta_e": self.delta_e,
            "regions": self.regions,
        }


@dataclass
class Ref:
    """The cleaned page as the encoders get it."""

    image: Image.Image
    dpi: int
    png: Path  # the same pixels as a PNG with its dpi (input of the command-line peers)
    hocr: Path | None  # tesseract's hOCR of it (recode_pdf needs one)
    work: Path  # this page's scratch directory
    renderer: str = "pdftocairo"  # what draws a stored PDF for the reader: pdftocairo, pdftoppm or mupdf


# ------------------------------------------------------------------------------------------ running tools


def run_tool(cmd: Sequence[str], timeout: float = 600) -> tuple[int, str, float, float]:
    """Run a command; (exit code, stderr, wall s, CPU s of it and its descendants).

    The CPU time comes from wait4 on this very child, so the tesseract runs the bench has going in
    other threads at the same time are not counted in it.
    """
    t0 = time.perf_counter()
    with open(os.devnull, "wb") as null, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(list(cmd), stdout=null, stderr=err, env=TOOL_ENV)
        try:
            _pid, status, usage = _wait4(proc.pid, timeout)
            proc.returncode = os.waitstatus_to_exitcode(status)
        except TimeoutError:
            proc.kill()
            _pid, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = -9
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    return proc.returncode, stderr, time.perf_counter() - t0, usage.ru_utime + usage.ru_stime


def _wait4(pid: int, timeout: float) -> tuple[int, int, Any]:
    deadline = time.monotonic() + timeout
    while True:
        wpid, status, usage = os.wait4(pid, os.WNOHANG)
        if wpid:
            return wpid, status, usage
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(0.01)


def timed_call(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, wall s, CPU s of this process) of an in-process encoder.

    The process's CPU also counts the bench's own thread computing CER and colour error meanwhile, so it
    errs against the in-process encoders (ScanStation's among them), never in their favour."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


# ------------------------------------------------------------------------------------------ views


def save_view(image: Image.Image, path: Path, dpi: int) -> Path:
    image.save(path, format="PNG", compress_level=1, dpi=(dpi, dpi))
    return path


def view_mode(ref: Image.Image) -> str:
    return "RGB" if ref.mode == "RGB" else "L"


def fit_to(image: Image.Image, size: tuple[int, int], mode: str) -> Image.Image:
    """The rendered page on the reference's pixel grid: a renderer may round the page one pixel larger or
    smaller; pad with white or crop (never resample, which would itself blur the page)."""
    image = image.convert(mode)
    if image.size == size:
        return image
    canvas = Image.new(mode, size, "white")
    canvas.paste(image.crop((0, 0, min(size[0], image.width), min(size[1], image.height))), (0, 0))
    return canvas


def render_pdf(pdf: Path, ref: Ref, stem: str) -> tuple[Path | None, str]:
    """Draw page 1 at the page's own resolution (its pixels line up with the reference's), grey pages in
    grey and colour pages in RGB, with ``ref.renderer``.

    Returns (the view, a note).  When poppler reports errors drawing the page, MuPDF draws it instead and
    the note says so: a reader with a poppler-based viewer does not see that page as its producer meant.
    """
    mode = view_mode(ref.image)
    base = ref.work / stem
    out = base.with_suffix(".png")
    problem = ""
    if ref.renderer != "mupdf":
        tool = ["pdftocairo", "-png"] if ref.renderer == "pdftocairo" else ["pdftoppm", "-png"]
        cmd = [*tool, "-r", str(ref.dpi), "-singlefile", *(["-gray"] if mode == "L" else []), str(pdf), str(base)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=TOOL_ENV, timeout=300)
        errors = [line for line in proc.stderr.splitlines() if "rror" in line]
        if proc.returncode == 0 and out.exists() and not errors:
            with Image.open(out) as im:
                fitted = fit_to(im, ref.image.size, mode)
            return save_view(fitted, out, ref.dpi), ""
        problem = "poppler: " + ("; ".join(sorted(set(errors)))[:160] or f"{tool[0]} exit {proc.returncode}")
    try:
        import pymupdf
    except ImportError:
        return (out if out.exists() else None), problem
    with pymupdf.open(str(pdf)) as doc:
        pix = doc[0].get_pixmap(dpi=ref.dpi, colorspace=pymupdf.csGRAY if mode == "L" else pymupdf.csRGB)
        drawn = Image.frombytes(mode, (pix.width, pix.height), pix.samples)
    return save_view(fit_to(drawn, ref.image.size, mode), out, ref.dpi), (
        f"{problem}; read as MuPDF draws it" if problem else "")


def decode_view(data: bytes, ref: Ref, stem: str) -> Path:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return save_view(fit_to(im, ref.image.size, view_mode(ref.image)), ref.work / f"{stem}.png", ref.dpi)


# ------------------------------------------------------------------------------------------ PDF accounting


def pdf_images(data: bytes) -> tuple[int, str]:
    """(bytes of every image stream on page 1, masks and forms included; their filters, one word per image,
    a chain joined by "+", e.g. "JPX JPX Flate" or "Flate+DCT")."""
    import pikepdf

    total, filters, seen = 0, [], set()

    def walk(resources: Any) -> None:
        nonlocal total
        xobjects = resources.get("/XObject") if resources is not None else None
        if xobjects is None:
            return
        for _name, xo in xobjects.items():
            if xo.objgen in seen:
                continue
            seen.add(xo.objgen)
            if xo.get("/Subtype") == "/Form":
                walk(xo.get("/Resources"))
                continue
            for img in (xo, xo.get("/SMask"), xo.get("/Mask")):
                if isinstance(img, pikepdf.Stream) and (img is xo or img.objgen not in seen):
                    seen.add(img.objgen)
                    total += len(img.read_raw_bytes())
                    f = img.get("/Filter")
                    names = [str(x) for x in f] if isinstance(f, pikepdf.Array) else [str(f)] if f else ["raw"]
                    filters.append("+".join(n.lstrip("/").replace("Decode", "").replace("CCITTFax", "CCITT")
                                            for n in names))

    with pikepdf.open(io.BytesIO(data)) as pdf:
        walk(pdf.pages[0].get("/Resources"))
    return total, " ".join(filters)


def _pdf_stored(encoder: str, data: bytes, pdf: Path, ref: Ref, wall: float, cpu: float) -> Stored:
    image_bytes, filters = pdf_images(data)
    view, note = render_pdf(pdf, ref, f"{encoder}-view")
    return Stored(encoder, len(data), wall * 1e3, cpu * 1e3, view, filters, image_bytes, note=note)


# ------------------------------------------------------------------------------------------ the encoders


def make_scanstation(ref: Ref) -> Stored:
    from scanstation.pdf.page_encoding import encode_page

    page, wall, cpu = timed_call(lambda: encode_page(ref.image, ref.dpi, label=ref.png.stem))
    path = ref.work / "scanstation.pdf"
    path.write_bytes(page.pdf)
    out = _pdf_stored("scanstation", page.pdf, path, ref, wall, cpu)
    out.method, out.layers = page.method, tuple(page.layers)
    return out


def make_png(ref: Ref) -> Stored:
    # Pillow's default level 6: level 9 takes several times longer on a noisy scan for <0.1 % fewer bytes
    # (measured: 4,646,363 vs 4,646,908 bytes at level 1 on a noise-0.3 A4 page); the station's own PNGs use 1.
    def enc() -> bytes:
        buf = io.BytesIO()
        ref.image.save(buf, format="PNG", compress_level=6, dpi=(ref.dpi, ref.dpi))
        return buf.getvalue()

    data, wall, cpu = timed_call(enc)
    return Stored("png", len(data), wall * 1e3, cpu * 1e3, ref.png, "lossless")


def make_jpeg(ref: Ref) -> Stored:
    def enc() -> bytes:
        buf = io.BytesIO()
        ref.image.convert(view_mode(ref.image)).save(buf, format="JPEG", quality=JPEG_QUALITY,
                                                       dpi=(ref.dpi, ref.dpi))
        return buf.getvalue()

    data, wall, cpu = timed_call(enc)
    return Stored("jpeg", len(data), wall * 1e3, cpu * 1e3, decode_view(data, ref, "jpeg-view"), f"q{JPEG_QUALITY}")


def make_jp2_matched(ref: Ref, target: int) -> Stored:
    """JPEG 2000 (Pillow/OpenJPEG, 9/7 irreversible wavelet) at ``target`` bytes: the rate is searched.

    OpenJPEG's rate mode lands within a few hundred bytes of raw/ratio, so the first guess is usually
    the answer; the search corrects the JP2 wrapper's overhead.  Time = the final encode alone (a real
    encoder given a size budget would not run the search per page).
    """
    img = ref.image.convert(view_mode(ref.image))
    raw = img.width * img.height * len(img.getbands())

    def enc(ratio: float) -> bytes:
        buf = io.BytesIO()
        img.save(buf, format="JPEG2000", quality_mode="rates", quality_layers=[ratio], irreversible=True)
        return buf.getvalue()

    ratio = max(1.0, raw / max(1, target))
    data, wall, cpu = b"", 0.0, 0.0
    for _ in range(5):
        data, wall, cpu = timed_call(functools.partial(enc, ratio))
        if abs(len(data) - target) <= JP2_SIZE_TOLERANCE * target or ratio <= 1.0:
            break
        ratio = max(1.0, ratio * len(data) / target)
    return Stored("jp2", len(data), wall * 1e3, cpu * 1e3, decode_view(data, ref, "jp2-view"),
                  f"{raw / max(1, len(data)):.0f}:1")


def make_recode_pdf(ref: Ref, exe: str) -> Stored:
    if ref.hocr is None:
        return Stored("recode_pdf", error="no hOCR of the page (tesseract failed)")
    out = ref.work / "recode.pdf"
    cmd = [exe, "-I", str(ref.png), "-T", str(ref.hocr), "-o", str(out), "-D", str(ref.dpi),
           "--mask-compression", "ccitt", "-J", "pillow", "--bg-downsample", str(RECODE_BG_DOWNSAMPLE),
           "--tmp-dir", str(ref.work)]
    rc, err, wall, cpu = run_tool(cmd)
    if rc != 0 or not out.exists():
        return Stored("recode_pdf", wall_ms=wall * 1e3, error=f"exit {rc}: {_tail(err)}")
    return _pdf_stored("recode_pdf", out.read_bytes(), out, ref, wall, cpu)


def make_ocrmypdf(ref: Ref) -> Stored:
    out = ref.work / "ocrmypdf.pdf"
    # --tesseract-timeout 0: no OCR (its text layer is not what is measured, and it would cost ~4 s a
    # page); the page is still converted to PDF/A and optimised.
    cmd = ["ocrmypdf", "--optimize", "3", "--tesseract-timeout", "0", "--output-type", "pdfa",
           "--image-dpi", str(ref.dpi), "--jobs", "1", "--quiet", str(ref.png), str(out)]
    rc, err, wall, cpu = run_tool(cmd)
    if rc != 0 or not out.exists():
        return Stored("ocrmypdf", wall_ms=wall * 1e3, error=f"exit {rc}: {_tail(err)}")
    return _pdf_stored("ocrmypdf", out.read_bytes(), out, ref, wall, cpu)


def _tail(text: str, n: int = 300) -> str:
    lines = [line for line in text.strip().splitlines() if "Warning" not in line and "warnings.warn" not in line]
    return " | ".join(lines)[-n:]


# ------------------------------------------------------------------------------------------ colour


def rgb_array(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)

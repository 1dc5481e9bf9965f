"""Safe decoding of image files and PDFs into page images ("1", "L" or "RGB"), refusing bad input clearly."""

# Everything here treats the file as hostile: the format is sniffed from its bytes (never its name), only
# a short list of Pillow decoders may run (Pillow would otherwise hand EPS files to ghostscript), each page
# is size-checked before it is decoded or rendered, and every decoder failure becomes an InputError naming
# the file and page.  A bad page of a multi-page file does not cost the good pages: pass ``on_error`` to
# collect per-page problems and keep going.
#
# PDFs are opened with pikepdf *without* qpdf's recovery, because recovery "repairs" a truncated file by
# silently dropping the pages it lost.  Pages are rendered one at a time by pdftoppm (poppler-utils) or,
# if that is missing, ghostscript, into ``tmp_dir``; each rendered file is deleted as soon as it is read.
#
# The station never runs this in its own process: drivers.decode_process runs it in a fresh child with
# memory and CPU limits (drivers.decode_worker).  There a decoder that runs out of memory raises
# MemoryError (or the renderer dies of it); both become "needs more than <the limit> to decode".

from __future__ import annotations

import contextlib
import math
import os
import re
import resource
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Generator, Iterator
from io import BytesIO
from pathlib import Path
from typing import NamedTuple

from PIL import (
    BmpImagePlugin,
    Image,
    JpegImagePlugin,
    PngImagePlugin,
    PpmImagePlugin,
    TiffImagePlugin,
    WebPImagePlugin,
)

from drivers.base import ColorMode
from drivers.errors import ExternalToolError, InputError
from drivers.process_guard import child_preexec

MAX_PAGE_PIXELS = 120_000_000  # ~A3 at 600 dpi colour; anything bigger is a mistake or a decompression bomb
MAX_FILE_BYTES = 1 << 30
DEFAULT_DPI = 300
RENDER_TIMEOUT_S = 120.0
# What pdftoppm (C++) and gs print when an allocation fails under the memory limit.
_OUT_OF_MEMORY = re.compile(r"bad_alloc|out of memory|cannot allocate memory|VMerror", re.IGNORECASE)

# Pillow plugin ids allowed to run.  "PPM" covers PBM, PGM, PPM and PNM.
IMAGE_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "PPM", "WEBP")  # JPEG also opens MPO (camera JPEGs)
# Their plugins, registered here: with every allowed format registered, Image.open never loads Pillow's
# forty-odd other plugins (0.05 s of every start-up; and formats we refuse need not even be parsed).
_PLUGINS = (BmpImagePlugin, JpegImagePlugin, PngImagePlugin, PpmImagePlugin, TiffImagePlugin, WebPImagePlugin)
# Formats whose extra frames are pages (an animated WebP or APNG is a picture, not a document).
_MULTIPAGE_FORMATS = {"TIFF"}

ErrorHandler = Callable[[InputError], None]


class LoadedPage(NamedTuple):
    image: Image.Image  # mode "1", "L" or "RGB"
    dpi: int
    label: str  # "name.tif page 3"
    page_number: int  # 1-based, within the file


def load_pages(
    path: Path,
    resolution: int = DEFAULT_DPI,
    tmp_dir: Path | None = None,
    *,
    mode: ColorMode = ColorMode.GRAY,
    on_error: ErrorHandler | None = None,
    max_pixels: int = MAX_PAGE_PIXELS,
) -> Generator[LoadedPage, None, None]:
    """Yield every page of an image file or PDF.

    ``resolution`` and ``mode`` apply to PDF rendering only; image files keep their own pixels and dpi
    (from metadata, else 300).  A problem with the whole file raises InputError.  A problem with one page
    is passed to ``on_error`` and the next page follows; without ``on_error`` it is raised.
    ``tmp_dir`` receives rendered PDF pages (give a private RAM-backed directory); without one, a private
    directory under /dev/shm (or the system temp dir) is used and removed afterwards.
    """
    path = Path(path)
    if _sniff(_read_file(path, head_only=True)) == "pdf":
        with _render_dir(tmp_dir) as out_dir:
            yield from _pdf_pages(path, resolution, mode, out_dir, on_error, max_pixels)
    else:
        yield from _image_pages(path, _read_file(path), on_error, max_pixels)


def memory_reason(verb: str = "decode") -> str:
    """"needs more than 2 GiB to decode": the reason given when this process's memory limit was hit."""
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if limit == resource.RLIM_INFINITY:
        return f"needs more memory than the station has to {verb}"
    return f"needs more than {size_text(limit)} to {verb}"


def vm_peak() -> int:
    """This process's peak address space in bytes (0 where unknown)."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmPeak:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def ran_out_of_memory(peak_before: int) -> bool:
    """Whether a failure since ``peak_before`` (a :func:`vm_peak`) was the memory limit.

    Some decoders (qpdf's content-stream parser among them) turn a failed allocation into a generic
    "errors while decoding"; under a memory limit, an address space that grew past half of it during the
    failed call says what happened (buffers grow by doubling, so the allocation that failed was the
    next doubling).
    """
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if limit == resource.RLIM_INFINITY:
        return False
    peak = vm_peak()
    return peak > peak_before and peak >= limit // 2


def size_text(nbytes: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= size:
            value = nbytes / size
            return f"{value:g} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{nbytes} bytes"


def _report(error: InputError, on_error: ErrorHandler | None) -> None:
    if on_error is None:
        raise error
    on_error(error)


def _read_file(path: Path, *, head_only: bool = False) -> bytes:
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise InputError(str(path), "not a regular file")
        if size == 0:
            raise InputError(str(path), "the file is empty (0 bytes)")
        if size > MAX_FILE_BYTES:
            raise InputError(str(path), f"the file is too large ({size / 2**20:.0f} MB; limit "
                                        f"{MAX_FILE_BYTES / 2**20:.0f} MB)")
        with path.open("rb") as stream:
            return stream.read(1024) if head_only else stream.read()
    except OSError as exc:
        raise InputError(str(path), f"cannot read the file ({exc.strerror or exc})") from exc


def _sniff(data: bytes) -> str:
    """"pdf" or "image" (anything else is left to Pillow, whose refusal is then explained)."""
    head = data[:1024]
    if b"%PDF-" in head:  # the spec allows junk before the header within the first 1 KB
        return "pdf"
    return "image"


def _describe_unknown(data: bytes) -> str:
    head = data[:8]
    if head.startswith(b"PK\x03\x04"):
        return "it is a ZIP archive or an Office document (.docx, .xlsx, .odt), not an image or PDF"
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        return "it is an old Microsoft Office document, not an image or PDF"
    if head.startswith(b"GIF8"):
        return "GIF images are not accepted; convert it to PNG or TIFF"
    sample = data[:512]
    if sample and all(32 <= b < 127 or b in (9, 10, 13) for b in sample):
        return "it is a text file, not an image or PDF"
    return "it is not a supported image (PNG, JPEG, TIFF, BMP, PNM, WebP) or PDF"


# ---------------------------------------------------------------------------------------------------
# Image files


def _image_pages(path: Path, data: bytes, on_error: ErrorHandler | None,
                 max_pixels: int) -> Iterator[LoadedPage]:
    with warnings.catch_warnings(record=True) as caught:
        # We enforce our own pixel limit below; Pillow's warning (89 MP) would otherwise stop valid pages in
        # strict environments, and other decoder warnings (odd EXIF, ...) are not reasons to refuse a page.
        warnings.simplefilter("always")
        try:
            image = Image.open(BytesIO(data), formats=IMAGE_FORMATS)
        except Image.DecompressionBombError as exc:
            raise InputError(str(path), f"the image is too large to be a page ({exc})") from exc
        except MemoryError as exc:
            raise InputError(str(path), memory_reason()) from exc
        except Image.UnidentifiedImageError as exc:
            raise InputError(str(path), _describe_unknown(data)) from exc
        except Exception as exc:
            # Header parsing of untrusted data can fail in many ways (struct.error, ValueError, ...).
            raise InputError(str(path), f"the image header is damaged ({exc})") from exc
        del caught[:]

    with image:
        frame_count = 1
        if image.format in _MULTIPAGE_FORMATS:
            try:
                frame_count = int(getattr(image, "n_frames", 1))
            except MemoryError as exc:
                raise InputError(str(path), memory_reason()) from exc
            except Exception as exc:
                # A broken page directory: the first page may still be readable.
                _report(InputError(str(path), f"the page list is damaged; reading page 1 only ({exc})"),
                        on_error)
        for index in range(frame_count):
            number = index + 1
            source = f"{path} page {number}"
            try:
                with warnings.catch_warnings(record=True):
                    warnings.simplefilter("always")
                    if index:
                        image.seek(index)
                    page = _decode_frame(image, source, max_pixels)
            except InputError as exc:
                _report(exc, on_error)
                continue
            except MemoryError:
                _report(InputError(source, memory_reason()), on_error)
                continue
            except Exception as exc:
                # Decoders of damaged data raise OSError, SyntaxError, ValueError, zlib/struct errors ...
                # all of them mean "this page is damaged".
                _report(InputError(source, f"the page is damaged or truncated ({exc})"), on_error)
                if isinstance(exc, EOFError):
                    break
                continue
            yield LoadedPage(page, _image_dpi(image), f"{path.name} page {number}", number)


def _decode_frame(image: Image.Image, source: str, max_pixels: int) -> Image.Image:
    width, height = image.size
    if width <= 0 or height <= 0:
        raise InputError(source, f"the page has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise InputError(
            source,
            f"the page is too large ({width}x{height} = {width * height / 1e6:.0f} megapixels; limit "
            f"{max_pixels / 1e6:.0f}); it may be a decompression bomb",
        )
    image.load()
    return normalise_mode(image, source)


def normalise_mode(image: Image.Image, source: str) -> Image.Image:
    """A new image in "1", "L" or "RGB"; transparency is flattened onto white paper."""
    mode = image.mode
    if mode in ("1", "L", "RGB"):
        return image.copy()
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        return _sixteen_bit_to_l(image)
    if mode == "P":
        if "transparency" in image.info:
            return _flatten(image.convert("RGBA"))
        palette = image.getpalette() or []
        triples = [palette[i:i + 3] for i in range(0, len(palette), 3)]
        if all(r == g == b for r, g, b in triples):
            return image.convert("L")  # a grey palette stays grey
        return image.convert("RGB")
    if mode in ("RGBA", "RGBa", "LA", "La", "PA"):
        flat = _flatten(image.convert("RGBA"))
        return flat.convert("L") if mode in ("LA", "La") else flat
    if mode in ("CMYK", "YCbCr", "RGBX", "HSV"):
        return image.convert("RGB")
    raise InputError(source, f"unsupported pixel format {mode!r} (e.g. floating-point or Lab images); "
                             "save it as 8-bit grey or RGB")


def _flatten(rgba: Image.Image) -> Image.Image:
    paper = Image.new("RGB", rgba.size, (255, 255, 255))
    paper.paste(rgba, mask=rgba.getchannel("A"))
    return paper


def _sixteen_bit_to_l(image: Image.Image) -> Image.Image:
    import numpy as np  # here, not at the top: the decoder process starts faster without it

    values = np.asarray(image).astype(np.int64)
    if image.mode == "I" and values.size and values.min() >= 0 and values.max() <= 255:
        scaled = values  # an 8-bit image stored as 32-bit integers
    else:
        # 16-bit samples are full scale at 65535: keep the high byte.
        scaled = np.clip(values, 0, 65535) >> 8
    return Image.fromarray(scaled.astype(np.uint8), "L")


def _image_dpi(image: Image.Image) -> int:
    dpi = image.info.get("dpi")
    try:
        value = round(float(dpi[0])) if isinstance(dpi, tuple) else round(float(dpi)) if dpi else 0
    except (TypeError, ValueError):
        value = 0
    # 0, 1 (JFIF aspect-ratio only) or absurd values are not a resolution.
    return value if 10 <= value <= 9600 else DEFAULT_DPI


# ---------------------------------------------------------------------------------------------------
# PDFs


@contextlib.contextmanager
def _render_dir(tmp_dir: Path | None) -> Iterator[Path]:
    if tmp_dir is not None:
        tmp_dir.mkdir(parents=True, exist_ok=True)
        yield tmp_dir
        return
    shm = Path("/dev/shm")
    base = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None  # RAM-backed where possible
    with tempfile.TemporaryDirectory(prefix="scanstation-render-", dir=base) as name:
        yield Path(name)


def pdf_renderer() -> str:
    """The PDF rasteriser to use: "pdftoppm" (poppler-utils) or "gs" (ghostscript)."""
    for tool in ("pdftoppm", "gs"):
        if shutil.which(tool):
            return tool
    raise ExternalToolError("No PDF renderer found: install poppler-utils (pdftoppm) or ghostscript (gs).")


def _pdf_pages(path: Path, resolution: int, mode: ColorMode, out_dir: Path, on_error: ErrorHandler | None,
               max_pixels: int) -> Iterator[LoadedPage]:
    import pikepdf

    try:
        pdf = pikepdf.open(path, attempt_recovery=False)
    except pikepdf.PasswordError as exc:
        raise InputError(str(path), "the PDF is password-protected; ask the sender for an unprotected copy") \
            from exc
    except MemoryError as exc:
        raise InputError(str(path), memory_reason()) from exc
    except Exception as exc:
        raise InputError(str(path), f"the PDF is damaged or truncated ({exc})") from exc
    with pdf:
        if pdf.is_encrypted:
            # Only an owner password: readable, but rasterising it would strip the author's restrictions
            # without anyone deciding to.  Decrypt deliberately first (qpdf --decrypt).
            raise InputError(str(path), "the PDF is encrypted (usage restrictions); decrypt it first")
        try:
            count = len(pdf.pages)
        except MemoryError as exc:
            raise InputError(str(path), memory_reason()) from exc
        except Exception as exc:
            raise InputError(str(path), f"the PDF page tree is damaged ({exc})") from exc
        if count == 0:
            raise InputError(str(path), "the PDF has no pages")
        tool = pdf_renderer()
        for index in range(count):
            number = index + 1
            source = f"{path} page {number}"
            try:
                _check_pdf_page(pdf, index, resolution, source, max_pixels)
                image = render_pdf_page(path, number, resolution, mode, out_dir, tool=tool, source=source,
                                        max_pixels=max_pixels)
            except InputError as exc:
                _report(exc, on_error)
                continue
            yield LoadedPage(image, resolution, f"{path.name} page {number}", number)


def _check_pdf_page(pdf: object, index: int, resolution: int, source: str, max_pixels: int) -> None:
    import pikepdf

    assert isinstance(pdf, pikepdf.Pdf)
    peak_before = vm_peak()
    try:
        page = pdf.pages[index]
        x0, y0, x1, y1 = (float(v) for v in page.cropbox)
        unit = float(page.obj.get("/UserUnit", 1))
        pikepdf.parse_content_stream(page)  # a damaged content stream renders as a silently blank page
    except MemoryError as exc:  # a compressed content stream that expands to gigabytes
        raise InputError(source, memory_reason()) from exc
    except Exception as exc:
        if ran_out_of_memory(peak_before):  # qpdf reports a failed allocation as a decoding error
            raise InputError(source, memory_reason()) from exc
        raise InputError(source, f"the PDF page is damaged ({exc})") from exc
    width = math.ceil(abs(x1 - x0) * unit / 72 * resolution)
    height = math.ceil(abs(y1 - y0) * unit / 72 * resolution)
    if width * height > max_pixels:
        raise InputError(
            source,
            f"the page is too large to render at {resolution} dpi ({width}x{height} = "
            f"{width * height / 1e6:.0f} megapixels; limit {max_pixels / 1e6:.0f})",
        )
    if width == 0 or height == 0:
        raise InputError(source, "the PDF page has no area")


def render_pdf_page(path: Path, number: int, resolution: int, mode: ColorMode, out_dir: Path, *,
                    tool: str | None = None, source: str = "",
                    max_pixels: int = MAX_PAGE_PIXELS) -> Image.Image:
    """Rasterise page ``number`` (1-based) with pdftoppm or gs; the rendered file is deleted at once."""
    tool = tool or pdf_renderer()
    source = source or f"{path} page {number}"
    ext = {ColorMode.LINEART: "pbm", ColorMode.GRAY: "pgm", ColorMode.COLOR: "ppm"}[mode]
    handle, name = tempfile.mkstemp(prefix="page-", dir=out_dir)
    os.close(handle)
    base = Path(name)
    out = base.with_name(base.name + "." + ext)
    if tool == "pdftoppm":
        flag = {ColorMode.LINEART: ["-mono"], ColorMode.GRAY: ["-gray"], ColorMode.COLOR: []}[mode]
        # -singlefile writes exactly <base>.<ext>; the page range picks one page.
        cmd = ["pdftoppm", "-r", str(resolution), "-f", str(number), "-l", str(number), "-singlefile", *flag,
               str(path), str(base)]
    else:
        device = {ColorMode.LINEART: "pbmraw", ColorMode.GRAY: "pgmraw", ColorMode.COLOR: "ppmraw"}[mode]
        cmd = ["gs", "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-dUseCropBox", f"-sDEVICE={device}",
               f"-r{resolution}", f"-dFirstPage={number}", f"-dLastPage={number}", f"-sOutputFile={out}",
               str(path)]
    try:
        try:
            result = subprocess.run(cmd, capture_output=True, timeout=RENDER_TIMEOUT_S, check=False,
                                    preexec_fn=child_preexec())
        except subprocess.TimeoutExpired as exc:
            raise InputError(source, f"rendering took longer than {RENDER_TIMEOUT_S:g} s") from exc
        except OSError as exc:
            raise ExternalToolError(f"{tool} could not be started: {exc}") from exc
        if result.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
            text = result.stderr.decode("utf-8", "replace")
            if _OUT_OF_MEMORY.search(text):
                raise InputError(source, memory_reason("render"))
            detail = text.strip().splitlines()
            if result.returncode < 0:
                reason = f"{tool} crashed (signal {-result.returncode})"
            else:
                reason = detail[-1] if detail else f"{tool} exited with code {result.returncode}"
            raise InputError(source, f"the PDF page could not be rendered ({reason})")
        try:
            with Image.open(out, formats=["PPM"]) as rendered:
                if rendered.width * rendered.height > max_pixels:
                    raise InputError(source, "the rendered page is too large")
                rendered.load()
                return normalise_mode(rendered, source)
        except InputError:
            raise
        except MemoryError as exc:
            raise InputError(source, memory_reason()) from exc
        except Exception as exc:
            raise InputError(source, f"the rendered page is unreadable ({exc})") from exc
    finally:
        # Rendered pages are plain-text confidential images: never leave one behind.
        for leftover in (base, out):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()

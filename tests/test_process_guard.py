"""Core dumps off in the station and its children; untrusted files decoded in a fresh, limited child.

The crash tests raise this test process's core limit to unlimited (what ``ulimit -c unlimited`` does in a
shell; children inherit it), start the real thing -- the CLI, the decoder, an OCR pool worker, the
tesseract worker and program, the SANE worker -- send it SIGSEGV, and look for a core file wherever the
kernel would write one.  A plain Python child treated the same way is the control: it must leave a core
(when ``core_pattern`` is a path), or the test could not see one at all.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pikepdf
import psutil
import pytest
from PIL import Image

from drivers.base import CancelToken, CapturedPage, ScanSettings
from drivers.decode_process import DecodeLimits, DecoderProcess, decode_pages
from drivers.errors import InputError
from drivers.image_loading import size_text
from drivers.import_driver import ImportDriver
from drivers.process_guard import child_preexec, core_limit_is_zero
from tests.sane_env import sane_test_env

REPO = Path(__file__).resolve().parent.parent
CORE_PATTERN = Path("/proc/sys/kernel/core_pattern").read_text().strip()
PATTERN_IS_PIPE = CORE_PATTERN.startswith("|")
PYTHON_ENV = {**os.environ, "PYTHONPATH": str(REPO)}

# ----------------------------------------------------------------------------------------- helpers


@pytest.fixture
def cores_allowed() -> Iterator[None]:
    """``ulimit -c unlimited`` for this process and so for every child it starts."""
    before = resource.getrlimit(resource.RLIMIT_CORE)
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        pytest.skip("cannot raise the core-size limit here (not root, and the hard limit is lower)")
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_CORE, before)


@pytest.fixture
def no_preexec_help(monkeypatch: pytest.MonkeyPatch) -> None:
    """Python children start with the unlimited core size too: only their own entry point may save them."""
    import drivers.decode_process
    import drivers.sane_driver
    import scanstation.ocr.tesseract_worker

    for module in (drivers.decode_process, drivers.sane_driver, scanstation.ocr.tesseract_worker):
        monkeypatch.setattr(module, "child_preexec", lambda: None)


def _core_dirs(*extra: Path) -> set[Path]:
    dirs = {Path("/tmp"), *extra}
    if not PATTERN_IS_PIPE and CORE_PATTERN.startswith("/"):
        dirs.add(Path(CORE_PATTERN).parent)
    return {d for d in dirs if d.is_dir()}


def _cores(dirs: set[Path]) -> set[Path]:
    # core_pattern "core" (with or without core_uses_pid): core, core.<pid>; other patterns: their name
    stem = Path(CORE_PATTERN).name.split("%")[0] or "core"
    return {p for d in dirs for p in d.glob(f"{stem}*") if p.is_file()}


def _core_limit_of(pid: int) -> str:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max core file size"):
            return " ".join(line.split()[4:6])
    return ""


def _wait_until_guarded(pid: int, timeout: float = 60.0) -> None:
    """Wait until the child's own guard has run (its core limit reads 0 0) before it is shot."""
    deadline = time.monotonic() + timeout
    while _core_limit_of(pid) != "0 0":
        assert time.monotonic() < deadline, f"process {pid} never turned its core dumps off"
        time.sleep(0.02)


def crash_and_look(pid: int, reap: Callable[[], int | None], *extra_dirs: Path, guarded: bool = True) -> set[Path]:
    """SIGSEGV ``pid``; assert it died of it; the new core files in every place one could be written."""
    if guarded:
        _wait_until_guarded(pid)
    dirs = _core_dirs(Path(os.readlink(f"/proc/{pid}/cwd")), *extra_dirs)
    before = _cores(dirs)
    os.kill(pid, signal.SIGSEGV)
    code = reap()
    if code is not None:
        assert code == -signal.SIGSEGV, f"process {pid} ended with {code}, not by SIGSEGV"
    return _cores(dirs) - before


def _reap_popen(proc: subprocess.Popen[bytes]) -> Callable[[], int]:
    return lambda: proc.wait(timeout=60)


def _gone(pid: int) -> Callable[[], None]:
    def wait() -> None:
        deadline = time.monotonic() + 60
        while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.2)  # the kernel has written any core before the process became a zombie

    return wait


# ------------------------------------------------------------------------------- the guard itself


def test_no_core_dumps_sets_the_limit_and_the_flag() -> None:
    code = ("from drivers.process_guard import no_core_dumps, is_dumpable; import resource; "
            "print(is_dumpable(), end=' '); no_core_dumps(); "
            "print(is_dumpable(), resource.getrlimit(resource.RLIMIT_CORE))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=PYTHON_ENV).stdout
    assert out.split() == ["True", "False", "(0,", "0)"]


def test_child_preexec_only_when_the_limit_is_not_inherited(cores_allowed: None) -> None:
    preexec = child_preexec()
    assert preexec is not None and not core_limit_is_zero()
    out = subprocess.run(["sh", "-c", "ulimit -c"], capture_output=True, text=True, check=True,
                         preexec_fn=preexec).stdout
    assert out.strip() == "0"


# -------------------------------------------------------------------------- SIGSEGV, no core file


def test_control_an_unguarded_process_does_dump(cores_allowed: None, tmp_path: Path) -> None:
    if PATTERN_IS_PIPE:
        pytest.skip(f"core_pattern is a pipe ({CORE_PATTERN}); core files are not ours to see")
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], cwd=tmp_path)
    time.sleep(0.3)
    new = crash_and_look(proc.pid, _reap_popen(proc), tmp_path, guarded=False)
    for core in new:
        core.unlink()
    assert new, "an unguarded process left no core file: this test could not see one"


def test_cli_process_leaves_no_core(cores_allowed: None, tmp_path: Path) -> None:
    # The CLI's main turns core dumps off before running any command; shot afterwards, it must not dump.
    code = ("import os, signal, time; from scanstation.cli.main import main; main(['exit-codes']); "
            "print('ran', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=PYTHON_ENV, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    with proc.stdout:
        for line in proc.stdout:
            if line.strip() == b"ran":
                break
        assert crash_and_look(proc.pid, _reap_popen(proc), tmp_path) == set()


def test_decoder_process_leaves_no_core(cores_allowed: None, no_preexec_help: None, tmp_path: Path) -> None:
    decoder = DecoderProcess()
    ready = decoder.wait_ready()
    assert ready["dumpable"] is False
    image = tmp_path / "a.png"
    Image.new("L", (50, 50), 0).save(image)

    def reap() -> int:
        with pytest.raises(InputError) as info:
            list(decoder.pages(image, tmp_dir=tmp_path / "render"))
        assert info.value.source == str(image)
        assert "the decoder crashed (signal 11" in info.value.reason
        assert decoder.proc.returncode is not None
        return decoder.proc.returncode

    assert crash_and_look(decoder.pid, reap, tmp_path) == set()


def test_ocr_pool_worker_leaves_no_core(cores_allowed: None, tmp_path: Path) -> None:
    from scanstation.ocr.pool import OcrWorkerPool

    with OcrWorkerPool(tmp_path, 1) as pool:
        pid = pool._executor.submit(os.getpid).result(timeout=60)  # a worker, past its initializer
        assert pid != os.getpid()
        assert crash_and_look(pid, _gone(pid), tmp_path) == set()


def test_tesseract_worker_leaves_no_core(cores_allowed: None, no_preexec_help: None, tmp_path: Path) -> None:
    from scanstation.ocr import tesseract_worker

    if not tesseract_worker.engine_wanted():
        pytest.skip("the tesseract library worker is not in use here")
    try:
        worker = tesseract_worker.TesseractWorker(tmp_path)
    except tesseract_worker.WorkerUnavailable as exc:
        pytest.skip(str(exc))
    try:
        proc = worker._proc
        assert proc is not None
        assert crash_and_look(proc.pid, _reap_popen(proc), tmp_path) == set()
    finally:
        worker.close()


def test_tesseract_program_leaves_no_core(cores_allowed: None, tmp_path: Path) -> None:
    from scanstation.ocr.tesseract_program import WarmRun

    if shutil.which("tesseract") is None:
        pytest.skip("tesseract is not installed")
    run = WarmRun(tmp_path, "eng")  # tesseract waiting for its list of pages on stdin
    proc = run._proc
    assert proc is not None
    try:
        # tesseract is an ordinary binary: exec made it dumpable again; RLIMIT_CORE 0 is what stops it
        assert crash_and_look(proc.pid, _reap_popen(proc), tmp_path) == set()
    finally:
        run.abandon()


def test_sane_worker_leaves_no_core(cores_allowed: None, no_preexec_help: None, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("sane")
    from drivers import sane_driver

    for key, value in sane_test_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(sane_driver._WorkerProcess, "send", lambda self, line: None)  # it waits for a request
    worker = sane_driver._WorkerProcess({"command": "list"})
    try:
        assert crash_and_look(worker.proc.pid, _reap_popen(worker.proc), tmp_path) == set()
    finally:
        worker.close(0.1)


# ------------------------------------------------------------------------ decompression bombs


def flate_of_spaces(size: int) -> bytes:
    """zlib data inflating to ``size`` spaces (a multiple of 1 MiB), made without compressing them."""
    block = b" " * (1 << 20)
    compressor = zlib.compressobj(9)
    head = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)  # header + 1 MiB
    piece = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)  # 1 MiB more, byte-aligned
    # Adler-32 of ``size`` bytes of value 32, in closed form.
    a = (1 + 32 * size) % 65521
    b = (size + 32 * size * (size + 1) // 2) % 65521
    return head + piece * (size // len(block) - 1) + b"\x03\x00" + ((b << 16) | a).to_bytes(4, "big")


def test_flate_of_spaces_is_valid() -> None:
    assert zlib.decompress(flate_of_spaces(3 << 20)) == b" " * (3 << 20)


def pdf_bomb(path: Path, expands_to: int) -> Path:
    """A small PDF whose page content (Flate inside Flate) expands to ``expands_to`` bytes."""
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(612, 792))
    stream = pikepdf.Stream(pdf, b"")
    stream.write(zlib.compress(flate_of_spaces(expands_to), 9),
                 filter=[pikepdf.Name.FlateDecode, pikepdf.Name.FlateDecode])
    pdf.pages[0].obj.Contents = pdf.make_indirect(stream)
    pdf.save(path, compress_streams=False, stream_decode_level=pikepdf.StreamDecodeLevel.none)
    return path


def png_bomb(path: Path, width: int, height: int) -> Path:
    """A PNG header claiming ``width`` x ``height`` with almost no data."""
    import struct

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


@contextlib.contextmanager
def peak_rss() -> Iterator[list[int]]:
    """The highest resident size of this process while the block runs (sampled every 10 ms)."""
    me = psutil.Process()
    peak = [me.memory_info().rss]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], me.memory_info().rss)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()


def test_bombs_are_refused_while_the_station_stays_small(tmp_path: Path) -> None:
    good = tmp_path / "a.png"
    Image.new("L", (200, 100), 0).save(good)
    bomb = pdf_bomb(tmp_path / "bomb.pdf", 1536 << 20)  # 1.5 GiB of page content
    assert bomb.stat().st_size < 16_000
    huge = png_bomb(tmp_path / "huge.png", 100_000, 100_000)
    after = tmp_path / "z.png"
    Image.new("L", (200, 100), 255).save(after)
    problems: list[InputError] = []
    pages: list[CapturedPage] = []
    driver = ImportDriver([good, bomb, huge, after], tmp_dir=tmp_path / "render", on_error=problems.append,
                          limits=DecodeLimits(memory_bytes=1 << 30))
    baseline = psutil.Process().memory_info().rss
    with peak_rss() as peak:
        assert driver.scan("import", ScanSettings(resolution=100), CancelToken(), pages.append) == 2
    assert [p.label for p in pages] == ["a.png page 1", "z.png page 1"]
    assert (problems[0].source, problems[0].reason) == (f"{bomb} page 1", "needs more than 1 GiB to decode")
    assert problems[1].source == str(huge) and "too large" in problems[1].reason
    assert len(problems) == 2
    # in-process, parsing that page took 1.5 GB; here the station grows by a page image at most
    assert peak[0] - baseline < 100 << 20, f"the station grew by {(peak[0] - baseline) >> 20} MB"
    assert list((tmp_path / "render").iterdir()) == []


def test_default_memory_limit_is_named() -> None:
    assert DecodeLimits().memory_bytes == 2 << 30
    assert size_text(2 << 30) == "2 GiB" and size_text(768 << 20) == "768 MiB"


def test_cpu_limit(tmp_path: Path) -> None:
    bomb = pdf_bomb(tmp_path / "slow.pdf", 1024 << 20)  # inflating it costs a few seconds of CPU
    with pytest.raises(InputError) as info:
        list(decode_pages(bomb, 100, tmp_path, limits=DecodeLimits(cpu_seconds=1)))
    assert info.value.source == str(bomb)
    assert "used more than 1 s of processor time" in info.value.reason


def test_wall_clock_limit_and_pages_before_it_are_kept(tmp_path: Path) -> None:
    tiff = tmp_path / "three.tif"
    frames = [Image.new("L", (1000, 1000), v) for v in (0, 100, 200)]  # more than a pipe holds
    frames[0].save(tiff, save_all=True, append_images=frames[1:])
    decoder = DecoderProcess(DecodeLimits(page_timeout_s=1.0))
    pages = decoder.pages(tiff, tmp_dir=tmp_path)
    first = next(pages)
    assert first.page_number == 1
    os.kill(decoder.pid, signal.SIGSTOP)  # a decoder that hangs
    time.sleep(0.3)  # (the pipe may already hold the next page)
    with pytest.raises(InputError) as info:
        list(pages)
    assert info.value.source == str(tiff)
    assert re.search(r"took longer than 1 s to decode page [23]; stopped \(pages before it were kept\)",
                     info.value.reason)
    assert decoder.proc.returncode == -signal.SIGKILL


# ------------------------------------------------------------------- a fresh process, not a fork


def _memory_contains(pid: int, needle: bytes) -> bool:
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            if "r" not in fields[1] or (len(fields) > 5 and fields[5] in ("[vvar]", "[vsyscall]", "[vvar_vclock]")):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            try:
                mem.seek(start)
                if needle in mem.read(end - start):
                    return True
            except (OSError, ValueError, OverflowError):
                continue
    return False


def test_decoder_is_a_fresh_program_without_the_station_secrets(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    secret = secrets.token_hex(24)  # in this process's memory and environment
    monkeypatch.setenv("SCANSTATION_PASSPHRASE", secret)
    with open(tmp_path / "open-file", "wb") as leak:  # an inheritable descriptor the child must not get
        os.set_inheritable(leak.fileno(), True)
        decoder = DecoderProcess()
        decoder.wait_ready()
        pid = decoder.pid
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[0] == sys.executable.encode() and b"drivers.decode_worker" in cmdline
        assert psutil.Process(pid).ppid() == os.getpid()
        assert psutil.Process(pid).exe() == os.path.realpath(sys.executable)  # exec'd, not forked from us
        fds = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        assert str(tmp_path / "open-file") not in fds
        assert all(target.startswith("pipe:") for target in fds), fds
        if os.geteuid() == 0:  # reading another process's memory needs privilege
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            assert b"SCANSTATION" not in environ
            assert not _memory_contains(pid, secret.encode())
            assert _memory_contains(os.getpid(), secret.encode())  # the search does find it where it is
        decoder.close()

"""SANE driver against the real ``test`` and ``pnm`` back ends (enabled via SANE_CONFIG_DIR), no mocks."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image

from drivers import sane_driver
from drivers.base import CancelToken, CapturedPage, ColorMode, ScanSettings, Source
from drivers.registry import list_all_devices
from drivers.sane_driver import SaneDriver, UnsupportedSetting, error_for_status, page_placement
from drivers.sane_options import (
    TYPE_BOOL,
    TYPE_FIXED,
    TYPE_INT,
    TYPE_STRING,
    OptionInfo,
    SettingError,
    match_mode,
    match_source,
    nearest_resolution,
    offered_resolutions,
    parse_option_value,
    split_schedule,
)
from drivers.sane_status import CANONICAL_STATUS_TEXT, Status, status_from_message, status_table
from scanstation.errors import (
    CoverOpen,
    DeviceBusy,
    DeviceCrashed,
    DeviceError,
    DeviceNotFound,
    DeviceOffline,
    FeederEmpty,
    PaperJam,
    ScanCancelled,
)
from tests.corpus import corpus_file
from tests.sane_env import sane_test_env

ADF = "Automatic Document Feeder"


def sane_workers() -> list[psutil.Process]:
    """Live SANE worker processes started by this test process (other suites may leave other children)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "drivers.sane_worker" in child.cmdline() and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.Error:  # exited while we looked
            continue
    return found


@pytest.fixture(autouse=True)
def sane_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in sane_test_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    assert sane_workers() == []
    yield
    # Every worker must be gone when a scan returns or raises, whatever happened: the driver reaps it.
    assert sane_workers() == []


@pytest.fixture()
def driver() -> SaneDriver:
    return SaneDriver(page_timeout=30, query_timeout=30, cancel_grace=3)


def scan(driver: SaneDriver, settings: ScanSettings, device: str = "test:0",
         cancel: CancelToken | None = None) -> tuple[list[CapturedPage], Exception | None]:
    pages: list[CapturedPage] = []
    try:
        count = driver.scan(device, settings, cancel or CancelToken(), pages.append)
    except Exception as exc:
        return pages, exc
    assert count == len(pages)
    return pages, None


def adf(*options: tuple[str, str], resolution: int = 50) -> ScanSettings:
    return ScanSettings(source=Source.ADF, resolution=resolution, options=options)


# ------------------------------------------------------------------------- pure mapping (no device)


@pytest.mark.parametrize(
    ("offered", "wanted", "expected"),
    [
        (["Flatbed", ADF], Source.ADF, ADF),
        (["FlatBed", "ADF"], Source.FLATBED, "FlatBed"),
        (["Flatbed", "ADF Front", "ADF Back", "ADF Duplex"], Source.ADF, "ADF Front"),
        (["Flatbed", "ADF Front", "ADF Back", "ADF Duplex"], Source.DUPLEX, "ADF Duplex"),
        (["Document Table", "ADF"], Source.FLATBED, "Document Table"),
        (["ADF", "Duplex"], Source.DUPLEX, "Duplex"),
        (["Automatic Document Feeder(left aligned)", "Automatic Document Feeder(left aligned,Duplex)"],
         Source.DUPLEX, "Automatic Document Feeder(left aligned,Duplex)"),
        (["Flatbed", ADF], Source.DUPLEX, None),
        (["ADF Back"], Source.ADF, None),
        (["Transparency Unit"], Source.FLATBED, None),
    ],
)
def test_match_source(offered: list[str], wanted: Source, expected: str | None) -> None:
    assert match_source(wanted, offered) == expected


@pytest.mark.parametrize(
    ("offered", "wanted", "expected"),
    [
        (["Lineart", "Gray", "Color"], ColorMode.GRAY, "Gray"),
        (["Binary", "Gray", "Color"], ColorMode.LINEART, "Binary"),
        (["Black & White", "True Gray", "24bit Color"], ColorMode.GRAY, "True Gray"),
        (["Black & White", "True Gray", "24bit Color"], ColorMode.COLOR, "24bit Color"),
        (["Black & White", "True Gray", "24bit Color"], ColorMode.LINEART, "Black & White"),
        (["Halftone", "Gray Halftone", "Gray"], ColorMode.GRAY, "Gray"),
        (["Halftone", "Lineart"], ColorMode.LINEART, "Lineart"),
        (["Gray", "Color"], ColorMode.LINEART, None),
        (["GRAYSCALE", "COLOUR"], ColorMode.COLOR, "COLOUR"),
    ],
)
def test_match_mode(offered: list[str], wanted: ColorMode, expected: str | None) -> None:
    assert match_mode(wanted, offered) == expected


def test_nearest_resolution() -> None:
    pnm = [75, 90, 100, 120, 135, 150, 165, 180, 195, 200, 210, 225, 240, 255, 270, 285, 300]
    assert nearest_resolution(300, pnm) == 300
    assert nearest_resolution(280, pnm) == 285
    assert nearest_resolution(600, pnm) == 300
    assert nearest_resolution(50, pnm) == 75
    assert nearest_resolution(300, (1.0, 1200.0, 1.0)) == 300
    assert nearest_resolution(2400, (1.0, 1200.0, 1.0)) == 1200
    assert nearest_resolution(310, (100, 600, 50)) == 300
    assert nearest_resolution(330, (100, 600, 50)) == 350
    assert nearest_resolution(300, None) == 300
    assert offered_resolutions((50.0, 600.0, 1.0)) == (75, 100, 150, 200, 240, 300, 400, 600)
    assert offered_resolutions([300, 150, 600]) == (150, 300, 600)


def _opt(name: str, typ: int, constraint: object = None, size: int = 4) -> OptionInfo:
    return OptionInfo(1, name, name, "", typ, 0, size, 5, constraint)


def test_parse_option_value_types() -> None:
    assert parse_option_value(_opt("read-limit", TYPE_BOOL), "yes") == 1
    assert parse_option_value(_opt("read-limit", TYPE_BOOL), "False") == 0
    assert parse_option_value(_opt("ppl-loss", TYPE_INT, (0, 128, 1)), "12") == 12
    assert parse_option_value(_opt("brightness", TYPE_FIXED, (-100.0, 100.0, 0.0)), "-2.5") == -2.5
    rv = _opt("read-return-value", TYPE_STRING, ["Default", "SANE_STATUS_JAMMED"])
    assert parse_option_value(rv, "sane_status_jammed") == "SANE_STATUS_JAMMED"
    assert parse_option_value(_opt("filename", TYPE_STRING), " /tmp/x.pnm ") == "/tmp/x.pnm"
    for option, raw in [
        (_opt("read-limit", TYPE_BOOL), "maybe"),
        (_opt("ppl-loss", TYPE_INT, (0, 128, 1)), "abc"),
        (_opt("ppl-loss", TYPE_INT, (0, 128, 1)), "500"),
        (_opt("depth", TYPE_INT, [1, 8, 16]), "12"),
        (rv, "SANE_STATUS_ON_FIRE"),
        (_opt("gamma-table", TYPE_INT, (0, 255, 1), size=1024), "1"),
    ]:
        with pytest.raises(SettingError):
            parse_option_value(option, raw)


def test_split_schedule() -> None:
    initial, scheduled = split_schedule([
        ("test-picture", "Grid"),
        ("page3:read-return-value", "SANE_STATUS_JAMMED"),
        ("PAGE3:read_limit", "yes"),
        ("page10:mode", "Color"),
    ])
    assert initial == [("test-picture", "Grid")]
    assert scheduled == {3: [("read-return-value", "SANE_STATUS_JAMMED"), ("read_limit", "yes")],
                         10: [("mode", "Color")]}
    with pytest.raises(SettingError):
        split_schedule([("page0:mode", "Gray")])


def test_status_table_matches_the_installed_libsane() -> None:
    # The worker recovers status codes from python-sane's message text; every code the test back end can
    # inject must round-trip through the real library's sane_strstatus().
    table = status_table()
    for status in (Status.JAMMED, Status.NO_DOCS, Status.COVER_OPEN, Status.IO_ERROR, Status.DEVICE_BUSY,
                   Status.NO_MEM, Status.ACCESS_DENIED, Status.INVAL, Status.UNSUPPORTED, Status.CANCELLED):
        assert status in table.values()
    assert status_from_message("Document feeder jammed") == Status.JAMMED
    assert status_from_message("SaneDev object is closed") is None
    assert set(CANONICAL_STATUS_TEXT.values()) == set(Status)


@pytest.mark.parametrize(
    ("status", "cls"),
    [(Status.JAMMED, PaperJam), (Status.NO_DOCS, FeederEmpty), (Status.COVER_OPEN, CoverOpen),
     (Status.DEVICE_BUSY, DeviceBusy), (Status.WARMING_UP, DeviceBusy), (Status.IO_ERROR, DeviceOffline),
     (Status.NO_MEM, DeviceError), (Status.ACCESS_DENIED, DeviceError), (None, DeviceError)],
)
def test_error_for_status(status: Status | None, cls: type[DeviceError]) -> None:
    error = error_for_status(status, "detail", device="test:0", pages=4)
    assert type(error) is cls
    assert error.pages_received == 4 and error.device == "test:0"
    if cls is DeviceError and status is not None:
        assert f"SANE_STATUS_{status.name}" in error.detail


def test_page_placement_duplex_alternates_sides() -> None:
    assert [page_placement(Source.DUPLEX, i) for i in range(5)] == [
        ("front", 1), ("back", 1), ("front", 2), ("back", 2), ("front", 3)]
    assert [page_placement(Source.ADF, i) for i in range(3)] == [("front", 1), ("front", 2), ("front", 3)]
    assert page_placement(Source.FLATBED, 0) == ("flatbed", 1)


# ---------------------------------------------------------------------------- list and describe


def test_list_devices(driver: SaneDriver) -> None:
    devices = {d.name: d for d in driver.list_devices()}
    assert {"test:0", "pnm:0"} <= set(devices)
    assert devices["test:0"].backend == "sane"
    assert devices["test:0"].model == "frontend-tester"
    assert devices["test:0"].kind == "virtual device"


def test_list_all_devices_adds_import() -> None:
    names = [d.name for d in list_all_devices()]
    assert "test:0" in names
    assert names[-1] == "import"


def test_capabilities_of_test_backend(driver: SaneDriver) -> None:
    caps = driver.capabilities("test:0")
    assert caps.sources == (Source.FLATBED, Source.ADF)
    assert caps.modes == (ColorMode.GRAY, ColorMode.COLOR, ColorMode.LINEART)  # lineart via 1-bit depth
    assert 300 in caps.resolutions and 1200 in caps.resolutions
    assert caps.max_width_mm == 200 and caps.max_height_mm == 200
    assert "read-return-value" in caps.options
    assert "SANE_STATUS_JAMMED" in caps.options["read-return-value"]


def test_capabilities_of_pnm_backend(driver: SaneDriver) -> None:
    caps = driver.capabilities("pnm:0")
    assert caps.sources == (Source.FLATBED,)
    assert caps.resolutions[0] == 75 and caps.resolutions[-1] == 300 and 285 in caps.resolutions
    assert "filename" in caps.options


def test_capabilities_of_unknown_device(driver: SaneDriver) -> None:
    with pytest.raises(DeviceNotFound):
        driver.capabilities("test:9")


# ---------------------------------------------------------------------------------------- scanning


def test_flatbed_default_settings(driver: SaneDriver) -> None:
    pages, error = scan(driver, ScanSettings())
    assert error is None
    assert len(pages) == 1
    page = pages[0]
    assert page.dpi == 300
    assert page.image.mode == "L"
    # A4 is clipped to the test back end's 200 x 200 mm area: 200 mm at 300 dpi = 2362 px
    assert page.image.size == (2362, 2362)
    assert (page.side, page.sheet, page.device) == ("flatbed", 1, "test:0")
    assert page.source_key.startswith("sane:test:0:") and page.source_key.endswith(":0")
    assert np.asarray(page.image).max() == 0  # test.conf: "Solid black"


@pytest.mark.parametrize(("mode", "pil_mode"),
                         [(ColorMode.GRAY, "L"), (ColorMode.COLOR, "RGB"), (ColorMode.LINEART, "1")])
def test_modes(driver: SaneDriver, mode: ColorMode, pil_mode: str) -> None:
    settings = ScanSettings(mode=mode, resolution=75, options=(("test-picture", "Grid"),))
    pages, error = scan(driver, settings)
    assert error is None
    image = pages[0].image
    assert image.mode == pil_mode
    assert image.size == (590, 590)
    # "Grid": 10 mm black/white squares.  At 75 dpi a square is ~29.5 px; the corner square and its
    # neighbour differ.
    grey = np.asarray(image.convert("L")).astype(int)
    assert abs(grey[10, 10] - grey[10, 40]) > 200


def _scanimage_reference(*args: str) -> np.ndarray:
    """The same scan through SANE's own front end (scanimage), as a numpy array from its PNM output."""
    result = subprocess.run(["scanimage", "-d", "test:0", "--format=pnm", *args], capture_output=True,
                            check=True, timeout=30)
    data = result.stdout
    tokens: list[bytes] = []
    pos = 0
    while len(tokens) < 4:  # magic, width, height, maxval; comments allowed in between
        match = re.compile(rb"\s*(?:#[^\n]*\n\s*)*([^\s#]+)").match(data, pos)
        assert match is not None
        tokens.append(match.group(1))
        pos = match.end()
    width, height, maxval = (int(t) for t in tokens[1:])
    channels = 3 if tokens[0] == b"P6" else 1
    dtype = ">u2" if maxval > 255 else "u1"  # PNM stores 16-bit samples big-endian
    return np.frombuffer(data[pos + 1:], dtype=dtype).reshape(height, width, channels)


@pytest.mark.skipif(shutil.which("scanimage") is None, reason="sane-utils (scanimage) is not installed")
def test_sixteen_bit_frames_become_eight_bit_like_scanimage(driver: SaneDriver) -> None:
    settings = ScanSettings(mode=ColorMode.COLOR, resolution=50, page_size="max",
                            options=(("test-picture", "Color pattern"), ("depth", "16")))
    pages, error = scan(driver, settings)
    assert error is None
    assert pages[0].image.mode == "RGB"
    ours = np.asarray(pages[0].image)
    reference = _scanimage_reference("--mode", "Color", "--depth", "16", "--test-picture", "Color pattern",
                                     "--resolution", "50", "-l", "0", "-t", "0", "-x", "200", "-y", "200")
    assert reference.dtype == np.dtype(">u2")
    assert ours.std() > 10  # a real pattern, not a blank page
    # Byte order and scaling: our 8-bit page is exactly the high byte of every 16-bit sample.
    assert np.array_equal(ours, (reference >> 8).astype(np.uint8))


def test_resolution_is_the_actual_device_value(driver: SaneDriver) -> None:
    pages, _ = scan(driver, ScanSettings(resolution=5000, options=(("br-x", "10"), ("br-y", "10"))))
    assert pages[0].dpi == 1200  # clipped to the device's range


def test_page_size_max_and_letter(driver: SaneDriver) -> None:
    full, _ = scan(driver, ScanSettings(resolution=50, page_size="max"))
    assert full[0].image.size == (393, 393)  # 200 mm
    letter, _ = scan(driver, ScanSettings(resolution=50, page_size="letter"))
    assert letter[0].image.size == (393, 393)  # 215.9 x 279.4 mm, clipped to 200 x 200
    _, error = scan(driver, ScanSettings(page_size="B5"))
    assert isinstance(error, UnsupportedSetting) and "B5" in error.detail


def test_adf_scans_until_the_feeder_is_empty(driver: SaneDriver) -> None:
    pages, error = scan(driver, adf())
    assert error is None
    assert len(pages) == 10  # the test back end's feeder holds 10 sheets
    assert [p.sheet for p in pages] == list(range(1, 11))
    assert {p.side for p in pages} == {"front"}
    scan_ids = {p.source_key.split(":")[2] for p in pages}
    assert len(scan_ids) == 1
    assert [p.source_key.rsplit(":", 1)[1] for p in pages] == [str(i) for i in range(10)]
    assert pages[0].label == "test:0 page 1"


def test_each_scan_gets_fresh_source_keys(driver: SaneDriver) -> None:
    first, _ = scan(driver, ScanSettings(resolution=25))
    second, _ = scan(driver, ScanSettings(resolution=25))
    assert first[0].source_key != second[0].source_key


def test_empty_feeder_on_first_sheet(driver: SaneDriver) -> None:
    pages, error = scan(driver, adf(("read-return-value", "SANE_STATUS_NO_DOCS")))
    assert pages == []
    assert isinstance(error, FeederEmpty)
    assert error.pages_received == 0


def test_feeder_running_out_after_some_sheets_is_a_normal_end(driver: SaneDriver) -> None:
    pages, error = scan(driver, adf(("page4:read-return-value", "SANE_STATUS_NO_DOCS")))
    assert error is None
    assert len(pages) == 3


def test_mid_batch_jam_keeps_the_pages_before_it(driver: SaneDriver) -> None:
    pages, error = scan(driver, adf(("page4:read-return-value", "SANE_STATUS_JAMMED")))
    assert isinstance(error, PaperJam)
    assert error.pages_received == 3
    assert [p.sheet for p in pages] == [1, 2, 3]
    assert error.exit_code == 12
    assert "Paper jam" in str(error) and "sheet 4" in str(error)


@pytest.mark.parametrize(
    ("status", "cls"),
    [("SANE_STATUS_JAMMED", PaperJam), ("SANE_STATUS_COVER_OPEN", CoverOpen),
     ("SANE_STATUS_IO_ERROR", DeviceOffline), ("SANE_STATUS_DEVICE_BUSY", DeviceBusy),
     ("SANE_STATUS_NO_MEM", DeviceError), ("SANE_STATUS_ACCESS_DENIED", DeviceError)],
)
def test_injected_faults_map_to_errors(driver: SaneDriver, status: str, cls: type[DeviceError]) -> None:
    pages, error = scan(driver, ScanSettings(resolution=25, options=(("read-return-value", status),)))
    assert pages == []
    assert type(error) is cls
    assert isinstance(error, DeviceError) and error.pages_received == 0


def test_schedule_changes_options_between_sheets(driver: SaneDriver) -> None:
    # A schedule can also change ordinary options: sheet 2 onwards in colour.
    pages, error = scan(driver, adf(("page2:mode", "Color"), ("page3:read-return-value", "SANE_STATUS_IO_ERROR")))
    assert isinstance(error, DeviceOffline) and error.pages_received == 2
    assert [p.image.mode for p in pages] == ["L", "RGB"]


def test_duplex_unavailable_names_the_offered_sources(driver: SaneDriver) -> None:
    pages, error = scan(driver, ScanSettings(source=Source.DUPLEX))
    assert pages == []
    assert isinstance(error, UnsupportedSetting) and isinstance(error, DeviceError)
    assert "'Flatbed'" in error.detail and ADF in error.detail


def test_unknown_device(driver: SaneDriver) -> None:
    for name in ("test:9", "nosuchbackend:0"):
        _, error = scan(driver, ScanSettings(), device=name)
        assert isinstance(error, DeviceNotFound), name


@pytest.mark.parametrize(
    ("option", "fragment"),
    [(("no-such-option", "1"), "no option 'no-such-option'"),
     (("ppl-loss", "lots"), "whole number"),
     (("read-return-value", "SANE_STATUS_ON_FIRE"), "accepts"),
     (("page2:no-such-option", "1"), "no option")],
)
def test_bad_raw_options(driver: SaneDriver, option: tuple[str, str], fragment: str) -> None:
    pages, error = scan(driver, adf(option))
    assert pages == []  # refused before any sheet moved
    assert isinstance(error, UnsupportedSetting)
    assert fragment in error.detail


def test_raw_option_names_accept_underscores(driver: SaneDriver) -> None:
    _, error = scan(driver, ScanSettings(resolution=25, options=(("read_return_value", "SANE_STATUS_JAMMED"),)))
    assert isinstance(error, PaperJam)


def test_pnm_backend_returns_the_file_pixels(driver: SaneDriver, tmp_path: Path) -> None:
    original = Image.open(corpus_file("oldbooks_a065.tiff")).convert("L")
    pgm = tmp_path / "page.pgm"
    original.save(pgm)
    pages, error = scan(driver, ScanSettings(resolution=280, options=(("filename", str(pgm)),)), device="pnm:0")
    assert error is None
    assert pages[0].dpi == 285  # nearest value of pnm's list
    assert pages[0].image.mode == "L"
    assert np.array_equal(np.asarray(pages[0].image), np.asarray(original))


def test_pnm_colour_file(driver: SaneDriver, tmp_path: Path) -> None:
    original = Image.open(corpus_file("tess_phototest.tif")).convert("RGB")
    ppm = tmp_path / "page.ppm"
    original.save(ppm)
    pages, error = scan(driver, ScanSettings(options=(("filename", str(ppm)),)), device="pnm:0")
    assert error is None
    assert pages[0].image.mode == "RGB" and pages[0].dpi == 300
    assert np.array_equal(np.asarray(pages[0].image), np.asarray(original))


def test_pnm_adf_is_unavailable(driver: SaneDriver) -> None:
    _, error = scan(driver, ScanSettings(source=Source.ADF), device="pnm:0")
    assert isinstance(error, UnsupportedSetting) and "only a flatbed" in error.detail


# ------------------------------------------------------------------------- crashes and cancellation


def _worker() -> psutil.Process:
    workers = sane_workers()
    assert len(workers) == 1
    return workers[0]


def test_worker_killed_mid_batch_is_a_crash_with_pages_kept(driver: SaneDriver) -> None:
    pages: list[CapturedPage] = []

    def on_page(page: CapturedPage) -> None:
        pages.append(page)
        if len(pages) == 2:
            _worker().kill()  # what a segfaulting back end looks like from the parent

    with pytest.raises(DeviceCrashed) as info:
        driver.scan("test:0", adf(), CancelToken(), on_page)
    assert info.value.pages_received == 2
    assert "SIGKILL" in info.value.detail
    assert len(pages) == 2


def test_cancel_between_pages(driver: SaneDriver) -> None:
    token = CancelToken()
    pages: list[CapturedPage] = []

    def on_page(page: CapturedPage) -> None:
        pages.append(page)
        if len(pages) == 3:
            token.cancel()

    with pytest.raises(ScanCancelled):
        driver.scan("test:0", adf(), token, on_page)
    assert len(pages) == 3


def _slow_page() -> tuple[tuple[str, str], ...]:
    # The test back end delays each 1 KB read by 100 ms: a 300 dpi page would take minutes.
    return (("read-limit", "yes"), ("read-limit-size", "1024"), ("read-delay", "yes"),
            ("read-delay-duration", "100000"))


def test_cancel_during_a_page_stops_the_back_end(driver: SaneDriver) -> None:
    token = CancelToken()
    threading.Timer(0.8, token.cancel).start()
    started = time.monotonic()
    pages, error = scan(driver, ScanSettings(resolution=300, options=_slow_page()), cancel=token)
    assert isinstance(error, ScanCancelled)
    assert pages == []  # the partial page is not delivered
    assert time.monotonic() - started < 3  # sane_cancel worked; no kill needed


def test_a_hung_worker_is_killed_after_the_grace_period() -> None:
    driver = SaneDriver(page_timeout=30, cancel_grace=0.5)
    token = CancelToken()

    def freeze_then_cancel() -> None:
        _worker().suspend()  # a back end stuck in the kernel ignores everything
        token.cancel()

    threading.Timer(0.8, freeze_then_cancel).start()
    pages, error = scan(driver, ScanSettings(resolution=300, options=_slow_page()), cancel=token)
    assert isinstance(error, ScanCancelled)
    assert pages == []


def test_a_silent_scanner_times_out_as_offline() -> None:
    driver = SaneDriver(page_timeout=1.0, cancel_grace=0.5)
    _, error = scan(driver, ScanSettings(resolution=300, options=_slow_page()))
    assert isinstance(error, DeviceOffline)
    assert "no data" in error.detail


def test_on_page_failure_propagates_and_stops_the_worker(driver: SaneDriver) -> None:
    def on_page(page: CapturedPage) -> None:
        raise OSError("vault disk full")

    with pytest.raises(OSError, match="vault disk full"):
        driver.scan("test:0", adf(), CancelToken(), on_page)


def test_worker_inherits_sane_env_but_not_station_settings(driver: SaneDriver,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCANSTATION_PASSWORD_FILE", "/run/station/password")
    seen: dict[str, str] = {}

    def on_page(page: CapturedPage) -> None:
        seen.update(_worker().environ())  # the worker is alive, waiting for "next"

    driver.scan("test:0", ScanSettings(resolution=25), CancelToken(), on_page)
    assert seen["SANE_CONFIG_DIR"] == os.environ["SANE_CONFIG_DIR"]
    assert "SCANSTATION_PASSWORD_FILE" not in seen


def test_cancel_before_start(driver: SaneDriver) -> None:
    token = CancelToken()
    token.cancel()
    with pytest.raises(ScanCancelled):
        driver.scan("test:0", ScanSettings(), token, lambda page: None)


# ------------------------------------------------------------------------- the back ends' reader threads


def test_this_install_has_the_deferred_cancel_preload() -> None:
    assert sane_driver._DEFERRED_CANCEL is not None, \
        "drivers/_deferred_cancel.c not compiled: run installer/setup.sh (pip install -e .)"


_CANCEL_TYPE_AFTER_ASKING_ASYNC = """
import ctypes
libc = ctypes.CDLL(None)
old = ctypes.c_int(-1)
assert libc.pthread_setcanceltype(1, ctypes.byref(old)) == 0     # PTHREAD_CANCEL_ASYNCHRONOUS, as sanei_thread asks
assert libc.pthread_setcanceltype(0, ctypes.byref(old)) == 0     # back to DEFERRED, reading what was in force
print(old.value)
"""


def test_reader_threads_in_the_worker_are_cancelled_deferred_only(driver: SaneDriver) -> None:
    # sanei_thread back ends (the test one among them) end a page's reader thread with pthread_cancel; an
    # asynchronous one landing inside free() hung a CI run's scan for good (drivers/_deferred_cancel.c).
    seen: dict[str, str] = {}
    maps: list[str] = []

    def on_page(page: CapturedPage) -> None:
        worker = _worker()  # alive, waiting for "next"
        seen.update(worker.environ())
        maps.extend(m.path for m in worker.memory_maps())

    driver.scan("test:0", adf(), CancelToken(), on_page)
    preload = sane_driver._DEFERRED_CANCEL
    assert preload is not None and preload in maps  # loaded into the worker that drove libsane
    env = {"PATH": os.environ["PATH"], "LD_PRELOAD": seen["LD_PRELOAD"]}
    kept = subprocess.run([sys.executable, "-c", _CANCEL_TYPE_AFTER_ASKING_ASYNC], env=env, capture_output=True,
                          text=True, check=True)
    assert kept.stdout.strip() == "0"  # asynchronous was asked for and deferred stayed in force
    plain = subprocess.run([sys.executable, "-c", _CANCEL_TYPE_AFTER_ASKING_ASYNC], env={"PATH": os.environ["PATH"]},
                           capture_output=True, text=True, check=True)
    assert plain.stdout.strip() == "1"  # without the preload the same request takes effect (the check can fail)

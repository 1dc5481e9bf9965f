"""Import driver and safe image/PDF loading, on real files made in tmp_path (and the shared corpus)."""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import numpy as np
import pikepdf
import pytest
from PIL import Image, TiffImagePlugin

from drivers.base import CancelToken, CapturedPage, ColorMode, ScanSettings
from drivers.image_loading import MAX_PAGE_PIXELS, LoadedPage, load_pages, pdf_renderer, render_pdf_page
from drivers.import_driver import ImportDriver, ImportProblems
from drivers.registry import get_driver
from drivers.sane_driver import SaneDriver
from scanstation.errors import DeviceNotFound, InputError, ScanCancelled
from tests.corpus import corpus_file

# ---------------------------------------------------------------------------------------------- helpers


def page_image(value: int = 0, size: tuple[int, int] = (120, 80)) -> Image.Image:
    """A small grey page with a recognisable pixel pattern (left half ``value``, right half white)."""
    image = Image.new("L", size, 255)
    image.paste(value, (0, 0, size[0] // 2, size[1]))
    return image


def grey_at(image: Image.Image, x: int, y: int) -> int:
    value = image.convert("L").getpixel((x, y))
    assert isinstance(value, int)
    return value


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A valid-looking PNG that declares ``width`` x ``height`` but carries almost no data (a bomb)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")
    path.write_bytes(data)
    return path


def make_pdf(path: Path, pages: int = 2) -> Path:
    """A PDF of 8 x 10 inch pages (160 x 200 px images at 20 dpi), left half dark, right half white."""
    images = [page_image(v, (160, 200)) for v in (0, 30, 60)[:pages]]
    images[0].save(path, save_all=True, append_images=images[1:], resolution=20)
    return path


def run_import(files: list[Path], tmp_path: Path,
               settings: ScanSettings | None = None) -> tuple[list[CapturedPage], Exception | None]:
    pages: list[CapturedPage] = []
    driver = ImportDriver(files, tmp_dir=tmp_path / "render")
    try:
        count = driver.scan("import", settings or ScanSettings(resolution=100), CancelToken(), pages.append)
    except Exception as exc:
        return pages, exc
    assert count == len(pages)
    return pages, None


def collect(path: Path, tmp_path: Path,
            max_pixels: int = MAX_PAGE_PIXELS) -> tuple[list[LoadedPage], list[InputError]]:
    """Every page of ``path`` (PDFs at 100 dpi) and every per-page problem."""
    errors: list[InputError] = []
    pages = list(load_pages(path, 100, tmp_path / "render", on_error=errors.append, max_pixels=max_pixels))
    return pages, errors


# ------------------------------------------------------------------------------------- good inputs


@pytest.mark.parametrize(
    ("fmt", "suffix", "mode", "expected_mode"),
    [
        ("PNG", "png", "L", "L"),
        ("PNG", "png", "RGB", "RGB"),
        ("JPEG", "jpg", "L", "L"),
        ("BMP", "bmp", "RGB", "RGB"),
        ("PPM", "pgm", "L", "L"),
        ("PPM", "ppm", "RGB", "RGB"),
        ("PPM", "pbm", "1", "1"),
        ("WEBP", "webp", "RGB", "RGB"),
        ("TIFF", "tif", "1", "1"),
    ],
)
def test_single_images_load_in_page_modes(tmp_path: Path, fmt: str, suffix: str, mode: str,
                                          expected_mode: str) -> None:
    path = tmp_path / f"scan.{suffix}"
    page_image(0).convert(mode).save(path, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    pages, errors = collect(path, tmp_path)
    assert errors == []
    assert [p.label for p in pages] == [f"scan.{suffix} page 1"]
    image = pages[0].image
    assert image.mode == expected_mode
    assert image.size == (120, 80)
    # left half black, right half white: the pixels survived the trip
    assert grey_at(image, 10, 40) < 40
    assert grey_at(image, 110, 40) > 215


def test_dpi_comes_from_metadata_else_300(tmp_path: Path) -> None:
    for fmt, suffix in (("PNG", "png"), ("JPEG", "jpg"), ("TIFF", "tif")):
        with_dpi = tmp_path / f"a.{suffix}"
        page_image().save(with_dpi, fmt, dpi=(200, 200))
        assert collect(with_dpi, tmp_path)[0][0].dpi == 200
    without = tmp_path / "b.png"
    page_image().save(without, "PNG")
    assert collect(without, tmp_path)[0][0].dpi == 300


def test_corpus_tiff_keeps_one_bit_and_dpi(tmp_path: Path) -> None:
    pages, errors = collect(corpus_file("tess_phototest.tif"), tmp_path)
    assert errors == []
    assert len(pages) == 1
    assert pages[0].image.mode == "1"
    assert pages[0].dpi == 200


def test_multipage_one_bit_tiff_delivers_every_frame(tmp_path: Path) -> None:
    path = tmp_path / "three.tif"
    frames = [page_image(0).convert("1") for _ in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:], compression="group4", dpi=(300, 300))
    pages, errors = collect(path, tmp_path)
    assert errors == []
    assert [p.label for p in pages] == ["three.tif page 1", "three.tif page 2", "three.tif page 3"]
    assert all(p.image.mode == "1" and p.dpi == 300 for p in pages)


@pytest.mark.parametrize("mode", ["CMYK", "P", "RGBA", "LA"])
def test_other_modes_are_converted(tmp_path: Path, mode: str) -> None:
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    source = page_image(0).convert("RGB").convert(mode)
    source.save(path)
    pages, errors = collect(path, tmp_path)
    assert errors == []
    assert pages[0].image.mode in ("L", "RGB")
    assert grey_at(pages[0].image, 10, 40) < 40


def test_transparency_is_flattened_onto_white(tmp_path: Path) -> None:
    path = tmp_path / "clear.png"
    Image.new("RGBA", (20, 20), (0, 0, 0, 0)).save(path)
    page = collect(path, tmp_path)[0][0]
    assert page.image.mode == "RGB"
    assert page.image.getpixel((5, 5)) == (255, 255, 255)


def test_grey_palette_becomes_l(tmp_path: Path) -> None:
    path = tmp_path / "grey.png"
    page_image(0).convert("P").save(path)  # Pillow's L -> P keeps a grey palette
    assert collect(path, tmp_path)[0][0].image.mode == "L"


@pytest.mark.parametrize("suffix", ["png", "tif"])
def test_sixteen_bit_grey_is_scaled_to_eight(tmp_path: Path, suffix: str) -> None:
    ramp = (np.arange(256, dtype=np.uint16) * 257).reshape(16, 16)  # 0 .. 65535 in 256 steps
    path = tmp_path / f"deep.{suffix}"
    Image.fromarray(ramp).save(path)
    with Image.open(path) as check:
        assert check.mode == "I;16"
    page = collect(path, tmp_path)[0][0]
    assert page.image.mode == "L"
    assert np.array_equal(np.asarray(page.image), np.arange(256, dtype=np.uint8).reshape(16, 16))


def test_pdf_pages_render_at_requested_resolution(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "two.pdf", pages=2)
    pages, errors = collect(pdf, tmp_path)
    assert errors == []
    assert [p.label for p in pages] == ["two.pdf page 1", "two.pdf page 2"]
    for page in pages:
        assert page.dpi == 100
        assert page.image.mode == "L"
        assert page.image.size == (800, 1000)
        assert grey_at(page.image, 50, 500) < 80 and grey_at(page.image, 750, 500) > 215
    assert list((tmp_path / "render").iterdir()) == []  # rendered files are gone at once


@pytest.mark.parametrize(("mode", "expected"), [(ColorMode.COLOR, "RGB"), (ColorMode.LINEART, "1")])
def test_pdf_mode_follows_settings(tmp_path: Path, mode: ColorMode, expected: str) -> None:
    pdf = make_pdf(tmp_path / "one.pdf", pages=1)
    pages = list(load_pages(pdf, 75, tmp_path / "render", mode=mode))
    assert pages[0].image.mode == expected
    assert pages[0].image.size == (600, 750)


@pytest.mark.parametrize("tool", ["pdftoppm", "gs"])
def test_both_renderers_agree(tmp_path: Path, tool: str) -> None:
    if tool == "pdftoppm" and pdf_renderer() != "pdftoppm":
        pytest.skip("poppler-utils is not installed")
    pdf = make_pdf(tmp_path / "one.pdf", pages=1)
    image = render_pdf_page(pdf, 1, 50, ColorMode.GRAY, tmp_path, tool=tool)
    assert image.size == (400, 500)
    assert grey_at(image, 20, 250) < 40 and grey_at(image, 380, 250) > 215
    assert [p.name for p in tmp_path.iterdir()] == ["one.pdf"]


# -------------------------------------------------------------------------------------- bad inputs


def expect_file_error(path: Path, tmp_path: Path, fragment: str) -> InputError:
    with pytest.raises(InputError) as info:
        list(load_pages(path, 100, tmp_path / "render"))
    assert str(path) in info.value.source
    assert fragment in info.value.reason
    return info.value


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    expect_file_error(path, tmp_path, "empty")


def test_missing_file(tmp_path: Path) -> None:
    expect_file_error(tmp_path / "nope.tif", tmp_path, "cannot read")


@pytest.mark.parametrize(("fmt", "suffix"), [("PNG", "png"), ("JPEG", "jpg"), ("TIFF", "tif")])
def test_truncated_images(tmp_path: Path, fmt: str, suffix: str) -> None:
    whole = tmp_path / f"whole.{suffix}"
    Image.open(corpus_file("tess_phototest.tif")).convert("L").save(whole, fmt)
    cut = tmp_path / f"cut.{suffix}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    pages, errors = collect(cut, tmp_path)
    assert pages == []
    assert len(errors) == 1
    assert errors[0].source == f"{cut} page 1"
    assert "truncated" in errors[0].reason


def test_corrupt_bytes(tmp_path: Path) -> None:
    path = tmp_path / "noise.png"
    path.write_bytes(bytes(range(256)) * 40)
    expect_file_error(path, tmp_path, "not a supported image")


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b"Minutes of the meeting\nAll present.\n", "text file"),
        (b"PK\x03\x04\x14\x00\x06\x00" + b"\0" * 200, "Office document"),
    ],
)
def test_renamed_non_images(tmp_path: Path, payload: bytes, fragment: str) -> None:
    path = tmp_path / "renamed.png"
    path.write_bytes(payload)
    expect_file_error(path, tmp_path, fragment)


def test_eps_is_never_handed_to_ghostscript(tmp_path: Path) -> None:
    path = tmp_path / "drawing.png"
    path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    expect_file_error(path, tmp_path, "text file")


def test_bomb_over_our_limit_is_refused_per_page(tmp_path: Path) -> None:
    # 121 MP passes Pillow's own check (with only a warning) but not ours; nothing is decoded.
    path = png_header_only(tmp_path / "bomb.png", 11_000, 11_000)
    pages, errors = collect(path, tmp_path)
    assert pages == []
    assert errors[0].source == f"{path} page 1"
    assert "too large" in errors[0].reason and "decompression bomb" in errors[0].reason


def test_bomb_over_pillows_limit_is_refused(tmp_path: Path) -> None:
    # 400 MP: Pillow raises DecompressionBombError while opening; it must surface as an InputError.
    path = png_header_only(tmp_path / "bomb.png", 20_000, 20_000)
    expect_file_error(path, tmp_path, "too large")


def test_pixel_limit_is_adjustable(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    page_image().save(path)
    pages, errors = collect(path, tmp_path, max_pixels=100)
    assert pages == [] and "megapixels" in errors[0].reason


def test_float_images_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "float.tif"
    Image.new("F", (10, 10), 0.5).save(path)
    pages, errors = collect(path, tmp_path)
    assert pages == []
    assert "unsupported pixel format 'F'" in errors[0].reason


def test_tiff_with_one_bad_frame_keeps_the_good_ones(tmp_path: Path) -> None:
    path = tmp_path / "mixed.tif"
    frames = [Image.new("L", (300, 200), v) for v in (0, 128, 255)]
    frames[0].save(path, save_all=True, append_images=frames[1:], compression="tiff_deflate")
    with Image.open(path) as tiff:
        assert isinstance(tiff, TiffImagePlugin.TiffImageFile)
        tiff.seek(1)
        offsets, counts = tiff.tag_v2[273], tiff.tag_v2[279]  # StripOffsets, StripByteCounts
    data = bytearray(path.read_bytes())
    for offset, count in zip(offsets, counts, strict=True):
        data[offset:offset + count] = b"\xff" * count  # frame 2's compressed strips become garbage
    path.write_bytes(bytes(data))

    pages, errors = collect(path, tmp_path)
    assert [p.page_number for p in pages] == [1, 3]
    assert [p.image.getpixel((5, 5)) for p in pages] == [0, 255]
    assert [e.source for e in errors] == [f"{path} page 2"]


def test_truncated_pdf_is_refused_not_repaired(tmp_path: Path) -> None:
    # qpdf's recovery would open this with page 2 silently missing.
    whole = make_pdf(tmp_path / "whole.pdf", pages=2)
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2 + 500])
    expect_file_error(cut, tmp_path, "damaged or truncated")


def test_corrupt_pdf(tmp_path: Path) -> None:
    path = tmp_path / "junk.pdf"
    path.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 20)
    expect_file_error(path, tmp_path, "damaged")


def test_password_protected_pdf(tmp_path: Path) -> None:
    source = make_pdf(tmp_path / "plain.pdf", pages=1)
    locked = tmp_path / "locked.pdf"
    with pikepdf.open(source) as pdf:
        pdf.save(locked, encryption=pikepdf.Encryption(user="secret", owner="owner"))
    expect_file_error(locked, tmp_path, "password-protected")


def test_owner_password_only_pdf_is_refused_too(tmp_path: Path) -> None:
    source = make_pdf(tmp_path / "plain.pdf", pages=1)
    restricted = tmp_path / "restricted.pdf"
    with pikepdf.open(source) as pdf:
        pdf.save(restricted, encryption=pikepdf.Encryption(owner="owner"))
    expect_file_error(restricted, tmp_path, "encrypted")


def test_pdf_without_pages(tmp_path: Path) -> None:
    path = tmp_path / "nothing.pdf"
    pikepdf.new().save(path)
    expect_file_error(path, tmp_path, "no pages")


def test_giant_pdf_page_is_refused_before_rendering(tmp_path: Path) -> None:
    path = tmp_path / "poster.pdf"
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(14_400, 14_400))  # 200 x 200 inches
    pdf.save(path)
    pages, errors = collect(path, tmp_path)
    assert pages == []
    assert errors[0].source == f"{path} page 1"
    assert "too large to render" in errors[0].reason


# ----------------------------------------------------------------------------------- import driver


def test_import_delivers_good_pages_and_reports_bad_ones(tmp_path: Path) -> None:
    good_png = tmp_path / "a.png"
    page_image(0).save(good_png, dpi=(150, 150))
    empty = tmp_path / "b.jpg"
    empty.write_bytes(b"")
    pdf = make_pdf(tmp_path / "c.pdf", pages=2)
    text = tmp_path / "d.tif"
    text.write_text("not an image\n")
    good_tif = tmp_path / "e.tif"
    page_image(0).convert("1").save(good_tif)

    pages, error = run_import([good_png, empty, pdf, text, good_tif], tmp_path)

    assert [p.label for p in pages] == ["a.png page 1", "c.pdf page 1", "c.pdf page 2", "e.tif page 1"]
    assert [p.sheet for p in pages] == [1, 2, 3, 4]
    assert {p.side for p in pages} == {"import"} and {p.device for p in pages} == {"import"}
    assert [p.dpi for p in pages] == [150, 100, 100, 300]
    pdf_hash = hashlib.sha256(pdf.read_bytes()).hexdigest()
    assert pages[1].source_key == f"import:{pdf_hash}:0"
    assert pages[2].source_key == f"import:{pdf_hash}:1"

    assert isinstance(error, ImportProblems)
    assert isinstance(error, InputError) and error.exit_code == 4
    assert error.pages_received == 4
    assert [p.source for p in error.problems] == [str(empty), str(text)]
    assert str(empty) in str(error) and str(text) in str(error)


def test_import_reports_problems_through_on_error_when_set(tmp_path: Path) -> None:
    good = tmp_path / "a.png"
    page_image().save(good)
    bad = tmp_path / "b.png"
    bad.write_bytes(b"")
    cut = tmp_path / "c.pdf"
    cut.write_bytes(make_pdf(tmp_path / "whole.pdf").read_bytes()[:300])
    reported: list[InputError] = []
    driver = ImportDriver([good, bad, cut], tmp_dir=tmp_path)
    driver.on_error = reported.append  # what scanstation.facade does
    pages: list[CapturedPage] = []
    assert driver.scan("import", ScanSettings(), CancelToken(), pages.append) == 1
    assert [e.source for e in reported] == [str(bad), str(cut)]
    assert not any(isinstance(e, ImportProblems) for e in reported)


def test_import_all_good_returns_count(tmp_path: Path) -> None:
    files = []
    for i in range(3):
        files.append(tmp_path / f"p{i}.png")
        page_image(i * 50).save(files[-1])
    pages, error = run_import(files, tmp_path)
    assert error is None
    assert len(pages) == 3
    assert len({p.source_key for p in pages}) == 3


def test_import_cancel_between_pages(tmp_path: Path) -> None:
    files = []
    for i in range(4):
        files.append(tmp_path / f"p{i}.png")
        page_image().save(files[-1])
    token = CancelToken()
    delivered: list[CapturedPage] = []

    def on_page(page: CapturedPage) -> None:
        delivered.append(page)
        if len(delivered) == 2:
            token.cancel()

    with pytest.raises(ScanCancelled):
        ImportDriver(files, tmp_dir=tmp_path).scan("import", ScanSettings(), token, on_page)
    assert len(delivered) == 2


def test_import_rejects_other_devices_and_options(tmp_path: Path) -> None:
    driver = ImportDriver([tmp_path / "x.png"], tmp_dir=tmp_path)
    with pytest.raises(DeviceNotFound):
        driver.scan("test:0", ScanSettings(), CancelToken(), lambda page: None)
    with pytest.raises(InputError, match="--option"):
        driver.scan("import", ScanSettings(options=(("mode", "Color"),)), CancelToken(), lambda page: None)
    assert [d.name for d in driver.list_devices()] == ["import"]
    assert driver.capabilities("import").resolutions[0] == 75


def test_registry_picks_drivers(tmp_path: Path) -> None:
    files = [tmp_path / "a.png"]
    driver = get_driver("import", files, tmp_dir=tmp_path)
    assert isinstance(driver, ImportDriver) and driver.files == files and driver.tmp_dir == tmp_path
    assert isinstance(get_driver("test:0"), SaneDriver)
    with pytest.raises(InputError, match="--device import"):
        get_driver("test:0", files)
    with pytest.raises(InputError, match="no input files"):
        get_driver("import")

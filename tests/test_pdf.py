"""Tests of searchable PDF/A assembly: text layer, lossless images, page size and PDF/A structure."""

from __future__ import annotations

import io
import shutil
import subprocess
import unicodedata
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pikepdf
import pytest
from pikepdf.models.metadata import decode_pdf_date
from PIL import Image

from scanstation.errors import InputError
from scanstation.ocr import pages as ocr
from scanstation.pdf import jbig2
from scanstation.pdf import page_images as pimg
from scanstation.pdf import searchable as pdf
from tests.corpus import corpus_file

IST = timezone(timedelta(hours=5, minutes=30))
META = pdf.PdfMetadata(
    title="ACR राम कुमार 2023-24",
    employee_code="PHQ-004711",
    employee_name="राम कुमार",
    acr_period="2023-24",
    unit="Unit 7",
    created=datetime(2024, 5, 6, 10, 30, tzinfo=IST),
)

pytestmark = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract is not installed")


def png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pdfwork")
    d.chmod(0o700)
    return d


@pytest.fixture(scope="module")
def english() -> tuple[Image.Image, bytes]:
    with Image.open(corpus_file("tess_phototest.tif")) as im:
        return im.convert("1"), png_bytes(im)


@pytest.fixture(scope="module")
def hindi() -> tuple[Image.Image, bytes]:
    with Image.open(corpus_file("tess_devatest.png")) as im:
        return im.convert("L"), png_bytes(im)


@pytest.fixture(scope="module")
def ocr_results(
    english: tuple[Image.Image, bytes], hindi: tuple[Image.Image, bytes], work_dir: Path
) -> tuple[ocr.PageOcr, ocr.PageOcr]:
    return (
        ocr.ocr_page(english[1], 200, work_dir, lang="eng"),
        ocr.ocr_page(hindi[1], 300, work_dir, lang="hin"),
    )


@pytest.fixture(scope="module")
def two_pages(
    english: tuple[Image.Image, bytes],
    hindi: tuple[Image.Image, bytes],
    ocr_results: tuple[ocr.PageOcr, ocr.PageOcr],
    work_dir: Path,
) -> bytes:
    pages = [
        pdf.PdfPage(english[1], 200, ocr_results[0].text_pdf),
        pdf.PdfPage(hindi[1], 300, ocr_results[1].text_pdf),
    ]
    data = pdf.build_searchable_pdf(pages, META, work_dir)
    assert list(work_dir.iterdir()) == []
    return data


def decoded_image(page: pikepdf.Page) -> tuple[pikepdf.Stream, np.ndarray]:
    (xobj,) = page.images.values()
    assert isinstance(xobj, pikepdf.Stream)
    return xobj, np.asarray(pikepdf.PdfImage(xobj).as_pil_image())


# ---------------------------------------------------------------- content


def test_two_page_pdf_has_searchable_text(two_pages: bytes) -> None:
    with pikepdf.open(io.BytesIO(two_pages)) as doc:
        assert len(doc.pages) == 2
    text = " ".join(pdf.pdf_text(two_pages).split())
    assert "quick brown dog" in text
    assert "lazy fox" in text
    assert "मनुष्यों" in text


def test_devanagari_copy_paste_round_trip(two_pages: bytes, ocr_results: tuple[ocr.PageOcr, ocr.PageOcr]) -> None:
    extracted = pdf.pdf_text(two_pages)
    assert unicodedata.is_normalized("NFC", extracted)
    words = {w for w in ocr_results[1].text.split() if len(w) >= 3 and all("\u0900" <= c <= "\u097f" for c in w)}
    assert len(words) > 20
    found = {w for w in words if w in extracted}
    # Every Devanagari word tesseract read must come back out of the text layer unchanged.
    assert found == words, sorted(words - found)[:10]


def test_text_layers_share_one_copy_of_tesseracts_font(two_pages: bytes) -> None:
    with pikepdf.open(io.BytesIO(two_pages)) as doc:
        fonts = [o for o in doc.objects if isinstance(o, pikepdf.Dictionary) and o.get("/Subtype") == "/Type0"]
        used = set()
        for page in doc.pages:
            form = page.Resources.XObject["/OCR0"]
            used |= {font.objgen for font in form.Resources.Font.values()}
    assert len(fonts) == 1 and used == {fonts[0].objgen}


def test_page_size_follows_dpi(two_pages: bytes) -> None:
    with pikepdf.open(io.BytesIO(two_pages)) as doc:
        boxes = [[float(v) for v in page.mediabox] for page in doc.pages]
    assert boxes[0] == pytest.approx([0, 0, 640 * 72 / 200, 480 * 72 / 200])
    assert boxes[1] == pytest.approx([0, 0, 1024 * 72 / 300, 486 * 72 / 300])


def test_bilevel_page_is_ccitt_g4_and_lossless(two_pages: bytes, english: tuple[Image.Image, bytes]) -> None:
    with pikepdf.open(io.BytesIO(two_pages)) as doc:
        xobj, pixels = decoded_image(doc.pages[0])
        assert xobj.Filter == pikepdf.Name.CCITTFaxDecode
        assert int(xobj.BitsPerComponent) == 1
    assert np.array_equal(pixels.astype(bool), np.asarray(english[0]).astype(bool))


@pytest.mark.skipif(shutil.which("gs") is None, reason="ghostscript is not installed")
def test_bilevel_page_renders_identically_in_ghostscript(two_pages: bytes, english: tuple[Image.Image, bytes]) -> None:
    # An independent decoder: catches a CCITT polarity (BlackIs1) mistake that pikepdf might share.
    single = io.BytesIO()
    with pikepdf.open(io.BytesIO(two_pages)) as doc:
        del doc.pages[1]
        doc.save(single)
    png = subprocess.run(
        ["gs", "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sDEVICE=pnggray", "-r200", "-sOutputFile=-", "-"],
        input=single.getvalue(),
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    rendered = np.asarray(Image.open(io.BytesIO(png)).convert("L")) > 127
    assert np.array_equal(rendered, np.asarray(english[0]).astype(bool))


def test_grey_page_is_lossless(two_pages: bytes, hindi: tuple[Image.Image, bytes]) -> None:
    with pikepdf.open(io.BytesIO(two_pages)) as doc:
        xobj, pixels = decoded_image(doc.pages[1])
        assert xobj.Filter == pikepdf.Name.FlateDecode
        assert xobj.ColorSpace == pikepdf.Name.DeviceGray
    assert np.array_equal(pixels, np.asarray(hindi[0]))


def test_colour_lossless_and_photo_jpeg(work_dir: Path) -> None:
    rng = np.random.default_rng(7)
    colour = Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8), "RGB")
    grey_as_rgb = Image.fromarray(np.repeat(rng.integers(0, 256, (60, 80, 1), dtype=np.uint8), 3, axis=2), "RGB")
    pages = [
        pdf.PdfPage(colour, 72),
        pdf.PdfPage(png_bytes(colour), 72, photo=True),
        pdf.PdfPage(grey_as_rgb, 72),
    ]
    with pikepdf.open(io.BytesIO(pdf.build_searchable_pdf(pages, META, work_dir))) as doc:
        xobj, pixels = decoded_image(doc.pages[0])
        assert xobj.Filter == pikepdf.Name.FlateDecode and xobj.ColorSpace == pikepdf.Name.DeviceRGB
        assert np.array_equal(pixels, np.asarray(colour))
        xobj, _ = decoded_image(doc.pages[1])
        assert xobj.Filter == pikepdf.Name.DCTDecode
        xobj, pixels = decoded_image(doc.pages[2])
        assert xobj.ColorSpace == pikepdf.Name.DeviceGray  # grey stored as RGB shrinks, exactly
        assert np.array_equal(pixels, np.asarray(grey_as_rgb)[..., 0])


def test_image_only_page_when_ocr_failed(english: tuple[Image.Image, bytes], work_dir: Path) -> None:
    data = pdf.build_searchable_pdf([pdf.PdfPage(english[0], 200, None)], META, work_dir)
    assert pdf.pdf_text(data).strip() == ""
    with pikepdf.open(io.BytesIO(data)) as doc:
        assert len(doc.pages[0].images) == 1


def test_build_is_deterministic(
    english: tuple[Image.Image, bytes], ocr_results: tuple[ocr.PageOcr, ocr.PageOcr], work_dir: Path
) -> None:
    pages = [pdf.PdfPage(english[1], 200, ocr_results[0].text_pdf)]
    assert pdf.build_searchable_pdf(pages, META, work_dir) == pdf.build_searchable_pdf(pages, META, work_dir)


def test_rejects_bad_input(
    english: tuple[Image.Image, bytes], ocr_results: tuple[ocr.PageOcr, ocr.PageOcr], work_dir: Path
) -> None:
    with pytest.raises(InputError, match="at least one page"):
        pdf.build_searchable_pdf([], META, work_dir)
    with pytest.raises(InputError, match=r"page 1.*cannot be read"):
        pdf.build_searchable_pdf([pdf.PdfPage(b"not an image", 300)], META, work_dir)
    with pytest.raises(InputError, match="not a readable PDF"):
        pdf.build_searchable_pdf([pdf.PdfPage(english[1], 200, b"%PDF-garbage")], META, work_dir)
    # The Hindi page's text layer does not fit the English page's shape.
    with pytest.raises(InputError, match="does not match the page image"):
        pdf.build_searchable_pdf([pdf.PdfPage(english[1], 200, ocr_results[1].text_pdf)], META, work_dir)
    with pytest.raises(InputError, match="16-bit"):
        pdf.build_searchable_pdf([pdf.PdfPage(Image.new("I;16", (100, 100)), 300)], META, work_dir)


def test_srgb_profile_found() -> None:
    profile = pdf.srgb_icc_profile()
    assert profile[36:40] == b"acsp" and profile[16:20] == b"RGB "


# ---------------------------------------------------------------- PDF/A


def pdfa_structural_problems(data: bytes) -> list[str]:
    """What we can check of PDF/A-2b without veraPDF (not available offline): the usual failure points."""
    problems: list[str] = []
    with pikepdf.open(io.BytesIO(data)) as doc:
        if doc.is_encrypted or "/Encrypt" in doc.trailer:
            problems.append("encrypted")
        if "/ID" not in doc.trailer:
            problems.append("trailer has no /ID")
        if float(doc.pdf_version) > 1.7:
            problems.append(f"PDF version {doc.pdf_version} > 1.7")

        meta_stream = doc.Root.get("/Metadata")
        if meta_stream is None:
            problems.append("no XMP metadata")
        elif "/Filter" in meta_stream:
            problems.append("XMP metadata stream is compressed")
        meta = doc.open_metadata()
        if meta.get("pdfaid:part") != "2" or meta.get("pdfaid:conformance") != "B":
            problems.append(f"pdfaid is {meta.get('pdfaid:part')}/{meta.get('pdfaid:conformance')}")
        pairs = {
            "/Title": "dc:title",
            "/Subject": "dc:description",
            "/Keywords": "pdf:Keywords",
            "/Creator": "xmp:CreatorTool",
            "/Producer": "pdf:Producer",
        }
        for info_key, xmp_key in pairs.items():
            if info_key in doc.docinfo and str(doc.docinfo[info_key]) != str(meta.get(xmp_key)):
                problems.append(f"Info {info_key} != XMP {xmp_key}")
        for info_key, xmp_key in {"/CreationDate": "xmp:CreateDate", "/ModDate": "xmp:ModifyDate"}.items():
            if info_key in doc.docinfo:
                xmp_date = meta.get(xmp_key)
                if xmp_date is None or decode_pdf_date(str(doc.docinfo[info_key])) != datetime.fromisoformat(
                    str(xmp_date)
                ):
                    problems.append(f"Info {info_key} != XMP {xmp_key}")

        intents = doc.Root.get("/OutputIntents")
        if not intents:
            problems.append("no OutputIntent")
        else:
            intent = intents[0]
            profile = intent.get("/DestOutputProfile")
            if intent.get("/S") != pikepdf.Name.GTS_PDFA1:
                problems.append("OutputIntent subtype is not GTS_PDFA1")
            if profile is None or int(profile.get("/N", 0)) != 3:
                problems.append("OutputIntent has no RGB DestOutputProfile")
            elif profile.read_bytes()[36:40] != b"acsp":
                problems.append("DestOutputProfile is not an ICC profile")

        for obj in doc.objects:
            if not isinstance(obj, pikepdf.Dictionary | pikepdf.Stream):
                continue
            group = obj.get("/Group")
            if group is not None and group.get("/S") == pikepdf.Name.Transparency:
                problems.append(f"transparency group in {obj.objgen}")
            if obj.get("/Subtype") == pikepdf.Name.Image and "/SMask" in obj:
                problems.append(f"soft mask on image {obj.objgen}")
            if obj.get("/Type") == pikepdf.Name.ExtGState and (
                float(obj.get("/CA", 1)) < 1 or float(obj.get("/ca", 1)) < 1
            ):
                problems.append(f"constant alpha in {obj.objgen}")
            filters = obj.get("/Filter")
            names = {str(f) for f in filters} if isinstance(filters, pikepdf.Array) else {str(filters)}
            # LZW is forbidden by PDF/A; JBIG2 is allowed, and by our own rule only as lossless generic regions
            # (JBIG2's symbol matching can silently swap similar characters): no globals, no symbol segments.
            if "/LZWDecode" in names:
                problems.append(f"forbidden filter {names} in {obj.objgen}")
            if "/JBIG2Decode" in names:
                parms = obj.get("/DecodeParms")
                if parms is not None and "/JBIG2Globals" in parms:
                    problems.append(f"JBIG2 globals (a symbol dictionary) in {obj.objgen}")
                # our streams carry JBIG2Decode alone; behind another filter the raw bytes are not JBIG2
                kinds = set(jbig2.segment_types(obj.read_raw_bytes())) if len(names) == 1 else {-1}
                if not kinds <= jbig2.GENERIC_SEGMENT_TYPES:
                    kinds -= jbig2.GENERIC_SEGMENT_TYPES
                    problems.append(f"JBIG2 segments of types {sorted(kinds)} in {obj.objgen}")
            if obj.get("/Type") == pikepdf.Name.Font and obj.get("/Subtype") != pikepdf.Name.Type3:
                font = obj.DescendantFonts[0] if obj.get("/Subtype") == pikepdf.Name.Type0 else obj
                descriptor = font.get("/FontDescriptor")
                if descriptor is None or not any(k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3")):
                    problems.append(f"font {obj.get('/BaseFont')} not embedded")
    return problems


def test_pdfa_structure(two_pages: bytes) -> None:
    assert pdfa_structural_problems(two_pages) == []
    with pikepdf.open(io.BytesIO(two_pages)) as doc:
        meta = doc.open_metadata()
        assert meta["dc:title"] == META.title
        assert str(doc.docinfo["/Title"]) == META.title
        assert str(doc.docinfo["/Producer"]).startswith("ScanStation ")
        assert decode_pdf_date(str(doc.docinfo["/CreationDate"])) == META.created


def test_pdfa_validator_if_available(two_pages: bytes) -> None:
    # pikepdf ships an allow-list PDF/A validator when its optional extras (pikepdf[pdfa]) are installed.
    pdfa = pytest.importorskip("pikepdf.pdfa", exc_type=ImportError)
    report = pdfa.validate_written(io.BytesIO(two_pages), "2b")
    assert report.passed, [str(f) for f in report.findings]


def test_structural_check_catches_non_pdfa(ocr_results: tuple[ocr.PageOcr, ocr.PageOcr]) -> None:
    # Guard against a checker that approves everything: tesseract's bare text page is not PDF/A.
    problems = pdfa_structural_problems(ocr_results[0].text_pdf)
    assert "no XMP metadata" in problems
    assert "no OutputIntent" in problems


# ---------------------------------------------------------------- pre-encoded pages (scanstation ocr)


def _encoded_file(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGB"])
def test_png_passthrough_is_exact_and_pdfa(mode: str, work_dir: Path) -> None:
    with Image.open(corpus_file("tess_devatest.png")) as im:
        source = im.convert("RGB").convert(mode) if mode != "P" else im.copy()
    data = _encoded_file(source, "PNG")
    encoded = pimg.encode_image(data, passthrough=True)
    assert encoded.source == "png passthrough"
    built = pdf.build_searchable_pdf([pdf.PdfPage(encoded, 300)], META, work_dir)
    assert pdfa_structural_problems(built) == []
    with pikepdf.open(io.BytesIO(built)) as doc:
        _xobj, pixels = decoded_image(doc.pages[0])
    expected = np.asarray(source.convert("RGB") if mode == "P" else source)
    got = pixels if mode != "P" else np.asarray(Image.fromarray(pixels).convert("RGB"))
    assert np.array_equal(got.astype(np.uint8), expected.astype(np.uint8))


def test_passthrough_only_when_pdf_can_carry_it(work_dir: Path) -> None:
    with Image.open(corpus_file("tess_devatest.png")) as im:
        grey = im.convert("L")
    transparent = grey.convert("LA")
    assert pimg.encode_image(_encoded_file(transparent, "PNG"), passthrough=True).source == "flate"
    deep = _encoded_file(Image.fromarray(np.asarray(grey).astype(np.uint16) * 257), "PNG")
    assert pimg.passthrough_image(deep) is None  # 16 bits: decoded and reduced to 8 by the loader instead
    jpeg = _encoded_file(grey, "JPEG", quality=85)
    encoded = pimg.encode_image(jpeg, passthrough=True)
    assert encoded.source == "jpeg passthrough" and encoded.data == jpeg
    cmyk = _encoded_file(grey.convert("CMYK"), "JPEG")
    assert pimg.encode_image(cmyk, passthrough=True).source == "flate"
    # Without passthrough the station's rule holds: lossless re-encoding.
    assert pimg.encode_image(_encoded_file(grey, "PNG")).source == "flate"
    assert pimg.encode_image(grey.convert("1")).source == "g4"


# ---------------------------------------------------------------- turned pages, Flate choice, the station


def _render(data: bytes, dpi: int) -> np.ndarray:
    png = subprocess.run(
        ["pdftoppm", "-r", str(dpi), "-gray", "-png", "-"], input=data, capture_output=True, check=True, timeout=60
    ).stdout
    return np.asarray(Image.open(io.BytesIO(png)).convert("L")).astype(np.int16)


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils is not installed")
@pytest.mark.parametrize(("turn", "skew"), [(0, 3.0), (90, 0.0), (270, -2.0)])
def test_turned_page_shows_straight_and_keeps_its_pixels(turn: int, skew: float, work_dir: Path) -> None:
    from scanstation import imaging

    with Image.open(corpus_file("tess_eurotext.tif")) as im:
        upright = im.convert("L")
    content = upright.rotate(turn, expand=True, fillcolor=255) if turn else upright
    scanned = content.rotate(skew, resample=Image.Resampling.BICUBIC, fillcolor=255) if skew else content
    built = pdf.build_searchable_pdf([pdf.PdfPage(scanned, 300, turn=turn, skew=skew)], META, work_dir)
    assert pdfa_structural_problems(built) == []
    with pikepdf.open(io.BytesIO(built)) as doc:
        _xobj, pixels = decoded_image(doc.pages[0])
        box = [float(v) for v in doc.pages[0].mediabox]
    # Stored as scanned, nothing resampled (a page of pure black and white is stored as such, exactly).
    assert np.array_equal(np.asarray(Image.fromarray(pixels).convert("L")), np.asarray(scanned))
    assert box == pytest.approx([0, 0, 1024 * 72 / 300, 800 * 72 / 300])  # the upright page's shape
    # What a reader sees is the page turned back, as our own deskew would have made it ...
    straight = np.ascontiguousarray(np.rot90(np.asarray(scanned), -(turn // 90)))
    straight = imaging.deskew(straight, skew) if skew else straight
    shown = _render(built, 300)
    assert shown.shape == straight.shape
    near = np.abs(shown - straight.astype(np.int16)).mean()
    # ... and not the scan as it lies (a wrong direction of turn would match neither).
    as_scanned = np.asarray(scanned.resize(shown.shape[::-1])).astype(np.int16)
    assert near < 8 < 4 * near < np.abs(shown - as_scanned).mean()


def test_text_layer_of_a_quarter_turned_page_must_fit_the_turned_shape(
    ocr_results: tuple[ocr.PageOcr, ocr.PageOcr], english: tuple[Image.Image, bytes], work_dir: Path
) -> None:
    sideways = english[0].rotate(90, expand=True)  # the English page's text layer is 640 x 480 at 200 dpi
    page = pdf.PdfPage(sideways, 200, ocr_results[0].text_pdf, turn=90)
    assert "quick brown dog" in " ".join(pdf.pdf_text(pdf.build_searchable_pdf([page], META, work_dir)).split())
    with pytest.raises(InputError, match="does not match"):
        pdf.build_searchable_pdf([pdf.PdfPage(sideways, 200, ocr_results[0].text_pdf)], META, work_dir)
    with pytest.raises(InputError, match="cannot draw"):
        pdf.build_searchable_pdf([pdf.PdfPage(english[0], 200, None, turn=45)], META, work_dir)


def _turned_grey_page() -> Image.Image:
    with Image.open(corpus_file("oldbooks_h033.tiff")) as im:
        return im.convert("L").rotate(4.9, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)


def test_flate_choice_is_lossless_and_no_bigger_than_before(work_dir: Path) -> None:
    with Image.open(corpus_file("lept_lighttext.jpg")) as faint, Image.open(corpus_file("galfar_5.png")) as form:
        real = [faint.convert("L"), form.convert("RGB")]  # a faint grey scan, a colour scan of a form
    for im in (_turned_grey_page(), *real):
        encoded = pimg.encode_image(im)
        # Before: PNG filters at zlib level 6, or level 1 on noisy pages.
        before = min(len(pimg.encode_image(im, compress_level=level).data) for level in (1, 6))
        assert len(encoded.data) <= before * 1.02
        built = pdf.build_searchable_pdf([pdf.PdfPage(encoded, 300)], META, work_dir)
        with pikepdf.open(io.BytesIO(built)) as doc:
            _xobj, pixels = decoded_image(doc.pages[0])
        # (grey stored as RGB, as the form is, is kept as grey: exactly)
        assert np.array_equal(pixels, np.asarray(im if pixels.ndim == 3 else im.convert("L")))
    # A scanned text page: run-length matching of unfiltered rows, clearly smaller than PNG filters.
    turned = _turned_grey_page()
    assert not pimg.encode_image(turned).decode_parms
    assert len(pimg.encode_image(turned).data) < 0.9 * len(pimg.encode_image(turned, compress_level=6).data)


def test_station_assembles_its_compact_pages_as_stored(tmp_path: Path) -> None:
    """The ACR file's PDF draws each page's compact page (issue 16) as the processing worker stored it: the same
    image streams byte for byte (assembling never re-encodes), far smaller than the cleaned PNGs, with the text."""
    from drivers.base import CancelToken, CapturedPage, ScanSettings
    from scanstation.capture.cover_sheets import CoverInfo, render_cover_sheet
    from scanstation.facade import Station
    from scanstation_tools.synth import PageSpec, render_acr_page

    from .stationkit import make_station

    class Stack:
        name = "stack"

        def __init__(self, images: list[Image.Image]) -> None:
            self.images = images

        def scan(self, device, settings, cancel, on_page):  # type: ignore[no-untyped-def]
            for i, im in enumerate(self.images, 1):
                on_page(CapturedPage(im, 300, "stack:0", "front", i, f"stack:{i}", f"sheet {i}"))
            return len(self.images)

    st = make_station(tmp_path / "st")
    config, key = st.unlock()
    cover = render_cover_sheet(CoverInfo("MC-44-000444", "2022-23", "Test Unit"))
    synthetic = [render_acr_page(PageSpec(seed=21, page_no=n, content="english", dpi=300)) for n in (1, 2)]
    pages = [p.image for p in synthetic]
    with Station(config, key) as station:
        station.capture(
            "PT", Stack([cover, *pages]), "stack:0", ScanSettings(), cancel=CancelToken()  # type: ignore[arg-type]
        )
        assert station.wait_idle(include_ocr=True, timeout=300)
        batch = station.store.batch("PT")
        assert batch is not None
        [doc] = station.store.documents(batch.id)
        doc_pages = station.store.document_pages(doc.id)
        cleaned = [station.read_object(p.image_object) for p in doc_pages if p.image_object]
        compact = [station.read_object(p.compact_object) for p in doc_pages if p.compact_object]
        pdf_bytes = station.read_object(station.assemble_pdf(doc.id).id)
    assert len(cleaned) == len(compact) == 2 and pdfa_structural_problems(pdf_bytes) == []
    assert len(pdf_bytes) < sum(map(len, cleaned)) / 4

    def streams(obj: pikepdf.Object) -> list[bytes]:
        """Raw bytes of every image reached from a page or form's resources (forms followed), in a stable order."""
        out: list[bytes] = []
        xobjects = obj.get("/Resources", {}).get("/XObject", {})
        for _name, x in sorted(xobjects.items()):
            if x.get("/Subtype") == pikepdf.Name.Image:
                out.append(bytes(x.read_raw_bytes()))
                mask = x.get("/Mask")
                if isinstance(mask, pikepdf.Stream):
                    out.append(bytes(mask.read_raw_bytes()))
            elif x.get("/Subtype") == pikepdf.Name.Form:
                out.extend(streams(x))
        return sorted(out)

    with pikepdf.open(io.BytesIO(pdf_bytes)) as built:
        for page, one in zip(built.pages, compact, strict=True):
            with pikepdf.open(io.BytesIO(one)) as stored_page:
                expected = streams(stored_page.pages[0].obj)
            assert expected and set(expected) <= set(streams(page.obj))
    words = [w for w in synthetic[1].text.split() if len(w) >= 8 and w.isalpha()]
    text = pdf.pdf_text(pdf_bytes)
    assert len(words) > 10 and sum(w in text for w in words) > 0.8 * len(words)  # the text layers are there

"""Dark scanner borders and punch holes are found and painted out; content near the edge always survives."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from scanstation.cleanup.borders import BorderResult, clean_borders, find_borders
from scanstation.imaging import to_gray
from tests.corpus import corpus_file, needs_corpus
from tests.pagekit import synthetic_array

DPI = 200
PX = DPI / 25.4


def page(**kw: object) -> np.ndarray:
    return synthetic_array(**{"dpi": DPI, **kw})


def holes_at(gray: np.ndarray, centres: list[tuple[float, float]], level: int = 28, d_mm: float = 6.0) -> np.ndarray:
    out = gray.copy()
    for x_mm, y_mm in centres:
        cv2.circle(out, (round(x_mm * PX), round(y_mm * PX)), round(d_mm / 2 * PX), level, -1, lineType=cv2.LINE_AA)
    return out


def ink(a: np.ndarray) -> np.ndarray:
    return (a if a.ndim == 2 else a.min(axis=2)) < 128


def assert_ink_inside(box: tuple[int, int, int, int], mask: np.ndarray, share: float = 1.0) -> None:
    x0, y0, x1, y1 = box
    if share >= 1.0:
        ys, xs = np.nonzero(mask)
        assert xs.min() >= x0 and ys.min() >= y0 and xs.max() < x1 and ys.max() < y1, (box, xs.min(), ys.min())
    else:
        assert mask[y0:y1, x0:x1].sum() >= share * mask.sum()


def assert_box_keeps_marks(box: tuple[int, int, int, int], cleaned: np.ndarray, dpi: float = DPI) -> None:
    """Every mark not wholly inside the content box lies at the image edge (a hairline left of a lid)."""
    x0, y0, x1, y1 = box
    _n, _l, stats, _c = cv2.connectedComponentsWithStats(ink(cleaned).astype(np.uint8), connectivity=8)
    h, w = cleaned.shape[:2]
    e = 2.0 * dpi / 25.4
    for x, y, bw, bh, area in stats[1:]:
        inside = x >= x0 and y >= y0 and x + bw <= x1 and y + bh <= y1
        at_edge = x <= e or y <= e or x + bw >= w - e or y + bh >= h - e
        assert inside or at_edge or area < 5, (box, (x, y, bw, bh, area))


def assert_no_mark_cut(orig: np.ndarray, cleaned: np.ndarray) -> None:
    """Every mark of the original is either left exactly as it was or painted (almost) whole, as the
    lid is: cleaning never takes a bite out of a stroke, a stamp or a signature."""
    changed = (orig != cleaned).astype(np.float64)
    n, labels, stats, _c = cv2.connectedComponentsWithStats((orig < 128).astype(np.uint8), connectivity=8)
    painted = np.bincount(labels.ravel(), weights=changed.ravel(), minlength=n) / np.maximum(stats[:, 4], 1)
    cut = [i for i in range(1, n) if stats[i, 4] >= 20 and 0.0 < painted[i] < 0.9]
    assert not cut, [tuple(stats[i]) for i in cut]


def lid_left(cleaned: np.ndarray) -> int:
    """Dark pixels still connected to the image edge."""
    _n, _l, stats, _c = cv2.connectedComponentsWithStats((cleaned < 128).astype(np.uint8), connectivity=8)
    h, w = cleaned.shape[:2]
    x, y, bw, bh, area = (stats[1:, i] for i in range(5))
    touching = (x == 0) | (y == 0) | (x + bw == w) | (y + bh == h)
    return int(area[touching].sum())


# --------------------------------------------------------------------------------------------------
# Lid bands
# --------------------------------------------------------------------------------------------------


def test_a_page_without_border_is_left_alone() -> None:
    gray = page(seed=80)
    r = find_borders(gray, DPI)
    assert tuple(r.dark_bands) == (0, 0, 0, 0) and r.punch_holes == [] and r.white_holes == []
    assert not r.has_borders
    assert r.paper_box == (0, 0, gray.shape[1], gray.shape[0])
    assert clean_borders(gray, r).tobytes() == gray.tobytes()
    assert_ink_inside(r.content_box, ink(gray))


@pytest.mark.parametrize(("seed", "skew", "noise"), [(81, 1.0, 0.0), (82, -3.5, 0.5), (83, 6.0, 0.2)])
def test_dark_borders_are_found_and_painted_white(seed: int, skew: float, noise: float) -> None:
    gray = page(seed=seed, dark_border=True, skew_deg=skew, noise=noise)
    r = find_borders(gray, DPI)
    assert r.has_borders and max(r.dark_bands) > 0
    cleaned = clean_borders(gray, r)
    assert cleaned.shape == gray.shape and cleaned.dtype == np.uint8
    for edge in (cleaned[:3], cleaned[-3:], cleaned[:, :3], cleaned[:, -3:]):
        assert edge.mean() > 200
    # At most hairline tips of the lid's wedges remain (under 0.05 % of the page).
    assert lid_left(cleaned) < 0.0005 * gray.size
    assert_no_mark_cut(gray, cleaned)
    assert_box_keeps_marks(r.content_box, cleaned)


def test_painting_the_lid_leaves_the_sheet_as_scanned_without_it() -> None:
    gray = page(seed=81, dark_border=True, skew_deg=1.0)
    plain = page(seed=81, skew_deg=1.0)
    cleaned = clean_borders(gray, find_borders(gray, DPI))
    assert ink(cleaned).sum() == pytest.approx(ink(plain).sum(), rel=0.05)


def test_text_cut_off_at_the_image_edge_is_not_taken_for_a_border() -> None:
    gray = np.ascontiguousarray(page(seed=84)[:, round(22 * PX) :])  # the text now runs off the left edge
    assert ink(gray[:, :3]).sum() > 0
    r = find_borders(gray, DPI)
    assert r.dark_bands.left == 0
    assert clean_borders(gray, r).tobytes() == gray.tobytes()
    assert r.content_box[0] == 0


def test_content_next_to_a_dark_border_survives() -> None:
    """A signature and a stamp 2-4 mm from the lid on a sheet shifted against the scan window."""
    sig = page(seed=85, content="signature")
    stamp = page(seed=86, content="stamp")
    gray = np.full_like(sig, 244)
    h, _w = gray.shape
    # Lid on the left (9 mm) and the bottom (7 mm).
    lid_x, lid_y = round(9 * PX), h - round(7 * PX)
    gray[:, :lid_x] = 22
    gray[lid_y:, :] = 22
    # Paste the signature right of the lid and the stamp above the bottom lid.
    ys, xs = np.nonzero(sig < 200)
    sig_crop = sig[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    sx, sy = lid_x + round(2 * PX), round(60 * PX)
    gray[sy : sy + sig_crop.shape[0], sx : sx + sig_crop.shape[1]] = np.minimum(
        gray[sy : sy + sig_crop.shape[0], sx : sx + sig_crop.shape[1]], sig_crop
    )
    ys, xs = np.nonzero(stamp < 200)
    st_crop = stamp[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    tx, ty = round(120 * PX), lid_y - round(3 * PX) - st_crop.shape[0]
    gray[ty : ty + st_crop.shape[0], tx : tx + st_crop.shape[1]] = np.minimum(
        gray[ty : ty + st_crop.shape[0], tx : tx + st_crop.shape[1]], st_crop
    )
    content = np.zeros(gray.shape, bool)
    content[sy : sy + sig_crop.shape[0], sx : sx + sig_crop.shape[1]] = sig_crop < 200
    content[ty : ty + st_crop.shape[0], tx : tx + st_crop.shape[1]] |= st_crop < 200

    r = find_borders(gray, DPI)
    assert r.dark_bands.left == pytest.approx(lid_x, abs=round(1.5 * PX))
    assert r.dark_bands.bottom == pytest.approx(h - lid_y, abs=round(1.5 * PX))
    assert r.punch_holes == []
    cleaned = clean_borders(gray, r)
    assert np.array_equal(cleaned[content], gray[content])  # every content pixel untouched
    assert (cleaned[:, : lid_x - round(1 * PX)] == 255).all()
    assert_ink_inside(r.content_box, content)


def test_a_colour_page_is_cleaned_in_colour() -> None:
    rgb = page(seed=87, dark_border=True, skew_deg=2.0, mode="RGB")
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    r = find_borders(gray, DPI)
    cleaned = clean_borders(rgb, r)
    assert cleaned.shape == rgb.shape
    assert min(cleaned[:3].mean(), cleaned[-3:].mean(), cleaned[:, :3].mean(), cleaned[:, -3:].mean()) > 200
    with pytest.raises(ValueError):
        clean_borders(rgb[:-1], r)


# --------------------------------------------------------------------------------------------------
# Punch holes
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "centres",
    [
        [(12.0, 108.5), (12.0, 188.5)],  # two holes, ISO 838, left edge
        [(12.0, 28.5), (12.0, 108.5), (12.0, 188.5), (12.0, 268.5)],  # four holes
        [(65.0, 10.0), (145.0, 10.0)],  # top edge, punched close to it
        [(198.0, 110.0), (198.0, 190.0)],  # right edge (the sheet was fed turned round)
    ],
)
def test_dark_punch_holes_are_found_and_filled(centres: list[tuple[float, float]]) -> None:
    plain = page(seed=88)
    gray = holes_at(plain, centres)
    r = find_borders(gray, DPI)
    assert len(r.punch_holes) == len(centres)
    for x_mm, y_mm in centres:
        cx, cy, rad = min(r.punch_holes, key=lambda h: abs(h[0] / PX - x_mm) + abs(h[1] / PX - y_mm))
        assert abs(cx / PX - x_mm) < 1.0 and abs(cy / PX - y_mm) < 1.0
        assert rad / PX == pytest.approx(3.0, abs=0.5)
    cleaned = clean_borders(gray, r)
    for x_mm, y_mm in centres:
        x, y, rr = round(x_mm * PX), round(y_mm * PX), round(3 * PX)
        disc = np.zeros(gray.shape, np.uint8)
        cv2.circle(disc, (x, y), round(0.85 * rr), 1, -1)
        assert cleaned[disc > 0].min() > 200  # filled with paper
    # Everything away from the holes is exactly as scanned.
    far = np.ones(gray.shape, bool)
    for x_mm, y_mm in centres:
        cv2.circle(far.view(np.uint8), (round(x_mm * PX), round(y_mm * PX)), round(5 * PX), 0, -1)
    assert np.array_equal(cleaned[far], gray[far])
    assert_ink_inside(r.content_box, ink(plain))


def test_a_hole_punched_through_a_table_frame_is_found() -> None:
    plain = page(seed=89)
    # The form's frame starts ~15 mm from the left edge; a careless punch cuts into it.
    gray = holes_at(plain, [(16.0, 120.0), (16.0, 200.0)])
    r = find_borders(gray, DPI)
    assert len(r.punch_holes) == 2


def test_holes_against_a_white_backing_need_no_cleaning() -> None:
    gray = page(seed=90, blank=True, bleed_through=True).copy()
    for y_mm in (108.5, 188.5):
        c = (round(12 * PX), round(y_mm * PX))
        cv2.circle(gray, c, round(3 * PX), 222, -1)
        cv2.ellipse(gray, c, (round(3 * PX), round(3 * PX)), 0, 100, 260, 150, max(1, round(0.4 * PX)))
    r = find_borders(gray, DPI)
    assert r.punch_holes == [] and len(r.white_holes) == 2
    assert clean_borders(gray, r).tobytes() == gray.tobytes()


def test_round_marks_in_the_content_are_not_holes() -> None:
    gray = page(seed=91).copy()
    cv2.circle(gray, (round(105 * PX), round(150 * PX)), round(3 * PX), 20, -1)  # a big dot mid-page
    cv2.rectangle(gray, (round(8 * PX), round(60 * PX)), (round(14 * PX), round(66 * PX)), 20, -1)  # a square
    cv2.circle(gray, (round(14 * PX), round(230 * PX)), round(3 * PX), 30, round(0.6 * PX))  # a ring (O)
    r = find_borders(gray, DPI)
    assert r.punch_holes == [] and r.white_holes == []
    assert clean_borders(gray, r).tobytes() == gray.tobytes()


def test_stamp_near_the_edge_is_not_a_hole() -> None:
    stamp = page(seed=92, content="stamp")
    ys, xs = np.nonzero(stamp < 200)
    crop = stamp[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    gray = np.full_like(stamp, 244)
    gray[round(100 * PX) : round(100 * PX) + crop.shape[0], round(4 * PX) : round(4 * PX) + crop.shape[1]] = crop
    r = find_borders(gray, DPI)
    assert r.punch_holes == [] and r.white_holes == []
    assert clean_borders(gray, r).tobytes() == gray.tobytes()


# --------------------------------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------------------------------


@needs_corpus
@pytest.mark.parametrize(
    "name",
    [
        "galfar_2.png",
        "galfar_5.png",
        "lept_lighttext.jpg",
        "tess_eurotext.tif",
        "oldbooks_a065.tiff",
        "skimage_page.png",
    ],
)
def test_corpus_pages_keep_their_content(name: str) -> None:
    with Image.open(corpus_file(name)) as im:
        gray = to_gray(im)
    r: BorderResult = find_borders(gray, 300)
    assert r.punch_holes == []
    cleaned = clean_borders(gray, r)
    assert_no_mark_cut(gray, cleaned)
    assert_box_keeps_marks(r.content_box, cleaned, 300)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        find_borders(np.zeros((10, 10, 3), np.uint8), 300)
    with pytest.raises(ValueError):
        find_borders(np.zeros((10, 10), np.uint8), -1)


@pytest.mark.parametrize("k", [1, 2, 3, -1])
def test_findings_turn_with_the_page(k: int) -> None:
    gray = holes_at(page(seed=93, dark_border=True, skew_deg=2.0), [(12.0, 100.0), (12.0, 180.0)])
    turned = find_borders(gray, DPI).turned(k)
    direct = find_borders(np.ascontiguousarray(np.rot90(gray, k)), DPI)
    assert turned.shape == direct.shape
    assert turned.dark_bands == direct.dark_bands
    assert np.allclose(turned.content_box, direct.content_box, atol=2)
    assert np.allclose(turned.paper_box, direct.paper_box, atol=2)
    assert np.allclose(sorted(turned.punch_holes), sorted(direct.punch_holes), atol=3)

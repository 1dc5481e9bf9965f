"""Separator sheets split an import/ADF stack into ACR files; they are not stored as pages."""

from __future__ import annotations

import json
from pathlib import Path

from scanstation.capture.cover_sheets import CoverInfo, render_cover_sheet
from scanstation_tools.synth import PageSpec, render_acr_page

from .stationkit import make_station


def test_cover_sheets_split_stack_into_documents(tmp_path: Path) -> None:
    st = make_station(tmp_path / "st")
    stack = []
    for code, period, seed in (("MC-11-000111", "2019-20", 5), ("MC-22-000222", "2020-21", 6)):
        stack.append(render_cover_sheet(CoverInfo(code, period, "Test Unit")))
        stack.append(render_acr_page(PageSpec(seed=seed, page_no=1, dpi=300)).image)
        stack.append(render_acr_page(PageSpec(seed=seed, page_no=2, dpi=300, rotation=180)).image)
    files = []
    for i, im in enumerate(stack):
        f = tmp_path / f"s{i:02d}.png"
        im.convert("L").save(f, dpi=(300, 300))
        files.append(str(f))
    proc = st.run("import", "--batch", "SEP", *files, "--no-wait")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("acknowledged page") == 4
    data = json.loads(st.run("status", "--batch", "SEP", "--json", check=True).stdout)["batches"][0]
    docs = {d["employee_code"]: d for d in data["documents"]}
    assert set(docs) == {"MC-11-000111", "MC-22-000222"}
    assert docs["MC-11-000111"]["acr_period"] == "2019-20"
    assert all(d["pages"] == 2 for d in docs.values())
    by_doc = [p["document_id"] for p in data["page_list"]]
    assert by_doc[0] == by_doc[1] != by_doc[2] == by_doc[3]


class _DuplexStack:
    """A duplex feeder holding given sheets (front, back): the fake-scanner pattern for sides SANE's
    test back end cannot produce."""

    name = "stack"

    def __init__(self, sheets: list[tuple[object, object]]) -> None:
        self.sheets = sheets

    def scan(self, device, settings, cancel, on_page):  # type: ignore[no-untyped-def]
        from drivers.base import CapturedPage

        n = 0
        for i, (front, back) in enumerate(self.sheets, 1):
            for side, im in (("front", front), ("back", back)):
                on_page(CapturedPage(im, 300, "stack:0", side, i, f"stack:{i}:{side}", f"sheet {i} {side}"))
                n += 1
        return n


def test_blank_back_of_a_duplex_cover_sheet_is_part_of_the_separator(tmp_path: Path) -> None:
    from drivers.base import CancelToken, ScanSettings
    from scanstation.facade import Station

    st = make_station(tmp_path / "st")
    config, key = st.unlock()
    cover = render_cover_sheet(CoverInfo("MC-33-000333", "2021-22", "Test Unit"))
    blank_back = render_acr_page(PageSpec(seed=9, blank=True, bleed_through=True)).image
    page = render_acr_page(PageSpec(seed=9, page_no=1)).image
    page_back = render_acr_page(PageSpec(seed=9, page_no=2)).image
    with Station(config, key) as station:
        report = station.capture(
            "DUP",
            _DuplexStack([(cover, blank_back), (page, page_back)]),
            "stack:0",
            ScanSettings(),
            cancel=CancelToken(),
        )
        assert report.cover_sheets == 1
        assert len(report.acknowledged) == 2  # the two sides of the ACR sheet, not the separator's back
        batch = station.store.batch("DUP")
        assert batch is not None
        [doc] = station.store.documents(batch.id)
        assert doc.employee_code == "MC-33-000333"
        assert [p.side.value for p in station.store.document_pages(doc.id)] == ["front", "back"]

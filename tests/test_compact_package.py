"""Issue 16 end to end: pages travel once, at the compact encoding, and the vault keeps no more than it needs.

A batch of 300-dpi grey pages with paper grain and bleed-through is imported, processed (each page's compact
page made by the processing worker), verified and sealed.  The package carries each filed page only inside
its ACR file's PDF/A, an unfiled (blank) page as a one-page PDF/A, and the OCR texts; nothing else.  The raw
captures are destroyed at the seal (``verify-vault`` stays clean) and a re-seal after an unseal does not need
them.  With ``upload.include_raw`` the raw capture and the cleaned page travel too, as one-page PDF/As, and
the raw is kept.  The reference receiver stores a compact package and re-verifies it from its store alone.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
from pathlib import Path
from typing import Any

import pikepdf
import pyrage
import pytest
import sqlcipher3

from batchformat import verify_package
from scanstation_tools.synth import PageSpec, render_acr_page
from tests.receiverkit import reverify_stored_batch, start_receiver, upload_package, write_identity
from tests.stationkit import StationEnv, make_station

# Pages as a scanner delivers them from real paper: grain and bleed-through (the costly case for the archive).
NOISY = {"dpi": 300, "noise": 0.3, "bleed_through": True}
KB = 1024


def _page_files(tmp: Path, name: str, specs: list[PageSpec]) -> list[str]:
    files = []
    for i, spec in enumerate(specs):
        f = tmp / f"{name}-{i}.png"
        render_acr_page(spec).image.save(f)
        files.append(str(f))
    return files


def _status(st: StationEnv, batch: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(st.run("status", "--batch", batch, "--json", check=True).stdout)
    return out["batches"][0]


def _objects(page: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in page["objects"]}


def _vault_file(st: StationEnv, object_id: str) -> Path:
    return st.data_dir / "vault" / "objects" / object_id[:2] / f"{object_id}.age"


def _seal(st: StationEnv, batch: str) -> Path:
    proc = st.run("seal", "--batch", batch, check=True)
    return Path(proc.stdout.split(f"sealed batch {batch}: ")[1].split(" (")[0])


def _portal(st: StationEnv) -> pyrage.x25519.Identity:
    return pyrage.x25519.Identity.from_str(st.portal_identity_file.read_text().strip())


def _pdf(data: bytes) -> pikepdf.Pdf:
    assert data.startswith(b"%PDF-")
    pdf = pikepdf.open(io.BytesIO(data))
    # PDF/A-2b is claimed in the XMP (its conformance is tested with the encoder: tests/test_page_encoding.py)
    with pdf.open_metadata() as meta:
        assert meta.get("pdfaid:part") == "2" and meta.get("pdfaid:conformance") == "B"
    return pdf


def _text(data: bytes, tmp: Path) -> str:
    f = tmp / "page.pdf"
    f.write_bytes(data)
    try:
        return subprocess.run(["pdftotext", str(f), "-"], check=True, capture_output=True, text=True).stdout
    finally:
        f.unlink()


def _forget_compact(st: StationEnv, page_id: int) -> None:
    """Make a page look cleaned by a station before issue 16: no compact page recorded."""
    key = st.unlock()[1].store_key
    with contextlib.closing(sqlcipher3.connect(st.data_dir / "station.db")) as db:
        db.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
        db.execute("UPDATE pages SET compact_object = NULL WHERE id = ?", (page_id,))
        db.commit()


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("compact")
    portal_file = tmp / "portal.txt"
    portal = write_identity(portal_file)
    st = make_station(tmp / "st", portal=portal)
    st.roster("E1")
    filed = _page_files(tmp, "filed", [PageSpec(seed=5, page_no=1, **NOISY), PageSpec(seed=6, page_no=2, **NOISY)])
    st.run("import", "--batch", "B1", "--employee", "E1", "--period", "2019-20", *filed, check=True)
    # A blank back in no ACR file: flagged, not dropped; it travels as a page of its own.
    st.run("import", "--batch", "B1", *_page_files(tmp, "blank", [PageSpec(seed=7, blank=True, **NOISY)]),
           check=True)
    before = _status(st, "B1")
    # Page 2 as if cleaned by an older version (no compact page): it is encoded when its ACR file is assembled.
    _forget_compact(st, before["page_list"][1]["id"])
    st.verify("B1")
    pkg = _seal(st, "B1")
    return {"st": st, "tmp": tmp, "pkg": pkg, "before": before, "after": _status(st, "B1"),
            "portal": portal, "portal_file": portal_file}


def test_each_page_travels_once_and_small(sealed: dict[str, Any]) -> None:
    st, pkg, tmp = sealed["st"], sealed["pkg"], sealed["tmp"]
    verified = verify_package(pkg, [_portal(st)])
    manifest = verified.manifest
    assert manifest["format"] == "scanstation-manifest/3"
    [doc] = manifest["documents"]
    assert [p["seq"] for p in doc["pages"]] == [1, 2]
    assert all(p["raw"] is None and p["image"] is None and p["ocr_text"] for p in doc["pages"])
    [blank] = manifest["unfiled_pages"]
    assert blank["raw"] is None and "blank" in blank["flags"] and blank["ocr_state"] == "skipped"
    assert blank["ocr_text"] is None
    kinds = {o["id"]: o["kind"] for o in manifest["objects"]}
    assert sorted(kinds.values()) == ["ocr_text", "ocr_text", "page_pdf", "pdf"]
    assert kinds[doc["pdf"]] == "pdf" and kinds[blank["image"]] == "page_pdf"

    def plain(oid: str) -> bytes:
        return pyrage.decrypt(verified.object_member(oid), [_portal(st)])

    acr = _pdf(plain(doc["pdf"]))
    assert len(acr.pages) == 2
    width, height = (float(v) for v in acr.pages[0].mediabox[2:])
    assert abs(width - 8.27 * 72) < 10 and abs(height - 11.69 * 72) < 10  # A4: the page is the image at 300 dpi
    assert len(_pdf(plain(blank["image"])).pages) == 1
    assert "CONFIDENTIAL" in _text(plain(doc["pdf"]), tmp).upper()  # the text layer travels in the PDF

    # Small: well under 100 KB a page on these noisy grey pages (a lossless PNG of one is ~7 MB).
    pages = manifest["batch"]["page_count"]
    assert pages == 3 and pkg.stat().st_size / pages <= 100 * KB, pkg.stat().st_size
    pdf_entry = next(o for o in manifest["objects"] if o["id"] == doc["pdf"])
    assert pdf_entry["size"] / 2 <= 100 * KB, pdf_entry


def test_compact_pages_made_at_processing_and_late(sealed: dict[str, Any]) -> None:
    before, after = sealed["before"], sealed["after"]
    for page in before["page_list"]:  # the processing worker made each one, the blank page's too
        assert "compact" in _objects(page) and page["analysis"]["compact"]["method"]
        assert page["analysis"]["compact"]["bytes"] < 100 * KB
    old = before["page_list"][1]
    late = after["page_list"][1]
    # the page "cleaned before issue 16" got its compact page when its ACR file was assembled
    assert _objects(late)["compact"]["id"] != _objects(old)["compact"]["id"]


def test_raw_destroyed_at_seal_and_vault_verifies(sealed: dict[str, Any]) -> None:
    st, after = sealed["st"], sealed["after"]
    for page in after["page_list"]:
        objs = _objects(page)
        assert objs["raw"].get("destroyed") is True and not _vault_file(st, objs["raw"]["id"]).exists()
        for kind in ("image", "compact"):  # what verification, OCR and re-assembly need stays until purge
            assert not objs[kind].get("destroyed") and _vault_file(st, objs[kind]["id"]).exists()
    proc = st.run("verify-vault")
    assert proc.returncode == 0 and "all present" in proc.stdout, proc.stdout + proc.stderr


def test_a_start_finishes_destroying_a_raw_capture(sealed: dict[str, Any]) -> None:
    """A crash between recording a raw capture destroyed and deleting its file leaves the file: the next start
    of the station (any command that opens it) deletes it."""
    st = sealed["st"]
    objs = _objects(sealed["after"]["page_list"][0])
    raw = _vault_file(st, objs["raw"]["id"])
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_bytes(_vault_file(st, objs["image"]["id"]).read_bytes())  # a complete age file where it was
    proc = st.run("verify-vault")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not raw.exists()


def test_receiver_stores_and_reverifies_the_compact_package(sealed: dict[str, Any]) -> None:
    st, pkg = sealed["st"], sealed["pkg"]
    config, key = st.unlock()
    info = verify_package(pkg, [_portal(st)])
    with start_receiver(sealed["tmp"] / "rx", sealed["portal_file"],
                        dev_station=(config.station.id, config.station.unit, key.signing_key)) as rx:
        from batchformat import PackageInfo, verify_receipt

        pinfo = PackageInfo(path=pkg, sha256=info.sha256, size=info.size, package_id=info.envelope["package_id"],
                            batch_uid=info.envelope["batch_uid"], manifest=info.manifest)
        _url, receipt = upload_package(rx, pinfo, config.station.id)
        assert receipt.status_code == 200, receipt.text + rx.log_text()
        verify_receipt(receipt.content, rx.receipt_public_key, package_sha256=info.sha256, manifest=info.manifest)
        stored = reverify_stored_batch(rx.data_dir, sealed["portal"], info.envelope["batch_uid"],
                                       key.signing_key.public_key(), receipt.content)
    assert stored == info.manifest


def test_unseal_and_seal_again_without_the_raw(sealed: dict[str, Any]) -> None:
    """Run last (it unseals the module's batch): the raw captures are gone and not needed for a new seal."""
    st = sealed["st"]
    st.run("unseal", "--batch", "B1", check=True)
    st.verify("B1")
    pkg = _seal(st, "B1")
    manifest = verify_package(pkg, [_portal(st)]).manifest
    assert sorted(o["kind"] for o in manifest["objects"]) == ["ocr_text", "ocr_text", "page_pdf", "pdf"]
    assert st.run("verify-vault").returncode == 0


def test_include_raw_sends_raw_and_cleaned_page_as_page_pdfs(tmp_path: Path) -> None:
    st = make_station(tmp_path / "st", extra_config="\n[upload]\ninclude_raw = true\n")
    st.roster("E1")
    files = _page_files(tmp_path, "p", [PageSpec(seed=8, page_no=1, **NOISY)])
    st.run("import", "--batch", "R1", "--employee", "E1", "--period", "2019-20", *files, check=True)
    st.verify("R1")
    pkg = _seal(st, "R1")
    verified = verify_package(pkg, [_portal(st)])
    [doc] = verified.manifest["documents"]
    [page] = doc["pages"]
    kinds = {o["id"]: o for o in verified.manifest["objects"]}
    assert kinds[page["raw"]]["kind"] == kinds[page["image"]]["kind"] == "page_pdf"
    assert sorted(o["kind"] for o in kinds.values()) == ["ocr_text", "page_pdf", "page_pdf", "pdf"]
    for role in ("raw", "image"):  # at the compact encoding, not lossless
        data = pyrage.decrypt(verified.object_member(page[role]), [_portal(st)])
        assert len(_pdf(data).pages) == 1 and len(data) <= 150 * KB, (role, len(data))
    cleaned = pyrage.decrypt(verified.object_member(page["image"]), [_portal(st)])
    assert "CONFIDENTIAL" in _text(cleaned, tmp_path).upper()  # the cleaned page carries its text layer
    # the raw travels, so the vault keeps it until the purge
    [listed] = _status(st, "R1")["page_list"]
    raw = _objects(listed)["raw"]
    assert not raw.get("destroyed") and _vault_file(st, raw["id"]).exists()
    assert st.run("verify-vault").returncode == 0

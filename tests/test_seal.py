"""Sealing a batch: a package the portal can verify, frozen batch state, idempotence, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pyrage
import pytest

from batchformat import document_digest, read_envelope, verify_package
from scanstation_tools.synth import PageSpec, render_acr_page
from tests.stationkit import StationEnv, make_station


def _import_file(st: StationEnv, tmp_path: Path, batch: str, employee: str, seeds: list[int]) -> None:
    files = []
    for i, seed in enumerate(seeds):
        f = tmp_path / f"{batch}-{employee}-{i}.png"
        render_acr_page(PageSpec(seed=seed, page_no=i + 1, dpi=100)).image.save(f)
        files.append(str(f))
    st.run("import", "--batch", batch, "--employee", employee, "--name", "राम कुमार", "--period", "2019-20",
           *files, check=True)


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> tuple[StationEnv, Path, dict]:
    tmp = tmp_path_factory.mktemp("seal")
    st = make_station(tmp / "st")
    st.roster("E100", "E200", names={"E100": "राम कुमार"})
    _import_file(st, tmp, "B1", "E100", [11, 11])
    _import_file(st, tmp, "B1", "E200", [12])
    st.verify("B1")  # nothing is sealed unverified
    proc = st.run("seal", "--batch", "B1", check=True)
    pkg = Path(proc.stdout.split("sealed batch B1: ")[1].split(" (")[0])
    return st, pkg, json.loads(st.run("status", "--json", check=True).stdout)


def test_sealed_package_verifies_with_the_portal_identity(sealed: tuple[StationEnv, Path, dict]) -> None:
    st, pkg, _status = sealed
    assert pkg.is_file() and pkg.parent == st.data_dir / "outbox"
    portal = pyrage.x25519.Identity.from_str(st.portal_identity_file.read_text().strip())
    verified = verify_package(pkg, [portal])
    manifest = verified.manifest
    assert manifest["batch"]["name"] == "B1" and manifest["batch"]["page_count"] == 3
    assert [d["employee_code"] for d in manifest["documents"]] == ["E100", "E200"]
    assert manifest["documents"][0]["employee_name"] == "राम कुमार"
    assert [d["page_count"] for d in manifest["documents"]] == [2, 1]
    assert all(d["pdf"] for d in manifest["documents"])  # each ACR file's searchable PDF is in the package
    assert len({document_digest(manifest, d) for d in manifest["documents"]}) == 2
    # Each page travels once (issue 16): inside its ACR file's PDF, which decrypts (portal key) to its hash; no
    # raw capture or cleaned page travels beside it (upload.include_raw is off); the OCR text does.
    import hashlib

    objects = {o["id"]: o for o in manifest["objects"]}
    assert sorted(o["kind"] for o in objects.values()) == ["ocr_text"] * 3 + ["pdf"] * 2
    for doc in manifest["documents"]:
        plain = pyrage.decrypt(verified.object_member(doc["pdf"]), [portal])
        assert plain.startswith(b"%PDF-") and hashlib.sha256(plain).hexdigest() == objects[doc["pdf"]]["sha256"]
        for page in doc["pages"]:
            assert page["raw"] is None and page["image"] is None and page["ocr_text"] in objects
    envelope = read_envelope(pkg)
    assert envelope["batch_uid"] == manifest["batch"]["uid"] and "E100" not in json.dumps(envelope)


def test_sealed_batch_is_frozen_and_sealing_is_idempotent(sealed: tuple[StationEnv, Path, dict]) -> None:
    st, pkg, status = sealed
    batch = next(b for b in status["batches"] if b["name"] == "B1")
    assert batch["state"] == "sealed"
    again = st.run("seal", "--batch", "B1", check=True)
    assert str(pkg) in again.stdout  # the same package, not a new one
    more = st.run("import", "--batch", "B1", str(pkg.parent.parent / "none.png"))
    assert more.returncode == 7 and "sealed" in more.stderr
    assert st.run("verify-vault").returncode == 0


def test_seal_refuses_unknown_and_empty(tmp_path: Path) -> None:
    st = make_station(tmp_path / "st")
    proc = st.run("seal", "--batch", "NOPE")
    assert proc.returncode == 7 and "no batch 'NOPE'" in proc.stderr


def test_package_objects_are_not_readable_with_station_key_alone(sealed: tuple[StationEnv, Path, dict]) -> None:
    # Batch objects are encrypted to the portal and the batch key, not to the station identity: once the
    # batch key is destroyed (purge), the station cannot read leftovers.
    st, pkg, _ = sealed
    _config, key = st.unlock()
    portal = pyrage.x25519.Identity.from_str(st.portal_identity_file.read_text().strip())
    verified = verify_package(pkg, [portal])
    ct = verified.object_member(verified.manifest["objects"][0]["id"])
    with pytest.raises(pyrage.DecryptError):
        key.decrypt(ct)


def test_unseal_returns_batch_to_its_operator_and_reseal_keeps_uid(tmp_path: Path) -> None:
    st = make_station(tmp_path / "st")
    st.roster("E900", "E901")
    _import_file(st, tmp_path, "B9", "E900", [91])
    st.verify("B9")
    first = st.run("seal", "--batch", "B9", check=True).stdout
    st.run("unseal", "--batch", "B9", check=True)
    assert not list((st.data_dir / "outbox").glob("*.pkg"))
    status = json.loads(st.run("status", "--batch", "B9", "--json", check=True).stdout)
    assert status["batches"][0]["state"] == "returned"
    assert st.run("seal", "--batch", "B9").returncode == 7  # verified again first
    _import_file(st, tmp_path, "B9", "E901", [92])  # returned: pages may be added
    st.verify("B9")
    second = st.run("seal", "--batch", "B9", check=True).stdout
    uid = lambda out: out.split("outbox/")[1].split(".pkg")[0]  # noqa: E731
    assert uid(first) == uid(second)  # one batch, one uid: the portal refuses a second, different package
    assert st.run("unseal", "--batch", "NOPE").returncode == 7


def test_unrecorded_package_left_by_a_crash_is_swept_at_start(sealed: tuple[StationEnv, Path, dict]) -> None:
    st, pkg, _ = sealed
    orphan = pkg.parent / "station-1-99-deadbeef0000.pkg"  # written, but the seal was never committed
    orphan.write_bytes(b"partial")
    assert st.run("verify-vault").returncode == 0
    assert not orphan.exists() and pkg.is_file()


def test_sealing_waits_for_its_own_batch_only(tmp_path: Path) -> None:
    """The operator scans the next batch while the supervisor seals the last one: sealing must not wait
    for the new batch's pages to be read."""
    from concurrent.futures import Future

    from scanstation.errors import StateError
    from scanstation.facade import Station
    from scanstation.seal.sealing import seal_batch

    st = make_station(tmp_path / "st")
    st.roster("E300", "E400")
    _import_file(st, tmp_path, "A1", "E300", [31])
    _import_file(st, tmp_path, "B2", "E400", [41])
    st.verify("A1")
    st.verify("B2")
    config, key = st.unlock()
    with Station(config, key) as station:
        assert station.wait_idle(include_ocr=True, timeout=300)
        b2 = station.store.batch("B2")
        assert b2 is not None
        reading = station.store.pages(b2.id)[0].id
        # B2's page as if an OCR worker were still reading it.
        station._ocr_inflight[reading] = Future()
        try:
            assert not station.wait_idle(include_ocr=True, timeout=0.5)
            assert not station.wait_idle(include_ocr=True, timeout=0.5, batch_id=b2.id)
            info = seal_batch(station, "A1", "supervisor", wait_timeout=5)
            assert info.path.exists()
            with pytest.raises(StateError, match="still being processed"):
                seal_batch(station, "B2", "supervisor", wait_timeout=0.5)
        finally:
            station._ocr_inflight.pop(reading, None)

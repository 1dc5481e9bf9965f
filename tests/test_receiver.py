"""The reference receiver, running for real (uvicorn subprocess), driven over HTTP on loopback."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import sqlite3
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyrage
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import batchformat as package

from .packagekit import Expected, FakeLog, make_test_package
from .receiverkit import (
    TUS,
    ReceiverProcess,
    get_receipt,
    package_metadata,
    reverify_stored_batch,
    start_receiver,
    tus_create,
    tus_head,
    tus_metadata,
    tus_patch,
    upload_package,
    write_identity,
)

# These tests are about the tus protocol, storage and verification, not about who calls: the receiver serves
# plain HTTP on loopback as one enrolled station (--dev-station).  Trust over TLS: test_receiver_trust.py.
STATION, UNIT = "ST-TEST-01", "Test Unit"


@pytest.fixture
def portal(tmp_path: Path) -> tuple[Path, pyrage.x25519.Identity, Ed25519PrivateKey]:
    """(identity file, portal identity, the enrolled test station's signing key)."""
    path = tmp_path / "portal-identity.txt"
    return path, write_identity(path), Ed25519PrivateKey.generate()


def dev(portal: Any) -> tuple[str, str, Ed25519PrivateKey]:
    return STATION, UNIT, portal[2]


@pytest.fixture
def rx(tmp_path: Path, portal: Any) -> Iterator[ReceiverProcess]:
    with start_receiver(tmp_path, portal[0], dev_station=dev(portal)) as r:
        yield r


def build(tmp_path: Path, portal: Any, name: str = "p", **kw: Any) -> tuple[package.PackageInfo, Expected]:
    kw.setdefault("signing_key", portal[2])
    return make_test_package(tmp_path / name, portal_recipient=str(portal[1].to_public()), **kw)


def store_files(rx: ReceiverProcess) -> list[Path]:
    return sorted(p for p in (rx.data_dir / "store").rglob("*") if p.is_file())


def part_files(rx: ReceiverProcess) -> list[Path]:
    return sorted((rx.data_dir / "uploads").iterdir())


# ---------------------------------------------------------------- the good path


def test_upload_receipt_and_encrypted_store(rx: ReceiverProcess, tmp_path: Path, portal: Any) -> None:
    info, exp = build(tmp_path, portal, n_docs=2, pages_per_doc=2, unfiled_pages=1)
    assert (rx.data_dir / "receipt-key").stat().st_mode & 0o777 == 0o600
    assert rx.receipt_key_path.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")

    url, receipt = upload_package(rx, info, exp.station_id, chunk_size=10_000)
    assert receipt.status_code == 200 and receipt.headers["content-type"] == "application/json"
    r = package.verify_receipt(receipt.content, rx.receipt_public_key, package_sha256=info.sha256,
                               manifest=info.manifest)
    assert r["package_size"] == info.size and [d["id"] for d in r["documents"]] == ["doc-1", "doc-2"]
    head = tus_head(url)
    assert head.status_code == 200 and head.headers["Upload-Offset"] == str(info.size)
    assert head.headers["Cache-Control"] == "no-store" and head.headers["Tus-Resumable"] == "1.0.0"
    assert part_files(rx) == []  # the package is consumed once stored

    # every object is stored once, re-encrypted to the portal only, decrypting to the manifest's hash
    portal_id = portal[1]
    stored = {p.name.removesuffix(".age"): p for p in store_files(rx) if p.parent.name in ("objects", "unfiled")}
    assert set(stored) == {o["id"] for o in info.manifest["objects"]}
    for obj in info.manifest["objects"]:
        ct = stored[obj["id"]].read_bytes()
        plain = pyrage.decrypt(ct, [portal_id])
        assert hashlib.sha256(plain).hexdigest() == obj["sha256"] and len(plain) == obj["size"]
        assert ct != exp.sources[0].path.read_bytes()
        with pytest.raises(pyrage.DecryptError):  # the station's batch key cannot read the portal's store
            pyrage.decrypt(ct, [exp.batch_identity])
    for doc in info.manifest["documents"]:
        ddir = rx.data_dir / "store" / doc["employee_code"] / doc["acr_period"] / exp.batch_uid
        index = json.loads(pyrage.decrypt((ddir / f"{doc['id']}.json.age").read_bytes(), [portal_id]))
        assert index["digest"] == package.document_digest(info.manifest, doc)
        assert {p.name for p in (ddir / "objects").iterdir()} == {
            f"{i}.age" for i in [doc["pdf"], *(p[k] for p in doc["pages"] for k in ("raw", "image", "ocr_text"))]}
    # the signed manifest is kept (encrypted) with the station's signature: re-verifiable evidence
    bdir = rx.data_dir / "store" / "_batches" / exp.batch_uid
    manifest_bytes = pyrage.decrypt((bdir / "manifest.json.age").read_bytes(), [portal_id])
    sig = json.loads((bdir / "signatures" / "station.json").read_text())
    exp.signing_key.public_key().verify(base64.b64decode(sig["signature"]), manifest_bytes)
    # nothing plaintext: no stored file contains a page's bytes or the employee's name
    name = info.manifest["documents"][0]["employee_name"].encode()
    for f in store_files(rx):
        data = f.read_bytes()
        assert name not in data and exp.plaintexts[info.manifest["objects"][1]["id"]][:64] not in data
    # the database knows where each employee's file is
    with sqlite3.connect(rx.data_dir / "receiver.db") as db:
        rows = db.execute("SELECT employee_code, store_path FROM documents ORDER BY doc_id").fetchall()
    assert [r[0] for r in rows] == [d["employee_code"] for d in info.manifest["documents"]]


def test_compact_and_version_2_packages_stored_and_reverified(rx: ReceiverProcess, tmp_path: Path,
                                                               portal: Any) -> None:
    """Issue 16: a compact package (manifest /3: filed pages only inside their ACR file's PDF, raw and image
    null; an unfiled page as a one-page PDF) is stored unchanged and re-verifies from the store alone; a
    version 2 package (sealed before the upgrade, raw on every page) is still accepted."""
    log = FakeLog(STATION, portal[2])  # one station, one growing audit log across its packages
    for name, kw in (("compact", {"compact": True, "unfiled_pages": 1}),
                     ("v2", {"manifest_format": package.MANIFEST_FORMAT_V2})):
        info, exp = build(tmp_path, portal, name, log=log, **kw)
        _url, receipt = upload_package(rx, info, exp.station_id)
        assert receipt.status_code == 200, receipt.text
        package.verify_receipt(receipt.content, rx.receipt_public_key, package_sha256=info.sha256,
                               manifest=info.manifest)
        manifest = reverify_stored_batch(rx.data_dir, portal[1], exp.batch_uid, exp.signing_key.public_key(),
                                         receipt.content)
        assert manifest == info.manifest
        if name == "compact":
            assert manifest["format"] == "scanstation-manifest/3"
            assert all(p["raw"] is None and p["image"] is None for d in manifest["documents"] for p in d["pages"])
            kinds = sorted(o["kind"] for o in manifest["objects"])
            assert kinds == ["ocr_text"] * 4 + ["page_pdf"] + ["pdf"] * 2
        else:
            assert manifest["format"] == "scanstation-manifest/2"
    # the compact batch again: the same receipt, nothing stored twice
    info, exp = build(tmp_path, portal, "compact2", log=log, compact=True)
    first = upload_package(rx, info, exp.station_id)[1].content
    assert upload_package(rx, info, exp.station_id)[1].content == first


def test_options_and_health(rx: ReceiverProcess) -> None:
    r = requests.options(rx.files_url, timeout=5)
    assert r.status_code == 204
    assert r.headers["Tus-Version"] == "1.0.0" and r.headers["Tus-Resumable"] == "1.0.0"
    assert set(r.headers["Tus-Extension"].split(",")) == {"creation", "checksum", "termination", "expiration"}
    assert r.headers["Tus-Checksum-Algorithm"] == "sha256" and int(r.headers["Tus-Max-Size"]) > 0
    assert requests.get(rx.url + "health", timeout=5).json() == {"status": "ok"}


def test_dedup_same_receipt_and_batch_conflict(rx: ReceiverProcess, tmp_path: Path, portal: Any) -> None:
    info, exp = build(tmp_path, portal, n_docs=1)
    assert requests.get(rx.url + f"receipts/{info.sha256}", timeout=5).status_code == 404
    _, first = upload_package(rx, info, exp.station_id)
    files_before = store_files(rx)
    by_hash = requests.get(rx.url + f"receipts/{info.sha256}", timeout=5)
    assert by_hash.status_code == 200 and by_hash.content == first.content
    _, second = upload_package(rx, info, exp.station_id)  # re-sent anyway
    assert second.status_code == 200 and second.content == first.content
    assert store_files(rx) == files_before
    with sqlite3.connect(rx.data_dir / "receiver.db") as db:
        assert db.execute("SELECT count(*) FROM packages").fetchone()[0] == 1

    # the same batch re-sealed into a different package: refused at creation, with the reason
    other, _ = build(tmp_path, portal, name="q", n_docs=1, batch_uid=exp.batch_uid, signing_key=exp.signing_key)
    r = tus_create(rx.files_url, other.size, package_metadata(other, exp.station_id))
    assert r.status_code == 409 and r.json()["check"] == "batch_conflict" and exp.batch_uid in r.json()["error"]
    # ... and at verification if the metadata hides the batch uid (the envelope is read first)
    _, receipt = upload_package(rx, other, exp.station_id,
                                meta=package_metadata(other, exp.station_id, batch_uid="B-innocent"))
    assert receipt.status_code == 422 and receipt.json()["check"] == "batch_conflict"
    # metadata that does not match an otherwise acceptable package
    fresh, _ = build(tmp_path, portal, name="r", n_docs=1)
    _, receipt = upload_package(rx, fresh, exp.station_id,
                                meta=package_metadata(fresh, exp.station_id, batch_uid="B-innocent"))
    assert receipt.status_code == 422 and receipt.json()["check"] == "metadata_mismatch"


def test_refused_package_names_the_check_and_is_deleted(rx: ReceiverProcess, tmp_path: Path, portal: Any) -> None:
    info, exp = build(tmp_path, portal, n_docs=1)
    data = bytearray(info.path.read_bytes())
    with tarfile.open(info.path) as tar:
        last = tar.getmembers()[-1]
    data[last.offset_data + last.size // 2] ^= 1  # inside the last object's ciphertext
    bad = tmp_path / "bad.pkg"
    bad.write_bytes(bytes(data))
    bad_info = package.PackageInfo(bad, hashlib.sha256(data).hexdigest(), len(data), info.package_id, exp.batch_uid)
    url, receipt = upload_package(rx, bad_info, exp.station_id)
    assert receipt.status_code == 422, receipt.text
    body = receipt.json()
    assert body["check"] == "object_ct_sha256"
    assert "refused" in body["error"] and last.name in body["error"]
    assert part_files(rx) == [] and store_files(rx) == []
    assert tus_head(url).headers["Upload-Offset"] == str(len(data))
    assert requests.get(rx.url + f"receipts/{bad_info.sha256}", timeout=5).status_code == 404

    # bytes that do not hash to the announced package_sha256 (corrupted in transit, checksum-less client)
    meta = package_metadata(info, exp.station_id, package_sha256="ab" * 32)
    _, receipt = upload_package(rx, info, exp.station_id, meta=meta)
    assert receipt.status_code == 422 and receipt.json()["check"] == "package_sha256"

    # the good package is still accepted afterwards
    _, receipt = upload_package(rx, info, exp.station_id)
    assert receipt.status_code == 200


def test_only_the_enrolled_key_and_station(rx: ReceiverProcess, tmp_path: Path, portal: Any) -> None:
    info, exp = build(tmp_path, portal, n_docs=1)
    impostor, _ = build(tmp_path, portal, name="i", n_docs=1, signing_key=Ed25519PrivateKey.generate())
    stranger, other = build(tmp_path, portal, name="s", n_docs=1, station_id="ST-UNKNOWN")
    assert upload_package(rx, info, exp.station_id)[1].status_code == 200
    _, receipt = upload_package(rx, impostor, STATION)  # same station id, another key
    assert receipt.status_code == 422 and receipt.json()["check"] == "station_key", receipt.text
    assert STATION in receipt.json()["error"]
    # another station's package: refused at creation (metadata) and at verification (envelope)
    r = tus_create(rx.files_url, stranger.size, package_metadata(stranger, other.station_id))
    assert r.status_code == 403 and r.json()["check"] == "station_mismatch", r.text
    _, receipt = upload_package(rx, stranger, STATION, meta=package_metadata(stranger, STATION))
    assert receipt.status_code == 422 and receipt.json()["check"] == "station_mismatch", receipt.text


# ---------------------------------------------------------------- tus protocol behaviour


def test_checksum_mismatch_460_discards_chunk(rx: ReceiverProcess, tmp_path: Path, portal: Any) -> None:
    info, exp = build(tmp_path, portal, n_docs=1)
    data = info.path.read_bytes()
    url = tus_create(rx.files_url, len(data), package_metadata(info, exp.station_id)).headers["Location"]
    r = tus_patch(url, 0, data[:8192], digest=hashlib.sha256(b"other").digest())
    assert r.status_code == 460 and "checksum" in r.json()["error"].lower()
    assert tus_head(url).headers["Upload-Offset"] == "0"
    assert (rx.data_dir / "uploads" / f"{url.rsplit('/', 1)[1]}.part").stat().st_size == 0
    r = tus_patch(url, 0, data[:8192])
    assert r.status_code == 204 and r.headers["Upload-Offset"] == "8192"
    # a flipped byte in transit: the checksum was computed over the original chunk
    flipped = bytearray(data[8192:16384])
    flipped[100] ^= 0x80
    r = tus_patch(url, 8192, bytes(flipped), digest=hashlib.sha256(data[8192:16384]).digest())
    assert r.status_code == 460
    # unsupported algorithm: 400 per tus
    r = requests.patch(url, data=data[8192:16384], timeout=10, headers={
        **TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "8192",
        "Upload-Checksum": "sha1 " + base64.b64encode(hashlib.sha1(b"x").digest()).decode()})
    assert r.status_code == 400 and "sha1" in r.json()["error"]
    r = tus_patch(url, 8192, data[8192:])
    assert r.status_code == 204 and get_receipt(url).status_code == 200


def test_offset_mismatch_409(rx: ReceiverProcess, tmp_path: Path, portal: Any) -> None:
    info, exp = build(tmp_path, portal, n_docs=1)
    data = info.path.read_bytes()
    url = tus_create(rx.files_url, len(data), package_metadata(info, exp.station_id)).headers["Location"]
    assert tus_patch(url, 0, data[:4096]).status_code == 204
    for wrong in (0, 2048, 8192):
        r = tus_patch(url, wrong, data[wrong : wrong + 512])
        assert r.status_code == 409 and r.headers["Upload-Offset"] == "4096"
    assert tus_head(url).headers["Upload-Offset"] == "4096"
    # a chunk past Upload-Length
    r = tus_patch(url, 4096, data[4096:] + b"extra")
    assert r.status_code == 413 and tus_head(url).headers["Upload-Offset"] == "4096"
    # receipt before completion
    r = requests.get(url + "/receipt", timeout=5)
    assert r.status_code == 409 and "incomplete" in r.json()["error"]


def _slow_body(first: bytes, started: threading.Event, stop: threading.Event) -> Iterator[bytes]:
    yield first
    started.set()
    while not stop.wait(0.05):
        yield b""


def test_kill9_mid_upload_then_resume_from_head(rx: ReceiverProcess, tmp_path: Path, portal: Any) -> None:
    info, exp = build(tmp_path, portal, n_docs=2, pages_per_doc=3, object_size=20_000)
    data = info.path.read_bytes()
    url = tus_create(rx.files_url, len(data), package_metadata(info, exp.station_id)).headers["Location"]
    part = rx.data_dir / "uploads" / f"{url.rsplit('/', 1)[1]}.part"
    assert tus_patch(url, 0, data[:100_000]).status_code == 204

    # a second chunk is on the wire (half sent) when the receiver is killed
    started, stop = threading.Event(), threading.Event()
    chunk = data[100_000:200_000]
    errors: list[BaseException] = []

    def send() -> None:
        try:
            requests.patch(url, data=_slow_body(chunk[:50_000], started, stop), timeout=30, headers={
                **TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "100000",
                "Upload-Checksum": "sha256 " + base64.b64encode(hashlib.sha256(chunk).digest()).decode()})
        except requests.RequestException as e:
            errors.append(e)

    t = threading.Thread(target=send)
    t.start()
    assert started.wait(10)
    deadline = time.monotonic() + 10
    while part.stat().st_size < 150_000 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert part.stat().st_size == 150_000  # the half chunk reached the file, unacknowledged
    rx.kill()
    stop.set()
    t.join(10)
    assert errors, "the in-flight PATCH must fail when the receiver dies"

    rx.start()
    head = tus_head(url)
    assert head.status_code == 200 and head.headers["Upload-Offset"] == "100000"
    assert part.stat().st_size == 100_000  # unacknowledged bytes cut at restart
    offset = 100_000
    while offset < len(data):
        r = tus_patch(url, offset, data[offset : offset + 64_000])
        assert r.status_code == 204
        offset = int(r.headers["Upload-Offset"])
    receipt = get_receipt(url)
    assert receipt.status_code == 200
    package.verify_receipt(receipt.content, rx.receipt_public_key, package_sha256=info.sha256,
                           manifest=info.manifest)


def test_receipt_survives_restart_and_verification_resumes(tmp_path: Path, portal: Any) -> None:
    """Final PATCH answered before verification ended (verify-wait 0), receiver killed: after restart the
    upload is verified again and the receipt appears."""
    info, exp = build(tmp_path, portal, n_docs=1)
    with start_receiver(tmp_path, portal[0], verify_wait=0, dev_station=dev(portal)) as rx:
        data = info.path.read_bytes()
        url = tus_create(rx.files_url, len(data), package_metadata(info, exp.station_id)).headers["Location"]
        assert tus_patch(url, 0, data).status_code == 204
        rx.kill()
        rx.start()
        receipt = get_receipt(url)
        assert receipt.status_code == 200
        package.verify_receipt(receipt.content, rx.receipt_public_key, package_sha256=info.sha256)
        again = requests.get(rx.url + f"receipts/{info.sha256}", timeout=5)
        assert again.content == receipt.content
        # restarting keeps the receipt key
        key_before = rx.receipt_key_path.read_bytes()
        rx.restart()
        assert rx.receipt_key_path.read_bytes() == key_before


def test_expiration_410_and_cleanup(tmp_path: Path, portal: Any) -> None:
    info, exp = build(tmp_path, portal, n_docs=1)
    with start_receiver(tmp_path, portal[0], expiration_hours=2.0 / 3600, dev_station=dev(portal)) as rx:
        data = info.path.read_bytes()
        created = tus_create(rx.files_url, len(data), package_metadata(info, exp.station_id))
        url = created.headers["Location"]
        assert "GMT" in created.headers["Upload-Expires"]
        r = tus_patch(url, 0, data[:1024])
        assert r.status_code == 204 and "Upload-Expires" in r.headers
        assert "Upload-Expires" in tus_head(url).headers
        time.sleep(3.0)
        assert tus_head(url).status_code == 410
        r = tus_patch(url, 1024, data[1024:2048])
        assert r.status_code == 410 and "expired" in r.json()["error"]
        deadline = time.monotonic() + 5
        while part_files(rx) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert part_files(rx) == []
        # an upload nobody touches is swept by the background task alone
        url2 = tus_create(rx.files_url, len(data), package_metadata(info, exp.station_id)).headers["Location"]
        assert len(part_files(rx)) == 1
        deadline = time.monotonic() + 6
        while part_files(rx) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert part_files(rx) == []
        assert tus_head(url2).status_code == 410


def test_termination(rx: ReceiverProcess, tmp_path: Path, portal: Any) -> None:
    info, exp = build(tmp_path, portal, n_docs=1)
    data = info.path.read_bytes()
    url = tus_create(rx.files_url, len(data), package_metadata(info, exp.station_id)).headers["Location"]
    assert tus_patch(url, 0, data[:2048]).status_code == 204
    assert len(part_files(rx)) == 1
    assert requests.delete(url, headers=TUS, timeout=5).status_code == 204
    assert part_files(rx) == []
    assert tus_head(url).status_code == 404
    assert tus_patch(url, 2048, data[2048:4096]).status_code == 404
    assert requests.delete(url, headers=TUS, timeout=5).status_code == 404
    # and a fresh upload of the same package still works
    assert upload_package(rx, info, exp.station_id)[1].status_code == 200


# ---------------------------------------------------------------- hostile input


def test_hostile_requests(rx: ReceiverProcess, tmp_path: Path, portal: Any) -> None:
    info, exp = build(tmp_path, portal, n_docs=1)
    meta = package_metadata(info, exp.station_id)
    ok_headers = {**TUS, "Upload-Length": str(info.size), "Upload-Metadata": tus_metadata(meta)}

    def post(**headers: str) -> requests.Response:
        return requests.post(rx.files_url, headers={**ok_headers, **headers}, timeout=5)

    r = requests.post(rx.files_url, headers={k: v for k, v in ok_headers.items() if k != "Tus-Resumable"}, timeout=5)
    assert r.status_code == 412 and r.headers["Tus-Version"] == "1.0.0"
    for bad_meta, words in [("batch_uid !!!", "base64"), ("a", "required"), ("x" * 5000, "longer"),
                            (tus_metadata({**meta, "package_sha256": "XYZ"}), "package_sha256"),
                            (tus_metadata(meta) + ",batch_uid QQ==", "twice"),
                            ("batch_uid " + base64.b64encode(b"\xff\xfe").decode(), "UTF-8")]:
        r = post(**{"Upload-Metadata": bad_meta})
        assert r.status_code == 400 and words in r.json()["error"], (bad_meta[:40], r.text)
    for bad_len in ("-1", "1e9", "99999999999999999999999", ""):
        assert post(**{"Upload-Length": bad_len}).status_code == 400
    r = post(**{"Upload-Length": str(10**15)})
    assert r.status_code == 413 and "Tus-Max-Size" in r.json()["error"]
    # a request head larger than the receiver's limit is refused by the HTTP layer
    r = post(**{"X-Filler": "a" * 20_000})
    assert r.status_code in (400, 431)
    assert requests.get(rx.url + "health", timeout=5).status_code == 200

    url = post().headers["Location"]
    for bad_id in ("..%2F..%2Freceipt-key", "ABCDEF", "0" * 31, "%2e%2e"):
        r = requests.head(rx.files_url + bad_id, headers=TUS, timeout=5)
        assert r.status_code == 404, bad_id
    r = requests.get(rx.url + "receipts/..%2F..%2Freceiver.db", timeout=5)
    assert r.status_code in (400, 404)
    r = requests.patch(url, data=b"x", headers={**TUS, "Upload-Offset": "0", "Content-Type": "text/plain"}, timeout=5)
    assert r.status_code == 415
    r = requests.patch(url, data=b"x", timeout=5,
                       headers={**TUS, "Upload-Offset": "zero", "Content-Type": "application/offset+octet-stream"})
    assert r.status_code == 400 and "Upload-Offset" in r.json()["error"]
    assert tus_head(url).headers["Upload-Offset"] == "0"


def test_hostile_employee_code_stays_inside_store(rx: ReceiverProcess, tmp_path: Path, portal: Any) -> None:
    info, exp = build(tmp_path, portal, n_docs=2, employee_codes=["../../../../tmp/evil", "_batches"],
                      batch_uid="../B-1")
    _, receipt = upload_package(rx, info, exp.station_id)
    assert receipt.status_code == 200
    store = (rx.data_dir / "store").resolve()
    for f in store_files(rx):
        assert f.resolve().is_relative_to(store)
    top = sorted(p.name for p in store.iterdir())
    assert top == ["%2E.%2F..%2F..%2F..%2Ftmp%2Fevil", "%5Fbatches", "_batches"]


def test_raw_socket_garbage_does_not_kill_receiver(rx: ReceiverProcess) -> None:
    for junk in (b"\x00\xff" * 100 + b"\r\n\r\n", b"PATCH /files/x HTTP/1.1\r\nContent-Length: -5\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", rx.port), timeout=5) as s:
            s.sendall(junk)
            s.settimeout(5)
            try:
                reply = s.recv(100)
            except OSError:
                reply = b""
            assert reply == b"" or reply.startswith(b"HTTP/1.1 4")
    assert requests.get(rx.url + "health", timeout=5).status_code == 200


# ---------------------------------------------------------------- interoperability


def test_independent_tus_client_tuspy(rx: ReceiverProcess, tmp_path: Path, portal: Any) -> None:
    """tuspy (an independent tus client) uploads to the receiver, with its checksum extension on sha256."""
    from tusclient import client as tus_client
    from tusclient.uploader import Uploader

    class Sha256Uploader(Uploader):  # tuspy defaults to sha1, which the receiver (rightly) refuses
        CHECKSUM_ALGORITHM_PAIR = ("sha256", hashlib.sha256)

    info, exp = build(tmp_path, portal, n_docs=2, pages_per_doc=2, object_size=30_000)
    c = tus_client.TusClient(rx.files_url)
    with open(info.path, "rb") as stream:  # tuspy leaves a file_path it opened unclosed
        uploader = Sha256Uploader(file_stream=stream, client=c, chunk_size=50_000, upload_checksum=True,
                                  metadata=package_metadata(info, exp.station_id))
        uploader.upload()
    assert uploader.offset == info.size and uploader.url
    receipt = get_receipt(uploader.url)
    assert receipt.status_code == 200
    package.verify_receipt(receipt.content, rx.receipt_public_key, package_sha256=info.sha256,
                           manifest=info.manifest)


def test_console_script_usage_errors(tmp_path: Path) -> None:
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "receiver", "--data-dir", str(tmp_path / "d"), *args],
                              capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[1])

    r = run("--identity", str(tmp_path / "missing.txt"), "--port", "1", "--dev-station", STATION)
    assert r.returncode == 3 and "missing.txt" in r.stderr
    bad = tmp_path / "bad-identity.txt"
    bad.write_text("AGE-SECRET-KEY-1NOTAKEY\n")
    r = run("--identity", str(bad), "--dev-station", STATION)
    assert r.returncode == 3 and "line 1" in r.stderr and "NOTAKEY" not in r.stderr
    # neither TLS nor a dev station; a dev station off loopback; a missing client CA
    r = run("--identity", str(bad))
    assert r.returncode == 2 and "--dev-station" in r.stderr
    r = run("--identity", str(bad), "--dev-station", STATION, "--host", "0.0.0.0")
    assert r.returncode == 2 and "loopback" in r.stderr
    r = run("--identity", str(bad), "--tls-cert", str(bad), "--tls-key", str(bad), "--client-ca",
            str(tmp_path / "no-ca.pem"))
    assert r.returncode == 3 and "no-ca.pem" in r.stderr


def test_openapi_document_matches_the_routes(tmp_path: Path, portal: Any) -> None:
    """docs/openapi.yaml describes exactly the receiver's paths and methods (no YAML parser needed)."""
    import re

    from receiver.app import ReceiverConfig, create_app

    text = (Path(__file__).resolve().parents[1] / "docs" / "openapi.yaml").read_text()
    documented: set[tuple[str, str]] = set()
    current = None
    for line in text.split("\npaths:\n", 1)[1].splitlines():
        if m := re.match(r"^  (/\S*):$", line):
            current = m.group(1)
        elif (m := re.match(r"^    (get|head|post|patch|delete|options):", line)) and current:
            documented.add((current, m.group(1).upper()))
    app = create_app(ReceiverConfig(data_dir=tmp_path / "d", identity_file=portal[0], dev_station=STATION))
    routed = set()
    for route in app.routes:
        methods = set(getattr(route, "methods", None) or ())
        if "GET" in methods:
            methods.discard("HEAD")  # Starlette adds HEAD to every GET route
        routed |= {(getattr(route, "path", ""), m) for m in methods}
    routed = {(p, m) for p, m in routed if p != "/files"}  # alias without the slash
    assert documented == routed

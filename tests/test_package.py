"""Sealed package format: round trip, strict reading, tampering, receipts."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyrage
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import batchformat as package
import batchformat.reader
from batchformat import PackageCheckError
from scanstation.errors import ConfigError, PackageError, ReceiptInvalid
from scanstation.upload.portal_key import load_portal_key

from .packagekit import make_test_package

Members = list[tuple[tarfile.TarInfo, bytes]]


@pytest.fixture
def portal() -> pyrage.x25519.Identity:
    return pyrage.x25519.Identity.generate()


@pytest.fixture
def built(tmp_path: Path, portal: pyrage.x25519.Identity) -> tuple[package.PackageInfo, Any]:
    return make_test_package(tmp_path, portal_recipient=str(portal.to_public()), n_docs=2, pages_per_doc=2,
                             unfiled_pages=1)


def read_members(path: Path) -> Members:
    with tarfile.open(path, "r:") as tar:
        out = []
        for info in tar.getmembers():
            f = tar.extractfile(info)
            out.append((info, f.read() if f else b""))
        return out


def write_members(path: Path, members: Members, fmt: int = tarfile.USTAR_FORMAT) -> Path:
    with tarfile.open(path, "w", format=fmt) as tar:
        for info, data in members:
            info = tarfile.TarInfo(info.name) if info.isfile() else info
            if info.isfile():
                info.size = len(data)
                info.mode = 0o600
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def rewrite(src: Path, dst: Path, change: Callable[[Members], Members], fmt: int = tarfile.USTAR_FORMAT) -> Path:
    return write_members(dst, change(read_members(src)), fmt)


def check_of(path: Path, identity: Any, **kw: Any) -> PackageCheckError:
    with pytest.raises(PackageCheckError) as err:
        package.verify_package(path, [identity], **kw)
    return err.value


# ---------------------------------------------------------------- round trip


def test_round_trip_verifies_everything(built: Any, portal: Any) -> None:
    info, exp = built
    assert info.path.is_file() and info.size == info.path.stat().st_size
    assert info.sha256 == hashlib.sha256(info.path.read_bytes()).hexdigest()
    seen: dict[str, bytes] = {}
    v = package.verify_package(info.path, [portal], on_object=lambda e, p: seen.__setitem__(e["id"], p))
    assert v.sha256 == info.sha256 and v.size == info.size
    assert v.manifest == info.manifest == exp.manifest
    assert v.station_public_key == exp.station_public_raw
    assert seen == exp.plaintexts
    assert v.envelope["batch_uid"] == exp.batch_uid and v.envelope["format"] == package.FORMAT
    # member order: envelope, manifest, station signature, objects in manifest order
    names = [n for n, _ in package.iter_members(info.path)]
    assert names[:3] == [package.ENVELOPE_NAME, package.MANIFEST_NAME, package.STATION_SIGNATURE_NAME]
    assert names[3:] == [f"objects/{o['id']}.age" for o in v.manifest["objects"]]
    # each object member is the vault ciphertext byte for byte, readable again from the package
    for src in exp.sources:
        assert v.object_member(src.id) == src.path.read_bytes()
    # signature is over the canonical manifest plaintext
    assert package.canonical_json(v.manifest) == v.manifest_bytes
    # the batch's own identity (station side) can read the manifest too
    assert package.verify_package(info.path, [exp.batch_identity]).manifest == v.manifest
    # the envelope carries no personal data
    env_text = json.dumps(package.read_envelope(info.path))
    assert "राम" not in env_text and "UP-12" not in env_text


def test_no_temp_files_left_and_private_mode(built: Any) -> None:
    info, _ = built
    assert [p.name for p in info.path.parent.iterdir() if p.name.startswith(".tmp-")] == []
    assert info.path.stat().st_mode & 0o077 == 0


def test_write_refuses_changed_object_and_leaves_nothing(tmp_path: Path, portal: Any) -> None:
    _, exp = make_test_package(tmp_path, portal_recipient=str(portal.to_public()), n_docs=1, pages_per_doc=1)
    victim = exp.sources[1]
    data = bytearray(victim.path.read_bytes())
    data[-1] ^= 1
    victim.path.write_bytes(bytes(data))
    out = tmp_path / "again.pkg"
    manifest = {k: v for k, v in exp.manifest.items() if k not in ("objects",)}
    with pytest.raises(PackageError, match=f"object {victim.id}.*ciphertext sha256"):
        package.write_package(out, manifest, exp.sources, signing_key=exp.signing_key,
                              recipients=[str(portal.to_public())])
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []


def test_write_refuses_dangling_reference(tmp_path: Path, portal: Any) -> None:
    _, exp = make_test_package(tmp_path, portal_recipient=str(portal.to_public()), n_docs=1, pages_per_doc=1)
    sources = [s for s in exp.sources if s.kind != "pdf"]
    with pytest.raises(PackageError, match="pdf refers to object"):
        package.write_package(tmp_path / "x.pkg", exp.manifest, sources, signing_key=exp.signing_key,
                              recipients=[str(portal.to_public())])


def test_manifest_versions_raw_nullable_only_in_3(tmp_path: Path, portal: Any) -> None:
    """Version 3 (issue 16): pages may travel without their raw capture (compact packages); version 2 packages,
    sealed before the upgrade, still verify; a version 2 manifest without a page's raw is refused."""
    recipient = str(portal.to_public())
    info, _ = make_test_package(tmp_path, portal_recipient=recipient, unfiled_pages=1, compact=True)
    v = package.verify_package(info.path, [portal])
    assert v.manifest["format"] == package.MANIFEST_FORMAT == "scanstation-manifest/3"
    pages = [p for d in v.manifest["documents"] for p in d["pages"]]
    assert all(p["raw"] is None and p["image"] is None and p["ocr_text"] for p in pages)
    [unfiled] = v.manifest["unfiled_pages"]
    kinds = {o["id"]: o["kind"] for o in v.manifest["objects"]}
    assert unfiled["raw"] is None and kinds[unfiled["image"]] == "page_pdf"
    for d in v.manifest["documents"]:  # the digest skips the null references
        assert package.document_digest(v.manifest, d)
    old, _ = make_test_package(tmp_path, portal_recipient=recipient, manifest_format=package.MANIFEST_FORMAT_V2)
    assert package.verify_package(old.path, [portal]).manifest["format"] == "scanstation-manifest/2"
    with pytest.raises(PackageError, match=r"pages\[0\]\.raw has the wrong type"):
        make_test_package(tmp_path, portal_recipient=recipient, compact=True,
                          manifest_format=package.MANIFEST_FORMAT_V2)
    with pytest.raises(PackageError, match="expected 'scanstation-manifest/3'"):
        make_test_package(tmp_path, portal_recipient=recipient, manifest_format="scanstation-manifest/4")


def test_write_normalises_to_nfc_and_canonical_json_is_strict(tmp_path: Path, portal: Any) -> None:
    _, exp = make_test_package(tmp_path, portal_recipient=str(portal.to_public()), n_docs=1, pages_per_doc=1)
    manifest = json.loads(json.dumps(exp.manifest))
    decomposed = "Ame\u0301lie"  # e + combining acute: not NFC
    manifest["documents"][0]["employee_name"] = decomposed
    del manifest["package_id"]
    info = package.write_package(tmp_path / "n.pkg", manifest, exp.sources, signing_key=exp.signing_key,
                                 recipients=[str(portal.to_public())])
    assert info.manifest["documents"][0]["employee_name"] == "Amélie"
    assert package.verify_package(info.path, [portal]).manifest["documents"][0]["employee_name"] == "Amélie"
    with pytest.raises(PackageError, match="NFC"):
        package.canonical_json({"a": decomposed})
    with pytest.raises(PackageError, match="float"):
        package.canonical_json({"a": 1.5})
    assert package.canonical_json({"b": 1, "a": ["é", None, True]}) == '{"a":["é",null,true],"b":1}'.encode()


def test_document_digest_covers_referenced_objects(built: Any) -> None:
    info, _ = built
    m = info.manifest
    doc = m["documents"][0]
    d1 = package.document_digest(m, doc)
    assert d1 != package.document_digest(m, m["documents"][1])
    changed = json.loads(json.dumps(m))
    obj = next(o for o in changed["objects"] if o["id"] == doc["pages"][0]["image"])
    obj["sha256"] = "0" * 64
    assert package.document_digest(changed, changed["documents"][0]) != d1
    # an object of another document does not affect this one
    other = next(o for o in changed["objects"] if o["id"] == m["documents"][1]["pdf"])
    other["size"] += 1
    assert package.document_digest(changed, changed["documents"][1]) != package.document_digest(m, m["documents"][1])


# ---------------------------------------------------------------- tampering


def member_data_offset(path: Path, name: str) -> int:
    with tarfile.open(path, "r:") as tar:
        return tar.getmember(name).offset_data


def flip(path: Path, offset: int, out: Path) -> Path:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize(("member", "check"), [
    (package.ENVELOPE_NAME, {"json", "envelope", "envelope_mismatch", "manifest_sha256"}),
    (package.MANIFEST_NAME, {"manifest_sha256"}),
    (package.STATION_SIGNATURE_NAME, {"json", "signature"}),
    ("object", {"object_ct_sha256"}),
])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_flipped_byte_in_each_member_kind(built: Any, portal: Any, tmp_path: Path, member: str,
                                          check: set[str], where: str) -> None:
    info, _ = built
    name = f"objects/{info.manifest['objects'][1]['id']}.age" if member == "object" else member
    with tarfile.open(info.path, "r:") as tar:
        m = tar.getmember(name)
    pos = {"first": 0, "middle": m.size // 2, "last": m.size - 1}[where]
    err = check_of(flip(info.path, m.offset_data + pos, tmp_path / "t.pkg"), portal)
    assert err.check in check, err


def test_flipped_byte_in_a_header(built: Any, portal: Any, tmp_path: Path) -> None:
    info, _ = built
    offset = member_data_offset(info.path, package.MANIFEST_NAME) - 512 + 10  # inside the name field
    err = check_of(flip(info.path, offset, tmp_path / "t.pkg"), portal)
    assert err.check == "tar_structure" and "checksum" in err.detail


def test_attacker_reencrypts_modified_manifest(built: Any, portal: Any, tmp_path: Path) -> None:
    """Knowing only public keys, one can re-encrypt a changed manifest and fix the envelope hash:
    the station signature still catches it."""
    info, _ = built
    v = package.verify_package(info.path, [portal])
    evil = json.loads(json.dumps(v.manifest))
    evil["documents"][0]["employee_code"] = "UP-99-999999"
    evil_ct = pyrage.encrypt(package.canonical_json(evil), [portal.to_public()])

    def change(ms: Members) -> Members:
        env = json.loads(ms[0][1])
        env["manifest_ct_sha256"] = hashlib.sha256(evil_ct).hexdigest()
        return [(ms[0][0], package.canonical_json(env)), (ms[1][0], evil_ct), *ms[2:]]

    err = check_of(rewrite(info.path, tmp_path / "t.pkg", change), portal)
    assert err.check == "signature" and err.member == package.STATION_SIGNATURE_NAME
    # a portal with the station's enrolled key refuses it before decrypting: the ciphertext signature
    err = check_of(rewrite(info.path, tmp_path / "t.pkg", change), portal,
                   trusted_station_keys={info.manifest["station"]["id"]: base64.b64decode(
                       info.manifest["station"]["public_key"])})
    assert err.check == "manifest_ct_signature"


def test_resigned_by_another_key_and_trusted_station_keys(built: Any, portal: Any, tmp_path: Path) -> None:
    info, exp = built
    # a fully valid package from a different (impostor) key for the same station id
    impostor, _ = make_test_package(tmp_path / "imp", portal_recipient=str(portal.to_public()), n_docs=1,
                                    station_id=exp.station_id)
    package.verify_package(impostor.path, [portal])  # self-consistent: fine without a trust list
    trusted = {exp.station_id: exp.station_public_raw}
    assert package.verify_package(info.path, [portal], trusted_station_keys=trusted).sha256 == info.sha256
    err = check_of(impostor.path, portal, trusted_station_keys=trusted)
    assert err.check == "station_key" and "enrolled key" in err.detail
    err = check_of(info.path, portal, trusted_station_keys={"OTHER": exp.station_public_raw})
    assert err.check == "station_untrusted" and exp.station_id in err.detail


def test_manifest_ct_signature_checked_before_decryption(built: Any, portal: Any, tmp_path: Path) -> None:
    """With the enrolled key, station.json's signature over the manifest ciphertext must verify, and a package
    that fails it is refused before any decryption (a wrong portal identity would otherwise fail first)."""
    info, exp = built
    trusted = {exp.station_id: exp.station_public_raw}
    sig = json.loads(read_members(info.path)[2][1])
    ct = read_members(info.path)[1][1]
    exp.signing_key.public_key().verify(base64.b64decode(sig["manifest_ct_signature"]), ct)

    def with_sig(value: str | None) -> Callable[[Members], Members]:
        def change(ms: Members) -> Members:
            s = json.loads(ms[2][1])
            if value is None:
                del s["manifest_ct_signature"]
            else:
                s["manifest_ct_signature"] = value
            return [*ms[:2], (ms[2][0], package.canonical_json(s)), *ms[3:]]
        return change

    other = base64.b64encode(exp.signing_key.sign(b"other bytes")).decode()
    for value in (None, other, "not base64!"):
        bad = rewrite(info.path, tmp_path / "t.pkg", with_sig(value))
        err = check_of(bad, pyrage.x25519.Identity.generate(), trusted_station_keys=trusted)
        assert err.check == "manifest_ct_signature", (value, err)
        # a reader without a trust list ignores the field (the key would be the package's own anyway)
        assert package.verify_package(bad, [portal]).sha256 == hashlib.sha256(bad.read_bytes()).hexdigest()


def test_age_header_with_too_many_stanzas_is_refused_without_key_work(built: Any, portal: Any,
                                                                     tmp_path: Path) -> None:
    info, exp = built
    many = [str(pyrage.x25519.Identity.generate().to_public()) for _ in range(6)]
    v = package.verify_package(info.path, [portal])
    manifest = {k: val for k, val in v.manifest.items() if k != "objects"}
    crowded = package.write_package(tmp_path / "c.pkg", manifest, exp.sources, signing_key=exp.signing_key,
                                    recipients=[str(portal.to_public()), *many])
    err = check_of(crowded.path, portal, trusted_station_keys={exp.station_id: exp.station_public_raw})
    assert err.check == "age_recipients" and err.member == package.MANIFEST_NAME
    # four recipients are fine
    ok = package.write_package(tmp_path / "ok.pkg", manifest, exp.sources, signing_key=exp.signing_key,
                               recipients=[str(portal.to_public()), *many[:3]])
    assert package.verify_package(ok.path, [portal]).sha256 == ok.sha256
    # an object whose own header is crowded
    obj = exp.sources[0]
    obj.path.write_bytes(pyrage.encrypt(exp.plaintexts[obj.id], [portal.to_public(), *(
        pyrage.x25519.Recipient.from_str(r) for r in many)]))
    err = check_of(_with_object_ct(info.path, tmp_path / "o.pkg", obj.id, obj.path.read_bytes(), portal, exp),
                   portal)
    assert err.check == "age_recipients" and obj.id in err.member


def _with_object_ct(src: Path, dst: Path, object_id: str, ct: bytes, portal: Any, exp: Any) -> Path:
    """The package re-made with one object's ciphertext replaced (manifest hashes and signatures redone)."""
    v = package.verify_package(src, [portal])
    manifest = {k: val for k, val in v.manifest.items() if k != "objects"}
    sources = [package.ObjectSource(id=s.id, kind=s.kind, sha256=s.sha256, size=s.size,
                                    ct_sha256=hashlib.sha256(ct).hexdigest() if s.id == object_id else s.ct_sha256,
                                    path=s.path) for s in exp.sources]
    return package.write_package(dst, manifest, sources, signing_key=exp.signing_key,
                                 recipients=[str(portal.to_public())]).path


def test_object_count_is_capped(built: Any, portal: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    info, _ = built
    monkeypatch.setattr(batchformat.reader, "MAX_OBJECTS", len(info.manifest["objects"]) - 1)
    err = check_of(info.path, portal)
    assert err.check == "object_count"


def test_bad_signature_value(built: Any, portal: Any, tmp_path: Path) -> None:
    info, _ = built

    def change(ms: Members) -> Members:
        sig = json.loads(ms[2][1])
        other = Ed25519PrivateKey.generate().sign(b"something else")
        sig["signature"] = base64.b64encode(other).decode()
        return [*ms[:2], (ms[2][0], json.dumps(sig).encode()), *ms[3:]]

    err = check_of(rewrite(info.path, tmp_path / "t.pkg", change), portal)
    assert err.check == "signature"


def test_wrong_portal_identity(built: Any) -> None:
    info, _ = built
    err = check_of(info.path, pyrage.x25519.Identity.generate())
    assert err.check == "manifest_decrypt"


@pytest.mark.parametrize(("name", "change", "check"), [
    ("objects reordered", lambda ms: [*ms[:3], ms[4], ms[3], *ms[5:]], "member_order"),
    ("envelope not first", lambda ms: [ms[1], ms[0], *ms[2:]], "member_order"),
    ("signature after objects", lambda ms: [*ms[:2], *ms[3:], ms[2]], "member_order"),
    ("missing object", lambda ms: ms[:-1], "member_order"),
    ("missing signature", lambda ms: [*ms[:2], *ms[3:]], "member_order"),
    ("extra member at end", lambda ms: [*ms, (tarfile.TarInfo("notes.txt"), b"hi")], "member_name"),
    ("extra object", lambda ms: [*ms, (tarfile.TarInfo("objects/" + "a" * 32 + ".age"), b"x")], "member_order"),
    ("duplicate envelope", lambda ms: [*ms[:3], ms[0], *ms[3:]], "member_name"),
    ("traversal name", lambda ms: [*ms, (tarfile.TarInfo("../../etc/cron.d/x"), b"x")], "member_name"),
    ("absolute name", lambda ms: [*ms, (tarfile.TarInfo("/etc/passwd"), b"x")], "member_name"),
    ("dot segment", lambda ms: [*ms[:3], (tarfile.TarInfo("objects/./x.age"), b"x"), *ms[3:]], "member_name"),
    ("bad signature name", lambda ms: [*ms[:3], (tarfile.TarInfo("signatures/../x.json"), b"{}"), *ms[3:]],
     "member_name"),
])
def test_structure_tampering(built: Any, portal: Any, tmp_path: Path, name: str,
                             change: Callable[[Members], Members], check: str) -> None:
    info, _ = built
    err = check_of(rewrite(info.path, tmp_path / "t.pkg", change), portal)
    assert err.check == check, (name, err)


def _link(name: str, kind: bytes, target: str) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, b""


@pytest.mark.parametrize(("kind", "label"), [(tarfile.SYMTYPE, "symbolic link"), (tarfile.LNKTYPE, "hard link"),
                                             (tarfile.DIRTYPE, "directory"), (tarfile.CHRTYPE, "character device"),
                                             (tarfile.FIFOTYPE, "FIFO")])
def test_links_devices_directories_refused(built: Any, portal: Any, tmp_path: Path, kind: bytes, label: str) -> None:
    info, _ = built
    obj_name = f"objects/{info.manifest['objects'][0]['id']}.age"

    def change(ms: Members) -> Members:  # the first object replaced by a link to a valid file elsewhere
        return [*ms[:3], _link(obj_name, kind, "/etc/passwd"), *ms[4:]]

    err = check_of(rewrite(info.path, tmp_path / "t.pkg", change), portal)
    assert err.check == "member_type" and label in err.detail and err.member.rstrip("/") == obj_name


def test_gnu_format_refused(built: Any, portal: Any, tmp_path: Path) -> None:
    info, _ = built
    err = check_of(rewrite(info.path, tmp_path / "t.pkg", lambda ms: ms, fmt=tarfile.GNU_FORMAT), portal)
    assert err.check == "tar_structure" and "ustar" in err.detail


def test_pax_format_with_plain_headers_accepted(built: Any, portal: Any, tmp_path: Path) -> None:
    """Another writer may emit pax headers (e.g. for mtime); path/size records are honoured."""
    info, _ = built

    def change(ms: Members) -> Members:
        out = []
        for ti, data in ms:
            new = tarfile.TarInfo(ti.name)
            new.pax_headers = {"mtime": "1700000000.5", "comment": "x"}
            out.append((new, data))
        return out

    path = rewrite(info.path, tmp_path / "t.pkg", change, fmt=tarfile.PAX_FORMAT)
    v = package.verify_package(path, [portal])
    assert v.manifest == info.manifest


def test_truncated_and_trailing_garbage(built: Any, portal: Any, tmp_path: Path) -> None:
    info, _ = built
    data = info.path.read_bytes()
    last = f"objects/{info.manifest['objects'][-1]['id']}.age"
    cut = member_data_offset(info.path, last) + 100
    for size in (cut, 700, len(data) - 1, 0):
        (tmp_path / "t.pkg").write_bytes(data[:size])
        err = check_of(tmp_path / "t.pkg", portal)
        assert err.check in {"truncated", "member_order"}, (size, err)
    (tmp_path / "t.pkg").write_bytes(data + b"garbage".ljust(512, b"\0"))
    assert check_of(tmp_path / "t.pkg", portal).check == "tar_structure"
    # without the end-of-archive marker
    end = member_data_offset(info.path, last) + info.manifest["objects"][-1]["ct_size"]
    (tmp_path / "t.pkg").write_bytes(data[: end + (-end) % 512])
    assert check_of(tmp_path / "t.pkg", portal).check == "truncated"


def test_unknown_signature_member_is_ignored(built: Any, portal: Any, tmp_path: Path) -> None:
    info, _ = built
    extra = (tarfile.TarInfo("signatures/unit-head.json"), b'{"signer":"unit-head","algorithm":"x509"}')
    path = rewrite(info.path, tmp_path / "t.pkg", lambda ms: [*ms[:3], extra, *ms[3:]])
    v = package.verify_package(path, [portal])
    assert set(v.signatures) == {package.STATION_SIGNATURE_NAME, "signatures/unit-head.json"}


def test_cosigner_signs_the_exact_manifest_bytes(portal: Any, tmp_path: Path) -> None:
    seen: list[bytes] = []

    def unit_head(manifest_bytes: bytes) -> dict[str, Any]:
        seen.append(manifest_bytes)
        return {"signer": "unit-head", "digest": hashlib.sha256(manifest_bytes).hexdigest()}

    info, _ = make_test_package(tmp_path, portal_recipient=str(portal.to_public()), cosigners={"unit-head": unit_head})
    v = package.verify_package(info.path, [portal])
    assert seen == [v.manifest_bytes]
    assert v.signatures["signatures/unit-head.json"]["digest"] == hashlib.sha256(v.manifest_bytes).hexdigest()


def test_failing_cosigner_writes_nothing(portal: Any, tmp_path: Path) -> None:
    def pulled_out(_manifest: bytes) -> dict[str, Any]:
        raise OSError("token removed")

    with pytest.raises(OSError, match="token removed"):
        make_test_package(tmp_path, portal_recipient=str(portal.to_public()), out_name="x.scanpkg",
                          cosigners={"unit-head": pulled_out})
    assert not list(tmp_path.rglob("*.scanpkg")) and not list(tmp_path.rglob(".tmp*"))
    with pytest.raises(package.PackageError, match="cosigner name"):
        make_test_package(tmp_path, portal_recipient=str(portal.to_public()), cosigners={"../x": lambda b: {}})


def test_object_swapped_for_valid_ciphertext_of_other_data(built: Any, portal: Any, tmp_path: Path) -> None:
    info, _ = built
    fake = pyrage.encrypt(b"forged page", [portal.to_public()])
    err = check_of(rewrite(info.path, tmp_path / "t.pkg", lambda ms: [*ms[:3], (ms[3][0], fake), *ms[4:]]), portal)
    assert err.check in {"object_size", "object_ct_sha256"}


def test_oversized_member_refused_before_reading(built: Any, portal: Any, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    info, _ = built
    monkeypatch.setattr(batchformat.reader, "MAX_ENVELOPE_BYTES", 16)  # where the reader reads it
    err = check_of(info.path, portal)
    assert err.check == "member_size" and err.member == package.ENVELOPE_NAME


def test_read_envelope_without_keys(built: Any, tmp_path: Path) -> None:
    info, exp = built
    env = package.read_envelope(info.path)
    assert env["batch_uid"] == exp.batch_uid and env["package_id"] == info.package_id
    (tmp_path / "junk").write_bytes(os.urandom(2048))
    with pytest.raises(PackageError):
        package.read_envelope(tmp_path / "junk")
    with pytest.raises(PackageError, match="No such file"):
        package.read_envelope(tmp_path / "missing")


# ---------------------------------------------------------------- receipts


@pytest.fixture
def receipt(built: Any, portal: Any) -> tuple[bytes, Ed25519PrivateKey, package.VerifiedPackage]:
    info, _ = built
    v = package.verify_package(info.path, [portal])
    key = Ed25519PrivateKey.generate()
    data = package.make_receipt(v, receipt_id="r" * 32, received_at="2026-01-03T00:00:00Z", portal_key=key)
    return data, key, v


def test_receipt_good(receipt: Any) -> None:
    data, key, v = receipt
    r = package.verify_receipt(data, key.public_key(), package_sha256=v.sha256, manifest=v.manifest)
    assert r["package_sha256"] == v.sha256 and r["batch_uid"] == v.envelope["batch_uid"]
    assert [d["digest"] for d in r["documents"]] == [package.document_digest(v.manifest, d)
                                                     for d in v.manifest["documents"]]
    assert r["portal_key_id"] == package.key_id(key.public_key())


def test_receipt_wrong_key(receipt: Any) -> None:
    data, _, v = receipt
    with pytest.raises(ReceiptInvalid, match="does not verify"):
        package.verify_receipt(data, Ed25519PrivateKey.generate().public_key(), package_sha256=v.sha256)


@pytest.mark.parametrize(("path", "value"), [
    (("receipt", "batch_uid"), "B-other"),
    (("receipt", "package_size"), 1),
    (("receipt", "documents", 0, "digest"), "0" * 64),
    (("receipt", "documents", 1, "employee_code"), "UP-00-000000"),
])
def test_receipt_altered_field(receipt: Any, path: tuple[Any, ...], value: Any) -> None:
    data, key, v = receipt
    doc = json.loads(data)
    target = doc
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    with pytest.raises(ReceiptInvalid, match="does not verify"):
        package.verify_receipt(json.dumps(doc).encode(), key.public_key(), package_sha256=v.sha256)


def test_receipt_for_another_package_or_manifest(receipt: Any, built: Any, portal: Any, tmp_path: Path) -> None:
    data, key, v = receipt
    with pytest.raises(ReceiptInvalid, match="is for package"):
        package.verify_receipt(data, key.public_key(), package_sha256="f" * 64)
    other, _ = make_test_package(tmp_path / "o", portal_recipient=str(portal.to_public()))
    # a validly signed receipt checked against a different manifest
    with pytest.raises(ReceiptInvalid, match="package_id"):
        package.verify_receipt(data, key.public_key(), package_sha256=v.sha256, manifest=other.manifest)


def test_receipt_signed_honestly_but_digests_wrong(receipt: Any) -> None:
    """A portal that signs a receipt whose per-document digests do not match the package is caught."""
    data, key, v = receipt
    inner = json.loads(data)["receipt"]
    inner["documents"][0]["page_count"] += 1
    forged = package.canonical_json({"receipt": inner, "signature": base64.b64encode(
        key.sign(package.canonical_json(inner))).decode()})
    package.verify_receipt(forged, key.public_key(), package_sha256=v.sha256)  # signature itself fine
    with pytest.raises(ReceiptInvalid, match="document"):
        package.verify_receipt(forged, key.public_key(), package_sha256=v.sha256, manifest=v.manifest)


@pytest.mark.parametrize("junk", [b"", b"[]", b"{}", b'{"receipt":{},"signature":""}', b"\xff\xfe", b"1e999"])
def test_receipt_junk(receipt: Any, junk: bytes) -> None:
    _, key, v = receipt
    with pytest.raises(ReceiptInvalid):
        package.verify_receipt(junk, key.public_key(), package_sha256=v.sha256)


def test_pem_helpers() -> None:
    key = Ed25519PrivateKey.generate()
    pem = package.public_key_pem(key)
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    assert package.raw_public_key(package.load_public_key_pem(pem, "x.pem")) == package.raw_public_key(
        key.public_key())
    with pytest.raises(ConfigError, match=r"portal\.pem"):  # the station's edge: a configuration error
        load_portal_key(b"not pem", "portal.pem")

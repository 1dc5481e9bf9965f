"""The station's audit log in sealed packages: checkpoint + consistency proofs, checked by the reader.

Fast tests build packages from a stand-in log (packagekit.FakeLog); the station tests seal real batches
and find the checkpoint the trail signed at the seal, and proofs from the packages sealed before.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import sqlite3
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyrage
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import batchformat as package
from batchformat import Checkpoint, PackageCheckError, ReceiptInvalid, sign_checkpoint
from scanstation.service.public_info import StationPublic

from .packagekit import Expected, FakeLog, make_test_package
from .test_package import read_members, write_members


@pytest.fixture
def portal() -> pyrage.x25519.Identity:
    return pyrage.x25519.Identity.generate()


def build(tmp_path: Path, portal: Any, name: str, **kw: Any) -> tuple[package.PackageInfo, Expected]:
    return make_test_package(tmp_path / name, portal_recipient=str(portal.to_public()), n_docs=1, pages_per_doc=1,
                             **kw)


def resign(path: Path, out: Path, portal: Any, key: Ed25519PrivateKey, batch_recipient: str,
           change: Callable[[dict[str, Any]], None]) -> Path:
    """The package with its manifest changed and everything re-done with the station's key (envelope hash,
    encryption, signature): what someone holding the station key could make."""
    verified = package.verify_package(path, [portal])
    manifest = json.loads(verified.manifest_bytes)
    change(manifest)
    plain = package.canonical_json(manifest)
    ct = pyrage.encrypt(plain, [portal.to_public(), pyrage.x25519.Recipient.from_str(batch_recipient)])
    members = read_members(path)
    env = json.loads(members[0][1])
    env["manifest_ct_sha256"] = hashlib.sha256(ct).hexdigest()
    sig = json.loads(members[2][1])
    sig["signature"] = base64.b64encode(key.sign(plain)).decode()
    return write_members(out, [(members[0][0], package.canonical_json(env)), (members[1][0], ct),
                               (members[2][0], package.canonical_json(sig)), *members[3:]])


def receipt_for(verified: package.VerifiedPackage, key: Ed25519PrivateKey, ack: str | None = None) -> bytes:
    return package.make_receipt(verified, receipt_id="a" * 32, received_at="2026-01-03T00:00:00Z", portal_key=key,
                                audit_checkpoint=ack)


# ---------------------------------------------------------------- the format (stand-in log)


def test_package_carries_checkpoint_and_proofs(tmp_path: Path, portal: Any) -> None:
    log = FakeLog("ST-LOG-1", Ed25519PrivateKey.generate())
    first, _ = build(tmp_path, portal, "a", station_id="ST-LOG-1", log=log)
    v1 = package.verify_package(first.path, [portal])
    assert package.read_envelope(first.path)["format"] == package.FORMAT == "scanstation-package/2"
    assert v1.manifest["format"] == package.MANIFEST_FORMAT == "scanstation-manifest/3"
    assert v1.audit_log is not None and v1.audit_log.proofs == ()
    cp = v1.audit_log.checkpoint
    assert v1.manifest["audit_head"] == {"origin": "scanstation/ST-LOG-1", "size": cp.size,
                                         "root": base64.b64encode(log.tree.root(cp.size)).decode()}
    assert v1.audit_log.vkey == log.vkey and v1.manifest["audit_log"]["checkpoint"] == cp.note
    # the portal acknowledges it; a second package is sealed before that receipt arrives, a third after
    second, _ = build(tmp_path, portal, "b", station_id="ST-LOG-1", log=log)
    log.acknowledge(receipt_for(v1, Ed25519PrivateKey.generate()))
    third, _ = build(tmp_path, portal, "c", station_id="ST-LOG-1", log=log)
    v2 = package.verify_package(second.path, [portal])
    v3 = package.verify_package(third.path, [portal])
    assert v2.audit_log is not None and v3.audit_log is not None
    assert [p.base.size for p in v2.audit_log.proofs] == [cp.size]
    # from the acknowledged checkpoint and from the one sealed since and not yet acknowledged
    assert [p.base.note for p in v3.audit_log.proofs] == [cp.note, v2.audit_log.checkpoint.note]
    assert v3.audit_log.checkpoint.size > v2.audit_log.checkpoint.size > cp.size


def _flip_proof(m: dict[str, Any]) -> None:
    h = bytearray(base64.b64decode(m["audit_log"]["proofs"][0]["consistency"][0]))
    h[0] ^= 1
    m["audit_log"]["proofs"][0]["consistency"][0] = base64.b64encode(bytes(h)).decode()


def _other_key_checkpoint(m: dict[str, Any]) -> None:
    other = Ed25519PrivateKey.generate()
    head = m["audit_head"]
    cp = Checkpoint(head["origin"], head["size"], base64.b64decode(head["root"]))
    m["audit_log"]["checkpoint"] = sign_checkpoint(cp, head["origin"], other).note


def _other_vkey(m: dict[str, Any]) -> None:
    m["audit_log"]["vkey"] = package.vkey(m["audit_head"]["origin"], Ed25519PrivateKey.generate().public_key())


@pytest.mark.parametrize(("name", "change", "check", "words"), [
    ("proof hash flipped", _flip_proof, "audit_log", "does not extend"),
    ("proof dropped", lambda m: m["audit_log"]["proofs"][0]["consistency"].pop(), "audit_log", "does not extend"),
    ("audit_head size", lambda m: m["audit_head"].update(size=m["audit_head"]["size"] + 1), "audit_log", "audit_head"),
    ("audit_head root", lambda m: m["audit_head"].update(root=base64.b64encode(bytes(32)).decode()), "audit_log",
     "audit_head"),
    ("checkpoint by another key", _other_key_checkpoint, "audit_log", "checkpoint"),
    ("vkey of another key", _other_vkey, "audit_log", "signing key"),
    ("vkey for another log", lambda m: m["audit_log"].update(vkey=m["audit_log"]["vkey"].replace("ST-LOG-2", "X")),
     "audit_log", "vkey"),
    ("proof base twice", lambda m: m["audit_log"]["proofs"].append(m["audit_log"]["proofs"][0]), "audit_log",
     "increasing"),
    ("no audit_log", lambda m: m.pop("audit_log"), "manifest_format", "audit_log"),
    ("wave-1 audit_head", lambda m: m.update(audit_head="seq:12"), "manifest_format", "audit_head"),
    ("extra field", lambda m: m["audit_log"].update(note="x"), "manifest_format", "audit_log"),
])
def test_tampered_log_refused_by_the_reader(tmp_path: Path, portal: Any, name: str,
                                            change: Callable[[dict[str, Any]], None], check: str, words: str) -> None:
    log = FakeLog("ST-LOG-2", Ed25519PrivateKey.generate())
    first, _ = build(tmp_path, portal, "a", station_id="ST-LOG-2", log=log)
    log.acknowledge(receipt_for(package.verify_package(first.path, [portal]), Ed25519PrivateKey.generate()))
    info, exp = build(tmp_path, portal, "b", station_id="ST-LOG-2", log=log)
    forged = resign(info.path, tmp_path / "forged.pkg", portal, log.key, str(exp.batch_identity.to_public()), change)
    with pytest.raises(PackageCheckError) as err:
        package.verify_package(forged, [portal])
    assert err.value.check == check and words in err.value.detail, (name, err.value)
    # without the station's key the same change is a broken signature
    if check == "audit_log":
        plain = resign(info.path, tmp_path / "plain.pkg", portal, Ed25519PrivateKey.generate(),
                       str(exp.batch_identity.to_public()), change)
        with pytest.raises(PackageCheckError) as err:
            package.verify_package(plain, [portal])
        assert err.value.check == "signature"


def test_writer_refuses_a_log_it_cannot_vouch_for(tmp_path: Path, portal: Any) -> None:
    log = FakeLog("ST-LOG-3", Ed25519PrivateKey.generate())
    with pytest.raises(package.PackageError, match="not the station's signing key"):
        build(tmp_path, portal, "a", station_id="ST-LOG-3", signing_key=Ed25519PrivateKey.generate(),
              log_fields=log.fields())


def test_version_1_package_is_refused_with_a_remedy(tmp_path: Path, portal: Any) -> None:
    info, _ = build(tmp_path, portal, "a")
    members = read_members(info.path)
    env = json.loads(members[0][1])
    env["format"] = package.FORMAT_V1
    old = write_members(tmp_path / "old.pkg", [(members[0][0], package.canonical_json(env)), *members[1:]])
    with pytest.raises(PackageCheckError) as err:
        package.verify_package(old, [portal])
    assert err.value.check == "envelope" and "seal it again" in err.value.detail


# ---------------------------------------------------------------- the portal's check (stand-in log)


def _logs(tmp_path: Path, portal: Any, n: int, log: FakeLog) -> list[package.PackageLog]:
    out = []
    for i in range(n):
        info, _ = build(tmp_path, portal, f"p{i}-{log.tree.size}", station_id=log.origin.split("/", 1)[1], log=log)
        v = package.verify_package(info.path, [portal])
        assert v.audit_log is not None
        out.append(v.audit_log)
    return out


def test_check_station_log(tmp_path: Path, portal: Any) -> None:
    log = FakeLog("ST-LOG-4", Ed25519PrivateKey.generate())
    p1, p2 = _logs(tmp_path, portal, 2, log)   # p2 sealed before p1 was acknowledged: proof from p1
    prefixes: set[tuple[int, bytes]] = set()

    def check(pl: package.PackageLog, latest: package.SignedCheckpoint | None) -> package.LogAcceptance:
        return package.check_station_log(pl, pinned_vkey=log.vkey, latest_note=latest.note if latest else None,
                                         known_prefix=lambda size, root: (size, root) in prefixes)

    # the newer package first: pinned on first contact, p1 learnt as a prefix of it
    first = check(p2, None)
    assert first.advanced and first.latest == p2.checkpoint
    prefixes.update((c.size, c.root) for c in first.prefixes if c.size < first.latest.size)
    # the older one afterwards: accepted, the portal's latest stays p2 (what its receipt acknowledges)
    late = check(p1, p2.checkpoint)
    assert not late.advanced and late.latest == p2.checkpoint
    # the same checkpoint again (a re-sealed batch): fine
    assert not check(p2, p2.checkpoint).advanced
    # a normal next package: proof from the portal's checkpoint
    log.acknowledged, log.pending = p2.checkpoint, []
    (p3,) = _logs(tmp_path, portal, 1, log)
    assert check(p3, p2.checkpoint).advanced

    # cut back: the same station's log cut to fewer entries than the portal holds, and signed again
    cut = FakeLog("ST-LOG-4", log.key)
    for i in range(p2.checkpoint.size - 3):
        cut.tree.append(log.tree.leaf(i))
    (short,) = _logs(tmp_path, portal, 1, cut)
    assert short.checkpoint.size < p3.checkpoint.size
    with pytest.raises(PackageCheckError) as err:
        check(short, p3.checkpoint)
    assert err.value.check == "audit_log_cut_back"
    # rewritten: entries changed and re-hashed, re-signed, then grown past the portal's size
    rewritten = FakeLog("ST-LOG-4", log.key)
    rewritten.grow(p3.checkpoint.size)
    (other,) = _logs(tmp_path, portal, 1, rewritten)
    with pytest.raises(PackageCheckError) as err:
        check(other, p3.checkpoint)
    assert err.value.check == "audit_log_rewritten" and "no consistency proof" in err.value.detail
    # ... or claiming a proof from a checkpoint of the portal's size with another root
    forged = FakeLog("ST-LOG-4", log.key)
    forged.grow(p3.checkpoint.size)
    forged.acknowledged = forged.checkpoint()
    (claim,) = _logs(tmp_path, portal, 1, forged)
    with pytest.raises(PackageCheckError) as err:
        check(claim, p3.checkpoint)
    assert err.value.check == "audit_log_rewritten"
    # same size, another root
    same = FakeLog("ST-LOG-4", log.key)
    same.grow(p3.checkpoint.size - 7)
    (equal,) = _logs(tmp_path, portal, 1, same)
    assert equal.checkpoint.size == p3.checkpoint.size
    with pytest.raises(PackageCheckError) as err:
        check(equal, p3.checkpoint)
    assert err.value.check == "audit_log_rewritten"
    # a changed key for a known station
    with pytest.raises(PackageCheckError) as err:
        package.check_station_log(p3, pinned_vkey=package.vkey(log.origin, Ed25519PrivateKey.generate().public_key()),
                                  latest_note=None, known_prefix=lambda s, r: False)
    assert err.value.check == "audit_log_key_changed"


# ---------------------------------------------------------------- receipts


def test_receipt_version_2_acknowledges_a_checkpoint(tmp_path: Path, portal: Any) -> None:
    log = FakeLog("ST-LOG-5", Ed25519PrivateKey.generate())
    info, _ = build(tmp_path, portal, "a", station_id="ST-LOG-5", log=log)
    v = package.verify_package(info.path, [portal])
    assert v.audit_log is not None
    key = Ed25519PrivateKey.generate()
    good = receipt_for(v, key)
    r = package.verify_receipt(good, key.public_key(), package_sha256=v.sha256, manifest=v.manifest)
    assert r["format"] == package.RECEIPT_FORMAT == "scanstation-receipt/2"
    assert r["audit_checkpoint"] == v.audit_log.checkpoint.note
    assert package.receipt_audit_checkpoint(good) == v.audit_log.checkpoint.note
    # a later checkpoint of the same log is fine (the portal holds a newer one)
    log.grow(5)
    assert package.verify_receipt(receipt_for(v, key, log.checkpoint().note), key.public_key(),
                                  package_sha256=v.sha256, manifest=v.manifest)
    # an older one does not cover the package; another key's is not this station's log
    older = FakeLog("ST-LOG-5", log.key)
    older.tree.append(log.tree.leaf(0))
    for bad, words in ((older.checkpoint().note, "does not cover"),
                       (FakeLog("ST-LOG-5", Ed25519PrivateKey.generate()).checkpoint().note, "not a checkpoint")):
        with pytest.raises(ReceiptInvalid, match=words):
            package.verify_receipt(receipt_for(v, key, bad), key.public_key(), package_sha256=v.sha256,
                                   manifest=v.manifest)
    # a version 1 receipt: still a valid signed receipt, but not for a package that carries a log
    inner = json.loads(good)["receipt"]
    inner.pop("audit_checkpoint")
    inner["format"] = package.RECEIPT_FORMAT_V1
    v1 = package.canonical_json({"receipt": inner, "signature": base64.b64encode(
        key.sign(package.canonical_json(inner))).decode()})
    assert package.verify_receipt(v1, key.public_key(), package_sha256=v.sha256)["format"] == package.RECEIPT_FORMAT_V1
    assert package.receipt_audit_checkpoint(v1) is None
    with pytest.raises(ReceiptInvalid, match="must be scanstation-receipt/2"):
        package.verify_receipt(v1, key.public_key(), package_sha256=v.sha256, manifest=v.manifest)
    inner["format"] = package.RECEIPT_FORMAT  # version 2 without its field
    with pytest.raises(ReceiptInvalid, match="fields must be exactly"):
        package.verify_receipt(package.canonical_json({"receipt": inner, "signature": ""}), key.public_key(),
                               package_sha256=v.sha256)


# ---------------------------------------------------------------- sealed by a real station


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Path]]:
    from scanstation_tools.synth import PageSpec, render_acr_page

    from .stationkit import make_station

    tmp = tmp_path_factory.mktemp("logpkg")
    st = make_station(tmp / "st")
    st.roster("E70", "E71")
    packages = {}
    for i, name in enumerate(("L1", "L2")):
        page = tmp / f"{name}.png"
        render_acr_page(PageSpec(seed=70 + i, page_no=1, dpi=100)).image.save(page)
        st.run("import", "--batch", name, "--employee", f"E7{i}", "--period", "2019-20", str(page), check=True)
    for name in ("L1", "L2"):
        st.verify(name)  # nothing is sealed unverified
        out = st.run("seal", "--batch", name, check=True).stdout
        packages[name] = Path(out.split(f"sealed batch {name}: ")[1].split(" (")[0])
    return st, packages


def test_station_package_carries_the_checkpoint_signed_at_seal(sealed: tuple[Any, dict[str, Path]]) -> None:
    st, packages = sealed
    portal = pyrage.x25519.Identity.from_str(st.portal_identity_file.read_text().strip())
    public = StationPublic.load(st.data_dir)
    with contextlib.closing(sqlite3.connect(st.data_dir / "audit.db")) as db:
        stored = dict(db.execute("SELECT size, note FROM checkpoints").fetchall())
        entries = db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
    l1 = package.verify_package(packages["L1"], [portal])
    l2 = package.verify_package(packages["L2"], [portal])
    assert l1.audit_log is not None and l2.audit_log is not None
    for v in (l1, l2):
        cp = v.audit_log.checkpoint if v.audit_log else None
        assert cp is not None and stored[cp.size] == cp.note  # the trail's own checkpoint, signed at the seal
        assert v.audit_log is not None and v.audit_log.vkey == package.vkey(public.origin, public.verify_key())
        assert v.manifest["audit_head"]["origin"] == f"scanstation/{public.station_id}"
    assert l2.audit_log.checkpoint.size > l1.audit_log.checkpoint.size and entries > l2.audit_log.checkpoint.size
    # nothing acknowledged yet: L1 carries no proof, L2 one from L1's checkpoint (sealed, not yet acknowledged)
    assert l1.audit_log.proofs == ()
    assert [p.base for p in l2.audit_log.proofs] == [l1.audit_log.checkpoint]


def test_station_package_with_a_tampered_log_is_refused(sealed: tuple[Any, dict[str, Path]], tmp_path: Path) -> None:
    st, packages = sealed
    portal = pyrage.x25519.Identity.from_str(st.portal_identity_file.read_text().strip())
    key = st.unlock()[1].signing_key
    manifest = package.verify_package(packages["L2"], [portal]).manifest
    recipient = manifest["station"]["recipient"]
    with tarfile.open(packages["L2"]) as tar:
        assert [m.name for m in tar.getmembers()][:3] == [package.ENVELOPE_NAME, package.MANIFEST_NAME,
                                                          package.STATION_SIGNATURE_NAME]
    forged = resign(packages["L2"], tmp_path / "forged.pkg", portal, key, recipient, _flip_proof)
    with pytest.raises(PackageCheckError) as err:
        package.verify_package(forged, [portal])
    assert err.value.check == "audit_log"
    cut = resign(packages["L2"], tmp_path / "cut.pkg", portal, key, recipient,
                 lambda m: m["audit_log"]["proofs"].clear())  # self-consistent: the reader accepts it ...
    v = package.verify_package(cut, [portal])
    assert v.audit_log is not None
    with pytest.raises(PackageCheckError) as err:  # ... but not a portal that holds L1's checkpoint
        package.check_station_log(v.audit_log, pinned_vkey=v.audit_log.vkey,
                                  latest_note=manifest["audit_log"]["proofs"][0]["from"],
                                  known_prefix=lambda s, r: False)
    assert err.value.check == "audit_log_rewritten"

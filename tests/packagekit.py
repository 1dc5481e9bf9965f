"""Test helper: real sealed packages built from synthetic objects (no station needed).

Objects are random bytes age-encrypted (pyrage) to the portal recipient and a fresh batch identity,
exactly as the vault stores them; the manifest follows docs/portal-api.md; the station key is a fresh
Ed25519 key unless one is given.  The station's audit log is a :class:`FakeLog` (random leaves, checkpoints
signed with the station key): pass one ``log`` to several packages to seal them from one growing log.
Reused by the receiver, tus-client and upload tests.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyrage
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import batchformat as package
from batchformat import Checkpoint, MerkleTree, ObjectSource, PackageInfo, SignedCheckpoint, sign_checkpoint


class FakeLog:
    """A station's audit log as packages see it: leaves, signed checkpoints, what the portal acknowledged.

    :meth:`fields` grows the log, signs a checkpoint and returns the manifest's ``audit_head``/``audit_log``
    with proofs from the acknowledged checkpoint and from every checkpoint sealed since (as the station
    does); :meth:`acknowledge` takes the checkpoint a receipt acknowledged.
    """

    def __init__(self, station_id: str, key: Ed25519PrivateKey) -> None:
        self.origin = f"scanstation/{station_id}"
        self.key = key
        self.tree = MerkleTree()
        self.acknowledged: SignedCheckpoint | None = None
        self.pending: list[SignedCheckpoint] = []

    @property
    def vkey(self) -> str:
        return package.vkey(self.origin, self.key.public_key())

    def grow(self, n: int) -> None:
        for _ in range(n):
            self.tree.append(package.leaf_hash(os.urandom(48)))

    def checkpoint(self) -> SignedCheckpoint:
        return sign_checkpoint(Checkpoint(self.origin, self.tree.size, self.tree.root()), self.origin, self.key)

    def fields(self, grow: int = 7) -> dict[str, Any]:
        self.grow(grow)
        cp = self.checkpoint()
        bases = [b for b in [self.acknowledged, *self.pending] if b is not None and b.size < cp.size]
        proofs = [(b, self.tree.consistency_proof(b.size, cp.size) if b.size else []) for b in bases]
        self.pending = [*self.pending, cp][-(package.MAX_LOG_PROOFS - 1):]
        return package.audit_log_fields(self.vkey, cp, proofs)

    def acknowledge(self, receipt: bytes) -> SignedCheckpoint:
        note = package.receipt_audit_checkpoint(receipt)
        assert note is not None, "not a receipt that acknowledges a checkpoint"
        verifier = package.parse_vkey(self.vkey)
        cp = package.open_checkpoint(note, verifier, origin=self.origin)
        if self.acknowledged is None or cp.size > self.acknowledged.size:
            self.acknowledged = cp
        self.pending = [p for p in self.pending if p.size > cp.size]
        return cp


@dataclass
class Expected:
    """What a test package contains, for checking what the other end got."""

    manifest: dict[str, Any]
    plaintexts: dict[str, bytes]  # object id -> plaintext
    signing_key: Ed25519PrivateKey
    batch_identity: pyrage.x25519.Identity
    station_id: str
    batch_uid: str
    objects_dir: Path
    sources: list[ObjectSource] = field(default_factory=list)
    log: FakeLog | None = None

    @property
    def station_public_raw(self) -> bytes:
        return package.raw_public_key(self.signing_key.public_key())


def _store_object(objects_dir: Path, kind: str, plaintext: bytes, recipients: list[Any]) -> ObjectSource:
    oid = secrets.token_hex(16)
    ct = pyrage.encrypt(plaintext, recipients)
    path = objects_dir / f"{oid}.age"
    path.write_bytes(ct)
    return ObjectSource(id=oid, kind=kind, sha256=hashlib.sha256(plaintext).hexdigest(), size=len(plaintext),
                        ct_sha256=hashlib.sha256(ct).hexdigest(), path=path)


def _page(seq: int, raw: str | None, image: str | None, text: str | None) -> dict[str, Any]:
    return {"seq": seq, "position": seq, "side": "front" if seq % 2 else "back", "flags": [],
            "ocr_state": "done" if text else "skipped", "raw": raw, "image": image, "ocr_text": text}


def make_test_package(
    tmp_path: Path,
    *,
    portal_recipient: str,
    n_docs: int = 2,
    pages_per_doc: int = 2,
    object_size: int = 4096,
    signing_key: Ed25519PrivateKey | None = None,
    station_id: str = "ST-TEST-01",
    batch_uid: str | None = None,
    unfiled_pages: int = 0,
    out_name: str | None = None,
    employee_codes: list[str] | None = None,
    log: FakeLog | None = None,
    log_fields: dict[str, Any] | None = None,
    cosigners: dict[str, Any] | None = None,
    compact: bool = False,
    manifest_format: str | None = None,
) -> tuple[PackageInfo, Expected]:
    """Build a package under ``tmp_path``; return (PackageInfo, Expected).

    Each document gets a PDF object and, per page, a raw image, a cleaned image and an OCR text
    object (``object_size`` random bytes each; texts are short).  Total size is roughly
    ``n_docs * (1 + 3 * pages_per_doc) * object_size``.  ``log``: the station's audit log (a fresh one
    by default; its key signs the package); ``log_fields``: the manifest's audit fields as given.
    ``compact``: the station's default since issue 16 (manifest /3): a filed page has ``raw`` and ``image``
    null (it travels in its document's PDF), an unfiled page only ``image``, a one-page PDF (kind page_pdf).
    ``manifest_format``: written as given (default: the current version).
    """
    if log is not None:
        assert signing_key is None or signing_key is log.key
        signing_key = log.key
    signing_key = signing_key or Ed25519PrivateKey.generate()
    log = log or FakeLog(station_id, signing_key)
    batch_identity = pyrage.x25519.Identity.generate()
    batch_uid = batch_uid or f"B-{secrets.token_hex(6)}"
    recipients = [pyrage.x25519.Recipient.from_str(portal_recipient), batch_identity.to_public()]
    work = tmp_path / f"pkg-{batch_uid}"
    objects_dir = work / "objects"
    objects_dir.mkdir(parents=True, exist_ok=True)

    sources: list[ObjectSource] = []
    plaintexts: dict[str, bytes] = {}

    def add(kind: str, data: bytes) -> str:
        src = _store_object(objects_dir, kind, data, recipients)
        sources.append(src)
        plaintexts[src.id] = data
        return src.id

    documents: list[dict[str, Any]] = []
    seq = 0
    codes = employee_codes or [f"UP-12-{4512 + i:06d}" for i in range(n_docs)]
    for d in range(n_docs):
        pdf = add("pdf", b"%PDF-1.7\n" + os.urandom(object_size))
        pages = []
        for _ in range(pages_per_doc):
            seq += 1
            raw = None if compact else add("raw", os.urandom(object_size))
            image = None if compact else add("image", os.urandom(object_size))
            text = add("ocr_text", f"पृष्ठ {seq} page {seq} text".encode())
            pages.append(_page(seq, raw, image, text))
        documents.append({"id": f"doc-{d + 1}", "seq": d + 1, "employee_code": codes[d],
                          "employee_name": f"राम कुमार {d + 1}", "rank": "Constable", "acr_period": "2019-20",
                          "page_count": pages_per_doc, "pdf": pdf, "pages": pages})
    unfiled = []
    for _ in range(unfiled_pages):
        seq += 1
        if compact:
            unfiled.append(_page(seq, None, add("page_pdf", b"%PDF-1.7\n" + os.urandom(object_size)), None))
        else:
            unfiled.append(_page(seq, add("raw", os.urandom(object_size)), None, None))

    manifest: dict[str, Any] = {
        "format": manifest_format or package.MANIFEST_FORMAT,
        "software_version": "scanstation-test",
        "station": {"id": station_id, "unit": "Test Unit", "recipient": str(batch_identity.to_public())},
        "batch": {"uid": batch_uid, "name": f"Batch {batch_uid}", "unit": "Test Unit", "operator": "op1",
                  "created_at": "2026-01-02T03:04:05Z", "sealed_at": "2026-01-02T04:05:06Z", "page_count": seq},
        "documents": documents,
        "unfiled_pages": unfiled,
        **(log_fields if log_fields is not None else log.fields()),
    }
    out = work / (out_name or f"{batch_uid}.scanpkg")
    info = package.write_package(out, manifest, sources, signing_key=signing_key,
                                 recipients=[portal_recipient, str(batch_identity.to_public())],
                                 cosigners=cosigners)
    expected = Expected(manifest=info.manifest, plaintexts=plaintexts, signing_key=signing_key,
                        batch_identity=batch_identity, station_id=station_id, batch_uid=batch_uid,
                        objects_dir=objects_dir, sources=sources, log=log)
    return info, expected

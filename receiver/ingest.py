"""A completed upload becomes a stored, receipted package, or a refusal naming the failed check.

Runs in a worker thread (CPU and disk heavy), one package at a time: a global lock serialises
ingestion, so two uploads of the same batch can never interleave their store writes, and the
verify-then-record sequence needs no cross-process locking beyond the database's unique keys.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import batchformat
from batchformat import PackageCheckError, VerifiedPackage, atomic

from .db import BatchConflict, Database, Station, StationLogConflict, StationLogUpdate, Upload
from .storage import DataDir, move_into, write_file

log = logging.getLogger("receiver.ingest")

UNIT_HEAD_MEMBER = "signatures/unit-head.json"  # receiver.unithead.MEMBER (that module loads pyHanko)


@dataclass(frozen=True)
class Outcome:
    accepted: bool
    receipt: bytes | None = None
    check: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class _LogDecision:
    update: StationLogUpdate
    acknowledged: str  # the checkpoint note the receipt acknowledges: the portal's latest for the station


class Refused(Exception):
    def __init__(self, check: str, reason: str) -> None:
        super().__init__(reason)
        self.check = check
        self.reason = reason


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1024 * 1024):
            h.update(chunk)
    return h.hexdigest()


class Ingestor:
    """Verifies completed uploads against what the portal knows of their (authenticated) sender.

    ``trust_roots``: the unit head's CMS must chain to these (asn1crypto certificates); with
    ``require_unit_head`` a package without ``signatures/unit-head.json`` is refused.
    """

    def __init__(self, db: Database, data: DataDir, identities: list[pyrage.x25519.Identity],
                 receipt_key: Ed25519PrivateKey, trust_roots: list[Any] | None, *,
                 require_unit_head: bool = False) -> None:
        self.db = db
        self.data = data
        self.identities = identities
        self.portal_recipient = identities[0].to_public()
        self.receipt_key = receipt_key
        self.trust_roots = trust_roots
        self.require_unit_head = require_unit_head
        self._lock = threading.Lock()

    def ingest(self, upload_id: str) -> Outcome:
        with self._lock:
            upload = self.db.get_upload(upload_id)
            if upload is None or upload.state not in ("receiving", "verifying") or not upload.complete:
                return self.outcome_of(upload_id)
            self.db.set_state(upload_id, "verifying")
            try:
                receipt = self._ingest(upload)
            except Refused as r:
                log.warning("upload %s refused: %s", upload_id, r.reason)
                self.db.set_state(upload_id, "refused", check=r.check, reason=r.reason)
                self.data.clear_staging(upload_id)
                self.data.delete_part(upload_id)
                return Outcome(False, check=r.check, reason=r.reason)
            except Exception as e:
                # disk full, database down, …: not the package's fault. Stay "verifying"; the next
                # receipt request or restart retries.  The partial file is kept.
                log.exception("ingesting upload %s failed", upload_id)
                self.data.clear_staging(upload_id)
                return Outcome(False, check="internal_error", reason=f"receiver error: {type(e).__name__}")
            self.data.clear_staging(upload_id)
            self.data.delete_part(upload_id)
            return Outcome(True, receipt=receipt)

    def outcome_of(self, upload_id: str) -> Outcome:
        upload = self.db.get_upload(upload_id)
        if upload is None or upload.state != "accepted":
            check = upload.refusal_check if upload else None
            return Outcome(False, check=check, reason=upload.refusal_reason if upload else None)
        accepted = self.db.package_by_sha256(upload.package_sha256)
        return Outcome(True, receipt=accepted.receipt if accepted else None)

    # ------------------------------------------------------------------

    def _ingest(self, upload: Upload) -> bytes:
        path = self.data.part_path(upload.id)
        sha = _file_sha256(path)
        if sha != upload.package_sha256:
            raise Refused("package_sha256", f"the uploaded bytes hash to {sha}, but Upload-Metadata "
                                            f"package_sha256 is {upload.package_sha256}")
        station = self.db.station(upload.station_id)  # the caller that created the upload (receiver.auth)
        if station is None or station.revoked:
            raise Refused("station_unknown", f"station {upload.station_id!r} is not (or no longer) enrolled")
        try:
            envelope = batchformat.read_envelope(path)
        except PackageCheckError as e:
            raise Refused(e.check, f"package refused: {e}") from None
        if envelope["station_id"] != station.station_id:
            raise Refused("station_mismatch", f"the package is station {envelope['station_id']!r}'s; it was sent by "
                                              f"station {station.station_id!r}")
        existing = self.db.package_by_sha256(sha)
        if existing is not None and existing.station_id == station.station_id:
            # the same package again: same receipt, nothing stored twice
            self.db.set_state(upload.id, "accepted")
            return existing.receipt
        self._check_batch_free(envelope["batch_uid"], sha, station.station_id)

        staging = self.data.staging_dir(upload.id)
        self.data.clear_staging(upload.id)
        atomic.ensure_dir(staging, 0o700)

        def stage(entry: dict[str, Any], plaintext: bytes) -> None:
            # re-encrypted to the portal alone: the station's key must not open the portal's store
            write_file(staging / f"{entry['id']}.age", pyrage.encrypt(plaintext, [self.portal_recipient]))

        try:
            verified = batchformat.verify_package(
                path, self.identities, trusted_station_keys={station.station_id: station.signing_key},
                on_manifest=lambda manifest, manifest_bytes, signatures: self._check_manifest(
                    station, manifest, manifest_bytes, signatures),
                on_object=stage)
        except PackageCheckError as e:
            raise Refused(e.check, f"package refused: {e}") from None
        env = verified.envelope
        for key in ("batch_uid", "station_id"):
            if env[key] != upload.metadata[key]:
                raise Refused("metadata_mismatch", f"Upload-Metadata {key} {upload.metadata[key]!r} differs from "
                                                   f"the package's {env[key]!r}")
        if verified.sha256 != sha:  # the file changed under us: never sign for bytes we did not verify
            raise Refused("package_sha256", "package changed during verification")
        self._check_batch_free(env["batch_uid"], sha, station.station_id)
        log_update = self._check_station_log(verified)

        docs = self._place(verified, staging)
        receipt = batchformat.make_receipt(verified, receipt_id=secrets.token_hex(16),
                                           received_at=batchformat.utc_now_rfc3339(), portal_key=self.receipt_key,
                                           audit_checkpoint=log_update.acknowledged)
        inner = batchformat.verify_receipt(receipt, self.receipt_key.public_key(), package_sha256=sha,
                                           manifest=verified.manifest)
        try:
            recorded = self.db.record_package(
                upload_id=upload.id, package_sha256=sha, batch_uid=env["batch_uid"], package_id=env["package_id"],
                station_id=env["station_id"], size=verified.size, received_at=inner["received_at"],
                receipt_id=inner["receipt_id"], receipt=receipt, docs=docs, station_log=log_update.update)
        except BatchConflict as c:
            raise Refused("batch_conflict", f"batch {env['batch_uid']!r} was already received as package "
                                            f"{c.existing_sha256}") from None
        except StationLogConflict:  # not the package's fault: retried at the next receipt request
            raise RuntimeError(f"the audit log record of station {env['station_id']!r} changed during "
                               "verification") from None
        log.info("package %s (batch %s) accepted, %d documents", sha, env["batch_uid"], len(docs))
        return recorded.receipt

    def _check_station_log(self, verified: VerifiedPackage) -> _LogDecision:
        """The station's audit log must extend the checkpoint the portal holds for it (batchformat.check_station_log).

        First package of a station: its checkpoint verifier key is pinned (trust on first use) and its
        checkpoint kept.  Refusals: ``audit_log_key_changed``, ``audit_log_cut_back``, ``audit_log_rewritten``.
        """
        log = verified.audit_log
        station_id = verified.envelope["station_id"]
        if log is None:  # the reader accepts no package without one; never accept one here either
            raise Refused("audit_log", "package refused: it carries no audit checkpoint")
        if log.checkpoint.size >= 1 << 63:
            raise Refused("audit_log", f"package refused: audit checkpoint size {log.checkpoint.size} is too large")
        stored = self.db.station_log(station_id)
        try:
            accepted = batchformat.check_station_log(
                log, pinned_vkey=stored.vkey if stored else None, latest_note=stored.note if stored else None,
                known_prefix=lambda size, root: self.db.is_log_prefix(station_id, size, root))
        except PackageCheckError as e:
            raise Refused(e.check, f"package refused: {e}") from None
        latest = accepted.latest
        update = StationLogUpdate(
            station_id=station_id, origin=log.origin, vkey=log.vkey, previous=stored,
            latest=(latest.size, latest.root, latest.note) if accepted.advanced else None,
            prefixes=tuple((p.size, p.root) for p in accepted.prefixes if p.size < latest.size))
        return _LogDecision(update, latest.note)

    def _check_manifest(self, station: Station, manifest: dict[str, Any], manifest_bytes: bytes,
                        signatures: dict[str, dict[str, Any]]) -> None:
        """What the portal knows of the station, checked once the manifest is verified and before any object
        is decrypted: its unit, and the unit head's signature when the portal requires one."""
        unit = manifest["station"]["unit"]
        if unit != station.unit:
            raise Refused("unit_mismatch", f"the manifest's unit {unit!r} is not station {station.station_id!r}'s "
                                           f"enrolled unit {station.unit!r}")
        if self.trust_roots is None:  # no roots, nothing to check against: the member is kept as it came
            return
        from .unithead import UnitHeadRefused, verify_unit_head

        member = signatures.get(UNIT_HEAD_MEMBER)
        if member is None and not self.require_unit_head:
            return
        try:
            signer = verify_unit_head(member, manifest, manifest_bytes, self.trust_roots)
        except UnitHeadRefused as e:
            raise Refused(e.check, f"package refused: {e.reason}") from None
        log.info("station %s: unit head signature by %s (signed %s) verified", station.station_id, signer["subject"],
                 signer["signing_time"])

    def _check_batch_free(self, batch_uid: str, sha: str, station_id: str) -> None:
        other = self.db.package_by_batch(batch_uid)
        if other is not None and other.station_id != station_id:
            raise Refused("batch_foreign", f"batch uid {batch_uid!r} belongs to another station; batch uids are "
                                           "per station and never merged")
        if other is not None and other.package_sha256 != sha:
            raise Refused("batch_conflict", f"batch {batch_uid!r} was already received as a different package "
                                            f"({other.package_sha256}); a re-sealed batch needs a new batch uid")

    def _place(self, verified: VerifiedPackage, staging: Path) -> list[dict[str, Any]]:
        """Move staged objects to the per-employee store and write the encrypted index files."""
        manifest = verified.manifest
        by_id = {o["id"]: o for o in manifest["objects"]}
        batch_uid = manifest["batch"]["uid"]
        placed: dict[str, Path] = {}

        def put(object_id: str, target: Path) -> None:
            dst = target / f"{object_id}.age"
            if object_id in placed:  # referenced twice: copy, the staged file has moved
                write_file(dst, placed[object_id].read_bytes())
            else:
                move_into(staging / f"{object_id}.age", dst)
                placed[object_id] = dst

        def seal(data: bytes) -> bytes:
            return pyrage.encrypt(data, [self.portal_recipient])

        docs = []
        for doc in manifest["documents"]:
            target = self.data.document_dir(doc["employee_code"], doc["acr_period"], batch_uid)
            ids = [i for i in [doc["pdf"], *(p[k] for p in doc["pages"] for k in ("raw", "image", "ocr_text"))]
                   if i is not None]
            ids = list(dict.fromkeys(ids))
            for object_id in ids:
                put(object_id, target / "objects")
            digest = batchformat.document_digest(manifest, doc)
            index = {"format": "scanstation-stored-document/1", "package_sha256": verified.sha256,
                     "package_id": manifest["package_id"], "station": {"id": manifest["station"]["id"],
                     "unit": manifest["station"]["unit"]}, "batch": manifest["batch"], "document": doc,
                     "objects": [by_id[i] for i in ids], "digest": digest}
            write_file(target / f"{doc['id']}.json.age", seal(batchformat.canonical_json(index)))
            docs.append({"doc_id": doc["id"], "employee_code": doc["employee_code"], "acr_period": doc["acr_period"],
                         "page_count": doc["page_count"], "digest": digest,
                         "store_path": str(target.relative_to(self.data.root))})

        batch_dir = self.data.batch_dir(batch_uid)
        for object_id in by_id:
            if object_id not in placed:
                put(object_id, batch_dir / "unfiled")
        # evidence: the exact signed bytes (re-encrypted), the signatures and the envelope
        write_file(batch_dir / "manifest.json.age", seal(verified.manifest_bytes))
        write_file(batch_dir / "envelope.json", batchformat.canonical_json(verified.envelope))
        for name, sig in verified.signatures.items():
            # not canonical_json: an unknown signer's member need not be NFC; stored as parsed
            write_file(batch_dir / name, json.dumps(sig, sort_keys=True, ensure_ascii=False).encode())
        return docs

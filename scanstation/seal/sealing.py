"""Sealing: turn a finished batch into one signed, encrypted package (the batchformat writer) in the outbox.

A sealed batch is frozen (state SEALED): the package holds the vault's ciphertexts as they are, a
manifest encrypted to the portal and the batch key, and the station's Ed25519 signature over the
manifest.  Sealing is idempotent: sealing a sealed batch returns the package it already has.

The manifest carries the station's audit log (batchformat.package_log): the checkpoint the trail signs at
the seal, and consistency proofs to it from the last checkpoint the portal acknowledged (in a verified
receipt kept in station.db) and from the checkpoints of the packages sealed since and not yet
acknowledged, so the portal finds a proof from whatever checkpoint it holds.  A log that no longer
extends one of those checkpoints (cut back or rewritten) is refused here, before anything is written.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchformat import (
    MANIFEST_FORMAT,
    MAX_LOG_PROOFS,
    FormatError,
    ObjectSource,
    PackageInfo,
    SignedCheckpoint,
    VerifierKey,
    atomic,
    audit_log_fields,
    canonical_json,
    open_checkpoint,
    receipt_audit_checkpoint,
    utc_now_rfc3339,
    write_package,
)
from scanstation import __version__
from scanstation.audit.trail import AuditTrail
from scanstation.domain import Batch, BatchState, OcrState, Page, PageState
from scanstation.errors import AuditIntegrityError, PackageError, ScanStationError, StateError, VaultIntegrityError
from scanstation.store.database import StoredObject
from scanstation.vault.objects import ObjectRef

if TYPE_CHECKING:
    from scanstation.config import Config
    from scanstation.facade import Station

log = logging.getLogger(__name__)

PACKAGE_SUFFIX = ".pkg"
# Nothing is sealed without a supervisor's verification (issue 14): VERIFIED while no sign-off is required
# (upload.require_signoff), else only SIGNED.
_SEALABLE = {BatchState.VERIFIED, BatchState.SIGNED}


def signoff_required(config: Config) -> bool:
    """Whether sealing needs the unit head's sign-off: ``upload.require_signoff`` (true by default), never on
    the demo station (synthetic pages, no DSC token; its file may predate the setting)."""
    return config.upload.require_signoff and config.station.mode != "demo"


def package_path(station: Station, batch: Batch) -> Path:
    assert batch.uid
    return station.config.outbox_dir / f"{batch.uid}{PACKAGE_SUFFIX}"


def package_manifest(station: Station, batch_id: int) -> dict[str, Any]:
    """The exact manifest sealed into the batch's package (read back from the vault)."""
    import json

    row = station.store.package(batch_id)
    if row is None or not row["manifest_object"]:
        raise StateError(f"batch #{batch_id} has no sealed manifest")
    data: dict[str, Any] = json.loads(station.read_object(row["manifest_object"]))
    return data


def existing_package(station: Station, batch: Batch) -> PackageInfo | None:
    row = station.store.package(batch.id)
    if row is None:
        return None
    path = station.config.outbox_dir / row["file"]
    if not path.is_file():
        raise PackageError(f"batch '{batch.name}': its sealed package {path} is missing; unseal and seal it again")
    return PackageInfo(path=path, sha256=row["sha256"], size=row["size"], package_id=row["package_id"],
                       batch_uid=batch.uid or "")


@dataclass(frozen=True)
class Cosign:
    """What the unit head's sign-off adds to a package (:mod:`scanstation.signoff.flow`): the signed sheet
    (already in the vault, not yet listed in the store), the manifest's ``signoff`` block, and the signer of
    ``signatures/unit-head.json`` (a detached CMS over the exact manifest bytes, made on the token)."""

    sheet: ObjectRef
    block: dict[str, Any]
    cms_signer: Callable[[bytes], dict[str, Any]]


def seal_batch(station: Station, name: str, actor: str, *, wait_timeout: float | None = None) -> PackageInfo:
    """Seal batch ``name`` (waiting for its cleaning and OCR to finish); return the package.

    With ``upload.require_signoff`` a verified batch is refused: the unit head's ``scanstation signoff``
    signs and seals it in one step.
    """
    batch = station.store.batch(name)
    if batch is None:
        raise StateError(f"there is no batch '{name}'")
    if batch.state in (BatchState.SEALED, BatchState.UPLOADING, BatchState.UPLOADED):
        info = existing_package(station, batch)
        if info is None:
            raise StateError(f"batch '{name}' is {batch.state.value} but has no package record")
        return info
    if signoff_required(station.config) and batch.state is BatchState.VERIFIED:
        raise StateError(f"batch '{name}' must be signed off by the unit head before it is sealed: the unit head "
                         f"runs 'scanstation signoff --batch {name}' (it signs and seals the batch)")
    if batch.state is BatchState.SIGNED:  # never committed by the sign-off, which seals in the same step
        raise StateError(f"batch '{name}' is signed but not sealed: sign it off again (scanstation signoff)")
    batch = prepare_batch(station, name, actor, wait_timeout=wait_timeout)
    return _write_sealed(station, batch, actor, None)


def prepare_batch(station: Station, name: str, actor: str, *, wait_timeout: float | None = None) -> Batch:
    """A verified batch made ready to seal: its pages processed and undamaged, every ACR file's PDF assembled
    and its uid fixed.  The sign-off calls this before it draws the sheet (which lists the PDFs' digests)."""
    store = station.store
    batch = store.batch(name)
    if batch is None:
        raise StateError(f"there is no batch '{name}'")
    if batch.state not in _SEALABLE:
        raise StateError(f"batch '{name}' is {batch.state.value}; only a verified batch can be sealed (close it, "
                         "have a supervisor verify and approve it: scanstation batch close / review / approve)")
    if not station.config.keys.portal_recipient:
        raise StateError("keys.portal_recipient is not set: the package could not be encrypted for the portal")

    # Every page must be cleaned and read (or have failed OCR for good) before the batch is frozen.  The
    # wait is bounded: by ``wait_timeout`` if given, and always by pipeline.wait_timeout_seconds without progress.
    if not station.wait_idle(include_ocr=True, timeout=wait_timeout, batch_id=batch.id):
        raise StateError(f"batch '{name}': its pages are still being processed "
                         f"({station.pending_summary(batch.id)}); try again in a moment")
    # Pages deleted in verification or replaced by a rescan are never packaged (they stay in the vault,
    # encrypted to the batch key, until the purge shreds it).
    pages = [p for p in store.pages(batch.id) if p.live]
    if not pages:
        raise StateError(f"batch '{name}' has no pages; there is nothing to seal")
    _check_objects(station, batch, pages)
    unready = [p.seq for p in pages if p.state is not PageState.PROCESSED or p.ocr_state is OcrState.PENDING]
    if unready:
        raise StateError(f"batch '{name}': page(s) {unready[:10]} are not processed yet (run 'scanstation process')")

    documents = store.documents(batch.id)
    for doc in documents:
        pdf = store.document_pdf(doc.id)
        if pdf and station.vault.check_ciphertext(pdf, store.object(pdf).ct_sha256):
            pdf = None  # a damaged PDF is built again from its pages
        if store.document_pages(doc.id) and not pdf:
            station.assemble_pdf(doc.id, actor)

    _package_pages(station, batch, actor)

    batch_id = batch.id
    store.ensure_batch_uid(batch_id, lambda: f"{station.config.station.id}-{batch_id}-{secrets.token_hex(6)}")
    return store.batch_by_id(batch_id)


def _package_pages(station: Station, batch: Batch, actor: str) -> None:
    """The one-page PDF/As that travel beside the ACR files' PDFs, made afresh at every seal (OCR and turns may
    have changed since an earlier one) and recorded in place of the earlier ones.

    A page filed in an ACR file travels inside that file's PDF/A only; an unfiled page (no ACR file) as a
    one-page PDF/A of its own (``image``).  With ``upload.include_raw`` every page also carries its cleaned page
    (``image``) and raw capture (``raw``) as one-page PDF/As, at the compact encoding - the raw only while the
    vault still has it (a batch sealed before with include_raw off, then unsealed, has destroyed it).
    """
    from scanstation.facade import damaged_pages_error

    store = station.store
    include_raw = station.config.upload.include_raw
    documents = {doc.id: doc for doc in store.documents(batch.id)}
    filed = {p.id: doc for doc in documents.values() for p in store.document_pages(doc.id)}
    destroyed = store.destroyed_object_ids()
    made: list[tuple[int, str, StoredObject]] = []
    try:
        for p in (p for p in store.pages(batch.id) if p.live):
            kind, oid = "image", p.compact_object or p.image_object
            try:
                if include_raw or p.id not in filed:
                    made.append((p.id, "image", station.page_pdf(p, document=filed.get(p.id))))
                if include_raw and p.raw_object not in destroyed:
                    kind, oid = "raw", p.raw_object
                    made.append((p.id, "raw", station.page_pdf(p, raw=True, document=filed.get(p.id))))
                elif include_raw:
                    log.warning("batch %s page %s: its raw capture was destroyed at an earlier seal; the package "
                                "carries its cleaned page only", batch.name, p.seq)
            except VaultIntegrityError as e:
                station.page_damaged(p, kind, oid, e)
                raise damaged_pages_error(batch.name, [store.page(p.id)],
                                          f"batch '{batch.name}' cannot be sealed") from e
    except BaseException:
        for _page_id, _role, obj in made:  # never recorded: nothing of the attempt stays
            station.vault.delete(obj.id)
        raise
    for old in store.set_package_objects(batch.id, made, actor):
        station.vault.delete(old)


def _destroy_raw(station: Station, batch: Batch, actor: str) -> None:
    """Destroy the raw captures of a sealed batch's cleaned pages: nothing needs them any more (the package
    carries the cleaned pages; verification is done), and the vault keeps no more than it needs.

    Recorded first (``objects.destroyed_at``, audited), then deleted, so a crash in between leaves an intent
    the next start finishes; ``verify-vault`` knows they are gone by design.  With ``upload.include_raw`` they
    are kept (they travel), as are pages never cleaned.  A failure here leaves them for the purge: the seal
    stands."""
    store = station.store
    try:
        destroyed = store.destroyed_object_ids()
        ids = [p.raw_object for p in store.pages(batch.id)
               if p.state is PageState.PROCESSED and p.image_object and p.raw_object not in destroyed]
        store.mark_destroyed(ids, "sealed", actor, batch_id=batch.id, subject=batch.name)
        for oid in ids:
            station.vault.delete(oid)
    except (ScanStationError, OSError) as e:
        log.warning("batch %s: its raw captures could not be destroyed after the seal (%s); the purge removes them",
                    batch.name, e)


def seal_signed(station: Station, batch: Batch, actor: str, cosign: Cosign) -> PackageInfo:
    """Seal a verified batch with the unit head's sign-off (``cosign``): the sheet is packaged, the manifest
    carries the ``signoff`` block, ``signatures/unit-head.json`` the CMS.  The batch moves verified -> signed
    -> sealed in one commit, only after the package is written; any failure leaves it verified, no package."""
    if batch.state is not BatchState.VERIFIED:
        raise StateError(f"batch '{batch.name}' is {batch.state.value}; only a verified batch can be signed off")
    return _write_sealed(station, batch, actor, cosign)


def _write_sealed(station: Station, batch: Batch, actor: str, cosign: Cosign | None) -> PackageInfo:
    store = station.store
    name = batch.name
    # The trail records the manifest being built, then signs the checkpoint the package carries (it covers
    # that entry); the proofs reach it from every checkpoint the portal may hold for this station.
    store.audit(actor, "batch.manifest", batch.name, {"uid": batch.uid or "", "signoff": cosign is not None},
                batch_id=batch.id)
    manifest, object_ids = _manifest(station, batch, audit=_audit_log(station, batch),
                                     signoff=cosign.block if cosign else None)
    objects = []
    for oid in object_ids:
        rec = store.object(oid)
        objects.append(ObjectSource(id=oid, kind=rec.kind, sha256=rec.sha256, size=rec.size,
                                    ct_sha256=rec.ct_sha256, path=station.vault.path_of(oid)))
    if cosign is not None:
        sheet = cosign.sheet
        objects.append(ObjectSource(id=sheet.id, kind=sheet.kind, sha256=sheet.sha256, size=sheet.size,
                                    ct_sha256=sheet.ct_sha256, path=station.vault.path_of(sheet.id)))
    batch_recipient = str(station.batch_keys.recipient(batch.id))
    atomic.ensure_dir(station.config.outbox_dir)
    out = package_path(station, batch)
    info = write_package(out, manifest, objects, signing_key=station.key.signing_key,
                         recipients=[station.config.keys.portal_recipient, batch_recipient],
                         cosigners={"unit-head": cosign.cms_signer} if cosign else None)
    recorded = False
    try:
        # The manifest is kept in the vault too (batch key): the receipt is checked against it, document
        # by document, and it outlives the package file until purge.
        mref = station.vault.put(canonical_json(info.manifest), kind="manifest",
                                 batch_recipient=station.batch_keys.recipient(batch.id))
        manifest_obj = StoredObject(mref.id, "manifest", mref.sha256, mref.ct_sha256, mref.size)
        store.set_package(batch.id, info.package_id, out.name, info.sha256, info.size, manifest_obj, actor)
        recorded = True
        if cosign is None:
            store.set_batch_state(batch.id, BatchState.SEALED, actor)
        else:
            _record_signoff(station, batch, cosign, actor)
    except BaseException:
        with contextlib.suppress(OSError):
            out.unlink()
        if cosign is not None and recorded:  # the batch stays verified: no package record either
            with contextlib.suppress(Exception):  # the original error is the one to report
                store.drop_package(batch.id)
        raise
    if not station.config.upload.include_raw:
        _destroy_raw(station, batch, actor)
    log.info("sealed batch %s: %s (%d bytes)", name, out.name, info.size)
    return info


def _record_signoff(station: Station, batch: Batch, cosign: Cosign, actor: str) -> None:
    """One commit: the sheet object listed, verified -> signed -> sealed (store.record_signoff)."""
    sheet = StoredObject(cosign.sheet.id, cosign.sheet.kind, cosign.sheet.sha256, cosign.sheet.ct_sha256,
                         cosign.sheet.size)
    station.store.record_signoff(batch.id, sheet, {
        "certificate_sha256": cosign.block["signer"]["certificate_sha256"],
        "signed_at": cosign.block["signed_at"]}, actor)


def _trail(station: Station) -> AuditTrail:
    trail = station.audit
    if not isinstance(trail, AuditTrail):
        raise StateError("sealing needs the station's audit trail (its checkpoint goes into the package)")
    return trail


def acknowledged_checkpoint(station: Station, verifier: VerifierKey) -> SignedCheckpoint | None:
    """The largest checkpoint of this station's log that the portal acknowledged (in the receipts kept).

    Receipts were verified against the portal key when they arrived; the note must also verify with the
    station's own checkpoint key (a note that does not is skipped, with a warning).
    """
    best: SignedCheckpoint | None = None
    for row in station.store.uploads():
        if not row["receipt"]:
            continue
        note = receipt_audit_checkpoint(bytes(row["receipt"]))
        if note is None:
            continue
        try:
            cp = open_checkpoint(note, verifier, origin=verifier.name)
        except FormatError as e:
            log.warning("the receipt of batch %s acknowledges a checkpoint that does not verify: %s",
                        row["batch_name"], e)
            continue
        if best is None or cp.size > best.size:
            best = cp
    return best


def _pending_checkpoints(station: Station, batch: Batch, verifier: VerifierKey) -> list[SignedCheckpoint]:
    """The checkpoints of this station's other packages that are sealed but not yet acknowledged."""
    out = []
    for other in station.store.batches():
        if other.id == batch.id or other.state not in (BatchState.SEALED, BatchState.UPLOADING):
            continue
        try:
            note = package_manifest(station, other.id).get("audit_log", {}).get("checkpoint")
            if isinstance(note, str):
                out.append(open_checkpoint(note, verifier, origin=verifier.name))
        except (ScanStationError, FormatError, ValueError) as e:  # a wave-1 package has none: it is sealed again
            log.warning("batch %s: its package's audit checkpoint is not usable (%s)", other.name, e)
    return out


def _audit_log(station: Station, batch: Batch) -> dict[str, Any]:
    """The manifest's ``audit_head`` and ``audit_log``: the checkpoint signed now and the proofs to it."""
    trail = _trail(station)
    checkpoint = trail.checkpoint()  # raises AuditIntegrityError if the trail refuses to sign
    if checkpoint is None:
        raise StateError("the station is locked: its audit checkpoint cannot be signed for the package")
    verifier = VerifierKey.from_public_key(trail.origin, station.key.signing_key.public_key())
    acknowledged = acknowledged_checkpoint(station, verifier)
    bases: dict[int, SignedCheckpoint] = {}
    for base in [*([acknowledged] if acknowledged else []), *_pending_checkpoints(station, batch, verifier)]:
        what = ("the checkpoint the portal acknowledged" if base is acknowledged
                else "the checkpoint of a package sealed earlier")
        if base.size > checkpoint.size:
            raise AuditIntegrityError(f"the audit log has {checkpoint.size} entries, but {what} covers {base.size}: "
                                      "the log was cut back; the portal would refuse the package. "
                                      "Run `scanstation audit verify` and call the unit head")
        if trail.root(base.size) != base.root:
            raise AuditIntegrityError(f"the audit log no longer matches {what} (size {base.size}): it was "
                                      "rewritten; the portal would refuse the package. Run `scanstation audit verify`")
        if 0 < base.size < checkpoint.size:
            bases[base.size] = base
    chosen = [base for _, base in sorted(bases.items())]
    if len(chosen) > MAX_LOG_PROOFS:  # the acknowledged one and the latest packages sealed since
        first = [chosen[0]] if acknowledged is not None and chosen[0].size == acknowledged.size else []
        chosen = first + chosen[len(chosen) - (MAX_LOG_PROOFS - len(first)):]
    proofs = [(base, trail.consistency_proof(base.size, checkpoint.size)) for base in chosen]
    return audit_log_fields(verifier.text, checkpoint, proofs)


def _check_objects(station: Station, batch: Batch, pages: list[Page]) -> None:
    """Refuse (VaultIntegrityError naming the pages, 'rescan') a batch with a damaged page.

    Pages already flagged ``damaged``, and every page whose objects' encrypted files are missing or do not
    match their recorded hashes (checked without a key, as the package writer would, but before anything
    is written): those pages are flagged too.
    """
    from scanstation.facade import damaged_pages_error
    from scanstation.store.pages import DAMAGED_FLAG

    store = station.store
    destroyed = store.destroyed_object_ids()  # raw captures of an earlier seal (unsealed since): gone by design
    for p in pages:
        if DAMAGED_FLAG in p.flags:
            continue
        for kind, oid in (("raw", p.raw_object), ("image", p.image_object), ("compact", p.compact_object),
                          ("ocr_text", p.ocr_object), ("ocr_pdf", store.ocr_pdf_object(p.id))):
            if not oid or oid in destroyed:
                continue
            problem = station.vault.check_ciphertext(oid, store.object(oid).ct_sha256)
            if problem:
                station.page_damaged(p, kind, oid, problem)
                break
    damaged = store.damaged_pages(batch.id)
    if damaged:
        raise damaged_pages_error(batch.name, damaged, f"batch '{batch.name}' cannot be sealed")


def _signed_off(station: Station, batch: Batch) -> bool:
    try:
        return "signoff" in package_manifest(station, batch.id)
    except (ScanStationError, ValueError):
        return False


def unseal_batch(station: Station, name: str, actor: str) -> None:
    """Return a sealed (not yet uploading) batch: the package is deleted, pages kept.  Unsigned, it goes to
    the operator (RETURNED) and is closed, verified and approved again; signed off by the unit head, it goes
    back to verification (IN_VERIFICATION) and is approved and signed off again."""
    store = station.store
    batch = store.batch(name)
    if batch is None:
        raise StateError(f"there is no batch '{name}'")
    if batch.state is not BatchState.SEALED:
        raise StateError(f"batch '{name}' is {batch.state.value}; only a sealed batch can be unsealed")
    info = existing_package(station, batch) if store.package(batch.id) else None
    signed_off = _signed_off(station, batch)
    if signed_off:
        # A signed batch opens back only by a new verification: to the supervisors (IN_VERIFICATION), who
        # approve it again before the unit head signs it off again.
        store.set_batch_state(batch.id, BatchState.IN_VERIFICATION, actor)
    else:
        # Back to the operator (RETURNED): whatever changes now is closed and verified again before a new seal.
        store.return_batch(batch.id, actor, "unsealed")
    store.drop_package(batch.id)
    if info is not None:
        with contextlib.suppress(FileNotFoundError):
            info.path.unlink()
    for old in store.set_package_objects(batch.id, [], actor):  # the next seal makes its own
        station.vault.delete(old)


def _page_entry(p: Page, made: dict[tuple[int, str], str], position: int | None = None) -> dict[str, Any]:
    """A page's manifest entry.  ``raw`` and ``image`` name the one-page PDF/As made for the package
    (:func:`_package_pages`), null when the page travels only inside its ACR file's PDF (manifest /3)."""
    return {
        "seq": p.seq,
        "position": position if position is not None else p.position if p.position is not None else p.seq,
        "rotation": p.rotation,  # clockwise quarter turn set in verification (the PDF shows it turned)
        "side": str(p.side),
        "flags": list(p.flags),
        "ocr_state": str(p.ocr_state),
        "raw": made.get((p.id, "raw")),
        "image": made.get((p.id, "image")),
        "ocr_text": p.ocr_object,
    }


def _manifest(station: Station, batch: Batch, *, audit: dict[str, Any],
              signoff: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
    """The manifest (without ``objects``, which write_package fills) and the object ids, in order."""
    store = station.store
    order: list[str] = []
    seen: set[str] = set()

    def use(oid: str | None) -> None:
        if oid and oid not in seen:
            seen.add(oid)
            order.append(oid)

    made = store.package_objects(batch.id)
    docs_out = []
    filed: set[int] = set()
    for doc in store.documents(batch.id):
        doc_pages = store.document_pages(doc.id)  # live pages only, in reading order
        if not doc_pages:
            continue  # merged into another ACR file, or every page deleted in verification: nothing to file
        pdf = store.document_pdf(doc.id)
        use(pdf)
        entries = []
        for position, p in enumerate(doc_pages, start=1):
            filed.add(p.id)
            entry = _page_entry(p, made, position)
            for key in ("raw", "image", "ocr_text"):
                use(entry[key])
            entries.append(entry)
        docs_out.append({
            "id": f"doc-{doc.seq}", "seq": doc.seq, "employee_code": doc.employee_code,
            "employee_name": doc.employee_name, "rank": doc.rank, "acr_period": doc.acr_period,
            "page_count": len(entries), "pdf": pdf, "pages": entries,
        })
    unfiled = []
    all_pages = [p for p in store.pages(batch.id) if p.live]
    for p in all_pages:
        if p.id in filed:
            continue
        entry = _page_entry(p, made)
        for key in ("raw", "image", "ocr_text"):
            use(entry[key])
        unfiled.append(entry)
    cfg = station.config
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "software_version": __version__,
        "station": {"id": cfg.station.id, "unit": cfg.station.unit,
                    "recipient": str(station.batch_keys.recipient(batch.id))},
        "batch": {"uid": batch.uid or "", "name": batch.name, "unit": batch.unit, "operator": batch.operator,
                  "created_at": batch.created_at, "sealed_at": utc_now_rfc3339(), "page_count": len(all_pages)},
        **audit,  # audit_head and audit_log
        "documents": docs_out,
        "unfiled_pages": unfiled,
    }
    if signoff is not None:
        manifest["signoff"] = signoff  # inside the manifest: covered by the station's and the unit head's signature
    canonical_json(manifest)  # fail here, naming the field, rather than half-way through writing
    return manifest, order

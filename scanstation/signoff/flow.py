"""The unit head's sign-off of a verified batch: token, certificate, sheet, package - all or nothing.

:func:`signoff` opens the configured token with the PIN, checks its certificate
(:mod:`scanstation.signoff.certificates`), draws and signs the sign-off sheet
(:mod:`scanstation.signoff.sheet`), stores it in the vault (kind ``signoff_sheet``, encrypted like every
object) and seals the batch with the unit head's detached CMS over the manifest as ``signatures/unit-head.json``
(docs/plans/issue-15.md).  The batch moves verified -> signed -> sealed in one commit after both signatures and
the package are written (:func:`scanstation.seal.sealing.seal_signed`).  Any failure on the way - token pulled
out, wrong PIN, a refused certificate - leaves the batch VERIFIED, no package and no sheet, and the attempt is
audited with the reason (never the PIN).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from batchformat import PackageInfo
from scanstation.domain import BatchState
from scanstation.errors import ScanStationError, StateError, TokenError
from scanstation.signoff.sheet import SheetData, SheetFile

if TYPE_CHECKING:
    from scanstation.facade import Station
    from scanstation.people.accounts import People

log = logging.getLogger(__name__)

Progress = Callable[[str, dict[str, Any]], None]
UNIT_HEAD_FORMAT = "cms-detached-1"


@dataclass(frozen=True)
class SignoffResult:
    batch: str
    package: str
    package_sha256: str
    signer_subject: str
    signer_issuer: str
    signer_serial: str
    certificate_sha256: str
    sheet_object: str
    sheet_sha256: str
    signed_at: str

    def as_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- what the unit head sees and signs
def batch_summary(station: Station, name: str) -> dict[str, Any]:
    """The verified batch as the unit head reviews it: ACR files (employee, period, pages, the PDF digest once
    assembled), flags and their verdicts, who scanned, verified and approved."""
    store = station.store
    batch = store.batch(name)
    if batch is None:
        raise StateError(f"there is no batch '{name}'")
    pages = store.pages(batch.id)
    live = [p for p in pages if p.live]
    verdicts = store.page_verdicts(batch.id)
    files = []
    for doc in store.document_rows(batch.id):
        doc_pages = store.document_pages(doc.id)
        if not doc_pages:
            continue
        pdf = store.document_pdf(doc.id)
        judged = store.flag_verdicts(doc.id)
        files.append({
            "seq": doc.seq, "employee_code": doc.employee_code, "employee_name": doc.employee_name,
            "rank": doc.rank, "period": doc.acr_period, "pages": len(doc_pages),
            "pdf_sha256": store.object(pdf).sha256 if pdf else None,
            "flags": [{"flag": f, "verdict": judged[f].verdict if f in judged else None,
                       "reason": judged[f].reason if f in judged else "",
                       "given_by": judged[f].given_by if f in judged else ""} for f in doc.flags],
        })
    page_flags = []
    for p in live:
        if not p.flags:
            continue
        v = verdicts.get(p.id)
        page_flags.append({"seq": p.seq, "flags": list(p.flags), "verdict": v.verdict if v else None,
                           "reason": v.reason if v else "", "given_by": v.given_by if v else ""})
    marks = store.batch_marks(batch.id)
    return {
        "name": batch.name, "uid": batch.uid or "", "state": batch.state.value, "unit": batch.unit,
        "station": station.config.station.id, "pages": len(live), "files": files, "page_flags": page_flags,
        "scanned_by": sorted({n for n in store.captured_by(batch.id).values() if n}),
        "opened_by": batch.operator, "closed_by": marks.get("closed_by") or "", "closed_at": marks.get("closed_at"),
        "verified_by": sorted(store.verified_by(batch.id)), "approved_by": marks.get("approved_by") or "",
        "approved_at": marks.get("approved_at"),
    }


def _flag_line(f: dict[str, Any]) -> str:
    verdict = f.get("verdict") or "not judged"
    reason = f" ({f['reason']})" if f.get("reason") else ""
    by = f" - by {f['given_by']}" if f.get("given_by") else ""
    return f"{f['flag']}: {verdict}{reason}{by}"


def sheet_data(summary: dict[str, Any], *, unit_head: str, signer_subject: str, signed_at: str) -> SheetData:
    files = [SheetFile(seq=f["seq"], employee_code=f["employee_code"], employee_name=f["employee_name"],
                       period=f["period"], pages=f["pages"], pdf_sha256=f["pdf_sha256"] or "-",
                       flags=[_flag_line(x) for x in f["flags"]]) for f in summary["files"]]
    page_flags = [f"page {p['seq']}: {', '.join(p['flags'])} -> {p['verdict'] or 'not judged'}"
                  + (f" ({p['reason']})" if p["reason"] else "") + (f" - by {p['given_by']}" if p["given_by"] else "")
                  for p in summary["page_flags"]]
    return SheetData(unit=summary["unit"], station_id=summary["station"], batch_name=summary["name"],
                     batch_uid=summary["uid"], files=files, page_flags=page_flags, scanned_by=summary["scanned_by"],
                     closed_by=summary["closed_by"], closed_at=summary["closed_at"] or "",
                     verified_by=summary["verified_by"], approved_by=summary["approved_by"],
                     approved_at=summary["approved_at"] or "", unit_head=unit_head, signer_subject=signer_subject,
                     signed_at=signed_at)


# ---------------------------------------------------------------- the flow
def _signing_errors() -> tuple[type[BaseException], ...]:
    import pkcs11
    from pyhanko.sign.general import SigningError

    return (pkcs11.PKCS11Error, SigningError)


def signoff(station: Station, name: str, actor: str, pin: str, *, people: People,
            progress: Progress | None = None) -> SignoffResult:
    """Sign batch ``name`` off as unit head ``actor`` with the token's ``pin``, and seal it (see the module)."""
    emit = progress or (lambda kind, data: None)
    store = station.store
    batch = store.batch(name)
    if batch is None:
        raise StateError(f"there is no batch '{name}'")
    if batch.state is not BatchState.VERIFIED:
        raise StateError(f"batch '{name}' is {batch.state.value}; only a verified batch can be signed off "
                         "(a supervisor verifies and approves it first)")
    store.audit(actor, "signoff.start", batch.name, {}, batch_id=batch.id)
    try:
        return _signoff(station, name, actor, pin, people, emit)
    except ScanStationError as e:
        store.audit(actor, "signoff.failed", batch.name, {"reason": e.message[:500],
                                                         "error": type(e).__name__}, batch_id=batch.id)
        raise
    except Exception as e:
        store.audit(actor, "signoff.failed", batch.name, {"error": type(e).__name__}, batch_id=batch.id)
        raise


def _signoff(station: Station, name: str, actor: str, pin: str, people: People, emit: Progress) -> SignoffResult:
    from scanstation.people.certificates import binding
    from scanstation.seal.sealing import Cosign, prepare_batch, seal_signed
    from scanstation.signoff.certificates import certificate_sha256, check_signer
    from scanstation.signoff.sheet import build_sheet_pdf, pkcs11_signer, sign_manifest, sign_sheet
    from scanstation.signoff.token import open_token, token_failure

    cfg = station.config.signoff
    failures = _signing_errors()
    batch = prepare_batch(station, name, actor)  # PDFs assembled (the sheet lists their digests), uid fixed
    summary = batch_summary(station, name)
    emit("token", {"batch": name, "token": cfg.token_label or cfg.token_serial or "(the only token)"})
    with open_token(cfg, pin) as token:
        emit("certificate", {"batch": name, "token": token.label})
        checked = check_signer(token.certificate, token.others, trust_roots=cfg.trust_roots,
                               bound=binding(people, actor), unit_head=actor)
        signer_id = checked.info
        signed_at = datetime.now(UTC).replace(microsecond=0)
        stamp = rfc3339(signed_at)
        emit("sheet", {"batch": name, "signer": signer_id.subject})
        data = sheet_data(summary, unit_head=actor, signer_subject=signer_id.subject, signed_at=stamp)
        unsigned = build_sheet_pdf(data, station.ramdir.path, created=signed_at)
        signer = pkcs11_signer(token, checked.chain)
        try:
            signed_pdf = sign_sheet(unsigned, signer, unit=summary["unit"], signer_name=signer_id.subject,
                                    tsa_url=cfg.tsa_url)
        except failures as e:
            raise token_failure(e, "the sign-off sheet's signature") from e
        sheet = station.vault.put(signed_pdf, kind="signoff_sheet",
                                  batch_recipient=station.batch_keys.recipient(batch.id))
        cert_sha = certificate_sha256(token.certificate)

        def unit_head_member(manifest: bytes) -> dict[str, Any]:
            try:
                cms = sign_manifest(manifest, signer, signed_at)
            except failures as e:
                raise token_failure(e, "the manifest's signature") from e
            return {"signer": "unit-head", "format": UNIT_HEAD_FORMAT, "cms": base64.b64encode(cms).decode("ascii"),
                    "certificate_sha256": cert_sha}

        block = {"sheet": sheet.id, "signer": signer_id.as_dict(), "signed_at": stamp, "unit_head": actor}
        try:
            emit("package", {"batch": name})
            info: PackageInfo = seal_signed(station, batch, actor, Cosign(sheet, block, unit_head_member))
        except BaseException:
            station.vault.delete(sheet.id)  # never listed: nothing of the attempt stays
            raise
    result = SignoffResult(batch=name, package=str(info.path), package_sha256=info.sha256,
                           signer_subject=signer_id.subject, signer_issuer=signer_id.issuer,
                           signer_serial=signer_id.serial, certificate_sha256=cert_sha, sheet_object=sheet.id,
                           sheet_sha256=sheet.sha256, signed_at=stamp)
    log.info("batch %s signed off by %s (%s) and sealed", name, actor, signer_id.subject)
    return result


__all__ = ["SignoffResult", "TokenError", "batch_summary", "sheet_data", "signoff"]

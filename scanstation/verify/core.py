"""Verification's rules: closing a batch, page and flag verdicts, assembly fixes, approval and return.

Callers (the CLI, the service operations) have already checked the person's permission (the matrix and
four eyes, :mod:`scanstation.service.ops_verification`); the functions here check the batch's state and
the request, change the store (each change one audited transaction) and explain refusals.

``station`` is the open :class:`scanstation.facade.Station` (its store, vault and configuration); the
functions take it as ``Any`` so that this package does not import the facade (which imports it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scanstation.domain import CAPTURE_STATES, Batch, BatchState, OcrState, Page, PageState
from scanstation.errors import StateError, VerificationIncomplete
from scanstation.store.pages import DAMAGED_FLAG
from scanstation.verify.images import check_rotation
from scanstation.verify.verdicts import FLAG_VERDICTS, NEED_REASON, PAGE_VERDICTS, ROTATE_VERDICTS

MAX_REASON = 300
# States in which the supervisors' queue shows a batch (verified/signed: the unit head may still return it).
QUEUE_STATES = (BatchState.CLOSED, BatchState.IN_VERIFICATION, BatchState.RETURNED, BatchState.VERIFIED,
                BatchState.SIGNED)
# How many pages a refusal names before it only counts them.
NAMED = 10


def find_batch(station: Any, name: str) -> Batch:
    batch: Batch | None = station.store.batch(name)
    if batch is None:
        raise StateError(f"no batch called '{name}'")
    return batch


def clean_reason(reason: str | None, *, required: bool, what: str) -> str:
    text = " ".join((reason or "").split())
    if required and not text:
        raise StateError(f"{what} needs a reason (--reason: one of the configured reasons, "
                         "'scanstation verification reasons', or your own words)")
    if len(text) > MAX_REASON:
        raise StateError(f"the reason for {what} is {len(text)} characters long; at most {MAX_REASON}")
    return text


def _seqs(pages: list[Page]) -> str:
    named = ", ".join(str(p.seq) for p in pages[:NAMED])
    return named + (f" and {len(pages) - NAMED} more" if len(pages) > NAMED else "")


def processing(pages: list[Page]) -> list[Page]:
    """Pages still being cleaned or read (OCR pending)."""
    return [p for p in pages if p.state is not PageState.PROCESSED or p.ocr_state is OcrState.PENDING]


# ---------------------------------------------------------------------------------------------- batch moves
def close_batch(station: Any, batch_name: str, actor: str) -> dict[str, Any]:
    """SCANNING or RETURNED -> CLOSED.  Refused while pages are still being cleaned (the supervisor would
    get pages nobody can look at yet); pages still being read (OCR) are reported, not refused."""
    batch = find_batch(station, batch_name)
    if batch.state not in CAPTURE_STATES:
        raise StateError(f"batch '{batch.name}' is {batch.state.value}; only a batch in capture (scanning, or "
                         "returned for rescans) can be closed")
    pages = [p for p in station.store.pages(batch.id) if p.live]
    if not pages:
        raise StateError(f"batch '{batch.name}' has no pages: nothing to close")
    cleaning = [p for p in pages if p.state is not PageState.PROCESSED and DAMAGED_FLAG not in p.flags]
    if cleaning:
        raise StateError(f"batch '{batch.name}': {len(cleaning)} page(s) still being cleaned "
                         f"(pages {_seqs(cleaning)}); close it once they are (scanstation process)")
    # Rescans not done are reported, not refused: a page that cannot be rescanned (lost, torn) is the
    # supervisor's to decide (delete it with a reason); their verdict keeps blocking approval meanwhile.
    outstanding = rescans(station, batch)
    station.store.close_batch(batch.id, actor)
    reading = [p for p in pages if p.ocr_state is OcrState.PENDING]
    return {"state": BatchState.CLOSED.value, "processing": len(reading),
            "rescans_outstanding": [r["seq"] for r in outstanding]}


def return_batch(station: Any, batch_name: str, actor: str, reason: str, *, unit_head: bool) -> dict[str, Any]:
    """Back to the operator, with the reason kept.  A supervisor returns a closed, in-verification or
    verified batch; the unit head one that is verified or signed (one they refuse to sign)."""
    batch = find_batch(station, batch_name)
    text = clean_reason(reason, required=True, what="returning a batch")
    allowed = ((BatchState.VERIFIED, BatchState.SIGNED) if unit_head
               else (BatchState.CLOSED, BatchState.IN_VERIFICATION, BatchState.VERIFIED))
    if batch.state not in allowed:
        who = "the unit head" if unit_head else "a supervisor"
        raise StateError(f"batch '{batch.name}' is {batch.state.value}; {who} returns a batch that is "
                         + " or ".join(s.value for s in allowed))
    station.store.return_batch(batch.id, actor, text)
    return {"state": BatchState.RETURNED.value}


@dataclass
class Readiness:
    """What stands between a batch and its approval by one supervisor."""

    total: int = 0  # live pages
    seen: int = 0  # of them served to the approver
    blockers: list[str] = field(default_factory=list)

    @property
    def can_approve(self) -> bool:
        return not self.blockers


def readiness(station: Any, batch: Batch, approver: str) -> Readiness:
    """Every rule of approval but the permission ones, each unmet one as a sentence naming pages by seq."""
    store = station.store
    pages = store.pages(batch.id)
    live = [p for p in pages if p.live]
    verdicts = store.page_verdicts(batch.id)
    seen = store.pages_seen(batch.id, approver)
    out = Readiness(total=len(live), seen=sum(1 for p in live if p.id in seen))
    if batch.state not in (BatchState.CLOSED, BatchState.IN_VERIFICATION):
        out.blockers.append(f"the batch is {batch.state.value}: only a closed batch in verification is approved")
    if not live:
        out.blockers.append("the batch has no pages left")
    unseen = [p for p in live if p.id not in seen]
    if unseen:
        out.blockers.append(f"{len(unseen)} of {len(live)} page(s) not yet shown to {approver}: {_seqs(unseen)}")
    no_verdict = [p for p in live if p.id not in verdicts]
    if no_verdict:
        out.blockers.append(f"{len(no_verdict)} page(s) without a verdict: {_seqs(no_verdict)}")
    rescan = [p for p in live if p.id in verdicts and verdicts[p.id].verdict == "rescan"]
    if rescan:
        out.blockers.append(f"{len(rescan)} page(s) to be rescanned (return the batch): {_seqs(rescan)}")
    damaged = [p for p in live if DAMAGED_FLAG in p.flags]
    if damaged:
        out.blockers.append(f"{len(damaged)} damaged page(s) to be rescanned: {_seqs(damaged)}")
    busy = [p for p in processing(live) if DAMAGED_FLAG not in p.flags]
    if busy:
        out.blockers.append(f"{len(busy)} page(s) still being processed (cleaning or OCR): {_seqs(busy)}")
    for doc in store.document_rows(batch.id):
        if not any(p.document_id == doc.id for p in live):
            continue  # every page deleted or moved away: an empty file is not packaged, nothing to judge
        judged = store.flag_verdicts(doc.id)
        missing = [f for f in doc.flags if f not in judged]
        rejected = [f for f in doc.flags if f in judged and judged[f].verdict != "accepted"]
        if missing:
            out.blockers.append(f"ACR file {doc.seq}: flag(s) without a verdict: {', '.join(missing)}")
        if rejected:
            out.blockers.append(f"ACR file {doc.seq}: flag(s) rejected (re-index the file or return the batch): "
                                f"{', '.join(rejected)}")
    return out


def approve(station: Any, batch_name: str, actor: str) -> dict[str, Any]:
    """CLOSED/IN_VERIFICATION -> VERIFIED, or VerificationIncomplete naming everything still missing."""
    batch = find_batch(station, batch_name)
    ready = readiness(station, batch, actor)
    if not ready.can_approve:
        raise VerificationIncomplete(f"batch '{batch.name}' cannot be approved by {actor} yet: "
                                     + "; ".join(ready.blockers))
    station.store.approve_batch(batch.id, actor, {"pages": ready.total, "seen": ready.seen})
    return {"state": BatchState.VERIFIED.value}


# ---------------------------------------------------------------------------------------------- verdicts
def _verifiable(batch: Batch) -> None:
    if batch.state not in (BatchState.CLOSED, BatchState.IN_VERIFICATION, BatchState.VERIFIED, BatchState.SIGNED):
        raise StateError(f"batch '{batch.name}' is {batch.state.value}: pages are verified once it is closed "
                         "(scanstation batch close) and until it is sealed")


def review(station: Any, batch_name: str, seq: int, verdict: str, reason: str | None, actor: str, *,
           via: str = "screen") -> Page:
    """One page's verdict.  ``via="script"``: the CLI's scripted QC (the page counts as served, how=script)."""
    if verdict not in PAGE_VERDICTS:
        raise StateError(f"verdict {verdict!r}: expected one of {', '.join(PAGE_VERDICTS)}")
    batch = find_batch(station, batch_name)
    _verifiable(batch)
    page = station.store.page_by_seq(batch.id, seq)
    if page.replaced_by is not None:
        raise StateError(f"page {seq} of batch '{batch.name}' was replaced by a rescan; review the new page")
    text = clean_reason(reason, required=verdict in NEED_REASON, what=f"verdict '{verdict}' on page {seq}")
    rotation = ROTATE_VERDICTS.get(verdict)
    if rotation is not None:
        check_rotation(rotation)
    station.store.set_page_verdict(page, verdict, text, actor, rotation=rotation, delete=verdict == "delete",
                                   restore=verdict != "delete" and verdict != "rescan", via=via)
    return station.store.page(page.id)


def flag_verdict(station: Any, batch_name: str, document_id: int, flag: str, verdict: str, reason: str | None,
                 actor: str) -> None:
    if verdict not in FLAG_VERDICTS:
        raise StateError(f"flag verdict {verdict!r}: expected accepted or rejected")
    batch = find_batch(station, batch_name)
    _verifiable(batch)
    doc = station.store.document_row(document_id)
    if doc.batch_id != batch.id:
        raise StateError(f"ACR file {document_id} is not part of batch '{batch.name}'")
    if flag not in doc.flags:
        raise StateError(f"ACR file {doc.seq} has no flag {flag!r} (its flags: {', '.join(doc.flags) or 'none'})")
    text = clean_reason(reason, required=verdict == "rejected", what=f"rejecting flag {flag}")
    station.store.set_flag_verdict(document_id, flag, verdict, text, actor)


# ---------------------------------------------------------------------------------------------- assembly
def move_page(station: Any, batch_name: str, seq: int, document_id: int, position: int, actor: str) -> None:
    """A supervisor moves a page to another ACR file, or to another position in its own (reorder)."""
    batch = find_batch(station, batch_name)
    _verifiable(batch)
    page = station.store.page_by_seq(batch.id, seq)
    station.store.place_page(page, document_id, position, actor, action="page.move", verifying=True)


def insert_page(station: Any, batch_name: str, seq: int, document_id: int, position: int, actor: str) -> None:
    """The operator puts a page just captured (a rescan of a missing page) into an ACR file at a position."""
    batch = find_batch(station, batch_name)
    if batch.state not in CAPTURE_STATES:
        raise StateError(f"batch '{batch.name}' is {batch.state.value}: pages are inserted while it is in capture")
    page = station.store.page_by_seq(batch.id, seq)
    station.store.place_page(page, document_id, position, actor, action="page.insert", verifying=False)


def unfiled_pages(station: Any, batch_name: str, seqs: list[int]) -> list[Page]:
    """Pages ``seqs`` (scanned without an ACR file) in seq order, once each is known to be a live, unfiled page
    of this batch and the batch is in capture; else a StateError naming the first page that is not.  Called
    before an ACR file is created for them, so a refusal leaves nothing behind."""
    batch = find_batch(station, batch_name)
    if batch.state not in CAPTURE_STATES:
        raise StateError(f"batch '{batch.name}' is {batch.state.value}: pages are filed into ACR files while "
                         "it is in capture")
    if not seqs:
        raise StateError("no pages given to file")
    store = station.store
    pages: list[Page] = []
    for seq in sorted(set(seqs)):
        page: Page = store.page_by_seq(batch.id, seq)  # "no page N in batch ..." for another batch's seq
        if page.deleted_reason:
            raise StateError(f"page {seq} of batch '{batch.name}' was deleted: it is not filed")
        if page.replaced_by is not None:
            raise StateError(f"page {seq} of batch '{batch.name}' was replaced by a rescan: file the new page")
        if page.document_id is not None:
            raise StateError(f"page {seq} of batch '{batch.name}' is already in ACR file "
                             f"{store.document(page.document_id).seq}")
        pages.append(page)
    return pages


# Past the end of any ACR file: place_page puts the page last.
_LAST = 1 << 30


def file_pages(station: Any, pages: list[Page], document_id: int, actor: str) -> list[int]:
    """The operator files pages scanned without an ACR file (checked by :func:`unfiled_pages`) at the end of
    ACR file ``document_id``, in the order given; each move is audited (``page.file``).  Their seqs."""
    for page in pages:
        station.store.place_page(page, document_id, _LAST, actor, action="page.file", verifying=False,
                                 only_unfiled=True)
    return [p.seq for p in pages]


def replace_page(station: Any, batch_name: str, old_seq: int, new_seq: int, actor: str) -> Page:
    """The operator's rescan ``new_seq`` takes page ``old_seq``'s ACR file and position."""
    old = check_placement(station, batch_name, old_seq)  # in capture, live
    store = station.store
    new = store.page_by_seq(old.batch_id, new_seq)
    if not new.live:
        raise StateError(f"page {new_seq} was deleted or replaced itself: it cannot replace page {old_seq}")
    if new.seq <= old.seq:
        # a rescan is scanned after the page it replaces: an older page is another record, never a rescan
        raise StateError(f"page {new_seq} was scanned before page {old_seq}: only a page scanned after it can "
                         "replace it")
    store.replace_page(old, new, actor)
    return store.page(new.id)


def check_placement(station: Any, batch_name: str, seq: int) -> Page:
    """Before a rescan is captured: page ``seq`` exists, is live, is filed, and its batch is in capture."""
    batch = find_batch(station, batch_name)
    if batch.state not in CAPTURE_STATES:
        raise StateError(f"batch '{batch.name}' is {batch.state.value}: rescans go into a batch in capture "
                         "(returned by the supervisor)")
    page: Page = station.store.page_by_seq(batch.id, seq)
    if not page.live:
        raise StateError(f"page {seq} of batch '{batch.name}' was already "
                         + ("replaced by a rescan" if page.replaced_by is not None else "deleted"))
    return page


def insert_before(station: Any, batch_name: str, before_seq: int, new_seqs: list[int], actor: str) -> None:
    """The operator's pages ``new_seqs`` (just captured) go into page ``before_seq``'s ACR file, before it."""
    before = check_placement(station, batch_name, before_seq)
    if before.document_id is None:
        raise StateError(f"page {before_seq} is in no ACR file: nothing to insert into")
    store = station.store
    for seq in new_seqs:
        page = store.page_by_seq(before.batch_id, seq)
        position = store.page(before.id).position or 1
        store.place_page(page, before.document_id, position, actor, action="page.insert", verifying=False)


def split_document(station: Any, batch_name: str, document_id: int, at_seq: int, actor: str) -> int:
    batch = find_batch(station, batch_name)
    _verifiable(batch)
    at = station.store.page_by_seq(batch.id, at_seq)
    return int(station.store.split_document(document_id, at, actor))


def merge_documents(station: Any, batch_name: str, document_id: int, into: int, actor: str) -> None:
    batch = find_batch(station, batch_name)
    _verifiable(batch)
    station.store.merge_documents(document_id, into, batch.id, actor)


def reindex(station: Any, batch_name: str, document_id: int, employee_code: str, period: str,
            not_in_roster: str | None, actor: str, *, duplicate_reason: str | None = None) -> None:
    """A supervisor corrects an ACR file's index during verification: checked against the roster again
    (:func:`scanstation.roster.index_check.check_index`, which raises NotInRoster, DuplicateAcr or
    StateError unless a reason is given), stored with its new flags; the file's flag verdicts are cleared
    (its flags are judged again).  This is verifying, not capturing: the supervisor may still approve."""
    from scanstation.roster.index_check import check_index

    batch = find_batch(station, batch_name)
    _verifiable(batch)
    store = station.store
    doc = store.document_row(document_id)
    if doc.batch_id != batch.id:
        raise StateError(f"ACR file {document_id} is not part of batch '{batch.name}'")
    if doc.removed:
        raise StateError(f"ACR file {doc.seq} was removed ({doc.removed})")
    result = check_index(store, employee_code=employee_code, period=period, not_in_roster=not_in_roster,
                         batch_id=batch.id, exclude_document=document_id, duplicate_reason=duplicate_reason)
    store.mark_verifying(batch.id, actor)
    store.set_document_index(document_id, actor, **result.index_fields())
    store.clear_flag_verdicts(document_id, actor)


# ---------------------------------------------------------------------------------------------- views
def rescans(station: Any, batch: Batch) -> list[dict[str, Any]]:
    """Pages of ``batch`` with an outstanding rescan verdict (not yet replaced), for the operator."""
    verdicts = station.store.page_verdicts(batch.id)
    out = []
    for p in station.store.pages(batch.id):
        v = verdicts.get(p.id)
        if v is not None and v.verdict == "rescan" and p.live:
            out.append({"batch": batch.name, "seq": p.seq, "document_id": p.document_id, "position": p.position,
                        "reason": v.reason, "given_by": v.given_by, "given_at": v.given_at})
    return out


def page_row(page: Page, verdict: Any, seen: dict[int, str]) -> dict[str, Any]:
    return {
        "id": page.id, "seq": page.seq, "document_id": page.document_id, "position": page.position,
        "flags": list(page.flags), "analysis": page.analysis, "state": page.state.value,
        "verdict": verdict.verdict if verdict else None, "reason": verdict.reason if verdict else "",
        "rotation": page.rotation, "deleted": page.deleted_reason, "replaced_by": page.replaced_by,
        "seen_by_me": page.id in seen, "ocr": page.ocr_state.value,
    }


def document_row(station: Any, doc: Any, live_pages: int) -> dict[str, Any]:
    judged = station.store.flag_verdicts(doc.id)
    return {
        "id": doc.id, "seq": doc.seq, "employee_code": doc.employee_code, "employee_name": doc.employee_name,
        "rank": doc.rank, "acr_period": doc.acr_period, "flags": list(doc.flags),
        "flag_verdicts": {f: {"verdict": v.verdict, "reason": v.reason, "given_by": v.given_by}
                          for f, v in judged.items()},
        "not_in_roster": doc.not_in_roster, "pages": live_pages,
    }


def batch_detail(station: Any, batch_name: str, viewer: str) -> dict[str, Any]:
    """The batch for the supervisor's screen: ACR files, pages in reading order, what approval still needs."""
    batch = find_batch(station, batch_name)
    store = station.store
    pages = store.pages(batch.id)
    docs = store.document_rows(batch.id)
    verdicts = store.page_verdicts(batch.id)
    seen = store.pages_seen(batch.id, viewer)
    doc_order = {d.id: i for i, d in enumerate(docs)}
    ordered = sorted(pages, key=lambda p: (doc_order.get(p.document_id, len(docs)) if p.document_id else len(docs),
                                           p.position if p.position is not None else p.seq, p.seq))
    ready = readiness(station, batch, viewer)
    return {
        "name": batch.name, "state": batch.state.value, "operator": batch.operator,
        "documents": [document_row(station, d, sum(1 for p in pages if p.document_id == d.id and p.live))
                      for d in docs],
        "pages": [page_row(p, verdicts.get(p.id), seen) for p in ordered],
        "seen": ready.seen, "total": ready.total, "blockers": ready.blockers, "can_approve": ready.can_approve,
        "returns": store.batch_returns(batch.id),
    }


def review_queue(station: Any) -> list[dict[str, Any]]:
    store = station.store
    out = []
    for b in store.batches():
        if b.state not in QUEUE_STATES:
            continue
        pages = [p for p in store.pages(b.id) if p.live]
        docs = store.document_rows(b.id)
        out.append({
            "name": b.name, "state": b.state.value, "pages": len(pages), "documents": len(docs),
            "flagged": sum(1 for p in pages if p.flags) + sum(1 for d in docs if d.flags),
            "operator": b.operator, "closed_at": store.batch_marks(b.id).get("closed_at"),
        })
    out.sort(key=lambda r: (r["closed_at"] or "", r["name"]))
    return out


def page_text(station: Any, batch_name: str, seq: int) -> dict[str, Any]:
    batch = find_batch(station, batch_name)
    page = station.store.page_by_seq(batch.id, seq)
    text = ""
    if page.ocr_object and page.ocr_sha256 and page.ocr_state is OcrState.DONE:
        text = station.vault.get(page.ocr_object, page.ocr_sha256).decode("utf-8", "replace")
    return {"text": text, "state": page.ocr_state.value}

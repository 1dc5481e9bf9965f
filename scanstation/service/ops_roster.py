"""Service operations (issue 14) for the roster: search by code or name (Devanagari or Latin), the index check
at entry, indexing an ACR file, and OCR index suggestions matched against the roster.

``roster_search`` {query, limit?} -> [{employee_code, name_hi, name_en, rank, unit, active, score, matched}]
    READ_ROSTER (operator, supervisor, unit head).  Not audited: a screen searches as the operator types.
``index_check`` {batch, employee_code, period, not_in_roster?, duplicate_reason?, document_id?}
    -> {ok, refused: "not_in_roster"|"duplicate"|"bad_period"|None, message, flags, duplicates, employee, period}
    Nothing is written: the operator's screen shows the answer before the file is created.
``index_document`` {batch, document_id?, pages?, employee_code, period, not_in_roster?, duplicate_reason?, name?,
    rank?} -> {document: {...}, flags, duplicates, employee, pages_filed}.  Without ``document_id`` the ACR file
    is created (or the batch's file of that employee and period continued); with it the file is indexed again
    (the operator confirming a cover sheet's or a suggestion's index, a supervisor correcting one).
    ``pages`` (seqs, without ``document_id``): pages scanned without an ACR file ("scan first, index after"):
    each must be a live, unfiled page of this batch in capture, checked before anything is created; they go
    at the end of the file, in seq order (``pages_filed``, [] without ``pages``).  Refusals are the errors
    NotInRoster (27), DuplicateAcr (28), StateError (a bad period, a page that cannot be filed).
``index_suggestions`` {batch, document_id | seqs} -> {suggestions, candidates, period, needs_confirmation: true,
    pages_read}.  The OCR's reading of the file's first pages (or of the first 3 of the unfiled pages
    ``seqs``, checked as for ``index_document``) and the roster people it points to; never applied.

Permissions: INDEX with the batch's facts (an operator: their own batch in capture); for a batch that does
not exist yet, SCAN (the operator's first ACR file creates it).  The logic lives in
:mod:`scanstation.roster` (index_check, indexing, search, suggest).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scanstation.errors import DuplicateAcr, NotInRoster, StateError
from scanstation.people.roles import Action
from scanstation.service.op_types import Emit, Operations, int_arg, text_arg

if TYPE_CHECKING:
    from scanstation.service.core import Caller, StationService

MAX_LIMIT = 50


def _optional_text(a: dict[str, Any], key: str) -> str | None:
    value = a.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise StateError(f"request field '{key}' must be text")
    return value


def _index_fields(a: dict[str, Any]) -> tuple[str, str, str | None, str | None]:
    """(employee code, period, not-in-roster reason, duplicate reason) of an index request."""
    return (text_arg(a, "employee_code"), text_arg(a, "period"), _optional_text(a, "not_in_roster"),
            _optional_text(a, "duplicate_reason"))


def _station_for_index(s: StationService, c: Caller, batch: str) -> Any:
    """The open station for indexing in ``batch``: INDEX with its facts, or SCAN when it does not exist yet."""
    station = s.station(c, Action.STATUS)  # locked -> StationLocked before anything else
    if station.store.batch(batch) is None:
        return s.station(c, Action.SCAN)
    return s.station(c, Action.INDEX, s.batch_facts(batch))


def _document_of(station: Any, batch: str, doc_id: int) -> Any:
    b = station.store.batch(batch)
    docs = {d.id: d for d in station.store.documents(b.id)} if b is not None else {}
    if doc_id not in docs:
        raise StateError(f"no ACR file with id {doc_id} in batch '{batch}'")
    return docs[doc_id]


def _seqs_arg(a: dict[str, Any], key: str) -> list[int] | None:
    """A request's list of page seqs (None when absent); a bad one is refused before anything is read."""
    value = a.get(key)
    if value is None:
        return None
    if (not isinstance(value, list) or not value
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise StateError(f"request field '{key}' must be a list of page numbers (seq)")
    if a.get("document_id") is not None:
        raise StateError(f"request field '{key}' goes without 'document_id': the pages are scanned without an ACR "
                         "file and the index creates (or continues) theirs")
    return list(value)


def _document_dict(d: Any) -> dict[str, Any]:
    return {"id": d.id, "seq": d.seq, "employee_code": d.employee_code, "employee_name": d.employee_name,
            "rank": d.rank, "acr_period": d.acr_period, "period_start": d.period_start, "period_end": d.period_end,
            "not_in_roster": d.not_in_roster, "flags": list(d.flags), "duplicate_reason": d.duplicate_reason}


def _op_roster_search(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    from scanstation.roster.search import search_roster

    assert c is not None
    limit = a.get("limit", 10)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise StateError(f"request field 'limit' must be a whole number from 1 to {MAX_LIMIT}")
    station = s.station(c, Action.READ_ROSTER)
    return [m.as_dict() for m in search_roster(station.store, text_arg(a, "query"), limit=limit)]


def _op_index_check(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    from scanstation.roster.index_check import check_index
    from scanstation.roster.indexing import check_entry

    assert c is not None
    batch = text_arg(a, "batch")
    station = _station_for_index(s, c, batch)  # permission first: a refusal is audited whatever else is wrong
    code, period, nir, dup = _index_fields(a)
    try:
        if a.get("document_id") is not None:
            doc = _document_of(station, batch, int_arg(a, "document_id"))
            check = check_index(station.store, employee_code=code, period=period, batch_id=doc.batch_id,
                                exclude_document=doc.id, not_in_roster=nir, duplicate_reason=dup)
        else:
            check, _continued = check_entry(station.store, batch, employee_code=code, period=period,
                                            not_in_roster=nir, duplicate_reason=dup)
    except (NotInRoster, DuplicateAcr, StateError) as e:
        refused = ("not_in_roster" if isinstance(e, NotInRoster) else "duplicate" if isinstance(e, DuplicateAcr)
                   else "bad_period")
        return {"ok": False, "refused": refused, "message": e.message, "flags": [], "duplicates": [],
                "employee": None, "period": None}
    return {"ok": True, "refused": None, "message": "", "flags": check.flags,
            "duplicates": [d.as_dict() for d in check.duplicates],
            "employee": check.employee.as_dict() if check.employee is not None else None,
            "period": check.period.as_dict()}


def _op_index_document(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    from scanstation.roster.indexing import audit_refusal, check_entry, open_checked_document, reindex_document
    from scanstation.verify.core import file_pages, unfiled_pages

    assert c is not None
    batch = text_arg(a, "batch")
    station = _station_for_index(s, c, batch)  # permission first: a refusal is audited whatever else is wrong
    code, period, nir, dup = _index_fields(a)
    seqs = _seqs_arg(a, "pages")
    # Every page checked before the file is created: a bad seq leaves no empty ACR file behind.
    pages = unfiled_pages(station, batch, seqs) if seqs is not None else []
    filed: list[int] = []
    name, rank = _optional_text(a, "name") or "", _optional_text(a, "rank") or ""
    if a.get("document_id") is not None:
        doc = _document_of(station, batch, int_arg(a, "document_id"))
        check = reindex_document(station.store, doc.id, c.name, employee_code=code, period=period,
                                 not_in_roster=nir, duplicate_reason=dup, employee_name=name, rank=rank)
        doc = station.store.document(doc.id)
    else:
        try:
            check, _continued = check_entry(station.store, batch, employee_code=code, period=period,
                                            not_in_roster=nir, duplicate_reason=dup)
        except (NotInRoster, DuplicateAcr, StateError) as e:
            audit_refusal(station.store, c.name, batch, e, employee_code=code, period=period)
            raise
        doc = open_checked_document(station, batch, check, operator=c.name, employee_name=name, rank=rank)
        if pages:
            filed = file_pages(station, pages, doc.id, c.name)
    return {"document": _document_dict(doc), "flags": check.flags,
            "duplicates": [d.as_dict() for d in check.duplicates],
            "employee": check.employee.as_dict() if check.employee is not None else None,
            "pages_filed": filed}


def _op_index_suggestions(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    from scanstation.ocr.index_suggestions import suggest_index
    from scanstation.roster.suggest import roster_candidates
    from scanstation.verify.core import unfiled_pages

    assert c is not None
    batch = text_arg(a, "batch")
    station = s.station(c, Action.INDEX, s.batch_facts(batch))
    seqs = _seqs_arg(a, "seqs")
    if seqs is not None:  # pages scanned without an ACR file: what their text says the file is
        pages = unfiled_pages(station, batch, seqs)
    elif a.get("document_id") is None:
        raise StateError("index_suggestions needs 'document_id' (an ACR file) or 'seqs' (pages without one)")
    else:
        pages = station.store.document_pages(_document_of(station, batch, int_arg(a, "document_id")).id)
    texts = []
    for p in pages[:3]:
        if p.ocr_object and p.ocr_sha256:
            texts.append(station.vault.get(p.ocr_object, p.ocr_sha256).decode("utf-8", errors="replace"))
    result = roster_candidates(station.store, suggest_index(texts))
    result["pages_read"] = len(texts)
    return result


OPERATIONS: Operations = {
    "roster_search": (_op_roster_search, True),
    "index_check": (_op_index_check, True),
    "index_document": (_op_index_document, True),
    "index_suggestions": (_op_index_suggestions, True),
}

"""Service operations (issue 14) for verification: the supervisor's queue, a batch's detail, page
verdicts, assembly fixes (move, reorder, insert, split, merge, re-index), approve and return.

Shapes of arguments and results: docs/verification.md.  Each operation checks the caller's permission
here, with the batch's facts (four eyes), then calls :mod:`scanstation.verify.core`; the CLI's
verification commands use the same :func:`authorized` gate, so both refuse and audit alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scanstation.errors import PermissionDenied, StateError
from scanstation.people.roles import Action, Role
from scanstation.service.op_types import Emit, Operations, int_arg, text_arg

if TYPE_CHECKING:
    from scanstation.service.core import Caller, StationService

# scanstation.verify.core (the store's page queries, Pillow for rotation) is imported by the operations that use
# it: this table is loaded by every command that talks to the station ('users', 'unlock', 'lock' among them).

# Actions that the batch's own operator (whoever opened it) may never take on it, whether or not they
# captured a page (four eyes: the supervisor's eyes are not the operator's).
_NOT_THE_OPERATOR = frozenset({Action.VERIFY, Action.APPROVE, Action.RETURN})


def authorized(service: StationService, caller: Caller, action: Action, batch: str,
               page_seq: int | None = None) -> Any:
    """The open station for ``action`` on ``batch``, after the matrix and four-eyes checks on its facts
    (refusals audited, PermissionDenied); StationLocked / StateError as :meth:`StationService.station`."""
    station = service._station
    page_id = None
    if station is not None and page_seq is not None:
        found = station.store.batch(batch)
        if found is not None:
            page_id = station.store.page_by_seq(found.id, page_seq).id
    facts = service.batch_facts(batch, page_id)
    station = service.station(caller, action, facts)
    if action in _NOT_THE_OPERATOR and facts.opened_by and facts.opened_by.casefold() == caller.name.casefold():
        reason = (f"{caller.name} ({caller.role.value}) may not {action.value} batch {batch}: it is their own batch "
                  "(they opened it; four eyes)")
        service.audit.append(caller.name, "permission.denied", action.value, {"reason": reason})
        raise PermissionDenied(reason)
    return station


def _c(caller: Caller | None) -> Caller:
    if caller is None:
        raise StateError("sign in first")
    return caller


def _opt_text(a: dict[str, Any], key: str) -> str | None:
    value = a.get(key)
    if value is not None and not isinstance(value, str):
        raise StateError(f"request field '{key}' must be text")
    return value


def _page(station: Any, batch: str, seq: int) -> dict[str, Any]:
    from scanstation.verify import core

    b = core.find_batch(station, batch)
    page = station.store.page_by_seq(b.id, seq)
    return core.page_row(page, station.store.page_verdicts(b.id).get(page.id), {})


def _document(station: Any, doc_id: int) -> dict[str, Any]:
    from scanstation.verify import core

    doc = station.store.document_row(doc_id)
    live = len(station.store.document_pages(doc_id))
    return core.document_row(station, doc, live)


def _review_queue(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    # VIEW_PAGE without a batch: the roles that see pages unconditionally (an operator's cell has an
    # own-batch rule and fails closed without one; the admin's is no).
    from scanstation.verify import core

    station = s.station(_c(c), Action.VIEW_PAGE)
    return core.review_queue(station)


def _batch_detail(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    from scanstation.verify import core

    caller = _c(c)
    batch = text_arg(a, "batch")
    station = authorized(s, caller, Action.VIEW_PAGE, batch)
    return core.batch_detail(station, batch, caller.name)


def _page_thumbnail(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    from scanstation.verify import core
    from scanstation.verify.images import thumbnail_png

    caller, batch, seq = _c(c), text_arg(a, "batch"), int_arg(a, "seq")
    station = authorized(s, caller, Action.VIEW_PAGE, batch, seq)
    page = station.store.page_by_seq(core.find_batch(station, batch).id, seq)
    if page.image_object and page.image_sha256:
        png = station.vault.get(page.image_object, page.image_sha256)
    else:
        png = station.vault.get(page.raw_object, page.raw_sha256)
    return thumbnail_png(png, page.rotation, int_arg(a, "width"))  # not a view: never recorded as served


def _page_text(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    from scanstation.verify import core

    caller, batch, seq = _c(c), text_arg(a, "batch"), int_arg(a, "seq")
    station = authorized(s, caller, Action.VIEW_PAGE, batch, seq)
    result = core.page_text(station, batch, seq)
    page = station.store.page_by_seq(core.find_batch(station, batch).id, seq)
    station.store.audit(caller.name, "page.text_view", f"page:{page.id}", {"seq": seq}, batch_id=page.batch_id)
    return result


def _review(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    from scanstation.verify import core

    caller, batch, seq = _c(c), text_arg(a, "batch"), int_arg(a, "seq")
    station = authorized(s, caller, Action.VERIFY, batch)
    core.review(station, batch, seq, text_arg(a, "verdict"), _opt_text(a, "reason"), caller.name, via="screen")
    return _page(station, batch, seq)


def _flag_verdict(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    from scanstation.verify import core

    caller, batch = _c(c), text_arg(a, "batch")
    station = authorized(s, caller, Action.VERIFY, batch)
    doc_id = int_arg(a, "document_id")
    core.flag_verdict(station, batch, doc_id, text_arg(a, "flag"), text_arg(a, "verdict"), _opt_text(a, "reason"),
                      caller.name)
    return _document(station, doc_id)


def _doc_pages(station: Any, *doc_ids: int | None) -> dict[str, Any]:
    rows = []
    for doc_id in dict.fromkeys(d for d in doc_ids if d is not None):
        rows += [{"seq": p.seq, "document_id": p.document_id, "position": p.position}
                 for p in station.store.document_pages(doc_id, include_removed=True)]
    return {"pages": rows}


def _move_page(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    from scanstation.verify import core

    caller, batch, seq = _c(c), text_arg(a, "batch"), int_arg(a, "seq")
    station = authorized(s, caller, Action.VERIFY, batch)
    before = station.store.page_by_seq(core.find_batch(station, batch).id, seq).document_id
    doc_id = int_arg(a, "document_id")
    core.move_page(station, batch, seq, doc_id, int_arg(a, "position"), caller.name)
    return _doc_pages(station, doc_id, before)


def _insert_page(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    from scanstation.verify import core

    caller, batch, seq = _c(c), text_arg(a, "batch"), int_arg(a, "seq")
    station = authorized(s, caller, Action.INDEX, batch)
    core.insert_page(station, batch, seq, int_arg(a, "document_id"), int_arg(a, "position"), caller.name)
    return _page(station, batch, seq)


def _replace_page(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    from scanstation.verify import core

    caller, batch = _c(c), text_arg(a, "batch")
    station = authorized(s, caller, Action.INDEX, batch)
    new_seq = int_arg(a, "new_seq")
    core.replace_page(station, batch, int_arg(a, "old_seq"), new_seq, caller.name)
    return _page(station, batch, new_seq)


def _reindex(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    from scanstation.verify import core

    caller, batch = _c(c), text_arg(a, "batch")
    station = authorized(s, caller, Action.VERIFY, batch)
    doc_id = int_arg(a, "document_id")
    core.reindex(station, batch, doc_id, text_arg(a, "employee_code"), text_arg(a, "period"),
                 _opt_text(a, "not_in_roster"), caller.name, duplicate_reason=_opt_text(a, "duplicate_reason"))
    return _document(station, doc_id)


def _split_document(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    from scanstation.verify import core

    caller, batch = _c(c), text_arg(a, "batch")
    station = authorized(s, caller, Action.VERIFY, batch)
    doc_id = int_arg(a, "document_id")
    new_id = core.split_document(station, batch, doc_id, int_arg(a, "at_seq"), caller.name)
    return {"document_id": doc_id, "new_document_id": new_id}


def _merge_documents(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    from scanstation.verify import core

    caller, batch = _c(c), text_arg(a, "batch")
    station = authorized(s, caller, Action.VERIFY, batch)
    into = int_arg(a, "into")
    core.merge_documents(station, batch, int_arg(a, "document_id"), into, caller.name)
    return {"document_id": into}


def _approve(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    from scanstation.verify import core

    caller, batch = _c(c), text_arg(a, "batch")
    station = authorized(s, caller, Action.APPROVE, batch)
    return core.approve(station, batch, caller.name)


def _return_batch(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    from scanstation.verify import core

    caller, batch = _c(c), text_arg(a, "batch")
    station = authorized(s, caller, Action.RETURN, batch)
    return core.return_batch(station, batch, caller.name, text_arg(a, "reason"),
                             unit_head=caller.role is Role.UNIT_HEAD)


def _close_batch(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    from scanstation.verify import core

    caller, batch = _c(c), text_arg(a, "batch")
    station = authorized(s, caller, Action.CLOSE_BATCH, batch)
    return core.close_batch(station, batch, caller.name)


def _rescans(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    """The operator's list: rescans asked for in their batches in capture (a supervisor: in any batch)."""
    from scanstation.people.permissions import check
    from scanstation.verify import core

    caller = _c(c)
    wanted = _opt_text(a, "batch")
    station = s.station(caller, Action.STATUS)
    out: list[dict[str, Any]] = []
    for b in station.store.batches():
        if wanted is not None and b.name != wanted:
            continue
        try:  # the operator's own batches in capture; supervisors and unit heads any (no audit per batch)
            check(caller.name, caller.role,
                  Action.CLOSE_BATCH if caller.role is Role.OPERATOR else Action.VIEW_PAGE, s.batch_facts(b.name))
        except PermissionDenied:
            if wanted is not None:
                authorized(s, caller, Action.CLOSE_BATCH, b.name)  # audited refusal for the batch asked for
            continue
        out += core.rescans(station, b)
    if wanted is not None and station.store.batch(wanted) is None:
        raise StateError(f"no batch called '{wanted}'")
    return out


def _reasons(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    return list(s.config.verification.reasons)


OPERATIONS: Operations = {
    "review_queue": (_review_queue, True),
    "batch_detail": (_batch_detail, True),
    "page_thumbnail": (_page_thumbnail, True),
    "page_text": (_page_text, True),
    "review": (_review, True),
    "flag_verdict": (_flag_verdict, True),
    "move_page": (_move_page, True),
    "insert_page": (_insert_page, True),
    "replace_page": (_replace_page, True),
    "reindex": (_reindex, True),
    "split_document": (_split_document, True),
    "merge_documents": (_merge_documents, True),
    "approve": (_approve, True),
    "return_batch": (_return_batch, True),
    "close_batch": (_close_batch, True),
    "rescans": (_rescans, True),
    "reasons": (_reasons, True),
}

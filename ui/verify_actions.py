"""What each key of the verification screen does (:data:`ui.verify_keys.KEYMAP`'s actions, ``_do_<action>``):
walking the pages and ACR files, zoom and pan, the page verdicts (OK, rescan, delete, rotate), the
assembly fixes (reorder, move, split, merge, re-index), the file's flags, approving or returning the batch.

:class:`VerifyActions` is the base of :class:`ui.verify.VerifyScreen`, which supplies the layout, the
batch's detail and the page shown (the names declared below).  Every change goes to the service through
:meth:`VerifyActions._send`, one call after another in the order of the keys; its answer reloads the
detail once the supervisor pauses.  Apart from the screen so that the actions are read in one place and
the screen module keeps the layout, the loading and the showing of pages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .page_view import ACTUAL, DOUBLE, FIT_WIDTH, PAN_STEP, PageView
from .qt import QLabel, QWidget
from .service_link import ServiceLink
from .thumbnails import AssemblyTree
from .verify_dialogs import ChoicePanel, IndexPanel, ReasonPanel
from .widgets import bi, show_error, show_ok


class VerifyActions(QWidget):
    """The ``_do_<action>`` handlers of the verification screen and the ordered sending of changes."""

    # supplied by ui.verify.VerifyScreen
    link: ServiceLink
    batch: str | None
    detail: dict[str, Any]
    order: list[int]
    seq: int | None
    reasons: list[str]
    view: PageView
    tree: AssemblyTree
    message: QLabel
    queue_message: QLabel
    reason_panel: ReasonPanel
    choice_panel: ChoicePanel
    index_panel: IndexPanel
    _pending_reason: Callable[[str], None] | None
    _choice_action: Callable[[int], None] | None
    _changes: list[tuple[str, dict[str, Any], Callable[[Any], None], Callable[[BaseException], None]]]

    if TYPE_CHECKING:
        def go_to(self, seq: int) -> None: ...
        def back_to_queue(self) -> None: ...
        def schedule_detail(self) -> None: ...
        def current_page(self) -> dict[str, Any] | None: ...
        def current_doc(self) -> dict[str, Any] | None: ...
        def _pages_by_seq(self) -> dict[int, dict[str, Any]]: ...
        def _show_current(self) -> None: ...

    # navigation
    def _step(self, delta: int) -> None:
        if not self.order:
            return
        i = self.order.index(self.seq) if self.seq in self.order else -1
        j = max(0, min(len(self.order) - 1, i + delta))
        self.go_to(self.order[j])

    def _do_next(self) -> None:
        self._step(1)

    def _do_previous(self) -> None:
        self._step(-1)

    def _do_first(self) -> None:
        if self.order:
            self.go_to(self.order[0])

    def _do_last(self) -> None:
        if self.order:
            self.go_to(self.order[-1])

    def _file_starts(self) -> list[int]:
        pages = self._pages_by_seq()
        starts, last = [], object()
        for seq in self.order:
            doc = pages[seq].get("document_id")
            if doc != last:
                starts.append(seq)
                last = doc
        return starts

    def _do_next_file(self) -> None:
        starts = self._file_starts()
        i = self.order.index(self.seq) if self.seq in self.order else -1
        later = [s for s in starts if self.order.index(s) > i]
        if later:
            self.go_to(later[0])

    def _do_previous_file(self) -> None:
        """PageUp: to the start of the file shown; from its first page, to the start of the one before."""
        i = self.order.index(self.seq) if self.seq in self.order else len(self.order)
        earlier = [s for s in self._file_starts() if self.order.index(s) < i]
        if earlier:
            self.go_to(earlier[-1])

    # zoom and pan
    def _do_fit_width(self) -> None:
        self.view.set_zoom(FIT_WIDTH)
        self._show_current()

    def _do_zoom_100(self) -> None:
        self.view.set_zoom(ACTUAL)
        self._show_current()

    def _do_zoom_200(self) -> None:
        self.view.set_zoom(DOUBLE)
        self._show_current()

    def _do_pan_left(self) -> None:
        self.view.pan(-PAN_STEP, 0)

    def _do_pan_right(self) -> None:
        self.view.pan(PAN_STEP, 0)

    def _do_pan_up(self) -> None:
        self.view.pan(0, -PAN_STEP)

    def _do_pan_down(self) -> None:
        self.view.pan(0, PAN_STEP)

    # verdicts
    def _review(self, verdict: str, reason: str = "", *, then_next: bool = False) -> None:
        seq, batch = self.seq, self.batch
        if seq is None or batch is None:
            return
        args: dict[str, Any] = {"batch": batch, "seq": seq, "verdict": verdict}
        if reason:
            args["reason"] = reason
        page = self._pages_by_seq().get(seq)
        if page is not None and not verdict.startswith("rotate"):
            page["verdict"] = verdict  # shown at once; the service's answer (or refusal) follows
            if verdict == "delete":
                page["deleted"] = reason

        def done(row: Any) -> None:
            if batch == self.batch and isinstance(row, dict) and row.get("seq") == seq:
                turned = page is not None and row.get("rotation") != page.get("rotation")
                if page is not None:
                    page.update(row)  # the page as the service now holds it
                if turned:  # the turned image is asked for only now: the service serves the stored turn
                    self.tree.forget_thumbnail(seq)
                    if seq == self.seq:
                        self._show_current()
            self._changed(f"{bi('पृष्ठ', 'page')} {seq}: {verdict}")

        self._send("review", args, done, self._failed)
        if then_next:
            self._step(1)

    def _do_ok_next(self) -> None:
        self._review("ok", then_next=True)

    def _rotate(self, quarter: int) -> None:
        page = self.current_page()
        if page is None:
            return
        pending = int(page.get("pending_rotation", page.get("rotation") or 0))
        rotation = (pending + quarter) % 360
        page["pending_rotation"] = rotation  # several presses before the answer add up
        self._review(f"rotate-{rotation}")

    def _do_rotate_left(self) -> None:
        self._rotate(270)

    def _do_rotate_right(self) -> None:
        self._rotate(90)

    def _ask_reason(self, title: str, then: Callable[[str], None]) -> None:
        if self.seq is None and "batch" not in title:
            return
        self._pending_reason = then
        self.reason_panel.open(title, self.reasons)

    def _reason_chosen(self, reason: str) -> None:
        then, self._pending_reason = self._pending_reason, None
        self.setFocus()
        if then is not None:
            then(reason)

    def _do_rescan(self) -> None:
        self._ask_reason(bi("दोबारा स्कैन का कारण", f"Why rescan page {self.seq}?"),
                         lambda r: self._review("rescan", r, then_next=True))

    def _do_delete(self) -> None:
        self._ask_reason(bi("हटाने का कारण", f"Why delete page {self.seq}?"),
                         lambda r: self._review("delete", r, then_next=True))

    # assembly
    def _position(self, doc_id: int, before: int | None, moving: int) -> int:
        """1-based position in ACR file ``doc_id`` (all its pages, as the store numbers them) before page
        ``before`` (None: at the end), the moving page left out."""
        order = [int(p["seq"]) for p in self.detail.get("pages", [])
                 if p.get("document_id") == doc_id and int(p["seq"]) != moving]
        return order.index(before) + 1 if before in order else len(order) + 1

    def _move(self, seq: int, doc_id: int, before: int | None) -> None:
        position = self._position(doc_id, before, seq)
        self._send("move_page", {"batch": self.batch, "seq": seq, "document_id": doc_id, "position": position},
                         lambda _r: self._changed(bi("पृष्ठ खिसकाया", f"page {seq} moved")), self._failed)

    def _tree_move(self, seq: int, doc_id: int, before: int) -> None:
        self._move(seq, doc_id, before or None)

    def _siblings(self) -> tuple[int | None, list[int]]:
        page = self.current_page()
        if page is None or page.get("document_id") is None:
            return None, []
        doc_id = int(page["document_id"])
        return doc_id, [int(p["seq"]) for p in self.detail.get("pages", [])
                        if p.get("document_id") == doc_id and not p.get("replaced_by")]

    def _do_move_up(self) -> None:
        doc_id, seqs = self._siblings()
        if doc_id is None or self.seq is None or seqs.index(self.seq) == 0:
            return
        self._move(self.seq, doc_id, seqs[seqs.index(self.seq) - 1])

    def _do_move_down(self) -> None:
        doc_id, seqs = self._siblings()
        if doc_id is None or self.seq is None:
            return
        i = seqs.index(self.seq)
        if i + 1 >= len(seqs):
            return
        self._move(self.seq, doc_id, seqs[i + 2] if i + 2 < len(seqs) else None)

    def _neighbour_doc(self, delta: int) -> int | None:
        docs = [int(d["id"]) for d in self.detail.get("documents", [])]
        page = self.current_page()
        if page is None or page.get("document_id") is None or int(page["document_id"]) not in docs:
            return None
        j = docs.index(int(page["document_id"])) + delta
        return docs[j] if 0 <= j < len(docs) else None

    def _do_to_previous_file(self) -> None:
        target = self._neighbour_doc(-1)
        if target is not None and self.seq is not None:
            self._move(self.seq, target, None)  # at the end of the file before

    def _do_to_next_file(self) -> None:
        target = self._neighbour_doc(1)
        if target is not None and self.seq is not None:
            first = [int(p["seq"]) for p in self.detail.get("pages", []) if p.get("document_id") == target]
            self._move(self.seq, target, first[0] if first else None)  # at the start of the file after

    def _doc_label(self, d: dict[str, Any]) -> str:
        return f"ACR {d['seq']} · {d.get('employee_code') or '—'} · {d.get('acr_period') or '—'} · {d.get('pages')} p."

    def _do_move_to(self) -> None:
        if self.seq is None:
            return
        docs = list(self.detail.get("documents", []))
        if not docs:
            return
        seq = self.seq
        current = self.current_doc()
        index = next((i for i, d in enumerate(docs) if current and d["id"] == current["id"]), 0)
        self._choice_action = lambda i: self._move(seq, int(docs[i]["id"]), None)
        self.choice_panel.open(bi("पृष्ठ किस फ़ाइल में?", f"Move page {seq} to which ACR file (at its end)?"),
                               [self._doc_label(d) for d in docs], index)

    def _choice_made(self, index: int) -> None:
        then, self._choice_action = self._choice_action, None
        self.setFocus()
        if then is not None and index >= 0:
            then(index)

    def _do_split(self) -> None:
        doc = self.current_doc()
        if doc is None or self.seq is None:
            return
        self._send("split_document", {"batch": self.batch, "document_id": doc["id"], "at_seq": self.seq},
                         lambda _r: self._changed(bi("फ़ाइल विभाजित: नई फ़ाइल का सूचकांक जाँचें (I)",
                                                     "file split: check the new file's index (I)")), self._failed)

    def _do_merge(self) -> None:
        """J: this file's pages go to the end of another file (chosen; the one before it is offered first)."""
        doc = self.current_doc()
        others = [d for d in self.detail.get("documents", []) if doc is not None and d["id"] != doc["id"]]
        if doc is None or not others:
            show_error(self.message, ValueError("no other ACR file to merge this one into"))
            return
        previous = self._neighbour_doc(-1)
        index = next((i for i, d in enumerate(others) if d["id"] == previous), 0)

        def merge(i: int) -> None:
            self._send("merge_documents", {"batch": self.batch, "document_id": doc["id"],
                                                 "into": others[i]["id"]},
                             lambda _r: self._changed(bi("फ़ाइलें जोड़ी गईं", "files merged")), self._failed)

        self._choice_action = merge
        self.choice_panel.open(bi(f"ACR {doc['seq']} किस फ़ाइल में जोड़ें?", f"Merge ACR file {doc['seq']} into…"),
                               [self._doc_label(d) for d in others], index)

    def _do_reindex(self) -> None:
        doc = self.current_doc()
        if doc is None:
            return
        self.index_panel.open(bi(f"ACR {doc['seq']} का सूचकांक", f"Index of ACR file {doc['seq']}"),
                              str(doc.get("employee_code") or ""), str(doc.get("acr_period") or ""))

    def _reindex_submitted(self, code: str, period: str, not_in_roster: str) -> None:
        self.setFocus()
        doc = self.current_doc()
        if doc is None:
            return
        args: dict[str, Any] = {"batch": self.batch, "document_id": doc["id"], "employee_code": code,
                                "period": period}
        if not_in_roster:
            args["not_in_roster"] = not_in_roster
        self._send("reindex", args, lambda _r: self._changed(bi("सूचकांक बदला", "file re-indexed")),
                         self._failed)

    def _open_flags(self) -> tuple[dict[str, Any] | None, list[str]]:
        doc = self.current_doc()
        if doc is None:
            return None, []
        flags = list(doc.get("flags") or [])
        if doc.get("not_in_roster") and "not_in_roster" not in flags:
            flags.append("not_in_roster")
        return doc, flags

    def _flag_verdicts(self, verdict: str, reason: str = "") -> None:
        doc, flags = self._open_flags()
        if doc is None or not flags:
            show_ok(self.message, bi("इस फ़ाइल पर कोई चिह्न नहीं", "this file has no flags"))
            return
        for flag in flags:
            args: dict[str, Any] = {"batch": self.batch, "document_id": doc["id"], "flag": flag, "verdict": verdict}
            if reason:
                args["reason"] = reason
            self._send("flag_verdict", args, self._flag_done(flag, verdict), self._failed)

    def _flag_done(self, flag: str, verdict: str) -> Callable[[Any], None]:
        return lambda _r: self._changed(f"{flag}: {verdict}")

    def _do_accept_flags(self) -> None:
        self._flag_verdicts("accepted")

    def _do_reject_flags(self) -> None:
        self._ask_reason(bi("चिह्न अस्वीकार: कारण", "Reject the file's flags: why?"),
                         lambda r: self._flag_verdicts("rejected", r))

    # the batch
    def _do_approve(self) -> None:
        if not self.detail.get("can_approve"):
            blockers = "; ".join(str(b) for b in self.detail.get("blockers") or [])
            show_error(self.message, ValueError(f"not yet: {blockers}"))
            return
        self._send("approve", {"batch": self.batch}, self._approved, self._failed)

    def _approved(self, _result: Any) -> None:
        name = self.batch
        self.back_to_queue()
        show_ok(self.queue_message, bi(f"बैच {name} स्वीकृत", f"batch {name} approved: verified"))

    def _do_return_batch(self) -> None:
        self._ask_reason(bi("बैच लौटाने का कारण", "Why return the batch to the operator?") + " (batch)",
                         self._return_batch)

    def _return_batch(self, reason: str) -> None:
        name = self.batch

        def returned(_r: Any) -> None:
            self.back_to_queue()
            show_ok(self.queue_message, bi(f"बैच {name} लौटाया गया", f"batch {name} returned to the operator"))

        self._send("return_batch", {"batch": self.batch, "reason": reason}, returned, self._failed)

    # changes go to the service one after another, in the order of the keys: calls submitted together run
    # on different pool threads and could reach the service in either order ("[" twice = 180°, not 90°)
    def _send(self, op: str, args: dict[str, Any], on_done: Callable[[Any], None],
              on_failed: Callable[[BaseException], None]) -> None:
        self._changes.append((op, args, on_done, on_failed))
        if len(self._changes) == 1:
            self._send_next()

    def _send_next(self) -> None:
        if not self._changes:
            return
        op, args, on_done, on_failed = self._changes[0]

        def finish(callback: Callable[[Any], None], value: Any) -> None:
            self._changes.pop(0)
            try:
                callback(value)
            finally:
                self._send_next()

        self.link.submit(op, args, lambda r: finish(on_done, r), lambda e: finish(on_failed, e))

    # answers
    def _changed(self, text: str) -> None:
        show_ok(self.message, text)
        self.schedule_detail()

    def _failed(self, err: BaseException) -> None:
        show_error(self.message, err)
        self.schedule_detail()  # what the service holds, not what was hoped for


__all__ = ["VerifyActions"]

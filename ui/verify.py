"""The supervisor's screen (issue 14, scope 6): the batch queue, then one batch page by page.

    queue ──Enter──► batch: thumbnails grouped by ACR file │ the page (fit-width/100 %/200 %) │ flags with
                     their measured values, the OCR text, what approval still needs; "pages seen N of M"

Everything is on the keyboard (:data:`KEYMAP`, shown by F1 or ``?``): Enter = OK and next, R = rescan,
Delete = delete with a reason, ``[``/``]`` rotate, arrows / Home / End between pages, PageUp/PageDown
between ACR files, A = approve, and the assembly fixes (reorder, move, split, merge, re-index).  The
reason picker lists the station's configured reasons (``reasons``) and takes free text.

The screen is a client of the station service like every kiosk screen: it holds no key and reads no
store.  The service records each page it serves in full (``page_image``) as seen by the caller; approval
needs every page seen (``batch_detail``'s ``can_approve``; the Approve button follows it).  So that the
record means "was on the screen", the full image of a page is fetched only while that page is the one
shown; the neighbours are prefetched as *previews* (``page_thumbnail`` at the view's width, which the
service does not count as served): the next page paints from its preview at once, and the full image
replaces it moments later.  Decoding and scaling happen off the UI thread (:mod:`ui.page_view`).

No clipboard, no print, no save, no file dialog: the OCR text cannot be selected or copied, no context
menu exists, and nothing here writes a file.

The screen is split in modules by what they hold: this one the screen's layout, the queue, loading the
batch's detail and showing its pages; :mod:`ui.verify_keys` the key table and its help overlay;
:mod:`ui.verify_actions` what each key does; :mod:`ui.verify_dialogs` the reason / choice / re-index
panels; :mod:`ui.verify_side` the flags, OCR text and approval column.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .page_view import DecodedPage, ImageCache, PageView
from .qt import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QImage,
    QKeyEvent,
    QLabel,
    QSplitter,
    QStackedWidget,
    Qt,
    QTableWidget,
    QTableWidgetItem,
    QTimer,
    QVBoxLayout,
    QWidget,
    Signal,
)
from .service_link import ServiceLink
from .thumbnails import THUMB_WIDTH, AssemblyTree
from .verify_actions import VerifyActions
from .verify_dialogs import ChoicePanel, IndexPanel, ReasonPanel
from .verify_keys import KEYMAP, HelpOverlay, K, action_for, help_rows
from .verify_side import SidePanel, flag_rows
from .watermark import Watermark
from .widgets import bi, button, describe_error, show_error

PREVIEW_MAX = 1024  # page_thumbnail's largest width
DETAIL_DELAY_MS = 1200  # the batch's detail reloads once the supervisor pauses this long (not per Enter)
THUMB_IDLE_MS = 1200  # thumbnails of unvisited pages load after this long without a key
QUEUE_COLUMNS = ["Batch / बैच", "State / स्थिति", "Pages / पृष्ठ", "ACR files / फ़ाइलें", "Flagged / चिह्नित",
                 "Operator / ऑपरेटर", "Closed / बंद"]


# ---------------------------------------------------------------------------------------------- the screen
class VerifyScreen(VerifyActions):
    """The batch queue and the batch being verified (see the module's description)."""

    opened = Signal(str)  # a batch was opened (its detail arrived)
    detail_changed = Signal()

    def __init__(self, link: ServiceLink, watermark: Watermark | None = None) -> None:
        """``watermark``: the kiosk window's (station, person, time); a screen made alone (bench/ui.py) gets
        its own, so that no page is ever shown without one."""
        super().__init__()
        self.link = link
        self.watermark = watermark if watermark is not None else Watermark()
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.stack = QStackedWidget()
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.stack)
        self.stack.addWidget(self._queue_page())
        self.stack.addWidget(self._batch_page())
        self.cache = ImageCache()
        self.cache.loaded.connect(self._image_loaded)
        self.cache.failed.connect(self._image_failed)
        self.batch: str | None = None
        self.detail: dict[str, Any] = {}
        self.order: list[int] = []  # seqs of live pages in reading order: what the arrows walk through
        self.seq: int | None = None
        self.reasons: list[str] = []
        self._detail_pending = False
        self._detail_again = False
        self._thumb_queue: list[int] = []
        self._thumb_loading = False
        self._pending_reason: Callable[[str], None] | None = None
        self._choice_action: Callable[[int], None] | None = None
        self._changes: list[tuple[str, dict[str, Any], Callable[[Any], None], Callable[[BaseException], None]]] = []
        # answers that change the batch reload its detail once the supervisor pauses (a run of Enters = one
        # reload): meanwhile the screen shows its own record of verdicts and pages seen
        self._detail_timer = QTimer(self)
        self._detail_timer.setSingleShot(True)
        self._detail_timer.timeout.connect(self.load_detail)
        # the thumbnails of pages not yet visited load only while the supervisor pauses: on the one
        # connection each would delay the page being looked at (the service decodes a full page for one)
        self._thumb_timer = QTimer(self)
        self._thumb_timer.setSingleShot(True)
        self._thumb_timer.timeout.connect(self._next_thumbnail)

    # ------------------------------------------------------------------ layout
    def _queue_page(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.addWidget(QLabel(bi("<b>सत्यापन के लिए बैच</b>", "<b>Batches to verify</b>")
                                + "  —  " + bi("Enter खोलें", "Enter opens")))
        self.queue = QTableWidget(0, len(QUEUE_COLUMNS))
        self.queue.setHorizontalHeaderLabels(QUEUE_COLUMNS)
        self.queue.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.queue.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.queue.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.queue.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.queue.cellDoubleClicked.connect(lambda r, _c: self.open_row(r))
        self.queue.installEventFilter(self)
        layout.addWidget(self.queue, 1)
        self.queue_empty = QLabel("")
        layout.addWidget(self.queue_empty)
        self.queue_message = QLabel("")
        self.queue_message.setWordWrap(True)
        layout.addWidget(self.queue_message)
        self.queue_page = page
        return page

    def _batch_page(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(4, 4, 4, 4)
        bar = QHBoxLayout()
        self.title = QLabel("")
        bar.addWidget(self.title)
        bar.addStretch(1)
        self.seen_label = QLabel("")
        bar.addWidget(self.seen_label)
        self.approve_button = button(bi("स्वीकृत करें", "Approve") + " (A)")
        self.approve_button.setEnabled(False)
        self.approve_button.clicked.connect(lambda: self.act("approve"))
        self.return_button = button(bi("लौटाएँ", "Return") + " (Ctrl+R)")
        self.return_button.clicked.connect(lambda: self.act("return_batch"))
        self.help_button = button(bi("कुंजियाँ", "Keys") + " (F1)")
        self.help_button.clicked.connect(lambda: self.act("help"))
        self.back_button = button(bi("कतार", "Queue") + " (Esc)")
        self.back_button.clicked.connect(lambda: self.act("back"))
        for b in (self.approve_button, self.return_button, self.help_button, self.back_button):
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Enter must never press a button
            bar.addWidget(b)
        layout.addLayout(bar)

        split = QSplitter()
        self.tree = AssemblyTree(self.watermark)
        self.tree.page_chosen.connect(self.go_to)
        self.tree.move_requested.connect(self._tree_move)
        split.addWidget(self.tree)
        middle = QWidget()
        mid = QVBoxLayout(middle)
        mid.setContentsMargins(0, 0, 0, 0)
        self.page_label = QLabel("")
        mid.addWidget(self.page_label)
        self.view = PageView(self.watermark)
        self.view.resized.connect(lambda _w: self._show_current())
        mid.addWidget(self.view, 1)
        split.addWidget(middle)
        side = SidePanel()
        self.flags, self.ocr, self.blockers = side.flags, side.ocr, side.blockers
        self.reason_panel = ReasonPanel()
        self.reason_panel.chosen.connect(self._reason_chosen)
        self.reason_panel.cancelled.connect(self._panel_closed)
        self.choice_panel = ChoicePanel()
        self.choice_panel.chosen.connect(self._choice_made)
        self.choice_panel.cancelled.connect(self._panel_closed)
        self.index_panel = IndexPanel()
        self.index_panel.submitted.connect(self._reindex_submitted)
        self.index_panel.cancelled.connect(self._panel_closed)
        for panel in (self.reason_panel, self.choice_panel, self.index_panel):
            side.add_panel(panel)
        split.addWidget(side)
        self.side = side
        split.setSizes([260, 700, 380])
        split.setStretchFactor(1, 1)
        layout.addWidget(split, 1)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        layout.addWidget(self.message)
        self.help = HelpOverlay(page)
        self.batch_page = page
        return page

    # ------------------------------------------------------------------ the queue
    def refresh(self) -> None:
        """Reload what is shown: the queue, or the open batch's detail."""
        if self.stack.currentWidget() is self.batch_page and self.batch:
            self.load_detail()
            return
        self.link.submit("review_queue", {}, self._queue_listed, lambda e: show_error(self.queue_message, e))

    def _queue_listed(self, rows: Any) -> None:
        self.queue_rows = list(rows or [])
        self.queue.setRowCount(len(self.queue_rows))
        for r, b in enumerate(self.queue_rows):
            values = [b.get("name"), b.get("state"), b.get("pages"), b.get("documents"), b.get("flagged"),
                      b.get("operator"), (b.get("closed_at") or "")[:16].replace("T", " ")]
            for c, v in enumerate(values):
                self.queue.setItem(r, c, QTableWidgetItem("" if v is None else str(v)))
        if self.queue_rows and self.queue.currentRow() < 0:
            self.queue.selectRow(0)
        self.queue_empty.setText("" if self.queue_rows else bi("सत्यापन के लिए कोई बैच नहीं", "nothing to verify"))
        # the message line keeps its news ("batch approved") until another batch is opened

    def open_row(self, row: int) -> None:
        rows = getattr(self, "queue_rows", [])
        if 0 <= row < len(rows):
            self.open_batch(str(rows[row]["name"]))

    def open_batch(self, name: str) -> None:
        self.batch = name
        self.detail = {}
        self.order = []
        self.seq = None
        self.cache.clear()
        self.tree.forget_all()
        self._thumb_queue = []
        self.view.show_page(None)
        self.ocr.clear()
        self.title.setText(f"<b>{bi('बैच', 'Batch')} {name}</b>")
        self.message.clear()
        self.queue_message.clear()
        self.stack.setCurrentWidget(self.batch_page)
        self.setFocus()
        if not self.reasons:
            self.link.submit("reasons", {}, self._reasons_loaded, lambda _e: None)
        self.load_detail(first=True)

    def _reasons_loaded(self, reasons: Any) -> None:
        self.reasons = [str(r) for r in reasons or []]

    def back_to_queue(self) -> None:
        self.batch = None
        self.stack.setCurrentWidget(self.queue_page)
        self.refresh()
        self.queue.setFocus()

    def eventFilter(self, watched: Any, event: Any) -> bool:
        if watched is self.queue and event.type() == event.Type.KeyPress \
                and event.key() in (K.Key_Return, K.Key_Enter):
            self.open_row(self.queue.currentRow())
            return True
        return False

    # ------------------------------------------------------------------ the batch's detail
    def load_detail(self, first: bool = False) -> None:
        if self.batch is None:
            return
        if self._detail_pending:
            self._detail_again = True
            return
        self._detail_pending = True
        batch = self.batch
        self.link.submit("batch_detail", {"batch": batch}, lambda d: self._detail_loaded(batch, d, first),
                         self._detail_failed)

    def _detail_failed(self, err: BaseException) -> None:
        self._detail_pending = False
        show_error(self.message, err)

    def _detail_loaded(self, batch: str, detail: Any, first: bool) -> None:
        self._detail_pending = False
        if batch != self.batch:
            return
        if self._detail_again:
            self._detail_again = False
            self.load_detail()
        self.set_detail(detail)
        if first:
            self.opened.emit(batch)

    def set_detail(self, detail: dict[str, Any]) -> None:
        self.detail = detail
        pages = [p for p in detail.get("pages", []) if not p.get("replaced_by")]
        self.order = [int(p["seq"]) for p in pages if not p.get("deleted")]
        self.tree.populate(detail)
        self._thumb_queue = [int(p["seq"]) for p in pages if not self.tree.has_thumbnail(int(p["seq"]))]
        self._thumb_timer.start(THUMB_IDLE_MS)
        if self.seq is None or self.seq not in {int(p["seq"]) for p in pages}:
            self.seq = self._first_unseen()
        self._update_status()
        self._show_current()
        self.detail_changed.emit()

    def _first_unseen(self) -> int | None:
        pages = self._pages_by_seq()
        for seq in self.order:
            if not pages[seq].get("seen_by_me") or pages[seq].get("verdict") is None:
                return seq
        return self.order[0] if self.order else None

    def _pages_by_seq(self) -> dict[int, dict[str, Any]]:
        return {int(p["seq"]): p for p in self.detail.get("pages", [])}

    def _docs_by_id(self) -> dict[int, dict[str, Any]]:
        return {int(d["id"]): d for d in self.detail.get("documents", [])}

    def current_page(self) -> dict[str, Any] | None:
        return self._pages_by_seq().get(self.seq) if self.seq is not None else None

    def current_doc(self) -> dict[str, Any] | None:
        page = self.current_page()
        doc_id = page.get("document_id") if page else None
        return self._docs_by_id().get(int(doc_id)) if doc_id is not None else None

    def _update_status(self) -> None:
        d = self.detail
        self.seen_label.setText(f"<b>{bi('देखे गए पृष्ठ', 'pages seen')} {d.get('seen', 0)} / {d.get('total', 0)}</b>")
        can = bool(d.get("can_approve"))
        self.approve_button.setEnabled(can)
        blockers = [str(b) for b in d.get("blockers") or []]
        self.blockers.setText(bi("स्वीकृत किया जा सकता है", "ready to approve") if can
                              else "<br>".join(f"• {b}" for b in blockers[:8]))
        self.title.setText(f"<b>{bi('बैच', 'Batch')} {d.get('name', self.batch)}</b> · {d.get('state', '')}")

    # ------------------------------------------------------------------ showing a page
    def go_to(self, seq: int) -> None:
        self.view.mark()
        self.seq = seq
        self._thumb_timer.start(THUMB_IDLE_MS)
        self._show_current()

    def schedule_detail(self) -> None:
        self._detail_timer.start(DETAIL_DELAY_MS)

    def _keys(self, seq: int) -> tuple[tuple[Any, ...], tuple[Any, ...], int]:
        rotation = int(self._pages_by_seq().get(seq, {}).get("rotation") or 0)
        width = min(PREVIEW_MAX, self.view.fit_width())
        return ("full", self.batch, seq, rotation, width), ("preview", self.batch, seq, rotation, width), width

    def _source_width(self, page: dict[str, Any]) -> int:
        size = (page.get("analysis") or {}).get("output_size") or (page.get("analysis") or {}).get("input_size")
        if not size:
            return 0
        return int(size[1] if int(page.get("rotation") or 0) in (90, 270) else size[0])

    def _show_current(self) -> None:
        seq = self.seq
        if seq is None or self.batch is None:
            self.view.show_page(None)
            self.page_label.setText(bi("कोई पृष्ठ नहीं", "no page"))
            return
        page = self._pages_by_seq().get(seq, {})
        full_key, preview_key, _width = self._keys(seq)
        shown = self.cache.get(full_key) or self.cache.get(preview_key)
        self.view.show_page(shown)
        if self.cache.get(full_key) is None:
            self._request(seq, full=True)
        self.tree.select_seq(seq)
        index = self.order.index(seq) + 1 if seq in self.order else 0
        doc = self.current_doc()
        where = f"ACR {doc['seq']}" if doc else bi("बिना फ़ाइल", "unfiled")
        verdict = page.get("verdict") or "—"
        deleted = f" · ✗ {page['deleted']}" if page.get("deleted") else ""
        loading = "" if shown else " · " + bi("लोड हो रहा है…", "loading…")
        self.page_label.setText(f"{bi('पृष्ठ', 'page')} {seq} ({index}/{len(self.order)}) · {where} · "
                                f"{bi('निर्णय', 'verdict')}: {verdict}{deleted} · {self.view.zoom}{loading}")
        self.side.show_flags(flag_rows(page, doc))
        if self.cache.get(full_key) is not None:
            self._load_text(seq)
        else:
            self.ocr.setPlainText("…")  # asked for once the page itself is here (the page first, on one line)
        self._prefetch(seq)

    def _request(self, seq: int, *, full: bool, priority: int = 1) -> None:
        batch = self.batch
        full_key, preview_key, width = self._keys(seq)
        page = self._pages_by_seq().get(seq, {})
        if full:
            def fetch_full() -> bytes:
                # fetched (and so recorded as seen) only while the page is still the one on the screen
                if self.seq != seq or self.batch != batch:
                    raise _NotShown(seq)
                data: bytes = self.link.call("page_image", batch=batch, seq=seq)
                return data

            self.cache.request(full_key, fetch_full, width, keep_full=True, priority=priority + 1)
        else:
            def fetch_preview() -> bytes:
                data: bytes = self.link.call("page_thumbnail", batch=batch, seq=seq, width=width)
                return data

            self.cache.request(preview_key, fetch_preview, width, source_width=self._source_width(page),
                               priority=priority)

    def _prefetch(self, seq: int) -> None:
        if seq not in self.order:
            return
        i = self.order.index(seq)
        for j in (i + 1, i + 2, i - 1):
            if 0 <= j < len(self.order):
                other = self.order[j]
                full_key, preview_key, _w = self._keys(other)
                if self.cache.get(full_key) is None and self.cache.get(preview_key) is None:
                    self._request(other, full=False, priority=1 if j == i + 1 else 0)

    def _image_loaded(self, key: tuple[Any, ...]) -> None:
        kind, batch, seq = key[0], key[1], key[2]
        if batch != self.batch:
            return
        loaded = self.cache.get(key)
        if loaded is not None and not self.tree.has_thumbnail(seq) and key[3] == int(
                self._pages_by_seq().get(seq, {}).get("rotation") or 0):
            self.tree.set_thumbnail(seq, loaded.fitted.scaledToWidth(THUMB_WIDTH,
                                                                    Qt.TransformationMode.SmoothTransformation))
        if kind == "full":
            page = self._pages_by_seq().get(seq)
            if page is not None and not page.get("seen_by_me") and not page.get("replaced_by"):
                page["seen_by_me"] = True  # the service recorded it; the detail follows on its next reload
                if not page.get("deleted"):
                    self.detail["seen"] = int(self.detail.get("seen", 0)) + 1
                self._update_status()
                self.schedule_detail()
        if seq == self.seq:
            full_key, preview_key, _w = self._keys(seq)
            if key == full_key:
                self._load_text(seq)
            if key in (full_key, preview_key):
                shown = self.cache.get(full_key) or self.cache.get(preview_key)
                if self.view.page is None or self.view.page.key != full_key:
                    self.view.show_page(shown)
                    self._show_label_loaded()

    def _show_label_loaded(self) -> None:
        self.page_label.setText(self.page_label.text().replace(" · " + bi("लोड हो रहा है…", "loading…"), ""))

    def _image_failed(self, key: tuple[Any, ...], err: BaseException) -> None:
        if isinstance(err, _NotShown):
            return
        if key[1] == self.batch and key[2] == self.seq:
            show_error(self.message, err)

    def _load_text(self, seq: int) -> None:
        batch = self.batch
        self.ocr.setPlainText("…")

        def done(result: Any) -> None:
            if batch == self.batch and seq == self.seq:
                text = str((result or {}).get("text") or "")
                state = str((result or {}).get("state") or "")
                self.ocr.setPlainText(text or bi("(कोई पाठ नहीं)", f"(no text: OCR {state})"))

        self.link.submit("page_text", {"batch": batch, "seq": seq}, done,
                         lambda e: self.ocr.setPlainText(describe_error(e)))

    def _next_thumbnail(self) -> None:
        """One thumbnail at a time, so that they never crowd out the page being shown."""
        if self._thumb_loading or not self._thumb_queue or self.batch is None:
            return
        seq = self._thumb_queue.pop(0)
        if self.tree.has_thumbnail(seq):
            self._thumb_timer.start(0)
            return
        batch = self.batch
        self._thumb_loading = True

        def done(data: Any) -> None:
            self._thumb_loading = False
            if batch == self.batch and isinstance(data, bytes | bytearray):
                image = QImage.fromData(bytes(data))
                if not image.isNull():
                    self.tree.set_thumbnail(seq, image)
            if not self._thumb_timer.isActive():  # no key since: go on
                self._thumb_timer.start(0)

        def failed(_e: BaseException) -> None:
            self._thumb_loading = False

        self.link.submit("page_thumbnail", {"batch": batch, "seq": seq, "width": THUMB_WIDTH}, done, failed)

    # ------------------------------------------------------------------ keys
    def keyPressEvent(self, event: QKeyEvent) -> None:
        if self.stack.currentWidget() is not self.batch_page:
            super().keyPressEvent(event)
            return
        action = action_for(event)
        if action is None:
            super().keyPressEvent(event)
            return
        self.view.mark()
        self._thumb_timer.start(THUMB_IDLE_MS)
        if self._detail_timer.isActive():
            self._detail_timer.start(DETAIL_DELAY_MS)  # still working: later
        self.act(action)

    def _panel_open(self) -> bool:
        return any(p.isVisible() for p in (self.reason_panel, self.choice_panel, self.index_panel))

    def _panel_closed(self) -> None:
        self._pending_reason = None
        self._choice_action = None
        self.setFocus()

    def act(self, action: str) -> None:
        """Do one action of :data:`KEYMAP` (keys and buttons both come here)."""
        if action == "help":
            self.help.toggle()
            return
        if self.help.isVisible():
            if action == "back":
                self.help.hide()
            return
        if action == "back":
            self.back_to_queue()
            return
        handler = getattr(self, f"_do_{action}", None)
        if handler is not None:
            handler()


class _NotShown(Exception):
    """The page left the screen before its full image was fetched: it is not fetched (not seen)."""


__all__ = ["KEYMAP", "DecodedPage", "VerifyScreen", "flag_rows", "help_rows"]

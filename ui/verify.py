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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .page_view import ACTUAL, DOUBLE, FIT_WIDTH, PAN_STEP, DecodedPage, ImageCache, PageView
from .qt import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QImage,
    QKeyEvent,
    QLabel,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
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
from .widgets import bi, button, describe_error, show_error, show_ok

K = Qt.Key
M = Qt.KeyboardModifier
NONE, ALT, CTRL, SHIFT = M.NoModifier, M.AltModifier, M.ControlModifier, M.ShiftModifier
PREVIEW_MAX = 1024  # page_thumbnail's largest width
DETAIL_DELAY_MS = 1200  # the batch's detail reloads once the supervisor pauses this long (not per Enter)
THUMB_IDLE_MS = 1200  # thumbnails of unvisited pages load after this long without a key
QUEUE_COLUMNS = ["Batch / बैच", "State / स्थिति", "Pages / पृष्ठ", "ACR files / फ़ाइलें", "Flagged / चिह्नित",
                 "Operator / ऑपरेटर", "Closed / बंद"]

# (keys, modifiers, action, Hindi, English): the dispatch table and the help overlay are the same data.
KEYMAP: list[tuple[tuple[Any, ...], Any, str, str, str]] = [
    ((K.Key_Return, K.Key_Enter), NONE, "ok_next", "ठीक, अगला पृष्ठ", "OK and next page"),
    ((K.Key_R,), NONE, "rescan", "दोबारा स्कैन (कारण)", "rescan (reason)"),
    ((K.Key_Delete,), NONE, "delete", "हटाएँ (कारण)", "delete (reason)"),
    ((K.Key_BracketLeft,), NONE, "rotate_left", "बाएँ घुमाएँ 90°", "rotate left 90°"),
    ((K.Key_BracketRight,), NONE, "rotate_right", "दाएँ घुमाएँ 90°", "rotate right 90°"),
    ((K.Key_Right, K.Key_Down, K.Key_Space), NONE, "next", "अगला पृष्ठ", "next page"),
    ((K.Key_Left, K.Key_Up, K.Key_Backspace), NONE, "previous", "पिछला पृष्ठ", "previous page"),
    ((K.Key_Home,), NONE, "first", "पहला पृष्ठ", "first page"),
    ((K.Key_End,), NONE, "last", "अंतिम पृष्ठ", "last page"),
    ((K.Key_PageDown,), NONE, "next_file", "अगली ACR फ़ाइल", "next ACR file"),
    ((K.Key_PageUp,), NONE, "previous_file", "पिछली ACR फ़ाइल", "previous ACR file"),
    ((K.Key_W,), NONE, "fit_width", "पूरी चौड़ाई", "zoom: fit width"),
    ((K.Key_1,), NONE, "zoom_100", "100 %", "zoom 100 %"),
    ((K.Key_2,), NONE, "zoom_200", "200 %", "zoom 200 %"),
    ((K.Key_Left,), SHIFT, "pan_left", "खिसकाएँ ←", "pan left"),
    ((K.Key_Right,), SHIFT, "pan_right", "खिसकाएँ →", "pan right"),
    ((K.Key_Up,), SHIFT, "pan_up", "खिसकाएँ ↑", "pan up"),
    ((K.Key_Down,), SHIFT, "pan_down", "खिसकाएँ ↓", "pan down"),
    ((K.Key_Up,), ALT, "move_up", "पृष्ठ ऊपर करें (क्रम)", "move page up (reorder)"),
    ((K.Key_Down,), ALT, "move_down", "पृष्ठ नीचे करें (क्रम)", "move page down (reorder)"),
    ((K.Key_PageUp,), ALT, "to_previous_file", "पृष्ठ पिछली फ़ाइल में", "move page to the previous file"),
    ((K.Key_PageDown,), ALT, "to_next_file", "पृष्ठ अगली फ़ाइल में", "move page to the next file"),
    ((K.Key_M,), NONE, "move_to", "पृष्ठ किसी फ़ाइल में", "move page to a file…"),
    ((K.Key_S,), NONE, "split", "यहाँ से नई फ़ाइल", "split: a new file from this page"),
    ((K.Key_J,), NONE, "merge", "फ़ाइल दूसरी में जोड़ें", "merge this file into another (join)…"),
    ((K.Key_I,), NONE, "reindex", "फ़ाइल का सूचकांक बदलें", "re-index this file…"),
    ((K.Key_F,), NONE, "accept_flags", "फ़ाइल के चिह्न स्वीकार", "accept this file's flags"),
    ((K.Key_F,), SHIFT, "reject_flags", "फ़ाइल के चिह्न अस्वीकार", "reject this file's flags (reason)"),
    ((K.Key_A,), NONE, "approve", "बैच स्वीकृत करें", "approve the batch"),
    ((K.Key_R,), CTRL, "return_batch", "बैच ऑपरेटर को लौटाएँ", "return the batch to the operator"),
    ((K.Key_F1, K.Key_Question), NONE, "help", "यह सहायता", "this help"),
    ((K.Key_Escape,), NONE, "back", "बंद करें / कतार पर लौटें", "close / back to the queue"),
]
_DISPATCH: dict[tuple[int, int], str] = {}
for _keys, _mods, _action, _hi, _en in KEYMAP:
    for _key in _keys:
        _DISPATCH[(int(_key.value), int(_mods.value))] = _action
# Shift is part of typing these characters on many layouts; it does not change what they mean.
_SHIFT_FREE = {int(K.Key_Question.value), int(K.Key_BracketLeft.value), int(K.Key_BracketRight.value),
               int(K.Key_F1.value)}


def key_name(key: Any) -> str:
    names = {K.Key_Return: "Enter", K.Key_Enter: "Enter (keypad)", K.Key_Delete: "Delete", K.Key_Space: "Space",
             K.Key_Backspace: "Backspace", K.Key_PageUp: "PageUp", K.Key_PageDown: "PageDown", K.Key_Home: "Home",
             K.Key_End: "End", K.Key_Left: "←", K.Key_Right: "→", K.Key_Up: "↑", K.Key_Down: "↓",
             K.Key_Escape: "Esc", K.Key_F1: "F1", K.Key_Question: "?", K.Key_BracketLeft: "[",
             K.Key_BracketRight: "]"}
    return names.get(key, str(key.name).removeprefix("Key_"))


def help_rows() -> list[tuple[str, str]]:
    """(keys, "Hindi / English") for the help overlay, from :data:`KEYMAP`."""
    rows = []
    for keys, mods, _action, hi, en in KEYMAP:
        prefix = {ALT: "Alt+", CTRL: "Ctrl+", SHIFT: "Shift+"}.get(mods, "")
        text = " / ".join(prefix + key_name(k) for k in keys if k != K.Key_Enter)
        rows.append((text, bi(hi, en)))
    return rows


def action_for(event: QKeyEvent) -> str | None:
    mods = event.modifiers() & ~M.KeypadModifier
    key = event.key()
    found = _DISPATCH.get((int(key), int(mods.value)))
    if found is None and int(key) in _SHIFT_FREE:
        found = _DISPATCH.get((int(key), int((mods & ~SHIFT).value)))
    return found


# ---------------------------------------------------------------------------------------------- flags
FLAG_NAMES = {
    "blank": ("खाली पृष्ठ", "blank page"),
    "orientation_uncertain": ("दिशा अनिश्चित", "orientation uncertain"),
    "double_feed": ("दो पन्ने साथ", "double feed"),
    "damaged": ("क्षतिग्रस्त", "damaged"),
    "not_in_roster": ("रोस्टर में नहीं", "not in roster"),
    "duplicate": ("दोहराव", "duplicate ACR"),
    "separator_unreadable": ("विभाजक अपठनीय", "separator unreadable"),
    "low_resolution": ("कम रिज़ॉल्यूशन", "low resolution"),
    "too_dark": ("बहुत गहरा", "too dark"),
    "too_light": ("बहुत हल्का", "too light"),
    "low_contrast": ("कम कंट्रास्ट", "low contrast"),
    "blurred": ("धुंधला", "blurred"),
    "content_cut_off": ("सामग्री कटी", "content cut off"),
    "skew_uncorrectable": ("अधिक तिरछा", "skew not correctable"),
}


def flag_rows(page: dict[str, Any] | None, doc: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """(flag in Hindi / English, the measured value behind it, the engine's full message) for the page and
    its ACR file."""
    rows: list[tuple[str, str, str]] = []
    if page is not None:
        analysis = page.get("analysis") or {}
        quality = {str(q.get("code")): q for q in analysis.get("quality") or [] if isinstance(q, dict)}
        for flag in page.get("flags") or []:
            hi, en = FLAG_NAMES.get(flag, ("", flag))
            q = quality.get(flag)
            message = ""
            if q is not None:
                message = bi(str(q.get("message_hi") or hi), str(q.get("message_en") or en))
                value = f"{q.get('value')} (limit {q.get('threshold')})"
            elif flag == "blank":
                b = analysis.get("blank") or {}
                value = f"ink {b.get('ink_mm2')} mm², {b.get('components')} marks"
            elif flag == "orientation_uncertain":
                o = analysis.get("orientation") or {}
                value = f"confidence {o.get('confidence')}, turned {o.get('rotation')}°"
            else:
                value = ""
            rows.append((bi(hi, en) if hi else en, value, message or value))
        if analysis.get("skew") is not None and "skew" not in quality:
            skew = f"{analysis['skew']}° (corrected)"
            rows.append((bi("तिरछापन", "skew"), skew, skew))
    if doc is not None:
        flags = list(doc.get("flags") or [])
        if doc.get("not_in_roster") and "not_in_roster" not in flags:
            flags.append("not_in_roster")
        verdicts = doc.get("flag_verdicts") or {}
        for flag in flags:
            hi, en = FLAG_NAMES.get(flag, ("", flag))
            v = verdicts.get(flag) or {}
            value = f"file: {v.get('verdict', 'no verdict yet')}"
            if flag == "not_in_roster" and doc.get("not_in_roster"):
                value += f" — {doc['not_in_roster']}"
            rows.append((bi(hi, en) if hi else en, value, value))
    return rows


# ---------------------------------------------------------------------------------------------- panels
class ReasonPanel(QFrame):
    """Pick a reason (the configured list; 1–9 pick directly) and/or type one; Enter confirms, Esc cancels."""

    chosen = Signal(str)
    cancelled = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.setFrameShape(QFrame.Shape.Box)
        self.setStyleSheet("ReasonPanel { background: #fff8e1; }")
        layout = QVBoxLayout(self)
        self.title = QLabel("")
        self.title.setWordWrap(True)
        layout.addWidget(self.title)
        self.list = QListWidget()
        self.list.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        layout.addWidget(self.list)
        self.text = QLineEdit()
        self.text.setPlaceholderText(bi("अपना कारण लिखें (वैकल्पिक)", "or type a reason"))
        layout.addWidget(self.text)
        hint = QLabel(bi("↑↓ या 1–9 चुनें, Enter पुष्टि, Esc रद्द", "↑↓ or 1–9 pick, Enter confirm, Esc cancel"))
        layout.addWidget(hint)
        self.message = QLabel("")
        self.message.setStyleSheet("color: #b00020;")
        layout.addWidget(self.message)
        self.text.installEventFilter(self)
        self.hide()

    def open(self, title: str, reasons: list[str]) -> None:
        self.title.setText(f"<b>{title}</b>")
        self.list.clear()
        for i, r in enumerate(reasons):
            self.list.addItem(f"{i + 1}. {r}" if i < 9 else r)
        self._reasons = list(reasons)
        self.list.setCurrentRow(-1)
        self.text.clear()
        self.message.clear()
        self.show()
        self.raise_()
        self.text.setFocus()

    def reason(self) -> str:
        row = self.list.currentRow()
        picked = self._reasons[row] if 0 <= row < len(self._reasons) else ""
        typed = self.text.text().strip()
        return f"{picked}: {typed}" if picked and typed else picked or typed

    def eventFilter(self, watched: Any, event: Any) -> bool:
        if watched is self.text and event.type() == event.Type.KeyPress:
            key = event.key()
            if key in (K.Key_Return, K.Key_Enter):
                reason = self.reason()
                if not reason:
                    self.message.setText(bi("कारण आवश्यक है", "a reason is required"))
                    return True
                self.hide()
                self.chosen.emit(reason)
                return True
            if key == K.Key_Escape:
                self.hide()
                self.cancelled.emit()
                return True
            if key in (K.Key_Up, K.Key_Down):
                row = self.list.currentRow() + (1 if key == K.Key_Down else -1)
                self.list.setCurrentRow(max(0, min(self.list.count() - 1, row)))
                return True
            if not self.text.text() and K.Key_1 <= key <= K.Key_9:
                row = int(key) - int(K.Key_1)
                if row < self.list.count():
                    self.list.setCurrentRow(row)
                    return True
        return False


class ChoicePanel(QFrame):
    """Pick one of a list with ↑↓ (or 1–9); Enter confirms, Esc cancels (the file a page moves to)."""

    chosen = Signal(int)  # the index
    cancelled = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.setFrameShape(QFrame.Shape.Box)
        self.setStyleSheet("ChoicePanel { background: #e3f2fd; }")
        layout = QVBoxLayout(self)
        self.title = QLabel("")
        layout.addWidget(self.title)
        self.list = QListWidget()
        layout.addWidget(self.list)
        layout.addWidget(QLabel(bi("↑↓ या 1–9 चुनें, Enter पुष्टि, Esc रद्द", "↑↓ or 1–9 pick, Enter confirm, Esc cancel")))
        self.list.installEventFilter(self)
        self.hide()

    def open(self, title: str, items: list[str], current: int = 0) -> None:
        self.title.setText(f"<b>{title}</b>")
        self.list.clear()
        self.list.addItems([f"{i + 1}. {t}" for i, t in enumerate(items)])
        self.list.setCurrentRow(max(0, min(current, len(items) - 1)))
        self.show()
        self.raise_()
        self.list.setFocus()

    def eventFilter(self, watched: Any, event: Any) -> bool:
        if watched is self.list and event.type() == event.Type.KeyPress:
            key = event.key()
            if key in (K.Key_Return, K.Key_Enter):
                self.hide()
                self.chosen.emit(self.list.currentRow())
                return True
            if key == K.Key_Escape:
                self.hide()
                self.cancelled.emit()
                return True
            if K.Key_1 <= key <= K.Key_9 and int(key) - int(K.Key_1) < self.list.count():
                self.list.setCurrentRow(int(key) - int(K.Key_1))
                return True
        return False


class IndexPanel(QFrame):
    """Re-index an ACR file: employee code, period, and a reason if the person is not in the roster.
    The service validates it against the roster again (and refuses with the reason)."""

    submitted = Signal(str, str, str)  # employee code, period, not-in-roster reason
    cancelled = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.setFrameShape(QFrame.Shape.Box)
        self.setStyleSheet("IndexPanel { background: #e8f5e9; }")
        layout = QVBoxLayout(self)
        self.title = QLabel("")
        layout.addWidget(self.title)
        self.code = QLineEdit()
        self.code.setPlaceholderText(bi("कर्मचारी कोड", "employee code"))
        self.period = QLineEdit()
        self.period.setPlaceholderText(bi("अवधि, जैसे 2019-20", "period, e.g. 2019-20 or 2019-04-01..2019-10-31"))
        self.not_in_roster = QLineEdit()
        self.not_in_roster.setPlaceholderText(bi("रोस्टर में नहीं: कारण (वैकल्पिक)", "not in roster: reason (optional)"))
        for w in (self.code, self.period, self.not_in_roster):
            layout.addWidget(w)
            w.installEventFilter(self)
        layout.addWidget(QLabel(bi("Tab अगला खाना, Enter भेजें, Esc रद्द", "Tab next field, Enter submit, Esc cancel")))
        self.hide()

    def open(self, title: str, code: str, period: str) -> None:
        self.title.setText(f"<b>{title}</b>")
        self.code.setText(code)
        self.period.setText(period)
        self.not_in_roster.clear()
        self.show()
        self.raise_()
        self.code.setFocus()
        self.code.selectAll()

    def eventFilter(self, watched: Any, event: Any) -> bool:
        if event.type() == event.Type.KeyPress:
            if event.key() in (K.Key_Return, K.Key_Enter):
                self.hide()
                self.submitted.emit(self.code.text().strip(), self.period.text().strip(),
                                    self.not_in_roster.text().strip())
                return True
            if event.key() == K.Key_Escape:
                self.hide()
                self.cancelled.emit()
                return True
        return False


class HelpOverlay(QFrame):
    """Every key of the screen (from :data:`KEYMAP`), over the batch; F1, ? or Esc closes it."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setStyleSheet("HelpOverlay { background: rgba(20, 20, 20, 225); } QLabel { color: white; }")
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("<h2>कुंजियाँ / Keys</h2>"))
        grid = QHBoxLayout()
        rows = help_rows()
        half = (len(rows) + 1) // 2
        for chunk in (rows[:half], rows[half:]):
            text = "".join(f"<tr><td><b>{k}</b>&nbsp;&nbsp;</td><td>{v}</td></tr>" for k, v in chunk)
            label = QLabel(f"<table cellspacing='3'>{text}</table>")
            label.setTextFormat(Qt.TextFormat.RichText)
            label.setAlignment(Qt.AlignmentFlag.AlignTop)
            grid.addWidget(label, 1)
        layout.addLayout(grid, 1)
        self.hide()

    def toggle(self) -> None:
        if self.isVisible():
            self.hide()
            return
        parent = self.parentWidget()
        if parent is not None:
            self.setGeometry(parent.rect())
        self.show()
        self.raise_()


# ---------------------------------------------------------------------------------------------- the screen
class VerifyScreen(QWidget):
    """The batch queue and the batch being verified (see the module's description)."""

    opened = Signal(str)  # a batch was opened (its detail arrived)
    detail_changed = Signal()

    def __init__(self, link: ServiceLink) -> None:
        super().__init__()
        self.link = link
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
        self.tree = AssemblyTree()
        self.tree.page_chosen.connect(self.go_to)
        self.tree.move_requested.connect(self._tree_move)
        split.addWidget(self.tree)
        middle = QWidget()
        mid = QVBoxLayout(middle)
        mid.setContentsMargins(0, 0, 0, 0)
        self.page_label = QLabel("")
        mid.addWidget(self.page_label)
        self.view = PageView()
        self.view.resized.connect(lambda _w: self._show_current())
        mid.addWidget(self.view, 1)
        split.addWidget(middle)
        side = QWidget()
        right = QVBoxLayout(side)
        right.setContentsMargins(0, 0, 0, 0)
        right.addWidget(QLabel(bi("<b>चिह्न</b>", "<b>Flags</b>")))
        self.flags = QTableWidget(0, 2)
        self.flags.setHorizontalHeaderLabels([bi("चिह्न", "flag"), bi("मापा गया", "measured")])
        self.flags.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.flags.setWordWrap(True)  # a quality flag's own message is a sentence
        self.flags.verticalHeader().setVisible(False)
        self.flags.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.flags.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.flags.setMaximumHeight(150)
        right.addWidget(self.flags)
        right.addWidget(QLabel(bi("<b>OCR पाठ</b>", "<b>OCR text</b>")))
        self.ocr = QPlainTextEdit()
        self.ocr.setReadOnly(True)
        # no clipboard: the text can be read, not selected or copied; no context menu (copy, select all)
        self.ocr.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
        self.ocr.setContextMenuPolicy(Qt.ContextMenuPolicy.NoContextMenu)
        self.ocr.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        right.addWidget(self.ocr, 1)
        right.addWidget(QLabel(bi("<b>स्वीकृति से पहले</b>", "<b>Before approval</b>")))
        self.blockers = QLabel("")
        self.blockers.setWordWrap(True)
        self.blockers.setAlignment(Qt.AlignmentFlag.AlignTop)
        right.addWidget(self.blockers)
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
            right.addWidget(panel)
        split.addWidget(side)
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
        rows = flag_rows(page, doc)
        self.flags.setRowCount(len(rows))
        for r, (flag, value, message) in enumerate(rows):
            for c, text in enumerate((flag, value)):
                item = QTableWidgetItem(text)
                item.setToolTip(message)
                self.flags.setItem(r, c, item)
        self.flags.resizeRowsToContents()
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


class _NotShown(Exception):
    """The page left the screen before its full image was fetched: it is not fetched (not seen)."""


__all__ = ["KEYMAP", "DecodedPage", "VerifyScreen", "flag_rows", "help_rows"]

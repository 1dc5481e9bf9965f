"""The small keyboard panels of the verification screen (:class:`ui.verify.VerifyScreen`), shown beside the
page while the supervisor answers one question and hidden again on Enter or Esc:

* :class:`ReasonPanel`: why (rescan, delete, reject a file's flags, return the batch): the station's
  configured reasons (1-9 pick) and/or free text; a reason is required;
* :class:`ChoicePanel`: which ACR file (move a page to, merge a file into);
* :class:`IndexPanel`: re-index an ACR file (employee code, period, a not-in-roster reason).

They only collect an answer and emit it; the screen sends it to the service.  Apart from the screen so
that each dialog's keys are read in one place.
"""

from __future__ import annotations

from typing import Any

from .qt import QFrame, QLabel, QLineEdit, QListWidget, Qt, QVBoxLayout, Signal
from .verify_keys import K
from .widgets import bi


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


__all__ = ["ChoicePanel", "IndexPanel", "ReasonPanel"]

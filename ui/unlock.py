"""Start of day: the station is locked (no keys in memory) until a supervisor or the unit head unlocks it.

:class:`UnlockScreen` asks the signed-in supervisor or unit head for their password again (the service's
``unlock`` opens their key slot with it); a unit head may use the recovery code instead (``unlock`` with
``recovery_code``; the service audits it).  :class:`StationLockedScreen` is what an operator sees
meanwhile: nothing to do until a supervisor unlocks.
"""

from __future__ import annotations

from typing import Any

from .qt import QHBoxLayout, QLabel, QVBoxLayout, QWidget, Signal
from .service_link import ServiceLink
from .widgets import CENTER, bi, button, heading, message_line, password_field, show_error, text_field

UNLOCK_TITLE = bi("स्टेशन खोलें", "Unlock the station")
LOCKED_FOR_OPERATOR = bi("स्टेशन बंद है — पर्यवेक्षक को इसे खोलना होगा", "Station locked — a supervisor must unlock it")


class UnlockScreen(QWidget):
    unlocked = Signal()
    sign_out_requested = Signal()

    def __init__(self, link: ServiceLink) -> None:
        super().__init__()
        self.link = link
        outer = QVBoxLayout(self)
        outer.addStretch(2)
        outer.addWidget(heading(UNLOCK_TITLE, 24))
        self.who = QLabel("")
        self.who.setAlignment(CENTER)
        self.who.setWordWrap(True)
        outer.addWidget(self.who)
        self.password = password_field(bi("आपका पासवर्ड", "your password"))
        self.password.setMaximumWidth(480)
        outer.addWidget(self.password, 0, CENTER)
        self.button = button(UNLOCK_TITLE)
        self.button.setMaximumWidth(480)
        outer.addWidget(self.button, 0, CENTER)
        # the unit head's recovery path (the code printed once at init)
        self.recovery_toggle = button(bi("रिकवरी कोड का उपयोग करें", "Use the recovery code"))
        self.recovery_toggle.setMaximumWidth(480)
        outer.addWidget(self.recovery_toggle, 0, CENTER)
        self.recovery_code = text_field("XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX")
        self.recovery_code.setMaximumWidth(480)
        self.recovery_button = button(bi("रिकवरी कोड से खोलें", "Unlock with the recovery code"))
        self.recovery_button.setMaximumWidth(480)
        outer.addWidget(self.recovery_code, 0, CENTER)
        outer.addWidget(self.recovery_button, 0, CENTER)
        self.message = message_line()
        outer.addWidget(self.message)
        row = QHBoxLayout()
        row.addStretch(1)
        self.sign_out = button(bi("बाहर निकलें", "Sign out"))
        row.addWidget(self.sign_out)
        row.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(3)
        self.button.clicked.connect(self.submit)
        self.password.returnPressed.connect(self.submit)
        self.recovery_toggle.clicked.connect(self._show_recovery)
        self.recovery_button.clicked.connect(self.submit_recovery)
        self.sign_out.clicked.connect(self.sign_out_requested)
        self.prepare("", "")

    def prepare(self, name: str, role: str) -> None:
        """For the person just signed in: only a unit head is offered the recovery code."""
        self.who.setText(bi(f"दिन की शुरुआत: {name}, स्टेशन खोलने के लिए अपना पासवर्ड फिर से लिखें",
                            f"Start of day: {name}, type your password again to unlock the station"))
        self.password.clear()
        self.recovery_code.clear()
        self.message.setText("")
        self.recovery_toggle.setVisible(role == "unit-head")
        self.recovery_code.setVisible(False)
        self.recovery_button.setVisible(False)
        self._busy(False)

    def _show_recovery(self) -> None:
        self.recovery_code.setVisible(True)
        self.recovery_button.setVisible(True)
        self.recovery_code.setFocus()

    def _busy(self, busy: bool) -> None:
        for b in (self.button, self.recovery_button, self.recovery_toggle, self.sign_out):
            b.setEnabled(not busy)

    def submit(self) -> None:
        if not self.password.text():
            self.message.setText(bi("पासवर्ड लिखें", "type your password"))
            return
        self._run({"password": self.password.text()})

    def submit_recovery(self) -> None:
        code = self.recovery_code.text().strip()
        if not code:
            self.message.setText(bi("रिकवरी कोड लिखें", "type the recovery code"))
            return
        self._run({"recovery_code": code})

    def _run(self, args: dict[str, Any]) -> None:
        self._busy(True)
        self.message.setText(bi("स्टेशन खुल रहा है…", "unlocking…"))
        self.link.submit("unlock", args, self._done, self._failed)

    def _done(self, _result: Any) -> None:
        self.password.clear()
        self.recovery_code.clear()
        self._busy(False)
        self.message.setText("")
        self.unlocked.emit()

    def _failed(self, err: BaseException) -> None:
        self.password.clear()
        self._busy(False)
        show_error(self.message, err)


class StationLockedScreen(QWidget):
    """An operator (or anyone who may not unlock) signed in while the station is locked."""

    check_again = Signal()
    sign_out_requested = Signal()

    def __init__(self) -> None:
        super().__init__()
        outer = QVBoxLayout(self)
        outer.addStretch(2)
        self.title = heading(LOCKED_FOR_OPERATOR, 24)
        outer.addWidget(self.title)
        self.who = QLabel("")
        self.who.setAlignment(CENTER)
        outer.addWidget(self.who)
        row = QHBoxLayout()
        row.addStretch(1)
        self.again = button(bi("फिर देखें", "Check again"))
        self.sign_out = button(bi("बाहर निकलें", "Sign out"))
        row.addWidget(self.again)
        row.addWidget(self.sign_out)
        row.addStretch(1)
        outer.addLayout(row)
        self.message = message_line()
        outer.addWidget(self.message)
        outer.addStretch(3)
        self.again.clicked.connect(self.check_again)
        self.sign_out.clicked.connect(self.sign_out_requested)

    def prepare(self, name: str, role: str) -> None:
        self.who.setText(bi(f"{name} ({role}) के रूप में प्रवेश", f"signed in as {name} ({role})"))
        self.message.setText("")

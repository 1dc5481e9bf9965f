"""The lock screen: after the session's idle time or the Lock button it covers the whole kiosk.

Only the SAME person's password resumes the session (the service's ``resume``: another person's password is
a wrong password for the session's owner, and counts as a failed sign-in for them).  Someone else may
instead choose "someone else": they sign in with their own name, and the locked session is then ended
(``end_locked_session``), never taken over.
"""

from __future__ import annotations

from typing import Any

from .qt import QHBoxLayout, QLabel, Qt, QVBoxLayout, QWidget, Signal
from .service_link import ServiceLink
from .widgets import CENTER, bi, button, heading, message_line, password_field, show_error

LOCKED_TITLE = bi("स्क्रीन बंद है", "Screen locked")


class LockScreen(QWidget):
    resumed = Signal()
    someone_else = Signal()

    def __init__(self, link: ServiceLink) -> None:
        super().__init__()
        self.link = link
        self.locked_token: str | None = None
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)  # the dark cover over everything
        self.setStyleSheet("LockScreen { background: #263238; } QLabel { color: white; }")
        outer = QVBoxLayout(self)
        outer.addStretch(2)
        outer.addWidget(heading(LOCKED_TITLE, 28))
        self.who = QLabel("")
        self.who.setAlignment(CENTER)
        self.who.setWordWrap(True)
        outer.addWidget(self.who)
        self.password = password_field(bi("पासवर्ड", "password"))
        self.password.setMaximumWidth(480)
        outer.addWidget(self.password, 0, CENTER)
        self.button = button(bi("फिर से खोलें", "Resume"))
        self.button.setMaximumWidth(480)
        outer.addWidget(self.button, 0, CENTER)
        self.message = message_line()
        outer.addWidget(self.message)
        row = QHBoxLayout()
        row.addStretch(1)
        self.other = button(bi("कोई और व्यक्ति? प्रवेश करें", "Someone else? Sign in"))
        row.addWidget(self.other)
        row.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(3)
        self.button.clicked.connect(self.submit)
        self.password.returnPressed.connect(self.submit)
        self.other.clicked.connect(self.someone_else)

    def prepare(self, name: str, token: str | None) -> None:
        self.locked_token = token
        self.who.setText(bi(f"{name} का सत्र बंद है: {name} का पासवर्ड ही इसे खोलता है",
                            f"{name}'s session is locked: only {name}'s password resumes it"))
        self.password.clear()
        self.message.setText("")
        self.button.setEnabled(True)
        self.password.setFocus()

    def submit(self) -> None:
        if not self.password.text() or self.locked_token is None:
            return
        self.button.setEnabled(False)
        self.link.submit("resume", {"token": self.locked_token, "password": self.password.text()},
                         self._done, self._failed)

    def _done(self, _result: Any) -> None:
        self.password.clear()
        self.button.setEnabled(True)
        self.message.setText("")
        self.resumed.emit()

    def _failed(self, err: BaseException) -> None:
        self.password.clear()
        self.button.setEnabled(True)
        show_error(self.message, err)
        self.message.setStyleSheet("color: #ff8a80; font-weight: bold;")  # readable on the dark cover

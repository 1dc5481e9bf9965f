"""The sign-in screen: the first thing the kiosk shows, filling the screen (Hindi first, English beside)."""

from __future__ import annotations

from typing import Any

from .qt import QFormLayout, QVBoxLayout, QWidget, Signal
from .service_link import ServiceLink
from .widgets import CENTER, bi, button, heading, message_line, password_field, show_error, text_field


class SignInScreen(QWidget):
    """Name and password; the service's ``sign_in`` decides.  Emits ``signed_in`` with
    ``{"token", "name", "role"}`` (the link's token is set by then)."""

    signed_in = Signal(object)

    def __init__(self, link: ServiceLink, station_title: str) -> None:
        super().__init__()
        self.link = link
        outer = QVBoxLayout(self)
        outer.addStretch(2)
        outer.addWidget(heading(station_title, 26))
        outer.addWidget(heading(bi("प्रवेश करें", "Sign in"), 20))
        form = QFormLayout()
        self.name = text_field(bi("आपका नाम", "your name"))
        self.password = password_field()
        form.addRow(bi("नाम", "Name"), self.name)
        form.addRow(bi("पासवर्ड", "Password"), self.password)
        box = QWidget()
        box.setLayout(form)
        box.setMaximumWidth(640)
        outer.addWidget(box, 0, CENTER)
        self.button = button(bi("प्रवेश करें", "Sign in"))
        self.button.setMaximumWidth(640)
        outer.addWidget(self.button, 0, CENTER)
        self.message = message_line()
        outer.addWidget(self.message)
        outer.addStretch(3)
        self.button.clicked.connect(self.submit)
        self.name.returnPressed.connect(self.password.setFocus)
        self.password.returnPressed.connect(self.submit)

    def reset(self, note: str = "") -> None:
        """Back to an empty form (after sign-out, or a session that ended); ``note`` says why."""
        self.name.clear()
        self.password.clear()
        self.message.setText(note)
        self.button.setEnabled(True)
        self.name.setFocus()

    def submit(self) -> None:
        name, password = self.name.text().strip(), self.password.text()
        if not name or not password:
            self.message.setText(bi("नाम और पासवर्ड लिखें", "type your name and password"))
            return
        self.button.setEnabled(False)
        self.message.setText(bi("जाँच हो रही है…", "checking…"))
        self.link.submit("sign_in", {"name": name, "password": password}, self._done, self._failed)

    def _done(self, result: Any) -> None:
        self.password.clear()
        self.button.setEnabled(True)
        self.message.setText("")
        self.link.token = str(result["token"])
        self.signed_in.emit(dict(result))

    def _failed(self, err: BaseException) -> None:
        self.password.clear()
        self.button.setEnabled(True)
        show_error(self.message, err)
        self.password.setFocus()


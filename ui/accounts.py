"""The station admin's account screen: the people of the station, add one, disable/enable, reset a password.

Every change is a service operation (``users_list``, ``users_add``, ``users_disable``, ``users_enable``,
``users_passwd``); the service checks the admin's permission and writes the audit entry.  The admin's kiosk
shows this screen and the audit trail, never a batch or a page.
"""

from __future__ import annotations

from typing import Any

from .qt import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from .service_link import ServiceLink
from .widgets import bi, button, heading, message_line, password_field, show_error, show_ok, text_field

ROLES = [("operator", "ऑपरेटर"), ("supervisor", "पर्यवेक्षक"), ("unit-head", "इकाई प्रमुख"), ("admin", "स्टेशन एडमिन")]
COLUMNS = [bi("नाम", "Name"), bi("भूमिका", "Role"), bi("स्थिति", "State")]


def wrapped(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    return label


def role_text(role: str) -> str:
    hindi = dict(ROLES).get(role, "")
    return bi(hindi, role) if hindi else role


class AccountsScreen(QWidget):
    def __init__(self, link: ServiceLink) -> None:
        super().__init__()
        self.link = link
        self.people: list[dict[str, Any]] = []
        outer = QVBoxLayout(self)
        outer.addWidget(heading(bi("खाते", "Accounts"), 18))
        body = QHBoxLayout()
        outer.addLayout(body, 1)

        left = QVBoxLayout()
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        left.addWidget(self.table, 1)
        row = QHBoxLayout()
        self.disable_button = button(bi("खाता बंद करें", "Disable"))
        self.enable_button = button(bi("खाता चालू करें", "Enable"))
        self.refresh_button = button(bi("ताज़ा करें", "Refresh"))
        for b in (self.disable_button, self.enable_button, self.refresh_button):
            row.addWidget(b)
        left.addLayout(row)
        reset = QFormLayout()
        self.reset_password = password_field()
        self.reset_repeat = password_field()
        reset.addRow(bi("नया पासवर्ड", "New password"), self.reset_password)
        reset.addRow(bi("फिर से", "Again"), self.reset_repeat)
        left.addWidget(wrapped(bi("चुने गए व्यक्ति का पासवर्ड बदलें", "Reset the selected person's password")))
        left.addLayout(reset)
        self.reset_button = button(bi("पासवर्ड बदलें", "Reset password"))
        left.addWidget(self.reset_button)
        body.addLayout(left, 3)

        right = QVBoxLayout()
        right.addWidget(QLabel(f"<b>{bi('नया व्यक्ति जोड़ें', 'Add a person')}</b>"))
        form = QFormLayout()
        self.new_name = text_field()
        self.new_role = QComboBox()
        for value, hindi in ROLES:
            self.new_role.addItem(bi(hindi, value), value)
        self.new_password = password_field()
        self.new_repeat = password_field()
        form.addRow(bi("नाम", "Name"), self.new_name)
        form.addRow(bi("भूमिका", "Role"), self.new_role)
        form.addRow(bi("पहला पासवर्ड", "First password"), self.new_password)
        form.addRow(bi("फिर से", "Again"), self.new_repeat)
        right.addLayout(form)
        self.add_button = button(bi("जोड़ें", "Add"))
        right.addWidget(self.add_button)
        right.addWidget(wrapped(bi("पासवर्ड: कम से कम 10 अक्षर; आम पासवर्ड नहीं चलेंगे",
                                   "password: at least 10 characters; common passwords are refused")))
        right.addStretch(1)
        body.addLayout(right, 2)

        self.message = message_line()
        outer.addWidget(self.message)
        self.add_button.clicked.connect(self.add_person)
        self.disable_button.clicked.connect(lambda: self._on_selected("users_disable", bi("खाता बंद", "disabled")))
        self.enable_button.clicked.connect(lambda: self._on_selected("users_enable", bi("खाता चालू", "enabled")))
        self.reset_button.clicked.connect(self.reset_selected)
        self.refresh_button.clicked.connect(self.refresh)

    # ------------------------------------------------------------------ reading
    def refresh(self) -> None:
        self.link.submit("users_list", {}, self._listed, self._failed)

    def _listed(self, people: Any) -> None:
        self.people = list(people or [])
        self.table.setRowCount(len(self.people))
        for r, p in enumerate(self.people):
            state = bi("बंद", "disabled") if p.get("disabled") else bi("सक्रिय", "active")
            for c, value in enumerate([str(p["name"]), role_text(str(p["role"])), state]):
                self.table.setItem(r, c, QTableWidgetItem(value))

    def selected_name(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        return str(self.people[rows[0].row()]["name"])

    def select(self, name: str) -> None:
        for r, p in enumerate(self.people):
            if p["name"] == name:
                self.table.selectRow(r)

    # ------------------------------------------------------------------ changes
    def add_person(self) -> None:
        name, password = self.new_name.text().strip(), self.new_password.text()
        if not name:
            self.message.setText(bi("नाम लिखें", "type a name"))
            return
        if password != self.new_repeat.text():
            self.message.setText(bi("दोनों पासवर्ड एक जैसे नहीं हैं", "the two passwords differ"))
            return
        role = str(self.new_role.currentData())
        self.link.submit("users_add", {"name": name, "role": role, "password": password},
                         lambda person: self._changed(bi(f"{person['name']} जोड़ा गया", f"added {person['name']}"),
                                                      clear_add=True),
                         self._failed)

    def _on_selected(self, op: str, outcome: str) -> None:
        name = self.selected_name()
        if name is None:
            self.message.setText(bi("पहले सूची में एक व्यक्ति चुनें", "select a person in the list first"))
            return
        self.link.submit(op, {"name": name}, lambda _r: self._changed(f"{name}: {outcome}"), self._failed)

    def reset_selected(self) -> None:
        name = self.selected_name()
        if name is None:
            self.message.setText(bi("पहले सूची में एक व्यक्ति चुनें", "select a person in the list first"))
            return
        if self.reset_password.text() != self.reset_repeat.text():
            self.message.setText(bi("दोनों पासवर्ड एक जैसे नहीं हैं", "the two passwords differ"))
            return
        self.link.submit("users_passwd", {"name": name, "password": self.reset_password.text()},
                         lambda _r: self._changed(bi(f"{name} का पासवर्ड बदला गया", f"{name}'s password reset")),
                         self._failed)

    def _changed(self, text: str, clear_add: bool = False) -> None:
        for field in (self.new_password, self.new_repeat, self.reset_password, self.reset_repeat):
            field.clear()
        if clear_add:
            self.new_name.clear()
        show_ok(self.message, text)
        self.refresh()

    def _failed(self, err: BaseException) -> None:
        for field in (self.new_password, self.new_repeat, self.reset_password, self.reset_repeat):
            field.clear()
        show_error(self.message, err)

"""Small pieces every kiosk screen uses: bilingual text (Hindi first, English beside), the error line, fields.

Errors come from the station service (its message names the person, the reason, the wait); the kiosk puts a
Hindi gist in front of the service's own English message and never invents a different reason.
"""

from __future__ import annotations

import re

from scanstation.errors import PermissionDenied, ScanStationError, SignInError, StationLocked
from scanstation.people.accounts import WRONG_NAME_OR_PASSWORD

from .qt import QApplication, QFont, QLabel, QLineEdit, QPushButton, Qt, QWidget

ERROR_STYLE = "color: #b00020; font-weight: bold;"
OK_STYLE = "color: #1b5e20; font-weight: bold;"
CENTER = Qt.AlignmentFlag.AlignHCenter


def bi(hindi: str, english: str) -> str:
    """Hindi first, English beside: ``"नाम / Name"``."""
    return f"{hindi} / {english}"


def describe_error(err: BaseException) -> str:
    """The text the kiosk shows for a failed call: a Hindi gist, then the service's message."""
    message = err.message if isinstance(err, ScanStationError) else str(err) or type(err).__name__
    if message.startswith("the password "):  # the password policy (WeakPassword), locally or from the socket
        return bi("यह पासवर्ड स्वीकार नहीं", message)
    if isinstance(err, SignInError):
        wait = re.search(r"wait (\d+) s", message)
        if wait:
            return bi(f"बहुत से गलत प्रयास: {wait.group(1)} सेकंड रुकें", message)
        if message == WRONG_NAME_OR_PASSWORD:
            return bi("नाम या पासवर्ड गलत है", "the name or the password is wrong")
        if "disabled" in message:
            return bi("खाता बंद है", message)
        if "session" in message:
            return bi("सत्र समाप्त", message)
        return bi("प्रवेश नहीं हुआ", message)
    if isinstance(err, PermissionDenied):
        return bi("अनुमति नहीं", message)
    if isinstance(err, StationLocked):
        return bi("स्टेशन बंद है", message)
    return bi("त्रुटि", message)


def heading(text: str, points: int = 22) -> QLabel:
    label = QLabel(text)
    font = QFont()
    font.setPointSize(points)
    font.setBold(True)
    label.setFont(font)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(True)
    return label


def message_line(parent: QWidget | None = None) -> QLabel:
    """The line a screen shows errors and outcomes on."""
    label = QLabel("", parent)
    label.setWordWrap(True)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setStyleSheet(ERROR_STYLE)
    return label


def show_error(line: QLabel, err: BaseException) -> None:
    line.setStyleSheet(ERROR_STYLE)
    line.setText(describe_error(err))


def show_ok(line: QLabel, text: str) -> None:
    line.setStyleSheet(OK_STYLE)
    line.setText(text)


def text_field(placeholder: str = "") -> QLineEdit:
    field = QLineEdit()
    field.setPlaceholderText(placeholder)
    field.setMinimumWidth(240)
    return field


def password_field(placeholder: str = "") -> QLineEdit:
    field = text_field(placeholder)
    field.setEchoMode(QLineEdit.EchoMode.Password)
    return field


def button(text: str) -> QPushButton:
    b = QPushButton(text)
    b.setMinimumHeight(40)
    return b


def kiosk_style(app: QApplication) -> None:
    """A larger default font for the kiosk screen (Devanagari comes from the system's fallback fonts:
    Noto Sans Devanagari or Lohit Devanagari, installed by installer/setup.sh)."""
    font = app.font()
    font.setPointSize(max(font.pointSize(), 12))
    app.setFont(font)

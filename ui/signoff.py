"""The unit head's screen: review a verified batch, sign it off with the DSC token's PIN, see it sealed.

A client of the station service like every kiosk screen (:class:`~ui.service_link.ServiceLink`; nothing
blocks the UI thread).  What the unit head sees and does, all from the keyboard:

* the batches waiting for sign-off (verified by a supervisor): ↑↓ pick one, its summary follows;
* the summary, from ``signoff_summary``: every ACR file (employee code and name, period, pages, its flags
  and the verdicts given), the pages the engine flagged with their verdicts, and who scanned, closed,
  verified and approved it, when;
* **F10** moves to the PIN field (the token's user PIN: hidden, no copy or paste); **Enter** signs
  (``signoff``): the steps the service reports (token opened, certificate checked, sheet signed, package
  sealed) tick off as they come; the field is emptied at once, so the PIN never waits on the screen;
* the result: the package sealed with the signer's name and the sheet's digest, or what stopped it - a wrong
  PIN with the tries the token says are left, a locked token, a certificate refused (the check named), the
  token pulled out.  Nothing is half-signed: a failure leaves the batch verified, as it was.

The PIN goes to the service over the station's own socket and is used there for one login to the token;
this screen keeps no copy (the field is cleared before the call returns) and never logs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .no_clipboard import no_clipboard
from .qt import (
    QHBoxLayout,
    QHeaderView,
    QKeyEvent,
    QLabel,
    QListWidget,
    QListWidgetItem,
    Qt,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
    qt_alive,
)
from .service_link import ServiceLink
from .verify_side import FLAG_NAMES
from .widgets import bi, button, describe_error, heading, message_line, password_field, show_error, show_ok

WAITING_STATE = "verified"
# The steps the service reports as it *starts* each (scanstation.signoff.flow), in order: a step is done when
# the next one starts, or the whole succeeds; on a failure the step under way is the one that failed.
STEPS = (
    ("token", bi("टोकन खोलना", "open the token")),
    ("certificate", bi("प्रमाणपत्र जाँच", "check the certificate")),
    ("sheet", bi("साइन-ऑफ़ पत्र पर हस्ताक्षर", "sign the sign-off sheet")),
    ("package", bi("पैकेज सील", "seal the package")),
)
FILE_COLUMNS = (bi("क्र.", "#"), bi("कर्मचारी कोड", "employee code"), bi("नाम", "name"), bi("अवधि", "period"),
                bi("पृष्ठ", "pages"), bi("फ़्लैग और निर्णय", "flags and verdicts"))


def when(stamp: Any) -> str:
    """An RFC 3339 time as the unit head reads it: date and minute (the sheet keeps the exact time)."""
    text = str(stamp or "")
    return text[:16].replace("T", " ") if len(text) >= 16 else text


def flag_text(flag: str, verdict: str | None, reason: str = "") -> str:
    hi, en = FLAG_NAMES.get(flag, ("", flag))
    name = bi(hi, en) if hi else en
    judged = verdict or bi("निर्णय नहीं", "no verdict")
    return f"{name}: {judged}" + (f" ({reason})" if reason else "")


class SignoffScreen(QWidget):
    """Batches to sign off, the chosen one's summary, the PIN and the signing's progress and result."""

    def __init__(self, link: ServiceLink) -> None:
        super().__init__()
        self.link = link
        self.batch: str | None = None
        self.summary: dict[str, Any] | None = None
        self.signing = False
        self.steps_done: list[str] = []  # steps started, in order (all but the last are done while signing)
        self.failed_step: str | None = None

        outer = QHBoxLayout(self)
        left = QVBoxLayout()
        left.addWidget(heading(bi("साइन-ऑफ़ के लिए बैच", "Batches to sign off"), 16))
        self.queue = QListWidget()
        self.queue.currentItemChanged.connect(self._picked)
        left.addWidget(self.queue, 1)
        self.queue_empty = QLabel("")
        left.addWidget(self.queue_empty)
        self.refresh_button = button(bi("ताज़ा करें (F5)", "Refresh (F5)"))
        self.refresh_button.clicked.connect(self.refresh)
        left.addWidget(self.refresh_button)
        outer.addLayout(left, 1)

        right = QVBoxLayout()
        self.title = QLabel("")
        self.title.setWordWrap(True)
        right.addWidget(self.title)
        self.people = QLabel("")
        self.people.setWordWrap(True)
        right.addWidget(self.people)
        self.files = QTableWidget(0, len(FILE_COLUMNS))
        self.files.setHorizontalHeaderLabels(list(FILE_COLUMNS))
        self.files.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.files.horizontalHeader().setStretchLastSection(True)
        self.files.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.files.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.files.verticalHeader().setVisible(False)  # the file's own number is the first column
        right.addWidget(self.files, 1)
        self.page_flags = QLabel("")
        self.page_flags.setWordWrap(True)
        right.addWidget(self.page_flags)

        pin_row = QHBoxLayout()
        pin_row.addWidget(QLabel(bi("टोकन PIN (F10)", "Token PIN (F10)")))
        self.pin = no_clipboard(password_field(bi("PIN", "PIN")))
        self.pin.returnPressed.connect(self.sign)
        pin_row.addWidget(self.pin, 1)
        self.sign_button = button(bi("साइन-ऑफ़ करें (Enter)", "Sign off (Enter)"))
        self.sign_button.clicked.connect(self.sign)
        pin_row.addWidget(self.sign_button)
        right.addLayout(pin_row)
        self.progress = QLabel("")
        self.progress.setWordWrap(True)
        right.addWidget(self.progress)
        self.result = QLabel("")
        self.result.setWordWrap(True)
        right.addWidget(self.result)
        self.message = message_line()
        self.message.setWordWrap(True)  # a token's long answer must not widen the kiosk's window
        right.addWidget(self.message)
        outer.addLayout(right, 3)
        self._update_buttons()

    # ------------------------------------------------------------------ the queue
    def shown(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        self.link.submit("batches", {}, self._listed, self._failed)

    def _listed(self, rows: Any) -> None:
        if not qt_alive(self):
            return
        waiting = [r for r in rows or [] if r.get("state") == WAITING_STATE]
        keep = self.batch
        self.queue.blockSignals(True)
        self.queue.clear()
        for r in waiting:
            item = QListWidgetItem(f"{r['name']} · {r.get('pages', '?')} " + bi("पृष्ठ", "pages"))
            item.setData(Qt.ItemDataRole.UserRole, str(r["name"]))
            self.queue.addItem(item)
        self.queue.blockSignals(False)
        self.queue_empty.setText("" if waiting else bi("साइन-ऑफ़ के लिए कोई बैच नहीं", "nothing to sign off"))
        names = [str(r["name"]) for r in waiting]
        if keep in names:
            self.queue.setCurrentRow(names.index(keep))
        elif names and not self.signing:
            self.queue.setCurrentRow(0)
        elif not names and not self.signing and self.batch is not None:
            self._show_summary(None)  # the batch shown was taken elsewhere (the one just signed stays shown)

    def _picked(self, item: QListWidgetItem | None, _previous: QListWidgetItem | None = None) -> None:
        if item is None or self.signing:
            return
        name = str(item.data(Qt.ItemDataRole.UserRole))
        if name == self.batch and self.summary is not None:
            return
        self.batch, self.summary = name, None
        self._update_buttons()
        self.title.setText(bi("लोड हो रहा है…", "loading…"))
        self.link.submit("signoff_summary", {"batch": name}, lambda s: self._summarised(name, s), self._failed)

    # ------------------------------------------------------------------ the summary
    def _summarised(self, name: str, summary: Any) -> None:
        if not qt_alive(self) or name != self.batch:
            return  # an answer for a batch the unit head has left
        self._show_summary(summary if isinstance(summary, dict) else None)

    def _show_summary(self, s: dict[str, Any] | None) -> None:
        self.summary = s
        self.files.setRowCount(0)
        if s is None:
            self.batch = None
            self.title.setText("")
            self.people.setText("")
            self.page_flags.setText("")
            self._update_buttons()
            return
        files = s.get("files") or []
        self.title.setText(f"<b>{bi('बैच', 'Batch')} {s.get('name')}</b> · {s.get('unit', '')} · "
                           f"{len(files)} {bi('ACR फ़ाइलें', 'ACR files')} · {s.get('pages', 0)} "
                           f"{bi('पृष्ठ', 'pages')} · {s.get('state', '')}")
        approved = s.get("approved_by") or "—"
        self.people.setText(
            f"{bi('स्कैन', 'scanned by')}: {', '.join(s.get('scanned_by') or []) or '—'} · "
            f"{bi('बंद किया', 'closed by')}: {s.get('closed_by') or '—'} · "
            f"{bi('सत्यापन', 'verified by')}: {', '.join(s.get('verified_by') or []) or '—'} · "
            f"{bi('स्वीकृत', 'approved by')}: {approved} {when(s.get('approved_at'))}")
        self.files.setRowCount(len(files))
        for row, f in enumerate(files):
            flags = "; ".join(flag_text(str(x.get("flag")), x.get("verdict"), str(x.get("reason") or ""))
                              for x in f.get("flags") or [])
            cells = (str(f.get("seq", "")), str(f.get("employee_code", "")), str(f.get("employee_name", "")),
                     str(f.get("period", "")), str(f.get("pages", "")), flags or "—")
            for col, text in enumerate(cells):
                self.files.setItem(row, col, QTableWidgetItem(text))
        flagged = s.get("page_flags") or []
        self.page_flags.setText(
            (f"<b>{bi('फ़्लैग वाले पृष्ठ', 'flagged pages')}</b>: " + " · ".join(
                f"{bi('पृष्ठ', 'page')} {p.get('seq')}: " + ", ".join(
                    flag_text(str(f), p.get("verdict"), str(p.get("reason") or "")) for f in p.get("flags") or [])
                for p in flagged)) if flagged else bi("कोई पृष्ठ फ़्लैग नहीं", "no page flagged"))
        self._update_buttons()

    # ------------------------------------------------------------------ signing
    def sign(self) -> None:
        """Enter: sign the batch shown off with the PIN typed (the field is emptied at once)."""
        pin = self.pin.text()
        self.pin.clear()
        if self.signing or self.batch is None or self.summary is None:
            return
        if not pin:
            show_error(self.message, RuntimeError(bi("टोकन का PIN लिखें", "type the token's PIN")))
            self.pin.setFocus()
            return
        name = self.batch
        self.signing = True
        self.steps_done, self.failed_step = [], None
        self._show_steps()
        self.result.setText("")
        show_ok(self.message, bi("हस्ताक्षर हो रहे हैं… टोकन न निकालें", "signing… do not remove the token"))
        self._update_buttons()
        self.link.submit("signoff", {"batch": name, "pin": pin}, lambda r: self._signed(name, r), self._sign_failed,
                         on_event=self._step)
        del pin

    def _step(self, kind: str, _data: Any) -> None:
        if qt_alive(self) and kind not in self.steps_done:
            self.steps_done.append(kind)
            self._show_steps()

    def _show_steps(self) -> None:
        marks = []
        for key, text in STEPS:
            if key == self.failed_step:
                mark = "✗ "
            elif key in self.steps_done and (key != self.steps_done[-1] or not self.signing):
                mark = "✓ "
            elif key in self.steps_done:
                mark = "… "  # under way
            else:
                mark = "· "
            marks.append(mark + text)
        self.progress.setText("   ".join(marks))

    def _signed(self, name: str, result: Any) -> None:
        if not qt_alive(self):
            return
        self.signing = False
        self.steps_done = [key for key, _text in STEPS]
        self._show_steps()
        r = result if isinstance(result, dict) else {}
        show_ok(self.message, bi(f"बैच {name} पर साइन-ऑफ़ हुआ और सील हुआ", f"batch {name} signed off and sealed"))
        self.result.setText(
            f"{bi('हस्ताक्षरकर्ता', 'signer')}: {r.get('signer_subject', '')}<br>"
            f"{bi('पैकेज', 'package')}: {Path(str(r.get('package', ''))).name}<br>"
            f"{bi('साइन-ऑफ़ पत्र SHA-256', 'sign-off sheet SHA-256')}: {r.get('sheet_sha256', '')}<br>"
            f"{bi('समय', 'signed at')}: {r.get('signed_at', '')}")
        self.batch, self.summary = None, None  # the summary stays on the screen; nothing more to sign in it
        self.title.setText(self.title.text().replace(" · verified", " · " + bi("सील", "sealed")))
        self.refresh()
        self._update_buttons()

    def _sign_failed(self, err: BaseException) -> None:
        if not qt_alive(self):
            return
        self.signing = False
        self.failed_step = self.steps_done.pop() if self.steps_done else None
        self._show_steps()
        show_error(self.message, RuntimeError(bi("हस्ताक्षर नहीं हुआ; बैच जैसा था वैसा है",
                                                 "not signed; the batch is as it was") + ": " + describe_error(err)))
        self.pin.setFocus()
        self._update_buttons()

    def _failed(self, err: BaseException) -> None:
        if qt_alive(self):
            show_error(self.message, err)

    # ------------------------------------------------------------------ keys and buttons
    def _update_buttons(self) -> None:
        ready = self.summary is not None and not self.signing
        self.sign_button.setEnabled(ready)
        self.pin.setEnabled(ready)
        self.queue.setEnabled(not self.signing)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key == Qt.Key.Key_F10:
            self.pin.setFocus()
        elif key == Qt.Key.Key_F5:
            self.refresh()
        elif key == Qt.Key.Key_Escape:
            self.pin.clear()
            self.queue.setFocus()
        else:
            super().keyPressEvent(event)

"""The audit viewer (supervisors, unit heads; the admin too, as the permission matrix allows read-audit).

Entries come from the service's ``audit_show`` (optionally one batch's), newest first; ``audit_verify``
checks every entry, the Merkle tree, every checkpoint signature and their consistency, and the result is
shown as it is: intact (with what was checked), or the service's message naming the first bad entry.
Personal fields stay sealed in the entries the service returns: the viewer shows none.
"""

from __future__ import annotations

from typing import Any

from scanstation.errors import AuditIntegrityError

from .qt import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from .service_link import ServiceLink
from .widgets import ERROR_STYLE, OK_STYLE, bi, button, describe_error, heading, message_line, show_error, text_field

COLUMNS = ["#", bi("समय", "Time"), bi("कौन", "Who"), bi("भूमिका", "Role"), bi("कार्य", "Action"),
           bi("किस पर", "Object"), bi("विवरण", "Detail")]
MAX_ROWS = 2000  # the newest; `scanstation audit show` lists them all


def detail_text(detail: Any) -> str:
    if not isinstance(detail, dict) or not detail:
        return ""
    return ", ".join(f"{k}={v}" for k, v in detail.items())[:200]


class AuditScreen(QWidget):
    def __init__(self, link: ServiceLink) -> None:
        super().__init__()
        self.link = link
        self.entries: list[dict[str, Any]] = []
        outer = QVBoxLayout(self)
        outer.addWidget(heading(bi("ऑडिट रिकॉर्ड", "Audit trail"), 18))
        row = QHBoxLayout()
        row.addWidget(QLabel(bi("बैच", "Batch")))
        self.batch = text_field(bi("सभी", "all"))
        self.batch.setMaximumWidth(260)
        row.addWidget(self.batch)
        self.show_button = button(bi("दिखाएँ", "Show"))
        self.verify_button = button(bi("जाँचें कि रिकॉर्ड अक्षुण्ण है", "Verify the trail"))
        row.addWidget(self.show_button)
        row.addWidget(self.verify_button)
        row.addStretch(1)
        outer.addLayout(row)
        self.result = QLabel("")
        self.result.setWordWrap(True)
        outer.addWidget(self.result)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        outer.addWidget(self.table, 1)
        self.message = message_line()
        outer.addWidget(self.message)
        self.show_button.clicked.connect(self.refresh)
        self.batch.returnPressed.connect(self.refresh)
        self.verify_button.clicked.connect(self.verify)

    def refresh(self) -> None:
        batch = self.batch.text().strip()
        self.link.submit("audit_show", {"batch": batch} if batch else {}, self._shown, self._failed)

    def _shown(self, entries: Any) -> None:
        self.entries = list(entries or [])
        newest = list(reversed(self.entries))[:MAX_ROWS]
        self.table.setRowCount(len(newest))
        for r, e in enumerate(newest):
            cells = [str(e.get("seq", "")), str(e.get("ts", ""))[:19].replace("T", " "), str(e.get("actor", "")),
                     str(e.get("role", "")), str(e.get("action", "")), str(e.get("subject", "")),
                     detail_text(e.get("detail"))]
            for c, value in enumerate(cells):
                self.table.setItem(r, c, QTableWidgetItem(value))
        self.message.setText(bi(f"{len(self.entries)} प्रविष्टियाँ", f"{len(self.entries)} entries"))
        self.message.setStyleSheet("")

    def verify(self) -> None:
        self.verify_button.setEnabled(False)
        self.result.setStyleSheet("")
        self.result.setText(bi("जाँच हो रही है…", "verifying…"))
        self.link.submit("audit_verify", {}, self._verified, self._verify_failed)

    def _verified(self, report: Any) -> None:
        self.verify_button.setEnabled(True)
        r = report if isinstance(report, dict) else {}
        self.result.setStyleSheet(OK_STYLE)
        self.result.setText(bi(
            f"अक्षुण्ण: {r.get('entries')} प्रविष्टियाँ, {r.get('checkpoints')} हस्ताक्षरित चेकपॉइंट",
            f"Intact: {r.get('entries')} entries, {r.get('checkpoints')} signed checkpoints "
            f"({r.get('unsigned')} entries after the latest)"))

    def _verify_failed(self, err: BaseException) -> None:
        self.verify_button.setEnabled(True)
        self.result.setStyleSheet(ERROR_STYLE)
        if isinstance(err, AuditIntegrityError):
            self.result.setText(bi("रिकॉर्ड में गड़बड़ी — पहली गलत प्रविष्टि", "NOT intact — first bad entry")
                                + f": {err.message}")
        else:
            self.result.setText(describe_error(err))

    def _failed(self, err: BaseException) -> None:
        show_error(self.message, err)

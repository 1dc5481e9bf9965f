"""The home screen of operators, supervisors and unit heads: the batches and their processing state.

Rows come from the service's ``batches`` operation (names, states, counts, upload state; no personal data);
the kiosk holds no key and opens no store.  The demo button exists only when ``scanstation start`` hands in
the action it runs (a demo or training station with the developer tools installed, never production).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .background import run_in_background
from .qt import QHBoxLayout, QHeaderView, QLabel, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget
from .service_link import ServiceLink
from .widgets import bi, message_line, show_error, show_ok

COLUMNS = ["Batch / बैच", "State / स्थिति", "Pages / पृष्ठ", "Processed", "OCR done", "OCR pending", "Flagged",
           "Upload / अपलोड"]


def upload_cell(row: Mapping[str, Any] | None) -> str:
    """Upload state for the status table: progress while sending, the receipt id once received."""
    if row is None:
        return ""
    state = row["state"]
    if state in ("uploading", "retrying") and row["size"]:
        pct = 100 * (row["confirmed_offset"] or 0) // row["size"]
        return f"{state} {pct}%" + (f" — {(row['last_error'] or '')[:60]}" if state == "retrying" else "")
    if state in ("received", "purged"):
        return f"{state}, receipt {(row['receipt_id'] or '')[:12]}…"
    if state == "failed":
        return f"FAILED: {(row['last_error'] or '')[:80]}"
    return str(state)


def batch_row(b: Mapping[str, Any]) -> list[str]:
    return [str(b["name"]), str(b["state"]), str(b["pages"]), str(b["processed"]), str(b["ocr_done"]),
            str(b["ocr_pending"]), str(b["flagged"]), upload_cell(b.get("upload"))]


class BatchesScreen(QWidget):
    def __init__(self, link: ServiceLink, demo_action: Callable[[], object] | None = None) -> None:
        super().__init__()
        self.link = link
        self.demo_action = demo_action
        layout = QVBoxLayout(self)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        layout.addWidget(self.table, 1)
        buttons = QHBoxLayout()
        self.demo_button: QPushButton | None = None
        if demo_action is not None:
            self.demo_button = QPushButton("Scan demo batch / डेमो बैच स्कैन करें")
            self.demo_button.clicked.connect(self.run_demo)
            buttons.addWidget(self.demo_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self.empty = QLabel("")
        layout.addWidget(self.empty)
        self.message = message_line()
        layout.addWidget(self.message)
        self._refreshing = False

    def refresh(self) -> None:
        if self._refreshing:  # a slow answer must not pile up requests
            return
        self._refreshing = True
        self.link.submit("batches", {}, self._listed, self._list_failed)

    def _listed(self, batches: Any) -> None:
        self._refreshing = False
        rows = [batch_row(b) for b in batches or []]
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                self.table.setItem(r, c, QTableWidgetItem(value))
        self.empty.setText("" if rows else bi("अभी कोई बैच नहीं", "no batches yet"))

    def _list_failed(self, err: BaseException) -> None:
        self._refreshing = False
        show_error(self.message, err)

    def run_demo(self) -> None:
        if self.demo_action is None or self.demo_button is None:
            return
        self.demo_button.setEnabled(False)
        show_ok(self.message, "Scanning the demo batch… / डेमो बैच स्कैन हो रहा है…")
        run_in_background(self.demo_action, self._demo_done, self._demo_failed)

    def _demo_done(self, _result: Any) -> None:
        if self.demo_button is not None:
            self.demo_button.setEnabled(True)
        show_ok(self.message, "Demo batch stored and verified. / डेमो बैच सुरक्षित और सत्यापित।")
        self.refresh()

    def _demo_failed(self, err: BaseException) -> None:
        if self.demo_button is not None:
            self.demo_button.setEnabled(True)
        show_error(self.message, err)

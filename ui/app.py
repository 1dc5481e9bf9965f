"""The station window: batches and their processing state (the full operator/supervisor UI comes later).

``scanstation start`` opens it (entry point ``scanstation.start: window`` = :func:`run_ui`).  The UI knows
nothing of the developer tools: a demo button exists only when the caller hands in the action it runs
(``start`` does so for a demo or training station when the tools are installed, never for production).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from scanstation.config import Config
from scanstation.errors import ScanStationError
from scanstation.vault.identity import StationKey

from .background import run_in_background
from .qt import (
    QApplication,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMainWindow,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTimer,
    QVBoxLayout,
    QWidget,
)

COLUMNS = ["Batch / बैच", "State / स्थिति", "Pages / पृष्ठ", "Processed", "OCR done", "OCR pending", "Flagged",
           "Upload / अपलोड"]


def batch_rows(config: Config, key: StationKey | None) -> list[list[str]]:
    """One row per batch, read from the store (encrypted: none without the station key; no page decrypted).

    TODO(issue 13): the kiosk becomes a client of the station service, which answers this without the UI
    ever holding a key.
    """
    from scanstation.facade import open_store

    if key is None:
        return []
    try:
        store = open_store(config, key)
    except ScanStationError:
        return []
    try:
        rows = []
        for b in store.batches():
            c = store.counts(b.id)
            flagged = sum(1 for p in store.pages(b.id) if p.flags)
            rows.append([b.name, b.state.value, str(c["pages"]), str(c.get("state_processed", 0)),
                         str(c.get("ocr_done", 0)), str(c.get("ocr_pending", 0)), str(flagged),
                         upload_cell(store.upload(b.id))])
        return rows
    finally:
        store.close()


def upload_cell(row: Any) -> str:
    """Upload state for the status table: progress while sending, the receipt id once received."""
    if row is None:
        return ""
    state = row["state"]
    if state in ("uploading", "retrying") and row["size"]:
        pct = 100 * row["confirmed_offset"] // row["size"]
        return f"{state} {pct}%" + (f" — {row['last_error'][:60]}" if state == "retrying" else "")
    if state in ("received", "purged"):
        return f"{state}, receipt {row['receipt_id'][:12]}…"
    if state == "failed":
        return f"FAILED: {row['last_error'][:80]}"
    return str(state)


class StationWindow(QMainWindow):
    def __init__(self, config: Config, demo_action: Callable[[], object] | None = None,
                 key: StationKey | None = None) -> None:
        """``demo_action``: scans a demo batch (runs in the background); without it there is no demo button.
        ``key``: the unlocked station key, to list the batches (the store is encrypted); none: an empty list."""
        super().__init__()
        self.config = config
        self.key = key
        self.demo_action = demo_action
        self.setWindowTitle(f"ScanStation — {config.station.unit} ({config.station.id})")
        central = QWidget()
        layout = QVBoxLayout(central)
        mode = "" if config.station.mode == "production" else f" · {config.station.mode}"
        self.header = QLabel(f"<h2>ScanStation · {config.station.unit}{mode}</h2>")
        layout.addWidget(self.header)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        layout.addWidget(self.table)
        buttons = QHBoxLayout()
        self.demo_button: QPushButton | None = None
        if demo_action is not None:
            self.demo_button = QPushButton("Scan demo batch / डेमो बैच स्कैन करें")
            self.demo_button.clicked.connect(self.run_demo)
            buttons.addWidget(self.demo_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self.message = QLabel("")
        layout.addWidget(self.message)
        self.setCentralWidget(central)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.refresh)
        self.timer.start(2000)
        self.refresh()

    def refresh(self) -> None:
        rows = batch_rows(self.config, self.key)
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                self.table.setItem(r, c, QTableWidgetItem(value))

    def run_demo(self) -> None:
        if self.demo_action is None or self.demo_button is None:
            return
        self.demo_button.setEnabled(False)
        self.message.setText("Scanning the demo batch… / डेमो बैच स्कैन हो रहा है…")
        run_in_background(self.demo_action, self._demo_done, self._failed)

    def _demo_done(self, _result: Any) -> None:
        if self.demo_button is not None:
            self.demo_button.setEnabled(True)
        self.message.setText("Demo batch stored and verified. / डेमो बैच सुरक्षित और सत्यापित।")
        self.refresh()

    def _failed(self, err: BaseException) -> None:
        # the one place the UI shows errors
        if self.demo_button is not None:
            self.demo_button.setEnabled(True)
        self.message.setText(f"Error / त्रुटि: {err}")


def run_ui(config: Config, demo_action: Callable[[], object] | None = None) -> int:
    app = QApplication.instance() or QApplication(sys.argv)
    window = StationWindow(config, demo_action)
    window.showMaximized()
    return int(app.exec())

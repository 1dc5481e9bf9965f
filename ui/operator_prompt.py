"""The scanner-fault prompt of the operator's screen (:class:`ui.operator.OperatorScreen`).

A jam, an empty feeder, an open cover or a scanner gone offline stops the scan in the service
(``scan_events`` reports the job ``waiting`` with a prompt).  :class:`DevicePrompt` shows the service's
message in Hindi and English, how many pages of this run are kept, and Continue (Enter / F5, once fixed)
or Stop (F8).  While it shows it takes the place of the ACR file panel (its ``partner``): one thing at a
time, and Enter there means Continue.
"""

from __future__ import annotations

from typing import Any

from .qt import QFont, QFrame, QLabel, QVBoxLayout, QWidget
from .widgets import bi, button


class DevicePrompt(QFrame):
    """A scanner fault: what to do, in Hindi and English, and Continue (once fixed) or Stop."""

    def __init__(self) -> None:
        super().__init__()
        self.partner: QWidget | None = None  # what the prompt covers while it shows (the ACR file panel)
        self.setObjectName("devicePrompt")
        self.setStyleSheet("#devicePrompt { background: #fff3e0; border: 3px solid #e65100; }")
        layout = QVBoxLayout(self)
        texts = QVBoxLayout()
        self.title = QLabel(bi("स्कैनर रुक गया", "The scanner stopped"))
        font = QFont()
        font.setPointSize(16)
        font.setBold(True)
        self.title.setFont(font)
        self.hindi = QLabel("")
        self.english = QLabel("")
        big = QFont()
        big.setPointSize(15)
        for label in (self.hindi, self.english):
            label.setWordWrap(True)
            label.setFont(big)
        self.detail = QLabel("")
        self.detail.setWordWrap(True)
        for w in (self.title, self.hindi, self.english, self.detail):
            texts.addWidget(w)
        layout.addLayout(texts)
        self.continue_button = button(bi("ठीक कर दिया: जारी रखें", "Fixed: continue") + "  [Enter / F5]")
        self.stop_button = button(bi("स्कैन रोकें", "Stop scanning") + "  [F8]")
        layout.addWidget(self.continue_button)
        layout.addWidget(self.stop_button)
        layout.addStretch(1)
        self.hide()

    def setVisible(self, visible: bool) -> None:
        super().setVisible(visible)
        partner = getattr(self, "partner", None)  # None while __init__ runs
        if partner is not None:
            partner.setVisible(not visible)

    def show_prompt(self, prompt: dict[str, Any]) -> None:
        self.hindi.setText(str(prompt.get("message_hi", "")))
        self.english.setText(str(prompt.get("message_en", "")))
        kept = int(prompt.get("pages_received") or 0)
        self.detail.setText(bi(f"इस बार {kept} पन्ने सुरक्षित", f"{kept} page(s) of this run kept") +
                            (f" — {prompt['detail']}" if prompt.get("detail") else ""))
        self.show()
        self.continue_button.setFocus()


__all__ = ["DevicePrompt"]

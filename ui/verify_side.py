"""The right-hand column of the verification screen (:class:`ui.verify.VerifyScreen`): what the supervisor
needs to judge the page shown besides the page itself.

* the flags of the page and of its ACR file, each with the measured value behind it (:func:`flag_rows`:
  "too dark" means little without the value and its limit), the engine's full sentence as a tooltip;
* the page's OCR text, readable but not selectable or copyable (the kiosk has no clipboard), without a
  context menu;
* what approval still needs (the service's blockers), or "ready to approve";
* below them, room for the screen's reason / choice / index panels (:mod:`ui.verify_dialogs`).

Apart from the screen so that what the supervisor is shown about a page is read (and tested) in one place.
"""

from __future__ import annotations

from typing import Any

from .qt import QHeaderView, QLabel, QPlainTextEdit, Qt, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget
from .widgets import bi

FLAG_NAMES = {
    "blank": ("खाली पृष्ठ", "blank page"),
    "orientation_uncertain": ("दिशा अनिश्चित", "orientation uncertain"),
    "double_feed": ("दो पन्ने साथ", "double feed"),
    "damaged": ("क्षतिग्रस्त", "damaged"),
    "not_in_roster": ("रोस्टर में नहीं", "not in roster"),
    "duplicate": ("दोहराव", "duplicate ACR"),
    "separator_unreadable": ("विभाजक अपठनीय", "separator unreadable"),
    "low_resolution": ("कम रिज़ॉल्यूशन", "low resolution"),
    "too_dark": ("बहुत गहरा", "too dark"),
    "too_light": ("बहुत हल्का", "too light"),
    "low_contrast": ("कम कंट्रास्ट", "low contrast"),
    "blurred": ("धुंधला", "blurred"),
    "content_cut_off": ("सामग्री कटी", "content cut off"),
    "skew_uncorrectable": ("अधिक तिरछा", "skew not correctable"),
    "grainy": ("दानेदार", "grainy"),
}


def flag_rows(page: dict[str, Any] | None, doc: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """(flag in Hindi / English, the measured value behind it, the engine's full message) for the page and
    its ACR file."""
    rows: list[tuple[str, str, str]] = []
    if page is not None:
        analysis = page.get("analysis") or {}
        quality = {str(q.get("code")): q for q in analysis.get("quality") or [] if isinstance(q, dict)}
        for flag in page.get("flags") or []:
            hi, en = FLAG_NAMES.get(flag, ("", flag))
            q = quality.get(flag)
            message = ""
            if q is not None:
                message = bi(str(q.get("message_hi") or hi), str(q.get("message_en") or en))
                value = f"{q.get('value')} (limit {q.get('threshold')})"
            elif flag == "blank":
                b = analysis.get("blank") or {}
                value = f"ink {b.get('ink_mm2')} mm², {b.get('components')} marks"
            elif flag == "orientation_uncertain":
                o = analysis.get("orientation") or {}
                value = f"confidence {o.get('confidence')}, turned {o.get('rotation')}°"
            else:
                value = ""
            rows.append((bi(hi, en) if hi else en, value, message or value))
        if analysis.get("skew") is not None and "skew" not in quality:
            skew = f"{analysis['skew']}° (corrected)"
            rows.append((bi("तिरछापन", "skew"), skew, skew))
    if doc is not None:
        flags = list(doc.get("flags") or [])
        if doc.get("not_in_roster") and "not_in_roster" not in flags:
            flags.append("not_in_roster")
        verdicts = doc.get("flag_verdicts") or {}
        for flag in flags:
            hi, en = FLAG_NAMES.get(flag, ("", flag))
            v = verdicts.get(flag) or {}
            value = f"file: {v.get('verdict', 'no verdict yet')}"
            if flag == "not_in_roster" and doc.get("not_in_roster"):
                value += f" — {doc['not_in_roster']}"
            rows.append((bi(hi, en) if hi else en, value, value))
    return rows


class SidePanel(QWidget):
    """Flags with their measured values, the OCR text (no selection, no copy), what approval still needs."""

    def __init__(self) -> None:
        super().__init__()
        right = QVBoxLayout(self)
        right.setContentsMargins(0, 0, 0, 0)
        right.addWidget(QLabel(bi("<b>चिह्न</b>", "<b>Flags</b>")))
        self.flags = QTableWidget(0, 2)
        self.flags.setHorizontalHeaderLabels([bi("चिह्न", "flag"), bi("मापा गया", "measured")])
        self.flags.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.flags.setWordWrap(True)  # a quality flag's own message is a sentence
        self.flags.verticalHeader().setVisible(False)
        self.flags.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.flags.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.flags.setMaximumHeight(150)
        right.addWidget(self.flags)
        right.addWidget(QLabel(bi("<b>OCR पाठ</b>", "<b>OCR text</b>")))
        self.ocr = QPlainTextEdit()
        self.ocr.setReadOnly(True)
        # no clipboard: the text can be read, not selected or copied; no context menu (copy, select all)
        self.ocr.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
        self.ocr.setContextMenuPolicy(Qt.ContextMenuPolicy.NoContextMenu)
        self.ocr.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        right.addWidget(self.ocr, 1)
        right.addWidget(QLabel(bi("<b>स्वीकृति से पहले</b>", "<b>Before approval</b>")))
        self.blockers = QLabel("")
        self.blockers.setWordWrap(True)
        self.blockers.setAlignment(Qt.AlignmentFlag.AlignTop)
        right.addWidget(self.blockers)
        self._layout = right

    def add_panel(self, panel: QWidget) -> None:
        """A panel shown under the text while the supervisor answers it (:mod:`ui.verify_dialogs`)."""
        self._layout.addWidget(panel)

    def show_flags(self, rows: list[tuple[str, str, str]]) -> None:
        """The rows of :func:`flag_rows`: flag and measured value, the full message as their tooltip."""
        self.flags.setRowCount(len(rows))
        for r, (flag, value, message) in enumerate(rows):
            for c, text in enumerate((flag, value)):
                item = QTableWidgetItem(text)
                item.setToolTip(message)
                self.flags.setItem(r, c, item)
        self.flags.resizeRowsToContents()


__all__ = ["FLAG_NAMES", "SidePanel", "flag_rows"]

"""The ACR file panel of the operator's screen (:class:`ui.operator.OperatorScreen`).

An ACR file is indexed one of two ways:

* from a QR cover sheet: the service opens the file and the panel shows its index prefilled (employee
  code, the roster's name, period, any flags); Enter confirms it (``index_document``);
* by hand, without a cover sheet: a code or a name is searched in the roster (``roster_search``, Ctrl+F;
  the screen asks, :meth:`IndexPanel.show_results` lists the answer, Enter or a click picks one), then
  the period and Enter; the next pages scanned go into it;
* scan first, index after: pages scanned with no ACR file at all wait unfiled; the panel says how many
  (:meth:`IndexPanel.show_unfiled`) and the index confirmed files them.

Once the pages of an ACR file without a cover sheet (or the unfiled pages) have been read (OCR), the roster
people the page text points to are offered in the same list, marked "suggested from the page text"
(:meth:`IndexPanel.show_suggestions`), and the suggested period only as the period field's hint: nothing
is indexed until the operator picks one and confirms.

The roster check may refuse (not in roster, a duplicate ACR): the operator may then file it with a
reason for the supervisor (:func:`reason_field`).  The panel only holds and shows the form; the screen
talks to the service.
"""

from __future__ import annotations

from typing import Any

from .qt import QFont, QFormLayout, QFrame, QLabel, QListWidget, QListWidgetItem, Qt, QVBoxLayout
from .widgets import bi, button, text_field

SUGGESTED = bi("पृष्ठ के पाठ से सुझाव", "suggested from the page text")
PERIOD_HINT = bi("अवधि, जैसे 2019-20", "period, e.g. 2019-20")


def reason_field(flags: list[str]) -> str:
    """The request field an operator's reason answers for these flags (not in roster first)."""
    if "not_in_roster" in flags:
        return "not_in_roster"
    if "duplicate" in flags:
        return "duplicate_reason"
    return ""


class IndexPanel(QFrame):
    """The ACR file being indexed: prefilled from a cover sheet (confirm with Enter) or typed by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(self)
        self.title = QLabel(bi("ACR फ़ाइल", "ACR file"))
        font = QFont()
        font.setPointSize(14)
        font.setBold(True)
        self.title.setFont(font)
        layout.addWidget(self.title)
        self.source = QLabel(bi("कवर शीट न हो तो कोड या नाम खोजें", "no cover sheet: search a code or name"))
        self.source.setWordWrap(True)
        layout.addWidget(self.source)
        # pages scanned without an ACR file: how many, and that the index confirmed files them
        self.unfiled_note = QLabel("")
        self.unfiled_note.setWordWrap(True)
        self.unfiled_note.setStyleSheet("font-weight: bold;")
        self.unfiled_note.hide()
        layout.addWidget(self.unfiled_note)
        layout.setSpacing(4)
        form = QFormLayout()
        self.search = text_field(bi("कोड या नाम (हिंदी/English)", "code or name") + "  [Ctrl+F]")
        self.results = QListWidget()
        self.results.setMaximumHeight(96)
        self.results.hide()  # shown while a search has results
        self.code = text_field(bi("कर्मचारी कोड", "employee code"))
        self.name = QLabel("")
        self.name.setWordWrap(True)
        self.period = text_field(PERIOD_HINT)
        form.addRow(bi("खोजें", "Search"), self.search)
        form.addRow("", self.results)
        form.addRow(bi("कोड", "Code"), self.code)
        form.addRow(bi("नाम", "Name"), self.name)
        form.addRow(bi("अवधि", "Period"), self.period)
        self.reason = text_field(bi("कारण (रोस्टर में नहीं / दोहराव)", "reason (not in roster / duplicate)"))
        form.addRow(bi("कारण", "Reason"), self.reason)
        layout.addLayout(form)
        self.flags = QLabel("")
        self.flags.setWordWrap(True)
        self.flags.setStyleSheet("color: #8a4b00; font-weight: bold;")
        layout.addWidget(self.flags)
        self.confirm_button = button(bi("पुष्टि करें", "Confirm") + "  [Enter]")
        layout.addWidget(self.confirm_button)
        self.pending = QLabel("")
        layout.addWidget(self.pending)
        self.document_id: int | None = None
        # which request field the reason goes in: "not_in_roster" or "duplicate_reason" ("" = none asked)
        self.needs_reason = ""
        # the ACR file (no cover sheet) whose page text suggested the people listed: a pick indexes it
        self.suggested_document: int | None = None
        # the results list holds suggestions (for that file, or for the unfiled pages when it is None)
        self.suggestions_shown = False
        self.unfiled_count = 0

    def prefill(self, acr: dict[str, Any] | None, waiting: int) -> None:
        """Show a cover sheet's ACR file (or an empty form for one typed by hand)."""
        self.document_id = None if acr is None else int(acr["document_id"])
        if self.suggestions_shown:  # the suggestions were for the file (or pages) just indexed, or left
            self.results.clear()
            self.results.hide()
        self.suggested_document = None
        self.suggestions_shown = False
        self.period.setPlaceholderText(PERIOD_HINT)
        self.reason.clear()
        self.needs_reason = "" if acr is None else reason_field(acr.get("flags") or [])
        if acr is None:
            self.title.setText(bi("ACR फ़ाइल", "ACR file"))
            self.source.setText(bi("कवर शीट न हो तो कोड या नाम खोजें", "no cover sheet: search a code or name"))
            self.code.clear()
            self.period.clear()
            self.name.setText("")
            self.flags.setText("")
        else:
            self.title.setText(bi("नई ACR फ़ाइल (कवर शीट से)", "New ACR file (from its cover sheet)"))
            self.source.setText(bi("जाँचें और Enter दबाएँ", "check it and press Enter"))
            self.code.setText(str(acr.get("employee_code", "")))
            self.period.setText(str(acr.get("acr_period", "")))
            self.name.setText(str(acr.get("employee_name", "")))
            flags = acr.get("flags") or []
            self.flags.setText(bi("ध्यान दें", "note") + ": " + ", ".join(flags) if flags else "")
            self.confirm_button.setFocus()
        self.pending.setText(bi(f"{waiting} और फ़ाइलें पुष्टि के लिए", f"{waiting} more file(s) to confirm")
                             if waiting else "")

    def show_unfiled(self, count: int) -> None:
        """Pages of the batch scanned without an ACR file (0: none, or a cover sheet's file is shown): the
        operator is told how many, and that the index they confirm files them."""
        self.unfiled_count = count
        if count:
            self.unfiled_note.setText(bi(f"{count} पन्नों की अभी कोई ACR फ़ाइल नहीं; पुष्टि किया गया इंडेक्स "
                                         "उन्हें फ़ाइल करेगा",
                                         f"{count} page(s) have no ACR file yet; the index you confirm files them"))
        self.unfiled_note.setVisible(count > 0)

    def show_results(self, rows: Any) -> None:
        """The roster's answer to a search: one line per person (code, names, rank), the first one current."""
        self.results.clear()
        for r in rows or []:
            names = " / ".join(n for n in (r.get("name_hi"), r.get("name_en")) if n)
            item = QListWidgetItem(f"{r['employee_code']} · {names} · {r.get('rank', '')}")
            item.setData(Qt.ItemDataRole.UserRole, r)
            self.results.addItem(item)
        self.results.setVisible(self.results.count() > 0)
        if self.results.count():
            self.results.setCurrentRow(0)

    def show_suggestions(self, document_id: int | None, candidates: Any, period: Any) -> None:
        """OCR index suggestions for an ACR file without a cover sheet (``document_id``), or for the pages
        scanned without any file (None): the roster people the page text points to, in the results list
        marked as suggestions, the period only as the period field's hint.  Nothing is filled in: the
        operator picks one (Enter or a click), checks it, types the period and confirms."""
        rows = [r for r in candidates or [] if isinstance(r, dict) and r.get("employee_code")]
        if not rows and not period:
            return
        self.suggested_document = None if document_id is None else int(document_id)
        self.suggestions_shown = True
        self.results.clear()
        for r in rows:
            names = " / ".join(n for n in (r.get("name_hi"), r.get("name_en")) if n)
            item = QListWidgetItem(f"{SUGGESTED}: {r['employee_code']} · {names} · {r.get('rank', '')}")
            item.setData(Qt.ItemDataRole.UserRole, r)
            item.setToolTip(SUGGESTED)
            self.results.addItem(item)
        self.results.setVisible(self.results.count() > 0)
        if self.results.count():
            self.results.setCurrentRow(0)
        if period:
            self.period.setPlaceholderText(bi(f"सुझाव: {period}", f"suggested: {period}"))
        self.title.setText(bi("ACR फ़ाइल (कवर शीट नहीं)", "ACR file (no cover sheet)"))
        self.source.setText(SUGGESTED + ": " + bi("चुनें, जाँचें, अवधि लिखें, Enter", "pick one, check it, type "
                                                 "the period, Enter"))

    def drop_suggestions(self) -> None:
        """Take the suggestions off the list (the pages they were read from are gone from the screen)."""
        if self.suggestions_shown:
            self.results.clear()
            self.results.hide()
            self.suggestions_shown = False
            self.suggested_document = None
            self.period.setPlaceholderText(PERIOD_HINT)

    def pick_first_result(self) -> None:
        """Enter in the search field: the first result."""
        if self.results.count():
            self.pick_result(self.results.item(0))

    def pick_result(self, item: QListWidgetItem) -> None:
        """A person picked: code and name filled in (a file typed by hand), the period next."""
        row = item.data(Qt.ItemDataRole.UserRole) or {}
        # a file whose page text was read waits for its index: the pick indexes that file, not a new one
        self.document_id = self.suggested_document
        self.code.setText(str(row.get("employee_code", "")))
        self.name.setText(" / ".join(n for n in (row.get("name_hi"), row.get("name_en")) if n))
        self.period.setFocus()


__all__ = ["SUGGESTED", "IndexPanel", "reason_field"]

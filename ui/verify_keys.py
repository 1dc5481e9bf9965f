"""The verification screen's keys (:class:`ui.verify.VerifyScreen`): one table, :data:`KEYMAP`, is both the
dispatch (:func:`action_for`, an event to an action name) and the help overlay (:func:`help_rows`,
:class:`HelpOverlay`, F1 or ``?``), so that the help can never list a key that does something else.
docs/supervisor.md's key table is this table.

Kept apart from the screen so that the keys can be read (and tested: ``tests/test_ui_verify.py``) in one
place, without the screen's layout and service calls around them.
"""

from __future__ import annotations

from typing import Any

from .qt import QFrame, QHBoxLayout, QKeyEvent, QLabel, Qt, QVBoxLayout, QWidget
from .widgets import bi

K = Qt.Key
M = Qt.KeyboardModifier
NONE, ALT, CTRL, SHIFT = M.NoModifier, M.AltModifier, M.ControlModifier, M.ShiftModifier


# (keys, modifiers, action, Hindi, English): the dispatch table and the help overlay are the same data.
KEYMAP: list[tuple[tuple[Any, ...], Any, str, str, str]] = [
    ((K.Key_Return, K.Key_Enter), NONE, "ok_next", "ठीक, अगला पृष्ठ", "OK and next page"),
    ((K.Key_R,), NONE, "rescan", "दोबारा स्कैन (कारण)", "rescan (reason)"),
    ((K.Key_Delete,), NONE, "delete", "हटाएँ (कारण)", "delete (reason)"),
    ((K.Key_BracketLeft,), NONE, "rotate_left", "बाएँ घुमाएँ 90°", "rotate left 90°"),
    ((K.Key_BracketRight,), NONE, "rotate_right", "दाएँ घुमाएँ 90°", "rotate right 90°"),
    ((K.Key_Right, K.Key_Down, K.Key_Space), NONE, "next", "अगला पृष्ठ", "next page"),
    ((K.Key_Left, K.Key_Up, K.Key_Backspace), NONE, "previous", "पिछला पृष्ठ", "previous page"),
    ((K.Key_Home,), NONE, "first", "पहला पृष्ठ", "first page"),
    ((K.Key_End,), NONE, "last", "अंतिम पृष्ठ", "last page"),
    ((K.Key_PageDown,), NONE, "next_file", "अगली ACR फ़ाइल", "next ACR file"),
    ((K.Key_PageUp,), NONE, "previous_file", "पिछली ACR फ़ाइल", "previous ACR file"),
    ((K.Key_W,), NONE, "fit_width", "पूरी चौड़ाई", "zoom: fit width"),
    ((K.Key_1,), NONE, "zoom_100", "100 %", "zoom 100 %"),
    ((K.Key_2,), NONE, "zoom_200", "200 %", "zoom 200 %"),
    ((K.Key_Left,), SHIFT, "pan_left", "खिसकाएँ ←", "pan left"),
    ((K.Key_Right,), SHIFT, "pan_right", "खिसकाएँ →", "pan right"),
    ((K.Key_Up,), SHIFT, "pan_up", "खिसकाएँ ↑", "pan up"),
    ((K.Key_Down,), SHIFT, "pan_down", "खिसकाएँ ↓", "pan down"),
    ((K.Key_Up,), ALT, "move_up", "पृष्ठ ऊपर करें (क्रम)", "move page up (reorder)"),
    ((K.Key_Down,), ALT, "move_down", "पृष्ठ नीचे करें (क्रम)", "move page down (reorder)"),
    ((K.Key_PageUp,), ALT, "to_previous_file", "पृष्ठ पिछली फ़ाइल में", "move page to the previous file"),
    ((K.Key_PageDown,), ALT, "to_next_file", "पृष्ठ अगली फ़ाइल में", "move page to the next file"),
    ((K.Key_M,), NONE, "move_to", "पृष्ठ किसी फ़ाइल में", "move page to a file…"),
    ((K.Key_S,), NONE, "split", "यहाँ से नई फ़ाइल", "split: a new file from this page"),
    ((K.Key_J,), NONE, "merge", "फ़ाइल दूसरी में जोड़ें", "merge this file into another (join)…"),
    ((K.Key_I,), NONE, "reindex", "फ़ाइल का सूचकांक बदलें", "re-index this file…"),
    ((K.Key_F,), NONE, "accept_flags", "फ़ाइल के चिह्न स्वीकार", "accept this file's flags"),
    ((K.Key_F,), SHIFT, "reject_flags", "फ़ाइल के चिह्न अस्वीकार", "reject this file's flags (reason)"),
    ((K.Key_A,), NONE, "approve", "बैच स्वीकृत करें", "approve the batch"),
    ((K.Key_R,), CTRL, "return_batch", "बैच ऑपरेटर को लौटाएँ", "return the batch to the operator"),
    ((K.Key_F1, K.Key_Question), NONE, "help", "यह सहायता", "this help"),
    ((K.Key_Escape,), NONE, "back", "बंद करें / कतार पर लौटें", "close / back to the queue"),
]
_DISPATCH: dict[tuple[int, int], str] = {}
for _keys, _mods, _action, _hi, _en in KEYMAP:
    for _key in _keys:
        _DISPATCH[(int(_key.value), int(_mods.value))] = _action
# Shift is part of typing these characters on many layouts; it does not change what they mean.
_SHIFT_FREE = {int(K.Key_Question.value), int(K.Key_BracketLeft.value), int(K.Key_BracketRight.value),
               int(K.Key_F1.value)}


def key_name(key: Any) -> str:
    names = {K.Key_Return: "Enter", K.Key_Enter: "Enter (keypad)", K.Key_Delete: "Delete", K.Key_Space: "Space",
             K.Key_Backspace: "Backspace", K.Key_PageUp: "PageUp", K.Key_PageDown: "PageDown", K.Key_Home: "Home",
             K.Key_End: "End", K.Key_Left: "←", K.Key_Right: "→", K.Key_Up: "↑", K.Key_Down: "↓",
             K.Key_Escape: "Esc", K.Key_F1: "F1", K.Key_Question: "?", K.Key_BracketLeft: "[",
             K.Key_BracketRight: "]"}
    return names.get(key, str(key.name).removeprefix("Key_"))


def help_rows() -> list[tuple[str, str]]:
    """(keys, "Hindi / English") for the help overlay, from :data:`KEYMAP`."""
    rows = []
    for keys, mods, _action, hi, en in KEYMAP:
        prefix = {ALT: "Alt+", CTRL: "Ctrl+", SHIFT: "Shift+"}.get(mods, "")
        text = " / ".join(prefix + key_name(k) for k in keys if k != K.Key_Enter)
        rows.append((text, bi(hi, en)))
    return rows


def action_for(event: QKeyEvent) -> str | None:
    mods = event.modifiers() & ~M.KeypadModifier
    key = event.key()
    found = _DISPATCH.get((int(key), int(mods.value)))
    if found is None and int(key) in _SHIFT_FREE:
        found = _DISPATCH.get((int(key), int((mods & ~SHIFT).value)))
    return found



class HelpOverlay(QFrame):
    """Every key of the screen (from :data:`KEYMAP`), over the batch; F1, ? or Esc closes it."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setStyleSheet("HelpOverlay { background: rgba(20, 20, 20, 225); } QLabel { color: white; }")
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("<h2>कुंजियाँ / Keys</h2>"))
        grid = QHBoxLayout()
        rows = help_rows()
        half = (len(rows) + 1) // 2
        for chunk in (rows[:half], rows[half:]):
            text = "".join(f"<tr><td><b>{k}</b>&nbsp;&nbsp;</td><td>{v}</td></tr>" for k, v in chunk)
            label = QLabel(f"<table cellspacing='3'>{text}</table>")
            label.setTextFormat(Qt.TextFormat.RichText)
            label.setAlignment(Qt.AlignmentFlag.AlignTop)
            grid.addWidget(label, 1)
        layout.addLayout(grid, 1)
        self.hide()

    def toggle(self) -> None:
        if self.isVisible():
            self.hide()
            return
        parent = self.parentWidget()
        if parent is not None:
            self.setGeometry(parent.rect())
        self.show()
        self.raise_()


__all__ = ["ALT", "CTRL", "KEYMAP", "NONE", "SHIFT", "HelpOverlay", "K", "M", "action_for", "help_rows", "key_name"]

"""Text fields without a clipboard: the kiosk's fields refuse copy, cut and paste (keys and context menu).

Index data and names typed on the kiosk stay on the kiosk: nothing is taken out through the clipboard and
nothing is pasted in from elsewhere.  :func:`no_clipboard` is applied to each text field of the
operator's screen (:mod:`ui.operator`).  A module of its own because it is a rule of the kiosk, not of
one panel.
"""

from __future__ import annotations

from .qt import QEvent, QKeyEvent, QKeySequence, QLineEdit, QObject, Qt


class _NoClipboard(QObject):
    """Eats copy, cut and paste in a text field (and its context menu): the kiosk has no clipboard."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in (QEvent.Type.KeyPress, QEvent.Type.ShortcutOverride) and isinstance(event, QKeyEvent) \
                and any(event.matches(k) for k in (QKeySequence.StandardKey.Copy, QKeySequence.StandardKey.Cut,
                                                   QKeySequence.StandardKey.Paste)):
            event.accept()
            return True
        return False


_NO_CLIPBOARD = _NoClipboard()


def no_clipboard(field: QLineEdit) -> QLineEdit:
    field.installEventFilter(_NO_CLIPBOARD)
    field.setContextMenuPolicy(Qt.ContextMenuPolicy.NoContextMenu)
    return field


__all__ = ["no_clipboard"]

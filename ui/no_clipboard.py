"""No clipboard in the kiosk: nothing typed or shown leaves through it, nothing from elsewhere comes in.

Index data, names and page text stay on the kiosk.  Two layers, both here because this is a rule of the
kiosk, not of one panel (and this is the one module of ``ui/`` allowed to touch the clipboard at all; a
test reads every other module's source for it):

* :func:`no_clipboard`, on each text field of the operator's screen and the sign-off PIN: the field refuses
  copy, cut and paste (keys) and has no context menu.
* :func:`lock_down`, on the whole application once the window is the kiosk (:meth:`ui.shell.StationWindow.
  show_kiosk`): copy, cut and paste keys are eaten in every widget, context menus never open (their
  Copy / Paste / Select All entries), the middle button (the X11/Wayland primary selection's paste) does
  nothing, drags from another program are refused, and whatever still lands on the clipboard or the
  primary selection (a text field puts its selection there by itself) is wiped at once.
"""

from __future__ import annotations

from collections.abc import Callable

from .qt import QApplication, QClipboard, QEvent, QKeyEvent, QKeySequence, QLineEdit, QObject, Qt

CLIPBOARD_KEYS = (QKeySequence.StandardKey.Copy, QKeySequence.StandardKey.Cut, QKeySequence.StandardKey.Paste)
KEY_EVENTS = (QEvent.Type.KeyPress, QEvent.Type.ShortcutOverride)
MOUSE_EVENTS = (QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonRelease, QEvent.Type.MouseButtonDblClick)
DRAG_EVENTS = (QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop)


def _clipboard_key(event: QEvent) -> bool:
    return event.type() in KEY_EVENTS and isinstance(event, QKeyEvent) \
        and any(event.matches(k) for k in CLIPBOARD_KEYS)


class _NoClipboard(QObject):
    """Eats copy, cut and paste in a text field (and its context menu): the kiosk has no clipboard."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if _clipboard_key(event):
            event.accept()
            return True
        return False


_NO_CLIPBOARD = _NoClipboard()


def no_clipboard(field: QLineEdit) -> QLineEdit:
    field.installEventFilter(_NO_CLIPBOARD)
    field.setContextMenuPolicy(Qt.ContextMenuPolicy.NoContextMenu)
    return field


class _LockDown(QObject):
    """The application-wide filter of :func:`lock_down`."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if _clipboard_key(event) or kind == QEvent.Type.ContextMenu:
            event.accept()
            return True
        if kind in MOUSE_EVENTS and getattr(event, "button", lambda: None)() == Qt.MouseButton.MiddleButton:
            event.accept()
            return True
        if kind in DRAG_EVENTS and getattr(event, "source", lambda: None)() is None:
            event.ignore()  # from another program (a drag within the kiosk has its source widget)
            return True
        return False


def lock_down(app: QApplication) -> Callable[[], None]:
    """Lock the whole application (see the module's description); returns the function that undoes it
    (for the window's own end, and for tests that go on in the same process)."""
    lock = _LockDown()
    app.installEventFilter(lock)
    clipboard = app.clipboard()

    def wipe(mode: QClipboard.Mode) -> None:
        data = clipboard.mimeData(mode)
        if data is not None and data.formats():
            clipboard.clear(mode)

    def wipe_clipboard() -> None:
        wipe(QClipboard.Mode.Clipboard)

    def wipe_selection() -> None:
        wipe(QClipboard.Mode.Selection)

    clipboard.dataChanged.connect(wipe_clipboard)
    clipboard.selectionChanged.connect(wipe_selection)
    wipe(QClipboard.Mode.Clipboard)  # nothing left over from before the kiosk started
    if clipboard.supportsSelection():
        wipe(QClipboard.Mode.Selection)

    def undo() -> None:
        app.removeEventFilter(lock)
        clipboard.dataChanged.disconnect(wipe_clipboard)
        clipboard.selectionChanged.disconnect(wipe_selection)

    undo.keep = lock  # type: ignore[attr-defined]  # the filter lives as long as the lock
    return undo


__all__ = ["lock_down", "no_clipboard"]

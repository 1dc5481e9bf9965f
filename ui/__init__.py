"""PySide6 kiosk UI; the only package that imports Qt (through ui.qt)."""

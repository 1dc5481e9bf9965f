"""The one shim through which the UI imports Qt, so a binding change touches one file."""

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, QTimer, Signal
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMainWindow,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

__all__ = [
    "QApplication", "QHBoxLayout", "QHeaderView", "QLabel", "QMainWindow", "QObject", "QPushButton", "QRunnable",
    "QTableWidget", "QTableWidgetItem", "QThreadPool", "QTimer", "QVBoxLayout", "QWidget", "Qt", "Signal",
]

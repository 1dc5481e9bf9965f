"""The one shim through which the UI imports Qt, so a binding change touches one file."""

from PySide6.QtCore import QEvent, QObject, QRunnable, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QFont, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPushButton,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

__all__ = [
    "QAbstractItemView", "QApplication", "QComboBox", "QEvent", "QFont", "QFormLayout", "QFrame", "QHBoxLayout",
    "QHeaderView", "QKeySequence", "QLabel", "QLineEdit", "QMainWindow", "QObject", "QPushButton", "QRunnable",
    "QShortcut", "QStackedWidget", "QTabWidget", "QTableWidget", "QTableWidgetItem", "QThreadPool", "QTimer",
    "QVBoxLayout", "QWidget", "Qt", "Signal",
]

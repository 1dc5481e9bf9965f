"""ScanStation core: capture, analysis, OCR and encrypted storage of ACR pages (never imports Qt)."""

__version__ = "0.1.0"

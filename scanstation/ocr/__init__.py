"""OCR: Tesseract (program and library, in worker processes), per-page model choice, the station's OCR pool, index
suggestions.
"""

"""Searchable PDF/A-2b per ACR file: page images with Tesseract's invisible text layer."""

"""Capture: pages from a scanner driver or files into the vault, and the QR cover sheets that start each ACR file."""

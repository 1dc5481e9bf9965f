"""Reference portal receiver: tus 1.0.0 uploads of sealed ScanStation packages, verified and receipted.

See docs/portal-api.md.  Run with ``scanstation-receiver`` (receiver.cli).
"""

"""``python -m scanstation.cli``: the same program as ``scanstation``."""

from scanstation.cli.main import entry

entry()

"""``scanstation signoff``: the unit head signs a verified batch off with the DSC token (issue 15; being built)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """No command yet: issue 15's sign-off adds ``signoff`` here."""

"""``scanstation enrol``: the station's enrolment request and its client certificate (issue 15; being built)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """No command yet: issue 15's enrolment adds ``enrol`` here."""

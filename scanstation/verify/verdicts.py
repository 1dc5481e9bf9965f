"""The verdict vocabulary (a light module: the CLI's parser lists it without importing the store)."""

from __future__ import annotations

# Page verdicts: the CLI's --verdict values and the service's "verdict" field.  rotate-N sets the page's
# absolute clockwise quarter turn from the image as scanned (rotate-0 turns it back).
ROTATE_VERDICTS: dict[str, int] = {"rotate-0": 0, "rotate-90": 90, "rotate-180": 180, "rotate-270": 270}
PAGE_VERDICTS: tuple[str, ...] = ("ok", "rescan", "delete", *ROTATE_VERDICTS)
NEED_REASON = frozenset({"rescan", "delete"})
FLAG_VERDICTS: tuple[str, ...] = ("accepted", "rejected")

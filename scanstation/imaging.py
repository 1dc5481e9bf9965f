"""The public page-analysis API: pure functions on 2-D uint8 grayscale arrays (no Qt, no I/O).

Acceptance checks and the shared peer benchmarks (``../shared/bench/deskew_peer_bench.py``) call these by
this module's name, so it stays here whatever the inside of :mod:`scanstation.cleanup` looks like:

- ``estimate_skew(gray) -> float | None``: degrees the content is rotated counter-clockwise (Pillow's
  ``Image.rotate`` convention), in [-45, 45); None only for a page without usable content;
- ``estimate_orientation(gray) -> tuple[int, float]``: the counter-clockwise quarter turn (0/90/180/270)
  and a confidence in [0, 1], for Devanagari and Latin script alike;
- ``is_blank(gray, dpi) -> bool``;
- and the helpers to get there and back: ``to_gray``, ``from_array``, ``rotate_quarter``, ``deskew``.

The core itself imports :mod:`scanstation.cleanup.arrays` and the measuring modules directly, never this
one, so the public name costs no import cycle.
"""

from scanstation.cleanup.arrays import deskew, from_array, rotate_quarter, to_gray
from scanstation.cleanup.blank import is_blank
from scanstation.cleanup.orientation import estimate_orientation
from scanstation.cleanup.skew import estimate_skew

__all__ = ["deskew", "estimate_orientation", "estimate_skew", "from_array", "is_blank", "rotate_quarter", "to_gray"]

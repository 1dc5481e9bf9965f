"""Splitting text into Devanagari and Latin runs (each run is set in its script's font)."""

from __future__ import annotations


def is_devanagari(ch: str) -> bool:
    """Devanagari and Devanagari Extended, plus the joiners (ZWNJ/ZWJ) that live inside Devanagari words."""
    o = ord(ch)
    return 0x0900 <= o <= 0x097F or 0xA8E0 <= o <= 0xA8FF or o in (0x200C, 0x200D)


def script_runs(text: str) -> list[tuple[str, bool]]:
    """Split into (run, is_devanagari); everything outside the Devanagari blocks goes to the Latin font."""
    runs: list[tuple[str, bool]] = []
    for ch in text:
        d = is_devanagari(ch)
        if runs and runs[-1][1] == d:
            runs[-1] = (runs[-1][0] + ch, d)
        else:
            runs.append((ch, d))
    return runs

"""Which tesseract model reads a page of a given script, from the languages the caller allows.

Kept apart from the page analysis (scanstation.ocr.strategy, numpy and OpenCV) so that the OCR command
can tell its tesseract workers which model to load before those heavy imports are done.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

Script = Literal["devanagari", "latin", "mixed", "unknown"]

# Languages written in Devanagari (tesseract codes); any of them admits the Devanagari script model.
DEVANAGARI_LANGS = frozenset({"hin", "mar", "san", "nep", "bih", "mai", "Devanagari", "script/Devanagari"})
SCRIPT_MODELS = ("Devanagari", "script/Devanagari")


def _installed_script_model(installed: Collection[str]) -> str | None:
    for name in SCRIPT_MODELS:
        if name in installed:
            return name
    return None


def choose_language(script: Script, allowed: str, installed: Collection[str]) -> tuple[str, str]:
    """The tesseract model string for a page of ``script``, using only what ``allowed`` admits.

    ``allowed`` is the caller's language list ("hin+eng"): the languages the documents are written in.
    A Devanagari language admits the Devanagari script model (it covers Hindi, Marathi, Sanskrit...).
    Returns (model string, reason).
    """
    parts = [p for p in allowed.split("+") if p]
    deva = [p for p in parts if p in DEVANAGARI_LANGS]
    latin = [p for p in parts if p not in DEVANAGARI_LANGS]
    script_model = _installed_script_model(installed) if deva else None
    deva_model = script_model or (deva[0] if deva else None)
    if deva_model is None or not latin:
        # One script allowed: nothing to choose but the model for it.
        if deva_model is not None and script in ("devanagari", "mixed", "latin"):
            return deva_model, f"only Devanagari languages allowed: {deva_model}"
        return allowed, "as requested"
    if script == "devanagari":
        return deva_model, f"Devanagari page: {deva_model} alone"
    if script == "latin":
        return "+".join(latin), "Latin page: " + "+".join(latin)
    if script == "mixed":
        model = "+".join([deva_model, *latin])
        return model, f"mixed page: {model}"
    return allowed, "too little text to tell the script: as requested"


__all__ = ["DEVANAGARI_LANGS", "SCRIPT_MODELS", "Script", "choose_language"]

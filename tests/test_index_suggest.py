"""Index suggestions: precision on synthetic ACR files with known fields, with and without OCR noise."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from scanstation.cleanup.pipeline import encode_png
from scanstation.ocr import pages as ocr
from scanstation.ocr.index_suggestions import FIELDS, IndexSuggestions, suggest_index
from scanstation_tools.synth import PageSpec, render_acr_file, render_acr_page

# Pages are rendered at the lowest resolution: only their ground-truth text and fields are used here.
_FILES = range(300, 340)


@pytest.fixture(scope="module")
def acr_files() -> list[tuple[list[str], dict[str, str]]]:
    files = []
    for seed in _FILES:
        pages = render_acr_file(seed, 3, dpi=30)
        files.append(([p.text for p in pages], pages[0].fields))
    return files


def _noisy(text: str, rng: random.Random, rate: float) -> str:
    """OCR-like damage: dropped, doubled and confused characters, at ``rate`` per character."""
    confusions = {"0": "O", "O": "0", "1": "l", "l": "1", "5": "S", "S": "5", "e": "c", "ि": "ी", "ा": ""}
    out: list[str] = []
    for ch in text:
        r = rng.random()
        if r < rate / 3:
            continue
        if r < 2 * rate / 3:
            out.append(confusions.get(ch, ch))
        elif r < rate:
            out.append(ch + ch if ch.isalpha() else ch)
        else:
            out.append(ch)
    return "".join(out)


def _score(files: list[tuple[list[str], dict[str, str]]], rate: float) -> tuple[int, int, int]:
    made = right = total = 0
    rng = random.Random(5)
    for texts, fields in files:
        result = suggest_index([_noisy(t, rng, rate) for t in texts])
        for name in FIELDS:
            total += 1
            suggestion = result.get(name)
            if suggestion is not None:
                made += 1
                right += suggestion.value == fields[name]
    return made, right, total


def test_precision_on_clean_text(acr_files: list[tuple[list[str], dict[str, str]]]) -> None:
    made, right, total = _score(acr_files, 0.0)
    assert right / made >= 0.99
    assert made / total >= 0.95


def test_precision_under_ocr_noise(acr_files: list[tuple[list[str], dict[str, str]]]) -> None:
    # Noise lowers how often a field is offered; what is offered must still be right.
    made, right, total = _score(acr_files, 0.02)
    assert right / made >= 0.95
    assert made / total >= 0.6


def test_nothing_suggested_from_unrelated_text() -> None:
    book = (
        "Added to these important factors of racial characteristics, influences of religion, and long\n"
        "grown habits of the Turk, we have also in Turkish Armenia another evil. Page 55\n"
    )
    result = suggest_index([book])
    assert all(result.get(name) is None for name in FIELDS)


def test_suggestions_are_never_confirmed(acr_files: list[tuple[list[str], dict[str, str]]]) -> None:
    result = suggest_index(acr_files[1][0][:2])
    data = result.to_dict()
    assert data["needs_confirmation"] is True
    for name in FIELDS:
        suggestion = result.get(name)
        assert suggestion is not None and suggestion.confirmed is False
        assert suggestion.evidence  # the operator sees where it was read
        assert data[name]["confirmed"] is False


def test_hindi_labels_and_financial_year_from_dates() -> None:
    text = (
        "कर्मचारी संख्या : UP-21-004711\n"
        "नाम : राम कुमार वर्मा\n"
        "पद : मुख्य आरक्षी\n"
        "अवधि : ०१-०४-२०१९ से ३१-०३-२०२०\n"
    )
    result = suggest_index([text])
    assert isinstance(result, IndexSuggestions)
    assert result.employee_code is not None and result.employee_code.value == "UP-21-004711"
    assert result.name_hi is not None and result.name_hi.value == "राम कुमार वर्मा"
    assert result.rank is not None and result.rank.value == "Head Constable"
    assert result.acr_period is not None and result.acr_period.value == "2019-20"


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract is not installed")
def test_from_real_ocr_of_the_first_page(tmp_path: Path) -> None:
    page = render_acr_page(PageSpec(seed=77, page_no=1, noise=0.2, skew_deg=0.4))
    work = tmp_path / "work"
    work.mkdir(mode=0o700)
    text = ocr.ocr_page(encode_png(page.image), 300, work, lang="hin+eng").text
    result = suggest_index([text])
    for name in FIELDS:
        suggestion = result.get(name)
        assert suggestion is not None and suggestion.value == page.fields[name], name

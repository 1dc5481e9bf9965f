"""Index suggestions from OCR text: employee code, name, rank and ACR period for the operator to confirm.

Suggestions only.  Nothing here is ever written to a document's index by itself: the operator sees
each value with the line it was read from and confirms or corrects it (``confirmed`` is always False
when it leaves this module).  Each value is found next to its printed label ("Employee Code",
"कर्मचारी संख्या", "Name", "नाम", "Rank", "पद", "Year", "वर्ष", "Period"), in English or Hindi, and
values repeated on several pages (the page headers of an ACR file) gain confidence.  OCR slips in
labels and rank names are tolerated by fuzzy matching (rapidfuzz).
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz import fuzz

FIELDS = ("employee_code", "name", "rank", "acr_period")

# Police ranks: the English spellings seen on forms (the first is the one suggested when the rank is
# read in Hindi) and the Hindi ones.
RANKS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("Constable",), ("आरक्षी", "सिपाही")),
    (("Head Constable",), ("मुख्य आरक्षी", "हेड कांस्टेबल")),
    (("Assistant Sub-Inspector", "ASI"), ("सहायक उप निरीक्षक",)),
    (("Sub-Inspector", "SI"), ("उप निरीक्षक",)),
    (("Inspector",), ("निरीक्षक",)),
    (("Deputy SP", "Deputy Superintendent of Police", "Dy. SP", "DSP"), ("पुलिस उपाधीक्षक", "उपाधीक्षक")),
    (("Additional SP", "Additional Superintendent of Police", "Addl. SP"), ("अपर पुलिस अधीक्षक",)),
    (("Superintendent of Police", "SP"), ("पुलिस अधीक्षक",)),
)
_RANK_MIN_SCORE = 85
# Two sightings this similar (rapidfuzz ratio) are one value read with an OCR slip.
_SAME_VALUE = 85

# Labels (lower-cased, after OCR clean-up).  Fuzzy-matched against the text before a value.
_CODE_LABELS = ("employee code", "emp code", "employee no", "employee number", "p.no", "pno",
                "belt no", "कर्मचारी संख्या", "कर्मचारी कोड", "कर्मचारी क्रमांक")
_NAME_LABELS = ("name", "नाम", "name of the officer", "name of employee", "अधिकारी का नाम", "कर्मचारी का नाम")
_NOT_NAME = ("father", "पिता", "hindi", "हिन्दी", "हिंदी", "place", "स्थान", "unit", "इकाई")
_RANK_LABELS = ("rank", "पद", "designation", "पदनाम")
_YEAR_LABELS = ("year", "वर्ष", "acr year", "period", "अवधि", "for the year")

# An employee code: letters and digits in groups joined by - or /, with at least four digits.
_CODE = re.compile(r"\b([A-Z]{1,5}[-/ ]?\d{1,4}[-/]\d{3,8}|[A-Z]{1,5}[-/]\d{4,10}|\d{6,12})\b")
_FY = re.compile(r"\b((?:19|20)\d\d)\s*[-–/]\s*((?:19|20)?\d\d)\b")
_DATE = re.compile(r"\b(\d{1,2})[-./](\d{1,2})[-./]((?:19|20)\d\d)\b")
# Latin name words: capitalised, optionally with initials ("R. K. Sharma").
_NAME_WORD = re.compile(r"^(?:[A-Z][a-z]+|[A-Z]\.?)$")
_DEVA_WORD = re.compile(r"^[\u0900-\u097F]+$")
_DEVA_DIGITS = str.maketrans("०१२३४५६७८९", "0123456789")


@dataclass(frozen=True, slots=True)
class Suggestion:
    """One proposed index value, with what it rests on; never confirmed here."""

    value: str
    confidence: float  # 0..1: label found, value well-formed, repeated on pages
    evidence: str  # the OCR line it was read from
    page: int  # 1-based page of the first sighting
    confirmed: bool = False  # only the operator sets this (outside this module)

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "confidence": round(self.confidence, 2),
            "evidence": self.evidence,
            "page": self.page,
            "confirmed": self.confirmed,
        }


@dataclass(frozen=True, slots=True)
class IndexSuggestions:
    """Suggested index of one ACR file; a field is None when nothing credible was found."""

    employee_code: Suggestion | None = None
    name: Suggestion | None = None
    name_hi: Suggestion | None = None
    rank: Suggestion | None = None
    acr_period: Suggestion | None = None
    alternatives: dict[str, list[str]] = field(default_factory=dict)

    def get(self, name: str) -> Suggestion | None:
        value = getattr(self, name)
        assert value is None or isinstance(value, Suggestion)
        return value

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"needs_confirmation": True}
        for name in (*FIELDS, "name_hi"):
            s = self.get(name)
            out[name] = None if s is None else s.to_dict()
        if self.alternatives:
            out["alternatives"] = self.alternatives
        return out


@dataclass(slots=True)
class _Candidate:
    value: str
    score: float
    evidence: str
    page: int


def _lines(text: str) -> list[str]:
    text = unicodedata.normalize("NFC", text).translate(_DEVA_DIGITS)
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def _label_at(segment: str, labels: Sequence[str], threshold: float = 80) -> float:
    """How well the end of ``segment`` (the text before a value) matches one of ``labels`` (0..100)."""
    seg = segment.lower().strip(" :.-/|")
    if not seg:
        return 0.0
    best = 0.0
    for label in labels:
        tail = seg[-(len(label) + 6) :]
        score = fuzz.partial_ratio(label, tail) if len(label) >= 4 else (100.0 if label in tail.split() else 0.0)
        best = max(best, score)
    return best if best >= threshold else 0.0


def _codes(line: str, page: int, out: list[_Candidate]) -> None:
    for m in _CODE.finditer(line):
        value = m.group(1).replace(" ", "-")
        if _FY.fullmatch(value) or _DATE.search(value):
            continue
        digits = sum(ch.isdigit() for ch in value)
        if digits < 4:
            continue
        label = _label_at(line[: m.start()], _CODE_LABELS)
        score = 0.45 + (0.45 if label else 0.0) + (0.1 if any(ch.isalpha() for ch in value) else 0.0)
        out.append(_Candidate(value, score, line, page))


def _after_label(line: str, labels: Sequence[str]) -> list[tuple[str, float]]:
    """Texts that follow a label in ``line`` (a line may hold several "label: value" pairs)."""
    found: list[tuple[str, float]] = []
    low = line.lower()
    for label in labels:
        start = 0
        while True:
            i = low.find(label, start)
            if i < 0:
                break
            start = i + len(label)
            before = low[max(0, i - 1) : i]
            after = low[start : start + 1]
            if (before and (before.isalnum() or unicodedata.category(before).startswith("M"))) or (
                after and (after.isalnum() or unicodedata.category(after).startswith("M"))
            ):
                continue  # part of a longer word
            context = low[max(0, i - 25) : i]
            found.append((line[start:].strip(" :.-|"), 1.0 if not any(n in context for n in _NOT_NAME) else 0.0))
    return found


def _latin_name(rest: str) -> str | None:
    words: list[str] = []
    for word in re.split(r"\s+", rest.replace("/", " / ")):
        word = word.strip(",;:")
        if _NAME_WORD.match(word) and word.lower() not in ("name", "rank", "the", "of", "in"):
            words.append(word)
            if len(words) == 5:
                break
        elif words or word in ("/", "-", ""):
            if words:
                break
        else:
            break
    if len(words) < 2 or all(len(w.rstrip(".")) == 1 for w in words):
        return None
    return " ".join(words)


def _deva_name(rest: str) -> str | None:
    words: list[str] = []
    for word in rest.split():
        if _DEVA_WORD.match(word):
            words.append(word)
            if len(words) == 4:
                break
        else:
            break
    return " ".join(words) if len(words) >= 2 else None


def _names(line: str, page: int, out_en: list[_Candidate], out_hi: list[_Candidate]) -> None:
    low = line.lower()
    for rest, ok in _after_label(line, _NAME_LABELS):
        if not ok:
            continue
        context = low[: low.find(rest.lower()) if rest else len(low)]
        if any(n in context[-40:] for n in _NOT_NAME):
            continue
        # "नाम / Name Jyoti Gupta": skip the other-language label after the slash.
        rest = re.sub(r"^(?:/?\s*(?:name|नाम)\b\s*[:.-]?\s*)", "", rest, flags=re.IGNORECASE).strip(" :.-/|")
        latin = _latin_name(rest)
        if latin is not None:
            out_en.append(_Candidate(latin, 0.8, line, page))
            continue
        deva = _deva_name(rest)
        if deva is not None:
            out_hi.append(_Candidate(deva, 0.7, line, page))


def _rank_in(text: str) -> tuple[str, float] | None:
    """The rank a value starts with, tolerating OCR slips: (English spelling, score 0..100)."""
    probe = text.strip(" :.-/|")
    low = probe.lower()
    best: tuple[float, int, str] | None = None
    for english, hindi in RANKS:
        for variant in (*english, *hindi):
            n = len(variant)
            head = low[:n]
            nxt = low[n : n + 1]
            if nxt and (nxt.isalnum() or unicodedata.category(nxt).startswith("M")):
                continue  # the rank must end where a word ends
            # Short forms (SI, ASI, SP) must be exact; longer names may carry an OCR slip.
            score = (100.0 if head == variant.lower() else 0.0) if n <= 4 else fuzz.ratio(variant.lower(), head)
            if score < _RANK_MIN_SCORE:
                continue
            value = variant if variant in english else english[0]
            key = (score, n, value)
            if best is None or key[:2] > best[:2]:
                best = key
    return None if best is None else (best[2], best[0])


def _ranks(line: str, page: int, out: list[_Candidate]) -> None:
    for rest, _ok in _after_label(line, _RANK_LABELS):
        rest = re.sub(r"^(?:/?\s*(?:rank|पद)\b\s*[:.-]?\s*)", "", rest, flags=re.IGNORECASE)
        found = _rank_in(rest)
        if found is not None:
            out.append(_Candidate(found[0], 0.5 + 0.4 * found[1] / 100, line, page))


def _fy_value(start: int, end: str) -> str | None:
    end_year = int(end) if len(end) == 4 else (start // 100) * 100 + int(end)
    if end_year != start + 1:
        return None
    return f"{start}-{end_year % 100:02d}"


def _periods(line: str, page: int, out: list[_Candidate]) -> None:
    labelled = bool(_after_label(line, _YEAR_LABELS))
    for m in _FY.finditer(line):
        value = _fy_value(int(m.group(1)), m.group(2))
        if value is not None:
            out.append(_Candidate(value, 0.5 + (0.4 if labelled else 0.0), line, page))
    dates = list(_DATE.finditer(line))
    if labelled and len(dates) >= 2:
        (d1, m1, y1), (d2, m2, y2) = (tuple(int(x) for x in d.groups()) for d in dates[:2])
        # An Indian financial year: 1 April to 31 March.
        if (d1, m1) == (1, 4) and (d2, m2) == (31, 3) and y2 == y1 + 1:
            out.append(_Candidate(f"{y1}-{y2 % 100:02d}", 0.85, line, page))


def _best(cands: Iterable[_Candidate], pages: int) -> tuple[Suggestion | None, list[str]]:
    """Merge sightings of the same value; more pages and better sightings mean more confidence.

    Sightings that differ by an OCR slip or two ("MC-21-82000l" beside "MC-21-820001") are one
    cluster: the value seen most often in it is offered, with less confidence the more they disagree.
    """
    groups: dict[str, list[_Candidate]] = defaultdict(list)
    for c in cands:
        groups[c.value].append(c)
    if not groups:
        return None, []
    # Most-seen values first, so each cluster is named after its commonest spelling.
    values = sorted(groups, key=lambda v: (-len(groups[v]), -max(c.score for c in groups[v]), v))
    clusters: list[list[str]] = []
    for value in values:
        for cluster in clusters:
            if fuzz.ratio(value, cluster[0]) >= _SAME_VALUE:
                cluster.append(value)
                break
        else:
            clusters.append([value])
    ranked: list[tuple[float, str, Suggestion]] = []
    for cluster in clusters:
        sightings = [c for v in cluster for c in groups[v]]
        head = groups[cluster[0]]
        best = max(head, key=lambda c: c.score)
        seen_on = len({c.page for c in head})
        agreement = len(head) / len(sightings)
        confidence = best.score + 0.05 * (len(head) - 1) + (0.1 if pages > 1 and seen_on > 1 else 0.0)
        confidence = min(1.0, confidence) * (0.5 + 0.5 * agreement)
        first = min(head, key=lambda c: c.page)
        ranked.append((confidence, cluster[0], Suggestion(cluster[0], confidence, best.evidence, first.page)))
    ranked.sort(key=lambda r: (-r[0], r[1]))
    top_conf, _v, top = ranked[0]
    alternatives = [v for _c, v, _s in ranked[1:4]]
    if len(ranked) > 1 and ranked[1][0] >= top_conf - 0.05:
        # Two values equally likely: offer the first but say it is doubtful.
        top = Suggestion(top.value, top.confidence * 0.6, top.evidence, top.page)
    return top, alternatives


def suggest_index(page_texts: Sequence[str], *, max_pages: int = 3, min_confidence: float = 0.6) -> IndexSuggestions:
    """Suggest employee code, name (English and Hindi), rank and ACR period from the first pages' OCR text.

    Fields with nothing credible (confidence below ``min_confidence``) are None: the operator types them.
    """
    codes: list[_Candidate] = []
    names: list[_Candidate] = []
    names_hi: list[_Candidate] = []
    ranks: list[_Candidate] = []
    periods: list[_Candidate] = []
    pages = page_texts[:max_pages]
    for page, text in enumerate(pages, start=1):
        for line in _lines(text):
            _codes(line, page, codes)
            _names(line, page, names, names_hi)
            _ranks(line, page, ranks)
            _periods(line, page, periods)
    result: dict[str, Suggestion | None] = {}
    alternatives: dict[str, list[str]] = {}
    for key, cands in (
        ("employee_code", codes),
        ("name", names),
        ("name_hi", names_hi),
        ("rank", ranks),
        ("acr_period", periods),
    ):
        best, alts = _best(cands, len(pages))
        result[key] = best if best is not None and best.confidence >= min_confidence else None
        if alts:
            alternatives[key] = alts
    return IndexSuggestions(**result, alternatives=alternatives)

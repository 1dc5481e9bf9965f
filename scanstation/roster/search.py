"""Finding a person in the roster by code or name, in Devanagari or Latin script, tolerant of typos and of
the many ways a Hindi name is written in English ("रमेश कुमार" = "Ramesh Kumar" = "Rmesh Kumaar").

Every name is reduced to a coarse *phonetic key* in ASCII, and keys are compared with rapidfuzz:

* Devanagari is transliterated to IAST with indic-transliteration's ``sanscript`` (a maintained library
  with exact, reversible tables for every Indic script; hand-written tables miss conjuncts such as
  क्ष, ज्ञ, ऋ and the nukta letters).  The inherent vowel Hindi does not pronounce at a word's end is
  dropped (रमेश is "rameśa" in IAST, "Ramesh" in speech); the anusvara becomes n (संजय: Sanjay).
* Then both scripts get the same folding of spelling variants English transliterations of Hindi names
  show: diacritics removed, sh/ṣ/ś → s, ch/c → c, ph → f, w → v, z → j, ee → i, oo → u, aspiration
  (an h after a consonant) dropped, doubled letters single, ṛ → ri, jñ → gy.
* Scores: rapidfuzz's token-sort and token-set ratios on the keys (word order and a missing middle name
  do not matter), the best of the Hindi and English names.  A query with digits is an employee code:
  exact, then prefix, then a close typo.

Results are suggestions for the operator to pick from; nothing is ever chosen for them.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from rapidfuzz import fuzz, process

from scanstation.roster.reader import is_devanagari, normalise_code

MIN_SCORE = 70.0  # below this a name is not offered (tested on typos and transliteration variants)

_CONSONANTS = "bcdfgjklmnpqrstvxyz"
_VOWELS = "aeiouāīūṛṝḷeaiouṃḥ"
_FOLDS: tuple[tuple[str, str], ...] = (
    ("ksh", "ks"), ("sh", "s"), ("chh", "c"), ("ch", "c"), ("ph", "f"), ("w", "v"), ("z", "j"), ("q", "k"),
    ("ee", "i"), ("ii", "i"), ("oo", "u"), ("uu", "u"), ("aa", "a"), ("ou", "u"), ("x", "ks"),
)


@lru_cache(maxsize=1)
def _sanscript() -> Any:
    # Imported on first use: loading its scheme tables costs ~0.3 s, which only a search should pay.
    from indic_transliteration import sanscript

    return sanscript


def _silent_final_a(latin: str) -> bool:
    """Whether an IAST word ends in a consonant (one letter or an aspirate like "th") + the inherent a."""
    if len(latin) < 3 or not latin.endswith("a") or latin[-2] in _VOWELS:
        return False
    i = len(latin) - 2
    if latin[i] == "h" and latin[i - 1] not in _VOWELS:
        i -= 1  # an aspirate (th, dh, bh ...) is one consonant
    return i > 0 and latin[i - 1] in _VOWELS


def _deva_to_latin(text: str) -> str:
    sanscript = _sanscript()
    words = []
    for word in text.split():
        if not is_devanagari(word):
            words.append(word.lower())
            continue
        latin = sanscript.transliterate(unicodedata.normalize("NFC", word), sanscript.DEVANAGARI, sanscript.IAST)
        # the final inherent vowel is silent in Hindi (रमेश: rameśa -> ramesh); a long ā stays (शर्मा: sharma)
        # (after a conjunct it is spoken: राजेंद्र is rajendra, कृष्ण krishna)
        if _silent_final_a(latin):
            latin = latin[:-1]
        for a, b in (("ṃh", "ngh"), ("jñ", "gy"), ("ṛ", "ri"), ("ṝ", "ri"), ("ṃ", "n"), ("ṁ", "n")):
            latin = latin.replace(a, b)
        words.append(latin)
    return " ".join(words)


@lru_cache(maxsize=65536)
def phonetic_key(text: str) -> str:
    """The coarse ASCII key of a name in either script (see the module docstring)."""
    text = unicodedata.normalize("NFC", text)
    if is_devanagari(text):
        text = _deva_to_latin(text)
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = re.sub(r"[^a-z ]+", " ", text)
    for a, b in _FOLDS:
        text = text.replace(a, b)
    text = re.sub(rf"(?<=[{_CONSONANTS}])h", "", text)  # aspiration: bh, dh, th, kh ... and a trailing h
    text = re.sub(r"(.)\1+", r"\1", text)  # doubled letters
    return " ".join(text.split())


def _sorted_words(key: str) -> str:
    return " ".join(sorted(key.split()))


@dataclass(frozen=True, slots=True)
class Match:
    person: Any  # scanstation.store.roster.RosterPerson
    score: float
    matched: str  # "code", "name_hi" or "name_en"

    def as_dict(self) -> dict[str, Any]:
        p = self.person
        return {"employee_code": p.employee_code, "name_hi": p.name_hi, "name_en": p.name_en, "rank": p.rank,
                "unit": p.unit, "active": p.active, "score": round(self.score, 1), "matched": self.matched}


@dataclass(frozen=True, slots=True)
class _Entry:
    person: Any
    code: str
    key_hi: str
    key_en: str


class RosterIndex:
    """The roster's people with their search keys, built once per import."""

    def __init__(self, people: Sequence[Any]) -> None:
        self.entries = [_Entry(p, p.employee_code, phonetic_key(p.name_hi) if p.name_hi else "",
                               phonetic_key(p.name_en) if p.name_en else "") for p in people]
        self._keys_hi = [e.key_hi for e in self.entries]
        self._keys_en = [e.key_en for e in self.entries]
        self._sorted_hi = [_sorted_words(k) for k in self._keys_hi]
        self._sorted_en = [_sorted_words(k) for k in self._keys_en]
        self._raw_hi = [e.person.name_hi for e in self.entries]
        self._empty = (np.array([not k for k in self._keys_hi], dtype=bool),
                       np.array([not k for k in self._keys_en], dtype=bool))

    def search(self, query: str, *, limit: int = 10, min_score: float = MIN_SCORE) -> list[Match]:
        query = " ".join(unicodedata.normalize("NFC", query).split())
        if not query:
            return []
        matches: list[Match] = []
        if any(c.isdigit() for c in query.translate(str.maketrans("०१२३४५६७८९", "0123456789"))):
            code = normalise_code(query)
            for e in self.entries:
                if e.code == code:
                    score = 100.0
                elif e.code.startswith(code) or code in e.code:
                    score = 90.0 * min(1.0, len(code) / max(1, len(e.code)) + 0.5)
                else:
                    score = fuzz.ratio(code, e.code) * 0.9
                if score >= min_score:
                    matches.append(Match(e.person, score, "code"))
        else:
            key = phonetic_key(query)
            # Scored in rapidfuzz's C loops over the whole roster at once (5,000 people: a few ms), then combined.
            scores = np.zeros((3, len(self.entries)), dtype=np.float32)
            sorted_key = _sorted_words(key)
            for row, keys, sorted_keys in ((0, self._keys_hi, self._sorted_hi), (1, self._keys_en, self._sorted_en)):
                # token_sort_ratio is ratio on sorted words: the roster's side is sorted once, at build time
                sort = process.cdist([sorted_key], sorted_keys, scorer=fuzz.ratio, processor=None)[0]
                tset = process.cdist([key], keys, scorer=fuzz.token_set_ratio, processor=None)[0]
                scores[row] = np.maximum(sort, 0.95 * tset)
                scores[row][self._empty[row]] = 0
            if is_devanagari(query):
                scores[2] = process.cdist([query], self._raw_hi, scorer=fuzz.token_sort_ratio, processor=None)[0]
                scores[2][self._empty[0]] = 0
            best = scores.max(axis=0)
            where = scores.argmax(axis=0)
            hits = np.flatnonzero(best >= min_score)
            # a common surname can put thousands over the bar: only the best few become Match objects
            top = hits[np.argsort(-best[hits], kind="stable")][: max(limit * 5, 50)]
            for i in top:
                matches.append(Match(self.entries[i].person, float(best[i]), "name_en" if where[i] == 1 else "name_hi"))
        matches.sort(key=lambda m: (-m.score, not m.person.active, m.person.employee_code))
        return matches[:limit]


_CACHE: OrderedDict[tuple[str, int], RosterIndex] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def roster_index(store: Any) -> RosterIndex:
    """The search index of the store's current roster (rebuilt after each import; a few kept)."""
    key = (str(store.path), store.roster_import_id())
    with _CACHE_LOCK:
        found = _CACHE.get(key)
        if found is not None:
            _CACHE.move_to_end(key)
            return found
    index = RosterIndex(store.roster_people())
    with _CACHE_LOCK:
        _CACHE[key] = index
        while len(_CACHE) > 4:
            _CACHE.popitem(last=False)
    return index


def search_roster(store: Any, query: str, *, limit: int = 10, min_score: float = MIN_SCORE) -> list[Match]:
    """People of the roster matching ``query`` (a code or a name in either script), best first."""
    return roster_index(store).search(query, limit=limit, min_score=min_score)

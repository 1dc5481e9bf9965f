"""OCR index suggestions matched against the roster: candidates for the operator to confirm, never applied.

:func:`scanstation.ocr.index_suggestions.suggest_index` reads an employee code, names, rank and period off
an ACR file's first pages.  Here each of those is looked up in the roster (the code exactly or with an OCR
slip, the names through the cross-script search), and the people found are ranked: a person whom both
the code and a name point to comes first.  The period is offered in its canonical form when it parses.
"""

from __future__ import annotations

from typing import Any

from scanstation.errors import StateError
from scanstation.roster.periods import parse_period
from scanstation.roster.search import roster_index


def roster_candidates(store: Any, suggestions: Any, *, limit: int = 5) -> dict[str, Any]:
    """``{"suggestions": ..., "candidates": [...], "period": label or None, "needs_confirmation": True}``."""
    index = roster_index(store)
    found: dict[str, dict[str, Any]] = {}

    def add(query: str | None, via: str, weight: float) -> None:
        if not query:
            return
        for m in index.search(query, limit=limit):
            row = found.setdefault(m.person.employee_code, {**m.as_dict(), "score": 0.0, "via": []})
            row["score"] = max(row["score"], m.score * weight)
            row["via"].append(via)

    code, name, name_hi = (suggestions.get(k) for k in ("employee_code", "name", "name_hi"))
    add(code.value if code else None, "code", 1.0)
    add(name.value if name else None, "name_en", 0.95)
    add(name_hi.value if name_hi else None, "name_hi", 0.95)
    for row in found.values():
        if "code" in row["via"] and len(row["via"]) > 1:
            row["score"] = min(100.0, row["score"] + 5)  # the code and a name agree
        row["score"] = round(row["score"], 1)
    candidates = sorted(found.values(), key=lambda r: (-r["score"], r["employee_code"]))[:limit]
    period = suggestions.get("acr_period")
    label = None
    if period is not None:
        try:
            label = parse_period(period.value).label
        except StateError:
            label = None
    return {"suggestions": suggestions.to_dict(), "candidates": candidates, "period": label,
            "needs_confirmation": True}

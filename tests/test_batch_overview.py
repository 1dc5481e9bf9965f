"""The kiosk's batch overview (``batches``): counts of live pages only - a page deleted in verification or
replaced by a rescan is neither in "pages" nor among "flagged" - and the deleted pages as their own count."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scanstation.domain import BatchState, OcrState, Side
from scanstation.store.database import StoredObject

from .stationkit import PASSWORD, make_station

# sign-ins and unlocks of the services these tests run in this process at the test stations' argon2id cost
pytestmark = pytest.mark.usefixtures("cheap_argon2")


def _page(store: Any, batch_id: int, n: int, flags: list[str]) -> Any:
    page = store.add_page(batch_id=batch_id, source_key=f"k{n}", label="", side=Side.FRONT, device="test:0",
                          width=10, height=10, dpi=300, mode="L",
                          raw=StoredObject(f"{n:032x}", "raw", "a" * 64, "b" * 64, 10), document_id=None,
                          actor="op", ocr_state=OcrState.PENDING)
    with store._write() as db:
        db.execute("UPDATE pages SET flags=? WHERE id=?", (json.dumps(flags), page.id))
    return store.page(page.id)


def test_batch_overview_counts_live_pages_and_deleted(tmp_path: Path) -> None:
    from scanstation.config import load_config
    from scanstation.people.roles import Action
    from scanstation.service.client import LocalConnection
    from scanstation.service.core import StationService

    st = make_station(tmp_path / "st")
    with StationService(load_config(st.config)) as service:
        sup = service.sign_in("sup", PASSWORD)
        service.unlock(sup, PASSWORD)
        store = service.station(sup, Action.VIEW_PAGE).store
        b = store.open_batch("B1", "Unit", "op")
        ok = _page(store, b.id, 1, [])
        flagged = _page(store, b.id, 2, ["quality"])
        deleted = _page(store, b.id, 3, ["blank"])  # flagged, then deleted in verification
        old = _page(store, b.id, 4, ["skew"])  # flagged, then replaced by a rescan
        rescan = _page(store, b.id, 5, [])
        store.set_batch_state(b.id, BatchState.CLOSED, "op")
        store.set_page_verdict(deleted, "ok", "blank back side", "sup2", rotation=None, delete=True,
                               restore=False, via="screen")
        store.replace_page(old, rescan, "op")
        assert ok.live and flagged.live and not store.page(deleted.id).live and not store.page(old.id).live

        conn = LocalConnection(service, owns_service=False)
        conn.token = sup.token
        row = {r["name"]: r for r in conn.call("batches")}["B1"]
        assert (row["pages"], row["flagged"], row["deleted"]) == (3, 1, 1)  # live: ok, flagged, rescan
        assert row["ocr_pending"] == 3 and row["processed"] == 0 and row["ocr_done"] == 0

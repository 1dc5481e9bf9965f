"""What the admin's ``scanstation status`` and the unit IT's ``scanstation health`` read: disk, queue, last upload.

Counts, times and batch names only: no page, no employee, no file name.  The queue and the last upload are
in the encrypted store, so they are known only while the station is unlocked (or, in-process, to a
supervisor or unit head who opened the store for the command); the disk is known always.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scanstation.domain import BatchState

# Upload rows still on their way (scanstation/upload/queue.py: ACTIVE_STATES) and those that gave up.
WAITING_UPLOADS = ("queued", "uploading", "retrying")
DONE_UPLOADS = ("received", "purging", "purged")


def disk_usage(path: Path) -> dict[str, Any]:
    """Free and total bytes of the file system holding ``path`` (statvfs: what an unprivileged writer gets)."""
    try:
        st = os.statvfs(path)
    except OSError as e:
        return {"path": str(path), "error": e.strerror or str(e)}
    total, free = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
    return {"path": str(path), "free_bytes": free, "total_bytes": total,
            "free_percent": round(100.0 * free / total, 1) if total else 0.0}


def _parse(ts: str | None) -> datetime | None:
    if not ts:
        return None
    try:
        t = datetime.fromisoformat(ts)
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def queue_summary(store: Any, now: datetime | None = None) -> dict[str, Any]:
    """Pages waiting for processing and OCR, batches sealed and waiting for upload (the oldest's age),
    uploads that gave up, and the last upload the portal acknowledged."""
    now = now or datetime.now(UTC)
    counts = store.counts()
    uploads = {r["batch_id"]: r for r in store.uploads()}
    waiting: list[dict[str, Any]] = []
    failed: list[str] = []
    last: dict[str, Any] | None = None
    for b in store.batches():
        up = uploads.get(b.id)
        if up is not None and up["state"] == "failed":
            failed.append(b.name)
        done = up if up is not None and up["state"] in DONE_UPLOADS and up["received_at"] else None
        if done is not None and (last is None or str(done["received_at"]) > str(last["received_at"])):
            last = {"batch": b.name, "received_at": done["received_at"], "receipt_id": done["receipt_id"]}
        if b.state in (BatchState.SEALED, BatchState.UPLOADING) and (up is None or up["state"] not in DONE_UPLOADS):
            pkg = store.package(b.id)
            since = (up["created_at"] if up is not None else None) or (pkg["created_at"] if pkg is not None else None)
            waiting.append({"batch": b.name, "since": since, "state": up["state"] if up is not None else "not queued"})
    oldest = min((w for w in waiting if _parse(w["since"])), key=lambda w: str(w["since"]), default=None)
    oldest_hours = None
    if oldest is not None:
        started = _parse(oldest["since"])
        assert started is not None
        oldest_hours = (now - started).total_seconds() / 3600  # unrounded: a script's threshold may be small
    return {
        "pages_to_process": counts.get("state_captured", 0),
        "pages_to_ocr": counts.get("ocr_pending", 0),
        "batches_to_upload": len(waiting),
        "uploads": waiting,
        "oldest_upload_hours": oldest_hours,
        "uploads_failed": failed,
        "last_upload": last,
    }

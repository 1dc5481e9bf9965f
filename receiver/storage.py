"""Files of the receiver's data directory: partial uploads, staging, and the store of ACR files.

    DATA_DIR/uploads/<upload_id>.part          partial tus uploads (fsynced before an offset is acknowledged)
    DATA_DIR/staging/<upload_id>/              objects re-encrypted while a package is verified
    DATA_DIR/store/<employee_code>/<acr_period>/<batch_uid>/
        <doc_id>.json.age                      the document entry, its object entries and digest
        objects/<object_id>.age                each object, re-encrypted to the portal recipient only
    DATA_DIR/store/_batches/<batch_uid>/
        manifest.json.age                      the signed manifest plaintext, re-encrypted to the portal only
        signatures/station.json, envelope.json the station's signature and the envelope (no personal data)
        unfiled/<object_id>.age                objects of pages that belong to no document

Path components from the manifest are escaped (:func:`safe_component`), so no employee code or
batch uid can reach outside the store or collide with the ``_batches`` area.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path

from batchformat import atomic

_SAFE = re.compile(r"[A-Za-z0-9._-]")
UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


def safe_component(value: str) -> str:
    """One path component for ``value``: unreserved characters kept, everything else %XX (UTF-8).

    A leading ``.`` or ``_`` is escaped too (no hidden files, no clash with ``_batches``); empty → ``%00``.
    """
    if not value:
        return "%00"
    out = []
    for i, ch in enumerate(value):
        if _SAFE.match(ch) and not (i == 0 and ch in "._"):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)[:200]


class DataDir:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.uploads = root / "uploads"
        self.staging = root / "staging"
        self.store = root / "store"
        for d in (root, self.uploads, self.staging, self.store):
            atomic.ensure_dir(d, 0o700)

    # ------------------------------------------------------------------ partial uploads

    def part_path(self, upload_id: str) -> Path:
        if not UPLOAD_ID.match(upload_id):  # ids become file names: never anything but 32 hex
            raise ValueError(f"invalid upload id {upload_id!r}")
        return self.uploads / f"{upload_id}.part"

    def create_part(self, upload_id: str) -> None:
        """Create the empty partial file durably (file and directory entry fsynced)."""
        path = self.part_path(upload_id)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        atomic.fsync_dir(self.uploads)

    def part_size(self, upload_id: str) -> int | None:
        try:
            return self.part_path(upload_id).stat().st_size
        except FileNotFoundError:
            return None

    def truncate_part(self, upload_id: str, offset: int) -> None:
        """Cut bytes past the acknowledged offset (a crash or a refused chunk may have left them)."""
        path = self.part_path(upload_id)
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            if os.fstat(fd).st_size != offset:
                os.ftruncate(fd, offset)
                os.fsync(fd)
        finally:
            os.close(fd)

    def delete_part(self, upload_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.part_path(upload_id).unlink()
            atomic.fsync_dir(self.uploads)

    def orphan_parts(self, known: set[str]) -> list[Path]:
        """Partial files without a database row (crash between file creation and insert) or stray names."""
        out = []
        for entry in self.uploads.iterdir():
            stem = entry.name.removesuffix(".part")
            if not entry.name.endswith(".part") or stem not in known:
                out.append(entry)
        return out

    # ------------------------------------------------------------------ staging and store

    def staging_dir(self, upload_id: str) -> Path:
        if not UPLOAD_ID.match(upload_id):
            raise ValueError(f"invalid upload id {upload_id!r}")
        return self.staging / upload_id

    def clear_staging(self, upload_id: str | None = None) -> None:
        target = self.staging if upload_id is None else self.staging_dir(upload_id)
        if upload_id is None:
            for entry in self.staging.iterdir():
                shutil.rmtree(entry, ignore_errors=True)
        else:
            shutil.rmtree(target, ignore_errors=True)

    def document_dir(self, employee_code: str, acr_period: str, batch_uid: str) -> Path:
        return self.store / safe_component(employee_code) / safe_component(acr_period) / safe_component(batch_uid)

    def batch_dir(self, batch_uid: str) -> Path:
        return self.store / "_batches" / safe_component(batch_uid)


def write_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    atomic.ensure_dir(path.parent, 0o700)
    atomic.atomic_write(path, data, mode=mode)


def move_into(src: Path, dst: Path) -> None:
    """Rename a staged (already fsynced) file into the store; the new directory entry is fsynced."""
    atomic.ensure_dir(dst.parent, 0o700)
    os.replace(src, dst)
    atomic.fsync_dir(dst.parent)

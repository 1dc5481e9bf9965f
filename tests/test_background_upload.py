"""The background uploader (what the running station uses): uploads queued batches, survives a restart.

The reference receiver serves HTTPS on 127.0.0.1 (a self-signed server certificate, the station's
``[portal] ca_bundle``) and takes only enrolled stations: the station is enrolled the real way before the
receiver starts (``scanstation enrol --out``, ``scanstation-receiver enrol``, ``scanstation enrol --install``)
and every request of its uploads presents the client certificate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from receiver.keys import load_or_create_receipt_key
from scanstation.facade import Station
from scanstation.upload.queue import BackgroundUploader, UploadQueue
from scanstation_tools.synth import PageSpec, render_acr_page
from tests.receiverkit import ReceiverProcess, run_enrol, write_identity
from tests.stationkit import StationEnv, make_station
from tests.tlskit import self_signed


def _wait(pred, timeout: float = 120.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return False


@contextmanager
def _tls_receiver(tmp_path: Path, identity_file: Path) -> Iterator[ReceiverProcess]:
    """The receiver over TLS, not started yet (its receipt key made, for the station's configuration); stopped
    afterwards."""
    rx = ReceiverProcess(tmp_path, identity_file, tls=self_signed(tmp_path / "tls"))
    rx.data_dir.mkdir(mode=0o700)
    load_or_create_receipt_key(rx.data_dir)
    try:
        yield rx
    finally:
        rx.stop()


def _enrol(st: StationEnv, rx: ReceiverProcess, tmp_path: Path) -> None:
    """The station's request, registered by the receiver, its answer installed; the portal's server certificate
    trusted as ``[portal] ca_bundle``."""
    request, bundle = tmp_path / "enrol-request.json", tmp_path / "enrol-bundle.pem"
    st.run("enrol", "--out", str(request), "--user", "admin", check=True)
    assert run_enrol(rx.data_dir, request, bundle) == 0
    st.run("enrol", "--install", str(bundle), "--user", "admin", check=True)
    assert rx.tls is not None
    text = st.config.read_text()
    assert "[portal]\n" in text
    st.config.write_text(text.replace("[portal]\n", f'[portal]\nca_bundle = "{rx.tls[0]}"\n', 1))


def _sealed_station(tmp_path: Path, rx: ReceiverProcess, portal: Any, batch: str, employee: str, seed: int,
                    pages: int) -> tuple[Any, Any]:
    """A station on the receiver ``rx`` (64 KiB chunks, slowed so an upload can be cut), enrolled there, with
    batch ``batch`` imported and sealed; then ``rx`` is started.  Returns the station's (config, unlocked key).

    Pages travel compactly (issue 16): a page of these is ~15 KB in its ACR file's PDF, so the raw capture and
    the cleaned page travel too (``include_raw``) and the link is slow, or the package would be one chunk."""
    st = make_station(tmp_path / "st", init_args=("--portal-url", rx.url, "--portal-receipt-key",
                                                 str(rx.receipt_key_path)),
                      extra_config="\n[upload]\nchunk_bytes = 65536\nmax_bytes_per_second = 40000\n"
                                   "include_raw = true\n",
                      portal=portal)
    _enrol(st, rx, tmp_path)
    files = []
    for i in range(pages):
        f = tmp_path / f"p{i}.png"
        render_acr_page(PageSpec(seed=seed, page_no=i + 1, dpi=100, noise=0.05)).image.save(f)
        files.append(str(f))
    st.roster(employee)
    st.run("import", "--batch", batch, "--employee", employee, "--period", "2019-20", *files, check=True)
    st.verify(batch)  # nothing is sealed unverified
    st.run("seal", "--batch", batch, check=True)
    size = next((st.data_dir / "outbox").glob("*.pkg")).stat().st_size
    assert size > 2 * 65536, f"a package of {size} bytes is too small to cut an upload in the middle"
    rx.start()
    return st.unlock()


def _uncapped(config: Any) -> Any:
    """The station's configuration without the link's cap: the slow link is there to cut a first run mid-upload,
    and the run that finishes the upload may send at full speed."""
    assert config.upload.max_bytes_per_second == 40000
    return config.model_copy(update={"upload": config.upload.model_copy(update={"max_bytes_per_second": 0})})


class _Events:
    """The station's events, collected from any thread."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict]] = []
        self._lock = threading.Lock()

    def __call__(self, kind: str, data: dict) -> None:
        with self._lock:
            self.seen.append((kind, data))


def _cut_mid_upload(station: Station, sink: _Events, batch: str) -> None:
    """Queue ``batch`` and stop the background uploader once it has sent some chunks (the station stops)."""
    queue = UploadQueue(station, events=sink)
    queue.enqueue(batch, "op")
    up = BackgroundUploader(queue, interval=0.5).start()
    assert _wait(lambda: any(k == "upload_progress" and d["offset"] > 0 for k, d in sink.seen))
    up.stop()


def _upload_until_received(queue: UploadQueue, sink: _Events, rx: Any) -> None:
    """Run the background uploader until the receiver has acknowledged the package."""
    up = BackgroundUploader(queue, interval=0.5).start()
    try:
        assert _wait(lambda: any(k == "upload_received" for k, _ in sink.seen)), rx.log_text()
    finally:
        up.stop()


def test_background_uploader_resumes_after_station_restart(tmp_path: Path) -> None:
    identity_file = tmp_path / "portal.txt"
    portal = write_identity(identity_file)
    with _tls_receiver(tmp_path, identity_file) as rx:
        config, key = _sealed_station(tmp_path, rx, portal, "BG", "E61", seed=61, pages=3)
        sink = _Events()
        events = sink.seen

        # First station run: the uploader starts, sends some chunks, and the station stops mid-upload.
        with Station(config, key) as station:
            _cut_mid_upload(station, sink, "BG")
            row = station.store.upload(station.store.batch("BG").id)  # type: ignore[union-attr]
            assert row is not None
            assert row["state"] == "uploading" and 0 < row["confirmed_offset"] < row["size"]
        # Second run: the queue is still there and the upload completes from the confirmed offset.
        with Station(_uncapped(config), key) as station:
            queue = UploadQueue(station, events=sink)
            assert queue.pending_batches() == ["BG"]
            _upload_until_received(queue, sink, rx)
            first_resumed = next(d["offset"] for k, d in events if k == "upload_progress"
                                 and d["offset"] > row["confirmed_offset"])
            assert first_resumed - row["confirmed_offset"] <= 65536  # resumed, not restarted from zero
            assert station.store.batch("BG").state.value == "uploaded"  # type: ignore[union-attr]


def test_upload_expiry_is_kept_and_an_expired_upload_is_started_anew(tmp_path: Path) -> None:
    """The server's Upload-Expires is stored with the offset; after a restart past it, the station starts
    a new upload at once instead of resuming one the server has dropped."""
    from datetime import UTC, datetime, timedelta

    identity_file = tmp_path / "portal.txt"
    portal = write_identity(identity_file)
    with _tls_receiver(tmp_path, identity_file) as rx:
        config, key = _sealed_station(tmp_path, rx, portal, "EX", "E62", seed=62, pages=2)
        sink = _Events()
        events = sink.seen

        with Station(config, key) as station:
            _cut_mid_upload(station, sink, "EX")
            batch_id = station.store.batch("EX").id  # type: ignore[union-attr]
            row = station.store.upload(batch_id)
            assert row is not None
            assert 0 < row["confirmed_offset"] < row["size"]
            expires = datetime.fromisoformat(row["expires"])
            # the reference receiver keeps an unfinished upload for 24 hours
            assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(hours=24, minutes=1)
            old_url = row["url"]
            # The station stays off past that time.
            station.store.update_upload(batch_id, expires=(datetime.now(UTC) - timedelta(hours=1)).isoformat())
        events.clear()
        with Station(_uncapped(config), key) as station:
            _upload_until_received(UploadQueue(station, events=sink), sink, rx)
            row = station.store.upload(batch_id)
            assert row is not None
            # The receiver still had the old upload (24 hours): only the stored expiry explains a new one.
            assert row["url"] != old_url
            first = next(d["offset"] for k, d in events if k == "upload_progress")
            assert first <= 65536  # from the start
            assert station.store.batch("EX").state.value == "uploaded"  # type: ignore[union-attr]

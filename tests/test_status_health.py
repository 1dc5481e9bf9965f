"""Issue 17: ``scanstation status`` for the admin (service, unlock, device guard, disk, queue, last upload) and
``scanstation health``'s checks and exit codes (0, or 64 plus the failing checks' bits).

A real station and real commands: without a service (the command in its own process), then with
``scanstation serve`` running under umockdev (tests/umockdevkit.py), so that the device guard is on and a
hot-plugged USB stick trips it, as on a kiosk.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest

from scanstation.errors import SignInError
from scanstation.service.client import RemoteConnection
from scanstation_tools.synth import PageSpec, render_acr_page

from .stationkit import PASSWORD, StationEnv, make_station
from .umockdevkit import Testbed, available

SERVICE, SIGNIN, GUARD, DISK, UPLOAD = 1, 2, 4, 8, 16


def _health(st: StationEnv, *args: str) -> tuple[int, dict]:
    proc = st.run("health", "--json", "--user", "admin", *args)
    return proc.returncode, json.loads(proc.stdout)


def _sealed_batch(st: StationEnv, tmp_path: Path) -> None:
    page = tmp_path / "page.png"
    render_acr_page(PageSpec(seed=5, dpi=100)).image.save(page)
    st.roster("E100")
    st.run("import", "--batch", "B1", "--employee", "E100", "--period", "2019-20", str(page), check=True)
    st.verify("B1")
    st.run("seal", "--batch", "B1", check=True)


def test_without_a_service(tmp_path: Path) -> None:
    st = make_station(tmp_path / "st")
    _sealed_batch(st, tmp_path)
    # the admin: the overview, the batches not (locked: the admin has no key slot)
    admin = st.run("status", "--user", "admin", check=True)
    print("\n$ scanstation status --user admin   # no service\n" + admin.stdout)
    out = admin.stdout
    assert "service: NOT running (nothing answers on" in out and "station: locked" in out
    assert "device guard: OFF: no station service runs" in out
    assert "disk: " in out and " GiB free of " in out
    assert "queue: not shown while the station is locked" in out and "batches: not shown: the station is locked" in out
    # a supervisor opens the store for the command: the queue too (one sealed batch waiting, never uploaded)
    data = json.loads(st.run("status", "--json", "--user", "sup", check=True).stdout)
    assert data["service"]["running"] is False and data["guard"]["state"] == "off"
    assert [b["name"] for b in data["batches"]] == ["B1"]
    queue = data["queue"]
    assert queue["batches_to_upload"] == 1 and queue["uploads"][0]["batch"] == "B1"
    assert queue["uploads"][0]["state"] == "not queued" and queue["oldest_upload_hours"] >= 0
    assert queue["pages_to_process"] == 0 and queue["last_upload"] is None and queue["uploads_failed"] == []
    assert data["disk"]["free_bytes"] > 0 and data["disk"]["path"] == str(st.data_dir)
    # health: the service is down, so nothing watches the devices either
    code, report = _health(st)
    assert code == 64 + SERVICE + GUARD, report
    assert report["failing"] == ["service", "guard"]
    assert {c["name"]: c["ok"] for c in report["checks"]} == {"service": False, "guard": False, "disk": True,
                                                               "upload": None}
    text = st.run("health", "--user", "admin")
    print("$ scanstation health   # no service\n" + text.stdout + f"(exit {text.returncode})")
    assert text.returncode == 64 + SERVICE + GUARD
    assert text.stdout.splitlines()[0].startswith("FAIL service: nothing answers on")
    assert text.stdout.splitlines()[-1] == f"health: FAILING service, guard (exit {64 + SERVICE + GUARD})"


@pytest.mark.skipif(available() is not None, reason=f"{available()}")
def test_with_the_service_and_its_guard(tmp_path: Path) -> None:
    from scanstation.config import load_config

    base = make_station(tmp_path / "st")
    _sealed_batch(base, tmp_path)
    sock = load_config(base.config).socket_path
    with Testbed() as testbed:
        testbed.load("host.umockdev")
        st = dataclasses.replace(base, env={**base.env, **testbed.env})
        with st.serve(unlock_as="head"):
            code, report = _health(st)
            assert code == 0 and report["healthy"] is True and report["failing"] == [], report
            text = st.run("health", "--user", "admin")
            print("\n$ scanstation health   # service up, unlocked, guard on\n" + text.stdout)
            assert text.returncode == 0 and text.stdout.splitlines()[-1] == "health: OK (exit 0)"
            # root without --user: the service's sessionless 'health' (SO_PEERCRED), no password, no sign-in
            text = st.run("health")
            print("$ scanstation health   # as root, no --user\n" + text.stdout)
            assert text.returncode == 0 and text.stdout.splitlines()[-1] == "health: OK (exit 0)", text.stdout
            assert "SKIP signin: not needed: asked as root" in text.stdout
            assert "OK upload: 1 batch(es) waiting" in text.stdout  # the queue, read without a session
            status = st.run("status", "--user", "admin", check=True).stdout
            print("$ scanstation status --user admin   # through the service\n" + status)
            assert "service: running, pid " in status and "station: unlocked by head" in status
            assert "device guard: on since " in status
            assert "queue: 0 page(s) to process, 0 waiting for OCR; 1 sealed batch(es) waiting for upload" in status
            assert "last upload: none yet" in status and "batch B1: sealed" in status
            # thresholds: a disk that must have a million GiB free, a batch that may not wait at all
            code, report = _health(st, "--min-free-gib", "1000000", "--upload-hours", "0")
            assert code == 64 + DISK + UPLOAD and report["failing"] == ["disk", "upload"], report
            upload = next(c for c in report["checks"] if c["name"] == "upload")
            assert "B1 waiting" in upload["detail"] and "not queued" in upload["detail"]
            # a pen drive: the guard trips, the station locks; health names the guard, status shows the device
            stick = testbed.plug("usb-stick-sandisk-cruzer-blade.umockdev")
            deadline = time.monotonic() + 5
            while _locked(sock) is not True and time.monotonic() < deadline:
                time.sleep(0.02)
            code, report = _health(st)
            assert code == 64 + GUARD and report["failing"] == ["guard"], report
            guard = next(c for c in report["checks"] if c["name"] == "guard")
            assert "TRIPPED" in guard["detail"] and "0781:5567" in guard["detail"]
            assert next(c for c in report["checks"] if c["name"] == "upload")["ok"] is None  # locked: not checked
            text = st.run("health", "--user", "admin")
            status = st.run("status", "--user", "admin", check=True).stdout
            print("$ scanstation health   # after a USB stick\n" + text.stdout + f"(exit {text.returncode})\n"
                  "$ scanstation status --user admin   # after a USB stick\n" + status)
            assert "device guard: TRIPPED since" in status and "station: locked" in status
            assert "USB mass storage (class 08): SanDisk Cruzer Blade (0781:5567)" in status
            assert "still connected" in status and "batches: not shown" in status
            testbed.unplug(stick)
            st.run("unlock", "--user", "head", check=True)  # clears the trip
            code, report = _health(st)
            assert code == 0, report
            # a wrong password (last: the name is slowed down after it): sign-in fails, the guard is unknown
            bad = tmp_path / "bad.txt"
            bad.write_text("not the password at all\n")
            bad.chmod(0o600)
            st.env["SCANSTATION_PASSWORD_FILE"], good = str(bad), st.env["SCANSTATION_PASSWORD_FILE"]
            try:
                code, report = _health(st)
            finally:
                st.env["SCANSTATION_PASSWORD_FILE"] = good
            assert code == 64 + SIGNIN + GUARD and report["failing"] == ["signin", "guard"], report


def _locked(sock: Path) -> bool | None:
    """Whether the service says it is locked; None when the lock came between this sign-in and the question (a
    lock ends every session): ask again."""
    conn = RemoteConnection(sock, timeout=60)  # serve(unlock_as="head") ran a command through it: it listens
    try:
        conn.token = conn.call("sign_in", name="head", password=PASSWORD)["token"]
        try:
            return bool(conn.call("status")["locked"])
        except SignInError as e:
            assert "no such session" in e.message, e.message
            return None
    finally:
        conn.close()


def test_the_queue_from_a_store(tmp_path: Path) -> None:
    """queue_summary on a real (SQLCipher) store: pages waiting, sealed batches waiting (the oldest's age),
    an upload that gave up, and the latest receipt as the last upload."""
    from datetime import UTC, datetime, timedelta

    from scanstation.domain import BatchState, OcrState, Side
    from scanstation.service.health import queue_summary
    from scanstation.store.database import Store, StoredObject

    from .recording_sink import RecordingSink

    store = Store(tmp_path / "station.db", key=bytes(range(32)), audit=RecordingSink())
    try:
        def obj(i: int, kind: str = "raw") -> StoredObject:
            return StoredObject(f"{i:032x}", kind, "a" * 64, "b" * 64, 10)

        scanning = store.open_batch("S1", "Unit", "op")
        for i in (1, 2):
            store.add_page(batch_id=scanning.id, source_key=f"k{i}", label=f"k{i}", side=Side.FRONT, device="t:0",
                           width=10, height=10, dpi=300, mode="L", raw=obj(i), document_id=None, actor="op",
                           ocr_state=OcrState.PENDING)

        def sealed(name: str, n: int) -> int:
            b = store.open_batch(name, "Unit", "op")
            for state in (BatchState.CLOSED, BatchState.IN_VERIFICATION, BatchState.VERIFIED, BatchState.SEALED):
                store.set_batch_state(b.id, state, "sup")
            store.set_package(b.id, f"pkg-{name}", f"{name}.pkg", "c" * 64, 100, obj(n, "manifest"), "sup")
            return b.id

        waiting = sealed("W1", 10)
        store.enqueue_upload(waiting, 100, "sup")
        gave_up = sealed("F1", 11)
        store.enqueue_upload(gave_up, 100, "sup")
        store.update_upload(gave_up, state="failed", last_error="portal unreachable")
        for name, n, at in (("U1", 12, "2026-12-01T10:00:00+00:00"), ("U2", 13, "2026-12-02T09:30:00+00:00")):
            done = sealed(name, n)
            store.enqueue_upload(done, 100, "sup")
            store.set_batch_state(done, BatchState.UPLOADING, "station")
            store.record_receipt(done, receipt=b"r", receipt_id=f"r-{name}", received_at=at,
                                 purge_after="2027-01-01T00:00:00+00:00", package_sha256="c" * 64, actor="station")
        q = queue_summary(store, now=datetime.now(UTC) + timedelta(hours=30))
    finally:
        store.close()
    assert (q["pages_to_process"], q["pages_to_ocr"]) == (2, 2)
    assert q["batches_to_upload"] == 2 and {u["batch"]: u["state"] for u in q["uploads"]} == {"W1": "queued",
                                                                                              "F1": "failed"}
    assert 29.9 < q["oldest_upload_hours"] < 30.1
    assert q["uploads_failed"] == ["F1"]
    assert q["last_upload"] == {"batch": "U2", "received_at": "2026-12-02T09:30:00+00:00", "receipt_id": "r-U2"}

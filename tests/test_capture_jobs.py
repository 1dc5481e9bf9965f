"""Background capture jobs (issue 14, item 4's core): a scan on a service thread, its events polled.

Real pieces only: a station made by the CLI, the station service in this process (the same operation table
the socket serves), SANE's ``test`` back end (tests/sane_env.py) for scanning and a jam, the import driver
for QR cover sheets rendered by :func:`render_cover_sheet`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from drivers.import_driver import ImportDriver
from scanstation.capture.cover_sheets import CoverInfo, render_cover_sheet
from scanstation.capture.jobs import CaptureJob, options_after
from scanstation.capture.profiles import profile_settings
from scanstation.config import load_config
from scanstation.errors import PermissionDenied, StateError
from scanstation.service.client import LocalConnection
from scanstation.service.core import StationService

from .sane_env import sane_test_env
from .stationkit import PASSWORD, StationEnv, make_station

# sign-ins and unlocks of the services these tests run in this process at the test stations' argon2id cost
pytestmark = pytest.mark.usefixtures("cheap_argon2")

PROFILES = """
[profiles.test-adf]
source = "adf"
mode = "gray"
resolution = 75
page_size = "A4"
separators = false

[profiles.test-adf-jam]
description = "the test back end's feeder jams on the 4th sheet"
source = "adf"
mode = "gray"
resolution = 75
separators = false
options = ["page4:read-return-value=SANE_STATUS_JAMMED"]

[profiles.import-300]
source = "flatbed"
mode = "gray"
resolution = 300
"""


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> StationEnv:
    root = tmp_path_factory.mktemp("jobs")
    return make_station(root / "st", extra_env=sane_test_env(root), extra_config="enabled = false\n" + PROFILES)


@pytest.fixture
def service(station: StationEnv, monkeypatch: pytest.MonkeyPatch) -> Iterator[StationService]:
    for key, value in sane_test_env(station.root.parent).items():
        monkeypatch.setenv(key, value)  # the SANE worker processes inherit it
    with StationService(load_config(station.config)) as svc:
        head = svc.sign_in("head", PASSWORD)
        svc.unlock(head, PASSWORD)
        yield svc


def connect(service: StationService, name: str) -> LocalConnection:
    conn = LocalConnection(service, owns_service=False)
    conn.token = conn.call("sign_in", name=name, password=PASSWORD)["token"]
    return conn


def follow(conn: Any, job: str, until: Callable[[dict[str, Any]], bool], since: int = 0,
           timeout: float = 120) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Poll scan_events until ``until(reply)``; the last reply and every event seen from ``since``."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        started = time.monotonic()
        reply = conn.call("scan_events", job=job, since=since)
        assert time.monotonic() - started < 3, "scan_events must return within about a second"
        seen.extend(reply["events"])
        since = reply["next"]
        if until(reply):
            return reply, seen
        assert time.monotonic() < deadline, f"job never got there: {reply['state']}, {seen[-5:]}"


def kinds(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == kind]


def test_options_after_moves_sheet_options_with_the_stack() -> None:
    options = (("test-picture", "Grid"), ("page4:read-return-value", "SANE_STATUS_JAMMED"), ("page6:mode", "Color"))
    assert options_after(options, 0) == options
    assert options_after(options, 4) == (("test-picture", "Grid"), ("page2:mode", "Color"))
    assert options_after(options, 1 << 30) == (("test-picture", "Grid"),)


def test_jam_waits_for_continue_then_the_batch_goes_on(service: StationService) -> None:
    op = connect(service, "op")
    assert "test-adf-jam" in [p["name"] for p in op.call("profiles")["profiles"]]
    scanners = op.call("scanners")
    deadline = time.monotonic() + 60
    while scanners["searching"] and time.monotonic() < deadline:
        scanners = op.call("scanners")
    assert "test:0" in [d["name"] for d in scanners["devices"]]

    job = op.call("scan_start", batch="JOB1", device="test:0", profile="test-adf-jam")["job"]
    reply, events = follow(op, job, lambda r: r["state"] != "running")
    assert reply["state"] == "waiting"
    assert [e["seq"] for e in kinds(events, "page")] == [1, 2, 3]  # sheets before the jam: acknowledged
    [jam] = kinds(events, "device_error")
    assert jam["error"] == "PaperJam" and jam["pages_received"] == 3 and jam["exit_code"] == 12
    assert "Paper jam" in jam["message_en"] and "कागज़ फँस गया है" in jam["message_hi"]
    assert reply["prompt"]["message_hi"] == jam["message_hi"]

    # someone else may not answer the prompt or read the events
    other = connect(service, "sup")
    with pytest.raises(PermissionDenied):
        other.call("scan_continue", job=job)
    with pytest.raises(PermissionDenied):
        other.call("scan_events", job=job, since=0)

    continued = op.call("scan_continue", job=job)
    assert continued["state"] == "running" and continued["prompt"] is None
    reply, more = follow(op, job, lambda r: r["state"] != "running", since=reply["next"])
    assert reply["state"] == "idle", more[-3:]  # the jam was cleared: the feeder's ten sheets came through
    pages = kinds(events + more, "page")
    assert [e["seq"] for e in pages] == list(range(1, 14))
    assert len({e["page_id"] for e in pages}) == 13
    assert kinds(more, "run_finished")[-1]["acknowledged"] == 10

    # cleaning moves pages on; the next polls say so
    _reply, states = follow(op, job, lambda r: any(e["kind"] == "page_state" and e["state"] == "processed"
                                                   for e in r["events"]), since=reply["next"])
    assert {e["seq"] for e in kinds(states, "page_state")} <= set(range(1, 14))

    # an idle poll returns within about a second
    started = time.monotonic()
    quiet = op.call("scan_events", job=job, since=10_000)
    assert quiet["events"] == [] and time.monotonic() - started < 2.5

    assert op.call("scan_jobs")[0]["job"] == job
    assert op.call("scan_stop", job=job)["state"] == "stopped"
    assert op.call("scan_jobs") == []
    with pytest.raises(StateError, match="has ended"):
        op.call("scan_continue", job=job)
    mine = {b["name"]: b for b in op.call("operator_batches")}
    assert mine["JOB1"]["pages"] == 13 and mine["JOB1"]["state"] == "scanning"

    # a second operator's batch is not in op's list, and resuming shows op's earlier pages first
    job2 = op.call("scan_start", batch="JOB1", device="test:0", profile="test-adf")["job"]
    reply, again = follow(op, job2, lambda r: r["state"] != "running")
    earlier = [e for e in kinds(again, "page") if e.get("earlier")]
    assert [e["seq"] for e in earlier] == list(range(1, 14))
    assert [e["seq"] for e in kinds(again, "page") if not e.get("earlier")] == list(range(14, 24))
    op.call("scan_stop", job=job2)


def test_locked_profile_value_refused_and_audited(service: StationService) -> None:
    op = connect(service, "op")
    with pytest.raises(PermissionDenied, match="scan profile 'test-adf' locks mode"):
        op.call("scan_start", batch="JOB2", device="test:0", profile="test-adf", mode="color")
    with pytest.raises(PermissionDenied, match="back-end options"):
        op.call("scan_start", batch="JOB2", device="test:0", profile="test-adf",
                options=["read-return-value=SANE_STATUS_JAMMED"])
    refused = [e for e in service.audit.entries() if e.action == "scan.profile_refused"]
    assert [(e.actor, e.subject) for e in refused[-2:]] == [("op", "profile:test-adf")] * 2
    assert service.station(service.sign_in("sup", PASSWORD), _scan()).store.batch("JOB2") is None
    with pytest.raises(StateError, match="import"):
        op.call("scan_start", batch="JOB2", device="import", profile="test-adf")


def _scan() -> Any:
    from scanstation.people.roles import Action

    return Action.SCAN


def test_cover_sheets_start_acr_files_prefilled(service: StationService, tmp_path: Path) -> None:
    """Import driver, two QR cover sheets each followed by pages: two ACR files, pages assigned to them."""
    files = []
    for i, (code, period) in enumerate([("EMP-1001", "2019-20"), ("EMP-1002", "2020-21")]):
        cover = tmp_path / f"{i}-0-cover.png"
        render_cover_sheet(CoverInfo(code, period, "Test Unit", "Asha Verma")).save(cover, dpi=(300, 300))
        files.append(cover)
        for n in (1, 2):
            page = tmp_path / f"{i}-{n}-page.png"
            img = Image.new("L", (1240, 1754), 255)
            ImageDraw.Draw(img).text((100, 100 + 40 * n), f"ACR page {n} of {code}", fill=0)
            img.save(page, dpi=(150, 150))
            files.append(page)
    station = service.station(service.sign_in("op", PASSWORD), _scan())
    chosen = profile_settings(service.config, "import-300")
    job = CaptureJob(station, owner="op", batch="JOB3", device="import", profile="import-300",
                     settings=chosen.settings, separators=chosen.separators,
                     driver_factory=lambda: ImportDriver(files, tmp_dir=station.ramdir.path))
    job.start()
    job.join(120)
    reply = job.events_since(0, 0)
    assert reply["state"] == "idle", reply["events"][-3:]
    files_opened = kinds(reply["events"], "acr_file")
    assert [(f["employee_code"], f["acr_period"]) for f in files_opened] == [("EMP-1001", "2019-20"),
                                                                             ("EMP-1002", "2020-21")]
    pages = kinds(reply["events"], "page")
    assert [p["document_id"] for p in pages] == [files_opened[0]["document_id"]] * 2 + \
        [files_opened[1]["document_id"]] * 2
    assert kinds(reply["events"], "run_finished")[0]["cover_sheets"] == 2
    assert reply["document_id"] == files_opened[1]["document_id"]  # a continue goes on in the last file


def test_lock_stops_the_jobs(service: StationService) -> None:
    op = connect(service, "op")
    job = op.call("scan_start", batch="JOB4", device="test:0", profile="test-adf-jam")["job"]
    follow(op, job, lambda r: r["state"] == "waiting")
    service.lock(service.sign_in("head", PASSWORD))
    assert op.call("scan_events", job=job, since=0)["state"] == "stopped"


def test_over_the_socket_of_scanstation_serve(station: StationEnv) -> None:
    """The same operations through ``scanstation serve``'s socket, as the kiosk in production uses them."""
    from scanstation.service.client import RemoteConnection

    with station.serve(unlock_as="head"), RemoteConnection(load_config(station.config).socket_path) as conn:
        conn.token = conn.call("sign_in", name="op", password=PASSWORD)["token"]
        with pytest.raises(PermissionDenied, match="locks resolution"):  # the wire keeps the refusal's class
            conn.call("scan_start", batch="SOCK1", device="test:0", profile="test-adf", resolution=600)
        job = conn.call("scan_start", batch="SOCK1", device="test:0", profile="test-adf-jam")["job"]
        reply, events = follow(conn, job, lambda r: r["state"] != "running")
        assert reply["state"] == "waiting" and reply["prompt"]["error"] == "PaperJam"
        assert "कागज़" in reply["prompt"]["message_hi"]
        conn.call("scan_continue", job=job)
        reply, more = follow(conn, job, lambda r: r["state"] != "running", since=reply["next"])
        assert reply["state"] == "idle"
        assert [e["seq"] for e in kinds(events + more, "page")] == list(range(1, 14))
        assert conn.call("scan_stop", job=job)["state"] == "stopped"
        conn.call("sign_out")

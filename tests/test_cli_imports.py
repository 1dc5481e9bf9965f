"""Client-side commands do not load the image and UI stacks: OpenCV, numpy, Pillow, pikepdf, Qt.

``scanstation status``, ``users``, ``lock``, ``health`` and the like talk to the station service (over its socket,
or to one in their own process); the operation table they load (:mod:`scanstation.service.server`) names the
capture and verification operations too, whose modules import the scanner and image stack.  Those come in
when an operation that needs them runs, not with the table: each command is a process of its own, a few a
minute at a station (and hundreds in the test suite), and OpenCV with numpy costs it a third of a second.

Each check runs real commands (:func:`scanstation.cli.main.main`) in a fresh interpreter and reads its
``sys.modules`` afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .stationkit import REPO, StationEnv, make_station

HEAVY = ("cv2", "numpy", "PIL", "pikepdf", "PySide6", "shiboken6")

# Runs the commands given (a JSON list of argv lists) one after the other in this interpreter; its last line:
# [[argv, exit code, the HEAVY modules loaded so far], ...].
_PROBE = f"""
import contextlib, io, json, sys
from scanstation.cli.main import main
heavy = {HEAVY!r}
steps = []
for argv in json.loads(sys.argv[1]):
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    steps.append([argv, code, sorted(m for m in heavy if m in sys.modules)])
print(json.dumps(steps))
"""


def _probe(commands: list[list[str]], env: dict[str, str] | None = None) -> list[tuple[list[str], int, list[str]]]:
    proc = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(commands)], env=env, cwd=REPO, text=True,
                          capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [(argv, code, loaded) for argv, code, loaded in json.loads(proc.stdout.strip().splitlines()[-1])]


def test_the_parser_and_the_operation_table_load_no_image_stack() -> None:
    code = f"""
import sys
from scanstation.cli.main import build_parser, command_of
argv = ["--config", "x.toml", "status", "--json"]
assert command_of(argv) == "status"
build_parser(command_of(argv)).parse_args(argv)
import scanstation.service.client, scanstation.service.server
assert "scan_start" in scanstation.service.server.OPERATIONS and "review" in scanstation.service.server.OPERATIONS
print(sorted(m for m in {HEAVY!r} + ("scanstation_tools",) if m in sys.modules))
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, text=True, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    # nor the commands of other distributions (the developer tools' ocr and demo), for a core command
    assert proc.stdout.strip() == "[]", proc.stdout


def test_the_other_distributions_commands_are_there_for_their_own_name_and_the_overview() -> None:
    from scanstation.cli.main import build_parser, command_of

    for argv, command in ((["ocr", "x.png", "-o", "x.pdf"], "ocr"), (["--user", "sup", "demo"], "demo")):
        assert command_of(argv) == command
        assert build_parser(command_of(argv)).parse_args(argv).command == command
    overview = build_parser().format_help()
    assert " ocr " in overview and " demo " in overview and " status " in overview
    assert " ocr " not in build_parser("status").format_help()


def _client_commands() -> list[list[str]]:
    return [["users", "list", "--user", "admin"], ["audit", "verify", "--user", "head"], ["lock", "--user", "head"]]


def test_client_commands_in_their_own_process_load_no_image_stack(tmp_path: Path) -> None:
    """No service runs: the command runs the operation against a service in its own process."""
    st = make_station(tmp_path / "st")
    steps = _probe(_client_commands(), st.env)
    assert [(argv, code) for argv, code, _ in steps] == [(argv, 0) for argv in _client_commands()], steps
    assert [loaded for _, _, loaded in steps] == [[]] * len(steps), steps


def test_status_in_its_own_process_loads_neither_opencv_nor_numpy(tmp_path: Path) -> None:
    """No service runs: ``status`` and ``uploads`` open the store with the caller's own key slot (no station, no
    pipeline), so the cleaning stack (OpenCV, numpy) and the PDF one (pikepdf) stay out.  (Pillow comes in with
    the driver interface, drivers.base, which scanstation.facade imports.)"""
    st = make_station(tmp_path / "st")
    commands = [["status"], ["status", "--json"], ["uploads", "--json"]]
    steps = _probe(commands, st.env)
    assert [(argv, code) for argv, code, _ in steps] == [(argv, 0) for argv in commands], steps
    assert all(not {"cv2", "numpy", "pikepdf"} & set(loaded) for _, _, loaded in steps), steps


def test_client_commands_of_a_running_service_load_no_image_stack(tmp_path: Path) -> None:
    """A service runs (unlocked): ``status`` (a command the service runs for the client), ``users``, ``health``
    (the machine's own, without a session) and ``lock`` reach it over its socket."""
    st: StationEnv = make_station(tmp_path / "st")
    commands = [["status", "--user", "sup"], ["users", "list", "--user", "admin"], ["health"],
                ["lock", "--user", "head"]]
    with st.serve(unlock_as="head"):
        steps = _probe(commands, st.env)
    codes = {argv[0]: code for argv, code, _ in steps}
    # health: 64 plus the failing checks' bits (no device guard without udev here); the service answered (bit 1)
    health = codes.pop("health")
    assert health == 0 or (64 <= health <= 95 and not (health - 64) & 1), steps
    assert codes == {"status": 0, "users": 0, "lock": 0}, steps
    assert [loaded for _, _, loaded in steps] == [[]] * len(steps), steps

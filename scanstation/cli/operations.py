"""Operations for the station admin and the unit's IT: the station overview of ``scanstation status`` and
``scanstation health``.

The overview (printed by ``status`` above its batches, :func:`overview_lines`): whether the service answers
on its socket, whether the station is unlocked (and by whom), the device guard's state, the data
directory's free disk, the queue (pages to process and to OCR, sealed batches waiting for upload, uploads
that gave up) and the last upload.  The queue lives in the encrypted store, so it is shown while the
station is unlocked (or in-process, to a supervisor or unit head who opened the store for the command).

``health`` makes checks of it that a script can act on.  It talks to the service's socket itself (it
never starts the service in-process: a station without its service is unhealthy) and signs in like every
command (the admin's account; ``$SCANSTATION_USER`` and ``$SCANSTATION_PASSWORD_FILE`` for a script).
Each check prints one line, ``OK name: ...``, ``FAIL name: ...`` or ``SKIP name: ...``; the exit code is 0
when no check failed, else 64 plus the sum of the failing checks' bits (:data:`CHECK_BITS`), so that it
never collides with the program's own exit codes (1-32, ``scanstation exit-codes``).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any

from scanstation.cli.common import IN_SERVICE, load, say

# health's checks, in the order they run, and their exit-code bits (exit = 64 + the failing ones' sum)
CHECK_BITS = {"service": 1, "signin": 2, "guard": 4, "disk": 8, "upload": 16}
HEALTH_BASE = 64
GIB = 1 << 30


def station_overview(conn: Any, config: Any) -> dict[str, Any]:
    """The ``status`` operation with ``detail``, and whether a station service is what answered: inside
    the service it is; in a CLI process of its own, nothing answered on the socket (that is why it runs
    in-process)."""
    status: dict[str, Any] = conn.call("status", detail=True)
    running = IN_SERVICE.get() is not None
    status["service"] = {**status.get("service", {}), "running": running, "socket": str(config.socket_path)}
    if not running:
        status["service"].pop("pid", None)
        status["service"].pop("started", None)
    return status


def _gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"


def guard_lines(guard: dict[str, Any]) -> list[str]:
    state = guard.get("state")
    if state == "on":
        return [f"device guard: on since {guard.get('since')}"]
    if state == "off":
        return [f"device guard: OFF: {guard.get('reason')}"]
    lines = [f"device guard: TRIPPED since {guard.get('since')} (the station was locked; an unlock by a "
             "supervisor or the unit head clears it)"]
    for d in guard.get("tripped_by", []):
        what = " ".join(x for x in (d.get("manufacturer"), d.get("product")) if x) or d.get("name") or "a device"
        lines.append(f"  {d.get('at')}: {d.get('why')}: {what} ({d.get('vendor_product') or 'no USB id'}) at "
                     f"{d.get('devpath')}" + (", still connected" if d.get("connected") else ", removed"))
    return lines


def disk_line(disk: dict[str, Any]) -> str:
    if "error" in disk:
        return f"disk: cannot read {disk['path']}: {disk['error']}"
    return (f"disk: {_gib(disk['free_bytes'])} free of {_gib(disk['total_bytes'])} ({disk['free_percent']} %) "
            f"for {disk['path']}")


def queue_lines(queue: dict[str, Any] | None) -> list[str]:
    if queue is None:
        return ["queue: not shown while the station is locked (it is in the encrypted store)",
                "last upload: not shown while the station is locked"]
    line = (f"queue: {queue['pages_to_process']} page(s) to process, {queue['pages_to_ocr']} waiting for OCR; "
            f"{queue['batches_to_upload']} sealed batch(es) waiting for upload")
    if queue["uploads"]:
        oldest = min(queue["uploads"], key=lambda u: str(u["since"] or "~"))
        line += f" (oldest: {oldest['batch']}, {oldest['state']}, {queue['oldest_upload_hours'] or 0:.1f} h)"
    lines = [line]
    if queue["uploads_failed"]:
        lines.append(f"uploads that gave up: {', '.join(queue['uploads_failed'])} "
                     "(scanstation upload --batch NAME tries again)")
    last = queue["last_upload"]
    lines.append(f"last upload: {last['batch']}, received {last['received_at']} (receipt {last['receipt_id']})"
                 if last else "last upload: none yet")
    return lines


def overview_lines(o: dict[str, Any]) -> list[str]:
    service = o["service"]
    lines = [f"service: running, pid {service['pid']}, since {service['started']} (socket {service['socket']})"
             if service["running"] else
             f"service: NOT running (nothing answers on {service['socket']}); this command ran in its own process"]
    lines.append(f"station: unlocked by {o['unlocked_by']}" if not o["locked"] else "station: locked")
    lines += guard_lines(o["guard"])
    lines.append(disk_line(o["disk"]))
    lines += queue_lines(o.get("queue"))
    return lines


# ---------------------------------------------------------------------------------------------------- health
@dataclass
class Check:
    name: str
    ok: bool | None  # None: not checked
    detail: str

    def line(self) -> str:
        mark = "OK" if self.ok else "SKIP" if self.ok is None else "FAIL"
        return f"{mark} {self.name}: {self.detail}"


def health_checks(status: dict[str, Any] | None, problem: str | None, *, service_up: bool, socket: str,
                  local_disk: dict[str, Any], min_free_gib: float, min_free_percent: float,
                  upload_hours: float) -> list[Check]:
    """The checks from what the service said (``status`` with detail), or from why it could not be asked."""
    checks = [Check("service", service_up, f"answering on {socket}" if service_up else
                    f"nothing answers on {socket} (systemctl status scanstation)")]
    if service_up and status is not None and status.get("signed_in") is None:
        checks.append(Check("signin", None, "not needed: asked as root or the service's user (no session, "
                            "nothing in the audit trail)"))
    elif service_up:
        checks.append(Check("signin", status is not None, "signed in, status read" if status is not None
                            else f"cannot read the service's status: {problem}"))
    guard = status["guard"] if status is not None else None
    if guard is None:
        checks.append(Check("guard", False, "not running: no station service" if not service_up
                            else "unknown: the status could not be read"))
    elif guard["state"] == "on":
        checks.append(Check("guard", True, f"on since {guard['since']}"))
    elif guard["state"] == "tripped":
        first = (guard.get("tripped_by") or [{}])[0]
        checks.append(Check("guard", False, f"TRIPPED since {guard['since']}: {first.get('why')} "
                            f"({first.get('vendor_product') or first.get('devpath')}); "
                            f"{len(guard.get('tripped_by', []))} device(s); an unlock clears it"))
    else:
        checks.append(Check("guard", False, f"OFF: {guard.get('reason')}"))
    disk = status["disk"] if status is not None else local_disk
    if "error" in disk:
        checks.append(Check("disk", False, f"cannot read {disk['path']}: {disk['error']}"))
    else:
        low = disk["free_bytes"] < min_free_gib * GIB or disk["free_percent"] < min_free_percent
        checks.append(Check("disk", not low, f"{_gib(disk['free_bytes'])} free ({disk['free_percent']} %) for "
                            f"{disk['path']}" + (f": below {min_free_gib:g} GiB or {min_free_percent:g} %"
                                                 if low else "")))
    queue = status.get("queue") if status is not None else None
    if queue is None:
        why = ("the station is locked (the queue is in the encrypted store)" if status is not None
               else "no status")
        checks.append(Check("upload", None, f"not checked: {why}"))
    else:
        stuck = queue["oldest_upload_hours"] is not None and queue["oldest_upload_hours"] > upload_hours
        problems = []
        if stuck:
            oldest = min(queue["uploads"], key=lambda u: str(u["since"] or "~"))
            problems.append(f"{oldest['batch']} waiting {queue['oldest_upload_hours']:.1f} h ({oldest['state']}), "
                            f"more than {upload_hours:g} h")
        if queue["uploads_failed"]:
            problems.append(f"gave up: {', '.join(queue['uploads_failed'])}")
        last = queue["last_upload"]
        checks.append(Check("upload", not problems, "; ".join(problems) if problems else
                            f"{queue['batches_to_upload']} batch(es) waiting; last upload "
                            + (f"{last['batch']} at {last['received_at']}" if last else "none yet")))
    return checks


def health_exit(checks: list[Check]) -> int:
    failed = sum(CHECK_BITS[c.name] for c in checks if c.ok is False)
    return HEALTH_BASE + failed if failed else 0


def cmd_health(args: argparse.Namespace) -> int:
    from scanstation.cli.common import read_password, user_name
    from scanstation.errors import PermissionDenied, ScanStationError
    from scanstation.service.client import RemoteConnection, service_running
    from scanstation.service.health import disk_usage

    config = load(args)
    socket = config.socket_path
    up = service_running(socket)
    status: dict[str, Any] | None = None
    problem: str | None = None
    if up and not getattr(args, "user", None):
        # root or the service's user asks without a session (the service checks the peer's uid): a check run
        # every minute by cron needs no password file and leaves no sign-in in the audit trail
        try:
            with RemoteConnection(socket, timeout=60) as conn:
                status = conn.call("health")
        except PermissionDenied:
            pass  # anyone else signs in, below
        except ScanStationError as e:
            problem = e.message
    if up and status is None and problem is None:
        try:
            name = user_name(args)
            password = read_password(f"Password for {name}: ")
            with RemoteConnection(socket, timeout=60) as conn:
                conn.token = conn.call("sign_in", name=name, password=password)["token"]
                try:
                    status = conn.call("status", detail=True)
                finally:
                    conn.call("sign_out")
        except ScanStationError as e:
            problem = e.message
    checks = health_checks(status, problem, service_up=up, socket=str(socket), local_disk=disk_usage(config.data_dir),
                           min_free_gib=args.min_free_gib, min_free_percent=args.min_free_percent,
                           upload_hours=args.upload_hours)
    code = health_exit(checks)
    failing = [c.name for c in checks if c.ok is False]
    if args.json:
        say(json.dumps({"healthy": not failing, "exit": code, "failing": failing,
                        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
                        "station": config.station.id, "locked": status["locked"] if status else None},
                       indent=2, ensure_ascii=False))
        return code
    for c in checks:
        say(c.line())
    if status is not None:
        say("INFO station: " + (f"unlocked by {status['unlocked_by']}" if not status["locked"] else "locked"))
    say(f"health: {'OK' if not failing else 'FAILING ' + ', '.join(failing)} (exit {code})")
    return code


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    bits = ", ".join(f"{name} {bit}" for name, bit in CHECK_BITS.items())
    s = sub.add_parser(
        "health", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="checks for the unit's IT: service, sign-in, device guard, disk, uploads (exit 0, or 64 + failing bits)",
        epilog=f"Exit 0 when every check passes, else {HEALTH_BASE} plus the bits of the failing checks: {bits}.\n"
        "Run as root (or the service's user) without --user it needs no sign-in and leaves nothing in the audit\n"
        "trail; anyone else, or with --user, signs in: SCANSTATION_USER and SCANSTATION_PASSWORD_FILE (mode 0600).")
    s.add_argument("--min-free-gib", type=float, default=5.0, metavar="GIB",
                   help="disk: fail below this much free space for the data directory (default 5)")
    s.add_argument("--min-free-percent", type=float, default=5.0, metavar="PERCENT",
                   help="disk: fail below this share free (default 5)")
    s.add_argument("--upload-hours", type=float, default=24.0, metavar="HOURS",
                   help="upload: fail when a sealed batch has waited longer than this for the portal (default 24)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_health)

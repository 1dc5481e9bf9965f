"""``scanstation serve``: the station service on its Unix socket.

Each connection is served on its own thread.  Before anything is read the peer's credentials
(SO_PEERCRED: pid, uid, gid) are checked: the service's own user, root, or a member of
``service.client_group`` (the kiosk's user); anyone else is refused and audited.  The socket file is
0660 and group-owned by that group when it exists.  Requests name an operation from :data:`OPERATIONS`
(nothing else can be called) and carry the session token that ``sign_in`` returned; permission checks
happen inside :class:`~scanstation.service.core.StationService`, not here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import grp
import logging
import os
import pwd
import signal
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scanstation.errors import PermissionDenied, ScanStationError, SignInError, StateError
from scanstation.people.roles import Role
from scanstation.service import ops_capture, ops_progress, ops_roster, ops_signoff, ops_verification
from scanstation.service.core import Caller, StationService
from scanstation.service.op_types import Emit, Handler
from scanstation.service.wire import WireError, error_payload, recv_message, send_message

log = logging.getLogger(__name__)



def _text(args: dict[str, Any], key: str) -> str:
    value = args.get(key)
    if not isinstance(value, str):
        raise StateError(f"request field '{key}' must be text")
    return value


# Polls a screen makes on its own: they do not keep a session alive (the idle limit counts a person's use).
PASSIVE_OPERATIONS = frozenset({"status", "batches", "whoami"})


def _caller(service: StationService, token: Any, op: str = "") -> Caller:
    if not isinstance(token, str) or not token:
        raise SignInError("sign in first")
    return service.caller(token, passive=op in PASSIVE_OPERATIONS)


def _person(p: Any) -> dict[str, Any]:
    return {"name": p.name, "role": p.role.value, "disabled": p.disabled}


def _op_sign_in(s: StationService, _c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    caller = s.sign_in(_text(a, "name"), _text(a, "password"))
    return {"token": caller.token, "name": caller.name, "role": caller.role.value}


def _op_resume(s: StationService, _c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    caller = s.resume_session(_text(a, "token"), _text(a, "password"))
    return {"token": caller.token, "name": caller.name, "role": caller.role.value}


def _op_unlock(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    assert c is not None
    if a.get("recovery_code"):
        return {"enrolled": s.unlock_with_recovery(c, _text(a, "recovery_code"))}
    return {"enrolled": s.unlock(c, _text(a, "password"))}


def _op_users_add(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    assert c is not None
    return _person(s.add_person(c, _text(a, "name"), Role.parse(_text(a, "role")), _text(a, "password")))


def jsonable(value: Any) -> Any:
    """Dataclasses, bytes (hex) and enums as JSON values, for replies."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def _op_audit_show(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    assert c is not None
    batch = a.get("batch")
    return jsonable(s.audit_entries(c, batch if isinstance(batch, str) else None))


def _op_audit_verify(s: StationService, c: Caller | None, _a: dict[str, Any], _e: Emit) -> Any:
    assert c is not None
    return jsonable(s.audit_verify(c))


def _op_passwd(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    assert c is not None
    old = a.get("old_password")
    s.change_password(c, _text(a, "name"), _text(a, "password"), old if isinstance(old, str) else None)
    return None


def _op_run(s: StationService, c: Caller | None, a: dict[str, Any], e: Emit) -> Any:
    """A command of the scanstation CLI, run here for the signed-in client (its lines stream back)."""
    from scanstation.cli.main import run_for_client

    assert c is not None
    argv = a.get("argv")
    if not isinstance(argv, list) or not all(isinstance(x, str) for x in argv):
        raise StateError("request field 'argv' must be a list of text")
    cwd = a.get("cwd")
    return {"exit": run_for_client(s, c.token, argv, cwd if isinstance(cwd, str) else "/", e)}


def _op_page_image(s: StationService, c: Caller | None, a: dict[str, Any], _e: Emit) -> Any:
    assert c is not None
    seq = a.get("seq")
    if not isinstance(seq, int):
        raise StateError("request field 'seq' must be a number")
    return s.page_image(c, _text(a, "batch"), seq)


# name -> (handler, needs a session)
OPERATIONS: dict[str, tuple[Handler, bool]] = {
    "sign_in": (_op_sign_in, False),
    "resume": (_op_resume, False),
    "sign_out": (lambda s, c, a, e: s.sign_out(c.token) if c else None, True),
    "lock_session": (lambda s, c, a, e: s.lock_session(c.token) if c else None, True),
    "whoami": (lambda s, c, a, e: {"name": c.name, "role": c.role.value} if c else None, True),
    "status": (lambda s, c, a, e: s.status(c, detail=a.get("detail") is True) if c else None, True),
    "unlock": (_op_unlock, True),
    "lock": (lambda s, c, a, e: s.lock(c), True),
    "users_add": (_op_users_add, True),
    "users_list": (lambda s, c, a, e: [_person(p) for p in s.list_people(c)] if c else None, True),
    "users_disable": (lambda s, c, a, e: s.disable_person(c, _text(a, "name")) if c else None, True),
    "users_enable": (lambda s, c, a, e: s.enable_person(c, _text(a, "name")) if c else None, True),
    "users_passwd": (_op_passwd, True),
    "audit_show": (_op_audit_show, True),
    "audit_verify": (_op_audit_verify, True),
    "run": (_op_run, True),
    # the kiosk (ui/): its home screen's batch list; "someone else" at its lock screen (args: token)
    "batches": (lambda s, c, a, e: s.batch_overview(c) if c else None, True),
    "end_locked_session": (lambda s, c, a, e: s.end_locked_session(c, _text(a, "token")) if c else None, True),
    "page_image": (_op_page_image, True),
}
# Operations without a session, for the machine's own administrators only: root or the service's user (the
# kernel's SO_PEERCRED, not a password), e.g. a health check run by the unit's IT from cron every minute -
# which must not fill the audit trail with sign-ins nor need a password in a file.
SYSTEM_OPERATIONS: dict[str, Handler] = {
    "health": lambda s, c, a, e: s.health(),
}

# Issue 14's operations live beside the work they serve; a name may be defined only once.
for _module in (ops_roster, ops_capture, ops_verification, ops_progress, ops_signoff):
    _clash = OPERATIONS.keys() & _module.OPERATIONS.keys()
    if _clash:
        raise RuntimeError(f"{_module.__name__} redefines service operations {sorted(_clash)}")
    OPERATIONS.update(_module.OPERATIONS)


def peer_credentials(conn: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end, from the kernel (not from the peer)."""
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


class PeerPolicy:
    """Who may connect: the service's user, root, and members of the client group."""

    def __init__(self, group: str) -> None:
        self.own_uid = os.getuid()
        self.gid: int | None = None
        self.members: frozenset[str] = frozenset()
        if group:
            with contextlib.suppress(KeyError):
                g = grp.getgrnam(group)
                self.gid, self.members = g.gr_gid, frozenset(g.gr_mem)

    def administers(self, uid: int) -> bool:
        """The machine's own administrators: root and the service's user."""
        return uid in (0, self.own_uid)

    def allows(self, pid: int, uid: int, gid: int) -> bool:
        if uid in (0, self.own_uid):
            return True
        if self.gid is None:
            return False
        if gid == self.gid:
            return True
        with contextlib.suppress(KeyError):
            if pwd.getpwuid(uid).pw_name in self.members:
                return True
        return self.gid in _supplementary_groups(pid)


def _supplementary_groups(pid: int) -> set[int]:
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Groups:"):
                return {int(g) for g in line.split()[1:]}
    return set()


class ServiceServer:
    def __init__(self, service: StationService, path: Path) -> None:
        self.service = service
        self.path = path
        self.policy = PeerPolicy(service.config.service.client_group)
        self._sock: socket.socket | None = None
        self._stop = threading.Event()

    def bind(self) -> None:
        if self.path.exists():
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(str(self.path))
            except OSError:
                self.path.unlink()  # a stale socket of a service that died
            else:
                probe.close()
                raise StateError(f"{self.path}: a station service is already running")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o117)
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old)
        if self.policy.gid is not None:
            with contextlib.suppress(OSError):
                os.chown(self.path, -1, self.policy.gid)
        sock.listen(16)
        self._sock = sock

    def serve_forever(self) -> None:
        assert self._sock is not None
        self._sock.settimeout(0.5)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    break
                raise
            threading.Thread(target=self._serve_connection, args=(conn,), daemon=True, name="client").start()

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        if self._sock is not None:
            self._sock.close()
            with contextlib.suppress(OSError):
                self.path.unlink()

    def _serve_connection(self, conn: socket.socket) -> None:
        with conn:
            pid, uid, gid = peer_credentials(conn)
            if not self.policy.allows(pid, uid, gid):
                self.service.audit.append(f"uid:{uid}", "connection.refused", "service", {"pid": pid, "gid": gid})
                with contextlib.suppress(OSError):
                    send_message(conn, {"ok": False, "error": {"type": "PermissionDenied", "exit_code": 22,
                                        "message": f"user id {uid} may not use the station service"}})
                return
            while not self._stop.is_set():
                try:
                    request, _blobs = recv_message(conn)
                except (WireError, OSError):
                    return
                if not self._handle(conn, request, system=self.policy.administers(uid)):
                    return

    def _handle(self, conn: socket.socket, request: dict[str, Any], *, system: bool = False) -> bool:
        """One request.  ``system``: the peer is root or the service's user (SYSTEM_OPERATIONS allowed)."""
        def emit(kind: str, data: dict[str, Any]) -> None:
            send_message(conn, {"event": kind, "data": data})

        op = request.get("op")
        args = request.get("args") or {}
        try:
            if isinstance(op, str) and op in SYSTEM_OPERATIONS:
                if not system:
                    raise PermissionDenied(f"'{op}' is for root and the service's own user only")
                handler, needs_session = SYSTEM_OPERATIONS[op], False
            elif not isinstance(op, str) or op not in OPERATIONS or not isinstance(args, dict):
                raise StateError(f"unknown operation {op!r}")
            else:
                handler, needs_session = OPERATIONS[op]
            caller = _caller(self.service, request.get("token"), op) if needs_session else None
            result = handler(self.service, caller, args, emit)
            if isinstance(result, bytes):  # a page image or PDF travels as an attachment
                send_message(conn, {"ok": True, "result": {"blob": 0}}, [result])
            else:
                send_message(conn, {"ok": True, "result": result})
        except ScanStationError as e:
            send_message(conn, {"ok": False, "error": error_payload(e)})
        except (OSError, WireError):
            return False
        except Exception as e:  # a bug must not take the service (and the day's unlock) down
            log.exception("operation %s failed", op)
            send_message(conn, {"ok": False, "error": {"type": "ScanStationError", "exit_code": 1,
                                                       "message": f"internal error in {op}: {type(e).__name__}"}})
        return True


def serve(service: StationService, path: Path, ready: Callable[[], None] | None = None) -> None:
    """Run until SIGTERM/SIGINT; then lock (keys wiped) and remove the socket."""
    from scanstation.guard import start_guard

    server = ServiceServer(service, path)
    server.bind()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: server.stop())
    guard = start_guard(service)  # storage or a new network appearing locks the station (scanstation/guard/)
    try:
        if ready is not None:
            ready()
        server.serve_forever()
    finally:
        guard.stop()
        server.close()
        service.close()

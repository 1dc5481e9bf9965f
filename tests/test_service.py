"""The station service: founding, sign-in, unlock and lock, accounts, over its socket and in-process."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyrage
import pytest

from scanstation.config import load_config
from scanstation.errors import PermissionDenied, SignInError, StateError, StationLocked
from scanstation.people.roles import Action, Role
from scanstation.service.client import LocalConnection, RemoteConnection, service_running
from scanstation.service.core import StationService
from scanstation.service.founding import found_station
from scanstation.service.server import ServiceServer

PW = {"admin": "admin pass phrase 1", "head": "head of the unit 22", "sup": "supervisor words 333",
      "op": "operator at work 4444"}


def _config(tmp_path: Path) -> Path:
    portal = pyrage.x25519.Identity.generate()
    cfg = tmp_path / "station.toml"
    cfg.write_text(
        f'[station]\nid = "st-9"\nunit = "Unit 9"\ndata_dir = "{tmp_path / "data"}"\noperator = "x"\n'
        f'mode = "production"\n[keys]\nportal_recipient = "{portal.to_public()}"\n'
        f'[ocr]\nenabled = false\n[service]\nsocket = "{tmp_path / "s.sock"}"\nclient_group = ""\n'
    )
    return cfg


@pytest.fixture
def founded(tmp_path: Path) -> tuple[object, str]:
    config = load_config(_config(tmp_path))
    result = found_station(config, "admin", PW["admin"])
    return config, result.recovery_code


def _staffed(service: StationService) -> None:
    admin = service.sign_in("admin", PW["admin"])
    service.add_person(admin, "head", Role.UNIT_HEAD, PW["head"])
    service.add_person(admin, "sup", Role.SUPERVISOR, PW["sup"])
    service.add_person(admin, "op", Role.OPERATOR, PW["op"])


def test_first_unlock_is_the_unit_heads_recovery_then_everyone_has_a_slot(founded: tuple[object, str]) -> None:
    config, code = founded
    with StationService(config) as service:  # type: ignore[arg-type]
        _staffed(service)
        sup = service.sign_in("sup", PW["sup"])
        with pytest.raises(StationLocked, match="recovery"):
            service.unlock(sup, PW["sup"])  # nobody has a key slot yet
        with pytest.raises(PermissionDenied, match=r"sup .supervisor. may not unlock with the recovery code"):
            service.unlock_with_recovery(sup, code)
        head = service.sign_in("head", PW["head"])
        enrolled = service.unlock_with_recovery(head, code)
        assert sorted(enrolled) == ["head", "sup"]  # operators and admins never get one
        assert service.unlocked
        service.lock(sup)
        assert not service.unlocked
        with pytest.raises(StationLocked):
            service.station(sup, Action.SCAN)
        service.unlock(sup, PW["sup"])
        assert service.station(sup, Action.SCAN) is not None
        actions = [e["action"] for e in service.audit_entries(head)]
    assert "unlock.recovery" in actions and "unlock" in actions and "lock" in actions


def test_lock_drops_the_keys_even_when_its_audit_entry_cannot_be_written(founded: tuple[object, str],
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk or a broken audit.db must not leave an end-of-day lock with the keys still in memory."""
    config, code = founded
    with StationService(config) as service:  # type: ignore[arg-type]
        _staffed(service)
        head = service.sign_in("head", PW["head"])
        service.unlock_with_recovery(head, code)
        assert service.unlocked

        def full_disk(*args: object, **kwargs: object) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(service.audit, "append", full_disk)
        with pytest.raises(OSError, match="No space left"):
            service.lock(head)
        assert not service.unlocked
        monkeypatch.undo()
        sup = service.sign_in("sup", PW["sup"])
        with pytest.raises(StationLocked):
            service.station(sup, Action.SCAN)


def test_operator_and_admin_cannot_unlock_or_reach_pages(founded: tuple[object, str]) -> None:
    config, code = founded
    with StationService(config) as service:  # type: ignore[arg-type]
        _staffed(service)
        service.unlock_with_recovery(service.sign_in("head", PW["head"]), code)
        op = service.sign_in("op", PW["op"])
        admin = service.sign_in("admin", PW["admin"])
        for caller in (op, admin):
            with pytest.raises(PermissionDenied) as e:
                service.unlock(caller, PW[caller.name])
            assert e.value.exit_code == 22 and caller.name in e.value.message and caller.role.value in e.value.message
        with pytest.raises(PermissionDenied, match=r"admin .admin. may not view pages"):
            service.station(admin, Action.VIEW_PAGE)
        with pytest.raises(PermissionDenied, match=r"op .operator. may not approve"):
            service.station(op, Action.APPROVE)
        with pytest.raises(PermissionDenied):
            service.add_person(op, "mallory", Role.SUPERVISOR, "a long enough pass 9")
        refusals = [e for e in service.audit_entries(service.sign_in("sup", PW["sup"]))
                    if e["action"] == "permission.denied"]
    assert len(refusals) >= 5


def test_wrong_password_is_audited_and_gives_the_sign_in_exit_code(founded: tuple[object, str]) -> None:
    config, _code = founded
    with StationService(config) as service:  # type: ignore[arg-type]
        with pytest.raises(SignInError) as e:
            service.sign_in("admin", "not the password at all")
        assert e.value.exit_code == 23
        with pytest.raises(SignInError, match="wait 1 s"):  # slowed down, not locked out
            service.sign_in("admin", PW["admin"])
        time.sleep(1.1)
        admin = service.sign_in("admin", PW["admin"])
        failures = [x for x in service.audit_entries(admin) if x["action"] == "signin.failed"]
    # the wrong password, then the attempt refused during the wait: both recorded, against the name tried
    assert [f["actor"] for f in failures] == ["admin", "admin"]
    assert "wrong" in failures[0]["detail"]["reason"] and "wait" in failures[1]["detail"]["reason"]


@pytest.fixture
def served(founded: tuple[object, str]) -> Iterator[tuple[StationService, Path, str]]:
    config, code = founded
    service = StationService(config)  # type: ignore[arg-type]
    path = config.socket_path  # type: ignore[attr-defined]
    server = ServiceServer(service, path)
    server.bind()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield service, path, code
    finally:
        server.close()
        thread.join(timeout=5)
        service.close()


def _remote(path: Path, name: str) -> RemoteConnection:
    conn = RemoteConnection(path, timeout=30)
    conn.token = conn.call("sign_in", name=name, password=PW[name])["token"]
    return conn


def test_clients_over_the_socket_get_the_same_answers(served: tuple[StationService, Path, str]) -> None:
    _service, path, code = served
    assert service_running(path)
    assert oct(path.stat().st_mode & 0o777) == "0o660"
    admin = _remote(path, "admin")
    for name, role in (("head", "unit-head"), ("sup", "supervisor"), ("op", "operator")):
        assert admin.call("users_add", name=name, role=role, password=PW[name])["role"] == role
    assert {p["name"] for p in admin.call("users_list")} == {"admin", "head", "sup", "op"}
    op = _remote(path, "op")
    with pytest.raises(PermissionDenied) as refused:
        op.call("unlock", password=PW["op"])
    assert refused.value.exit_code == 22 and "op (operator)" in refused.value.message
    head = _remote(path, "head")
    assert sorted(head.call("unlock", recovery_code=code)["enrolled"]) == ["head", "sup"]
    assert op.call("status")["locked"] is False
    with pytest.raises(PermissionDenied):
        op.call("lock")
    head.call("lock")
    assert op.call("status")["locked"] is True
    sup = _remote(path, "sup")
    sup.call("unlock", password=PW["sup"])
    assert sup.call("status")["unlocked_by"] == "sup"
    with pytest.raises(SignInError), RemoteConnection(path) as anonymous:
        anonymous.call("status")  # no session
    bogus = RemoteConnection(path)
    bogus.token = "forged-token"
    with pytest.raises(SignInError):
        bogus.call("status")
    with pytest.raises(StateError, match="unknown operation"):
        sup.call("__init__")
    report = head.call("audit_verify")
    assert report["entries"] > 10
    for conn in (admin, op, head, sup, bogus):
        conn.close()


def test_a_client_of_another_user_is_refused_by_its_peer_credentials(founded: tuple[object, str]) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to run a client as another user")
    config, _code = founded
    open_dir = Path(tempfile.mkdtemp(prefix="scanstation-peer-"))
    os.chmod(open_dir, 0o755)  # pytest's own directories are private: nobody could not even reach the socket
    path = open_dir / "s.sock"
    service = StationService(config)  # type: ignore[arg-type]
    server = ServiceServer(service, path)
    server.bind()
    os.chmod(path, 0o666)  # even with the file open to all, the service checks who connects
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: become nobody and try
            os.close(read)
            os.setgid(65534)
            os.setuid(65534)
            outcome = b"connected-and-refused"
            try:
                conn = RemoteConnection(path, timeout=10)
                conn.call("sign_in", name="admin", password=PW["admin"])
                outcome = b"served"
            except PermissionDenied:
                pass
            except Exception as e:
                outcome = repr(e).encode()
            os.write(write, outcome)
            os._exit(0)
        os.close(write)
        os.waitpid(pid, 0)
        assert os.read(read, 1000) == b"connected-and-refused"
        refused = [e for e in service.audit.entries() if e.action == "connection.refused"]
        assert refused and refused[0].actor == "uid:65534"
    finally:
        server.close()
        thread.join(timeout=5)
        service.close()
        shutil.rmtree(open_dir, ignore_errors=True)


def test_in_process_connection_runs_the_same_operations(founded: tuple[object, str]) -> None:
    config, _code = founded
    conn = LocalConnection(StationService(config))  # type: ignore[arg-type]
    try:
        conn.token = conn.call("sign_in", name="admin", password=PW["admin"])["token"]
        conn.call("users_add", name="op", role="operator", password=PW["op"])
        conn.token = conn.call("sign_in", name="op", password=PW["op"])["token"]
        with pytest.raises(PermissionDenied):
            conn.call("users_list")
    finally:
        conn.close()


def test_socket_path_refuses_a_second_service(served: tuple[StationService, Path, str]) -> None:
    service, path, _code = served
    with pytest.raises(StateError, match="already running"):
        ServiceServer(service, path).bind()
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.connect(str(path))
    raw.sendall(b"\xff\xff\xff\xff")  # a hostile length: the service drops the connection, keeps serving
    assert raw.recv(10) == b""
    raw.close()
    assert service_running(path)


def test_health_needs_no_session_but_only_root_or_the_services_user(founded: tuple[object, str]) -> None:
    """The sessionless 'health' operation: answered to a peer the kernel says is root or the service's user,
    refused (PermissionDenied, exit 22) to any other client, e.g. the kiosk's account."""
    from scanstation.service.wire import recv_message

    config, _code = founded
    with StationService(config) as service:  # type: ignore[arg-type]
        server = ServiceServer(service, Path(tempfile.mkdtemp()) / "unused.sock")
        a, b = socket.socketpair()
        with a, b:
            server._handle(a, {"op": "health"}, system=False)
            refused, _ = recv_message(b)
            server._handle(a, {"op": "health"}, system=True)
            answered, _ = recv_message(b)
    assert refused["ok"] is False and refused["error"]["type"] == "PermissionDenied", refused
    assert refused["error"]["exit_code"] == 22
    health = answered["result"]
    assert answered["ok"] is True and health["locked"] is True and health["signed_in"] is None
    assert health["station"] == "st-9" and health["queue"] is None and "free_bytes" in health["disk"]


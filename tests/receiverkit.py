"""Test helper: the real reference receiver (uvicorn) in a subprocess on 127.0.0.1.

    with start_receiver(tmp_path, identity_path) as rx:
        requests.options(rx.url + "files/")          # rx.url == "http://127.0.0.1:PORT/"
        rx.kill(); rx.restart()                     # kill -9, then start again on the same port + data
        package.verify_receipt(data, rx.receipt_public_key, package_sha256=...)

The port is a free one chosen by the kernel and kept across restarts (upload URLs stay valid).
start/restart wait for ``GET /health``; if the process dies or never answers, the AssertionError
carries the receiver's log (``rx.log_path``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyrage
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

import batchformat as package

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_identity(path: Path) -> pyrage.x25519.Identity:
    """A fresh portal identity in age-keygen's file format; returns it (``.to_public()`` = recipient)."""
    identity = pyrage.x25519.Identity.generate()
    path.write_text(f"# created: test\n# public key: {identity.to_public()}\n{identity}\n")
    os.chmod(path, 0o600)
    return identity


class ReceiverProcess:
    def __init__(self, root: Path, identity_path: Path, *, data_dir: Path | None = None,
                 database_url: str | None = None, trusted_stations: Path | None = None,
                 max_size: int | None = None, expiration_hours: float | None = None,
                 verify_wait: float | None = None, extra_args: Sequence[str] = (),
                 port: int | None = None, startup_timeout: float = 30.0,
                 tls: tuple[Path, Path] | None = None) -> None:
        self.root = root
        self.identity_path = identity_path
        self.data_dir = data_dir or root / "receiver-data"
        self.port = port or free_port()
        self.tls = tls  # (certificate chain, key): serve https; health checks trust that certificate
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}/"
        self.log_path = root / f"receiver-{self.port}.log"
        self.startup_timeout = startup_timeout
        args = ["--host", "127.0.0.1", "--port", str(self.port), "--data-dir", str(self.data_dir),
                "--identity", str(identity_path), "--log-level", "info"]
        if database_url:
            args += ["--database-url", database_url]
        if trusted_stations:
            args += ["--trusted-stations", str(trusted_stations)]
        if max_size is not None:
            args += ["--max-size", str(max_size)]
        if expiration_hours is not None:
            args += ["--expiration-hours", str(expiration_hours)]
        if verify_wait is not None:
            args += ["--verify-wait", str(verify_wait)]
        if tls:
            args += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
        self.args = [*args, *extra_args]
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def files_url(self) -> str:
        return self.url + "files/"

    @property
    def portal_recipient(self) -> str:
        """The ``age1…`` recipient of the receiver's identity (what packages must be encrypted to)."""
        from receiver.keys import load_identities

        return str(load_identities(self.identity_path)[0].to_public())

    @property
    def receipt_key_path(self) -> Path:
        return self.data_dir / "receipt-key.pub"

    @property
    def receipt_public_key(self) -> Ed25519PublicKey:
        return package.load_public_key_pem(self.receipt_key_path.read_bytes(), str(self.receipt_key_path))

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "receiver already running"
        self.starts += 1
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        with open(self.log_path, "ab") as log:
            log.write(f"--- start #{self.starts}: {' '.join(self.args)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen([sys.executable, "-m", "receiver", *self.args], cwd=REPO, env=env,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"receiver exited with {self.proc.returncode} at start:\n{self.log_text()}")
            with contextlib.suppress(requests.RequestException):
                verify: str | bool = str(self.tls[0]) if self.tls else True
                if requests.get(self.url + "health", timeout=(1, 2), verify=verify).status_code == 200:
                    return
            time.sleep(0.1)
        self.kill()
        raise AssertionError(f"receiver did not answer /health within {self.startup_timeout}s:\n{self.log_text()}")

    def stop(self, timeout: float = 15.0) -> None:
        """Graceful stop (SIGTERM), SIGKILL if it does not exit in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """kill -9: no shutdown code runs (the crash case)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def restart(self, *, kill: bool = False) -> None:
        (self.kill if kill else self.stop)()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@contextlib.contextmanager
def start_receiver(tmp_path: Path, identity_path: Path | None = None, **kwargs: object) -> Iterator[ReceiverProcess]:
    """Start a receiver (writing a fresh identity file if none is given); stop it afterwards.

    Keyword arguments: data_dir, database_url, trusted_stations, max_size, expiration_hours,
    verify_wait, extra_args, port, startup_timeout (see ReceiverProcess).
    """
    if identity_path is None:
        identity_path = tmp_path / "portal-identity.txt"
        write_identity(identity_path)
    rx = ReceiverProcess(tmp_path, identity_path, **kwargs)  # type: ignore[arg-type]
    rx.start()
    try:
        yield rx
    finally:
        rx.stop()


# ------------------------------------------------------------------ a minimal hand-written tus client


TUS = {"Tus-Resumable": "1.0.0"}


def tus_metadata(values: dict[str, str]) -> str:
    """Upload-Metadata header value: ``key base64(value)`` pairs."""
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def package_metadata(info: package.PackageInfo, station_id: str, **override: str) -> dict[str, str]:
    env = package.read_envelope(info.path)
    meta = {"filename": info.path.name, "batch_uid": env["batch_uid"], "package_sha256": info.sha256,
            "station_id": station_id}
    meta.update(override)
    return meta


def tus_create(files_url: str, length: int, meta: dict[str, str], timeout: float = 10) -> requests.Response:
    headers = {**TUS, "Upload-Length": str(length), "Upload-Metadata": tus_metadata(meta)}
    return requests.post(files_url, headers=headers, timeout=timeout)


def tus_patch(url: str, offset: int, data: bytes, *, checksum: bool = True, digest: bytes | None = None,
              timeout: float = 60) -> requests.Response:
    headers = {**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": str(offset)}
    if checksum:
        d = digest if digest is not None else hashlib.sha256(data).digest()
        headers["Upload-Checksum"] = "sha256 " + base64.b64encode(d).decode()
    return requests.patch(url, data=data, headers=headers, timeout=timeout)


def tus_head(url: str, timeout: float = 10) -> requests.Response:
    return requests.head(url, headers=TUS, timeout=timeout)


def upload_package(rx: ReceiverProcess, info: package.PackageInfo, station_id: str, *, chunk_size: int = 16384,
                   meta: dict[str, str] | None = None) -> tuple[str, requests.Response]:
    """Upload a whole package (create + PATCHes with checksums); return (upload URL, receipt response).

    The receipt is polled while the receiver answers 202.
    """
    data = info.path.read_bytes()
    created = tus_create(rx.files_url, len(data), meta or package_metadata(info, station_id))
    assert created.status_code == 201, (created.status_code, created.text)
    url = created.headers["Location"]
    offset = 0
    while offset < len(data):
        r = tus_patch(url, offset, data[offset : offset + chunk_size])
        assert r.status_code == 204, (r.status_code, r.text)
        offset = int(r.headers["Upload-Offset"])
    return url, get_receipt(url)


def get_receipt(upload_url: str, timeout: float = 60) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        r = requests.get(upload_url + "/receipt", timeout=10)
        if r.status_code != 202 or time.monotonic() > deadline:
            return r
        time.sleep(0.1)

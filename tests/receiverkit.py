"""Test helper: the real reference receiver (uvicorn) in a subprocess on 127.0.0.1.

    key = Ed25519PrivateKey.generate()
    with start_receiver(tmp_path, identity_path, dev_station=("ST-TEST-01", "Test Unit", key)) as rx:
        requests.options(rx.url + "files/")          # rx.url == "http://127.0.0.1:PORT/"
        rx.kill(); rx.restart()                     # kill -9, then start again on the same port + data
        package.verify_receipt(data, rx.receipt_public_key, package_sha256=...)

A receiver serves either HTTPS with client certificates (``tls=(cert, key)``; stations enrolled with
``rx.enrol(...)`` before ``rx.start()``, each then calling through ``station.session()``) or, for the
loopback tests that are not about trust, plain HTTP with ``--dev-station``: every request is taken to
come from that one station, which is enrolled (through the real ``scanstation-receiver enrol``) first.

The port is a free one chosen by the kernel and kept across restarts (upload URLs stay valid).
start/restart wait for ``GET /health``; if the process dies or never answers, the AssertionError
carries the receiver's log (``rx.log_path``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import NameOID

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


def enrolment_request(station_id: str, unit: str, signing_key: Ed25519PrivateKey, *,
                      csr_key: Any = None, cn: str | None = None,
                      override: dict[str, Any] | None = None) -> tuple[bytes, Any]:
    """A station's enrolment request (docs/plans/issue-15.md) and the CSR's private key (P-256 by default)."""
    csr_key = csr_key or ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn or station_id)]))
           .sign(csr_key, hashes.SHA256()))
    doc = {"format": "scanstation-enrolment-1", "station_id": station_id, "unit": unit,
           "signing_key": base64.b64encode(package.raw_public_key(signing_key.public_key())).decode(),
           "csr": csr.public_bytes(serialization.Encoding.PEM).decode(), "created_at": "2026-01-02T03:04:05Z"}
    doc.update(override or {})
    return json.dumps(doc).encode(), csr_key


@dataclass
class EnrolledStation:
    """A station enrolled at a receiver: its keys and the certificate bundle ``enrol`` wrote."""

    station_id: str
    unit: str
    signing_key: Ed25519PrivateKey
    bundle: Path  # client certificate + station CA (PEM)
    client_key: Path  # the CSR's key (PEM, 0600)
    portal_ca: Path | None = None  # what the station trusts for the portal's server certificate

    @property
    def public_raw(self) -> bytes:
        return package.raw_public_key(self.signing_key.public_key())

    def session(self) -> requests.Session:
        s = requests.Session()
        s.trust_env = False  # else REQUESTS_CA_BUNDLE in the environment overrides the session's verify
        s.cert = (str(self.bundle), str(self.client_key))
        s.verify = str(self.portal_ca) if self.portal_ca else True
        return s


def run_enrol(data_dir: Path, request_path: Path, out: Path, database_url: str | None = None) -> int:
    """``scanstation-receiver enrol`` itself (in this process: the same code, without an interpreter start)."""
    from receiver.cli import main

    args = ["enrol", str(request_path), "--data-dir", str(data_dir), "--out", str(out)]
    return main([*args, "--database-url", database_url] if database_url else args)


def enrol_station(root: Path, data_dir: Path, station_id: str, unit: str, signing_key: Ed25519PrivateKey, *,
                  database_url: str | None = None, portal_ca: Path | None = None) -> EnrolledStation:
    work = root / f"enrol-{station_id}-{os.urandom(3).hex()}"
    work.mkdir(parents=True)
    request, csr_key = enrolment_request(station_id, unit, signing_key)
    (work / "request.json").write_bytes(request)
    rc = run_enrol(data_dir, work / "request.json", work / "bundle.pem", database_url)
    assert rc == 0, f"enrol {station_id} exited with {rc}"
    key_path = work / "client.key"
    key_path.write_bytes(csr_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    return EnrolledStation(station_id, unit, signing_key, work / "bundle.pem", key_path, portal_ca)


class ReceiverProcess:
    def __init__(self, root: Path, identity_path: Path, *, data_dir: Path | None = None,
                 database_url: str | None = None, dev_station: str | None = None,
                 max_size: int | None = None, expiration_hours: float | None = None,
                 verify_wait: float | None = None, extra_args: Sequence[str] = (),
                 port: int | None = None, startup_timeout: float = 30.0,
                 tls: tuple[Path, Path] | None = None, trust_roots: Path | None = None) -> None:
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
        self.database_url = database_url
        if database_url:
            args += ["--database-url", database_url]
        if dev_station:
            args += ["--dev-station", dev_station]
        if trust_roots:
            args += ["--trust-roots", str(trust_roots)]
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
        self.stations: dict[str, EnrolledStation] = {}

    def enrol(self, station_id: str, unit: str, signing_key: Ed25519PrivateKey | None = None) -> EnrolledStation:
        """Enrol a station (with TLS: before start(); the first enrolment makes the station CA)."""
        station = enrol_station(self.root, self.data_dir, station_id, unit, signing_key or Ed25519PrivateKey.generate(),
                                database_url=self.database_url, portal_ca=self.tls[0] if self.tls else None)
        self.stations[station_id] = station
        return station

    @property
    def http(self) -> Any:
        """What the helpers below call through: plain ``requests`` (dev station) or the only station's session."""
        if self.tls and len(self.stations) == 1:
            return next(iter(self.stations.values())).session()
        return requests

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

    Keyword arguments: data_dir, database_url, max_size, expiration_hours, verify_wait, extra_args, port,
    startup_timeout, tls, trust_roots (see ReceiverProcess); ``dev_station=(station_id, unit, signing_key)``
    enrols that station and serves plain HTTP as it.
    """
    if identity_path is None:
        identity_path = tmp_path / "portal-identity.txt"
        write_identity(identity_path)
    dev = kwargs.pop("dev_station", None)
    rx = ReceiverProcess(tmp_path, identity_path, dev_station=dev[0] if dev else None, **kwargs)  # type: ignore[index,arg-type]
    if dev:
        rx.enrol(*dev)  # type: ignore[misc]
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


def tus_create(files_url: str, length: int, meta: dict[str, str], timeout: float = 10,
               http: Any = requests) -> requests.Response:
    headers = {**TUS, "Upload-Length": str(length), "Upload-Metadata": tus_metadata(meta)}
    return http.post(files_url, headers=headers, timeout=timeout)


def tus_patch(url: str, offset: int, data: bytes, *, checksum: bool = True, digest: bytes | None = None,
              timeout: float = 60, http: Any = requests) -> requests.Response:
    headers = {**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": str(offset)}
    if checksum:
        d = digest if digest is not None else hashlib.sha256(data).digest()
        headers["Upload-Checksum"] = "sha256 " + base64.b64encode(d).decode()
    return http.patch(url, data=data, headers=headers, timeout=timeout)


def tus_head(url: str, timeout: float = 10, http: Any = requests) -> requests.Response:
    return http.head(url, headers=TUS, timeout=timeout)


def upload_package(rx: ReceiverProcess, info: package.PackageInfo, station_id: str, *, chunk_size: int = 16384,
                   meta: dict[str, str] | None = None, http: Any = None) -> tuple[str, requests.Response]:
    """Upload a whole package (create + PATCHes with checksums); return (upload URL, receipt response).

    The receipt is polled while the receiver answers 202.  ``http``: the calling station's session
    (default ``rx.http``).
    """
    http = http or rx.http
    data = info.path.read_bytes()
    created = tus_create(rx.files_url, len(data), meta or package_metadata(info, station_id), http=http)
    assert created.status_code == 201, (created.status_code, created.text)
    url = created.headers["Location"]
    offset = 0
    while offset < len(data):
        r = tus_patch(url, offset, data[offset : offset + chunk_size], http=http)
        assert r.status_code == 204, (r.status_code, r.text)
        offset = int(r.headers["Upload-Offset"])
    return url, get_receipt(url, http=http)


def get_receipt(upload_url: str, timeout: float = 60, http: Any = requests) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        r = http.get(upload_url + "/receipt", timeout=10)
        if r.status_code != 202 or time.monotonic() > deadline:
            return r
        time.sleep(0.1)


def reverify_stored_batch(data_dir: Path, identity: pyrage.x25519.Identity, batch_uid: str,
                          station_key: Ed25519PublicKey, receipt: bytes | None = None) -> dict[str, Any]:
    """Check what a receiver stored for a batch on its own, as a portal auditor would: the kept manifest
    bytes carry the station's signature; every object the manifest lists is stored exactly once (under its
    employee's ACR file, or ``unfiled``) and decrypts with the portal identity alone to the manifest's hash
    and size; each ACR file's index holds its entry, its objects and the document digest (and, given the
    ``receipt``, the digest the receipt acknowledged).  Returns the manifest."""
    from receiver.storage import safe_component

    store = data_dir / "store"
    bdir = store / "_batches" / safe_component(batch_uid)
    manifest_bytes = pyrage.decrypt((bdir / "manifest.json.age").read_bytes(), [identity])
    signature = json.loads((bdir / "signatures" / "station.json").read_text())
    station_key.verify(base64.b64decode(signature["signature"]), manifest_bytes)
    manifest: dict[str, Any] = json.loads(manifest_bytes)
    assert package.canonical_json(manifest) == manifest_bytes
    objects = {o["id"]: o for o in manifest["objects"]}
    stored: dict[str, list[Path]] = {}
    for f in store.rglob("*.age"):  # this batch's: <employee>/<period>/<batch>/objects, _batches/<batch>/unfiled
        if f.parent.name in ("objects", "unfiled") and f.parent.parent.name == safe_component(batch_uid):
            stored.setdefault(f.name.removesuffix(".age"), []).append(f)
    filed: set[str] = set()
    digests = {}
    for doc in manifest["documents"]:
        ddir = store / safe_component(doc["employee_code"]) / safe_component(doc["acr_period"]) / safe_component(
            batch_uid)
        index = json.loads(pyrage.decrypt((ddir / f"{doc['id']}.json.age").read_bytes(), [identity]))
        ids = [i for i in [doc["pdf"], *(p[k] for p in doc["pages"] for k in ("raw", "image", "ocr_text"))] if i]
        assert index["document"] == doc and [o["id"] for o in index["objects"]] == list(dict.fromkeys(ids))
        assert index["digest"] == package.document_digest(manifest, doc)
        digests[doc["id"]] = index["digest"]
        assert {p.name for p in (ddir / "objects").iterdir()} == {f"{i}.age" for i in ids}
        filed.update(ids)
    for oid, entry in objects.items():
        where = stored.get(oid, [])
        assert where, f"object {oid} ({entry['kind']}) was not stored"
        if oid not in filed:
            assert [p.parent for p in where] == [bdir / "unfiled"], where
        for f in where:
            plain = pyrage.decrypt(f.read_bytes(), [identity])
            assert hashlib.sha256(plain).hexdigest() == entry["sha256"] and len(plain) == entry["size"]
    assert set(stored) == set(objects), "the store holds objects the manifest does not list"
    if receipt is not None:
        acknowledged = json.loads(receipt)["receipt"]["documents"]
        assert {d["id"]: d["digest"] for d in acknowledged} == digests
    return manifest

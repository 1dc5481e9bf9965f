"""The demo: a self-contained station that scans synthetic ACR files end to end (import back end).

``scanstation demo`` (entry point ``scanstation.commands: demo``) and the demo station that
``scanstation start`` uses when nothing is configured (``scanstation.start: demo_station``).  Synthetic
pages never go into a production station's store: the demo refuses a station whose ``station.mode`` is
``production``; the demo station it creates says ``mode = "demo"``.

The demo station has people, as every station does (issue 13): the admin ``demo-admin`` and the unit
head ``demo-head`` (founded like ``scanstation init --admin --unit-head``), the operator
``demo-operator`` and the supervisor ``demo-supervisor`` (issue 14: nothing is sealed unverified).
Their generated passwords are kept beside the station in ``DEMO-ONLY-password-NAME.txt`` files (0600) so
that the demo runs unattended; a real station's passwords are never written down.  The demo runs the
station service in this process: the unit head's key slot unlocks the station, the operator scans and
closes the batch, the supervisor is shown every page, gives each a verdict (blank backs deleted with a
reason) and approves it, the unit head seals and uploads to a local reference receiver whose private key
(the demo plays both sides) is ``demo-portal/DEMO-ONLY-portal-identity.txt`` (0600).  The upload goes the
real way, over mutual TLS: the demo admin makes the station's enrolment request (as ``scanstation enrol
--out``), the demo portal enrols it (``scanstation-receiver enrol``) and the admin installs the answer (as
``enrol --install``), once, when no valid certificate of the demo portal's station CA is installed; the demo
receiver serves HTTPS on 127.0.0.1 with a throw-away server certificate made for each run
(``demo-portal/tls/``), which the upload trusts as its ``ca_bundle``.  On a training
station the demo acts for the person named by ``--user`` (a supervisor or unit head unlocks for the run,
as for any command) and leaves the batch there.

Building the command line imports this module for every command: the configuration model is imported
only when the demo runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanstation.errors import ScanStationError, StateError

if TYPE_CHECKING:
    from scanstation.config import Config

Printer = Callable[..., None]
DEMO_ADMIN = "demo-admin"
DEMO_HEAD = "demo-head"
DEMO_OPERATOR = "demo-operator"
DEMO_SUPERVISOR = "demo-supervisor"
DEMO_PEOPLE = (DEMO_ADMIN, DEMO_HEAD, DEMO_OPERATOR, DEMO_SUPERVISOR)
DEMO_PORTAL_DIR = "demo-portal"
DEMO_PORTAL_IDENTITY = "DEMO-ONLY-portal-identity.txt"  # in DEMO_PORTAL_DIR
# what a demo station of wave 1 (one shared passphrase, no people) left in its data directory
_WAVE1_DEMO_FILES = ("DEMO-ONLY-passphrase.txt", "demo-portal-identity.age")


def demo_password_file(data_dir: Path, name: str) -> Path:
    """Where a demo person's generated password is kept (DEMO ONLY: a real station's never are)."""
    return data_dir / f"DEMO-ONLY-password-{name}.txt"


def _refuse_production(config: Config) -> None:
    if config.station.mode == "production":
        raise StateError(
            f"{config.source}: station.mode is \"production\": the demo's synthetic pages never go into a "
            "production station's store (the demo runs on its own demo station when no station is configured, "
            "or on a training station: 'scanstation init --training')"
        )


def _founded(config: Config) -> bool:
    return (config.data_dir / "station.pub").exists()


def is_demo_station(config: Config) -> bool:
    """The demo's own station (mode "demo", its people's passwords and the demo portal beside it)."""
    return (config.station.mode == "demo" and (config.data_dir / DEMO_PORTAL_DIR / DEMO_PORTAL_IDENTITY).exists()
            and all(demo_password_file(config.data_dir, n).exists() for n in DEMO_PEOPLE))


def _demo_config() -> tuple[Config, Path]:
    """Embedded defaults' data dir, with a station file inside it (created on first use)."""
    from scanstation.config import load_config

    base = load_config(None)
    cfg_path = base.data_dir / "station.toml"
    if cfg_path.exists():
        _retire_wave1_demo(cfg_path, base.data_dir)
    if cfg_path.exists():
        return load_config(cfg_path), cfg_path
    return base, cfg_path


def _retire_wave1_demo(cfg_path: Path, data_dir: Path) -> None:
    """A demo station from before people existed (one shared passphrase) cannot be opened any more: its
    files (synthetic pages only) are moved aside, into ``wave1-demo-TIME/``, and a new demo station is made."""
    import tomllib

    try:
        values = tomllib.loads(cfg_path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return  # load_config names the problem
    station = values.get("station")
    if (not isinstance(station, dict) or station.get("id") != "demo-station"
            or station.get("mode", "demo") != "demo" or (data_dir / "station.pub").exists()
            or not any((data_dir / n).exists() for n in _WAVE1_DEMO_FILES)):
        return
    aside = data_dir / time.strftime("wave1-demo-%Y%m%d-%H%M%S")
    aside.mkdir(mode=0o700)
    for entry in data_dir.iterdir():
        if entry != aside and not entry.name.startswith("wave1-demo-"):
            shutil.move(str(entry), aside / entry.name)


def ensure_demo_station(config: Config | None, out: Printer) -> Config:
    """Initialise a demo station on first use: a generated portal key and people, clearly labelled.

    A demo station holds only synthetic pages; its people's passwords and the demo portal's key are
    kept beside it so that the demo runs unattended.  A production station is created with
    'scanstation init' and a real portal key, and the demo refuses it (StateError); a training station
    ('init --training') takes the demo's pages.
    """
    from scanstation.config import load_config

    if config is not None:
        _refuse_production(config)
        if not _founded(config):
            raise StateError(f"{config.source}: station not initialised (run 'scanstation init')")
        return config
    config, cfg_path = _demo_config()
    if cfg_path.exists():
        _refuse_production(config)
        if _founded(config):
            return config
    _create_demo_station(config.data_dir, cfg_path)
    out(f"demo station initialised in {config.data_dir} (synthetic data only; portal key and demo people's "
        "passwords generated locally, in its DEMO-ONLY files)")
    return load_config(cfg_path)


def _create_demo_station(data_dir: Path, cfg_path: Path) -> None:
    """Found the demo station (keys, people, audit trail) and write its configuration last: a station file
    exists only for a complete demo station, so an interrupted creation starts again from the beginning."""
    from batchformat.atomic import atomic_write, ensure_dir
    from scanstation.config import render_config, validate_text
    from scanstation.people.roles import Role
    from scanstation.service.core import StationService
    from scanstation.service.founding import found_station
    from scanstation.vault.identity import generate_identity

    ensure_dir(data_dir)
    os.chmod(data_dir, 0o700)
    portal_dir = data_dir / DEMO_PORTAL_DIR
    ensure_dir(portal_dir)
    portal_secret, portal_recipient = generate_identity()
    atomic_write(portal_dir / DEMO_PORTAL_IDENTITY, (
        "# DEMO ONLY: the private key of the local demo portal (the reference receiver 'scanstation demo'\n"
        "# uploads to). The demo plays both sides on this machine; a real portal's key never comes near a\n"
        "# station. Synthetic pages only.\n"
        f"# public key: {portal_recipient}\n"
        f"{portal_secret}\n").encode(), mode=0o600)
    del portal_secret
    passwords = {name: secrets.token_urlsafe(24) for name in DEMO_PEOPLE}
    for name, password in passwords.items():
        atomic_write(demo_password_file(data_dir, name), f"{password}\n".encode(), mode=0o600)
    text = render_config({
        "station": {"id": "demo-station", "unit": "Demo Unit", "data_dir": str(data_dir), "operator": DEMO_OPERATOR,
                    "mode": "demo"},
        "keys": {"portal_recipient": portal_recipient},
    })
    config = validate_text(cfg_path, text)
    found_station(config, DEMO_ADMIN, passwords[DEMO_ADMIN], unit_head=DEMO_HEAD,
                  unit_head_password=passwords[DEMO_HEAD], force=True)
    with StationService(config) as service:  # the operator and supervisor are added by the admin, as anywhere
        admin = service.sign_in(DEMO_ADMIN, passwords[DEMO_ADMIN])
        service.add_person(admin, DEMO_OPERATOR, Role.OPERATOR, passwords[DEMO_OPERATOR])
        service.add_person(admin, DEMO_SUPERVISOR, Role.SUPERVISOR, passwords[DEMO_SUPERVISOR])
        service.sign_out(admin.token)
    atomic_write(cfg_path, text.encode())


def _demo_password(config: Config, name: str) -> str:
    return demo_password_file(config.data_dir, name).read_text("utf-8").rstrip("\n")


@dataclass
class DemoRun:
    """The open station for the demo's capture, who captures, and (on the demo station) the unit head's
    service session that seals and uploads."""

    station: Any
    operator: str
    service: Any = None
    head: Any = None
    operator_session: Any = None


@contextmanager
def _demo_station_open(config: Config, out: Printer) -> Iterator[DemoRun]:
    """The demo station, in an in-process station service: unlocked by the demo unit head's key slot."""
    from scanstation.people.roles import Action
    from scanstation.service.client import service_running
    from scanstation.service.core import StationService

    if service_running(config.socket_path):
        raise StateError(f"{config.socket_path}: a station service runs on the demo station; stop it first "
                         "(the demo runs the station in its own process)")

    def events(kind: str, data: dict[str, Any]) -> None:
        if kind == "page_acknowledged":
            out(f"acknowledged page {data['seq']} of batch {data['batch']} ({data['label']})")

    with StationService(config, events=events) as service:
        _ensure_demo_supervisor(config, service)
        head = service.sign_in(DEMO_HEAD, _demo_password(config, DEMO_HEAD))
        service.unlock(head, _demo_password(config, DEMO_HEAD))
        operator = service.sign_in(DEMO_OPERATOR, _demo_password(config, DEMO_OPERATOR))
        try:
            yield DemoRun(service.station(operator, Action.SCAN), operator.name, service, head, operator)
        finally:
            service.lock(head)  # the day's end for the demo (closing the service would lock it too)
            for session in (operator, head):
                with contextlib.suppress(ScanStationError):  # a long run's session may have timed out
                    service.sign_out(session.token)


def _ensure_demo_supervisor(config: Config, service: Any) -> None:
    """A demo station founded before issue 14 has no supervisor: the admin adds one (nothing is sealed
    unverified, and the operator may not verify their own batch)."""
    from batchformat.atomic import atomic_write
    from scanstation.people.roles import Role

    if service.people.get(DEMO_SUPERVISOR) is not None:
        return
    password = secrets.token_urlsafe(24)
    atomic_write(demo_password_file(config.data_dir, DEMO_SUPERVISOR), f"{password}\n".encode(), mode=0o600)
    admin = service.sign_in(DEMO_ADMIN, _demo_password(config, DEMO_ADMIN))
    service.add_person(admin, DEMO_SUPERVISOR, Role.SUPERVISOR, password)
    service.sign_out(admin.token)


@contextmanager
def _station_open(args: argparse.Namespace, config: Config, out: Printer) -> Iterator[DemoRun]:
    from scanstation.cli.common import IN_SERVICE

    if is_demo_station(config) and IN_SERVICE.get() is None:
        with _demo_station_open(config, out) as run:
            yield run
        return
    # a training station (or any station inside its running service): the person named by --user, through
    # the station service like any command
    from scanstation.cli.common import open_station_as
    from scanstation.people.roles import Action

    with open_station_as(args, Action.SCAN) as (station, caller):
        yield DemoRun(station, caller.name)


def _demo_pages(seed: int, n_pages: int) -> list[Any]:
    """An ACR file as an operator's stack really arrives: slightly skewed, one page upside down, a
    scanner border, a blank back at the end."""
    from scanstation_tools.synth import PageSpec, render_acr_page

    pages = []
    for n in range(1, n_pages + 1):
        pages.append(render_acr_page(PageSpec(
            seed=seed, page_no=n, skew_deg=[1.7, -2.4, 0.6, -0.9][n % 4], rotation=180 if n == 2 else 0,
            noise=0.05, dark_border=(n % 2 == 1),
        )))
    pages.append(render_acr_page(PageSpec(seed=seed, page_no=n_pages, blank=True, bleed_through=True)))
    return pages


def run_demo(args: argparse.Namespace, config: Config | None, out: Printer) -> int:
    from drivers.base import CancelToken, ScanSettings
    from drivers.import_driver import ImportDriver
    from scanstation.facade import integrity_error

    config = ensure_demo_station(config, out)
    acked = 0
    with _station_open(args, config, out) as run:
        station = run.station
        batch = args.batch or _demo_batch_name(station, args.seed)
        for i in range(args.files):
            pages = _demo_pages(args.seed + i, args.pages)
            fields = pages[0].fields
            doc = station.open_document(batch, fields["employee_code"], fields["name"], fields["rank"],
                                        fields["acr_period"], operator=run.operator)
            files = []
            try:
                for n, page in enumerate(pages, 1):
                    # synthetic pages look like real ACRs, so they too stay in RAM, never on disk
                    f = station.ramdir.path / f"acr-{fields['employee_code']}-p{n}.png"
                    page.image.save(f, format="PNG")
                    files.append(f)
                driver = ImportDriver(files, tmp_dir=station.ramdir.path)
                report = station.capture(batch, driver, "import", ScanSettings(), cancel=CancelToken(),
                                         document=doc, operator=run.operator)
            finally:
                for f in files:
                    f.unlink(missing_ok=True)
            acked += len(report.acknowledged)
            out(f"ACR file {fields['employee_code']} ({fields['name']}, {fields['acr_period']}): "
                f"{len(report.acknowledged)} page(s) captured")
        out("waiting for cleaning and OCR to finish…")
        station.wait_idle(include_ocr=True)
        b = station.store.batch(batch)
        assert b is not None
        for doc in station.store.documents(b.id):
            obj = station.assemble_pdf(doc.id, run.operator)
            out(f"searchable PDF for {doc.employee_code}: {obj.size} bytes, encrypted in the vault")
        for p in station.store.pages(b.id):
            out(f"page {p.seq}: {p.state.value}, OCR {p.ocr_state.value}"
                + (f", flags: {', '.join(p.flags)}" if p.flags else ""))
        problems = station.verify_vault()
        if problems:
            raise integrity_error(problems)
        out(f"demo batch '{batch}': {acked} new page(s); vault verified")
        if getattr(args, "no_upload", False):
            pass
        elif run.service is None:
            # A real station's demo never talks to its real portal; seal and upload are explicit commands.
            out("not the demo's own station (or run inside its service): the batch stays here "
                "(use 'scanstation seal' and 'scanstation upload')")
        else:
            _seal_and_upload(run, config, batch, out)
    return 0


def _demo_batch_name(station: Any, seed: int) -> str:
    """demo-SEED, or demo-SEED-N when that batch is already sealed or uploaded (a demo can run again)."""
    n = 1
    name = f"demo-{seed}"
    while (b := station.store.batch(name)) is not None and b.state.value != "scanning":
        n += 1
        name = f"demo-{seed}-{n}"
    return name


def _verify(run: DemoRun, config: Config, batch: str, out: Printer) -> None:
    """The operator closes the batch; the demo supervisor is served every page (as the supervisor's screen
    would show it), deletes the blank backs with a reason, accepts the rest and approves the batch."""
    from scanstation.people.roles import Action
    from scanstation.service.ops_verification import authorized
    from scanstation.verify import core

    service = run.service
    core.close_batch(authorized(service, run.operator_session, Action.CLOSE_BATCH, batch), batch, run.operator)
    supervisor = service.sign_in(DEMO_SUPERVISOR, _demo_password(config, DEMO_SUPERVISOR))
    try:
        station = authorized(service, supervisor, Action.VERIFY, batch)
        b = core.find_batch(station, batch)
        deleted = 0
        for page in station.store.pages(b.id):
            if not page.live:
                continue
            service.page_image(supervisor, batch, page.seq)  # served: approval needs every page seen
            blank = "blank" in page.flags
            core.review(station, batch, page.seq, "delete" if blank else "ok", "blank page" if blank else None,
                        supervisor.name)
            deleted += blank
        core.approve(authorized(service, supervisor, Action.APPROVE, batch), batch, supervisor.name)
        out(f"batch '{batch}' verified by {supervisor.name}: every page shown, {deleted} blank page(s) deleted")
    finally:
        with contextlib.suppress(ScanStationError):
            service.sign_out(supervisor.token)


def _seal_and_upload(run: DemoRun, config: Config, batch: str, out: Printer) -> None:
    """The rest of the flow on one machine: the unit head seals, a local reference receiver starts, the unit
    head uploads to it, the receipt is verified."""
    from scanstation.people.roles import Action
    from scanstation.seal.sealing import seal_batch
    from scanstation.upload.queue import UploadQueue

    head = run.head
    _verify(run, config, batch, out)
    info = seal_batch(run.service.station(head, Action.SEAL), batch, head.name)
    out(f"sealed batch '{batch}': {info.size} bytes, sha256 {info.sha256[:16]}…")
    portal_dir = config.data_dir / DEMO_PORTAL_DIR
    _enrol_at_demo_portal(run, config, portal_dir, out)
    with DemoReceiver(config, portal_dir) as url:
        receipt_key = (portal_dir / "receipt-key.pub").read_text("ascii")
        demo_cfg = config.model_copy(update={
            "portal": config.portal.model_copy(update={"url": url, "receipt_key": receipt_key,
                                                       "ca_bundle": str(portal_dir / "tls" / "server.pem")}),
        })
        outcomes = UploadQueue(run.service.station(head, Action.UPLOAD), config=demo_cfg).run(batch, actor=head.name)
    for o in outcomes:
        if o.state != "received":
            raise (o.error or StateError)(f"demo upload of '{o.batch}' {o.state}: {o.detail}")
        out(f"uploaded '{o.batch}' to the local demo portal ({url}); signed receipt {o.receipt_id} verified")


def _enrolled_at(files: Any, portal_dir: Path) -> bool:
    """Whether the station holds a client certificate, valid for a day more, from the demo portal's station CA."""
    import datetime as dt

    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(files.certificate.read_bytes())
        installed_ca = files.ca_certificate.read_bytes()
        portal_ca = (portal_dir / "station-ca.pem").read_bytes()
    except (OSError, ValueError):
        return False
    now = dt.datetime.now(dt.UTC)
    return (installed_ca == portal_ca and cert.not_valid_before_utc <= now
            and now + dt.timedelta(days=1) < cert.not_valid_after_utc)


def _enrol_at_demo_portal(run: DemoRun, config: Config, portal_dir: Path, out: Printer) -> None:
    """The station's enrolment at the demo portal, the three real steps on one machine: the demo admin makes
    the request (``scanstation enrol --out``), the demo portal registers it and issues the client certificate
    (``scanstation-receiver enrol``), the admin installs it (``scanstation enrol --install``).  Done once: a
    later run finds a valid certificate of the demo portal's station CA installed."""
    import subprocess
    import sys

    from batchformat.atomic import atomic_write, ensure_dir
    from scanstation.enrolment.files import EnrolmentFiles
    from scanstation.enrolment.install import install_bundle
    from scanstation.enrolment.request import make_request, request_bytes
    from scanstation.people.roles import Action

    files = EnrolmentFiles(config.data_dir)
    if _enrolled_at(files, portal_dir):
        return
    service = run.service
    admin = service.sign_in(DEMO_ADMIN, _demo_password(config, DEMO_ADMIN))
    try:
        service.authorize(admin, Action.ENROL)
        station_id, unit = config.station.id, config.station.unit
        subject = f"station:{station_id}"
        work = portal_dir / "enrolment"
        ensure_dir(work)
        request_file, bundle_file = work / f"{station_id}-request.json", work / f"{station_id}-bundle.pem"
        request, fingerprint = make_request(files, station_id=station_id, unit=unit,
                                            recipient=service.public.age_recipient(),
                                            signing_key=service.public.signing_key)
        atomic_write(request_file, request_bytes(request), mode=0o644)
        service.audit.append(admin.name, "enrol.request", subject,
                             {"unit": unit, "tls_key_sha256": fingerprint, "created_at": request["created_at"],
                              "out": str(request_file)})
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCANSTATION_")}
        done = subprocess.run([sys.executable, "-m", "receiver", "enrol", str(request_file), "--data-dir",
                               str(portal_dir), "--out", str(bundle_file)],
                              env=env, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise StateError(f"the demo portal refused the demo station's enrolment (exit {done.returncode}): "
                             f"{done.stderr.strip() or done.stdout.strip()}")
        info = install_bundle(files, bundle_file.read_bytes(), source=str(bundle_file), station_id=station_id,
                              unit=unit)
        service.audit.append(admin.name, "enrol.install", subject, info.as_dict())
        out(f"station {station_id} enrolled at the local demo portal: client certificate serial {info.serial}, "
            f"valid until {info.not_after}")
    finally:
        with contextlib.suppress(ScanStationError):
            service.sign_out(admin.token)


def loopback_certificate(common_name: str) -> tuple[bytes, bytes]:
    """A self-signed (its own CA) P-256 certificate for 127.0.0.1, valid a day: (certificate PEM, key PEM).
    The demo receiver's server certificate; the tests' https portals use it too (tests/tlskit.py)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def _throwaway_server_certificate(tls_dir: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (and its key, 0600) in ``tls_dir``, made anew for each demo run:
    the demo receiver serves HTTPS with it and the upload trusts exactly it (``portal.ca_bundle``)."""
    from batchformat.atomic import atomic_write, ensure_dir

    cert_pem, key_pem = loopback_certificate("ScanStation demo portal (DEMO ONLY)")
    ensure_dir(tls_dir, 0o700)
    cert_path, key_path = tls_dir / "server.pem", tls_dir / "server.key"
    atomic_write(key_path, key_pem, mode=0o600)
    atomic_write(cert_path, cert_pem, mode=0o644)
    return cert_path, key_path


class DemoReceiver:
    """The reference receiver (scanstation-receiver) on 127.0.0.1, for the demo only: HTTPS with a throw-away
    server certificate, client certificates of the stations its station CA enrolled required."""

    def __init__(self, config: Config, root: Path) -> None:
        self.config = config
        self.root = root
        self.proc: Any = None

    def __enter__(self) -> str:
        import socket
        import subprocess
        import sys
        import time

        import requests

        identity_file = self.root / DEMO_PORTAL_IDENTITY
        if not identity_file.exists():
            raise StateError(f"{identity_file}: the demo portal's key is missing (remove {self.config.data_dir} "
                             "to start a new demo station)")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cert, key = _throwaway_server_certificate(self.root / "tls")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCANSTATION_")}
        log = (self.root / "receiver.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "receiver", "--host", "127.0.0.1", "--port", str(port),
             "--data-dir", str(self.root), "--identity", str(identity_file), "--tls-cert", str(cert),
             "--tls-key", str(key), "--log-level", "warning"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        log.close()
        url = f"https://127.0.0.1:{port}/"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StateError(f"the demo receiver exited at start; see {self.root / 'receiver.log'}")
            try:
                if requests.get(url + "health", timeout=(1, 2), verify=str(cert)).status_code == 200:
                    return url
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.__exit__()
        raise StateError(f"the demo receiver did not start; see {self.root / 'receiver.log'}")

    def __exit__(self, *exc: object) -> None:
        import subprocess

        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class DemoStation:
    """The demo station for ``scanstation start`` (entry point ``scanstation.start: demo_station``)."""

    @staticmethod
    def prepare(config: Config | None, out: Printer) -> Config:
        return ensure_demo_station(config, out)

    @staticmethod
    def run_batch(config: Config, out: Printer) -> int:
        """The demo batch that ``start`` runs headless and the window's demo button runs."""
        # a training station's run acts for the person of --user / $SCANSTATION_USER, on this station
        args = argparse.Namespace(files=2, pages=2, seed=2026, batch=None)
        if Path(config.source).is_file():
            args.config = config.source
        return run_demo(args, config, out)


def cmd_demo(args: argparse.Namespace) -> int:
    from scanstation.cli.common import IN_SERVICE, config_or_none, load, say

    # inside the station service (forwarded by the CLI when one runs): always the service's own station
    return run_demo(args, load(args) if IN_SERVICE.get() is not None else config_or_none(args), say)


def add_demo_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Adds ``scanstation demo`` (entry point ``scanstation.commands: demo``, scanstation_tools/pyproject.toml)."""
    s = sub.add_parser("demo", parents=[common], help="scan synthetic ACR files end to end")
    s.add_argument("--files", type=int, default=3, metavar="N", help="number of synthetic ACR files")
    s.add_argument("--pages", type=int, default=3, metavar="N", help="pages per ACR file")
    s.add_argument("--seed", type=int, default=2026)
    s.add_argument("--batch", default=None, metavar="NAME")
    s.add_argument("--no-upload", action="store_true",
                   help="stop after scanning (default: seal and upload to a local demo receiver)")
    # run inside the station service when one runs on the station (it holds the keys), like scan and import
    s.set_defaults(func=cmd_demo, via_service=True)

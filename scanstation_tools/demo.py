"""The demo: a self-contained station that scans synthetic ACR files end to end (import back end).

``scanstation demo`` (entry point ``scanstation.commands: demo``) and the demo station that
``scanstation start`` uses when nothing is configured (``scanstation.start: demo_station``).  Synthetic
pages never go into a production station's store: the demo refuses a station whose ``station.mode`` is
``production``; the demo station it creates says ``mode = "demo"``.

Building the command line imports this module for every command: the configuration model is imported
only when the demo runs.
"""

from __future__ import annotations

import argparse
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanstation.errors import StateError

if TYPE_CHECKING:
    from scanstation.config import Config
    from scanstation.vault.identity import StationKey

Printer = Callable[..., None]
DEMO_PASSPHRASE_FILE = "DEMO-ONLY-passphrase.txt"
DEMO_PORTAL_IDENTITY = "demo-portal-identity.age"


def _refuse_production(config: Config) -> None:
    if config.station.mode == "production":
        raise StateError(
            f"{config.source}: station.mode is \"production\": the demo's synthetic pages never go into a "
            "production station's store (the demo runs on its own demo station when no station is configured, "
            "or on a training station: 'scanstation init --training')"
        )


def _demo_config() -> tuple[Config, Path]:
    """Embedded defaults' data dir, with a station file inside it (created on first use)."""
    from scanstation.config import load_config

    base = load_config(None)
    cfg_path = base.data_dir / "station.toml"
    if cfg_path.exists():
        _add_demo_mode(cfg_path, base.data_dir)
        return load_config(cfg_path), cfg_path
    return base, cfg_path


def _add_demo_mode(cfg_path: Path, data_dir: Path) -> None:
    """A demo station made before ``station.mode`` existed gets ``mode = "demo"`` (it holds synthetic pages)."""
    import tomllib

    from batchformat.atomic import atomic_write
    from scanstation.config import render_config

    try:
        values = tomllib.loads(cfg_path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return  # load_config names the problem
    station = values.get("station")
    if not isinstance(station, dict) or "mode" in station or station.get("id") != "demo-station":
        return
    if not (data_dir / DEMO_PORTAL_IDENTITY).exists():
        return
    station["mode"] = "demo"
    atomic_write(cfg_path, render_config(values).encode())


def ensure_demo_station(config: Config | None, out: Printer) -> Config:
    """Initialise a demo station on first use: a generated portal key and passphrase, clearly labelled.

    A demo station holds only synthetic pages; its passphrase is kept beside it so that the demo runs
    unattended.  A production station is created with 'scanstation init' and a real portal key, and the
    demo refuses it (StateError); a training station ('init --training') takes the demo's pages.
    """
    from batchformat.atomic import atomic_write
    from scanstation.config import load_config, render_config, validate_text
    from scanstation.vault.identity import generate_identity, seal_identity

    if config is not None:
        _refuse_production(config)
        if not config.sealed_identity_path.exists():
            raise StateError(f"{config.source}: station not initialised (run 'scanstation init')")
        return config
    config, cfg_path = _demo_config()
    if cfg_path.exists():
        _refuse_production(config)
    if config.sealed_identity_path.exists() and cfg_path.exists():
        _use_demo_passphrase(config)
        return config
    data_dir = config.data_dir
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    portal_secret, portal_recipient = generate_identity()
    env_file = os.environ.get("SCANSTATION_PASSPHRASE_FILE")
    passphrase = Path(env_file).read_text("utf-8").rstrip("\n") if env_file else secrets.token_urlsafe(24)
    if not env_file:
        atomic_write(data_dir / DEMO_PASSPHRASE_FILE, passphrase.encode())
        os.chmod(data_dir / DEMO_PASSPHRASE_FILE, 0o600)
    # The demo portal's identity is sealed with the same passphrase: the demo receiver can use it.
    seal_identity(portal_secret, passphrase, data_dir / DEMO_PORTAL_IDENTITY, overwrite=True)
    secret, _ = generate_identity()
    seal_identity(secret, passphrase, config.sealed_identity_path, overwrite=True)
    text = render_config({
        "station": {"id": "demo-station", "unit": "Demo Unit", "data_dir": str(data_dir), "operator": "demo",
                    "mode": "demo"},
        "keys": {"portal_recipient": portal_recipient},
    })
    validate_text(cfg_path, text)
    atomic_write(cfg_path, text.encode())
    out(f"demo station initialised in {data_dir} (synthetic data only; portal key generated locally)")
    config = load_config(cfg_path)
    _use_demo_passphrase(config)
    return config


def _use_demo_passphrase(config: Config) -> None:
    f = config.data_dir / DEMO_PASSPHRASE_FILE
    if f.exists() and not os.environ.get("SCANSTATION_PASSPHRASE_FILE"):
        os.environ["SCANSTATION_PASSPHRASE_FILE"] = str(f)


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
    from scanstation.facade import Station, integrity_error
    from scanstation.vault.identity import read_passphrase, unlock_identity

    config = ensure_demo_station(config, out)
    key = unlock_identity(config.sealed_identity_path, read_passphrase(prompt="Station passphrase: "))
    acked = []

    def events(kind: str, data: dict[str, Any]) -> None:
        if kind == "page_acknowledged":
            acked.append(data["seq"])
            out(f"acknowledged page {data['seq']} of batch {data['batch']} ({data['label']})")

    batch = args.batch or _demo_batch_name(config, key, args.seed)
    with Station(config, key, events=events) as station:
        for i in range(args.files):
            pages = _demo_pages(args.seed + i, args.pages)
            fields = pages[0].fields
            doc = station.open_document(batch, fields["employee_code"], fields["name"], fields["rank"],
                                        fields["acr_period"])
            files = []
            try:
                for n, page in enumerate(pages, 1):
                    # synthetic pages look like real ACRs, so they too stay in RAM, never on disk
                    f = station.ramdir.path / f"acr-{fields['employee_code']}-p{n}.png"
                    page.image.save(f, format="PNG")
                    files.append(f)
                driver = ImportDriver(files, tmp_dir=station.ramdir.path)
                report = station.capture(batch, driver, "import", ScanSettings(), cancel=CancelToken(),
                                         document=doc)
            finally:
                for f in files:
                    f.unlink(missing_ok=True)
            out(f"ACR file {fields['employee_code']} ({fields['name']}, {fields['acr_period']}): "
                f"{len(report.acknowledged)} page(s) captured")
        out("waiting for cleaning and OCR to finish…")
        station.wait_idle(include_ocr=True)
        b = station.store.batch(batch)
        assert b is not None
        for doc in station.store.documents(b.id):
            obj = station.assemble_pdf(doc.id)
            out(f"searchable PDF for {doc.employee_code}: {obj.size} bytes, encrypted in the vault")
        for p in station.store.pages(b.id):
            out(f"page {p.seq}: {p.state.value}, OCR {p.ocr_state.value}"
                + (f", flags: {', '.join(p.flags)}" if p.flags else ""))
        problems = station.verify_vault()
        if problems:
            raise integrity_error(problems)
        out(f"demo batch '{batch}': {len(acked)} new page(s); vault verified")
        if getattr(args, "no_upload", False):
            pass
        elif not (config.data_dir / DEMO_PORTAL_IDENTITY).exists():
            # A real station's demo never talks to its real portal; seal and upload are explicit commands.
            out("not a demo station: the batch stays here (use 'scanstation seal' and 'scanstation upload')")
        else:
            _seal_and_upload(station, config, batch, out)
    return 0


def _demo_batch_name(config: Config, key: StationKey, seed: int) -> str:
    """demo-SEED, or demo-SEED-N when that batch is already sealed or uploaded (a demo can run again)."""
    from scanstation.facade import open_store

    db = config.data_dir / "station.db"
    if not db.exists():
        return f"demo-{seed}"
    store = open_store(config, key)
    try:
        n = 1
        name = f"demo-{seed}"
        while (b := store.batch(name)) is not None and b.state.value != "scanning":
            n += 1
            name = f"demo-{seed}-{n}"
        return name
    finally:
        store.close()


def _seal_and_upload(station: Any, config: Config, batch: str, out: Printer) -> None:
    """The rest of the flow on one machine: seal, start a local reference receiver, upload, verify the receipt."""
    from scanstation.seal.sealing import seal_batch
    from scanstation.upload.queue import UploadQueue

    info = seal_batch(station, batch, "demo")
    out(f"sealed batch '{batch}': {info.size} bytes, sha256 {info.sha256[:16]}…")
    portal_dir = config.data_dir / "demo-portal"
    with DemoReceiver(config, portal_dir) as url:
        receipt_key = (portal_dir / "receipt-key.pub").read_text("ascii")
        demo_cfg = config.model_copy(update={
            "portal": config.portal.model_copy(update={"url": url, "receipt_key": receipt_key}),
        })
        outcomes = UploadQueue(station, config=demo_cfg).run(batch, actor="demo")
    for o in outcomes:
        if o.state != "received":
            raise (o.error or StateError)(f"demo upload of '{o.batch}' {o.state}: {o.detail}")
        out(f"uploaded '{o.batch}' to the local demo portal ({url}); signed receipt {o.receipt_id} verified")


class DemoReceiver:
    """The reference receiver (scanstation-receiver) on 127.0.0.1, for the demo only."""

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

        from batchformat.atomic import atomic_write, ensure_dir
        from scanstation.vault.identity import read_passphrase, unlock_identity

        ensure_dir(self.root)
        identity_file = self.root / "DEMO-ONLY-portal-identity.txt"
        if not identity_file.exists():
            # The demo portal's key lives on this machine only because the demo plays both sides.
            portal = unlock_identity(self.config.data_dir / DEMO_PORTAL_IDENTITY,
                                     read_passphrase(prompt="Station passphrase: "))
            atomic_write(identity_file, f"{portal.identity}\n".encode(), mode=0o600)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCANSTATION_")}
        log = (self.root / "receiver.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "receiver", "--host", "127.0.0.1", "--port", str(port),
             "--data-dir", str(self.root), "--identity", str(identity_file), "--log-level", "warning"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        log.close()
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StateError(f"the demo receiver exited at start; see {self.root / 'receiver.log'}")
            try:
                if requests.get(url + "health", timeout=(1, 2)).status_code == 200:
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
        return run_demo(argparse.Namespace(files=2, pages=2, seed=2026, batch=None), config, out)


def cmd_demo(args: argparse.Namespace) -> int:
    from scanstation.cli.common import config_or_none, say

    return run_demo(args, config_or_none(args), say)


def add_demo_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Adds ``scanstation demo`` (entry point ``scanstation.commands: demo``, scanstation_tools/pyproject.toml)."""
    s = sub.add_parser("demo", parents=[common], help="scan synthetic ACR files end to end")
    s.add_argument("--files", type=int, default=3, metavar="N", help="number of synthetic ACR files")
    s.add_argument("--pages", type=int, default=3, metavar="N", help="pages per ACR file")
    s.add_argument("--seed", type=int, default=2026)
    s.add_argument("--batch", default=None, metavar="NAME")
    s.add_argument("--no-upload", action="store_true",
                   help="stop after scanning (default: seal and upload to a local demo receiver)")
    s.set_defaults(func=cmd_demo)

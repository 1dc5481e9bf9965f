"""Command-line interface; the one place where exceptions become messages and exit codes."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanstation import __version__
from scanstation.errors import ConfigError, FormatError, InputError, ScanStationError, StateError, exit_code_table

if TYPE_CHECKING:
    from scanstation.config import Config

# The configuration model (pydantic) costs a tenth of a second to import: commands that never read a
# configuration, such as ``ocr`` run once per page by benchmarks and scripts, do not pay for it.
CONFIG_ENV = "SCANSTATION_CONFIG"  # the same name as scanstation.config.CONFIG_ENV (a test checks)

log = logging.getLogger("scanstation")


def _print(*args: Any) -> None:
    print(*args, flush=True)


def _err(msg: str) -> None:
    print(f"scanstation: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- helpers
def _config(args: argparse.Namespace) -> Config:
    from scanstation.config import load_config

    path = getattr(args, "config", None)
    return load_config(Path(path) if path else None)


def _unlock(config: Config) -> Any:
    from scanstation.vault.identity import read_passphrase, unlock_identity

    path = config.sealed_identity_path
    if not path.exists():
        raise StateError(f"{path}: no sealed station identity (run 'scanstation init')")
    return unlock_identity(path, read_passphrase(prompt="Station passphrase: ", require_private=True))


def _event_printer(quiet: bool = False) -> Callable[[str, dict[str, Any]], None]:
    def sink(kind: str, data: dict[str, Any]) -> None:
        if kind == "page_acknowledged":
            # This line is the acknowledgement contract: printed only after the page is durable.
            _print(f"acknowledged page {data['seq']} of batch {data['batch']} ({data['label']}) [{data['source_key']}]")
        elif kind == "page_duplicate" and not quiet:
            _print(f"already stored, skipped: {data['label'] or data['source_key']}")
        elif kind == "input_rejected":
            _err(f"rejected {data['input']}: {data['reason']}")
        elif kind == "page_ocr_failed" and data.get("final"):
            _err(f"OCR failed for page id {data['page_id']} (kept, flagged 'ocr_failed'): {data['error']}")
        elif kind == "page_error":
            _err(f"page id {data['page_id']}: {data['error']}")

    return sink


def _open_station(config: Config) -> Any:
    from scanstation.facade import Station

    key = _unlock(config)
    return Station(config, key, events=_event_printer())


def _finish(station: Any, wait_ocr: bool) -> None:
    def progress(info: dict[str, int]) -> None:
        _print(f"OCR: {info['ocr_pending']} page(s) waiting")

    station.wait_idle(include_ocr=wait_ocr, progress=progress)


def _document(station: Any, args: argparse.Namespace) -> Any:
    if not getattr(args, "employee", None):
        return None
    return station.open_document(args.batch, args.employee, args.name or "", args.rank or "", args.period or "")


def _report_outcome(report: Any) -> int:
    _print(
        f"batch {report.batch}: {len(report.acknowledged)} page(s) acknowledged"
        + (f", {report.duplicates} already stored" if report.duplicates else "")
    )
    dev = report.device_error
    if dev is not None:
        raise dev
    inputs = [p for p in report.problems if isinstance(p, InputError)]
    if inputs:
        raise InputError(f"{len(inputs)} input(s)", "rejected: " + "; ".join(str(p) for p in inputs[:10]))
    return 0


# ---------------------------------------------------------------------- commands
def cmd_init(args: argparse.Namespace) -> int:
    from scanstation.config import render_config, validate_text
    from scanstation.vault.identity import generate_identity, parse_recipient, read_passphrase, seal_identity

    if not args.config:
        raise ConfigError("init needs --config FILE (where to write the station configuration)")
    cfg_path = Path(args.config)
    parse_recipient(args.portal_recipient)
    data_dir = Path(args.data_dir).expanduser().absolute()
    values: dict[str, dict[str, Any]] = {
        "station": {"id": args.station_id, "unit": args.unit, "data_dir": str(data_dir), "operator": args.operator},
        "keys": {"portal_recipient": args.portal_recipient, "sealed_identity": "station-identity.age"},
    }
    portal: dict[str, Any] = {}
    if args.portal_url:
        portal["url"] = args.portal_url
    if args.portal_receipt_key:
        key_path = Path(args.portal_receipt_key)
        try:
            portal["receipt_key"] = key_path.read_text("ascii")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{key_path}: cannot read the portal receipt key: {e}") from e
        from scanstation.upload.portal_key import load_portal_key

        load_portal_key(portal["receipt_key"].encode("ascii"), str(key_path))
    if portal:
        values["portal"] = portal
    text = render_config(values)
    config = validate_text(cfg_path, text)
    sealed = config.sealed_identity_path
    if (cfg_path.exists() or sealed.exists()) and not args.force:
        raise StateError(
            f"{cfg_path if cfg_path.exists() else sealed}: already exists; "
            "use --force to replace it (the old station key is then lost)"
        )
    passphrase = read_passphrase(prompt="New station passphrase: ", confirm=True)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    secret, recipient = generate_identity()
    seal_identity(secret, passphrase, sealed, overwrite=args.force)
    del secret
    from batchformat.atomic import atomic_write

    cfg_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(cfg_path, text.encode("utf-8"))
    _print(f"configuration written to {cfg_path}")
    _print(f"sealed station identity written to {sealed}")
    _print(f"station recipient: {recipient}")
    return 0


def cmd_seal(args: argparse.Namespace) -> int:
    from scanstation.seal.sealing import seal_batch

    config = _config(args)
    with _open_station(config) as station:
        info = seal_batch(station, args.batch, config.station.operator)
    _print(f"sealed batch {args.batch}: {info.path} ({info.size} bytes, sha256 {info.sha256})")
    return 0


def cmd_unseal(args: argparse.Namespace) -> int:
    from scanstation.seal.sealing import unseal_batch

    config = _config(args)
    with _open_station(config) as station:
        unseal_batch(station, args.batch, config.station.operator)
    _print(f"batch {args.batch} is open for scanning again; its package was deleted")
    return 0


def cmd_upload(args: argparse.Namespace) -> int:
    from scanstation.upload.queue import Outcome, UploadQueue

    config = _config(args)
    station = _open_station(config)

    def progress(kind: str, data: dict[str, Any]) -> None:
        if kind == "upload_progress" and args.verbose:
            _print(f"upload {data['batch']}: {data['offset']} of {data['size']} bytes")

    def report(o: Outcome) -> None:
        if o.state == "received":
            _print(f"batch {o.batch}: received by the portal, receipt {o.receipt_id}")
        elif o.state == "purged":
            _print(f"batch {o.batch}: already received and purged")
        else:
            _err(f"batch {o.batch}: upload {o.state}: {o.detail}")

    try:
        queue = UploadQueue(station, events=progress)
        outcomes = queue.run(args.batch, actor=config.station.operator, on_outcome=report)
    finally:
        station.close()
    if not outcomes:
        _print("nothing to upload")
    failed = [o for o in outcomes if o.state not in ("received", "purged")]
    if failed:
        from scanstation.errors import UploadError

        # The first failure's kind sets the exit code (19 retry later, 20 refused, 21 bad receipt).
        cls = failed[0].error or UploadError
        detail = "; ".join(f"{o.batch}: {o.detail}" for o in failed)
        raise cls(f"{len(failed)} batch(es) not received: {detail}")
    return 0


def cmd_uploads(args: argparse.Namespace) -> int:
    from scanstation.store.database import Store
    from scanstation.upload.queue import uploads_report_from_store

    config = _config(args)
    # Read-only view: no unlock needed (nothing here is secret; receipts are public statements).
    db = config.data_dir / "station.db"
    if not db.exists():
        raise StateError(f"{db}: no station database (run 'scanstation init' and scan first)")
    store = Store(db)
    try:
        rows = uploads_report_from_store(store)
    finally:
        store.close()
    if args.json:
        _print(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        if not rows:
            _print("upload queue is empty")
        for r in rows:
            line = f"{r['batch']}\t{r['state']}\t{r['confirmed_offset']}/{r['size']} bytes\tattempts {r['attempts']}"
            if r["receipt_id"]:
                line += f"\treceipt {r['receipt_id']}"
            if r["last_error"]:
                line += f"\t{r['last_error']}"
            _print(line)
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    from drivers.registry import list_all_devices

    devices = list_all_devices()
    if args.json:
        _print(json.dumps([d.__dict__ if hasattr(d, "__dict__") else _dc(d) for d in devices], indent=2))
    else:
        for d in devices:
            _print(f"{d.name}\t{d.vendor} {d.model}\t({d.kind}, {d.backend})")
    return 0


def _dc(obj: Any) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(obj)


def _settings(args: argparse.Namespace, config: Config) -> Any:
    from drivers.base import ColorMode, ScanSettings, Source

    options = []
    for opt in args.option or []:
        name, sep, value = opt.partition("=")
        if not sep or not name:
            raise ConfigError(f"--option {opt!r}: expected NAME=VALUE")
        options.append((name, value))
    return ScanSettings(
        source=Source(args.source or config.scan.source),
        mode=ColorMode(args.mode or config.scan.mode),
        resolution=args.resolution or config.scan.resolution,
        page_size=config.scan.page_size,
        options=tuple(options),
    )


def _default_source_for(driver: Any, device: str, settings: Any) -> Any:
    """The configured source when the device has it; else the device's own (a flatbed-only scanner)."""
    import dataclasses

    sources = driver.capabilities(device).sources
    if sources and settings.source not in sources:
        _print(f"{device} has no {settings.source.value} source; using {sources[0].value}")
        return dataclasses.replace(settings, source=sources[0])
    return settings


def cmd_scan(args: argparse.Namespace) -> int:
    from drivers.base import CancelToken
    from drivers.registry import get_driver

    config = _config(args)
    settings = _settings(args, config)
    station = _open_station(config)
    cancel = CancelToken()
    signal.signal(signal.SIGTERM, lambda *_: cancel.cancel())
    try:
        driver = get_driver(args.device, tmp_dir=station.ramdir.path)
        if args.source is None:
            settings = _default_source_for(driver, args.device, settings)
        report = station.capture(
            args.batch, driver, args.device, settings, cancel=cancel, document=_document(station, args)
        )
        _finish(station, wait_ocr=not args.no_wait)
        return _report_outcome(report)
    finally:
        station.close()


def cmd_import(args: argparse.Namespace) -> int:
    from drivers.base import CancelToken, ColorMode, ScanSettings, Source
    from drivers.registry import get_driver

    config = _config(args)
    with _open_station(config) as station:
        files = [Path(f) for f in args.files]
        driver = get_driver("import", files=files, tmp_dir=station.ramdir.path)
        settings = ScanSettings(source=Source.FLATBED, mode=ColorMode.GRAY, resolution=args.resolution or 300)
        report = station.capture(
            args.batch, driver, "import", settings, cancel=CancelToken(), document=_document(station, args)
        )
        _finish(station, wait_ocr=not args.no_wait)
        return _report_outcome(report)


def _status_data(config: Config, batch: str | None) -> dict[str, Any]:
    from scanstation.facade import open_store

    store = open_store(config)
    try:
        batches = store.batches()
        if batch is not None:
            batches = [b for b in batches if b.name == batch]
            if not batches:
                raise StateError(f"no batch called '{batch}'")
        out: dict[str, Any] = {
            "station": config.station.id,
            "unit": config.station.unit,
            "data_dir": str(config.data_dir),
            "batches": [],
        }
        for b in batches:
            pages = store.pages(b.id)
            docs = store.documents(b.id)
            out["batches"].append(
                {
                    "name": b.name,
                    "state": b.state.value,
                    "operator": b.operator,
                    "created_at": b.created_at,
                    "pages": len(pages),
                    "counts": store.counts(b.id),
                    "flags": {
                        f: sum(1 for p in pages if f in p.flags) for f in sorted({f for p in pages for f in p.flags})
                    },
                    "documents": [
                        {
                            "id": d.id,
                            "seq": d.seq,
                            "employee_code": d.employee_code,
                            "acr_period": d.acr_period,
                            "pages": sum(1 for p in pages if p.document_id == d.id),
                            "pdf": store.document_pdf(d.id) is not None,
                        }
                        for d in docs
                    ],
                    "page_list": [
                        {
                            "seq": p.seq,
                            "id": p.id,
                            "state": p.state.value,
                            "ocr": p.ocr_state.value,
                            "flags": p.flags,
                            "side": p.side.value,
                            "device": p.device,
                            "raw_sha256": p.raw_sha256,
                            "image_sha256": p.image_sha256,
                            "source_key": p.source_key,
                            "document_id": p.document_id,
                            "analysis": p.analysis,
                            "objects": _page_objects(store, p),
                        }
                        for p in pages
                    ],
                }
            )
        out["audit_head"] = store.audit_head()
        return out
    finally:
        store.close()


def _page_objects(store: Any, page: Any) -> list[dict[str, str]]:
    """The vault objects of a page (ids and recorded plaintext hashes; nothing secret)."""
    refs = [("raw", page.raw_object), ("image", page.image_object), ("ocr_text", page.ocr_object),
            ("ocr_pdf", store.ocr_pdf_object(page.id))]
    return [{"kind": kind, "id": oid, "sha256": store.object(oid).sha256} for kind, oid in refs if oid]


def cmd_status(args: argparse.Namespace) -> int:
    data = _status_data(_config(args), args.batch)
    if args.json:
        _print(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    _print(f"station {data['station']} ({data['unit']}), data in {data['data_dir']}")
    if not data["batches"]:
        _print("no batches yet")
    for b in data["batches"]:
        c = b["counts"]
        _print(
            f"batch {b['name']}: {b['state']}, {b['pages']} page(s) "
            f"[processed {c.get('state_processed', 0)}, OCR done {c.get('ocr_done', 0)}, "
            f"OCR pending {c.get('ocr_pending', 0)}, OCR failed {c.get('ocr_failed', 0)}]"
        )
        for flag, n in b["flags"].items():
            _print(f"  flagged {flag}: {n}")
        for d in b["documents"]:
            _print(
                f"  ACR file {d['seq']}: {d['employee_code']} {d['acr_period']} - {d['pages']} page(s)"
                + (", PDF ready" if d["pdf"] else "")
            )
    return 0


def cmd_verify_vault(args: argparse.Namespace) -> int:
    from scanstation.facade import integrity_error

    config = _config(args)
    with _open_station(config) as station:
        problems = station.verify_vault()
        n = len(station.store.objects())
    if problems:
        for p in problems:
            _err(p)
        raise integrity_error(problems)
    _print(f"vault verified: {n} object(s), all present, decryptable and matching their hashes; audit chain intact")
    return 0


def cmd_assemble(args: argparse.Namespace) -> int:
    config = _config(args)
    with _open_station(config) as station:
        batch = station.store.batch(args.batch)
        if batch is None:
            raise StateError(f"no batch called '{args.batch}'")
        station.wait_idle(include_ocr=True)
        for doc in station.store.documents(batch.id):
            obj = station.assemble_pdf(doc.id)
            _print(
                f"ACR file {doc.employee_code} {doc.acr_period}: searchable PDF stored in the vault "
                f"({obj.size} bytes, sha256 {obj.sha256[:16]}…)"
            )
    return 0


def cmd_process(args: argparse.Namespace) -> int:
    config = _config(args)
    with _open_station(config) as station:
        if args.retry_failed:
            _print(f"{station.retry_failed_ocr(args.batch)} page(s) queued for another OCR attempt")
        _finish(station, wait_ocr=True)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from scanstation_tools.demo import run_demo

    return run_demo(args, _config_or_none(args), _print)


def cmd_start(args: argparse.Namespace) -> int:
    from scanstation_tools.demo import start_station

    return start_station(args, _config_or_none(args), _print)


def _config_or_none(args: argparse.Namespace) -> Config | None:
    if getattr(args, "config", None) or os.environ.get(CONFIG_ENV):
        return _config(args)
    return None


def cmd_cover_sheets(args: argparse.Namespace) -> int:
    """Printable separator sheets (QR + text): they carry only the index, never ACR content."""
    from batchformat.atomic import atomic_write
    from scanstation.capture.cover_sheets import CoverInfo, cover_sheet_pdf

    config = _config(args)
    infos = []
    for spec in args.sheet:
        parts = spec.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            raise ConfigError(f"--sheet {spec!r}: expected EMPLOYEE_CODE:PERIOD[:NAME]")
        try:
            infos.append(CoverInfo(parts[0], parts[1], config.station.unit, parts[2] if len(parts) == 3 else ""))
        except ValueError as e:
            raise ConfigError(f"--sheet {spec!r}: {e}") from e
    atomic_write(Path(args.output), cover_sheet_pdf(infos))
    _print(f"{len(infos)} separator sheet(s) written to {args.output}")
    return 0


def cmd_exit_codes(args: argparse.Namespace) -> int:
    for code, (meaning, cls) in exit_code_table().items():
        _print(f"{code:>4}  {meaning}" + (f" ({cls})" if cls else ""))
    return 0


# ---------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help=f"station configuration (default: ${CONFIG_ENV} or embedded defaults)",
    )
    p = argparse.ArgumentParser(
        prog="scanstation", description="Secure scanning station for confidential records.", parents=[common]
    )
    p.add_argument("--version", action="version", version=f"scanstation {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("init", parents=[common], help="write a configuration and a sealed station identity")
    s.add_argument("--data-dir", required=True, metavar="DIR")
    s.add_argument("--portal-recipient", required=True, metavar="AGE1...", help="portal's age recipient")
    s.add_argument("--unit", default="Unit 1")
    s.add_argument("--station-id", default="station-1")
    s.add_argument("--operator", default="operator")
    s.add_argument("--portal-url", metavar="URL", default="", help="base URL of the portal (tus endpoint URL/files/)")
    s.add_argument("--portal-receipt-key", metavar="FILE", help="the portal's receipt-signing public key (PEM)")
    s.add_argument("--force", action="store_true", help="replace an existing configuration and identity")
    s.set_defaults(func=cmd_init)

    s = sub.add_parser("seal", parents=[common], help="seal a batch into a signed, encrypted package for the portal")
    s.add_argument("--batch", required=True, metavar="NAME")
    s.set_defaults(func=cmd_seal)

    s = sub.add_parser("unseal", parents=[common], help="return a sealed (not yet uploading) batch to scanning")
    s.add_argument("--batch", required=True, metavar="NAME")
    s.set_defaults(func=cmd_unseal)

    s = sub.add_parser("upload", parents=[common],
                       help="upload sealed batches; returns when each is received (receipt verified) "
                       "or failed for good")
    s.add_argument("--batch", metavar="NAME", help="this batch (queued if needed); default: every queued batch")
    s.set_defaults(func=cmd_upload)

    s = sub.add_parser("uploads", parents=[common], help="the upload queue: states, progress, receipt ids")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_uploads)

    s = sub.add_parser("devices", parents=[common], help="list scanners")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_devices)

    def add_index(sp: argparse.ArgumentParser) -> None:
        g = sp.add_argument_group("ACR file index (optional)")
        g.add_argument("--employee", metavar="CODE", help="employee code of the ACR file these pages belong to")
        g.add_argument("--name", help="employee name")
        g.add_argument("--rank", help="rank")
        g.add_argument("--period", help="ACR period, e.g. 2019-20")
        sp.add_argument("--no-wait", action="store_true", help="return after capture; OCR resumes on next start")

    s = sub.add_parser("scan", parents=[common], help="scan pages from a SANE device into a batch")
    s.add_argument("--device", required=True, metavar="DEV")
    s.add_argument("--source", choices=["flatbed", "adf", "duplex"])
    s.add_argument("--resolution", type=int, metavar="N")
    s.add_argument("--mode", choices=["gray", "color", "lineart"])
    s.add_argument("--option", action="append", metavar="NAME=VALUE", help="back-end option (repeatable)")
    s.add_argument("--batch", required=True, metavar="NAME")
    add_index(s)
    s.set_defaults(func=cmd_scan)

    s = sub.add_parser("import", parents=[common], help="import image/TIFF/PDF files into a batch")
    s.add_argument("--batch", required=True, metavar="NAME")
    s.add_argument("--resolution", type=int, metavar="N", help="PDF rendering resolution (default 300)")
    s.add_argument("files", nargs="+", metavar="FILE")
    add_index(s)
    s.set_defaults(func=cmd_import)

    s = sub.add_parser("status", parents=[common], help="batches, pages and processing state")
    s.add_argument("--batch", metavar="NAME")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("verify-vault", parents=[common], help="check every vault object against its recorded hash")
    s.set_defaults(func=cmd_verify_vault)

    s = sub.add_parser("process", parents=[common], help="finish cleaning and OCR left over from an earlier run")
    s.add_argument("--batch", metavar="NAME")
    s.add_argument("--retry-failed", action="store_true", help="give pages whose OCR failed another attempt")
    s.set_defaults(func=cmd_process)

    s = sub.add_parser("assemble", parents=[common], help="build each ACR file's searchable PDF (in the vault)")
    s.add_argument("--batch", required=True, metavar="NAME")
    s.set_defaults(func=cmd_assemble)

    s = sub.add_parser("demo", parents=[common], help="scan synthetic ACR files end to end")
    s.add_argument("--files", type=int, default=3, metavar="N", help="number of synthetic ACR files")
    s.add_argument("--pages", type=int, default=3, metavar="N", help="pages per ACR file")
    s.add_argument("--seed", type=int, default=2026)
    s.add_argument("--batch", default=None, metavar="NAME")
    s.add_argument("--no-upload", action="store_true",
                   help="stop after scanning (default: seal and upload to a local demo receiver)")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("start", parents=[common], help="start the station (kiosk UI when a display is present)")
    s.add_argument("--headless", action="store_true", help="no UI: set up, run the demo batch and print status")
    s.set_defaults(func=cmd_start)

    s = sub.add_parser("cover-sheets", parents=[common], help="print QR separator sheets, one per ACR file")
    s.add_argument("--sheet", action="append", required=True, metavar="CODE:PERIOD[:NAME]")
    s.add_argument("-o", "--output", required=True, metavar="FILE.pdf")
    s.set_defaults(func=cmd_cover_sheets)

    from scanstation_tools.ocr_command import add_ocr_parser

    add_ocr_parser(sub, common)

    s = sub.add_parser("exit-codes", help="list the exit codes and their meaning")
    s.set_defaults(func=cmd_exit_codes)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    return _run(argv)[0]


def _run(argv: Sequence[str] | None) -> tuple[int, str | None]:
    """Run one command: its exit code, and the command's name."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2, None
    try:
        return int(args.func(args)), args.command
    except (ScanStationError, FormatError) as e:
        _err(e.message)
        return e.exit_code, args.command
    except KeyboardInterrupt:
        _err("interrupted")
        return 130, args.command
    except BrokenPipeError:
        return 1, args.command


# Commands that leave nothing behind when they return: outputs written and closed, temporary (RAM)
# directories removed, threads joined, child processes reaped.  Their process ends there, without the
# interpreter's tear-down (freeing every object and module one by one: 40-70 ms after OpenCV, numpy and
# pikepdf, a tenth of a one-page OCR run).
_ENDS_AT_ONCE = frozenset({"ocr"})


def entry() -> None:
    """The ``scanstation`` program (main() is for callers in the same process, tests among them)."""
    code, command = _run(None)
    if command in _ENDS_AT_ONCE:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()

"""``scanstation-receiver``: run the reference portal receiver with uvicorn; enrol and revoke stations.

    scanstation-receiver --data-dir DIR --identity FILE --tls-cert C --tls-key K [--trust-roots PEM]   serve
    scanstation-receiver enrol REQUEST --data-dir DIR --out BUNDLE                                    enrol
    scanstation-receiver revoke STATION_ID --data-dir DIR                                             revoke
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import logging
import ssl
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from batchformat import atomic
from batchformat.errors import FormatError

from .keys import KeyFileError

if TYPE_CHECKING:
    from .db import Database

# Exit codes shared with the station's meaning: 2 usage, 3 configuration (bad key file, database URL),
# 32 enrolment refused (the station's EnrolmentError).
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_ENROLMENT = 32
# h11's buffer limit for an incomplete request head (the app checks complete heads: app.MAX_HEADER_BYTES).
MAX_HEADER_BYTES = 16 * 1024
SUBCOMMANDS = ("enrol", "revoke")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scanstation-receiver",
                                description="Reference portal receiver for sealed ScanStation batch packages "
                                            "(tus 1.0.0 at /files/, receipts; see docs/portal-api.md). "
                                            "Subcommands: enrol, revoke (scanstation-receiver enrol --help).")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8470, help="TCP port (default 8470)")
    p.add_argument("--data-dir", type=Path, required=True,
                   help="uploads, store, receipt key, station CA, SQLite database")
    p.add_argument("--identity", type=Path, required=True,
                   help="age identity file of the portal (age-keygen output); packages are encrypted to it")
    p.add_argument("--database-url", default=None,
                   help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db (default sqlite in the data dir)")
    p.add_argument("--max-size", type=int, default=2 * 1024**3, help="largest accepted package in bytes")
    p.add_argument("--expiration-hours", type=float, default=24.0,
                   help="unfinished uploads expire this long after their last write (default 24)")
    p.add_argument("--verify-wait", type=float, default=25.0,
                   help="seconds the final PATCH waits for verification before replying (then poll the receipt)")
    p.add_argument("--tls-cert", type=Path, default=None, help="serve HTTPS with this certificate chain (PEM)")
    p.add_argument("--tls-key", type=Path, default=None, help="private key of --tls-cert (PEM)")
    p.add_argument("--client-ca", type=Path, default=None,
                   help="CA of the stations' client certificates (default DATA_DIR/station-ca.pem)")
    p.add_argument("--trust-roots", type=Path, default=None,
                   help="PEM trust roots of the unit heads' signing certificates; every package must then carry "
                        "the unit head's CMS signature chaining to them")
    p.add_argument("--production", action="store_true",
                   help="refuse to start without TLS, client certificates and --trust-roots")
    p.add_argument("--dev-station", default=None, metavar="STATION_ID",
                   help="plain HTTP on loopback only, for tests: every request is taken to come from this "
                        "enrolled station")
    p.add_argument("--max-open-uploads", type=int, default=16, help="open uploads per station (default 16)")
    p.add_argument("--max-reserved-bytes", type=int, default=8 * 1024**3,
                   help="total Upload-Length of a station's open uploads (default 8 GiB)")
    p.add_argument("--head-timeout", type=float, default=10.0,
                   help="seconds a request head may take to arrive (default 10)")
    p.add_argument("--body-timeout", type=float, default=30.0,
                   help="seconds a request body may send nothing before it is cut off (default 30)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        return enrol_main(argv[1:]) if argv[0] == "enrol" else revoke_main(argv[1:])
    return serve_main(argv)


def _usage(message: str) -> int:
    print(f"scanstation-receiver: {message}", file=sys.stderr)
    return EXIT_USAGE


def serve_main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        return _usage("--tls-cert and --tls-key go together")
    if args.max_size <= 0 or args.expiration_hours <= 0:
        return _usage("--max-size and --expiration-hours must be positive")
    if min(args.max_open_uploads, args.max_reserved_bytes) <= 0 or min(args.head_timeout, args.body_timeout) <= 0:
        return _usage("limits and timeouts must be positive")
    tls = args.tls_cert is not None
    if tls and args.dev_station:
        return _usage("--dev-station is for plain-HTTP loopback tests; with TLS stations present certificates")
    if not tls and not args.dev_station:
        return _usage("serve HTTPS (--tls-cert/--tls-key; stations present client certificates) or, for "
                      "loopback tests only, --dev-station STATION_ID")
    if args.dev_station and not _is_loopback(args.host):
        return _usage("--dev-station only listens on a loopback address (127.0.0.1)")
    if args.production and (not tls or args.trust_roots is None):
        return _usage("--production needs --tls-cert/--tls-key and --trust-roots")
    client_ca = args.client_ca or args.data_dir / "station-ca.pem"
    if tls and args.client_ca is None:
        from .enrolment import load_or_create_ca

        try:  # made now if no station is enrolled yet, so stations can be set up against a running portal
            load_or_create_ca(args.data_dir)
        except (OSError, ValueError) as e:
            print(f"scanstation-receiver: station CA in {args.data_dir}: {e}", file=sys.stderr)
            return EXIT_CONFIG
    if tls and not client_ca.is_file():
        print(f"scanstation-receiver: --client-ca {client_ca}: no such file", file=sys.stderr)
        return EXIT_CONFIG
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    import uvicorn  # imported late: `--help` and usage errors stay fast

    from .app import ReceiverConfig, create_app
    from .transport import protocol_class, send_tls_alerts_on_handshake_failure

    if tls:
        send_tls_alerts_on_handshake_failure()

    config = ReceiverConfig(data_dir=args.data_dir.resolve(), identity_file=args.identity,
                            database_url=args.database_url, tls=tls, dev_station=args.dev_station,
                            trust_roots_file=args.trust_roots, production=args.production,
                            max_size=args.max_size, expiration_hours=args.expiration_hours,
                            verify_wait_seconds=args.verify_wait, max_open_uploads=args.max_open_uploads,
                            max_reserved_bytes=args.max_reserved_bytes, body_timeout_seconds=args.body_timeout)
    try:
        app = create_app(config)
    except (KeyFileError, FormatError) as e:
        print(f"scanstation-receiver: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception as e:  # e.g. SQLAlchemy cannot parse or reach the database URL, a broken trust-roots file
        print(f"scanstation-receiver: cannot start: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_CONFIG
    # CERT_OPTIONAL, not REQUIRED: a presented certificate must still verify against the station CA (the
    # handshake fails otherwise), but a client without one reaches the app and gets a 401 naming the check
    # (and /health stays open to load balancers).  No request other than /health is served without one.
    uvicorn.run(app, host=args.host, port=args.port, http=protocol_class(args.head_timeout), lifespan="on",
                log_level=args.log_level, h11_max_incomplete_event_size=MAX_HEADER_BYTES, timeout_keep_alive=30,
                ssl_certfile=str(args.tls_cert) if tls else None, ssl_keyfile=str(args.tls_key) if tls else None,
                ssl_cert_reqs=ssl.CERT_OPTIONAL if tls else ssl.CERT_NONE,
                ssl_ca_certs=str(client_ca) if tls else None)
    return 0


# ------------------------------------------------------------------ enrol, revoke


def _admin_parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"scanstation-receiver {prog}", description=description)
    p.add_argument("--data-dir", type=Path, required=True, help="the receiver's data directory")
    p.add_argument("--database-url", default=None, help="as for serving (default sqlite in the data dir)")
    return p


def _database(data_dir: Path, url: str | None) -> Database:
    from .db import Database

    atomic.ensure_dir(data_dir, 0o700)
    return Database(url or f"sqlite:///{data_dir.resolve() / 'receiver.db'}")


def enrol_main(argv: list[str]) -> int:
    p = _admin_parser("enrol", "Check a station's enrolment request (scanstation enrol --out), issue its TLS client "
                               "certificate from the portal's station CA and register the station.")
    p.add_argument("request", type=Path, help="the station's enrolment request (JSON)")
    p.add_argument("--out", type=Path, required=True, help="write the certificate bundle (client cert + CA) here")
    args = p.parse_args(argv)
    from .enrolment import EnrolmentRefused, enrol, parse_request

    try:
        data = args.request.read_bytes()
    except OSError as e:
        print(f"scanstation-receiver enrol: {args.request}: cannot read ({e.strerror})", file=sys.stderr)
        return EXIT_ENROLMENT
    try:
        request = parse_request(data, str(args.request))
    except EnrolmentRefused as e:
        print(f"scanstation-receiver enrol: {args.request}: refused: {e.check}: {e.reason}", file=sys.stderr)
        return EXIT_ENROLMENT
    try:
        db = _database(args.data_dir, args.database_url)
        enrolled = enrol(request, args.data_dir.resolve(), db)
        db.close()
    except Exception as e:  # a broken CA file, an unreachable database
        print(f"scanstation-receiver enrol: cannot enrol: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_CONFIG
    atomic.atomic_write(args.out, enrolled.bundle, mode=0o644)
    s = enrolled.station
    if enrolled.replaced is not None:
        # a re-enrolment: the old certificate stops working at once (its serial is no longer the station's)
        logging.getLogger("receiver.enrolment").warning(
            "station %s re-enrolled: certificate %s replaces %s", s.station_id, s.cert_serial,
            enrolled.replaced.cert_serial)
        print(f"re-enrolled station {s.station_id}: certificate {s.cert_serial} replaces "
              f"{enrolled.replaced.cert_serial}" + (" (signing key changed)"
                                                    if enrolled.replaced.signing_key != s.signing_key else ""))
    print(f"enrolled station {s.station_id} (unit {s.unit}), certificate serial {s.cert_serial}; "
          f"bundle written to {args.out}")
    return 0


def revoke_main(argv: list[str]) -> int:
    p = _admin_parser("revoke", "Revoke an enrolled station: its certificate and key are refused from now on.")
    p.add_argument("station_id")
    args = p.parse_args(argv)
    try:
        db = _database(args.data_dir, args.database_url)
        done = db.revoke_station(args.station_id, dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        db.close()
    except Exception as e:
        print(f"scanstation-receiver revoke: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_CONFIG
    if not done:
        print(f"scanstation-receiver revoke: no enrolled station {args.station_id!r}", file=sys.stderr)
        return EXIT_USAGE
    print(f"station {args.station_id} revoked")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

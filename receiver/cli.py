"""``scanstation-receiver``: run the reference portal receiver with uvicorn."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from batchformat.errors import FormatError

from .keys import KeyFileError

# Exit codes shared with the station's meaning: 2 usage, 3 configuration (bad key file, database URL).
EXIT_USAGE = 2
EXIT_CONFIG = 3
# h11's buffer limit for an incomplete request head (the app checks complete heads: app.MAX_HEADER_BYTES).
MAX_HEADER_BYTES = 16 * 1024


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scanstation-receiver",
                                description="Reference portal receiver for sealed ScanStation batch packages "
                                            "(tus 1.0.0 at /files/, receipts; see docs/portal-api.md).")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8470, help="TCP port (default 8470)")
    p.add_argument("--data-dir", type=Path, required=True, help="uploads, store, receipt key, SQLite database")
    p.add_argument("--identity", type=Path, required=True,
                   help="age identity file of the portal (age-keygen output); packages are encrypted to it")
    p.add_argument("--database-url", default=None,
                   help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db (default sqlite in the data dir)")
    p.add_argument("--trusted-stations", type=Path, default=None,
                   help="file of 'STATION_ID BASE64_ED25519_KEY' lines; if given, only these stations are accepted")
    p.add_argument("--max-size", type=int, default=2 * 1024**3, help="largest accepted package in bytes")
    p.add_argument("--expiration-hours", type=float, default=24.0,
                   help="unfinished uploads expire this long after their last write (default 24)")
    p.add_argument("--verify-wait", type=float, default=25.0,
                   help="seconds the final PATCH waits for verification before replying (then poll the receipt)")
    p.add_argument("--tls-cert", type=Path, default=None, help="serve HTTPS with this certificate chain (PEM)")
    p.add_argument("--tls-key", type=Path, default=None, help="private key of --tls-cert (PEM)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        print("scanstation-receiver: --tls-cert and --tls-key go together", file=sys.stderr)
        return EXIT_USAGE
    if args.max_size <= 0 or args.expiration_hours <= 0:
        print("scanstation-receiver: --max-size and --expiration-hours must be positive", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    import uvicorn  # imported late: `--help` and usage errors stay fast

    from .app import ReceiverConfig, create_app

    config = ReceiverConfig(data_dir=args.data_dir.resolve(), identity_file=args.identity,
                            database_url=args.database_url, trusted_stations_file=args.trusted_stations,
                            max_size=args.max_size, expiration_hours=args.expiration_hours,
                            verify_wait_seconds=args.verify_wait)
    try:
        app = create_app(config)
    except (KeyFileError, FormatError) as e:
        print(f"scanstation-receiver: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception as e:  # e.g. SQLAlchemy cannot parse or reach the database URL
        print(f"scanstation-receiver: cannot start: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_CONFIG
    uvicorn.run(app, host=args.host, port=args.port, http="h11", lifespan="on", log_level=args.log_level,
                h11_max_incomplete_event_size=MAX_HEADER_BYTES, timeout_keep_alive=30,
                ssl_certfile=str(args.tls_cert) if args.tls_cert else None,
                ssl_keyfile=str(args.tls_key) if args.tls_key else None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

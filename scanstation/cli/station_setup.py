"""Commands that set a station up and start it: ``init`` and ``start``.

``station.mode`` (written by ``init``) says what a station may hold: ``production`` (the default) only
real pages, so the developer tools' demo refuses to run on it; ``training`` and ``demo`` stations may
hold synthetic ones.  ``start`` on a production station starts the kiosk window and nothing else; on
anything else it may use the demo station of the developer tools, when they are installed.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from scanstation.cli import plugins
from scanstation.cli.common import CONFIG_ENV, config_or_none, has_display, say
from scanstation.errors import ConfigError, ExternalToolError, StateError


def cmd_init(args: argparse.Namespace) -> int:
    """Write the configuration, create the station's keys, its first admin and the recovery code.

    The admin's password comes from the terminal or $SCANSTATION_PASSWORD_FILE (mode 0600); with
    ``--unit-head`` that person's from $SCANSTATION_NEW_PASSWORD_FILE or the terminal (typed by them), and
    they get a key slot at once.  Otherwise the first unlock is the unit head's, with the recovery code.
    """
    from scanstation.cli.common import read_new_password, read_password
    from scanstation.config import render_config, validate_text
    from scanstation.service.founding import found_station
    from scanstation.vault.identity import parse_recipient

    if not args.config:
        raise ConfigError("init needs --config FILE (where to write the station configuration)")
    cfg_path = Path(args.config)
    parse_recipient(args.portal_recipient)
    data_dir = Path(args.data_dir).expanduser().absolute()
    values: dict[str, dict[str, Any]] = {
        "station": {"id": args.station_id, "unit": args.unit, "data_dir": str(data_dir), "operator": args.operator,
                    "mode": "training" if args.training else "production"},
        "keys": {"portal_recipient": args.portal_recipient},
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
    if cfg_path.exists() and not args.force:
        raise StateError(f"{cfg_path}: already exists; use --force to replace it (the old station key is then lost)")
    if not args.admin:
        raise ConfigError("init needs --admin NAME (the station admin's account)")
    admin_password = read_password(f"Password for the station admin {args.admin}: ")
    head_password = read_new_password(f"Password for the unit head {args.unit_head} (they type it): ") \
        if args.unit_head else None
    founded = found_station(config, args.admin, admin_password, unit_head=args.unit_head,
                            unit_head_password=head_password, force=args.force)
    from batchformat.atomic import atomic_write

    cfg_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(cfg_path, text.encode("utf-8"))
    say(f"configuration written to {cfg_path}")
    say(f"station recipient: {founded.recipient}")
    say(f"station admin: {args.admin}")
    for name in founded.enrolled:
        say(f"key slot made for {name} (may unlock the station)")
    say("")
    say("RECOVERY CODE (shown once; the unit head keeps it on paper, in the unit's safe):")
    say(f"    {founded.recovery_code}")
    if not founded.enrolled:
        say("first unlock: add a unit head and supervisors (scanstation users add ... --user ADMIN), then the unit "
            "head runs 'scanstation unlock --recovery --user HEAD': everyone added gets a key slot")
    return 0


HEADLESS = (
    "no display (or --headless): the station's window needs one; on this terminal use the commands "
    "(scanstation scan / import / status / seal / upload; scanstation --help)"
)


def cmd_start(args: argparse.Namespace) -> int:
    """The kiosk window of the configured station; with nothing configured, the tools' demo station.

    A production station never gets the demo: not headless, not as a button in the window.
    """
    config = config_or_none(args)
    demo: plugins.DemoStation | None = None
    if config is None or config.station.mode != "production":
        demo = plugins.start_part("demo_station")
    if demo is not None:
        config = demo.prepare(config, say)
    elif config is None:
        raise ConfigError(
            f"no station configured: set one up with 'scanstation init --config FILE ...' and name it with "
            f"--config FILE or ${CONFIG_ENV} (the demo station comes with the developer tools, "
            "scanstation-tools, which are not installed)"
        )
    elif not _initialised(config):
        raise StateError(f"{config.source}: station not initialised (run 'scanstation init')")
    if args.headless or not has_display():
        if demo is None:
            say(HEADLESS)
            return 0
        say("no display (or --headless): running the demo batch")
        return demo.run_batch(config, say)
    window = plugins.start_part("window")
    if window is None:
        raise ExternalToolError("the station window cannot be loaded (the ui package or PySide6 is missing)")
    if demo is None:
        return int(window(config))
    station, chosen = demo, config
    return int(window(config, demo_action=lambda: station.run_batch(chosen, lambda *_: None)))


def _initialised(config: Any) -> bool:
    """Whether the station was initialised.  The kiosk's account may not read the data directory (0700, the
    service's user): a station service answering on the socket then says it is."""
    from scanstation.service.client import service_running

    try:
        return (config.data_dir / "station.pub").exists()
    except PermissionError:
        return service_running(config.socket_path)


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("init", parents=[common],
                       help="write a configuration; create the station key, first admin and recovery code")
    s.add_argument("--data-dir", required=True, metavar="DIR")
    s.add_argument("--portal-recipient", required=True, metavar="AGE1...", help="portal's age recipient")
    s.add_argument("--unit", default="Unit 1")
    s.add_argument("--station-id", default="station-1")
    s.add_argument("--operator", default="operator")
    s.add_argument("--portal-url", metavar="URL", default="", help="base URL of the portal (tus endpoint URL/files/)")
    s.add_argument("--portal-receipt-key", metavar="FILE", help="the portal's receipt-signing public key (PEM)")
    s.add_argument("--training", action="store_true",
                   help="a training station (station.mode = \"training\"): may also hold synthetic pages (demo)")
    s.add_argument("--admin", metavar="NAME", help="the first station admin (required)")
    s.add_argument("--unit-head", metavar="NAME",
                   help="also create the unit head, with a key slot at once (else: first unlock by recovery code)")
    s.add_argument("--force", action="store_true", help="replace an existing configuration, keys and accounts")
    s.set_defaults(func=cmd_init)

    s = sub.add_parser("start", parents=[common], help="start the station (kiosk UI when a display is present)")
    s.add_argument("--headless", action="store_true",
                   help="no UI (a demo or training station: set up, run the demo batch and print status)")
    s.set_defaults(func=cmd_start)

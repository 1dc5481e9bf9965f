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
    """Found the station: its keys, its first admin and the recovery code, and the configuration naming them.

    Without a configuration at ``--config``, one is written from the options.  With one that names no
    station yet (the ``station.toml`` the Debian package installs), the options' values are set in it and
    the rest is kept: its production paths, its comments, the admin's own edits.  A configuration whose
    data directory holds a station is refused without ``--force`` (its key would be lost).  Run as root,
    the station's files go to the owner of the data directory (the service's user, ``scanstation``), so
    that one command, as root, is the whole first run of a packaged station.

    The admin's password comes from the terminal or $SCANSTATION_PASSWORD_FILE (mode 0600); with
    ``--unit-head`` that person's from $SCANSTATION_NEW_PASSWORD_FILE or the terminal (typed by them), and
    they get a key slot at once.  Otherwise the first unlock is the unit head's, with the recovery code.
    """
    from scanstation.cli.common import read_new_password, read_password
    from scanstation.config import merge_config_text, render_config, validate_text
    from scanstation.service.founding import found_station
    from scanstation.vault.identity import parse_recipient

    if not args.config:
        raise ConfigError("init needs --config FILE (where to write the station configuration)")
    cfg_path = Path(args.config)
    parse_recipient(args.portal_recipient)
    existing = _read_existing(cfg_path)
    if existing is None and not args.data_dir:
        raise ConfigError(f"{cfg_path}: no configuration there yet: init needs --data-dir DIR (the station's data)")
    values = _init_values(args, new_file=existing is None)
    text = render_config(values) if existing is None else merge_config_text(existing, values, str(cfg_path))
    config = validate_text(cfg_path, text)
    if existing is not None and not args.force:
        # The configuration found there may name another data directory than the one now asked for: the
        # station living there would lose its configuration, and with it the way to its key.
        for data_dir in {validate_text(cfg_path, existing).data_dir, config.data_dir}:
            if _holds_station(data_dir):
                raise StateError(f"{cfg_path}: already exists and names the station in {data_dir}; use --force "
                                 "to replace it (the old station key is then lost)")
    if not args.admin:
        raise ConfigError("init needs --admin NAME (the station admin's account)")
    admin_password = read_password(f"Password for the station admin {args.admin}: ")
    head_password = read_new_password(f"Password for the unit head {args.unit_head} (they type it): ") \
        if args.unit_head else None
    founded = found_station(config, args.admin, admin_password, unit_head=args.unit_head,
                            unit_head_password=head_password, force=args.force)
    owner = _give_to_data_dir_owner(config.data_dir)
    _write_config(cfg_path, text)
    say(f"configuration {'written to' if existing is None else 'updated in'} {cfg_path}")
    if owner:
        say(f"station files in {config.data_dir} given to {owner}")
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


def _read_existing(cfg_path: Path) -> str | None:
    try:
        return cfg_path.read_text("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{cfg_path}: cannot read the configuration: {e}") from e


def _init_values(args: argparse.Namespace, *, new_file: bool) -> dict[str, dict[str, Any]]:
    """What init sets.  A new file gets every station setting (defaults for those not given); an existing one
    only what was given, and its mode stays unless ``--training`` asks otherwise."""
    given = {"id": args.station_id, "unit": args.unit, "operator": args.operator}
    if new_file:
        given = {key: value or INIT_DEFAULTS[key] for key, value in given.items()}
    station: dict[str, Any] = {key: value for key, value in given.items() if value}
    if args.data_dir:
        station["data_dir"] = str(Path(args.data_dir).expanduser().absolute())
    if args.training:
        station["mode"] = "training"
    elif new_file:
        station["mode"] = "production"
    values: dict[str, dict[str, Any]] = {"station": station, "keys": {"portal_recipient": args.portal_recipient}}
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
    return values


def _holds_station(data_dir: Path) -> bool:
    from scanstation.service.founding import FOUNDING_FILES

    try:
        return any((data_dir / name).exists() for name in (*FOUNDING_FILES, "station.db"))
    except PermissionError as e:
        raise StateError(f"{data_dir}: cannot look into the station's data directory ({e.strerror}): run init as "
                         "root or as the directory's owner") from e


def _give_to_data_dir_owner(data_dir: Path) -> str:
    """As root: the files init made in the data directory belong to the directory's owner (the service's user
    of a packaged station, who must read and write them; root's files would stop it at its first start).
    Returns the owner's name when anything was given, else ''."""
    import os
    import pwd

    if os.geteuid() != 0:
        return ""
    top = os.stat(data_dir)
    if top.st_uid == 0:
        return ""
    for folder, dirs, files in os.walk(data_dir):
        for name in (*dirs, *files):
            path = os.path.join(folder, name)
            if os.lstat(path).st_uid == 0:
                os.lchown(path, top.st_uid, top.st_gid)
    try:
        return pwd.getpwuid(top.st_uid).pw_name
    except KeyError:
        return f"uid {top.st_uid}"


def _write_config(cfg_path: Path, text: str) -> None:
    """Replace the configuration atomically, keeping the mode and owner of the file it replaces (the package's
    is root:scanstation-kiosk 0640: the service and the kiosk read it, nobody else)."""
    import os

    from batchformat.atomic import atomic_write

    cfg_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        before: os.stat_result | None = os.stat(cfg_path)
    except FileNotFoundError:
        before = None
    atomic_write(cfg_path, text.encode("utf-8"), mode=0o600 if before is None else before.st_mode & 0o7777)
    if before is not None and os.geteuid() == 0:
        os.chown(cfg_path, before.st_uid, before.st_gid)


INIT_DEFAULTS = {"id": "station-1", "unit": "Unit 1", "operator": "operator"}


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
    service's user): then the station service is the one to say, and its window asks it, waiting for it
    while it does not answer (ui/service_link.py); a kiosk that stopped here instead would restart in a
    loop before a service that starts late."""
    try:
        return (config.data_dir / "station.pub").exists()
    except PermissionError:
        return True


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("init", parents=[common],
                       help="write a configuration; create the station key, first admin and recovery code")
    s.add_argument("--data-dir", metavar="DIR",
                   help="the station's data (required unless --config names an existing configuration, whose "
                        "data_dir is then used)")
    s.add_argument("--portal-recipient", required=True, metavar="AGE1...", help="portal's age recipient")
    s.add_argument("--unit", help=f"the unit's name (a new file: {INIT_DEFAULTS['unit']!r})")
    s.add_argument("--station-id", help=f"the station's id (a new file: {INIT_DEFAULTS['id']!r})")
    s.add_argument("--operator", help=f"the contractor operating it (a new file: {INIT_DEFAULTS['operator']!r})")
    s.add_argument("--portal-url", metavar="URL", default="", help="base URL of the portal (tus endpoint URL/files/)")
    s.add_argument("--portal-receipt-key", metavar="FILE", help="the portal's receipt-signing public key (PEM)")
    s.add_argument("--training", action="store_true",
                   help="a training station (station.mode = \"training\"): may also hold synthetic pages (demo)")
    s.add_argument("--admin", metavar="NAME", help="the first station admin (required)")
    s.add_argument("--unit-head", metavar="NAME",
                   help="also create the unit head, with a key slot at once (else: first unlock by recovery code)")
    s.add_argument("--force", action="store_true",
                   help="replace an existing station: its configuration, keys and accounts")
    s.set_defaults(func=cmd_init)

    s = sub.add_parser("start", parents=[common], help="start the station (kiosk UI when a display is present)")
    s.add_argument("--headless", action="store_true",
                   help="no UI (a demo or training station: set up, run the demo batch and print status)")
    s.set_defaults(func=cmd_start)

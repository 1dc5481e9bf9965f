"""Scan profiles: the admin's named, locked settings (NAPS2's admin-locked settings, Kofax's batch classes).

A profile (``[profiles.<name>]`` in the station configuration, :class:`~scanstation.config.ScanProfile`)
fixes source, mode, resolution, page size, the separator rule and back-end options.  The operator picks
one by name; a value the profile does not list in ``unlocked`` cannot be changed: :func:`profile_settings`
refuses the attempt with :class:`ProfileLocked` (a PermissionDenied, exit 22: the configuration is fine,
the person may not change it) and the caller audits the refusal.  Asking for the value the profile already
has is not a change and passes (a screen may send every value it shows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from drivers.base import ColorMode, ScanSettings, Source
from drivers.sane_options import SettingError, split_schedule
from scanstation.config import PROFILE_FIELDS, Config, ScanProfile
from scanstation.errors import ConfigError, PermissionDenied

__all__ = ["PROFILE_FIELDS", "ProfileLocked", "ProfileScan", "describe_profile", "find_profile", "profile_settings"]

# Back-end options that set what a profile fixes: an --option naming one of them is a change of that value.
# (SANE's well-known option names, SANE standard 4.5; the page-size ones are the scan-area corners.)
_OPTION_TOUCHES: dict[str, str] = {
    "source": "source",
    "mode": "mode",
    "depth": "mode",
    "resolution": "resolution",
    "x-resolution": "resolution",
    "y-resolution": "resolution",
    "tl-x": "page_size",
    "tl-y": "page_size",
    "br-x": "page_size",
    "br-y": "page_size",
    "page-width": "page_size",
    "page-height": "page_size",
}


class ProfileLocked(PermissionDenied):
    """An attempt to change a value the scan profile locks (exit 22, audited by the caller)."""

    def __init__(self, profile: str, attempts: Sequence[str]) -> None:
        self.profile = profile
        self.attempts = tuple(attempts)
        super().__init__(
            f"scan profile '{profile}' locks {', '.join(self.attempts)}: the station admin set "
            "these values; scan without changing them, or ask the admin for another profile")


@dataclass(frozen=True)
class ProfileScan:
    """What a scan with a profile runs with: the driver's settings and the separator rule."""

    profile: str
    settings: ScanSettings
    separators: bool


def find_profile(config: Config, name: str) -> ScanProfile:
    """The profile called ``name``; ConfigError (exit 3) naming the defined ones otherwise."""
    profile = config.profiles.get(name)
    if profile is None:
        known = ", ".join(sorted(config.profiles)) or "none"
        raise ConfigError(f"no scan profile called '{name}' in {config.source} (defined: {known}); "
                          "'scanstation profiles' lists them")
    return profile


def _parse_options(options: Sequence[str]) -> list[tuple[str, str]]:
    pairs = []
    for opt in options:
        name, sep, value = opt.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"option {opt!r}: expected NAME=VALUE")
        pairs.append((name.strip(), value))
    return pairs


def profile_settings(
    config: Config,
    name: str,
    *,
    source: str | None = None,
    mode: str | None = None,
    resolution: int | None = None,
    page_size: str | None = None,
    separators: bool | None = None,
    options: Sequence[str] = (),
) -> ProfileScan:
    """The settings of profile ``name`` with the operator's changes; ProfileLocked lists every locked one.

    Options the operator adds come after the profile's own (the back end applies them in order), and only
    when the profile unlocks ``options``; one that sets a locked value (``--option mode=Color`` on a
    profile locking the mode, also as ``page3:mode=...``) is refused like ``--mode`` would be.
    """
    profile = find_profile(config, name)
    refused: list[str] = []
    asked: dict[str, Any] = {"source": source, "mode": mode, "resolution": resolution, "page_size": page_size,
                             "separators": separators}
    for field, value in asked.items():
        if value is not None and value != getattr(profile, field) and profile.locked(field):
            refused.append(f"{field} (profile: {getattr(profile, field)}, asked: {value})")
    extra = _parse_options(options)
    if extra and profile.locked("options"):
        refused.append(f"back-end options (asked: {', '.join(f'{k}={v}' for k, v in extra)})")
    elif extra:
        try:
            initial, scheduled = split_schedule(extra)
        except SettingError as e:
            raise ConfigError(str(e)) from e
        touched = [*initial, *(pair for pairs in scheduled.values() for pair in pairs)]
        for opt_name, value in touched:
            touches = _OPTION_TOUCHES.get(opt_name.lower())
            if touches is not None and profile.locked(touches):
                refused.append(f"{touches} (through option {opt_name}={value})")
    if refused:
        raise ProfileLocked(name, refused)
    settings = ScanSettings(
        source=Source(source or profile.source),
        mode=ColorMode(mode or profile.mode),
        resolution=resolution or profile.resolution,
        page_size=page_size or profile.page_size,
        options=tuple([*_parse_options(profile.options), *extra]),
    )
    return ProfileScan(name, settings, profile.separators if separators is None else separators)


def describe_profile(name: str, profile: ScanProfile) -> dict[str, Any]:
    """A profile as the ``profiles`` command and the operator's screen show it (no secrets in profiles)."""
    return {
        "name": name,
        "description": profile.description,
        "source": profile.source,
        "mode": profile.mode,
        "resolution": profile.resolution,
        "page_size": profile.page_size,
        "blank_pages": profile.blank_pages,
        "separators": profile.separators,
        "options": list(profile.options),
        "unlocked": list(profile.unlocked),
    }

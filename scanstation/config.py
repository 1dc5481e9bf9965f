"""Station configuration: embedded TOML defaults overlaid by the station's file, validated with clear errors."""

from __future__ import annotations

import os
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from scanstation.errors import ConfigError

CONFIG_ENV = "SCANSTATION_CONFIG"
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_AGE_RECIPIENT = re.compile(r"^age1[02-9ac-hj-np-z]{58}$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StationSection(_Section):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    unit: str = Field(min_length=1, max_length=120)
    data_dir: str
    operator: str = Field(min_length=1, max_length=64)
    # production: real pages only (the developer tools' demo refuses such a station); training and demo
    # stations may also hold synthetic pages.  See the embedded defaults file.
    mode: Literal["production", "training", "demo"]


class KeysSection(_Section):
    portal_recipient: str
    sealed_identity: str = Field(min_length=1)

    @field_validator("portal_recipient")
    @classmethod
    def _recipient(cls, v: str) -> str:
        if v and not _AGE_RECIPIENT.match(v):
            raise ValueError("not an age X25519 recipient (expected 'age1' followed by 58 characters)")
        return v


class ScanSection(_Section):
    source: Literal["flatbed", "adf", "duplex"]
    mode: Literal["gray", "color", "lineart"]
    resolution: int = Field(ge=75, le=1200)
    page_size: Literal["A4", "legal", "letter", "max"]
    # The profile a scan uses when none is named ("" = none: the free settings above, for a supervisor's
    # shell).  Set it on a kiosk station so that leaving out --profile cannot get round a profile's locks.
    profile: str = Field(default="", max_length=64)


# What a profile may leave to the operator (``unlocked``); everything else is the admin's, as in NAPS2's
# admin-locked settings.  The blank-page rule is not among them: blank pages are flagged, never dropped.
PROFILE_FIELDS = ("source", "mode", "resolution", "page_size", "separators", "options")


class ScanProfile(_Section):
    """One admin-defined scan profile (``[profiles.<name>]``), picked by name by the operator."""

    description: str = Field(default="", max_length=200)
    source: Literal["flatbed", "adf", "duplex"]
    mode: Literal["gray", "color", "lineart"]
    resolution: int = Field(ge=75, le=1200)
    page_size: Literal["A4", "legal", "letter", "max"] = "A4"
    # Blank pages are flagged for the supervisor's verdict; nothing is dropped (a "blank" back may hold a
    # faint note).  The only value, so a "drop" in a station file is refused rather than ignored.
    blank_pages: Literal["flag"] = "flag"
    # QR cover sheets start a new ACR file (true) or are not looked for at all (false: e.g. rescans).
    separators: bool = True
    # Back-end options NAME=VALUE applied after the settings above (brightness, a test device's faults).
    options: tuple[str, ...] = ()
    # The values the operator may change when scanning with this profile; default: none (all locked).
    unlocked: tuple[str, ...] = ()

    @field_validator("options")
    @classmethod
    def _options(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for opt in v:
            name, sep, _value = opt.partition("=")
            if not sep or not name.strip():
                raise ValueError(f"option {opt!r}: expected NAME=VALUE")
        return v

    @field_validator("unlocked")
    @classmethod
    def _unlocked(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for name in v:
            if name not in PROFILE_FIELDS:
                raise ValueError(f"{name!r} cannot be unlocked (choose from {', '.join(PROFILE_FIELDS)}; "
                                 "blank pages are always flagged)")
        return v

    def locked(self, field: str) -> bool:
        return field not in self.unlocked


class PipelineSection(_Section):
    analysis_workers: int = Field(ge=1, le=8)
    png_compress_level: int = Field(ge=0, le=9)
    # A command waiting for cleaning and OCR gives up when no page has finished for this long (a stall).
    wait_timeout_seconds: float = Field(gt=0, le=86400)


class OcrSection(_Section):
    enabled: bool
    languages: str = Field(pattern=r"^[A-Za-z_/]+(\+[A-Za-z_/]+)*$")
    workers: int = Field(ge=1, le=16)
    timeout_seconds: float = Field(gt=0, le=3600)
    max_attempts: int = Field(ge=1, le=10)


_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class PortalSection(_Section):
    # Base URL of the portal; its tus creation endpoint is url + "files/".  Empty = no uploads set up.
    url: str
    # PEM (SubjectPublicKeyInfo) of the portal's Ed25519 receipt-signing key; receipts are checked against it.
    receipt_key: str
    # CA bundle for TLS verification ("" = the system's CAs).  There is no switch to turn verification off.
    ca_bundle: str
    connect_timeout: float = Field(gt=0, le=300)
    read_timeout: float = Field(gt=0, le=3600)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v:
            return v
        from urllib.parse import urlsplit

        parts = urlsplit(v)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("must be an https:// URL of the portal")
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
            # ACR packages are encrypted anyway, but receipts, offsets and metadata are not: no plain HTTP
            # across a network.  Loopback is allowed for the demo and the tests.
            raise ValueError("plain http:// is allowed only for a portal on this machine (127.0.0.1); use https://")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("must not contain credentials, a query or a fragment")
        return v if v.endswith("/") else v + "/"

    @field_validator("receipt_key")
    @classmethod
    def _receipt_key(cls, v: str) -> str:
        if not v:
            return v
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        try:
            key = load_pem_public_key(v.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as e:
            raise ValueError("not a PEM public key (expected the receiver's receipt-key.pub)") from e
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("the receipt key must be an Ed25519 public key")
        return v


class UploadSection(_Section):
    chunk_bytes: int = Field(ge=64 * 1024, le=256 * 1024 * 1024)
    max_bytes_per_second: int = Field(ge=0)  # 0 = no cap
    max_attempts: int = Field(ge=1, le=1000)  # transfer attempts before a batch is "failed" for a person to see
    # Keep the local encrypted copies this long after a verified receipt, then destroy them and the batch key.
    retention_hours: float = Field(ge=0, le=24 * 365)
    # Sealing needs the unit head's DSC sign-off (scanstation signoff); never on a demo station (seal/sealing.py).
    require_signoff: bool
    # The raw capture and the lossless cleaned page travel too, each as a one-page PDF/A at the compact encoding;
    # off, a page travels only inside its ACR file's PDF (and the raw capture is destroyed at the seal).
    include_raw: bool


class LimitsSection(_Section):
    max_image_pixels: int = Field(ge=1_000_000)
    max_file_bytes: int = Field(ge=1024)


class RosterSection(_Section):
    # The financial years the unit scans ACRs for ("2017-18", ...): expected files = active roster x these
    # (the progress dashboard), and the default of `cover-sheets --roster` without --period(s).
    periods: list[str] = Field(max_length=60)
    # A roster file larger than this is refused (a unit's staff list is a few hundred kilobytes).
    max_file_mb: int = Field(ge=1, le=200)

    @field_validator("periods")
    @classmethod
    def _periods(cls, v: list[str]) -> list[str]:
        from scanstation.errors import StateError
        from scanstation.roster.periods import parse_period

        out = []
        for text in v:
            try:
                period = parse_period(text)
            except StateError as e:
                raise ValueError(e.message) from e
            if not period.financial_year:
                raise ValueError(f"{text!r}: roster periods are financial years like 2019-20")
            out.append(period.label)
        if len(set(out)) != len(out):
            raise ValueError("a financial year is listed twice")
        return out


class ServiceSection(_Section):
    # The station service's Unix socket ("" = station.sock in the data directory).  Clients (kiosk UI,
    # CLI) connect here; the service checks each peer's credentials (SO_PEERCRED).
    socket: str
    # Besides the service's own user and root, members of this group may connect ("" = nobody else).
    client_group: str
    # Sessions end after this much idle time: at most 15 minutes (the ceiling), may be lowered.
    idle_minutes: float = Field(gt=0, le=15)
    # ...and at the latest this long after sign-in, busy or not.
    absolute_hours: float = Field(gt=0, le=12)


class VerificationSection(_Section):
    # The reasons a supervisor picks from for rescan, delete and return (free text is allowed too): Kofax
    # Capture's default QC notes and what an ACR file goes wrong with.
    reasons: list[str] = Field(min_length=1, max_length=50)

    @field_validator("reasons")
    @classmethod
    def _reasons(cls, v: list[str]) -> list[str]:
        cleaned = [r.strip() for r in v]
        if any(not r or len(r) > 80 for r in cleaned):
            raise ValueError("each reason must be 1 to 80 characters")
        return cleaned


class SignoffSection(_Section):
    # The unit head's DSC token through PKCS#11 (issue 15): the vendor's library (OpenSC's opensc-pkcs11.so for
    # ePass2003/HYP2003, libcastle.so.1.0.0, libwdpkcs_SignatureP11.so; SoftHSM2 in tests), the token by label
    # or serial, and the key's label on it ("" = the token's only signing key).
    pkcs11_module: str = ""
    token_label: str = Field(default="", max_length=32)
    token_serial: str = Field(default="", max_length=32)
    key_label: str = Field(default="", max_length=128)
    # PEM bundle of the roots a signer's certificate must chain to (the India CCA root in production).
    trust_roots: str = ""
    # RFC 3161 timestamp authority for PAdES B-T; "" = B-B.
    tsa_url: str = ""


_USB_ID = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{4}$")


class LockdownSection(_Section):
    # The kiosk's locks that the installer and the service apply (issue 17, docs/lockdown.md).
    # The device guard in the service: a storage device or a new (non-virtual) network interface that appears
    # while the service runs locks the station, is audited and alerts within a second.
    device_guard: bool = True
    # USB vendor:product ids (lower-case hex, "04c5:132e") of the station's scanners: the USBGuard policy allows
    # them by id, since many document scanners report vendor class ff rather than a scanner class.
    scanner_usb_ids: list[str] = Field(default_factory=list, max_length=16)

    @field_validator("scanner_usb_ids")
    @classmethod
    def _usb_ids(cls, v: list[str]) -> list[str]:
        for text in v:
            if not _USB_ID.match(text):
                raise ValueError(f"{text!r}: a USB id is vendor:product in lower-case hex, like \"04c5:132e\"")
        return v


class Config(_Section):
    station: StationSection
    keys: KeysSection
    scan: ScanSection
    pipeline: PipelineSection
    ocr: OcrSection
    portal: PortalSection
    upload: UploadSection
    limits: LimitsSection
    service: ServiceSection
    roster: RosterSection
    verification: VerificationSection
    signoff: SignoffSection = Field(default_factory=SignoffSection)
    lockdown: LockdownSection = Field(default_factory=LockdownSection)
    # Scan profiles by name; a station file adds its own or overrides an embedded one key by key.
    profiles: dict[str, ScanProfile] = Field(default_factory=dict)
    # where it came from, for messages; not part of the file
    source: str = "<embedded defaults>"

    @field_validator("profiles")
    @classmethod
    def _profile_names(cls, v: dict[str, ScanProfile]) -> dict[str, ScanProfile]:
        for name in v:
            if not _PROFILE_NAME.match(name):
                raise ValueError(f"profile name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)")
        return v

    @model_validator(mode="after")
    def _default_profile(self) -> Config:
        if self.scan.profile and self.scan.profile not in self.profiles:
            raise ValueError(f"scan.profile names no profile: {self.scan.profile!r} "
                             f"(defined: {', '.join(sorted(self.profiles)) or 'none'})")
        return self

    @property
    def data_dir(self) -> Path:
        return Path(os.path.expanduser(self.station.data_dir))

    @property
    def outbox_dir(self) -> Path:
        """Sealed packages waiting for upload (ciphertext and signatures only)."""
        return self.data_dir / "outbox"

    @property
    def socket_path(self) -> Path:
        return Path(os.path.expanduser(self.service.socket)) if self.service.socket else self.data_dir / "station.sock"

    @property
    def sealed_identity_path(self) -> Path:
        p = Path(os.path.expanduser(self.keys.sealed_identity))
        return p if p.is_absolute() else self.data_dir / p


def _defaults_text() -> str:
    return resources.files("scanstation").joinpath("defaults/station.toml").read_text("utf-8")


def _merge(base: dict[str, Any], over: dict[str, Any], where: str, prefix: str = "") -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        dotted = f"{prefix}{key}"
        if key not in base and prefix == "profiles.":
            # a station's own profile: a whole new table, validated by ScanProfile (unknown keys refused)
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: key '{dotted}' must be a table ([{dotted}])")
            out[key] = value
            continue
        if key not in base:
            raise ConfigError(f"{where}: unknown key '{dotted}' (known: {', '.join(sorted(base))})")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: key '{dotted}' must be a table ([{dotted}])")
            out[key] = _merge(base[key], value, where, dotted + ".")
        else:
            out[key] = value
    return out


def _validate(data: dict[str, Any], where: str) -> Config:
    try:
        return Config.model_validate({**data, "source": where})
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        more = f" (and {e.error_count() - 1} more problem(s))" if e.error_count() > 1 else ""
        raise ConfigError(f"{where}: key '{loc}': {first['msg']}{more}") from e


def load_config(path: Path | None = None) -> Config:
    """Embedded defaults, overlaid by ``path`` (or $SCANSTATION_CONFIG) when given."""
    base = tomllib.loads(_defaults_text())
    if path is None and os.environ.get(CONFIG_ENV):
        path = Path(os.environ[CONFIG_ENV])
    if path is None:
        return _validate(base, "<embedded defaults>")
    where = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as e:
        raise ConfigError(f"{where}: configuration file not found (run 'scanstation init' first)") from e
    except OSError as e:
        raise ConfigError(f"{where}: cannot read configuration file: {e.strerror}") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{where}: not UTF-8 text (byte {e.start})") from e
    try:
        user = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: not valid TOML: {e}") from e
    return _validate(_merge(base, user, where), where)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    s = str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{s}"'


def render_config(values: dict[str, dict[str, Any]]) -> str:
    """TOML text for a station file holding only the given (section -> key -> value) overrides."""
    lines = ["# ScanStation configuration (written by 'scanstation init'); defaults fill in the rest.", ""]
    for section, keys in values.items():
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in keys.items())
        lines.append("")
    return "\n".join(lines)


def merge_config_text(text: str, values: dict[str, dict[str, Any]], where: str) -> str:
    """The station file ``text`` with the given (section -> key -> value) settings set in it, everything else
    kept: its other settings, its comments and its layout.

    ``init`` writes into the configuration the Debian package installed (a conffile whose comments explain
    each line to the admin, and whose production paths must stay); tomlkit edits the document in place,
    which ``tomllib`` cannot (it only reads) and re-rendering would not (it drops the comments).
    """
    from collections.abc import MutableMapping

    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    try:
        doc = tomlkit.parse(text)
    except TOMLKitError as e:
        raise ConfigError(f"{where}: not valid TOML: {e}") from e
    for section, keys in values.items():
        table = doc.get(section)
        if table is None:
            table = tomlkit.table()
            doc[section] = table
        elif not isinstance(table, MutableMapping):
            raise ConfigError(f"{where}: [{section}] must be a table, not {type(table).__name__}")
        for key, value in keys.items():
            table[key] = value
    return tomlkit.dumps(doc)


def validate_text(path: Path, text: str) -> Config:
    """Validate TOML text as if it were the file at ``path`` (used by init before writing)."""
    user = tomllib.loads(text)
    return _validate(_merge(tomllib.loads(_defaults_text()), user, str(path)), str(path))

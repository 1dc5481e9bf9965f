"""The station's nftables ruleset: out to the portal only, nothing in (issue 17, docs/lockdown.md).

One table, ``inet scanstation``, whose base chains drop by default.  A packet must be accepted by every
base chain on its hook, so another table's ``accept`` (Debian's default /etc/nftables.conf, a tool's own
table) cannot open what this one drops.  Allowed:

* loopback (the service's socket is a Unix socket, but local TCP, e.g. a demo portal on 127.0.0.1, is fine);
* replies to connections the station opened (conntrack ``established,related``; ICMP errors about them,
  such as "packet too big", are ``related``);
* new TCP connections to the addresses the portal's host resolves to *when the ruleset is made*, on the
  portal's port; the same for the timestamp authority of sign-off (``signoff.tsa_url``) when set;
* DNS (UDP and TCP 53) to the resolvers of /etc/resolv.conf, only when one of those URLs names a host;
* with any destination at all: DHCP requests (the lease must be renewed or the station loses its address)
  and IPv6 neighbour discovery (without it no IPv6 packet reaches the next hop; conntrack does not track
  it), both limited to the link.

With no portal configured the ruleset allows loopback only.  Addresses are resolved once, here: when the
portal moves, ``scanstation lockdown apply`` must run again (docs/lockdown.md).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from scanstation.errors import ConfigError

RULESET_PATH = "etc/scanstation/firewall.nft"  # relative to the target root
# Loaded before the configured ruleset by scanstation-firewall.service, so that a missing or broken
# firewall.nft leaves the station closed rather than open.
CLOSED_RULESET_PATH = "usr/share/scanstation/firewall-closed.nft"

_DEFAULT_PORTS = {"https": 443, "http": 80}

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """A URL the station connects to, and the configuration setting it comes from (for messages)."""

    setting: str
    url: str
    host: str
    port: int

    @property
    def is_name(self) -> bool:
        return _literal(self.host) is None


@dataclasses.dataclass(frozen=True)
class Destination:
    endpoint: Endpoint
    addresses: tuple[Address, ...]


@dataclasses.dataclass(frozen=True)
class Ruleset:
    text: str
    destinations: tuple[Destination, ...]
    resolvers: tuple[Address, ...]

    @property
    def allowed_addresses(self) -> list[Address]:
        """Every address the station may open a connection to (for the service's IPAddressAllow=)."""
        out: list[Address] = []
        for d in self.destinations:
            out += [a for a in d.addresses if a not in out]
        out += [a for a in self.resolvers if a not in out]
        return out


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def parse_endpoint(setting: str, url: str) -> Endpoint | None:
    """The host and port of ``url`` (None when empty); ConfigError naming the setting and URL otherwise."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a port that is not a number in 0-65535
    except ValueError as e:
        raise ConfigError(f"{setting} {url!r}: not a valid URL ({e})") from None
    if parts.scheme not in _DEFAULT_PORTS:
        raise ConfigError(f"{setting} {url!r}: not an https:// (or http://) URL, so no firewall rule can be made "
                          "for it")
    host = parts.hostname
    if not host:
        raise ConfigError(f"{setting} {url!r}: the URL names no host")
    if parts.username or parts.password:
        raise ConfigError(f"{setting} {url!r}: a URL with credentials is refused")
    if port == 0:
        raise ConfigError(f"{setting} {url!r}: port 0")
    if "%" in host:
        raise ConfigError(f"{setting} {url!r}: a link-local address with a zone cannot be a firewall rule")
    return Endpoint(setting, url, host, port or _DEFAULT_PORTS[parts.scheme])


def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses as this machine resolves them now (getaddrinfo: /etc/hosts, then DNS)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


def read_resolvers(resolv_conf: Path) -> list[Address]:
    """The ``nameserver`` lines of a resolv.conf (zone ids dropped: nft matches the address alone)."""
    out: list[Address] = []
    try:
        lines = resolv_conf.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return out
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            addr = _literal(fields[1].split("%", 1)[0])
            if addr is not None and addr not in out:
                out.append(addr)
    return out


def upstream_resolvers(resolv_confs: Sequence[Path]) -> list[Address]:
    """The resolvers the machine's DNS traffic goes to.

    The first file whose resolvers are not all on loopback wins.  A local stub (systemd-resolved's 127.0.0.53,
    dnsmasq) forwards to servers named elsewhere: systemd-resolved lists them in
    /run/systemd/resolve/resolv.conf, which is why more than one file is read.
    """
    for path in resolv_confs:
        found = read_resolvers(path)
        if found and not all(a.is_loopback for a in found):
            return [a for a in found if not a.is_loopback]
    return []


def resolve_endpoint(endpoint: Endpoint, resolve: Resolver) -> Destination:
    literal = _literal(endpoint.host)
    if literal is not None:
        return Destination(endpoint, (literal,))
    try:
        found = resolve(endpoint.host, endpoint.port)
    except OSError as e:
        raise ConfigError(f"{endpoint.setting} {endpoint.url!r}: cannot resolve {endpoint.host!r} now ({e}); the "
                          "firewall allows addresses, so the name must resolve when the ruleset is made") from None
    addresses: list[Address] = []
    for text in found:
        addr = _literal(text.split("%", 1)[0])
        if addr is not None and addr not in addresses:
            addresses.append(addr)
    if not addresses:
        raise ConfigError(f"{endpoint.setting} {endpoint.url!r}: {endpoint.host!r} resolves to no address")
    return Destination(endpoint, tuple(addresses))


def _set(addresses: Sequence[Address]) -> str:
    return "{ " + ", ".join(str(a) for a in addresses) + " }"


GENERATED = "written by `scanstation lockdown apply` (docs/lockdown.md); do not edit: the next apply rewrites it."
SHIPPED = ("shipped with the package (docs/lockdown.md): loaded first at boot, so that the station stays closed if "
           "the configured ruleset is missing or broken.")


def build_ruleset(destinations: Sequence[Destination], resolvers: Sequence[Address] = (), *,
                  origin: str = GENERATED) -> Ruleset:
    """The ruleset's text for these destinations.  ``resolvers`` are used only when a destination is a name."""
    # A destination on this machine (a demo portal on 127.0.0.1, "localhost") needs no rule: loopback is open.
    remote = [d for d in destinations if not all(a.is_loopback for a in d.addresses)]
    named = [d for d in remote if d.endpoint.is_name]
    dns = tuple(resolvers) if named else ()
    if named and not dns:
        names = ", ".join(f"{d.endpoint.setting} {d.endpoint.url!r}" for d in named)
        raise ConfigError(f"{names}: names a host, but no DNS resolver is known (no nameserver in resolv.conf "
                          "other than loopback); give the URL as an address, or configure a resolver")
    head = [
        "#!/usr/sbin/nft -f",
        *_wrap(f"ScanStation's firewall, {origin}  Loaded by scanstation-firewall.service before the network "
               "comes up."),
    ]
    for d in destinations:
        head.append(f"# {d.endpoint.setting} = {d.endpoint.url} -> {', '.join(map(str, d.addresses))} "
                    f"port {d.endpoint.port}")
    if dns:
        head.append(f"# DNS to {', '.join(map(str, dns))} (from resolv.conf at apply time): a URL names a host")
    if not remote:
        head.append("# No destination off this machine: loopback only.")
    out_rules: list[str] = []
    in_rules: list[str] = []
    if remote:
        in_rules += [
            "ct state established,related accept",
            "# IPv6 neighbour discovery, on the link only (hop limit 255): not tracked by conntrack",
            "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } ip6 hoplimit 255 accept",
        ]
        out_rules.append("ct state established,related accept")
        for d in remote:
            v4 = [a for a in d.addresses if a.version == 4]
            v6 = [a for a in d.addresses if a.version == 6]
            out_rules.append(f"# {d.endpoint.setting}")
            if v4:
                out_rules.append(f"ip daddr {_set(v4)} tcp dport {d.endpoint.port} accept")
            if v6:
                out_rules.append(f"ip6 daddr {_set(v6)} tcp dport {d.endpoint.port} accept")
        if dns:
            out_rules.append("# DNS")
            for family, version in (("ip", 4), ("ip6", 6)):
                addrs = [a for a in dns if a.version == version]
                if addrs:
                    out_rules.append(f"{family} daddr {_set(addrs)} udp dport 53 accept")
                    out_rules.append(f"{family} daddr {_set(addrs)} tcp dport 53 accept")
        out_rules += [
            "# DHCP lease renewals (v4, v6) and IPv6 neighbour discovery: the station keeps its address",
            "udp sport 68 udp dport 67 accept",
            "udp sport 546 udp dport 547 accept",
            "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } ip6 hoplimit 255 accept",
        ]

    def chain(name: str, hook: str, rules: list[str]) -> list[str]:
        body = [f"\t\ttype filter hook {hook} priority filter; policy drop;", *(f"\t\t{r}" for r in rules)]
        return [f"\tchain {name} {{", *body, "\t}"]

    lines = [
        *head,
        "",
        "# Replace the table in one transaction: declare it (so that the delete cannot fail), delete, define.",
        "table inet scanstation",
        "delete table inet scanstation",
        "table inet scanstation {",
        *chain("input", "input", ['iif "lo" accept', *in_rules]),
        *chain("output", "output", ['oif "lo" accept', *out_rules]),
        *chain("forward", "forward", []),
        "}",
    ]
    return Ruleset("\n".join(lines) + "\n", tuple(destinations), dns)


def endpoints_of(portal_url: str, tsa_url: str = "") -> list[Endpoint]:
    found = [parse_endpoint("portal.url", portal_url), parse_endpoint("signoff.tsa_url", tsa_url)]
    return [e for e in found if e is not None]


def ruleset_for(portal_url: str, tsa_url: str = "", *, resolve: Resolver = system_resolver,
                resolv_confs: Sequence[Path] = (Path("/etc/resolv.conf"),)) -> Ruleset:
    """The ruleset for a station's URLs, resolving names now with ``resolve``."""
    destinations = [resolve_endpoint(e, resolve) for e in endpoints_of(portal_url, tsa_url)]
    return build_ruleset(destinations, upstream_resolvers(resolv_confs))


def closed_ruleset() -> str:
    """The ruleset with no destination (loopback only): also shipped as the fallback loaded first at boot."""
    return build_ruleset([], origin=SHIPPED).text


def _wrap(text: str, width: int = 108) -> list[str]:
    import textwrap

    return ["# " + line for line in textwrap.wrap(text, width)]

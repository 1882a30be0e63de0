"""Webhook rules, pure: event types, subscription URLs, retry schedule."""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass
from urllib.parse import urlsplit

from iotfin.core.errors import ValidationError

EVENT_TYPES: dict[str, str] = {
    "decision.made": "a credit decision was made on an application",
    "alert.raised": "post-loan monitoring raised an alert",
    "alert.escalated": "a post-loan monitoring alert moved to a higher tier",
    "alert.resolved": "an officer resolved a post-loan monitoring alert",
    "repayment.due": "a repayment instalment falls due",
    "loan.disbursed": "a loan was paid out",
    "offer.accepted": "the enterprise accepted a loan offer after reading its key facts",
    "repayment.received": "a repayment was received and applied to a loan",
    "repayment.overdue": "an instalment was not paid when due",
    "consent.granted": "an enterprise granted a consent",
    "consent.withdrawn": "an enterprise withdrew a consent",
    "complaint.updated": "a complaint changed status",
    "hardship.decided": "a hardship request was approved or declined",
    "voucher.paid": "the core enterprise paid (part of) a digital debt voucher",
    "voucher.late": "a digital debt voucher is past maturity and not fully paid",
    "ping": "a test event sent on request",
}

MAX_ATTEMPTS = 8


def check_event_types(types: list[str]) -> list[str]:
    unknown = sorted(set(types) - set(EVENT_TYPES))
    if unknown or not types:
        raise ValidationError(f"event types must be among {', '.join(EVENT_TYPES)} (got {', '.join(types) or 'none'})")
    return sorted(set(types))


@dataclass(frozen=True)
class Allowlist:
    """The operator's exceptions to the SSRF rule (setting `webhook_allow_hosts`): host names, or IP
    networks in CIDR form, that webhook URLs may reach although they are not public addresses, and
    over plain http. Empty by default; tests and demos list their local receiver (`127.0.0.1`)."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> Allowlist:
        hosts: set[str] = set()
        networks = []
        for item in (text or "").replace(";", ",").split(","):
            item = item.strip().lower()
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                hosts.add(item.rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts or (ip_of(host) is not None and self.allows_address(ip_of(host)))

    def allows_address(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(ip.version == n.version and ip in n for n in self.networks)


def public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """A globally routable unicast address: not private, loopback, link-local (incl. the cloud
    metadata address 169.254.169.254), carrier-grade NAT, multicast, reserved or unspecified; an
    IPv4-mapped or NAT64-embedded IPv6 address is judged by its IPv4 address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return public(ip.ipv4_mapped)
        if ip in _NAT64:
            return public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return ip.is_global and not ip.is_multicast


def check_url(url: str, allow: Allowlist = Allowlist()) -> str:
    """An absolute http(s) URL without credentials; https unless the host is on the allowlist; an
    IP-literal host must be a public address unless allowlisted. Host names are resolved and checked
    by `check_addresses` (at subscription and again at every delivery)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValidationError("a webhook URL is an absolute http(s) URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValidationError("a webhook URL is an absolute http(s) URL")
    if parts.username or parts.password:
        raise ValidationError("a webhook URL carries no credentials: deliveries are signed instead")
    host = parts.hostname
    allowed = allow.allows_host(host)
    if parts.scheme == "http" and not allowed:
        raise ValidationError("a webhook URL must use https (plain http only to a host on the operator's allowlist)")
    ip = ip_of(host)
    if ip is not None and not allowed and not public(ip):
        raise ValidationError(f"a webhook URL may not point at a private, loopback, link-local or reserved address ({ip})")
    if port == 0:
        raise ValidationError("a webhook URL needs a real port")
    return url


def check_addresses(host: str, addresses: list[str], allow: Allowlist = Allowlist()) -> None:
    """Every address the host resolves to must be public (or the host or address allowlisted):
    one private answer among public ones is refused, since the client could pick it."""
    if allow.allows_host(host):
        return
    for text in addresses:
        ip = ip_of(text)
        if ip is None or (not public(ip) and not allow.allows_address(ip)):
            raise ValidationError(f"webhook host {host} resolves to a non-public address ({text})")


def ip_of(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def backoff_s(attempt: int, base_s: float = 2.0, cap_s: float = 3600.0, rng: random.Random | None = None) -> float:
    """Delay before retry number `attempt` (1 = after the first failure): exponential with "equal
    jitter" — half the exponential step fixed, half random — so retries of many deliveries that
    failed together spread out, yet each one still waits at least half its step."""
    step = min(cap_s, base_s * 2 ** (attempt - 1))
    return step / 2 + (rng or random).uniform(0, step / 2)

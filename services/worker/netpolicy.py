"""The browser's network policy: no request (navigation or sub-resource) to a loopback, private,
link-local, cloud-metadata or otherwise non-public address unless allow-listed.

Checked on every request the run's browser context makes (Playwright routing), after resolving the
host name, so a name that resolves to 127.0.0.1 is caught like the address itself. Allow-list
entries (SPARKPILOT_BROWSER_ALLOW_PRIVATE) are host names matched exactly or networks in CIDR
notation, or host:port; the host and port of SPARKPILOT_MINIWOB_URL (the gateway, which serves the
benchmark pages) are always allowed.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from urllib.parse import urlsplit

from sparkpilot.settings import WorkerSettings

CHECKED_SCHEMES = ("http", "https", "ws", "wss", "ftp")
_POLICIES: dict[tuple[str, ...], "NetworkPolicy"] = {}
DNS_CACHE_S = 30.0
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def kind_of(addr: Address) -> str | None:
    """Why an address is not public (None: it is)."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    for attr, kind in (("is_loopback", "loopback"), ("is_link_local", "link-local (cloud metadata lives here)"),
                       ("is_private", "private"), ("is_multicast", "multicast"), ("is_unspecified", "unspecified"),
                       ("is_reserved", "reserved")):
        if getattr(addr, attr):
            return kind
    return None if addr.is_global else "non-public"


class NetworkPolicy:
    """Decides, per URL, whether the browser may fetch it."""

    def __init__(self, allow: list[str]) -> None:
        self.hosts = {a.strip().lower() for a in allow if a.strip() and "/" not in a}
        self.networks = [ipaddress.ip_network(a.strip(), strict=False) for a in allow if "/" in a]
        self._dns: dict[str, tuple[float, list[Address]]] = {}
        self._lock = threading.Lock()

    def _resolve(self, host: str) -> list[Address]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        with self._lock:
            cached = self._dns.get(host)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError):
            return []  # the browser cannot reach it either
        addrs = sorted({ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}, key=str)
        with self._lock:
            self._dns[host] = (time.monotonic() + DNS_CACHE_S, addrs)
        return addrs

    def check(self, url: str) -> str | None:
        """Why `url` is blocked, or None when the browser may fetch it."""
        parts = urlsplit(url)
        if parts.scheme not in CHECKED_SCHEMES or not parts.hostname:
            return None
        host = parts.hostname.lower()
        port = parts.port or {"https": 443, "wss": 443, "ftp": 21}.get(parts.scheme, 80)
        if host in self.hosts or f"{host}:{port}" in self.hosts:
            return None
        for addr in self._resolve(host):
            if any(addr in net for net in self.networks):
                continue
            kind = kind_of(addr)
            if kind:
                what = host if host == str(addr) else f"{host} resolves to {addr}, which"
                return (f"blocked by the network policy: {url[:200]} ({what} is a {kind} address; "
                        "allow it with SPARKPILOT_BROWSER_ALLOW_PRIVATE)")
        return None


def network_policy(settings: WorkerSettings) -> NetworkPolicy:
    """The process's policy for these settings (its DNS cache shared by the runs)."""
    bench = urlsplit(settings.miniwob_url)
    allow = tuple(settings.browser_allow_private) + ((f"{bench.hostname}:{bench.port or 80}",) if bench.hostname else ())
    if allow not in _POLICIES:
        _POLICIES[allow] = NetworkPolicy(list(allow))
    return _POLICIES[allow]

"""The browser's network policy inside the worker: no request to a loopback, private, link-local,
cloud-metadata or otherwise non-public address unless allow-listed (sparkpilot/egress.py).

The egress proxy (services/egress) is the gate: it sees every connection Chromium makes, redirect
hops and WebSockets included. This in-browser check (Playwright routing, on the requests Playwright
can route) refuses the same addresses first, so the model reads a clear reason and the block is
audited. Allow-list entries (SPARKPILOT_BROWSER_ALLOW_PRIVATE) are host names matched exactly or
networks in CIDR notation, or host:port; the host and port of SPARKPILOT_MINIWOB_URL (the gateway,
which serves the benchmark pages) are always allowed.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time

from sparkpilot.egress import Address, allow_list, kind_of
from sparkpilot.settings import WorkerSettings
from sparkpilot.urls import parse

CHECKED_SCHEMES = ("http", "https", "ws", "wss", "ftp")
_POLICIES: dict[tuple[str, ...], "NetworkPolicy"] = {}
DNS_CACHE_S = 30.0


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
        parts = parse(url)
        if parts is None or parts["protocol"] not in CHECKED_SCHEMES or not parts["hostname"]:
            return None
        host = parts["hostname"].lower().strip("[]")
        port = int(parts["port"] or {"https": 443, "wss": 443, "ftp": 21}.get(parts["protocol"], 80))
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
    allow = tuple(allow_list(settings))
    if allow not in _POLICIES:
        _POLICIES[allow] = NetworkPolicy(list(allow))
    return _POLICIES[allow]

"""The browser's egress policy, shared by the egress proxy (services/egress, Squid) and the worker's in-browser route.

The proxy is the gate: Chromium is launched with it as its only way out (navigations, sub-resources,
every hop of a redirect, WebSockets, downloads; WebRTC may not use UDP outside it). Squid resolves a
name once, checks the resolved address against NONPUBLIC (`dst` ACLs) and connects to that address,
so there is no window for DNS rebinding. The worker's route refuses the same addresses first, for a
clear step error and an audit entry.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from sparkpilot.settings import CommonSettings

# Address blocks no browser run may reach unless allow-listed (IANA special-purpose registries), and why.
NONPUBLIC: dict[str, str] = {
    "0.0.0.0/8": "unspecified", "10.0.0.0/8": "private", "100.64.0.0/10": "private (carrier-grade NAT)",
    "127.0.0.0/8": "loopback", "169.254.0.0/16": "link-local (cloud metadata lives here)", "172.16.0.0/12": "private",
    "192.0.0.0/24": "reserved", "192.0.2.0/24": "reserved", "192.168.0.0/16": "private",
    "198.18.0.0/15": "reserved", "198.51.100.0/24": "reserved", "203.0.113.0/24": "reserved",
    "224.0.0.0/4": "multicast", "240.0.0.0/4": "reserved",
    "::/128": "unspecified", "::1/128": "loopback", "64:ff9b::/96": "private (NAT64)", "100::/64": "reserved",
    "2001:db8::/32": "reserved", "fc00::/7": "private", "fe80::/10": "link-local (cloud metadata lives here)",
    "ff00::/8": "multicast",
}
_NETWORKS = [(ipaddress.ip_network(net), kind) for net, kind in NONPUBLIC.items()]
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def kind_of(addr: Address) -> str | None:
    """Why an address is not public (None: it is)."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    for net, kind in _NETWORKS:
        if addr.version == net.version and addr in net:
            return kind
    return None if addr.is_global else "non-public"


def allow_list(settings: CommonSettings) -> list[str]:
    """SPARKPILOT_BROWSER_ALLOW_PRIVATE plus the host:port of SPARKPILOT_MINIWOB_URL (the gateway's benchmark pages)."""
    bench = urlsplit(settings.miniwob_url)
    return [*settings.browser_allow_private, *([f"{bench.hostname}:{bench.port or 80}"] if bench.hostname else [])]


def squid_config(allow: list[str], host: str, port: int, folder: str, user: str | None) -> str:
    """A Squid configuration that forwards only to public addresses, or to the allow-listed hosts and networks."""
    lines = [
        "# Written by `python -m services.egress` from the settings; edits are overwritten at the next start.",
        f"http_port {host}:{port}",
        "acl CONNECT method CONNECT",
        "acl SSL_ports port 443",
        "acl Safe_ports port 80 443 1025-65535",
        f"acl nonpublic dst {' '.join(NONPUBLIC)}",
    ]
    allows = []
    for n, entry in enumerate(allow):
        entry = entry.strip().lower()
        if "/" in entry:
            lines.append(f"acl allow{n} dst {entry}")
            allows.append(f"http_access allow allow{n}")
            continue
        name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        lines.append(f"acl allow{n} dstdomain -n {name}")
        if entry_port:
            lines.append(f"acl allow{n}_port port {entry_port}")
            allows.append(f"http_access allow allow{n} allow{n}_port")
        else:
            allows.append(f"http_access allow allow{n}")
    lines += [
        "http_access deny manager",
        *allows,
        "http_access deny nonpublic",
        "http_access deny CONNECT !SSL_ports",
        "http_access deny !Safe_ports",
        "http_access allow all",  # it listens on the worker's network only; the ACLs above are the policy
        # A request is never tagged with who asked, nor cached (runs are isolated from each other).
        "via off", "forwarded_for delete", "httpd_suppress_version_string on", "cache deny all", "cache_mem 8 MB",
        "positive_dns_ttl 30 seconds", "negative_dns_ttl 5 seconds",
        "shutdown_lifetime 1 seconds", "pid_filename none", "logfile_rotate 0", "pinger_enable off",
        f"access_log stdio:{folder}/access.log", f"cache_log {folder}/cache.log", "cache_store_log none",
        f"coredump_dir {folder}",
        *([f"cache_effective_user {user}"] if user else []),
    ]
    return "\n".join(lines) + "\n"

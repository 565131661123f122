"""How every process here launches Debian's Chromium: the flags that work offline and headless, and what the
egress proxy's answers mean."""

from __future__ import annotations

# No --no-sandbox: Playwright adds it unless a launch asks for chromium_sandbox (the worker's always does,
# services/worker/browser.py); the bench and tests that launch their own Chromium as root go without.
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # WebRTC may not send UDP (STUN, media) outside the proxy: a page cannot reach a private address over it.
    "--webrtc-ip-handling-policy=disable_non_proxied_udp",
]

# Squid's X-Squid-Error codes, said the way a person (and the model) reads them.
_PROXY_ERRORS = {
    "ERR_ACCESS_DENIED": "blocked by the egress proxy (a non-public address, or a port it does not open)",
    "ERR_CONNECT_FAIL": "the site refused the connection (ERR_CONNECTION_REFUSED)",
    "ERR_DNS_FAIL": "the host name did not resolve (ERR_NAME_NOT_RESOLVED)",
    "ERR_READ_TIMEOUT": "the site did not answer in time",
    "ERR_CONNECT_TIMEOUT": "the site did not answer in time",
}


def proxy_args(server: str) -> list[str]:
    """Chromium's flags for sending every connection through `server`, loopback included (Chromium skips it by default)."""
    return [f"--proxy-server={server}", "--proxy-bypass-list=<-loopback>"]


def proxy_failure(headers: dict[str, str] | None) -> str | None:
    """Why the egress proxy, not the site, answered a navigation (None: the site answered)."""
    code = (headers or {}).get("x-squid-error", "")
    if not code:
        return None
    name = code.split()[0]
    return f"{_PROXY_ERRORS.get(name, 'the egress proxy could not fetch it')} [{code}]"

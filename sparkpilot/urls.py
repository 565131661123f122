"""Where the browser may go: only http(s) (and about:blank), judged as Chromium reads a URL (WHATWG rules).

One policy for every way a URL reaches the browser: a run's start URL (gateway), the `goto` action (agent),
and every request Chromium makes (the worker's route sees Chromium's canonical URL). Python's `urlsplit`
is not used to judge a URL: it reads `http://127.0.0.1:8000\\@example.com/` as a request to example.com,
Chromium as one to 127.0.0.1.
"""

from __future__ import annotations

import ada_url

from sparkpilot.errors import InvalidInput

WEB_SCHEMES = ("http", "https")
BLANK = "about:blank"


def parse(url: str) -> dict | None:
    """The URL's WHATWG parts (protocol without ':', hostname, href…), or None if no browser could read it."""
    try:
        parts = dict(ada_url.parse_url(url))
    except ValueError:
        return None
    parts["protocol"] = parts["protocol"].rstrip(":")
    return parts


def navigation_refusal(url: str) -> str | None:
    """Why the browser may not navigate to `url` (None: it may): only http(s) with a host, or about:blank."""
    if url.strip() == BLANK:
        return None
    parts = parse(url)
    if parts is None:
        return f"{url[:200]!r} is not a URL"
    if parts["protocol"] not in WEB_SCHEMES:
        return f"only http(s) pages may be opened, not {parts['protocol']}: URLs ({url[:200]})"
    if not parts["hostname"]:
        return f"{url[:200]!r} has no host"
    return None


def host_of(url: str) -> str:
    """The host Chromium would contact for `url` (lower case, IDNA), or '' when there is none."""
    parts = parse(url)
    return (parts["hostname"] or "").lower().strip("[]") if parts else ""


ANY_SITE = "*"  # in allowed_domains: every public site


def url_allowed(url: str, allowed: list[str]) -> bool:
    """True if `url`'s host is an allowed domain (or a subdomain), or it starts with an allowed prefix.

    "*" allows every site (the proxy still refuses private addresses); [] allows none: a run without a
    start URL or domains is allowed the first site it opens (agent/loop.py), never "everything".
    """
    if ANY_SITE in allowed:
        return True
    if not allowed:
        return False
    parts = parse(url)
    if parts is None:
        return False
    host, href = (parts["hostname"] or "").lower().rstrip("."), parts["href"]
    for rule in allowed:
        rule = rule.lower()
        if "://" in rule:
            canonical = parse(rule)
            if href.startswith(canonical["href"] if canonical else rule):
                return True
        elif host and (host == rule or host.endswith("." + rule)):
            return True
    return False


def check_start_url(url: str) -> str:
    """Return the start URL, or raise InvalidInput saying why it is refused (only http(s) with a host)."""
    parts = parse(url)
    if parts is None or not url.strip():
        raise InvalidInput(f"start_url {url!r} is not an absolute URL (http:// or https://)", code="invalid_url")
    if parts["protocol"] not in WEB_SCHEMES:
        raise InvalidInput(f"start_url scheme {parts['protocol']!r} is not allowed; only http(s) pages may be opened",
                           code="url_not_allowed")
    if not parts["hostname"]:
        raise InvalidInput(f"start_url {url!r} has no host", code="invalid_url")
    return url

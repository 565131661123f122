"""Start-URL policy: http(s) anywhere, other schemes only under an allow-listed prefix."""

from __future__ import annotations

import posixpath
from urllib.parse import urlsplit, urlunsplit

from sparkpilot.errors import InvalidInput

WEB_SCHEMES = ("http", "https")


def normalize(url: str) -> str:
    """Collapse '..' and '.' in the path so an allow-listed prefix cannot be escaped."""
    parts = urlsplit(url)
    path = posixpath.normpath(parts.path) if parts.path else parts.path
    if parts.path.endswith("/") and not path.endswith("/"):
        path += "/"
    return urlunsplit((parts.scheme.lower(), parts.netloc, path, parts.query, parts.fragment))


def check_start_url(url: str, allowed_prefixes: list[str]) -> str:
    """Return the normalized URL, or raise InvalidInput saying why it is refused."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in WEB_SCHEMES:
        if not parts.hostname:
            raise InvalidInput(f"start_url {url!r} has no host", code="invalid_url")
        return url
    if not scheme:
        raise InvalidInput(f"start_url {url!r} is not an absolute URL (http:// or https://)", code="invalid_url")
    clean = normalize(url)
    if any(clean.startswith(normalize(p)) for p in allowed_prefixes):
        return clean
    raise InvalidInput(
        f"start_url scheme {scheme!r} is not allowed; use http(s) or a prefix in SPARKPILOT_ALLOWED_URL_PREFIXES",
        code="url_not_allowed",
    )

"""Logging for every process, at SPARKPILOT_LOG_LEVEL."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s %(processName)s: %(message)s"


def configure_logging(level: str) -> None:
    """Send records at `level` and above to stderr in one format (idempotent)."""
    root = logging.getLogger()
    if not any(getattr(h, "_sparkpilot", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(FORMAT))
        handler._sparkpilot = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    # Third-party chatter stays at WARNING unless we debug.
    for noisy in ("httpx", "httpcore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)

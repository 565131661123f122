"""The webhook: a POST to SPARKPILOT_WEBHOOK_URL when a run starts waiting for a person."""

from __future__ import annotations

import logging
from typing import Any

import httpx

log = logging.getLogger(__name__)


def notify(url: str, payload: dict[str, Any], timeout_s: float = 5.0) -> bool:
    """POST `payload` as JSON; a failure is logged, never raised (the run waits either way)."""
    if not url:
        return False
    try:
        resp = httpx.post(url, json=payload, timeout=timeout_s)
    except httpx.HTTPError as exc:
        log.warning("webhook %s unreachable: %s", url, exc)
        return False
    if resp.status_code >= 400:
        log.warning("webhook %s answered HTTP %s", url, resp.status_code)
        return False
    return True

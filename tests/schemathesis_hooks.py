"""Schemathesis hooks for tests/integration/test_schemathesis.py: every error answer is in the API's envelope."""

from __future__ import annotations

import schemathesis


@schemathesis.check
def error_envelope(ctx, response, case) -> None:  # noqa: ANN001, ARG001
    """A 4xx/5xx JSON answer is {"error": {"type", "message", "code"}}."""
    if response.status_code < 400:
        return
    if response.status_code == 400 and response.text == "Invalid HTTP request received.":
        # uvicorn's own parser refusing a request line past its limit (~64 KB), before any app code runs:
        # the one error outside the envelope (README: API).
        return
    try:
        body = response.json()
    except ValueError as exc:
        raise AssertionError(f"{response.status_code} without a JSON body") from exc
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not all(isinstance(error.get(k), str) and error.get(k) for k in ("type", "message", "code")):
        raise AssertionError(f"{response.status_code} not in the error envelope: {str(body)[:300]}")

"""Rate limits per token and per IP on a private gateway with small limits: 429, Retry-After, the envelope."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path

import httpx

from tests.helpers import Stack, ws_collect


def test_limits_per_token_and_per_ip(base_env: dict[str, str]) -> None:
    from tests.helpers import migrated

    folder = Path(tempfile.mkdtemp(prefix="sparkpilot-ratelimit-"))
    env = dict(base_env, DATABASE_URL=f"sqlite:///{folder / 'rl.db'}", SPARKPILOT_KEY_PREFIX=f"sptest-rl-{uuid.uuid4().hex[:8]}",
               SPARKPILOT_RATE_LIMIT_PER_TOKEN="4/minute", SPARKPILOT_RATE_LIMIT_PER_IP="7/minute")
    migrated(env["DATABASE_URL"])
    stack = Stack(env=env, logdir=folder)
    stack.start_gateway()
    try:
        admin = {"Authorization": f"Bearer {stack.token}"}
        made = httpx.post(stack.base_url + "/api/v1/admin/tokens", headers=admin, json={"user": "rl"})
        assert made.status_code == 201  # request 1 of the admin token, 1 of the IP
        other = {"Authorization": f"Bearer {made.json()['token']}"}
        codes = [httpx.get(stack.base_url + "/api/v1/runs", headers=admin).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]  # the token's 4 per minute, the 4th after the POST
        limited = httpx.get(stack.base_url + "/api/v1/runs", headers=admin)
        assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limited"
        assert limited.json()["error"]["type"] == "rate_limited" and "token" in limited.json()["error"]["message"]
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        # Another token from the same IP still works, until the IP's 7 per minute are spent (4 so far: a
        # request refused for its token is not counted against its IP).
        codes = [httpx.get(stack.base_url + "/api/v1/runs", headers=other).status_code for _ in range(3)]
        ip_limited = httpx.get(stack.base_url + "/api/v1/runs", headers=other)
        assert codes == [200, 200, 200]
        assert ip_limited.status_code == 429 and "this ip" in ip_limited.json()["error"]["message"]
        # A client cannot claim another address: X-Forwarded-For is not trusted, not even from loopback.
        spoofed = httpx.get(stack.base_url + "/api/v1/runs", headers={"X-Forwarded-For": "10.9.9.9"})
        assert spoofed.status_code == 429 and "this ip" in spoofed.json()["error"]["message"]
        # A WebSocket handshake counts too: past the limit it is closed with 4429.
        ws_url = stack.base_url.replace("http", "ws") + "/api/v1/runs/any/ws"
        assert asyncio.run(ws_collect(ws_url, made.json()["token"]))[1] == 4429
        # Unauthenticated requests count per IP too; health and metrics are never limited.
        assert httpx.get(stack.base_url + "/api/v1/runs").status_code == 429
        assert httpx.get(stack.base_url + "/health").status_code == 200
        assert httpx.get(stack.base_url + "/metrics", headers=admin).status_code != 429
    finally:
        stack.stop()

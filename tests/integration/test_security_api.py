"""Inputs that used to answer 500 (or worse) against the real gateway: each is a clear 4xx in the envelope now,
and the dashboard carries the headers that keep injected text from running as code."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import websockets

from tests.helpers import FINISH, wait_terminal, ws_collect

pytestmark = pytest.mark.security


def _envelope(resp: httpx.Response, status: int, code: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"type", "message", "code"}
    if code:
        assert err["code"] == code, err
    return err


@pytest.fixture(scope="module")
def done_run(api: httpx.Client) -> str:
    run = api.post("/api/v1/runs", json={"task": "files", **FINISH}).json()
    wait_terminal(api, run["id"])
    return run["id"]


def test_file_paths_that_no_file_system_holds_are_422(api: httpx.Client, done_run: str) -> None:
    _envelope(api.get(f"/api/v1/runs/{done_run}/files/%00"), 422, "nul_character")
    _envelope(api.get(f"/api/v1/runs/{done_run}/files/a%00b.txt"), 422, "nul_character")
    _envelope(api.get(f"/api/v1/runs/{done_run}/files/{'a' * 300}"), 422, "bad_path")
    _envelope(api.get(f"/api/v1/runs/{done_run}/files/{'/'.join(['abc'] * 400)}"), 422, "bad_path")


def test_an_overlong_version_number_is_422_not_an_overflow(user_api: httpx.Client) -> None:
    body = {"task": "t", "model": "a@v99999999999999999999", **FINISH}
    _envelope(user_api.post("/api/v1/runs", json=body), 422, "adapter_ref")


def test_nul_in_any_text_field_is_refused_before_the_database(api: httpx.Client) -> None:
    before = api.get("/api/v1/runs", params={"limit": 1}).json()
    for body in ({"task": "t\u0000x", **FINISH},
                 {"task": "t", "policy": "replay", "actions": [{"name": "finish", "answer": "x\u0000"}]},
                 {"task": "t", **FINISH, "allowed_domains": ["a\u0000.test"]}):
        _envelope(api.post("/api/v1/runs", json=body), 422, "nul_character")
    assert api.get("/api/v1/runs", params={"limit": 1}).json() == before  # nothing was stored
    _envelope(api.get("/api/v1/runs", params={"q": "a\u0000"}), 422, "nul_character")


def test_a_websocket_after_past_the_database_integer_closes_4422(stack, done_run: str) -> None:  # noqa: ANN001
    url = stack.base_url.replace("http", "ws") + f"/api/v1/runs/{done_run}/ws?after=99999999999999999999"
    assert asyncio.run(ws_collect(url, stack.token))[1] == 4422


def test_slash_redirects_do_not_repeat_the_host_header(stack) -> None:  # noqa: ANN001
    r = httpx.get(stack.base_url + "/api/v1/runs/?limit=1", headers={"Host": "localhost",
                                                                      "Authorization": f"Bearer {stack.token}"})
    assert r.status_code == 307 and r.headers["location"] == "/api/v1/runs?limit=1", r.headers


def test_a_host_header_outside_the_trusted_hosts_is_400(stack) -> None:  # noqa: ANN001
    auth = {"Authorization": f"Bearer {stack.token}"}
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example"):
        err = _envelope(httpx.get(stack.base_url + "/api/v1/runs", headers={**auth, "Host": host}), 400, "untrusted_host")
        assert repr(host) in err["message"] and "SPARKPILOT_TRUSTED_HOSTS" in err["message"]
    assert httpx.get(stack.base_url + "/api/v1/runs", headers={**auth, "Host": "127.0.0.1"}).status_code == 200
    port = stack.base_url.rsplit(":", 1)[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "gateway:8000"):
        assert httpx.get(stack.base_url + "/health", headers={"Host": host}).status_code == 200, host
    # A WebSocket handshake is judged the same way, before any route.
    with pytest.raises(websockets.InvalidStatus) as refused:
        asyncio.run(_ws_open(f"ws://evil.example:{port}/api/v1/runs/none/ws", int(port)))
    assert refused.value.response.status_code == 400 and b"untrusted_host" in refused.value.response.body


async def _ws_open(url: str, port: int) -> None:
    """Open a WebSocket to the gateway on 127.0.0.1 with the Host header of `url`."""
    async with websockets.connect(url, host="127.0.0.1", port=port, proxy=None):
        pass


def test_the_metrics_token_opens_metrics_and_nothing_else(stack) -> None:  # noqa: ANN001
    metrics = {"Authorization": f"Bearer {stack.env['SPARKPILOT_METRICS_TOKEN']}"}
    r = httpx.get(stack.base_url + "/metrics", headers=metrics)
    assert r.status_code == 200 and "sparkpilot_runs" in r.text
    for path in ("/api/v1/runs", "/api/v1/admin/tokens", "/api/v1/agents"):
        _envelope(httpx.get(stack.base_url + path, headers=metrics), 401, "unauthorized")
    _envelope(httpx.post(stack.base_url + "/api/v1/runs", json={"task": "t", **FINISH}, headers=metrics), 401)
    assert httpx.post(stack.base_url + "/mcp", headers=metrics, json={}).status_code == 401
    # /metrics itself: any user's token still, and nothing for a wrong or missing one.
    assert httpx.get(stack.base_url + "/metrics", headers={"Authorization": f"Bearer {stack.token}"}).status_code == 200
    _envelope(httpx.get(stack.base_url + "/metrics", headers={"Authorization": "Bearer sp_test_metrics_wrong"}), 401)
    _envelope(httpx.get(stack.base_url + "/metrics"), 401)


def test_the_dashboard_may_not_run_inline_script_or_be_framed(stack) -> None:  # noqa: ANN001
    for path in ("/", "/static/js/app.js"):
        headers = httpx.get(stack.base_url + path).headers
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
    api_headers = httpx.get(stack.base_url + "/health").headers
    assert api_headers["x-content-type-options"] == "nosniff" and "content-security-policy" not in api_headers
    # MiniWoB++'s task pages run inline scripts: no CSP there.
    bench = httpx.get(stack.base_url + "/benchmarks/miniwob/click-button.html")
    assert bench.status_code == 200 and "content-security-policy" not in bench.headers



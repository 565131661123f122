"""Live events: SSE and WebSocket, resumable, once each and in order."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers import FINISH, sse_collect, wait_terminal, ws_collect

TYPES = ["run.queued", "run.started", "step.started", "step.completed", "run.succeeded"]




@pytest.fixture
def finished_run(api, pages) -> str:
    run = api.post("/api/v1/runs", json={"task": "events", "start_url": pages.url + "/index.html", **FINISH}).json()
    assert wait_terminal(api, run["id"])["status"] == "succeeded"
    return run["id"]


def test_sse_live_stream_sees_every_event_in_order_and_ends(api, pages) -> None:
    run = api.post("/api/v1/runs", json={"task": "live", "start_url": pages.url + "/slow?ms=1500", **FINISH}).json()
    events = sse_collect(api, run["id"])  # opened while the run is queued/running: live path
    assert [e[1] for e in events] == TYPES
    assert [e[0] for e in events] == [1, 2, 3, 4, 5]
    step = events[3][2]["payload"]
    assert step["observation"]["title"] == "Slow page 1500" and step["has_screenshot"] is True
    assert all(e[2]["ts"] and e[2]["run_id"] == run["id"] for e in events)


def test_sse_resumes_after_last_event_id(api, finished_run) -> None:
    events = sse_collect(api, finished_run, headers={"Last-Event-ID": "2"})
    assert [e[0] for e in events] == [3, 4, 5]
    assert [e[0] for e in sse_collect(api, finished_run, headers={"Last-Event-ID": "5"})] == []
    resp = api.get(f"/api/v1/runs/{finished_run}/events", headers={"Last-Event-ID": "banana"})
    assert resp.status_code == 422


def _ws_url(stack, run_id: str, **params) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return stack.base_url.replace("http", "ws") + f"/api/v1/runs/{run_id}/ws?{query}"


def test_ws_resumes_with_after_and_closes_normally(stack, api, finished_run) -> None:
    got, code = asyncio.run(ws_collect(_ws_url(stack, finished_run, after=3), stack.token))
    assert [e["id"] for e in got] == [4, 5] and got[-1]["type"] == "run.succeeded"
    assert code == 1000


def test_ws_live_run_from_start(stack, api, pages) -> None:
    run = api.post("/api/v1/runs", json={"task": "ws", "start_url": pages.url + "/slow?ms=1000", **FINISH}).json()
    got, code = asyncio.run(ws_collect(_ws_url(stack, run["id"]), stack.token))
    assert [e["type"] for e in got] == TYPES and code == 1000


def test_ws_refuses_bad_token_unknown_run_and_bad_after(stack, finished_run) -> None:
    assert asyncio.run(ws_collect(_ws_url(stack, finished_run), "wrong"))[1] == 4401
    assert asyncio.run(ws_collect(_ws_url(stack, finished_run)))[1] == 4401
    assert asyncio.run(ws_collect(_ws_url(stack, "nope"), stack.token))[1] == 4404
    assert asyncio.run(ws_collect(_ws_url(stack, finished_run, after=-1), stack.token))[1] == 4422


def test_ws_takes_the_token_from_headers_never_from_the_url(stack, finished_run) -> None:
    got, code = asyncio.run(ws_collect(_ws_url(stack, finished_run, after=4), stack.token, header=True))
    assert [e["id"] for e in got] == [5] and code == 1000  # Authorization, for clients that can send headers
    # A token in the query string would land in access logs: refused even when it is valid.
    assert asyncio.run(ws_collect(_ws_url(stack, finished_run, token=stack.token)))[1] == 4400
    assert asyncio.run(ws_collect(_ws_url(stack, finished_run, token=stack.token), stack.token))[1] == 4400

"""Take control on the real stack: the live view's frames, a person's actions recorded as human steps, hand-back."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import httpx
import websockets

from tests.helpers import wait_for, wait_terminal

# The agent's script (a scripted answer; this test is about control, not the model): wait, then finish.
SCRIPT = [{"name": "wait", "seconds": 1.5 + i / 10} for i in range(6)] + [{"name": "finish", "answer": "done"}]


def _run(api: httpx.Client, pages) -> str:  # noqa: ANN001
    resp = api.post("/api/v1/runs", json={"task": "press the button", "start_url": pages.url + "/control.html",
                                          "policy": "replay", "actions": SCRIPT, "max_steps": 10})
    assert resp.status_code == 201, resp.text
    run_id = resp.json()["id"]
    wait_for(lambda: api.get(f"/api/v1/runs/{run_id}").json()["status"] == "running", 60, "run started")
    return run_id


async def _frames(url: str, token: str, seconds: float) -> list[dict]:
    got: list[dict] = []
    async with websockets.connect(url, subprotocols=["sparkpilot", f"bearer.{token}"], max_size=None) as ws:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = json.loads(await asyncio.wait_for(ws.recv(), left))
            except (asyncio.TimeoutError, websockets.ConnectionClosed):
                break
            msg["received"] = time.time()
            got.append(msg)
    return got


def test_person_takes_control_clicks_types_and_hands_back(stack, api, pages) -> None:  # noqa: ANN001
    run_id = _run(api, pages)
    taken = api.post(f"/api/v1/runs/{run_id}/control", json={"mode": "human"})
    assert taken.status_code == 200 and taken.json()["mode"] == "human", taken.text
    for act in ({"type": "click", "x": 200, "y": 310}, {"type": "type", "text": "Ada"},
                {"type": "click", "x": 200, "y": 230}):
        resp = api.post(f"/api/v1/runs/{run_id}/control/actions", json=act)
        assert resp.status_code == 202, resp.text

    def human_steps() -> list[dict]:
        return [s for s in api.get(f"/api/v1/runs/{run_id}/steps").json() if s["actor"] == "human"]

    wait_for(lambda: len(human_steps()) == 3, 60, "three human steps recorded")
    assert api.post(f"/api/v1/runs/{run_id}/control", json={"mode": "agent"}).json()["mode"] == "agent"
    run = wait_terminal(api, run_id, 90)
    assert run["status"] == "succeeded", run["reason"]

    steps = api.get(f"/api/v1/runs/{run_id}/steps").json()
    human = [s for s in steps if s["actor"] == "human"]
    fill, click = human[1]["action"], human[2]["action"]
    assert fill["name"] == "fill" and fill["args"]["text"] == "Ada", fill
    assert click["name"] == "click" and click["args"]["bid"], click
    # The person's click is in the page: the step after it observes the result.
    after = next(s for s in steps if s["index"] > human[2]["index"])
    assert "pressed by Ada" in json.dumps(after["observation"]), after["observation"]
    assert all(s["raw_output"] is None for s in human)
    # Steps are numbered in order across agent and person, with no gap.
    assert [s["index"] for s in steps] == list(range(len(steps)))
    # A demonstration: the trajectory gives the prompt the agent would have seen and the act in its action space.
    records = {r["step"]: r for r in api.get(f"/api/v1/runs/{run_id}/trajectory").json()}
    demo = records[human[2]["index"]]
    assert demo["actor"] == "human" and demo["messages"] and demo["target"]["args"]["bid"] == click["args"]["bid"]
    events = api.get(f"/api/v1/runs/{run_id}/events", headers={"Accept": "text/event-stream"}, timeout=30).text
    assert events.index('"by":"human"') < events.index('"by":"agent"')


def test_live_frames_arrive_and_highlight_the_persons_click(stack, api, pages) -> None:  # noqa: ANN001
    run_id = _run(api, pages)
    url = stack.base_url.replace("http", "ws") + f"/api/v1/runs/{run_id}/ws?frames=1"

    async def scenario() -> list[dict]:
        watcher = asyncio.create_task(_frames(url, stack.token, 6))
        await asyncio.sleep(2)
        await asyncio.to_thread(api.post, f"/api/v1/runs/{run_id}/control", json={"mode": "human"})
        await asyncio.to_thread(api.post, f"/api/v1/runs/{run_id}/control/actions",
                                json={"type": "click", "x": 200, "y": 230})
        return await watcher

    got = asyncio.run(scenario())
    api.post(f"/api/v1/runs/{run_id}/control", json={"mode": "agent"})
    frames = [m for m in got if m.get("kind") == "frame"]
    # The page's clock ticks every 250 ms: a few frames a second, each a JPEG of the viewport.
    assert len(frames) >= 8, [m.get("kind") or m.get("type") for m in got]
    assert base64.b64decode(frames[-1]["data"])[:2] == b"\xff\xd8"
    assert frames[-1]["w"] == 1280
    # A stream, not a burst: newer frames only, over the whole watch (through agent steps and human control alike).
    # The lag itself is measured in tests/e2e/test_dashboard.py, where the dashboard shows them.
    stamps = [m["ts"] for m in frames]
    assert stamps == sorted(stamps) and stamps[-1] - stamps[0] >= 3, stamps
    highlight = [m for m in got if m.get("kind") == "action" and m.get("actor") == "human"]
    assert highlight and highlight[0]["name"] == "click" and highlight[0]["x"] == 200, highlight
    assert wait_terminal(api, run_id, 90)["status"] == "succeeded"


def test_control_is_refused_when_it_cannot_apply(stack, api, pages) -> None:  # noqa: ANN001
    run_id = _run(api, pages)
    early = api.post(f"/api/v1/runs/{run_id}/control/actions", json={"type": "click", "x": 1, "y": 1})
    assert early.status_code == 409 and "take control first" in early.json()["error"]["message"]
    for bad in ({"type": "click", "x": -1, "y": 5}, {"type": "drag"}, {"type": "type", "text": ""},
                {"type": "press", "key": "Enter; rm"}, {"type": "click", "x": 1, "y": 1, "extra": 1}):
        resp = api.post(f"/api/v1/runs/{run_id}/control/actions", json=bad)
        assert resp.status_code == 422 and resp.json()["error"]["type"], (bad, resp.text)
    assert api.post(f"/api/v1/runs/{run_id}/control", json={"mode": "pilot"}).status_code == 422
    assert api.post("/api/v1/runs/nope/control", json={"mode": "human"}).status_code == 404
    assert wait_terminal(api, run_id, 90)["status"] == "succeeded"
    late = api.post(f"/api/v1/runs/{run_id}/control", json={"mode": "human"})
    assert late.status_code == 409 and "succeeded" in late.json()["error"]["message"]
    assert api.get(f"/api/v1/runs/{run_id}/control").json()["mode"] == "agent"

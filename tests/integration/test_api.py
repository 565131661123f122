"""The REST contract against a real gateway, worker, Redis, SQLite and Chromium."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from tests.helpers import FINISH, BIN, ROOT, PAGES, wait_terminal


def _error(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message", "code"}
    return body["error"]


def test_health_is_public_and_ok(stack) -> None:
    body = httpx.get(stack.base_url + "/health").json()
    assert body["status"] == "ok"
    assert {"database", "redis", "worker", "inference"} <= set(body["checks"])


@pytest.mark.parametrize("path", ["/api/v1/runs", "/api/v1/runs/abc", "/metrics", "/api/v1/runs/abc/steps"])
def test_everything_but_health_needs_a_token(stack, path) -> None:
    assert _error(httpx.get(stack.base_url + path), 401)["type"] == "unauthorized"
    bad = httpx.get(stack.base_url + path, headers={"Authorization": "Bearer nope"})
    assert _error(bad, 401)["code"] == "unauthorized"


def test_replay_run_records_every_step_with_screenshot_and_trajectory(api, pages) -> None:
    script = [{"name": "scroll", "dx": 0, "dy": 200}, "this is not an action", {"name": "finish", "answer": "seen"}]
    body = {"task": "look at the page", "start_url": pages.url + "/agent.html", "policy": "replay", "actions": script}
    resp = api.post("/api/v1/runs", json=body)
    assert resp.status_code == 201, resp.text
    run = resp.json()
    assert run["status"] == "queued" and run["max_steps"] == 30 and run["created_at"]
    assert run["policy"]["type"] == "replay" and run["allowed_domains"] == ["127.0.0.1"]
    done = wait_terminal(api, run["id"])
    assert (done["status"], done["result"], done["reason"]) == ("succeeded", "seen", "finished"), done
    steps = api.get(f"/api/v1/runs/{run['id']}/steps").json()
    assert [s["index"] for s in steps] == [0, 1, 2]
    assert steps[0]["action"] == {"name": "scroll", "args": {"dx": 0, "dy": 200}} and steps[0]["error"] is None
    assert steps[1]["action"] == {} and steps[1]["error"].startswith("could not parse")
    assert steps[2]["action"]["name"] == "finish"
    assert steps[0]["observation"]["title"] == "Agent test page" and steps[0]["observation"]["elements"] > 5
    timings = steps[0]["timings_ms"]
    assert {"observe", "model", "act", "persist"} <= set(timings) and timings["observe"] > 0
    png = api.get(f"/api/v1/runs/{run['id']}/steps/0/screenshot")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n") and len(png.content) > 1000
    _error(api.get(f"/api/v1/runs/{run['id']}/steps/7/screenshot"), 404)
    traj = api.get(f"/api/v1/runs/{run['id']}/trajectory").json()
    assert len(traj) == 3 and traj[0]["schema_version"] == 2
    assert traj[0]["messages"][0]["role"] == "system" and "GOAL: look at the page" in traj[0]["messages"][1]["content"]
    assert traj[0]["target"] == steps[0]["action"] and traj[1]["raw_output"] == "this is not an action"
    assert traj[2]["outcome"]["run_status"] == "succeeded" and traj[1]["outcome"]["error"]


def test_replay_needs_actions_and_model_takes_none(api) -> None:
    _error(api.post("/api/v1/runs", json={"task": "t", "policy": "replay"}), 422)
    _error(api.post("/api/v1/runs", json={"task": "t", "actions": [{"name": "finish"}]}), 422)
    _error(api.post("/api/v1/runs", json={"task": "t", "policy": "telepathy"}), 422)


def test_unreachable_start_url_fails_with_reason(api) -> None:
    from tests.helpers import free_port

    body = {"task": "t", "start_url": f"http://127.0.0.1:{free_port()}/", **FINISH}
    run = api.post("/api/v1/runs", json=body).json()
    done = wait_terminal(api, run["id"])
    assert done["status"] == "failed"
    assert done["reason"].startswith("navigation failed") and "ERR_CONNECTION_REFUSED" in done["reason"]
    assert api.get(f"/api/v1/runs/{run['id']}/steps").json() == []


def test_only_web_start_urls_are_accepted(api) -> None:
    for url in (f"file://{PAGES}/index.html", "file:///etc/passwd", f"file://{PAGES}/../conftest.py", "javascript:alert(1)",
                "not a url"):
        err = _error(api.post("/api/v1/runs", json={"task": "t", "start_url": url, **FINISH}), 422)
        assert err["code"] in ("url_not_allowed", "invalid_url"), err


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"task": ""},
        {"task": "   "},
        {"task": "t", "max_steps": 0},
        {"task": "t", "max_steps": "many"},
        {"task": "t", "surprise": 1},
        {"task": 5},
        [],
    ],
)
def test_invalid_bodies_get_422_envelope_and_store_nothing(api, body) -> None:
    before = api.get("/api/v1/runs").json()["total"]
    assert _error(api.post("/api/v1/runs", json=body), 422)["type"] == "validation_error"
    assert api.get("/api/v1/runs").json()["total"] == before


def test_max_steps_above_the_servers_limit_is_refused_and_stores_nothing(api) -> None:
    before = api.get("/api/v1/runs").json()["total"]
    err = _error(api.post("/api/v1/runs", json={"task": "t", "max_steps": 201}), 422)
    assert err["code"] == "max_steps_limit" and "limit of 200" in err["message"]
    assert api.get("/api/v1/runs").json()["total"] == before


def test_malformed_json_and_oversized_body(api) -> None:
    bad = api.post("/api/v1/runs", content=b"{not json", headers={"content-type": "application/json"})
    _error(bad, 422)
    big = api.post("/api/v1/runs", json={"task": "x" * 1_100_000})
    assert _error(big, 413)["code"] == "body_too_large"

    def chunks():
        for _ in range(12):
            yield b"x" * 100_000

    streamed = api.post("/api/v1/runs", content=chunks(), headers={"content-type": "application/json"})
    assert _error(streamed, 413)["code"] == "body_too_large"


def test_unknown_ids_are_404(api) -> None:
    for path in ("/api/v1/runs/nope", "/api/v1/runs/nope/steps", "/api/v1/runs/nope/events"):
        assert _error(api.get(path), 404)["code"] == "not_found"
    _error(api.post("/api/v1/runs/nope/cancel"), 404)


def test_cancelling_a_finished_run_is_409(api, pages) -> None:
    run = api.post("/api/v1/runs", json={"task": "t", "start_url": pages.url + "/index.html", **FINISH}).json()
    wait_terminal(api, run["id"])
    assert _error(api.post(f"/api/v1/runs/{run['id']}/cancel"), 409)["code"] == "run_finished"


def test_cancel_stops_a_running_run(api, pages) -> None:
    run = api.post("/api/v1/runs", json={"task": "t", "start_url": pages.url + "/slow?ms=4000", **FINISH}).json()

    def running() -> bool:
        return api.get(f"/api/v1/runs/{run['id']}").json()["status"] == "running"

    from tests.helpers import wait_for

    wait_for(running, 30, "run to start")
    resp = api.post(f"/api/v1/runs/{run['id']}/cancel")
    assert resp.status_code == 200 and resp.json()["cancel_requested"] is True
    done = wait_terminal(api, run["id"])
    assert (done["status"], done["reason"]) == ("cancelled", "cancelled by user")
    events = [e["type"] for e in _events(api, run["id"])]
    assert events[-1] == "run.cancelled" and "run.succeeded" not in events


def _events(api, run_id) -> list[dict]:
    import json

    text = api.get(f"/api/v1/runs/{run_id}/events").text
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]


def test_list_is_paginated_and_filtered_by_status(api, pages) -> None:
    ids = [api.post("/api/v1/runs", json={"task": f"page {i}", "start_url": pages.url + "/index.html", **FINISH}).json()["id"]
           for i in range(3)]
    for i in ids:
        wait_terminal(api, i)
    page = api.get("/api/v1/runs", params={"limit": 2, "offset": 0}).json()
    assert page["limit"] == 2 and len(page["items"]) == 2 and page["total"] >= 3
    nxt = api.get("/api/v1/runs", params={"limit": 2, "offset": 2}).json()
    assert not {r["id"] for r in page["items"]} & {r["id"] for r in nxt["items"]}
    succeeded = api.get("/api/v1/runs", params={"status": "succeeded", "limit": 200}).json()
    assert set(ids) <= {r["id"] for r in succeeded["items"]}
    assert all(r["status"] == "succeeded" for r in succeeded["items"])
    _error(api.get("/api/v1/runs", params={"status": "bogus"}), 422)
    _error(api.get("/api/v1/runs", params={"limit": 0}), 422)


def test_token_cli_makes_a_user_who_sees_only_their_runs(stack, api, pages) -> None:
    out = subprocess.run([str(BIN / "sparkpilot"), "token", "create", "--user", "carol"], cwd=ROOT,
                         env=stack.env, capture_output=True, text=True, check=True)
    token = out.stdout.strip().splitlines()[-1]
    assert token.startswith("sp_")
    admin_run = api.post("/api/v1/runs", json={"task": "admin's", "start_url": pages.url + "/index.html", **FINISH}).json()
    with httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {token}"}) as carol:
        assert carol.get("/api/v1/runs").json()["total"] == 0
        _error(carol.get(f"/api/v1/runs/{admin_run['id']}"), 404)
        _error(carol.post(f"/api/v1/runs/{admin_run['id']}/cancel"), 404)
        _error(carol.get(f"/api/v1/runs/{admin_run['id']}/steps/0/screenshot"), 404)
        own = carol.post("/api/v1/runs", json={"task": "carol's", "start_url": pages.url + "/index.html", **FINISH})
        assert own.status_code == 201
        assert [r["id"] for r in carol.get("/api/v1/runs").json()["items"]] == [own.json()["id"]]
    wait_terminal(api, admin_run["id"])


def test_metrics_expose_runs_steps_queue_and_event_latency(api, pages) -> None:
    run = api.post("/api/v1/runs", json={"task": "m", "start_url": pages.url + "/index.html", **FINISH}).json()
    wait_terminal(api, run["id"])
    text = api.get("/metrics").text
    assert 'sparkpilot_runs{status="succeeded"}' in text
    assert "sparkpilot_queue_depth" in text
    step_count = [l for l in text.splitlines() if l.startswith("sparkpilot_step_duration_seconds_count")]
    assert step_count and float(step_count[0].split()[-1]) >= 1
    assert "sparkpilot_event_publish_latency_seconds_bucket" in text


def test_export_trajectories_cli_writes_jsonl(stack, api, pages, tmp_path) -> None:
    from sparkpilot.trajectory import TrajectoryStep

    script = [{"name": "scroll", "dx": 0, "dy": 100}, {"name": "finish", "answer": "x"}]
    run = api.post("/api/v1/runs", json={"task": "export me", "start_url": pages.url + "/agent.html",
                                         "policy": "replay", "actions": script}).json()
    assert wait_terminal(api, run["id"])["status"] == "succeeded"

    def export(*args: str) -> list[TrajectoryStep]:
        out = tmp_path / "traj.jsonl"
        subprocess.run([str(BIN / "sparkpilot"), "export", "trajectories", "--out", str(out), *args],
                       cwd=ROOT, env=stack.env, check=True, capture_output=True)
        return [TrajectoryStep.model_validate_json(line) for line in out.read_text().splitlines()]

    assert all(r.policy == "model" for r in export())  # scripted runs are not training data by default
    assert run["id"] not in {r.run_id for r in export()}
    records = export("--policy", "replay", "--task", "export me")
    mine = [r for r in records if r.run_id == run["id"]]
    assert [r.step for r in mine] == [0, 1] and mine[1].target["name"] == "finish"
    assert all(r.outcome.run_status == "succeeded" and r.policy == "replay" and "export me" in r.task for r in records)
    assert export("--policy", "replay", "--task", "no such task") == []
    assert run["id"] not in {r.run_id for r in export("--policy", "all", "--since", "2999-01-01")}
    bad = subprocess.run([str(BIN / "sparkpilot"), "export", "trajectories", "--status", "nope", "--out",
                          str(tmp_path / "x.jsonl")], cwd=ROOT, env=stack.env, capture_output=True, text=True)
    assert bad.returncode == 2 and "--status must be one of" in bad.stderr

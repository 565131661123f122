"""Saved agents on the real stack: create, version, run with their settings, stats, delete (runs stay readable)."""

from __future__ import annotations

import uuid

from tests.helpers import wait_terminal

FINISH_ACTIONS = [{"name": "finish", "answer": "done"}]


def test_an_agent_is_saved_versioned_run_and_deleted(api, user_api, pages) -> None:  # noqa: ANN001
    name = f"invoice agent {uuid.uuid4().hex[:6]}"
    created = api.post("/api/v1/agents", json={"name": name, "description": "reads invoices",
                                               "instructions": "Always read the whole page first.",
                                               "allowed_domains": ["127.0.0.1"], "max_steps": 4})
    assert created.status_code == 201, created.text
    agent = created.json()
    assert agent["version"] == 1 and agent["mode"] == "direct" and agent["tools"] == []
    dup = api.post("/api/v1/agents", json={"name": name})
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "agent_exists"
    assert user_api.get(f"/api/v1/agents/{agent['id']}").status_code == 404  # another user's agent
    assert name not in [a["name"] for a in user_api.get("/api/v1/agents").json()["items"]]
    assert user_api.post("/api/v1/agents", json={"name": name}).status_code == 201  # names are per user

    same = api.patch(f"/api/v1/agents/{agent['id']}", json={"description": "reads invoices"})
    assert same.json()["version"] == 1  # nothing changed: no new version
    changed = api.patch(f"/api/v1/agents/{agent['id']}", json={"instructions": "Read the title first."})
    assert changed.status_code == 200 and changed.json()["version"] == 2
    assert changed.json()["max_steps"] == 4 and changed.json()["description"] == "reads invoices"

    resp = api.post(f"/api/v1/agents/{agent['id']}/runs", json={"task": "What is the title?",
                                                                "start_url": pages.url + "/index.html",
                                                                "policy": "replay", "actions": FINISH_ACTIONS})
    assert resp.status_code == 201, resp.text
    run = resp.json()
    assert (run["agent_id"], run["agent_version"], run["max_steps"], run["allowed_domains"]) == \
        (agent["id"], 2, 4, ["127.0.0.1"])
    assert run["task"] == "What is the title?"
    assert wait_terminal(api, run["id"])["status"] == "succeeded"
    [record] = api.get(f"/api/v1/runs/{run['id']}/trajectory").json()
    prompt = " ".join(str(m["content"]) for m in record["messages"])
    assert "Read the title first." in prompt and "What is the title?" in prompt  # the version-2 instructions

    listed = api.get(f"/api/v1/agents/{agent['id']}/runs").json()
    assert [i["id"] for i in listed["items"]] == [run["id"]] and listed["items"][0]["steps"] == 1
    stats = listed["stats"]
    assert (stats["runs"], stats["finished"], stats["succeeded"], stats["success_rate"], stats["mean_steps"]) == \
        (1, 1, 1, 1.0, 1.0)
    assert stats["mean_duration_s"] is not None and stats["mean_duration_s"] > 0

    assert api.delete(f"/api/v1/agents/{agent['id']}").status_code == 204
    assert api.get(f"/api/v1/agents/{agent['id']}").status_code == 404
    assert api.get(f"/api/v1/agents/{agent['id']}/runs").status_code == 404
    kept = api.get(f"/api/v1/runs/{run['id']}").json()
    assert (kept["status"], kept["agent_id"], kept["agent_version"]) == ("succeeded", agent["id"], 2)
    assert api.post("/api/v1/agents", json={"name": name}).status_code == 201  # the name is free again


def test_agents_refuse_what_nothing_provides(api, pages) -> None:  # noqa: ANN001
    for body, code, named in (({"tools": ["search_web"]}, "unknown_tool", "search_web"),
                              ({"documents": ["c1"]}, "unknown_collection", "c1"),
                              ({"model": "no-such-adapter"}, "unknown_model", "no-such-adapter")):
        resp = api.post("/api/v1/agents", json={"name": f"bad {code}", **body})
        assert resp.status_code == 422 and resp.json()["error"]["code"] == code, resp.text
        assert named in resp.json()["error"]["message"]
    for body in ({"name": ""}, {"name": "../etc"}, {"name": "x", "mode": "crowd"}, {"name": "x", "max_steps": 0},
                 {"name": "x", "colour": "red"}):
        assert api.post("/api/v1/agents", json=body).status_code == 422, body
    team = api.post("/api/v1/agents", json={"name": f"team {uuid.uuid4().hex[:6]}", "mode": "team"}).json()
    resp = api.post(f"/api/v1/agents/{team['id']}/runs", json={"task": "x", "policy": "replay",
                                                               "actions": FINISH_ACTIONS})
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "invalid_run"  # a team plans with the model
    assert api.patch(f"/api/v1/agents/{team['id']}", json={"tools": ["x"]}).status_code == 422
    assert api.get(f"/api/v1/agents/{team['id']}").json()["version"] == 1  # the refused change left no trace
    assert api.post("/api/v1/agents/nope/runs", json={"task": "x"}).status_code == 404

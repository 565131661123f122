"""One team run with the real embedded model (SmolLM2-135M on vLLM): it must plan validly and finish; quality is not asserted."""

from __future__ import annotations

import time

import pytest

from sparkpilot.team_schemas import Plan
from tests.helpers import sse_collect
from tests.real_model import api, stack  # noqa: F401 - this module's stack serves the real model


@pytest.mark.timeout(900)
def test_team_run_with_the_embedded_model_plans_validly_and_ends(api, pages) -> None:  # noqa: ANN001
    resp = api.post("/api/v1/runs", json={
        "task": "Find the title of this page and write it to title.txt", "mode": "team", "auto_approve": True,
        "start_url": pages.url + "/index.html", "max_steps": 3,
        "approval_policy": {"run_code": "allow", "overwrite_file": "deny", "delete_file": "deny"}})
    assert resp.status_code == 201, resp.text
    run_id = resp.json()["id"]
    deadline = time.time() + 840
    while True:  # a person who answers "no idea" to any question and says no to any other action
        run = api.get(f"/api/v1/runs/{run_id}").json()
        if run["status"] in ("succeeded", "failed", "cancelled"):
            break
        if run["status"] == "awaiting_input":
            api.post(f"/api/v1/runs/{run_id}/input", json={"text": "no idea"})
        elif run["status"] == "awaiting_approval" and (run["wait"] or {}).get("kind") == "action":
            api.post(f"/api/v1/runs/{run_id}/approvals/{run['wait']['approval_id']}", json={"approve": False})
        assert time.time() < deadline, f"the team run did not end: {run}"
        time.sleep(1)

    events = sse_collect(api, run_id)
    [proposed] = [d["payload"] for _, t, d in events if t == "plan.proposed"]
    plan = Plan.model_validate({"steps": proposed["steps"]})  # the model's own plan, valid by construction
    assert proposed["source"] == "model"  # the model's own JSON validated (no fallback)
    started = [d["payload"] for _, t, d in events if t == "team.step" and d["payload"].get("phase") == "started"]
    assert started and started[0]["agent"] == plan.steps[0].agent  # the orchestrator delegated its first step
    finished = [d["payload"] for _, t, d in events if t == "team.step" and d["payload"].get("phase") == "finished"]
    assert finished and all(f["summary"] for f in finished)  # each try reported what its agent did
    assert api.get(f"/api/v1/runs/{run_id}/plan").json()["status"] == "approved"  # auto_approve approved it
    assert events[-1][1] == f"run.{run['status']}"  # the stream ends with the run's own end
    print(f"\nembedded team run: {run['status']} ({run['reason']}); plan: "
          f"{[(s.agent, s.instruction) for s in plan.steps]}; result: {run['result']!r}")

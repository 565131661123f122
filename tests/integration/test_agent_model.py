"""A run driven by the real embedded model through the whole stack (success not required)."""

from __future__ import annotations

import json

from tests.helpers import wait_terminal
from tests.real_model import api, stack  # noqa: F401 - this module's stack serves the real model


def test_model_run_completes_with_every_step_recorded(api, pages) -> None:
    body = {"task": "Type Ada into the name field and press Go.", "start_url": pages.url + "/agent.html",
            "max_steps": 3}
    run = api.post("/api/v1/runs", json=body).json()
    assert run["policy"] == {"type": "model"}
    done = wait_terminal(api, run["id"], timeout=240)
    assert done["status"] in ("succeeded", "failed") and done["reason"], done
    steps = api.get(f"/api/v1/runs/{run['id']}/steps").json()
    assert 1 <= len(steps) <= 3 and [s["index"] for s in steps] == list(range(len(steps)))
    traj = api.get(f"/api/v1/runs/{run['id']}/trajectory").json()
    for step, rec in zip(steps, traj, strict=True):
        assert rec["raw_output"], "the model's raw text is kept"
        metrics = step["timings_ms"]["model_metrics"]
        assert metrics["model"] == "smollm2-135m-instruct" and metrics["completion_tokens"] > 0
        assert step["timings_ms"]["model"] >= metrics["latency_ms"] * 0.5
        assert step["has_screenshot"]
        assert step["error"] or step["action"]["name"]
        try:
            json.loads(rec["raw_output"])  # structured output: JSON, unless cut off at max_tokens
        except ValueError:
            assert step["error"].startswith("could not parse")
    events = api.get(f"/api/v1/runs/{run['id']}/events").text
    assert events.count("event: step.completed") == len(steps)

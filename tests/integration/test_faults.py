"""Fault injection with figures: a fault mid-run, its outcome, and the time to recover (printed, and
written to benchmark-results/faults.json for the README's table). Marked `faults`; run by `make test`.

The other faults of the table live beside their stacks: a whole worker or a pool child SIGKILLed and
a Redis outage in test_failures.py, a duplicate delivery in test_scaleout.py.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import record_fault as record
from tests.helpers import fault_figures, wait_for, wait_terminal
from tests.private_stack import api, stack  # noqa: F401 - these tests kill their stack's worker or Chromium

pytestmark = pytest.mark.faults
def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _restarts(api: httpx.Client) -> float:
    for family in text_string_to_metric_families(api.get("/metrics").text):
        if family.name == "sparkpilot_browser_restarts":
            return sum(s.value for s in family.samples if s.name.endswith("_total"))
    return 0.0


def test_chromium_killed_mid_run_is_relaunched_and_the_run_finishes(stack, api: httpx.Client, pages) -> None:  # noqa: ANN001
    before = _restarts(api)
    actions = [{"name": "wait", "seconds": 4}, {"name": "scroll", "dy": 100}, {"name": "finish", "answer": "ok"}]
    run = api.post("/api/v1/runs", json={"task": "crash", "start_url": pages.url + "/index.html", "policy": "replay",
                                         "actions": actions}).json()
    wait_for(lambda: len(api.get(f"/api/v1/runs/{run['id']}/steps").json()) == 0
             and api.get(f"/api/v1/runs/{run['id']}").json()["status"] == "running", 30, "the run to start")
    time.sleep(1.5)  # inside the first step's wait
    chromium = [p for p in _descendants(stack.worker.pid) if _name(p).startswith(("chromium", "chrome"))]
    assert chromium, "no Chromium under the worker"
    killed_at = time.time()
    for pid in chromium:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    done = wait_terminal(api, run["id"], timeout=90)
    recovered_s = round(time.time() - killed_at, 2)
    messages = [e for e in _events(api, run["id"]) if e["type"] == "run.message"]
    assert done["status"] == "succeeded", done["reason"]
    assert any("the browser crashed and was relaunched" in m["payload"]["text"] for m in messages)
    assert _restarts(api) == before + 1
    steps = api.get(f"/api/v1/runs/{run['id']}/steps").json()
    assert [s["index"] for s in steps] == list(range(len(steps))) and steps[-1]["action"]["name"] == "finish"
    figures = fault_figures(api, run["id"])
    assert figures["events_duplicated"] == figures["step_indices_missing"] == figures["runs_left_running"] == 0, figures
    record("chromium_sigkill", outcome="relaunched, run succeeded", processes_killed=len(chromium),
           seconds_to_finish=recovered_s, **figures)


def _events(api: httpx.Client, run_id: str) -> list[dict]:
    text = api.get(f"/api/v1/runs/{run_id}/events").text
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]

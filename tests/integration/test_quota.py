"""Per-user quota of unfinished runs (429 `run_quota`) and fair turns across users on the run queue."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import httpx
import pytest

from sparkpilot.queue import PRIORITY_SEP
from sparkpilot.redis_client import get_redis
from tests.helpers import in_process_gateway, wait_terminal

pytestmark = pytest.mark.security

REPLAY = {"policy": "replay", "actions": [{"name": "finish", "answer": "x"}]}


def test_a_user_past_the_quota_gets_429_and_others_do_not(base_env: dict[str, str]) -> None:
    from tests.helpers import migrated

    folder = Path(tempfile.mkdtemp(prefix="sparkpilot-quota-"))
    queue = f"test-quota-{uuid.uuid4().hex[:8]}"  # no worker: every run stays queued
    env = dict(base_env, DATABASE_URL=f"sqlite:///{folder / 'q.db'}", SPARKPILOT_QUEUE_NAME=queue,
               SPARKPILOT_MAX_ACTIVE_RUNS_PER_USER="2")
    migrated(env["DATABASE_URL"])
    try:
        with in_process_gateway(env, env["SPARKPILOT_ADMIN_TOKEN"]) as admin:
            other = admin.post("/api/v1/admin/tokens", json={"user": "quota-other"}).json()["token"]
            first = [admin.post("/api/v1/runs", json={"task": f"t{i}", **REPLAY}) for i in range(2)]
            assert [r.status_code for r in first] == [201, 201]
            refused = admin.post("/api/v1/runs", json={"task": "third", **REPLAY})
            assert refused.status_code == 429, refused.text
            error = refused.json()["error"]
            assert error["code"] == "run_quota" and "SPARKPILOT_MAX_ACTIVE_RUNS_PER_USER is 2" in error["message"]
            assert admin.get("/api/v1/runs", params={"limit": 10}).json()["total"] == 2  # nothing stored for it
            theirs = admin.post("/api/v1/runs", json={"task": "theirs", **REPLAY}, headers={"Authorization": f"Bearer {other}"})
            assert theirs.status_code == 201  # the quota is per user
            assert admin.post(f"/api/v1/runs/{first[0].json()['id']}/cancel").status_code == 200
            assert admin.post("/api/v1/runs", json={"task": "after a cancel", **REPLAY}).status_code == 201
    finally:
        client = get_redis()
        client.delete(queue, *(f"{queue}{PRIORITY_SEP}{p}" for p in (3, 6, 9)))


def test_another_users_first_run_goes_before_a_users_backlog(api: httpx.Client, pages) -> None:  # noqa: ANN001
    # The shared worker has 2 slots: A's first two runs take them; B's run, sent after A's four, is next.
    other = api.post("/api/v1/admin/tokens", json={"user": f"fair-{uuid.uuid4().hex[:6]}"}).json()["token"]
    body = {"start_url": pages.url + "/index.html", "policy": "replay",
            "actions": [{"name": "wait", "seconds": 3}, {"name": "finish", "answer": "done"}]}
    a_runs = [api.post("/api/v1/runs", json={"task": f"A{i}", **body}).json()["id"] for i in range(4)]
    with httpx.Client(base_url=str(api.base_url), headers={"Authorization": f"Bearer {other}"}, timeout=30) as b_api:
        b_run = b_api.post("/api/v1/runs", json={"task": "B", **body}).json()["id"]
        done = {rid: wait_terminal(api, rid, timeout=120) for rid in a_runs} | {b_run: wait_terminal(b_api, b_run)}
    assert all(r["status"] == "succeeded" for r in done.values()), [(r["status"], r["reason"]) for r in done.values()]
    started = {rid: r["started_at"] for rid, r in done.items()}
    # Without fair turns the queue is first-in first-out: A2 and A3 would start before B.
    assert started[b_run] < started[a_runs[2]] and started[b_run] < started[a_runs[3]], started

"""Killed workers and a stopped Redis: no run stuck in running, a reason on every failure."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from tests.helpers import FINISH, fault_figures, record_fault, start_redis, wait_for, wait_terminal, worker_of
from tests.private_stack import api, stack  # noqa: F401 - these tests kill their stack's worker or Chromium


pytestmark = pytest.mark.faults


def _wait_running(api: httpx.Client, run_id: str) -> dict:
    def running() -> dict | None:
        run = api.get(f"/api/v1/runs/{run_id}").json()
        return run if run["status"] == "running" else None
    return wait_for(running, 30, "run to start")


def test_sigkill_whole_worker_mid_run_is_queued_again_and_finished_by_the_next_worker(stack, api, pages) -> None:
    run = api.post("/api/v1/runs", json={"task": "t", "start_url": pages.url + "/slow?ms=6000", **FINISH}).json()
    _wait_running(api, run["id"])
    killed_at = time.time()
    stack.kill_worker()
    try:
        # No worker is left: once its heartbeat is stale the reaper hands the run back to the queue.
        queued = wait_for(lambda: api.get(f"/api/v1/runs/{run['id']}").json()["status"] == "queued", 60,
                          "the run to be queued again")
        requeued_s = round(time.time() - killed_at, 2)
        assert queued
    finally:
        stack.start_worker()
    done = wait_terminal(api, run["id"], timeout=60)
    finished_s = round(time.time() - killed_at, 2)
    assert (done["status"], done["result"], done["attempts"]) == ("succeeded", "ok", 2), done
    events = _sse_types(api, run["id"])
    types = [e["type"] for e in events]
    assert types.count("run.started") == 1 and types[-1] == "run.succeeded" and "run.failed" not in types
    status = next(e for e in events if e["type"] == "run.status")
    assert status["payload"] == {"status": "queued", "reason": "worker lost; queued again", "attempt": 1}
    assert any("worker lost; resumed by" in e["payload"].get("text", "") for e in events if e["type"] == "run.message")
    figures = fault_figures(api, run["id"])
    assert figures["events_duplicated"] == figures["events_out_of_order"] == figures["runs_left_running"] == 0, figures
    record_fault("worker_sigkill", outcome="queued again by the reaper, resumed and succeeded on the restarted worker",
                 seconds_to_requeued=requeued_s, seconds_to_finish=finished_s, attempts=done["attempts"], **figures)


@pytest.mark.parametrize("attempt", range(3))
def test_sigkill_pool_child_mid_run_is_redelivered_and_finished(stack, api, pages, attempt: int) -> None:
    """Celery requeues the message of a killed pool child (acks_late + reject_on_worker_lost); another child
    takes the run's lock once the dead one's lease lapses, resumes it, and the run must *finish*."""
    run = api.post("/api/v1/runs", json={"task": "t", "start_url": pages.url + "/slow?ms=3000", **FINISH}).json()
    running = _wait_running(api, run["id"])
    child_pid = int(worker_of(stack, run["id"]).rsplit(":", 1)[1])
    assert child_pid != stack.worker.pid
    killed_at = time.time()
    os.kill(child_pid, signal.SIGKILL)
    done = wait_terminal(api, run["id"], timeout=60)
    assert (done["status"], done["result"], done["attempts"]) == ("succeeded", "ok", 2), done
    messages = [e for e in _sse_types(api, run["id"]) if e["type"] == "run.message"]
    assert messages and "worker lost; resumed" in messages[0]["payload"]["text"]
    types = [e["type"] for e in _sse_types(api, run["id"])]
    assert types.count("run.started") == 1 and types[-1] == "run.succeeded" and "run.failed" not in types
    finished_s = round(time.time() - killed_at, 2)
    assert running["status"] == "running" and finished_s < 60
    figures = fault_figures(api, run["id"])
    assert figures["events_duplicated"] == figures["events_out_of_order"] == figures["runs_left_running"] == 0, figures
    record_fault(f"pool_child_sigkill_{attempt}", outcome="redelivered, resumed, succeeded", attempts=done["attempts"],
                 seconds_to_finish=finished_s, **figures)


def _sse_types(api: httpx.Client, run_id: str) -> list[dict]:
    import json

    text = api.get(f"/api/v1/runs/{run_id}/events").text
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]


def test_redis_down_gives_503_and_degraded_then_recovers(private_redis_stack, pages) -> None:
    stack, state = private_redis_stack
    with httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.token}"}, timeout=30) as api:
        body = {"task": "t", "start_url": pages.url + "/index.html", **FINISH}
        first = api.post("/api/v1/runs", json=body)
        assert first.status_code == 201
        assert wait_terminal(api, first.json()["id"])["status"] == "succeeded"

        state["redis"].terminate()
        state["redis"].wait(10)
        down = api.post("/api/v1/runs", json=body)
        assert down.status_code == 503, down.text
        assert down.json()["error"]["code"] == "redis_unavailable"
        health = httpx.get(stack.base_url + "/health").json()
        assert health["status"] == "degraded" and health["checks"]["redis"].startswith("down")
        assert health["checks"]["database"] == "ok"
        stored_while_down = api.get("/api/v1/runs").json()["total"] - 1
        assert stored_while_down == 0  # the refused run was not stored

        stopped_at = time.time()
        state["redis"] = start_redis(state["port"], stack.logdir)
        wait_for(lambda: httpx.get(stack.base_url + "/health").json()["status"] == "ok", 45, "health ok again")
        record_fault("redis_down", outcome="503 redis_unavailable, nothing stored; health degraded, then ok",
                     seconds_to_healthy_after_restart=round(time.time() - stopped_at, 2),
                     refused_runs_stored=stored_while_down)
        again = api.post("/api/v1/runs", json=body)
        assert again.status_code == 201, again.text
        assert wait_terminal(api, again.json()["id"])["status"] == "succeeded"


TAKE_AND_DIE = """
import os, signal, sys
from kombu import Connection
with Connection(sys.argv[1]) as conn:
    message = conn.default_channel.basic_get(sys.argv[2], no_ack=False)  # taken, as a worker's prefetch does
    assert message is not None, "nothing on the queue"
    print(message.delivery_tag, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # dies before starting the run: nothing is acked or restored
"""


def test_a_run_whose_message_a_dead_worker_took_is_sent_again(base_env, tmp_path, pages) -> None:  # noqa: ANN001
    """A worker SIGKILLed between taking a run's message and claiming the run: the broker would hold the message
    for its visibility timeout (900 s); the reaper sends the run again once the delivery is stale."""
    import subprocess
    import sys
    import uuid

    from tests.helpers import migrated
    from sparkpilot.queue import UNACKED
    from sparkpilot.redis_client import get_redis
    from tests.helpers import Stack

    env = dict(base_env, DATABASE_URL=f"sqlite:///{tmp_path / 'stranded.db'}", SPARKPILOT_WORKSPACE_DIR=str(tmp_path / "ws"),
               SPARKPILOT_QUEUE_NAME=f"test-stranded-{uuid.uuid4().hex[:8]}")
    migrated(env["DATABASE_URL"])
    stack = Stack(env=env, logdir=tmp_path)
    stack.start_gateway()  # no worker yet: the run's message waits on the queue
    try:
        api = httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.token}"}, timeout=30)
        run = api.post("/api/v1/runs", json={"task": "stranded", "start_url": pages.url + "/index.html", **FINISH}).json()
        taken = subprocess.run([sys.executable, "-c", TAKE_AND_DIE, env["REDIS_URL"], env["SPARKPILOT_QUEUE_NAME"]],
                               capture_output=True, text=True, timeout=60)
        assert taken.returncode == -signal.SIGKILL, taken.stderr
        tag = taken.stdout.strip()
        assert get_redis(env["REDIS_URL"]).hexists(UNACKED, tag)  # held for a worker that no longer exists
        stack.start_worker()
        done = wait_terminal(api, run["id"], timeout=60)  # the reaper's stale delay (8 s here), then the run itself
        assert done["status"] == "succeeded" and done["attempts"] == 1, done
        assert not get_redis(env["REDIS_URL"]).hexists(UNACKED, tag)  # and it will not be delivered a second time
        api.close()
    finally:
        stack.stop()

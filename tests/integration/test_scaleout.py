"""Scale-out: two worker processes on one queue share the runs, and a run's lock holds across them
(a duplicate delivery of a running run is dropped by the other worker, never executed twice)."""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path

import httpx
from celery import Celery
from sqlalchemy import create_engine, text

from tests.helpers import BIN, FINISH, Stack, wait_for, wait_terminal


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_two_workers_share_the_queue_and_a_runs_lock(base_env: dict[str, str], pages) -> None:  # noqa: ANN001
    from tests.helpers import migrated

    folder = Path(tempfile.mkdtemp(prefix="sparkpilot-scale-"))
    tag = uuid.uuid4().hex[:8]
    env = dict(base_env, DATABASE_URL=f"sqlite:///{folder / 's.db'}", SPARKPILOT_QUEUE_NAME=f"test-scale-{tag}",
               SPARKPILOT_KEY_PREFIX=f"sptest-scale-{tag}", SPARKPILOT_WORKSPACE_DIR=str(folder / "ws"))
    migrated(env["DATABASE_URL"])
    stack = Stack(env=env, logdir=folder)
    second = None
    try:
        stack.start_gateway()
        stack.start_worker(concurrency=1)
        second = stack._spawn("worker2", [str(BIN / "celery"), "-A", "services.worker.celery_app", "worker", "-l", "info",
                                          "-Q", env["SPARKPILOT_QUEUE_NAME"], "-c", "1", "-n", f"second-{tag}@%h"])
        api = httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.token}"}, timeout=30)
        engine = create_engine(env["DATABASE_URL"])

        def workers_of(ids: list[str]) -> dict[str, str]:
            with engine.connect() as c:
                rows = c.execute(text("SELECT id, worker FROM runs WHERE worker IS NOT NULL")).all()
            return {rid: w for rid, w in rows if rid in ids}

        # Four slow runs at once: with one slot per worker process, both processes must take some.
        ids = [api.post("/api/v1/runs", json={"task": f"r{i}", "start_url": pages.url + "/slow?ms=2500", **FINISH}).json()["id"]
               for i in range(4)]
        seen: dict[str, int] = {}

        def both_busy() -> bool:
            for rid, worker in workers_of(ids).items():
                pid = int(worker.rsplit(":", 1)[1])
                if rid not in seen and Path(f"/proc/{pid}").exists():
                    seen[rid] = _parent_of(pid)
            return len(set(seen.values())) == 2
        wait_for(both_busy, 60, "both worker processes to execute runs", interval=0.1)
        assert set(seen.values()) == {stack.worker.pid, second.pid}
        assert all(wait_terminal(api, rid, timeout=90)["status"] == "succeeded" for rid in ids)

        # A duplicate delivery while the run executes: the other worker waits for the lock (the lease + 2 s,
        # 5 s here), then drops it; the page takes 9 s, so the lock is still held when it gives up.
        run = api.post("/api/v1/runs", json={"task": "dup", "start_url": pages.url + "/slow?ms=9000", **FINISH}).json()
        wait_for(lambda: api.get(f"/api/v1/runs/{run['id']}").json()["status"] == "running", 30, "the run to start")
        celery = Celery(broker=env["REDIS_URL"])
        celery.send_task("sparkpilot.execute_run", args=[{"run_id": run["id"]}], queue=env["SPARKPILOT_QUEUE_NAME"])
        done = wait_terminal(api, run["id"], timeout=90)
        assert (done["status"], done["attempts"]) == ("succeeded", 1), done
        events = api.get(f"/api/v1/runs/{run['id']}/steps").json()
        assert len(events) == 1  # one execution: one step
        time.sleep(1)
        logs = (folder / "worker.log").read_text(errors="replace") + (folder / "worker2.log").read_text(errors="replace")
        assert f"run {run['id']} is being executed elsewhere; dropping this delivery" in logs
        assert f"run {run['id']}: locked" in logs  # the task's outcome, logged with the run's id
        engine.dispose()
    finally:
        stack.stop()
        if second is not None:
            import os
            import signal
            os.killpg(second.pid, signal.SIGTERM)
            second.wait(30)

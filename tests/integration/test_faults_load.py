"""Faults under load: many concurrent runs, each followed live over SSE by a client that reconnects with
Last-Event-ID, while Redis, the model server or PostgreSQL restarts, or the workspace fills up. Each test
measures what the README's fault table reports (runs left running, events lost or delivered twice, steps
lost, time to recover) and records it in benchmark-results/faults.json. Marked `faults`; run by `make test`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pytest

from sparkpilot.db.migrate import upgrade
from sparkpilot.settings import WorkerSettings
from tests.helpers import (ModelServer, Stack, admin_client, fault_figures, free_port, migrated, record_fault,
                           scripted_env, start_redis, wait_for, wait_terminal)
from tests.load import Followers, submit_load, wait_all_terminal
from tests.private_stack import api, stack  # noqa: F401 - these tests kill their stack's worker or Chromium

pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]
LOAD = 50
WAIT_THEN_FINISH = {"policy": "replay", "actions": [{"name": "wait", "seconds": 1}, {"name": "finish", "answer": "ok"}]}


def _own_queue() -> dict[str, str]:
    """A queue and key prefix of its own, so the session's shared worker (another database) takes none of its runs."""
    tag = uuid.uuid4().hex[:8]
    return {"SPARKPILOT_QUEUE_NAME": f"test-faults-{tag}", "SPARKPILOT_KEY_PREFIX": f"sptest-faults-{tag}"}


def _start_load(stack: Stack, api: httpx.Client, pages) -> tuple[list[str], Followers]:  # noqa: ANN001
    """LOAD runs submitted at once, each followed live, once three of the first ten have finished."""
    run_ids = submit_load(api, LOAD, {"task": "load", "start_url": pages.url + "/index.html", **WAIT_THEN_FINISH})
    followers = Followers(stack.base_url, stack.token, run_ids, timeout=400)
    wait_for(lambda: sum(api.get(f"/api/v1/runs/{r}").json()["status"] == "succeeded" for r in run_ids[:10]) >= 3,
             120, "the first runs to finish")
    return run_ids, followers


def _steps_off(api: httpx.Client, runs: list[dict], expected: int) -> dict[str, int]:
    """Steps missing from (lost) or recorded twice in (repeated) the runs that succeeded, each of which must
    have recorded exactly `expected` steps: a resumed run goes on after what it recorded."""
    counts = [len(api.get(f"/api/v1/runs/{r['id']}/steps").json()) for r in runs if r["status"] == "succeeded"]
    return {"lost": sum(max(0, expected - n) for n in counts), "repeated": sum(max(0, n - expected) for n in counts)}


def test_redis_restart_under_load_loses_no_run_and_no_event(private_redis_stack, pages) -> None:  # noqa: ANN001
    """Redis (no persistence, as the machine's may be) is SIGKILLed mid-load and started again: the
    gateway's queue guard re-sends the queued runs it lost, running runs go on, and every client's
    stream resumes from its Last-Event-ID without a gap or a repeat."""
    stack, state = private_redis_stack
    with admin_client(stack) as api:
        run_ids, followers = _start_load(stack, api, pages)
        state["redis"].kill()
        state["redis"].wait(10)
        killed_at = time.time()
        time.sleep(2)
        state["redis"] = start_redis(state["port"], stack.logdir)
        runs = wait_all_terminal(api, run_ids, timeout=400)
        recovered_s = round(time.time() - killed_at, 2)
        followers.join()
        figures = followers.figures(api)
        statuses = [r["status"] for r in runs]
        assert statuses.count("succeeded") == LOAD, [(r["status"], r["reason"]) for r in runs if r["status"] != "succeeded"]
        assert figures["events_lost"] == figures["events_delivered_twice"] == 0, figures
        left = api.get("/api/v1/runs", params={"status": "running"}).json()["total"]
        assert left == 0 and _steps_off(api, runs, 2) == {"lost": 0, "repeated": 0}
        record_fault("redis_restart_under_load", outcome=f"all {LOAD} runs succeeded; queued runs re-sent; streams resumed",
                     runs=LOAD, redis_down_s=2, seconds_to_all_finished=recovered_s, runs_left_running=left,
                     steps_lost=0, steps_repeated=0, **figures)


def test_model_server_killed_mid_step_and_restarted_runs_go_on(base_env, tmp_path) -> None:  # noqa: ANN001
    """The model server is SIGKILLed while steps wait on it and started again: each waiting step retries
    until it is back (SPARKPILOT_INFERENCE_RESTART_WAIT_S) and every run ends on its own terms. The server is
    this test's own (a real vLLM), never the one the session's model tests share."""
    n = 16
    model = WorkerSettings.model_fields["inference_model"].default  # the embedded model the server serves
    model_server = ModelServer(env=base_env, log=tmp_path / "vllm.log")
    model_server.start()
    env = scripted_env(base_env, tmp_path, model_server.url, model, SPARKPILOT_INFERENCE_RESTART_WAIT_S="600")
    stack = Stack(env=env, logdir=tmp_path)
    try:
        stack.start_gateway()
        stack.start_worker()
        with admin_client(stack) as api:
            body = {"task": "miniwob click-test", "max_steps": 1, "env": {"type": "miniwob", "task": "click-test", "seed": 0},
                    "start_url": f"{stack.base_url}/benchmarks/miniwob/click-test.html"}
            run_ids = submit_load(api, n, body)
            followers = Followers(stack.base_url, stack.token, run_ids, timeout=900)
            wait_for(lambda: sum(api.get(f"/api/v1/runs/{r}").json()["status"] != "queued" for r in run_ids) >= 4,
                     300, "runs to reach the model")
            model_server.kill()
            killed_at = time.time()
            model_server.start()
            back_s = round(time.time() - killed_at, 2)
            runs = wait_all_terminal(api, run_ids, timeout=900)
            finished_s = round(time.time() - killed_at, 2)
            followers.join()
            figures = followers.figures(api)
            reasons = [r["reason"] for r in runs]
            assert not [x for x in reasons if x.startswith(("model server unreachable", "model error", "internal error"))], reasons
            assert _steps_off(api, runs, 1) == {"lost": 0, "repeated": 0}
            for r in runs:  # each run took its one step: the one that waited for the server was not lost
                assert len(api.get(f"/api/v1/runs/{r['id']}/steps").json()) == 1, r
            assert figures["events_lost"] == figures["events_delivered_twice"] == 0, figures
            left = api.get("/api/v1/runs", params={"status": "running"}).json()["total"]
            assert left == 0
            record_fault("model_server_sigkill_restart",
                         outcome=f"steps waited for the restart; all {n} runs ended on the environment's verdict",
                         runs=n, seconds_server_down=back_s, seconds_to_all_finished=finished_s, runs_left_running=left,
                         runs_succeeded=sum(r["status"] == "succeeded" for r in runs), steps_lost=0, steps_repeated=0, **figures)
    finally:
        stack.stop()
        model_server.stop()


@pytest.fixture
def full_workspace(base_env, tmp_path, pages):  # noqa: ANN001, ANN201
    """A stack whose workspace is a 4 MiB tmpfs the test may fill (root: `mount`), its database elsewhere."""
    mnt = tmp_path / "ws"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)]).returncode != 0:
        pytest.fail("this test mounts a small tmpfs as the workspace and needs root to (CI and this machine run as root)")
    env = dict(base_env, DATABASE_URL=f"sqlite:///{tmp_path / 'd.db'}", SPARKPILOT_WORKSPACE_DIR=str(mnt),
               SPARKPILOT_TRAJECTORIES_DIR=str(mnt / "trajectories"), **_own_queue())
    migrated(env["DATABASE_URL"])
    stack = Stack(env=env, logdir=tmp_path)
    try:
        stack.start_gateway()
        stack.start_worker()
        yield stack, mnt
    finally:
        stack.stop()
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_workspace_fails_runs_with_a_reason_and_recovers_when_freed(full_workspace, pages) -> None:  # noqa: ANN001
    stack, mnt = full_workspace
    with admin_client(stack) as api:
        body = {"task": "disk", "start_url": pages.url + "/index.html", **WAIT_THEN_FINISH}
        ok = api.post("/api/v1/runs", json=body).json()
        assert wait_terminal(api, ok["id"])["status"] == "succeeded"
        filler = mnt / "filler"
        with open(filler, "wb") as fh:  # fill every byte left
            try:
                while True:
                    fh.write(b"\0" * 65536)
            except OSError:
                pass
        filled_at = time.time()
        run_ids = submit_load(api, LOAD, body)
        followers = Followers(stack.base_url, stack.token, run_ids, timeout=300)
        runs = wait_all_terminal(api, run_ids, timeout=300)
        failed_s = round(time.time() - filled_at, 2)
        followers.join()
        for r in runs:
            assert r["status"] == "failed" and r["reason"].startswith("workspace disk full"), r
            steps = api.get(f"/api/v1/runs/{r['id']}/steps").json()
            assert steps and steps[0]["has_screenshot"] is False  # the step is kept, without its picture
        figures = followers.figures(api)
        assert figures["events_lost"] == figures["events_delivered_twice"] == 0, figures
        assert httpx.get(stack.base_url + "/health").json()["checks"]["worker"] == "ok"  # the worker lived on
        filler.unlink()
        after = api.post("/api/v1/runs", json=body).json()
        assert wait_terminal(api, after["id"])["status"] == "succeeded"
        record_fault("workspace_disk_full", outcome="runs failed 'workspace disk full', steps kept without screenshots; "
                     "the next run after freeing space succeeded", runs=len(run_ids), seconds_to_all_failed=failed_s,
                     **fault_figures(api, run_ids[0]), **figures)


@pytest.fixture
def private_postgres():  # noqa: ANN201
    """A private PostgreSQL cluster (initdb, as the `postgres` user) that the test may restart."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not bins or shutil.which("runuser") is None or os.geteuid() != 0:
        pytest.fail("this test runs its own PostgreSQL cluster: it needs PostgreSQL's binaries (scripts/test_postgres.sh "
                    "installs them), runuser and root")
    pg_ctl = bins[-1]
    home = Path(tempfile.mkdtemp(prefix="sparkpilot-pg-"))  # pytest's tmp folders are closed to other users
    os.chmod(home, 0o755)
    data, port = home / "pg", free_port()
    data.mkdir()
    shutil.chown(data, "postgres")
    as_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_pg, str(pg_ctl.parent / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
                   check=True, capture_output=True)
    ctl = [*as_pg, str(pg_ctl), "-D", str(data), "-l", str(data / "server.log"), "-w", "-o",
           f"-p {port} -c listen_addresses=127.0.0.1 -k /tmp"]
    subprocess.run([*ctl, "start"], check=True, capture_output=True)
    subprocess.run([*as_pg, "psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-c", "CREATE DATABASE sp"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/sp", ctl
    finally:
        subprocess.run([*ctl, "-m", "immediate", "stop"], check=False, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def test_postgres_restart_under_load_every_run_finishes(base_env, private_postgres, tmp_path, pages) -> None:  # noqa: ANN001
    url, ctl = private_postgres
    upgrade(url)
    env = dict(base_env, DATABASE_URL=url, SPARKPILOT_WORKSPACE_DIR=str(tmp_path / "ws"), **_own_queue())
    stack = Stack(env=env, logdir=tmp_path)
    stack.start_gateway()
    stack.start_worker()
    try:
        with admin_client(stack) as api:
            run_ids, followers = _start_load(stack, api, pages)
            restarted_at = time.time()
            subprocess.run([*ctl, "-m", "fast", "restart"], check=True, capture_output=True)
            down_s = round(time.time() - restarted_at, 2)
            runs = wait_all_terminal(api, run_ids, timeout=400)
            finished_s = round(time.time() - restarted_at, 2)
            followers.join()
            figures = followers.figures(api)
            assert [r["status"] for r in runs].count("succeeded") == LOAD, \
                [(r["status"], r["reason"]) for r in runs if r["status"] != "succeeded"]
            assert figures["events_lost"] == figures["events_delivered_twice"] == 0, figures
            left = api.get("/api/v1/runs", params={"status": "running"}).json()["total"]
            assert left == 0 and _steps_off(api, runs, 2) == {"lost": 0, "repeated": 0}
            record_fault("postgres_restart_under_load", outcome=f"all {LOAD} runs succeeded; writes waited for the database",
                         runs=LOAD, seconds_restart_took=down_s, seconds_to_all_finished=finished_s,
                         runs_left_running=left, steps_lost=0, steps_repeated=0, **figures)
    finally:
        stack.stop()


def _running_one(stack: Stack, run_ids: list[str]) -> tuple[str, str]:
    """(run id, worker) of the run that started last among those running, once three of `run_ids` succeeded
    (read from the database in one query, so the run has most of its one-second wait still ahead)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(stack.env["DATABASE_URL"])

    ours = ", ".join(f"'{r}'" for r in run_ids)  # hex ids

    def pick() -> tuple[str, str] | None:
        with engine.connect() as c:
            done = c.execute(text(f"SELECT count(*) FROM runs WHERE status = 'succeeded' AND id IN ({ours})")).scalar_one()
            row = c.execute(text(f"SELECT id, worker FROM runs WHERE status = 'running' AND id IN ({ours}) "
                                 "ORDER BY started_at DESC")).first()
        return (row[0], row[1]) if done >= 3 and row is not None else None
    try:
        return wait_for(pick, 120, "a running run after the first ones finished", interval=0.05)
    finally:
        engine.dispose()


def _load_figures(api: httpx.Client, run_ids: list[str], followers: Followers, t0: float) -> tuple[list[dict], dict]:
    runs = wait_all_terminal(api, run_ids, timeout=400)
    finished_s = round(time.time() - t0, 2)
    followers.join()
    left = api.get("/api/v1/runs", params={"status": "running"}).json()["total"]
    return runs, {"runs": len(run_ids), "seconds_to_all_finished": finished_s, "runs_left_running": left,
                  **followers.figures(api)}


def test_pool_child_sigkill_under_load_every_run_finishes(stack, api: httpx.Client, pages) -> None:  # noqa: ANN001
    run_ids = submit_load(api, LOAD, {"task": "load", "start_url": pages.url + "/index.html", **WAIT_THEN_FINISH})
    followers = Followers(stack.base_url, stack.token, run_ids, timeout=400)
    victim, worker = _running_one(stack, run_ids)
    killed_at = time.time()
    os.kill(int(worker.rsplit(":", 1)[1]), 9)
    runs, figures = _load_figures(api, run_ids, followers, killed_at)
    assert [r["status"] for r in runs].count("succeeded") == LOAD, [(r["status"], r["reason"]) for r in runs if r["status"] != "succeeded"]
    assert next(r for r in runs if r["id"] == victim)["attempts"] == 2
    assert figures["events_lost"] == figures["events_delivered_twice"] == figures["runs_left_running"] == 0, figures
    assert _steps_off(api, runs, 2) == {"lost": 0, "repeated": 0}
    record_fault("pool_child_sigkill_under_load", outcome=f"the killed child's run resumed (attempts 2); all {LOAD} succeeded",
                 steps_lost=0, steps_repeated=0, **figures)


def test_chromium_sigkill_under_load_every_run_finishes(stack, api: httpx.Client, pages) -> None:  # noqa: ANN001
    from tests.integration.test_faults import _descendants, _name

    run_ids = submit_load(api, LOAD, {"task": "load", "start_url": pages.url + "/index.html", **WAIT_THEN_FINISH})
    followers = Followers(stack.base_url, stack.token, run_ids, timeout=400)
    _running_one(stack, run_ids)
    chromium = [p for p in _descendants(stack.worker.pid) if _name(p).startswith(("chromium", "chrome"))]
    killed_at = time.time()
    for pid in chromium:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    runs, figures = _load_figures(api, run_ids, followers, killed_at)
    assert chromium and [r["status"] for r in runs].count("succeeded") == LOAD, [(r["status"], r["reason"]) for r in runs if r["status"] != "succeeded"]
    assert figures["events_lost"] == figures["events_delivered_twice"] == figures["runs_left_running"] == 0, figures
    assert _steps_off(api, runs, 2) == {"lost": 0, "repeated": 0}
    record_fault("chromium_sigkill_under_load", outcome=f"every Chromium of the worker killed; relaunched; all {LOAD} succeeded",
                 processes_killed=len(chromium), steps_lost=0, steps_repeated=0, **figures)


def test_whole_worker_sigkill_under_load_every_run_finishes(stack, api: httpx.Client, pages) -> None:  # noqa: ANN001
    run_ids = submit_load(api, LOAD, {"task": "load", "start_url": pages.url + "/index.html", **WAIT_THEN_FINISH})
    followers = Followers(stack.base_url, stack.token, run_ids, timeout=400)
    _running_one(stack, run_ids)
    killed_at = time.time()
    stack.kill_worker()
    try:
        time.sleep(2)
    finally:
        stack.start_worker()
    runs, figures = _load_figures(api, run_ids, followers, killed_at)
    # The runs in flight when the whole worker died are handed back to the queue by the reaper once their
    # heartbeat is stale, and resumed; every queued run is executed by the restarted worker.
    assert [r["status"] for r in runs].count("succeeded") == LOAD, [(r["status"], r["reason"]) for r in runs if r["status"] != "succeeded"]
    resumed = sum(r["attempts"] == 2 for r in runs)
    assert 1 <= resumed <= 2  # the worker's two slots
    assert figures["events_lost"] == figures["events_delivered_twice"] == figures["runs_left_running"] == 0, figures
    assert _steps_off(api, runs, 2) == {"lost": 0, "repeated": 0}
    record_fault("worker_sigkill_under_load", outcome=f"{resumed} in-flight runs queued again and resumed; all {LOAD} "
                 "succeeded on the restarted worker", runs_resumed=resumed, steps_lost=0, steps_repeated=0, **figures)

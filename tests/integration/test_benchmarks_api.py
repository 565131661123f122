"""The dashboard's data through the real gateway: saved benchmark results (GET /api/v1/benchmarks) and the
system status (GET /api/v1/system: health of every service, queue depths, model tokens/s, memory, recent errors)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
import redis

from agent.bench import Episode, _add_step, summarize
from sparkpilot.learn import overall, task_rows
from sparkpilot.queue import PRIORITY_SEP, PRIORITY_STEPS
from sparkpilot.stats import pct, wilson
from tests.helpers import FINISH, Stack, free_port, in_process_gateway, wait_for, wait_terminal
from tests.real_model import api, stack  # noqa: F401 - this module's stack serves the real model

# One step's timings as the worker records them (ms): the model's latency and the whole step.
STEP = {"observe": 9.5, "prompt": 1.2, "model": 410.0, "parse_guard": 0.4, "act": 31.0, "persist": 2.1}


def episodes(model_fail_every: int = 3) -> list[Episode]:
    """Real Episode objects filled by the benchmark's own step accounting, two tasks × six seeds."""
    out = []
    for task, steps in (("click-button", 2), ("enter-text", 4)):
        for seed in range(6):
            win = task == "click-button" and seed % model_fail_every != 0
            ep = Episode(task, seed, win, 1.0 if win else -1.0, "done" if win else "max steps", steps, 1.5 + seed / 10)
            for i in range(steps):
                _add_step(ep, dict(STEP, step=STEP["model"] + 40.0 + 7 * i + seed))
            out.append(ep)
    return out


def write_results(folder: Path) -> dict[str, dict]:
    """Saved results as scripts/benchmark.sh leaves them: MiniWoB++ reports from agent.bench.summarize (a base
    model and an adapter version, one older one without the histogram), a learning report, two broken files."""
    folder.mkdir(parents=True, exist_ok=True)
    reports = {}
    for day, model, fail_every in (("01", "smollm2-135m-instruct", 2), ("02", "learner@v1", 3)):
        name = f"miniwob-202503{day}T100000Z.json"
        reports[name] = summarize(episodes(fail_every), {"suite": "miniwob", "policy": "model", "model": model,
                                                         "through_stack": True, "max_steps": 5}, 60.0)
        reports[name]["created_at"] = f"2025-03-{day}T10:00:00+00:00"  # summarize says when it ran: now
    old = summarize(episodes(), {"suite": "miniwob", "policy": "replay", "model": "smollm2-135m-instruct"}, 30.0)
    del old["harness_histogram_ms"], old["created_at"]  # as saved before those were recorded
    reports["miniwob-20250201T090000Z.json"] = old
    base = {"click-button": [2, 10], "enter-text": [0, 10]}
    better = {"click-button": [7, 10], "enter-text": [1, 10]}
    reports["learning-20250303T080000Z.json"] = {
        "suite": "learning", "tasks": list(base), "rounds_requested": 1, "started_at": "2025-03-03T08:00:00+00:00",
        "baseline": overall(base) | {"model": "smollm2-135m-instruct", "tasks": task_rows(base)},
        "rounds": [{"round": 1, "job": "j1", "model": "learner@v1", "promoted": True, "gate": "candidate 0.40 > 0.10",
                    **overall(better), "tasks": task_rows(better)}]}
    for name, report in reports.items():
        (folder / name).write_text(json.dumps(report, indent=2))
    (folder / "miniwob-20250304T000000Z.json").write_text('{"suite": "miniwob", "episodes": 3, "tas')
    (folder / "learning-20250305T000000Z.json").write_text(json.dumps({"suite": "learning", "rounds": "many"}))
    (folder / "miniwob-20250306T000000Z.json").write_bytes(b'{"suite": "miniwob", "model": "\xff\xfe"}')
    (folder / "faults.json").write_text("{}")  # other suites' files are not benchmark results of this page
    return reports


def bench_gateway(stack: Stack, folder: Path, logdir: Path, **extra: str) -> Stack:
    """A second gateway server of the running stack (same database, Redis, worker, model server) reading
    `folder`: for a browser, which needs a real address."""
    gw = Stack(env=dict(stack.env, SPARKPILOT_BENCHMARK_DIR=str(folder), **extra), logdir=logdir)
    gw.start_gateway()
    return gw


def bench_app(stack: Stack, folder: Path, **extra: str):  # noqa: ANN201 - a context manager of an httpx.Client
    """The gateway app in process on the running stack's services, reading `folder`."""
    return in_process_gateway(dict(stack.env, SPARKPILOT_BENCHMARK_DIR=str(folder), **extra), stack.token)


@pytest.fixture(scope="module")
def bench(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, dict, str]]:
    """A gateway reading a folder of saved results, with its own run queue that no worker consumes."""
    folder = tmp_path_factory.mktemp("bench") / "benchmark-results"
    reports = write_results(folder)
    queue = f"test-bench-{uuid.uuid4().hex[:8]}"
    try:
        with bench_app(stack, folder, SPARKPILOT_QUEUE_NAME=queue) as c:
            yield c, reports, queue
    finally:
        redis.Redis.from_url(stack.env["REDIS_URL"]).delete(queue)


def test_saved_results_are_listed_with_intervals_tasks_and_harness_overhead(bench) -> None:  # noqa: ANN001
    client, reports, _queue = bench
    resp = client.get("/api/v1/benchmarks")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    by_name = {r["name"]: r for r in body["results"]}
    assert set(by_name) == {*reports, "miniwob-20250304T000000Z.json", "learning-20250305T000000Z.json",
                            "miniwob-20250306T000000Z.json"}
    # Readable results first, newest first; then the broken files.
    assert [r["name"] for r in body["results"][:4]] == [
        "learning-20250303T080000Z.json", "miniwob-20250302T100000Z.json", "miniwob-20250301T100000Z.json",
        "miniwob-20250201T090000Z.json"]

    adapter = by_name["miniwob-20250302T100000Z.json"]
    eps = episodes(3)
    wins = sum(e.success for e in eps)
    harness = [v for e in eps for v in e.harness_ms]
    assert adapter["error"] is None and adapter["suite"] == "miniwob" and adapter["model"] == "learner@v1"
    assert (adapter["episodes"], adapter["successes"]) == (12, wins) == (12, 4)
    assert adapter["success_rate"] == round(4 / 12, 4) and adapter["success_ci95"] == list(wilson(4, 12))
    assert adapter["created_at"].startswith("2025-03-02T10:00:00")
    tasks = {t["task"]: t for t in adapter["tasks"]}
    assert tasks["click-button"]["successes"] == 4 and tasks["click-button"]["ci95"] == list(wilson(4, 6))
    assert tasks["enter-text"]["success_rate"] == 0.0 and tasks["enter-text"]["mean_steps"] == 4.0
    assert adapter["harness_p50_ms"] == pct(harness, 50) and adapter["harness_p95_ms"] == pct(harness, 95)
    hist = adapter["harness_histogram_ms"]
    assert len(hist["edges"]) == len(hist["counts"]) + 1 and sum(hist["counts"]) == len(harness) == 36
    assert hist["edges"][0] <= min(harness) and hist["edges"][-1] >= max(harness)
    assert all(a < b for a, b in zip(hist["edges"], hist["edges"][1:]))

    older = by_name["miniwob-20250201T090000Z.json"]
    assert older["harness_histogram_ms"] is None and older["harness_p50_ms"] == pct(harness, 50)
    assert older["policy"] == "replay" and older["created_at"].startswith("2025-02-01T09:00:00")  # from the name

    learning = by_name["learning-20250303T080000Z.json"]
    assert learning["suite"] == "learning" and learning["model"] == "learner@v1"
    assert [(r["round"], r["model"], r["success_rate"]) for r in learning["rounds"]] == [
        (0, "smollm2-135m-instruct", 0.1), (1, "learner@v1", 0.4)]
    assert learning["rounds"][1]["ci95"] == list(wilson(8, 20)) and learning["success_ci95"] == list(wilson(8, 20))

    truncated = by_name["miniwob-20250304T000000Z.json"]
    assert truncated["error"].startswith("invalid JSON") and truncated["success_rate"] is None
    assert by_name["learning-20250305T000000Z.json"]["error"].startswith("not a benchmark result")
    assert by_name["miniwob-20250306T000000Z.json"]["error"].startswith("not UTF-8 text")


def test_benchmarks_need_a_token_and_a_missing_folder_is_empty(stack: Stack, tmp_path: Path) -> None:  # noqa: ANN001
    assert httpx.get(stack.base_url + "/api/v1/benchmarks").status_code == 401
    with bench_app(stack, tmp_path / "never-made") as client:
        resp = client.get("/api/v1/benchmarks")
        assert resp.status_code == 200 and resp.json() == {"directory": str(tmp_path / "never-made"), "results": []}


def test_system_reports_services_queues_tokens_memory_and_errors(bench, api: httpx.Client, stack: Stack) -> None:  # noqa: ANN001
    client, _reports, queue = bench
    # A run on a queue no worker consumes: it waits there. A run that fails: a recent error with its reason.
    waiting = client.post("/api/v1/runs", json={"task": "waits", **FINISH})
    assert waiting.status_code == 201, waiting.text
    failed = api.post("/api/v1/runs", json={"task": "dashboard error", "start_url": f"http://127.0.0.1:{free_port()}/",
                                            **FINISH}).json()
    done = wait_terminal(api, failed["id"])
    assert done["status"] == "failed"
    try:
        first = client.get("/api/v1/system")
        assert first.status_code == 200, first.text
        before = first.json()["model_server"]["generation_tokens_total"]
        out = api.post("/api/v1/inference", json={"prompt": "Count to ten.", "max_tokens": 16})
        assert out.status_code == 200, out.text
        # Readings 0.6 s apart (the gateway measures the rate between readings at least 0.5 s apart).
        body = wait_for(lambda: (b := client.get("/api/v1/system").json())["model_server"]["generation_tokens_total"] > before
                        and b, 30, "the model server's token counter to move", interval=0.6)
    finally:
        api_cancel = client.post(f"/api/v1/runs/{waiting.json()['id']}/cancel")
        assert api_cancel.status_code == 200, api_cancel.text

    services = {s["name"]: s for s in body["services"]}
    assert set(services) == {"gateway", "database", "redis", "worker", "trainer", "inference"}
    for name in ("gateway", "database", "redis", "worker", "inference"):
        assert services[name]["status"] == "ok", services[name]
    assert services["worker"]["instances"] >= 1
    assert services["trainer"]["detail"] == stack.health()["checks"]["trainer"]  # the /health check, reused
    assert body["status"] == "ok"

    q = body["queues"]
    lists = [queue, *(f"{queue}{PRIORITY_SEP}{p}" for p in PRIORITY_STEPS[1:])]  # one per priority step
    assert q["runs_waiting"] == sum(redis.Redis.from_url(stack.env["REDIS_URL"]).llen(k) for k in lists) == 1
    assert q["runs_queued"] >= 1 and q["training_waiting"] >= 0 and q["runs_active"] >= 0

    m = body["model_server"]
    assert m["reachable"] and m["detail"] == "ok"
    assert m["generation_tokens_per_s"] > 0 and m["window_s"] > 0
    assert m["decode_tokens_per_s"] > 0 and m["prompt_tokens_total"] > 0

    mem = body["memory"]
    assert 0 < mem["host_available_bytes"] < mem["host_total_bytes"]
    assert 20 * 2**20 < mem["gateway_rss_bytes"] < mem["host_total_bytes"]

    errors = {e["id"]: e for e in body["recent_errors"]}
    assert failed["id"] in errors, body["recent_errors"]
    assert errors[failed["id"]] | {"at": None} == {"kind": "run", "id": failed["id"], "title": "dashboard error",
                                                   "reason": done["reason"], "at": None}
    assert datetime.fromisoformat(body["checked_at"]) <= datetime.now(timezone.utc)


def test_system_is_degraded_not_500_when_the_model_server_is_down(stack: Stack, tmp_path: Path) -> None:
    with bench_app(stack, tmp_path, SPARKPILOT_INFERENCE_URL=f"http://127.0.0.1:{free_port()}/v1") as client:
        resp = client.get("/api/v1/system")
        assert resp.status_code == 200, resp.text
        body = resp.json()
        inference = {s["name"]: s for s in body["services"]}["inference"]
        assert inference["status"] == "down" and body["status"] == "degraded"
        assert body["model_server"]["reachable"] is False and body["model_server"]["detail"].startswith("down")

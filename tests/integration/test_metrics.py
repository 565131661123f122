"""Metrics from the real services: step phases, HTTP traffic, training jobs, model errors, and a Grafana
dashboard and Prometheus config that name series the gateway and vLLM really expose."""

from __future__ import annotations

import json
import re
import tempfile
import uuid
from pathlib import Path

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import ROOT, Stack, wait_terminal

DASHBOARD = ROOT / "config" / "grafana" / "dashboards" / "sparkpilot.json"
SUFFIXES = ("_bucket", "_sum", "_count", "_total", "_created")


def _samples(text: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def _exposed(text: str) -> set[str]:
    """Every series name a scrape declares, with or without samples yet (a counter nobody incremented)."""
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES)
        names.update(sample.name for sample in family.samples)
    return names


def test_metrics_cover_steps_phases_http_and_training(api: httpx.Client, pages) -> None:  # noqa: ANN001
    run = api.post("/api/v1/runs", json={"task": "metrics", "start_url": pages.url + "/index.html", "policy": "replay",
                                         "actions": [{"name": "scroll", "dy": 100}, {"name": "finish", "answer": "x"}]})
    assert wait_terminal(api, run.json()["id"])["status"] == "succeeded"
    samples = _samples(api.get("/metrics").text)
    phases = {s.labels["phase"]: s.value for s in samples["sparkpilot_step_phase_seconds_count"]}
    assert {"observe", "prompt", "model", "parse_guard", "act", "persist"} <= set(phases)
    assert min(phases[p] for p in ("observe", "act", "persist")) >= 2  # this run's two steps at least
    steps = samples["sparkpilot_step_duration_seconds_count"][0].value
    assert steps >= phases["persist"] - 0.5  # one persist per recorded step
    http = {(s.labels["route"], s.labels["status"]) for s in samples["sparkpilot_http_requests_total"]}
    assert ("/api/v1/runs/{run_id}", "200") in http and ("/api/v1/runs", "201") in http  # templates, not ids
    assert any(s.labels["route"] == "/api/v1/runs/{run_id}" for s in samples["sparkpilot_http_request_duration_seconds_bucket"])
    assert {s.labels["status"] for s in samples["sparkpilot_training_jobs"]} >= {"queued", "running", "succeeded"}
    assert samples["process_resident_memory_bytes"][0].value > 10_000_000


def test_a_dead_model_server_is_counted_as_a_model_error(base_env: dict[str, str], pages) -> None:  # noqa: ANN001
    from tests.helpers import migrated

    folder = Path(tempfile.mkdtemp(prefix="sparkpilot-metrics-"))
    tag = uuid.uuid4().hex[:8]
    env = dict(base_env, DATABASE_URL=f"sqlite:///{folder / 'm.db'}", SPARKPILOT_QUEUE_NAME=f"test-m-{tag}",
               SPARKPILOT_KEY_PREFIX=f"sptest-m-{tag}", SPARKPILOT_INFERENCE_URL="http://127.0.0.1:9/v1",
               SPARKPILOT_INFERENCE_RETRIES="1", SPARKPILOT_INFERENCE_TIMEOUT_S="2")
    migrated(env["DATABASE_URL"])
    stack = Stack(env=env, logdir=folder)
    try:
        stack.start_gateway()
        stack.start_worker(concurrency=1)
        api = httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.token}"}, timeout=30)
        run = api.post("/api/v1/runs", json={"task": "x", "start_url": pages.url + "/index.html"}).json()
        done = wait_terminal(api, run["id"], timeout=90)
        assert done["status"] == "failed" and done["reason"].startswith("model server unreachable"), done
        errors = {s.labels["kind"]: s.value for s in _samples(api.get("/metrics").text)["sparkpilot_model_errors_total"]}
        assert errors == {"unreachable": 1.0}
    finally:
        stack.stop()


def test_the_dashboard_and_scrape_config_name_real_series(api: httpx.Client, vllm: str) -> None:
    exposed = _exposed(api.get("/metrics").text)
    exposed |= _exposed(httpx.get(vllm.removesuffix("/v1") + "/metrics", timeout=10).text)
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "sparkpilot" and len(dashboard["panels"]) >= 12
    for panel in dashboard["panels"]:
        found = []
        for target in panel["targets"]:
            series = {m for m in re.findall(r"[a-z_:][a-z0-9_:]*", target["expr"])
                      if m.startswith(("sparkpilot_", "vllm:", "process_"))}
            found.append(bool(series) and series <= exposed)
        assert all(found), f"panel {panel['title']!r}: a query names a series nothing exposes"
    for needed in ("success rate", "step latency", "queue depth", "tokens per second", "memory"):
        assert any(needed in p["title"].lower() for p in dashboard["panels"]), needed

    scrape = yaml.safe_load((ROOT / "config" / "prometheus.yml").read_text())
    targets = {j["job_name"]: j["static_configs"][0]["targets"] for j in scrape["scrape_configs"]}
    assert targets["sparkpilot"] == ["gateway:8000"] and targets["vllm"] == ["vllm:8000"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["prometheus"]["profiles"] == ["observability"]
    assert "SPARKPILOT_METRICS_TOKEN" in " ".join(compose["services"]["prometheus"]["command"])

"""`sparkpilot learn`: the self-improving loop driven through the running stack's API.

First the baseline: the serving model on the held-out eval seeds (greedy runs marked `purpose: eval`,
never training data). Then each round: collect episodes on the serving model with sampling (runs
through the worker, all queued at once so vLLM batches them) → a training job on every rewarded
episode collected so far → the job's evaluation (the current version's episodes are reused, the
candidate's are new) → its eval gate → the next round collects with whatever serves then. Only the
API is used: what this measures is the product.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import httpx

from sparkpilot.stats import wilson

TARGET_TASKS = ["click-button", "click-link", "click-dialog", "click-tab", "focus-text", "click-test-2", "enter-text",
                "click-checkboxes"]
TERMINAL = {"succeeded", "failed", "cancelled"}
COLLECT_SEED_BASE = 1000  # round r collects on seeds 1000·r + i; evaluation seeds stay below 1000


class LearnError(RuntimeError):
    """The loop cannot go on (the API refused something, or a job failed); the message says why."""


@dataclass
class LearnConfig:
    """What one `sparkpilot learn` invocation does."""

    tasks: list[str]
    rounds: int = 2
    episodes_per_task: int = 10
    eval_seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    name: str = "learner"
    temperature: float = 1.0
    max_steps: int = 6
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    gate_margin: float | None = None
    poll_s: float = 1.0

    def collect_seeds(self, round_no: int) -> list[int]:
        """The seeds round `round_no` (1-based) collects on: disjoint from other rounds' and from the eval seeds."""
        return [COLLECT_SEED_BASE * round_no + i for i in range(self.episodes_per_task)]


Progress = Callable[[str, int, int], None]  # (description, done, total)


class LearnClient:
    """The few API calls the loop makes."""

    def __init__(self, base_url: str, token: str, timeout: float = 60) -> None:
        self.api = httpx.Client(base_url=base_url.rstrip("/"), headers={"Authorization": f"Bearer {token}"},
                                timeout=timeout)
        self.base_url = base_url.rstrip("/")

    def _ok(self, resp: httpx.Response) -> Any:
        if resp.status_code >= 400:
            try:
                err = resp.json()["error"]
                raise LearnError(f"{resp.request.method} {resp.request.url.path}: {resp.status_code} "
                                 f"{err['code']}: {err['message']}")
            except (ValueError, KeyError):
                raise LearnError(f"{resp.request.method} {resp.request.url.path}: {resp.status_code} {resp.text[:200]}") from None
        return resp.json()

    def serving(self, name: str) -> str | None:
        """`name`'s promoted version (NAME@vN), or None when it has none."""
        for row in self._ok(self.api.get("/api/v1/models")):
            if row["kind"] == "adapter" and row["current"] and row["name"].split("@")[0] == name:
                return row["name"]
        return None

    def start_run(self, task: str, seed: int, model: str | None, temperature: float, max_steps: int,
                  purpose: str = "task") -> str:
        """Queue one MiniWoB episode as a run; its id."""
        body: dict[str, Any] = {"task": f"learn ({purpose}): {task} seed {seed}", "max_steps": max_steps,
                                "start_url": f"{self.base_url}/benchmarks/miniwob/{task}.html",
                                "env": {"type": "miniwob", "task": task, "seed": seed}, "temperature": temperature,
                                "purpose": purpose}
        if model:
            body["model"] = model
        return self._ok(self.api.post("/api/v1/runs", json=body))["id"]

    def run(self, run_id: str) -> dict[str, Any]:
        """One run."""
        return self._ok(self.api.get(f"/api/v1/runs/{run_id}"))

    def finished(self, run_ids: set[str]) -> dict[str, dict[str, Any]]:
        """Those of `run_ids` that have ended: one page of the newest runs, then single reads for any older."""
        page = self._ok(self.api.get("/api/v1/runs", params={"limit": 200}))["items"]
        seen = {r["id"]: r for r in page if r["id"] in run_ids}
        for run_id in run_ids - set(seen):  # pushed off the first page by newer runs
            seen[run_id] = self.run(run_id)
        return {i: r for i, r in seen.items() if r["status"] in TERMINAL}

    def create_job(self, body: dict[str, Any]) -> dict[str, Any]:
        """Queue a training job."""
        return self._ok(self.api.post("/api/v1/training/jobs", json=body))

    def job(self, job_id: str) -> dict[str, Any]:
        """One training job."""
        return self._ok(self.api.get(f"/api/v1/training/jobs/{job_id}"))

    def metrics(self, job_id: str) -> dict[str, Any]:
        """A job's metrics."""
        return self._ok(self.api.get(f"/api/v1/training/jobs/{job_id}/metrics"))

    def close(self) -> None:
        """Close the HTTP client."""
        self.api.close()


def episodes(client: LearnClient, cfg: LearnConfig, label: str, seeds: list[int], model: str | None,
             temperature: float, purpose: str, progress: Progress) -> tuple[dict[str, list[int]], str]:
    """Queue every (task, seed) episode at once, wait for all; ({task: [rewarded, episodes]}, the model that ran)."""
    ids = [(task, client.start_run(task, seed, model, temperature, cfg.max_steps, purpose))
           for task in cfg.tasks for seed in seeds]
    table = {t: [0, 0] for t in cfg.tasks}
    pending = {run_id: task for task, run_id in ids}
    ran = model or ""
    progress(label, 0, len(ids))
    while pending:
        time.sleep(cfg.poll_s)
        for run_id, run in client.finished(set(pending)).items():
            ran = run.get("model") or ran  # `model` None runs what serves by default: the run says which
            task = pending.pop(run_id)
            table[task][0] += int((run.get("reward") or 0) > 0)
            table[task][1] += 1
        progress(label, len(ids) - len(pending), len(ids))
    return table, ran


def job_body(cfg: LearnConfig, since: datetime) -> dict[str, Any]:
    """The round's training job: every rewarded episode of the tasks since the loop started, held-out eval seeds."""
    body: dict[str, Any] = {
        "name": cfg.name, "method": "sft", "promote": "auto",
        "dataset": {"runs": {"tasks": cfg.tasks, "since": since.isoformat()}},
        "hyperparameters": cfg.hyperparameters,
        "eval": {"tasks": cfg.tasks, "seeds": cfg.eval_seeds, "max_steps": cfg.max_steps,
                 "reuse_since": since.isoformat()},
    }
    if cfg.gate_margin is not None:
        body["eval"]["gate_margin"] = cfg.gate_margin
    return body


def wait_job(client: LearnClient, job_id: str, round_no: int, poll_s: float, progress: Progress) -> dict[str, Any]:
    """Follow a job to its end, relaying phase progress; the finished job."""
    while True:
        job = client.job(job_id)
        p = job.get("progress") or {}
        phase = job.get("phase") or "queued"
        if phase == "train" and p.get("total"):
            loss = f", loss {p['loss']:.3f}" if isinstance(p.get("loss"), (int, float)) else ""
            progress(f"round {round_no}: train{loss}", int(p.get("step") or 0), int(p["total"]))
        elif phase == "evaluate" and p.get("episodes"):
            progress(f"round {round_no}: evaluate {p.get('model', '')}", int(p.get("episodes_done") or 0), int(p["episodes"]))
        else:
            progress(f"round {round_no}: {phase}", 0, 0)
        if job["status"] in TERMINAL:
            return job
        time.sleep(poll_s)


def task_rows(table: dict[str, list[int]]) -> list[dict[str, Any]]:
    """Per-task successes, episodes, rate and 95% interval."""
    return [{"task": t, "successes": k, "episodes": n, "success_rate": round(k / n, 4) if n else 0.0,
             "ci95": wilson(k, n)} for t, (k, n) in table.items()]


def overall(table: dict[str, list[int]]) -> dict[str, Any]:
    """The overall rate and its interval."""
    k, n = sum(v[0] for v in table.values()), sum(v[1] for v in table.values())
    return {"successes": k, "episodes": n, "success_rate": round(k / n, 4) if n else 0.0, "ci95": wilson(k, n)}


def learn(client: LearnClient, cfg: LearnConfig, progress: Progress,
          on_round: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Baseline, then the rounds; the report (`baseline_success_rate`, `rounds`, per-task rows)."""
    since = datetime.now(timezone.utc)
    report: dict[str, Any] = {"suite": "learning", "tasks": cfg.tasks, "rounds_requested": cfg.rounds,
                              "episodes_per_task": cfg.episodes_per_task, "eval_seeds": cfg.eval_seeds,
                              "temperature": cfg.temperature, "max_steps": cfg.max_steps, "name": cfg.name,
                              "started_at": since.isoformat(), "rounds": []}
    serving = client.serving(cfg.name)
    t0 = time.perf_counter()
    current, ran = episodes(client, cfg, "baseline", cfg.eval_seeds, serving, 0.0, "eval", progress)
    report["baseline"] = overall(current) | {"model": ran, "tasks": task_rows(current),
                                             "minutes": round((time.perf_counter() - t0) / 60, 2)}
    report["baseline_success_rate"] = report["baseline"]["success_rate"]
    rewarded = 0
    for round_no in range(1, cfg.rounds + 1):
        t0 = time.perf_counter()
        collected, _ = episodes(client, cfg, f"round {round_no}: collecting", cfg.collect_seeds(round_no), serving,
                                cfg.temperature, "task", progress)
        minutes: dict[str, float] = {"collect": round((time.perf_counter() - t0) / 60, 2)}
        row: dict[str, Any] = {"round": round_no, "collected": task_rows(collected)}
        rewarded += sum(k for k, _n in collected.values())
        if not rewarded:
            # Nothing rewarded yet: no data to learn from; the serving model stays.
            row |= {"job": None, "model": serving or ran, "promoted": False,
                    "gate": "not trained: no rewarded episode collected yet", **overall(current),
                    "tasks": task_rows(current)}
        else:
            job = client.create_job(job_body(cfg, since))
            job = wait_job(client, job["id"], round_no, cfg.poll_s, progress)
            if job["status"] != "succeeded":
                raise LearnError(f"round {round_no}: training job {job['id']} {job['status']}: {job.get('reason')}")
            metrics = client.metrics(job["id"])
            ev, gate = metrics["eval"], metrics["gate"]
            promoted = bool(gate["promoted"])
            current = ev["candidate_table"] if promoted else ev["current_table"]
            serving = gate["candidate"] if promoted else gate["current"]
            minutes |= dict(metrics.get("minutes") or {})
            row |= {"job": job["id"], "model": serving, "promoted": promoted, "gate": gate["reason"],
                    "candidate": gate["candidate"], "candidate_success_rate": gate["candidate_rate"],
                    "current_success_rate": gate["current_rate"], **overall(current),
                    "examples": (metrics.get("prepare") or {}).get("train_unique"), "tasks": task_rows(current)}
        row["minutes"] = minutes | {"total": round((time.perf_counter() - t0) / 60, 2)}
        report["rounds"].append(row)
        if on_round:
            on_round(row)
    report["final_success_rate"] = report["rounds"][-1]["success_rate"] if report["rounds"] else None
    return report

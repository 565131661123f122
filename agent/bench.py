"""The MiniWoB++ benchmark: episodes in process (agent loop + Playwright here) or through the stack.

The `replay` policy plays a fixed, task-blind script (clicks in a corner, then finish). It measures
the harness's own overhead; its success rate is not the agent's score and is never reported as one.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

from agent.background import OrderedWriter
from agent.loop import Hooks, LoopConfig, Outcome, StepRecord, run_agent
from agent.miniwob import MiniwobEpisode, MiniwobServer, episode_outcome
from agent.observe import bid_salt
from agent.policies import ModelPolicy, Policy, ReplayPolicy
from sparkpilot.profiles import TEXT_DEFAULT, served_profile
from agent.chromium import CHROMIUM_ARGS
from sparkpilot.settings import WorkerSettings
from sparkpilot.stats import pct, wilson

DEFAULT_TASKS = ["click-button", "click-link", "click-test", "click-test-2", "click-checkboxes", "click-option",
                 "enter-text", "focus-text", "choose-list", "login-user"]
DEFAULT_SEEDS = [0, 1]
REPLAY_SCRIPT = [{"name": "click_xy", "x": 2, "y": 2}] * 2 + [{"name": "finish", "answer": ""}]
HARNESS_PARTS = ("observe", "prompt", "parse_guard", "act", "persist")


@dataclass
class Episode:
    """One task × seed."""

    task: str
    seed: int
    success: bool
    reward: float | None
    reason: str
    steps: int
    wall_s: float
    harness_ms: list[float] = field(default_factory=list)
    parts_ms: dict[str, list[float]] = field(default_factory=dict)
    model_ms: list[float] = field(default_factory=list)


def _add_step(ep: Episode, timings: dict[str, Any]) -> None:
    parts = {k: float(timings.get(k, 0.0)) for k in HARNESS_PARTS}
    for k, v in parts.items():
        ep.parts_ms.setdefault(k, []).append(v)
    model = float(timings.get("model", 0.0))
    # The harness's overhead: the step's wall time less the model's own latency (older records: the parts).
    ep.harness_ms.append(round(float(timings["step"]) - model, 2) if "step" in timings else sum(parts.values()))
    ep.model_ms.append(model)


class _FileHooks(Hooks):
    """In-process persistence: each step as a JSON line plus its PNG, like the worker's recorder, written in order
    on a background thread (off the step's critical path, as in the worker)."""

    def __init__(self, out_dir: Path, episode: MiniwobEpisode, writer: OrderedWriter) -> None:
        self.out_dir, self.episode, self.writer = out_dir, episode, writer
        self.records: list[StepRecord] = []
        self.fh = (out_dir / "steps.jsonl").open("a")

    def record(self, step: StepRecord) -> None:
        n = len(self.records)
        self.records.append(step)
        self.writer.submit(lambda: self._write(n, step))

    def _write(self, n: int, step: StepRecord) -> None:
        t0 = time.perf_counter()
        if step.observation.screenshot:
            (self.out_dir / f"{n:06d}.png").write_bytes(step.observation.screenshot)
        step.timings_ms["persist"] = round((time.perf_counter() - t0) * 1000, 2)
        self.fh.write(json.dumps({"action": step.action, "raw": step.raw_output, "error": step.error,
                                  "obs": step.observation.summary(), "timings": step.timings_ms,
                                  "model_metrics": step.model_metrics}) + "\n")
        self.fh.flush()

    def env_outcome(self) -> Outcome | None:
        return episode_outcome(self.episode)

    def env_judges_end(self) -> bool:
        return True


def run_in_process(tasks: list[str], seeds: list[int], make_policy: Callable[[], Policy], settings: WorkerSettings,
                   max_steps: int, out_dir: Path, on_done: Callable[[Episode], None]) -> list[Episode]:
    """Every episode with the agent loop in this process, one browser, the in-page episode reset."""
    results = []
    out_dir.mkdir(parents=True, exist_ok=True)
    with MiniwobServer() as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=settings.chromium_path, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 500, "height": 320})
        writer = OrderedWriter("bench-writer")
        for task in tasks:
            for seed in seeds:
                t0 = time.perf_counter()
                episode = MiniwobEpisode(page)
                goal = episode.start(task, seed, server.url)
                hooks = _FileHooks(out_dir, episode, writer)
                policy = make_policy()
                cfg = LoopConfig(max_steps=max_steps, allowed=["127.0.0.1"], screenshot=settings.agent_screenshot,
                                 salt=bid_salt("miniwob", task, seed), root=MiniwobEpisode.ROOT,
                                 thought=settings.agent_thought,
                                 profile=served_profile(settings) if policy.name == "model" else TEXT_DEFAULT)
                try:
                    outcome = run_agent(page, policy, goal, hooks, cfg)
                except (PlaywrightError, RuntimeError) as exc:  # one broken episode must not end the benchmark
                    outcome = Outcome("failed", f"harness error: {exc}".splitlines()[0])
                finally:
                    policy.close()
                    writer.flush()
                    hooks.fh.close()
                st = _safe_status(episode)
                ep = Episode(task, seed, bool(st and st.done and st.success), st.raw_reward if st and st.done else None,
                             outcome.reason,
                             len(hooks.records), round(time.perf_counter() - t0, 3))
                for rec in hooks.records:
                    _add_step(ep, rec.timings_ms)
                results.append(ep)
                on_done(ep)
        writer.close()
        browser.close()
    return results


def _safe_status(episode: MiniwobEpisode):  # noqa: ANN202
    try:
        return episode.status()
    except PlaywrightError:
        return None


def run_through_stack(tasks: list[str], seeds: list[int], policy: str, base_url: str, token: str, max_steps: int,
                      on_done: Callable[[Episode], None], model: str | None = None) -> list[Episode]:
    """Every episode as a run through the gateway and worker (pages served from here)."""
    results = []
    with MiniwobServer() as server, httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"},
                                                 timeout=60) as api:
        for task in tasks:
            for seed in seeds:
                t0 = time.perf_counter()
                body: dict[str, Any] = {"task": f"miniwob {task}", "start_url": server.task_url(task),
                                        "max_steps": max_steps, "env": {"type": "miniwob", "task": task, "seed": seed}}
                if policy == "replay":
                    body.update(policy="replay", actions=REPLAY_SCRIPT)
                if model:
                    body["model"] = model
                resp = api.post("/api/v1/runs", json=body)
                resp.raise_for_status()
                run_id = resp.json()["id"]
                run = _wait(api, run_id)
                steps = api.get(f"/api/v1/runs/{run_id}/steps").json()
                reward = run.get("reward")
                ep = Episode(task, seed, reward is not None and reward > 0, reward, run["reason"], len(steps),
                             round(time.perf_counter() - t0, 3))
                for s in steps:
                    _add_step(ep, s["timings_ms"])
                results.append(ep)
                on_done(ep)
    return results


def _wait(api: httpx.Client, run_id: str, timeout: float = 1800) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        run = api.get(f"/api/v1/runs/{run_id}").json()
        if run["status"] in ("succeeded", "failed", "cancelled"):
            return run
        time.sleep(0.2)
    raise TimeoutError(f"run {run_id} did not finish in {timeout} s")


def _flat(eps: list[Episode], attr: str) -> Iterator[float]:
    for ep in eps:
        yield from getattr(ep, attr)


def histogram(values: list[float], bins: int = 20) -> dict[str, list[float]] | None:
    """Counts of `values` in about `bins` equal bins with round edges (the last bin holds its upper edge)."""
    if not values:
        return None
    lo, hi = min(values), max(values)
    raw = (hi - lo) / bins or 1.0
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    n = max(1, math.ceil((hi - start) / step - 1e-9))
    edges = [round(start + i * step, 6) for i in range(n + 1)]
    counts = [0] * n
    for v in values:
        counts[min(n - 1, int((v - start) // step))] += 1
    return {"edges": edges, "counts": counts}


def summarize(results: list[Episode], meta: dict[str, Any], wall_s: float) -> dict[str, Any]:
    """The JSON report: overall and per-task figures."""
    n, wins = len(results), sum(r.success for r in results)
    harness = list(_flat(results, "harness_ms"))
    model = list(_flat(results, "model_ms"))
    parts = {k: [v for r in results for v in r.parts_ms.get(k, [])] for k in HARNESS_PARTS}
    tasks = []
    for task in dict.fromkeys(r.task for r in results):
        rows = [r for r in results if r.task == task]
        k = sum(r.success for r in rows)
        tasks.append({"task": task, "episodes": len(rows), "successes": k, "success_rate": round(k / len(rows), 4),
                      "ci95": wilson(k, len(rows)), "mean_steps": round(sum(r.steps for r in rows) / len(rows), 2)})
    return {
        **meta,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "episodes": n,
        "successes": wins,
        "success_rate": round(wins / n, 4) if n else 0.0,
        "success_ci95": wilson(wins, n),
        "mean_steps": round(sum(r.steps for r in results) / n, 2) if n else 0.0,
        "harness_overhead_ms_p50": pct(harness, 50),
        "harness_overhead_ms_p95": pct(harness, 95),
        "harness_histogram_ms": histogram(harness),
        "harness_parts_ms": {k: {"p50": pct(v, 50), "p95": pct(v, 95)} for k, v in parts.items()},
        "model_latency_ms_p50": pct(model, 50),
        "model_latency_ms_p95": pct(model, 95),
        "episodes_per_minute": round(n / wall_s * 60, 2) if wall_s else 0.0,
        "wall_s": round(wall_s, 2),
        "tasks": tasks,
        "episodes_detail": [asdict(r) | {"harness_ms": None, "parts_ms": None, "model_ms": None} for r in results],
    }


def model_policy_factory(settings: WorkerSettings, model: str | None = None) -> Callable[[], Policy]:
    """A new model policy per episode, for the base model or a served adapter version (`name@vN`)."""
    return lambda: ModelPolicy(settings.inference_url, model or settings.inference_model, settings.inference_timeout_s,
                               settings.inference_retries, max_tokens=settings.agent_max_tokens,
                               tokenizer_model=settings.inference_model,
                               restart_wait_s=settings.inference_restart_wait_s)


def replay_policy_factory() -> Callable[[], Policy]:
    """The harness-overhead script (not a score)."""
    return lambda: ReplayPolicy(REPLAY_SCRIPT)

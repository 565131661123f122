"""`sparkpilot learn` end to end: the real CLI against the real stack, trainer, worker, Chromium and vLLM.

Collection here is greedy (temperature 0) on tasks whose greedy outcome the embedded model's benchmark
shows (click-test: solved; enter-text: not), so each test takes the path it names; the loop's own
sampling is covered by the run-level temperature test and measured by `scripts/benchmark.sh learning`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.helpers import BIN, ROOT, Stack
from tests.real_model import api, stack  # noqa: F401 - this module's stack serves the real model


def learn(stack: Stack, tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict | None]:
    out = tmp_path / "learning.json"
    proc = subprocess.run([str(BIN / "sparkpilot"), "learn", "--base-url", stack.base_url, "--token", stack.token,
                           "--json", str(out), "--temperature", "0", "--max-steps", "2", *args],
                          cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=560)
    return proc, json.loads(out.read_text()) if out.is_file() else None


@pytest.mark.timeout(600)
def test_a_round_measures_a_baseline_trains_gates_and_serves_the_winner(api: httpx.Client, stack: Stack, trainer,  # noqa: ANN001
                                                                        tmp_path: Path) -> None:
    proc, report = learn(stack, tmp_path, "--tasks", "click-test", "--rounds", "1", "--episodes-per-task", "2",
                         "--eval-seeds", "7", "--steps", "2", "--name", "looped", "--gate-margin", "-1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert report["baseline"]["episodes"] == 1 and report["baseline"]["tasks"][0]["task"] == "click-test"
    assert report["baseline"]["model"] == "smollm2-135m-instruct"  # what served by default
    assert report["baseline_success_rate"] == report["baseline"]["success_rate"]
    (row,) = report["rounds"]
    assert row["collected"][0]["episodes"] == 2 and row["collected"][0]["successes"] >= 1
    assert row["promoted"] is True and row["model"] == row["candidate"] == "looped@v1"
    assert row["success_rate"] == row["candidate_success_rate"] and report["final_success_rate"] == row["success_rate"]
    assert set(row["minutes"]) >= {"collect", "prepare", "train", "evaluate", "publish", "total"}
    assert "learning: looped" in proc.stdout and "overall" in proc.stdout  # the before/after table
    # The baseline's eval run was not training data, and the job reused it as the current version's score:
    # seed 7 ran twice in all, once on the base (baseline) and once on the candidate.
    metrics = api.get(f"/api/v1/training/jobs/{row['job']}/metrics").json()
    seeds = set(metrics["prepare"]["seeds"])
    assert seeds and seeds <= {"click-test:1000", "click-test:1001"}
    assert metrics["eval"]["current_table"] == {"click-test": [round(report["baseline_success_rate"]), 1]}
    seven = [r for r in api.get("/api/v1/runs", params={"limit": 200}).json()["items"]
             if r["env"] == {"type": "miniwob", "task": "click-test", "seed": 7}]
    assert sorted(r["model"] for r in seven) == ["looped@v1", "smollm2-135m-instruct"]
    assert all(r["policy"]["purpose"] == "eval" and "temperature" not in r["policy"] for r in seven)
    with api.stream("GET", f"/api/v1/training/jobs/{row['job']}/events") as resp:
        progress = [json.loads(line[5:])["payload"] for line in resp.iter_lines() if line.startswith("data:")]
    assert any(p.get("model") == "smollm2-135m-instruct" and p.get("episodes_reused") == 1 for p in progress)
    # What serves now: plain `looped` resolves to the winner.
    run = api.post("/api/v1/runs", json={"task": "t", "model": "looped", "policy": "replay",
                                         "actions": [{"name": "finish", "answer": ""}]}).json()
    assert run["model"] == "looped@v1"


@pytest.mark.timeout(300)
def test_a_round_with_nothing_rewarded_keeps_the_serving_model(stack: Stack, trainer, tmp_path: Path) -> None:  # noqa: ANN001
    proc, report = learn(stack, tmp_path, "--tasks", "enter-text", "--rounds", "1", "--episodes-per-task", "1",
                         "--eval-seeds", "8", "--name", "never")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (row,) = report["rounds"]
    assert row["collected"][0] == {**row["collected"][0], "successes": 0, "episodes": 1}
    assert row["job"] is None and row["promoted"] is False and row["gate"].startswith("not trained")
    assert row["model"] == report["baseline"]["model"] == "smollm2-135m-instruct"
    assert row["success_rate"] == report["baseline_success_rate"] == 0.0


def test_bad_arguments_are_refused_before_anything_runs(stack: Stack, tmp_path: Path) -> None:
    for args in (["--tasks", "no-such-task"], ["--eval-seeds", "1000"], ["--eval-seeds", "x"]):
        proc, report = learn(stack, tmp_path, *args)
        assert proc.returncode == 2 and report is None, (args, proc.stderr)

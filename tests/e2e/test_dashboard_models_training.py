"""The Models and Training pages in real Chromium against the real stack: vLLM, registry, trainer, eval gate."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from agent.miniwob import MiniwobEpisode, MiniwobServer
from tests.helpers import ROOT, submit_solved_click_button, wait_terminal
from tests.real_model import api, stack  # noqa: F401 - this module's stack serves the real model

TASK = "click-button"

INFERENCE_PY = ROOT / ".venv-inference" / "bin" / "python"
FINISHED = ("succeeded", "failed", "cancelled")


@pytest.fixture(scope="module")
def ui_adapters(base_env, vllm) -> dict[str, Path]:  # noqa: ANN001
    """Two tiny real LoRAs over the served model, in the adapters folder."""
    from sparkpilot.settings import InferenceSettings

    model_dir = InferenceSettings(_env_file=None).model_dir
    root = Path(base_env["SPARKPILOT_ADAPTERS_DIR"])
    root.mkdir(parents=True, exist_ok=True)
    dirs = {}
    for i, name in enumerate(("ui-a", "ui-b")):
        subprocess.run([str(INFERENCE_PY), str(ROOT / "tests" / "make_adapter.py"), str(model_dir), str(root / name),
                        "--seed", str(10 + i)], check=True, capture_output=True)
        dirs[name] = root / name
    return dirs


@pytest.fixture(scope="module")
def solved(api: httpx.Client, stack, browser) -> list[dict]:  # noqa: ANN001
    """Rewarded click-button episodes that the jobs here train on: a replay clicks the button each goal names."""
    context = browser.new_context()  # the module's browser: a second sync Playwright cannot run beside it
    page = context.new_page()
    goals = {}
    with MiniwobServer() as server:
        for seed in (0, 1, 2, 3):
            page.goto(server.task_url(TASK))
            goals[seed] = MiniwobEpisode(page).start(TASK, seed, server.url)
    context.close()
    ids = submit_solved_click_button(api, stack.base_url, goals)
    runs = [wait_terminal(api, run_id, timeout=60) for run_id in ids]
    assert all(r["status"] == "succeeded" and r["reward"] > 0 for r in runs), runs
    return runs


def _model(api: httpx.Client, name: str) -> dict:
    return next(m for m in api.get("/api/v1/models").json() if m["name"] == name)


def _job(api: httpx.Client, job_id: str) -> dict:
    return api.get(f"/api/v1/training/jobs/{job_id}").json()


def test_models_page_lists_the_base_model_and_answers_a_prompt(dash, api) -> None:  # noqa: ANN001
    base = api.get("/api/v1/models").json()[0]
    assert base["kind"] == "base"
    dash.open("#/models")
    page = dash.page
    row = page.locator(f'[data-testid="base-row"][data-name="{base["name"]}"]')
    expect(row).to_be_visible(timeout=10_000)
    expect(row).to_contain_text("loaded")
    cache = api.get("/api/v1/models/cache").json()
    expect(page.get_by_test_id("cache-loaded")).to_contain_text(f"{len(cache['loaded'])} of {cache['max_loras']}")

    page.get_by_label("Prompt").fill("Name one colour of the sky.")
    page.get_by_test_id("infer-max-tokens").fill("12")
    expect(page.get_by_test_id("infer-model")).to_have_value(f"model:{base['name']}")
    page.get_by_test_id("infer-submit").click()
    expect(page.get_by_test_id("infer-latency")).to_have_text(re.compile(r"^\d+(\.\d+)? m?s$"), timeout=120_000)
    assert page.get_by_test_id("infer-text").inner_text().strip()
    assert int(page.get_by_test_id("infer-prompt-tokens").inner_text()) > 5
    assert 1 <= int(page.get_by_test_id("infer-completion-tokens").inner_text()) <= 12
    expect(page.get_by_test_id("infer-model-used")).to_have_text(base["name"])


def _act(page, name: str, action: str) -> None:  # noqa: ANN001
    page.locator(f'[data-testid="adapter-row"][data-name="{name}"] button[data-action="{action}"]').click()
    expect(page.get_by_test_id("confirm-action")).to_be_visible()
    page.get_by_test_id("confirm-yes").click()


def test_adapter_actions_from_the_ui(dash, api, ui_adapters) -> None:  # noqa: ANN001
    dash.open("#/models")
    page = dash.page
    row = lambda name: page.locator(f'[data-testid="adapter-row"][data-name="{name}"]')  # noqa: E731
    # Register from the form (a real PEFT folder), then a second version, unpromoted, through the API.
    page.get_by_label("Adapter name").fill("ui-adapter")
    page.get_by_label("PEFT folder").fill("ui-a")
    page.get_by_test_id("reg-submit").click()
    expect(row("ui-adapter@v1")).to_have_attribute("data-current", "true", timeout=30_000)
    assert _model(api, "ui-adapter@v1")["source"] == "api" and _model(api, "ui-adapter@v1")["rank"] == 4
    assert api.post("/api/v1/models/adapters", json={"name": "ui-adapter", "path": "ui-b", "promote": False}).status_code == 201
    page.get_by_test_id("models-refresh").click()
    expect(row("ui-adapter@v2")).to_have_attribute("data-current", "false")

    # Cancelling the confirmation changes nothing.
    page.locator('[data-testid="adapter-row"][data-name="ui-adapter@v1"] button[data-action="load"]').click()
    page.get_by_test_id("confirm-no").click()
    expect(page.get_by_test_id("confirm-action")).to_be_hidden()
    assert _model(api, "ui-adapter@v1")["status"] == "registered"

    _act(page, "ui-adapter@v1", "load")
    expect(row("ui-adapter@v1")).to_have_attribute("data-status", "loaded", timeout=60_000)
    assert "ui-adapter@v1" in api.get("/api/v1/models/cache").json()["loaded"]
    expect(page.get_by_test_id("cache-loaded")).to_contain_text("ui-adapter@v1", timeout=10_000)
    # The prompt box answers through the adapter.
    page.get_by_test_id("infer-model").select_option("adapter:ui-adapter@v1")
    page.get_by_test_id("infer-prompt").fill("Say hi.")
    page.get_by_test_id("infer-max-tokens").fill("6")
    page.get_by_test_id("infer-submit").click()
    expect(page.get_by_test_id("infer-model-used")).to_have_text("ui-adapter@v1 (adapter)", timeout=120_000)

    _act(page, "ui-adapter@v1", "unload")
    expect(row("ui-adapter@v1")).to_have_attribute("data-status", "registered", timeout=60_000)
    assert "ui-adapter@v1" not in api.get("/api/v1/models/cache").json()["loaded"]

    _act(page, "ui-adapter@v2", "promote")
    expect(row("ui-adapter@v2")).to_have_attribute("data-current", "true", timeout=30_000)
    expect(row("ui-adapter@v1")).to_have_attribute("data-current", "false")
    assert _model(api, "ui-adapter@v2")["current"] and not _model(api, "ui-adapter@v1")["current"]

    _act(page, "ui-adapter@v2", "rollback")
    expect(row("ui-adapter@v1")).to_have_attribute("data-current", "true", timeout=30_000)
    assert _model(api, "ui-adapter@v1")["current"]
    expect(page.get_by_test_id("model-action-msg")).to_contain_text("ui-adapter@v1 is registered and current")

    # No earlier version: the API's 409 message, shown where the action was taken.
    dash.allow("409")
    _act(page, "ui-adapter@v1", "rollback")
    expect(page.get_by_test_id("models-error")).to_contain_text("has no earlier version to roll back to")
    dash.shot("models")

    # A token that is not an admin's: the 403 message, and the registry unchanged.
    token = api.post("/api/v1/admin/tokens", json={"user": "ui-viewer"}).json()["token"]
    before = api.get("/api/v1/models").json()
    dash.allow("403")
    page.locator("#sign-out").click()
    dash.sign_in(token)
    expect(page.locator("#sign-out")).to_be_visible(timeout=10_000)
    _act(page, "ui-adapter@v2", "promote")
    expect(page.get_by_test_id("models-error")).to_contain_text("this operation needs an admin token")
    assert api.get("/api/v1/models").json() == before


def _fill_job(page, name: str, policy: str, tasks: str, steps: int, seeds: str) -> None:  # noqa: ANN001
    page.get_by_test_id("job-name").fill(name)
    page.get_by_test_id("job-policy").select_option(policy)
    page.get_by_test_id("job-tasks").fill(tasks)
    page.get_by_test_id("job-steps").fill(str(steps))
    page.get_by_test_id("job-batch_size").fill("2")
    page.get_by_test_id("job-learning_rate").fill("0.0005")
    page.get_by_test_id("job-max_length").fill("768")
    page.get_by_test_id("job-eval_tasks").fill(TASK)
    page.get_by_test_id("job-eval_seeds").fill(seeds)
    page.get_by_test_id("job-eval_max_steps").fill("1")
    page.get_by_test_id("job-gate_margin").fill("-1")


def test_a_job_started_from_the_form_trains_live_and_the_gate_promotes(dash, api, trainer, solved) -> None:  # noqa: ANN001
    steps = 12
    dash.open("#/training")
    page = dash.page
    _fill_job(page, "ui-learner", "replay", TASK, steps, "1500")
    page.get_by_test_id("start-job-submit").click()
    page.wait_for_url(re.compile(r"#/training/\w+$"), timeout=15_000)
    job_id = page.url.rsplit("/", 1)[1]
    job = _job(api, job_id)
    assert job["name"] == "ui-learner" and job["dataset"]["runs"]["tasks"] == [TASK]
    assert job["hyperparameters"]["steps"] == steps and job["eval"]["seeds"] == [1500] and job["eval"]["gate_margin"] == -1

    # Sample what the page shows while the trainer works: the curve must grow while the job is still running.
    read = "() => [document.querySelector('[data-testid=loss-chart]').dataset.points, " \
           "document.querySelector('[data-testid=job-status]')?.dataset.status, " \
           "document.querySelector('[data-testid=job-progress]')?.getAttribute('aria-valuenow')]"
    seen = []
    deadline = time.time() + 420
    while time.time() < deadline:
        points, status, pct = page.evaluate(read)
        seen.append((int(points), status, int(pct or 0)))
        if status in FINISHED:
            break
        time.sleep(0.25)
    live = [s for s in seen if s[1] == "running" and 0 < s[0] < steps]
    assert live, f"never saw a partial loss curve while the job ran: {seen[::20]}"
    assert len({s[0] for s in live}) >= 2, "the curve did not grow while watched"
    assert any(0 < s[2] < 100 for s in seen if s[1] == "running"), "the progress bar never moved while running"

    done = _job(api, job_id)
    assert done["status"] == "succeeded", done
    expect(page.get_by_test_id("job-status")).to_have_attribute("data-status", "succeeded")
    metrics = api.get(f"/api/v1/training/jobs/{job_id}/metrics").json()
    assert [p[0] for p in metrics["loss"]] == list(range(1, steps + 1))
    expect(page.get_by_test_id("loss-chart")).to_have_attribute("data-points", str(steps))
    expect(page.locator('[data-testid="loss-chart"] svg')).to_be_visible()
    expect(page.get_by_test_id("job-progress")).to_have_attribute("aria-valuenow", "100")
    ev = metrics["eval"]
    cand, cur = ev["candidate_table"][TASK], ev["current_table"][TASK]
    task_row = page.locator(f'[data-testid="eval-table"] tbody tr[data-task="{TASK}"]')
    expect(task_row).to_contain_text(f"{cand[0]}/{cand[1]}")
    expect(task_row).to_contain_text(f"{cur[0]}/{cur[1]}")
    expect(page.get_by_test_id("eval-table")).to_contain_text(ev["candidate"])
    # Margin -1: any candidate passes, so this gate must promote.
    assert metrics["gate"]["promoted"] is True and done["adapter"] == "ui-learner@v1"
    expect(page.get_by_test_id("gate-verdict")).to_have_text("promoted")
    expect(page.get_by_test_id("gate-reason")).to_have_text(done["reason"])
    expect(page.get_by_test_id("prepare-stats")).to_contain_text(f"{metrics['prepare']['train']} train")
    dash.shot("training")

    dash.go("#/training")
    row = page.locator(f'[data-testid="job-row"][data-job-id="{job_id}"]')
    expect(row).to_have_attribute("data-status", "succeeded", timeout=10_000)
    expect(row).to_contain_text("ui-learner@v1")
    expect(page.get_by_test_id("jobs-count")).to_contain_text(f"of {api.get('/api/v1/training/jobs').json()['total']}")
    dash.shot("training-jobs")


def test_a_bad_filter_shows_the_apis_error_and_starts_nothing(dash, api, solved) -> None:  # noqa: ANN001
    before = api.get("/api/v1/training/jobs").json()["total"]
    dash.allow("422")
    dash.open("#/training")
    page = dash.page
    error = page.get_by_test_id("start-job-error")
    _fill_job(page, "ui-empty", "model", "click-tab", 2, "1600")
    page.get_by_test_id("start-job-submit").click()
    expect(error).to_contain_text("the job's data holds no usable training step", timeout=15_000)
    page.get_by_test_id("job-tasks").fill("no-such-task")
    page.get_by_test_id("start-job-submit").click()
    expect(error).to_contain_text("dataset.runs.tasks: unknown MiniWoB task(s) no-such-task")
    page.get_by_test_id("job-tasks").fill("Click Button")
    page.get_by_test_id("start-job-submit").click()
    expect(error).to_contain_text("bad task name")
    page.get_by_test_id("job-tasks").fill(TASK)
    page.get_by_test_id("job-eval_seeds").fill("soon")
    page.get_by_test_id("start-job-submit").click()
    expect(error).to_contain_text('eval seeds: "soon" is not a number')
    assert api.get("/api/v1/training/jobs").json()["total"] == before


def test_cancel_a_running_job_from_its_page(dash, api, trainer, solved) -> None:  # noqa: ANN001
    body = {"name": "ui-cancelled", "dataset": {"runs": {"policy": "replay", "tasks": [TASK]}},
            "eval": {"tasks": [TASK], "seeds": [1700], "max_steps": 1, "gate_margin": -1},
            "hyperparameters": {"steps": 40, "batch_size": 2, "save_every": 10, "max_length": 768}}
    resp = api.post("/api/v1/training/jobs", json=body)
    assert resp.status_code == 201, resp.text
    job_id = resp.json()["id"]
    dash.open(f"#/training/{job_id}")
    page = dash.page
    expect(page.get_by_test_id("job-live")).to_contain_text(re.compile(r"step [1-9]\d*/40"), timeout=300_000)
    page.get_by_test_id("cancel-job").click()
    page.get_by_test_id("confirm-yes").click()
    expect(page.get_by_test_id("job-status")).to_have_attribute("data-status", "cancelled", timeout=120_000)
    done = _job(api, job_id)
    assert (done["status"], done["reason"]) == ("cancelled", "cancelled by user")
    assert done["progress"]["step"] < 40 and "evaluate" not in done["done_phases"]
    expect(page.get_by_test_id("gate-none")).to_contain_text("cancelled by user")
    expect(page.get_by_test_id("cancel-job")).to_have_count(0)  # nothing left to cancel


@pytest.fixture(scope="module")
def finished_job(api: httpx.Client, trainer, solved) -> dict:  # noqa: ANN001
    """A succeeded job with its adapter: the module's own if one has finished, else a small one trained now."""
    jobs = [j for j in api.get("/api/v1/training/jobs").json()["items"] if j["status"] == "succeeded"]
    if jobs:
        return jobs[0]
    body = {"name": "phone-learner", "dataset": {"runs": {"policy": "replay", "tasks": [TASK]}},
            "eval": {"tasks": [TASK], "seeds": [1600], "max_steps": 1, "gate_margin": -1},
            "hyperparameters": {"steps": 2, "batch_size": 2, "learning_rate": 5e-4, "max_length": 768}}
    resp = api.post("/api/v1/training/jobs", json=body)
    assert resp.status_code == 201, resp.text
    deadline = time.time() + 420
    while (job := _job(api, resp.json()["id"]))["status"] not in FINISHED and time.time() < deadline:
        time.sleep(1)
    assert job["status"] == "succeeded", job
    return job


def test_pages_fit_a_phone_screen(narrow_dash, api, finished_job) -> None:  # noqa: ANN001
    page = narrow_dash.page
    fits = "() => document.documentElement.scrollWidth <= window.innerWidth"
    narrow_dash.open(f"#/training/{finished_job['id']}")
    expect(page.get_by_test_id("gate-verdict")).to_be_visible(timeout=15_000)
    expect(page.locator('[data-testid="loss-chart"] svg')).to_be_visible()
    assert page.evaluate(fits)
    narrow_dash.shot("training-narrow")
    narrow_dash.go("#/training")
    job_id = finished_job["id"]
    expect(page.locator(f'[data-testid="job-row"][data-job-id="{job_id}"]')).to_be_visible(timeout=10_000)
    narrow_dash.shot("training-jobs-narrow")
    assert page.evaluate(fits)
    narrow_dash.go("#/models")
    action = page.locator(f'[data-testid="adapter-row"][data-name="{finished_job["adapter"]}"] button[data-action]')
    expect(action.first).to_be_visible(timeout=10_000)
    narrow_dash.shot("models-narrow")
    # Each row is a card on a phone: the table needs no sideways scroll to reach its actions.
    assert page.evaluate("() => { const w = document.querySelector('[data-testid=models-table]').parentElement; "
                         "return w.scrollWidth <= w.clientWidth; }")
    expect(page.get_by_test_id("cache-loaded")).to_be_visible()
    assert page.evaluate(fits)

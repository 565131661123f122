"""The dashboard in real Chromium against the real stack: sign-in, every page, a live run, take control, approvals, a team run.

Only a model's answers are scripted, and only where the test is about the dashboard, not the model:
replay runs (the agent's script) and the team stack's scripted model server.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import SHOTS, Dash, open_dash
from tests.helpers import Stack, scripted_env, wait_terminal
from tests.scripted_model import ScriptedModel

PAGES = ["#/runs", "#/models", "#/training", "#/benchmarks", "#/agents", "#/system"]


def test_sign_in_and_every_page_loads_without_console_errors(dash: Dash) -> None:
    dash.allow(r"401")  # Chromium logs the refused sign-in check itself
    dash.open("#/runs", sign_in=False)
    expect(dash.page.locator("#health")).to_contain_text("healthy", timeout=15_000)
    expect(dash.page.locator(".signin-hint")).to_be_visible()
    dash.sign_in("wrong-token")
    expect(dash.page.locator("#error")).to_contain_text("401", timeout=10_000)
    assert dash.page.evaluate("localStorage.getItem('sparkpilot.token')") is None
    dash.sign_in(dash.token)
    assert dash.token not in dash.page.url
    for route in PAGES:
        dash.go(route)
        expect(dash.page.locator(f"#nav a[href='{route}']")).to_have_attribute("aria-current", "")
        expect(dash.page.locator("#view > *").first).to_be_visible(timeout=10_000)
        dash.page.wait_for_load_state("networkidle")
        expect(dash.page.locator("#error")).to_be_hidden()
    # Keyboard: on a fresh load (still signed in), the first Tab reaches the skip link, the next ones the navigation.
    dash.page.reload()
    expect(dash.page.locator("#sign-out")).to_be_visible()
    dash.page.keyboard.press("Tab")
    assert dash.page.evaluate("document.activeElement.className") == "skip"
    dash.page.keyboard.press("Tab")
    dash.page.keyboard.press("Tab")
    assert dash.page.evaluate("document.activeElement.getAttribute('href')") == "#/runs"


def _replay(api: httpx.Client, page_url: str, actions: list, task: str = "press the button") -> str:
    resp = api.post("/api/v1/runs", json={"task": task, "start_url": page_url, "policy": "replay", "actions": actions,
                                          "max_steps": 12})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def test_a_model_run_is_watched_live_then_replayed(dash: Dash, pages, api, scripted_model) -> None:  # noqa: ANN001
    # The live view is the subject, not the model: the shared stack's model server answers two waits (the
    # frames must keep coming while the run waits on the model) and then the answer.
    scripted_model.routes["read the clock on the page"] = [
        json.dumps({"action": {"name": "wait", "seconds": 2}}), json.dumps({"action": {"name": "wait", "seconds": 2}}),
        json.dumps({"action": {"name": "finish", "answer": "the clock ticks"}})]
    dash.open("#/runs")
    dash.page.fill("#task", "read the clock on the page, then finish")
    dash.page.fill("#start-url", pages.url + "/control.html")
    dash.page.fill("#max-steps", "3")
    dash.page.click("#submit-run")
    expect(dash.page).to_have_url(re.compile(r"#/runs/\w+$"), timeout=10_000)
    frame = dash.page.locator("[data-testid=live-frame]")
    expect(frame).to_have_attribute("src", re.compile("^data:image/jpeg"), timeout=60_000)
    dash.shot("run-live")
    expect(dash.page.locator("#run-status")).to_have_text("succeeded", timeout=180_000)
    lags = dash.page.evaluate("window.__sparkpilotLive.latencies")
    assert len(lags) >= 5, lags  # the clock ticks every 250 ms: frames kept coming while the model thought
    lags.sort()
    figures = {"frames": len(lags), "p50_ms": lags[len(lags) // 2], "p95_ms": lags[int(len(lags) * 0.95)]}
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS.parent / "live-view-latency.json").write_text(json.dumps(figures, indent=1))
    print(f"live view frame lag: {figures}")
    # Each step expands to its screenshot, the model's answer and its timings.
    first = dash.page.locator("#events li.step details").first
    first.locator("summary").click()
    expect(first.locator("[data-testid=step-shot]")).to_be_visible(timeout=10_000)
    expect(first.locator("[data-testid=raw-output]")).not_to_be_empty()
    # Finished: the replay viewer scrubs through the steps.
    replay = dash.page.locator("[data-testid=replay]")
    expect(replay).to_be_visible(timeout=10_000)
    expect(replay.locator("[data-testid=replay-shot]")).to_have_attribute("src", re.compile("^blob:"), timeout=10_000)
    steps = api.get(f"/api/v1/runs/{dash.page.url.rsplit('/', 1)[1]}/steps").json()
    if len(steps) > 1:
        replay.get_by_role("button", name="next step").click()
        expect(replay.locator("[data-testid=replay-info]")).to_contain_text(steps[1]["action"]["name"])
    with dash.page.expect_download() as dl:
        replay.locator("[data-testid=trajectory-download]").click()
    records = json.loads(Path(dl.value.path()).read_text())
    assert [r["step"] for r in records] == [s["index"] for s in steps]
    dash.shot("run-replay")


def test_take_control_click_is_recorded_as_a_human_step(dash: Dash, pages, api) -> None:  # noqa: ANN001
    waits = [{"name": "wait", "seconds": 1 + i / 10} for i in range(8)]
    run_id = _replay(api, pages.url + "/control.html", waits + [{"name": "finish", "answer": "done"}])
    dash.open(f"#/runs/{run_id}")
    page = dash.page
    frame = page.locator("[data-testid=live-frame]")
    expect(frame).to_have_attribute("src", re.compile("^data:image/jpeg"), timeout=60_000)
    page.click("[data-testid=take-control]")
    expect(page.locator("[data-testid=control-mode]")).to_have_text("you have control", timeout=20_000)
    # Click the page's "Press me" button (at 200, 230 in the page) where it shows in the live view.
    box = frame.bounding_box()
    page.mouse.click(box["x"] + 200 * box["width"] / 1280, box["y"] + 230 * box["height"] / 800)
    expect(page.locator("#events li.step[data-actor=human]")).to_have_count(1, timeout=20_000)
    dash.shot("run-take-control")
    page.click("[data-testid=hand-back]")
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=60_000)
    steps = api.get(f"/api/v1/runs/{run_id}/steps").json()
    [human] = [s for s in steps if s["actor"] == "human"]
    assert human["action"]["name"] == "click" and human["action"]["args"]["bid"], human
    after = next(s for s in steps if s["index"] > human["index"])
    assert "pressed by nobody" in json.dumps(after["observation"])


def test_an_approval_is_granted_from_the_ui(dash: Dash, pages, api) -> None:  # noqa: ANN001
    run_id = _replay(api, pages.url + "/login.html", [{"name": "press", "key": "Enter"}, {"name": "finish", "answer": "ok"}],
                     task="sign in")
    dash.open(f"#/runs/{run_id}")
    waits = dash.page.locator("[data-testid=waits]")
    expect(waits).to_contain_text("a password", timeout=60_000)
    expect(waits.locator("[data-testid=wait-countdown]")).to_contain_text("left")
    expect(waits.locator("img.step-shot")).to_be_visible(timeout=10_000)
    dash.shot("run-approval")
    waits.locator("[data-testid=approval-approve]").click()
    expect(dash.page.locator("#run-status")).to_have_text("succeeded", timeout=60_000)
    [approval] = api.get(f"/api/v1/runs/{run_id}/approvals").json()
    assert approval["status"] == "approved"
    steps = api.get(f"/api/v1/runs/{run_id}/steps").json()
    assert steps[1]["observation"]["title"] == "signed in as ada"


# ---------------------------------------------------------------- a team run, on a scripted model

MODEL = "scripted-dashboard-team"


@pytest.fixture(scope="module")
def team_stack(base_env: dict[str, str]) -> Iterator[tuple[Stack, ScriptedModel]]:
    """A gateway + worker whose model server answers from a script."""
    folder = Path(tempfile.mkdtemp(prefix="sparkpilot-ui-team-"))
    os.chmod(folder, 0o711)
    with ScriptedModel(MODEL, []) as model:
        stack = Stack(env=scripted_env(base_env, folder, model.url, MODEL), logdir=folder)
        try:
            stack.start_gateway()
            stack.start_worker()
            yield stack, model
        finally:
            stack.stop()


def test_a_team_plan_is_edited_approved_and_watched_to_the_end(browser, team_stack, pages) -> None:  # noqa: ANN001
    stack, model = team_stack
    marker = "UITEAM"
    model.routes[marker] = [
        json.dumps({"steps": [{"agent": "web", "instruction": "Open the price list", "expected": "the prices"}]}),
        json.dumps({"action": {"name": "goto", "url": pages.url + "/prices.html"}}),
        json.dumps({"action": {"name": "finish", "answer": "I read the prices: 12, 7, 23, 5"}}),
        json.dumps({"done": True, "feedback": ""}),
        json.dumps({"answer": "The prices are 12, 7, 23 and 5."})]
    gen = open_dash(browser, stack.base_url, stack.token)
    dash = next(gen)
    try:
        dash.open("#/runs")
        dash.page.fill("#task", f"{marker}: read the prices")
        dash.page.fill("#start-url", pages.url + "/index.html")
        dash.page.select_option("[data-testid=run-mode]", "team")
        dash.page.click("#submit-run")
        expect(dash.page).to_have_url(re.compile(r"#/runs/\w+$"), timeout=10_000)
        plan = dash.page.locator("[data-testid=plan]")
        expect(plan.locator("[data-testid=plan-approve]")).to_be_visible(timeout=60_000)
        expect(plan).to_contain_text("Open the price list")
        dash.shot("run-plan")
        # Edit the step's instruction, then approve the edited plan.
        plan.get_by_role("button", name="Edit steps").click()
        plan.locator("[data-testid=plan-instruction]").fill("Open the price list and read every price")
        plan.locator("[data-testid=plan-save]").click()
        expect(dash.page.locator("#run-status")).to_have_text("succeeded", timeout=90_000)
        expect(dash.page.locator("[data-testid=run-result]")).to_have_text("The prices are 12, 7, 23 and 5.")
        timeline = dash.page.locator("#events")
        expect(timeline).to_contain_text("web · plan step 1: done")
        expect(dash.page.locator("[data-testid=plan]")).to_contain_text("read every price")
        dash.shot("run-team")
        run_id = dash.page.url.rsplit("/", 1)[1]
        with httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.token}"}) as api:
            run = wait_terminal(api, run_id, 10)
            assert run["status"] == "succeeded"
            assert api.get(f"/api/v1/runs/{run_id}/plan").json()["steps"][0]["instruction"] == \
                "Open the price list and read every price"
    finally:
        next(gen, None)
